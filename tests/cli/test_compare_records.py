"""``compare`` never reads broken records: a truncated or edited records.csv, or random content,
ends in one line and exit 2 with nothing written; records no summary.json verifies are flagged;
equal numbers read "no difference"; ``--output -`` prints; alphas only one result has are named.

The results are real ``wmrbench evaluate`` outputs (a digits model, a short attack), fuzzed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_one_line_error, files_under, invoke
from wmrbench.core.errors import WmrbenchError
from wmrbench.results.records import read_records

# three evaluations of 40 digits (8 s) and about 150 compare runs over cut records: 23 s measured
# on the loaded 2-core machine; the checks themselves are unit-tested in tests/results/test_records.py
pytestmark = pytest.mark.slow


def model_a() -> torch.nn.Module:
    from wmrbench.models import create_model

    torch.manual_seed(0)
    return create_model("digitsnet", 10, 1).eval()


def model_b() -> torch.nn.Module:
    from wmrbench.models import create_model

    torch.manual_seed(1)
    return create_model("digitsnet", 10, 1).eval()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a, b: two models on the same 40 digits at alpha_test 1,2; c: model b at alpha_test 1,1.5."""
    root = tmp_path_factory.mktemp("compare-records")
    for run, factory, alphas in (("a", "model_a", "1,2"), ("b", "model_b", "1,2"), ("c", "model_b", "1,1.5")):
        out = invoke("evaluate", "--model", f"{__name__}:{factory}", "--dataset", "digits", "--n-examples", "40",
                     "--steps", "2", "--alpha-test", alphas, "--results-dir", root, "--run", run, "--quiet")
        assert out.exit_code == 0, out.output
    return root


def _copy(results: Path, run: str, to: Path, summary: bool = True) -> Path:
    folder = to / run
    folder.mkdir(parents=True)
    (folder / "records.csv").write_bytes((results / run / "records.csv").read_bytes())
    if summary:
        (folder / "summary.json").write_bytes((results / run / "summary.json").read_bytes())
    return folder


def _compare(a: Path, b: Path, *extra: str):
    return invoke("compare", a, b, *extra)


def test_truncated_records_are_refused_or_flagged(results, tmp_path):
    """Every cut of records.csv: with its summary.json, refused (the hash); without, refused
    (a half row, other examples) or, where the cut leaves a whole file of shorter numbers,
    compared with a warning that nothing verifies them. Never NaN, never a silent number."""
    text = (results / "a" / "records.csv").read_bytes()
    rng = random.Random(0)
    cuts = sorted({*range(len(text) - 40, len(text)), *(rng.randrange(1, len(text)) for _ in range(25)), 1, 10})
    b = _copy(results, "b", tmp_path / "ok")
    flagged = 0
    for cut in cuts:
        for summary in (True, False):
            work = tmp_path / f"cut-{cut}-{summary}"
            a = _copy(results, "a", work, summary)
            (a / "records.csv").write_bytes(text[:cut])
            out = _compare(a, b, "--output", work / "table.md")
            if summary or out.exit_code != 0:
                assert_one_line_error(out)
                assert "nan" not in out.stderr.lower()
                assert not (work / "table.md").exists(), cut
            else:
                flagged += 1
                assert "nothing verifies them" in out.stderr and "nan" not in out.stdout.lower(), (cut, out.output)
    assert flagged  # the case the warning is for was reached


@pytest.mark.parametrize(("edit", "fragment"), [
    ("margin", "has pgd_correct 0 with pgd_margin 0.5 (correct exactly where the margin is > 0)"),
    ("correct", "has clean_correct 2, not 0 or 1"),
    ("empty", "has no valid tr_margin@2"),
    ("index", "is recorded twice"),
    ("huge", "has no valid clean_margin ('inf')"),
    ("text", "has no valid label"),
])
def test_edited_records_are_refused_by_line(edit, fragment, results, tmp_path):
    a = _copy(results, "a", tmp_path, summary=False)
    lines = (a / "records.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    if edit == "margin":
        row[header.index("pgd_correct")], row[header.index("pgd_margin")] = "0", "0.5"
    elif edit == "correct":
        row[header.index("clean_correct")] = "2"
    elif edit == "empty":
        row[header.index("tr_margin@2")] = ""
    elif edit == "index":
        row[header.index("index")] = lines[2].split(",")[header.index("index")]
    elif edit == "huge":
        row[header.index("clean_margin")] = "inf"
    else:
        row[header.index("label")] = "seven"
    lines[3] = ",".join(row)
    (a / "records.csv").write_text("\n".join(lines) + "\n")
    line = assert_one_line_error(_compare(a, results / "b", "--output", tmp_path / "t.md"), fragment)
    assert "line 4" in line or edit == "index"
    assert not (tmp_path / "t.md").exists()
    with pytest.raises(WmrbenchError, match="is damaged"):
        read_records(a / "records.csv")


def test_random_content_as_records_is_one_line(results, tmp_path):
    """Random bytes, text and shuffled cells: one line and exit 2, or (a shuffle that stays
    consistent) a comparison flagged as unverified."""
    rng = random.Random(1)
    text = (results / "a" / "records.csv").read_text()
    lines = text.splitlines()
    cases = {f"bytes-{n}": rng.randbytes(n) for n in (1, 50, 3000)}
    cases["text"] = b"not,a,records\nfile,at,all\n"
    cases["header-only"] = (lines[0] + "\n").encode()
    for k in range(12):
        cells = [line.split(",") for line in lines[1:]]
        r, c = rng.randrange(len(cells)), rng.randrange(len(cells[0]))
        cells[r][c] = rng.choice(["", "-1", "1e308", "nan", "inf", "0", "1", "x", "0.99", "-0.99"])
        cases[f"cell-{k}"] = ("\n".join([lines[0], *(",".join(row) for row in cells)]) + "\n").encode()
    for name, content in cases.items():
        work = tmp_path / name
        a = _copy(results, "a", work, summary=False)
        (a / "records.csv").write_bytes(content)
        out = _compare(a, results / "b", "--output", work / "t.md")
        if out.exit_code != 0:
            assert_one_line_error(out)
            assert not (work / "t.md").exists(), name
        else:
            assert "nothing verifies them" in out.stderr and "nan" not in out.stdout.lower(), name


def test_same_results_read_no_difference_and_output_dash_prints(results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _compare(results / "a", results / "a", "--output", "-")
    assert out.exit_code == 0, out.output
    assert not Path("-").exists() and files_under(tmp_path) == set()
    assert out.stdout.startswith("A = ") and "| verdict" in out.stdout
    assert "higher" not in out.stdout and out.stdout.count("no difference") >= 5
    csv = _compare(results / "a", results / "b", "--output", "-", "--format", "csv")
    assert csv.exit_code == 0 and csv.stdout.startswith("Metric,alpha_test,A,B,A - B,")


def test_alphas_only_one_result_has_are_named(results, tmp_path):
    out = _compare(results / "a", results / "c", "--output", tmp_path / "t.md")
    assert out.exit_code == 0, out.output
    assert "Warning: A_tr at alpha_test 2 only in a: not compared" in out.stderr
    assert "Warning: A_tr at alpha_test 1.5 only in c: not compared" in out.stderr
    assert "Note: A_tr at alpha_test 2 only in a: not compared" in (tmp_path / "t.md").read_text()
    summary = json.loads((results / "a" / "summary.json").read_text())
    assert summary["records_sha256"]  # the records compared here are verified: no such warning
    assert "nothing verifies" not in out.stderr
