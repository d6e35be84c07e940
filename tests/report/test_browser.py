"""The HTML report in a real browser: Debian's chromium, driven headless by selenium through
chromium-driver, offline, from file://.

Without chromium the tests skip with the reason printed; in CI (CI=true, where .ci/run installs
it) they fail instead. Screenshots of the leaderboard and of a gallery are kept as artifacts:
under $WMRBENCH_TEST_ARTIFACTS, else test-artifacts/ at the repository root (ignored by git).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, invoke
from wmrbench.results.records import RECORDS_NAME, read_summary, write_summary

pytestmark = pytest.mark.slow  # 34 s measured for the module on the loaded 2-core machine: its fixture trains the digits runs, attacks and builds the page; each test then takes under 1 s in Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
EVIL_RUN = "evil<img src=x onerror=window.__pwned=1>"
EVIL_ARCH = "<script>window.__pwned = 2</script>"
# The gallery's perturbation canvas against 0.5 + (adversarial - clean) * scale recomputed from the
# strips: [largest difference, spread of the drawn values] (the page's script is not reused).
PERTURBATION_CHECK = """
var canvas = arguments[0], table = canvas.closest('table'), w = canvas.width, h = canvas.height;
var tile = Number(canvas.dataset.tile), scales = canvas.dataset.scales.split(' ').map(Number);
function pixels(img) { var c = document.createElement('canvas'); c.width = w; c.height = h;
  var x = c.getContext('2d'); x.drawImage(img, 0, 0, w, h); return x.getImageData(0, 0, w, h).data; }
var a = pixels(table.querySelector('img.clean')), b = pixels(table.querySelector('img.adversarial'));
var got = canvas.getContext('2d').getImageData(0, 0, w, h).data, worst = 0, lo = 255, hi = 0;
for (var i = 0; i < w * h; i++) { var x = i % w; if (x % tile === tile - 1) continue;
  var want = Math.min(255, Math.max(0, 127.5 + (b[4 * i] - a[4 * i]) * scales[Math.floor(x / tile)]));
  worst = Math.max(worst, Math.abs(got[4 * i] - want)); lo = Math.min(lo, got[4 * i]); hi = Math.max(hi, got[4 * i]); }
return [worst, hi - lo];
"""
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


def artifacts() -> Path:
    where = Path(os.environ.get("WMRBENCH_TEST_ARTIFACTS") or REPO / "test-artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (uv sync installs the dev group)"
    for path, package in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} not found: apt-get install -y {package}"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    missing = _missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser tests must run in CI: {missing}")
        print(f"skipping the browser tests: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(digits_results: Path, digits_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the real digits results, plus `attack`'s points for one of them (its gallery)
    and a result whose run folder and architecture hold HTML and script."""
    root = tmp_path_factory.mktemp("browser")
    results = Path(shutil.copytree(digits_results, root / "results"))
    out = invoke("attack", "--checkpoint", digits_runs["trades-a2"], "--n-examples", "60", "--steps", "3",
                 "--alpha-test", "0,1,2", "--results-dir", results, "--run", "trades-a2", "--quiet")
    assert out.exit_code == 0, out.output
    summary = read_summary(results / "trades-a0" / "summary.json")
    (results / EVIL_RUN).mkdir()
    shutil.copy(results / "trades-a0" / RECORDS_NAME, results / EVIL_RUN / RECORDS_NAME)
    write_summary(results / EVIL_RUN / "summary.json",
                  dataclasses.replace(summary, model=dataclasses.replace(summary.model, arch=EVIL_ARCH)))
    out = invoke("report", results, "--output", root / "report.html", "--quiet")
    assert out.exit_code == 0, out.output
    return root / "report.html"


def _open(browser, page: Path, fragment: str = ""):
    # Leave the start page (chromium's new-tab page loads chrome:// resources of its own), then
    # start each test with empty logs: what is logged next is this page's.
    browser.get("about:blank")
    browser.get_log("browser"), browser.get_log("performance")
    browser.get(page.as_uri() + fragment)
    return browser


def _rows(browser) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#board tbody tr")


def test_loads_offline_with_no_console_error_and_no_network_request(browser, page: Path) -> None:
    _open(browser, page)
    assert browser.find_element("id", "shown-count").text == "3 of 3 rows"  # the script ran
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    requested = [json.loads(e["message"])["message"]["params"]["request"]["url"] for e in browser.get_log("performance")
                 if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
    browser.save_screenshot(str(artifacts() / "report-leaderboard.png"))


def test_a_script_in_a_name_does_not_run(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page)
    assert browser.execute_script("return window.__pwned === undefined")
    names = [r.find_elements(By.TAG_NAME, "td")[2].text for r in _rows(browser)]
    assert any(EVIL_RUN in n for n in names)  # shown as text
    assert any(EVIL_ARCH == r.find_elements(By.TAG_NAME, "td")[5].text for r in _rows(browser))


def test_sorting_by_a_column_changes_the_order(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page)
    header = browser.find_element(By.XPATH, "//table[@id='board']/thead//th[text()='A_sa(2)']")
    col = int(header.get_attribute("data-col"))

    def column() -> list[float]:
        return [float(r.find_elements(By.TAG_NAME, "td")[col].get_attribute("data-sort")) for r in _rows(browser)]

    def names() -> list[str]:
        return [r.get_attribute("data-row") for r in _rows(browser)]

    header.click()
    best_first = names()
    assert column() == sorted(column(), reverse=True)
    header.click()
    assert column() == sorted(column())
    assert names() != best_first  # the order changed (the digits runs differ on A_sa(2))


def test_the_filter_and_the_search_hide_rows(browser, page: Path) -> None:
    from selenium.webdriver.support.ui import Select

    _open(browser, page)
    Select(browser.find_element("css selector", "select[name=defense]")).select_by_visible_text("TRADES+ours")
    shown = [r for r in _rows(browser) if r.is_displayed()]
    assert [r.find_elements("tag name", "td")[4].text for r in shown] == ["TRADES+ours"]
    assert browser.find_element("id", "shown-count").text == "1 of 3 rows"
    Select(browser.find_element("css selector", "select[name=defense]")).select_by_index(0)
    browser.find_element("id", "search").send_keys("evil")
    assert len([r for r in _rows(browser) if r.is_displayed()]) == 1


def test_a_result_page_opens_and_its_gallery_images_decode(browser, page: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, page)
    link = browser.find_element(By.LINK_TEXT, "trades-a2")
    target = link.get_attribute("href").split("#", 1)[1]
    section = browser.find_element(By.ID, target)
    assert not section.is_displayed()
    link.click()
    assert section.is_displayed() and "wmrbench rerun" in section.text
    # One strip per kind (clean, adversarial): 16 square tiles, each and a 1-pixel gap.
    images = section.find_elements(By.CSS_SELECTOR, ".gallery img")
    assert len(images) == 2
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalHeight > 0 "
                                      "&& arguments[0].naturalWidth === 16 * (arguments[0].naturalHeight + 1)", i) for i in images)
    # The perturbation row, drawn by the page's script: 0.5 + (adversarial - clean) * each tile's
    # scale, recomputed here from the two decoded strips (at most 1 off: rounding).
    canvas = section.find_element(By.CSS_SELECTOR, ".gallery canvas.perturbation")
    WebDriverWait(browser, 10).until(lambda _: canvas.get_attribute("data-drawn") == "1")
    worst, spread = browser.execute_script(PERTURBATION_CHECK, canvas)
    assert worst <= 1 and spread > 50
    assert "These 16 examples carry" in section.text and "adversarial.pt" in section.text
    png = base64.b64decode(browser.get_screenshot_as_base64())
    (artifacts() / "report-gallery.png").write_bytes(png)
    browser.find_element(By.LINK_TEXT, "← leaderboard").click()
    assert not section.is_displayed()
