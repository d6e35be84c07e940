"""`plot`: PNG and SVG figures of the metrics against alpha_test and of the attacker's weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
def test_plot_writes_png_and_svg(digits_results: Path, tmp_path: Path) -> None:
    results = Path(shutil.copytree(digits_results, tmp_path / "results"))
    out = invoke("plot", results)
    assert out.exit_code == 0, out.output
    plots = results / "plots"
    names = sorted(p.name for p in plots.iterdir())
    assert names == [
        "metrics-digits.png", "metrics-digits.svg",
        "weights-trades-a0.png", "weights-trades-a0.svg", "weights-trades-a2.png", "weights-trades-a2.svg",
    ]
    for png in plots.glob("*.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000  # a drawn figure, not an empty canvas
    for svg in plots.glob("*.svg"):
        text = svg.read_text()
        assert "<svg" in text and "</svg>" in text
    assert "trades-a2" in (plots / "metrics-digits.svg").read_text()  # the legend names the models
    first = {p.name: p.read_bytes() for p in plots.glob("*.svg")}
    assert invoke("plot", results).exit_code == 0
    assert {p.name: p.read_bytes() for p in plots.glob("*.svg")} == first  # no dates, fixed ids


def test_plot_one_run_into_a_folder(digits_results: Path, tmp_path: Path) -> None:
    out = invoke("plot", digits_results, "--run", "trades-a2", "--output-dir", tmp_path / "figs")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "metrics-digits.png", "metrics-digits.svg", "weights-trades-a2.png", "weights-trades-a2.svg"]
    out = invoke("plot", digits_results, "--run", "nope", "--output-dir", tmp_path / "other")
    assert out.exit_code == 2 and "no result named nope" in out.stderr
    assert not (tmp_path / "other").exists()


def test_plot_file_names_never_map_two_results_to_one_file() -> None:
    from wmrbench.report.plots import _safe_name

    names = ["x&1", "x%1", "x_1", "x 1", "é1", ".hidden", "plain-name.v2"]
    files = [_safe_name(n) for n in names]
    assert len(set(files)) == len(names), files
    assert _safe_name("plain-name.v2") == "plain-name.v2"  # a plain name stays as it is
    assert all(f and not f.startswith(".") and "/" not in f for f in files)


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU: two results' figures drawn
def test_two_results_whose_names_differ_only_in_replaced_characters_get_two_plots(digits_results: Path,
                                                                                   tmp_path: Path) -> None:
    results = tmp_path / "results"
    for name in ("x&1", "x%1"):
        shutil.copytree(digits_results / "trades-a0", results / name)
    out = invoke("plot", results)
    assert out.exit_code == 0, out.output
    weights = sorted(p.name for p in (results / "plots").glob("weights-*.png"))
    assert len(weights) == 2, weights


def test_panel_titles_read_as_phrases() -> None:
    from wmrbench.report.plots import PANELS

    for attack, weighted in (("PGD", "weighted PGD"), ("the uniform attack", "the weighted attack")):
        titles = [title.format(attack=attack, weighted=weighted) for _, title in PANELS]
        assert titles[0] == f"A_rob: accuracy under {attack}" and titles[2] == f"A_tr: accuracy under {weighted}"
        assert not any("weighted the" in t or "unweighted the" in t or "weighted weighted" in t for t in titles)
