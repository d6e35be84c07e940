"""The HTML report at scale: file size, build time and open time in headless Chromium.

A results folder of N results (default 200) x 7 alpha_test values, each a real summary.json
(wmrbench's own summarize: metrics, 2,000-resample intervals, n_eff) of synthetic records of
`--examples` MNIST-shaped examples, with an examples.pt of 16 deciding examples (28x28 images),
so every result's page holds a gallery. Then:

* build: `wmrbench.report.html.build_report` (what `wmrbench report` runs), median of the repeats;
* size: the page's bytes;
* open: headless Chromium (Debian's chromium + chromium-driver, through selenium) loads the page
  from file://; the time is the page's own `loadEventEnd - startTime` (Navigation Timing), median
  of the repeats, and the console is checked for errors.

The targets (issue: under 5 MB, opens in under 2 s, builds in under 10 s) are printed beside
the numbers. Measure on a quiet machine: a shared, loaded CPU measures the load.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from _common import command_line, environment, median, parser, print_table, write_result

import numpy as np
import pandas as pd
import torch

from wmrbench.core.config import DatasetName
from wmrbench.evaluation.pipeline import summarize
from wmrbench.results.points import EXAMPLES_NAME, DecidingExamples, deciding_order, save_examples
from wmrbench.core.presets import eval_config
from wmrbench.results.records import ModelInfo, write_summary
from wmrbench.report.html import ReportConfig, build_report

ALPHAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
TARGETS = {"bytes": 5e6, "open_s": 2.0, "build_s": 10.0}


def records(n: int, seed: int) -> pd.DataFrame:
    """Records shaped like a robust MNIST model's (random margins, a per-result robustness)."""
    rng = np.random.default_rng(seed)
    margin = np.clip(rng.normal(0.4 + 0.4 * rng.random(), 0.35, n), -1, 1)
    # The same test examples for every result (labels from one fixed seed): the pages' paired comparisons run.
    columns = {"index": np.arange(n), "label": np.random.default_rng(12345).integers(0, 10, n), "clean_correct": rng.random(n) < 0.99,
               "clean_margin": rng.uniform(0, 1, n), "pgd_correct": margin > 0, "pgd_margin": margin}
    for alpha in ALPHAS:
        weighted = np.clip(margin - rng.uniform(0, 0.1, n), -1, 1)
        columns[f"tr_correct@{alpha:g}"], columns[f"tr_margin@{alpha:g}"] = weighted > 0, weighted
    return pd.DataFrame(columns)


def image_source(mnist_dir: str | None) -> torch.Tensor | None:
    """Real MNIST test images in [0, 1] where the files are there (the gallery's PNGs then
    compress as real ones do), else None (random images: the worst case for PNG)."""
    if not mnist_dir or not Path(mnist_dir).is_dir():
        return None
    from wmrbench.data import load_split

    data = load_split(DatasetName.MNIST, mnist_dir, train=False)
    return data.images(torch.arange(min(len(data), 4096)))


def make_results(root: Path, n_results: int, n_examples: int, keep: int, images: torch.Tensor | None) -> None:
    for i in range(n_results):
        run = f"run-{i:03d}"
        defense = ("trades", "pgd")[i % 2]
        cfg = eval_config(DatasetName.MNIST, run, alpha_test=ALPHAS, n_examples=n_examples, results_dir=str(root))
        info = ModelInfo(name=run, source="checkpoint", arch="smallcnn", defense=defense, alpha_train=float(i % 3),
                         beta=6.0 if defense == "trades" else None, checkpoint=f"checkpoints/{run}/last.pt")
        frame = records(n_examples, i)
        done = summarize(frame, cfg, info, 1.0)
        folder = root / run
        folder.mkdir(parents=True)
        (folder / "records.csv").write_text(done.csv_text)
        write_summary(folder / "summary.json", done.summary)
        if keep == 0:  # results evaluated without --keep-examples: their pages list the examples, no images
            continue
        order, share = deciding_order(frame["pgd_margin"].to_numpy(), max(ALPHAS), keep)
        g = torch.Generator().manual_seed(i)
        if images is None:
            x = torch.rand(keep, 1, 28, 28, generator=g)
        else:
            x = images[torch.randint(0, len(images), (keep,), generator=g)]
        # PGD at eps 0.3 ends on the ball's corners for most pixels: a signed perturbation.
        x_adv = (x + 0.3 * torch.sign(torch.randn(keep, 1, 28, 28, generator=g))).clamp(0, 1)
        save_examples(folder / EXAMPLES_NAME, DecidingExamples(
            run, max(ALPHAS), n_examples, torch.as_tensor(order), torch.as_tensor(frame["label"].to_numpy()[order]),
            torch.randint(0, 10, (keep,), generator=g), x, x_adv, torch.as_tensor(frame["pgd_margin"].to_numpy()[order]).float(),
            torch.as_tensor(share[order]), records_sha256=done.summary.records_sha256 or ""))


def open_in_chromium(page: Path, repeats: int) -> tuple[list[float], list[str]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="wmrbench-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    times, errors = [], []
    try:
        for _ in range(repeats + 1):  # the first load warms the browser up; it is not counted
            driver.get("about:blank")
            driver.get(page.as_uri())
            seconds = driver.execute_script(
                "var e = performance.getEntriesByType('navigation')[0]; return (e.loadEventEnd - e.startTime) / 1000;")
            times.append(float(seconds))
            errors += [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return times[1:], errors


def main() -> None:
    p = parser("report", __doc__.splitlines()[0])
    p.add_argument("--results", type=int, default=None, help="results in the folder (default 200; --quick 20)")
    p.add_argument("--examples", type=int, default=1000, help="test examples per result (default 1,000)")
    p.add_argument("--keep", type=int, default=16, help="images kept per result's gallery (default 16; 0: no examples.pt, the pages list 16 examples without images)")
    p.add_argument("--mnist-dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"),
                   help="real MNIST files for the gallery's images (default ../shared/data/mnist; random images if absent)")
    args = p.parse_args()
    n_results = args.results or (20 if args.quick else 200)
    repeats = args.repeats or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="wmrbench-report-bench-") as tmp:
        root = Path(tmp) / "results"
        images = image_source(args.mnist_dir)
        make_results(root, n_results, args.examples, args.keep, images)
        out = Path(tmp) / "report.html"
        builds = []
        for _ in range(repeats):
            started = time.perf_counter()
            built = build_report(ReportConfig((str(root),), str(out), args.keep or 16, show_progress=False))
            builds.append(time.perf_counter() - started)
        opens, errors = open_in_chromium(out, repeats)
        html = out.read_text(encoding="utf-8")
        image_bytes = sum(len(m) for m in re.findall(r"data:image/(?:png|webp);base64,[A-Za-z0-9+/=]+", html))
    payload = {
        "command": command_line(), "environment": environment(torch.device("cpu")), "results": n_results,
        "alphas": len(ALPHAS), "examples": args.examples, "keep": args.keep, "images_from": "MNIST" if images is not None else "random", "bytes": built.bytes,
        "build_s": builds, "build_s_median": median(builds), "open_s": opens, "open_s_median": median(opens),
        "console_errors": errors, "images": html.count("data:image/"), "image_bytes": image_bytes, "targets": TARGETS,
    }
    print_table([{"results": n_results, "alphas": len(ALPHAS), "examples": args.examples,
                  "size (MB)": built.bytes / 1e6, "of which images (MB)": image_bytes / 1e6, "build (s)": median(builds), "open in Chromium (s)": median(opens),
                  "console errors": len(errors)}],
                f"wmrbench report: {n_results} results x {len(ALPHAS)} alphas (targets: under 5 MB, opens under 2 s, builds under 10 s)")
    write_result(args, "report", payload)
    print(json.dumps({k: payload[k] for k in ("bytes", "build_s_median", "open_s_median")}))


if __name__ == "__main__":
    main()
