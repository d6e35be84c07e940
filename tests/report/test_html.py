"""`wmrbench report`: the HTML page built from real results (the digits runs' evaluate outputs),
its leaderboard data (ties, ranks, group rows), the gallery's files, and bad input."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import assert_one_line_error, invoke
from wmrbench.results.metrics import normalized_weights
from wmrbench.results.points import EXAMPLES_NAME, DecidingExamples, load_examples, save_examples
from wmrbench.results.records import RECORDS_NAME, read_records, read_summary, write_summary
from wmrbench.report.board import A_ROB, Cell, Column, Row, RowKind, build_board, group_row, mark_ties
from wmrbench.report.gallery import gallery, png_data_url
from wmrbench.report.html import ReportConfig, build_report, eps_sweep, render_page

EVIL = "<script>window.__pwned = 1</script>"


@pytest.fixture()
def results(digits_results: Path, tmp_path: Path) -> Path:
    """A private copy of the real digits results (tests add and break files in it)."""
    return Path(shutil.copytree(digits_results, tmp_path / "results"))


def _row(i: int, value: float, lo: float | None, hi: float | None, dataset: str = "mnist") -> Row:
    return Row(f"r{i}", RowKind.RESULT, f"run{i}", dataset, "TRADES", "smallcnn", "PGD", "Linf 0.3", {}, "not run",
               {A_ROB: Cell(value, lo, hi)}, 100)


def test_ties_with_the_leader_follow_the_intervals() -> None:
    rows = [_row(0, 60.0, 55.0, 65.0), _row(1, 57.0, 52.0, 62.0), _row(2, 40.0, 35.0, 45.0),
            _row(3, 30.0, 25.0, 35.0, dataset="cifar10")]
    marked = {r.name: r for r in mark_ties(rows, [Column("A_rob")])}
    assert marked["run0"].cells[A_ROB].leader and marked["run0"].rank == "1"
    assert marked["run1"].cells[A_ROB].tied and marked["run1"].rank == "=1"  # [52, 62] overlaps [55, 65]
    assert not marked["run2"].cells[A_ROB].tied and marked["run2"].rank == "3"
    # Another data set is another ranking: its only row leads it.
    assert marked["run3"].cells[A_ROB].leader and marked["run3"].rank == "1"
    # Without intervals only an equal value ties.
    bare = mark_ties([_row(0, 60.0, None, None), _row(1, 59.9, None, None)], [Column("A_rob")])
    assert not bare[1].cells[A_ROB].tied


def test_a_group_row_holds_its_runs_and_its_own_interval() -> None:
    members = [_row(0, 60.0, 55.0, 65.0), _row(1, 58.0, 53.0, 63.0)]
    group = group_row("g0", "TRADES (2 seeds)", members, {A_ROB: Cell(59.0, 50.0, 68.0)})
    assert group.kind is RowKind.GROUP and group.members == ("run0", "run1")
    assert group.cells[A_ROB].lo == 50.0 and group.dataset == "mnist"
    with pytest.raises(ValueError):
        group_row("g1", "empty", [], {})
    # On the page a group is one row naming its runs, beside the results' rows.
    board = build_board([], groups=[group])
    html = render_page(board, [], "t", ["results"], [])
    assert 'data-kind="group"' in html and "group of 2: run0, run1" in html and "59.00" in html and "[50.00, 68.00]" in html


def test_the_page_holds_every_result_and_fetches_nothing(results: Path, tmp_path: Path) -> None:
    out = invoke("report", results, "--output", tmp_path / "report.html", "--quiet")
    assert out.exit_code == 0, out.output
    html = (tmp_path / "report.html").read_text()
    for run in ("trades-a0", "trades-a2"):
        summary = read_summary(results / run / "summary.json")
        assert f">{run}</a>" in html and f"{summary.metrics.A_sa[2.0]:.2f}" in html
    assert html.count('class="page" id="page-') == 2
    # Self-contained: no URL the browser would fetch (images are data: URLs, the script inline).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "default-src 'none'" in html and "<link" not in html
    # Without examples.pt or adversarial.pt, the page names the deciding examples and says how to see them.
    assert "no images kept" in html and "--keep-examples 16" in html


def test_names_and_settings_are_escaped(results: Path, tmp_path: Path) -> None:
    summary = read_summary(results / "trades-a2" / "summary.json")
    model = dataclasses.replace(summary.model, arch=EVIL)
    evil_dir = results / "x<img src=y onerror=alert(1)>"
    evil_dir.mkdir()
    shutil.copy(results / "trades-a2" / RECORDS_NAME, evil_dir / RECORDS_NAME)
    write_summary(evil_dir / "summary.json", dataclasses.replace(summary, model=model))
    built = build_report(ReportConfig((str(results),), str(tmp_path / "r.html"), show_progress=False))
    html = built.path.read_text()
    assert built.results == 3
    assert EVIL not in html and "<img src=y" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the page's own


def test_bad_input_ends_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = invoke("report", tmp_path / "empty", "--output", tmp_path / "r.html")
    assert_one_line_error(out, "no summary.json under")
    assert not (tmp_path / "r.html").exists()
    out = invoke("report", tmp_path / "missing", "--output", tmp_path / "r.html")
    assert_one_line_error(out, "results folder not found")
    (tmp_path / "adir").mkdir()
    out = invoke("report", tmp_path / "empty", "--output", tmp_path / "adir")  # refused before any work
    assert_one_line_error(out)
    out = invoke("report", tmp_path / "empty", "--examples", "0", "--output", tmp_path / "r.html")
    assert_one_line_error(out, "at least 1 example")


def test_missing_records_old_schema_and_a_damaged_image_file_still_render(results: Path, tmp_path: Path) -> None:
    (results / "trades-a0" / RECORDS_NAME).unlink()  # a summary copied without its records
    old = json.loads((results / "trades-a2" / "summary.json").read_text())
    old.pop("uncertainty"), old.pop("records_sha256")
    old["schema"] = 1  # written before intervals existed: they come from the records
    (results / "trades-a2" / "summary.json").write_text(json.dumps(old))
    (results / "trades-a2" / EXAMPLES_NAME).write_bytes(b"not a torch file")
    built = build_report(ReportConfig((str(results),), str(tmp_path / "r.html"), show_progress=False))
    html = built.path.read_text()
    assert built.results == 2
    assert "no records.csv beside this result" in html
    assert "images not shown" in html and "examples file" in html
    summary = read_summary(results / "trades-a2" / "summary.json")
    assert f"{summary.metrics.A_rob:.2f}" in html and "n_eff" in html  # intervals computed from the records


def _examples(tmp_path: Path, records_sha256: str = "") -> DecidingExamples:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g)
    return DecidingExamples("run", 2.0, 60, torch.tensor([5, 7, 9]), torch.tensor([1, 2, 3]), torch.tensor([4, 2, -1]),
                            x, (x + 0.05).clamp(0, 1), torch.tensor([-0.5, -0.4, -0.3]),
                            torch.tensor([0.2, 0.1, 0.05], dtype=torch.float64), records_sha256=records_sha256)


def test_examples_file_round_trip_and_refusals(tmp_path: Path) -> None:
    path = save_examples(tmp_path / EXAMPLES_NAME, _examples(tmp_path, "a" * 64))
    back = load_examples(path)
    assert back.index.tolist() == [5, 7, 9] and back.records_sha256 == "a" * 64
    assert abs(back.total_share - 0.35) < 1e-12 and torch.equal(back.x, _examples(tmp_path).x)
    torch.save({"format": "wmrbench-examples-v1", "run": "r"}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="not a wmrbench examples file"):
        load_examples(tmp_path / "bad.pt")


def test_the_gallery_reads_examples_and_rejects_another_evaluations(results: Path) -> None:
    folder = results / "trades-a2"
    summary = read_summary(folder / "summary.json")
    save_examples(folder / EXAMPLES_NAME, _examples(folder, summary.records_sha256))
    shown = gallery(folder, summary, 16)
    assert [f.index for f in shown.figures] == [5, 7, 9] and shown.source == EXAMPLES_NAME
    assert shown.figures[0].pred == "4" and shown.figures[2].pred == "not 3"
    # One strip per kind, tile i being figure i: the 3 examples' 8x8 images side by side
    # (a white 1-pixel column after each), exact.
    strips, kept = shown.strips, _examples(folder)
    assert strips is not None and (strips.width, strips.height) == (8, 8)
    for url, images in ((strips.clean, kept.x), (strips.adversarial, kept.x_adv)):
        assert url.startswith(("data:image/webp;base64,", "data:image/png;base64,"))
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))
        tiles = [(x[0].numpy() * 255 + 0.5).astype(np.uint8) for x in images]
        assert np.array_equal(decoded, np.concatenate([p for t in tiles for p in (t, np.full((8, 1), 255, np.uint8))], axis=1))
    # No perturbation image (the page draws it from the two): each figure's scale maps its peak
    # |delta| (0.05 here) to 0.5.
    assert [round(f.scale, 4) for f in shown.figures] == [10.0, 10.0, 10.0]

    save_examples(folder / EXAMPLES_NAME, _examples(folder, "b" * 64))
    stale = gallery(folder, summary, 16)
    assert stale.source == "" and "another evaluation" in stale.note
    # Named from the records instead: the k lowest margins, their shares of the weight at alpha 2.
    records = read_records(folder / RECORDS_NAME)
    share = normalized_weights(records["pgd_margin"].to_numpy(), 2.0)
    assert [f.index for f in stale.figures] == records["index"].to_numpy()[np.argsort(-share, kind="stable")[:16]].tolist()


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_images_are_exact(fmt: str) -> None:
    """Lossless: the page's pixels are the file's (to 8 bits), grey or colour."""
    g = torch.Generator().manual_seed(1)
    for shape in ((1, 8, 8), (3, 5, 7)):
        image = torch.rand(*shape, generator=g)
        url = png_data_url(image, fmt)
        assert url.startswith(f"data:image/{fmt.lower()};base64,")
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB" if shape[0] == 3 else "L"))
        expected = (image.numpy() * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(decoded, expected[0] if shape[0] == 1 else expected.transpose(1, 2, 0))

def test_evaluate_keeps_the_examples_that_decide_a_sa(digits_runs: dict[str, Path], tmp_path: Path) -> None:
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--n-examples", "60", "--steps", "3",
                 "--alpha-test", "0,2", "--results-dir", tmp_path, "--quiet", "--keep-examples", "5")
    assert out.exit_code == 0, out.output
    folder = tmp_path / "trades-a2"
    kept = load_examples(folder / EXAMPLES_NAME)
    records = read_records(folder / RECORDS_NAME)
    share = normalized_weights(records["pgd_margin"].to_numpy(), 2.0)
    order = np.argsort(-share, kind="stable")[:5]
    assert kept.alpha == 2.0 and kept.n_examples == 60
    assert kept.index.tolist() == records["index"].to_numpy()[order].tolist()
    assert np.allclose(kept.share.numpy(), share[order])
    # The kept points are the records' points: a misclassified one is predicted as another class.
    wrong = ~records["pgd_correct"].to_numpy()[order].astype(bool)
    assert all((kept.pred[wrong] != kept.label[wrong]).tolist())
    assert float((kept.x_adv - kept.x).abs().max()) <= read_summary(folder / "summary.json").config.attack.eps + 1e-6
    assert kept.records_sha256 == read_summary(folder / "summary.json").records_sha256
    # Evaluated again without the option, the old examples go (they would not be this result's).
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--n-examples", "60", "--steps", "3",
                 "--alpha-test", "0,2", "--results-dir", tmp_path, "--quiet", "--overwrite")
    assert out.exit_code == 0, out.output
    assert not (folder / EXAMPLES_NAME).exists()
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--keep-examples", "0", "--results-dir", tmp_path)
    assert_one_line_error(out, "--keep-examples 0")


def test_eps_sweep_from_an_audit_document() -> None:
    doc = {"config": {"base": {"attack": {"eps": 0.1, "steps": 3, "restarts": 1}}},
           "stages": {"pgd-s3-r1": {"A_rob": 60.0, "A_sa@2": 40.0}, "pgd-eps0.2": {"A_rob": 20.0, "A_sa@2": 10.0},
                      "pgd-eps0.3": {"A_rob": 0.0, "A_sa@2": 0.0}, "square": {"A_rob": 61.0}}}
    svg = str(eps_sweep("r0", doc))
    assert svg.startswith("<svg") and svg.count('class="series"') == 2 and "A_sa(2)" in svg
    assert eps_sweep("r0", {"stages": {}}) is None and eps_sweep("r0", None) is None


def _as_seed(results: Path, source: str, name: str, seed: int) -> None:
    """A copy of a real result under the name ``name``, recorded as trained with ``seed``."""
    summary = read_summary(results / source / "summary.json")
    model = dataclasses.replace(summary.model, train_config={**(summary.model.train_config or {}), "seed": seed})
    (results / name).mkdir()
    shutil.copy(results / source / RECORDS_NAME, results / name / RECORDS_NAME)
    write_summary(results / name / "summary.json", dataclasses.replace(summary, run=name, model=model))


def test_training_seeds_of_one_method_show_as_one_group_row(results: Path, tmp_path: Path) -> None:
    _as_seed(results, "trades-a0", "m-s0", 0)
    _as_seed(results, "trades-a0", "m-s1", 1)
    _as_seed(results, "trades-a0", "x-s0", 0)  # x's two "seeds" are two methods: never one group
    _as_seed(results, "trades-a2", "x-s1", 1)
    built = build_report(ReportConfig((str(results),), str(tmp_path / "r.html"), show_progress=False))
    html = built.path.read_text()
    a_rob = read_summary(results / "trades-a0" / "summary.json").metrics.A_rob
    row = re.search(r'<tr id="row-g0"[^>]*data-kind="group">(.*?)</tr>', html, flags=re.S)
    assert row is not None and "m (2 seeds)" in row.group(1) and "group of 2: m-s0, m-s1" in row.group(1)
    assert f"{a_rob:.2f}" in row.group(1)  # the mean of two runs with the same records
    assert html.count('data-kind="group"') == 1
    assert any(w.startswith("x: its seeds are not shown as a group") and "alpha" in w for w in built.warnings)
