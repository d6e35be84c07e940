"""How files are made: corrupt data files are named, bad summaries
are skipped with a warning, messages never invite unsafe steps, files get the user's umask."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest
import torch

from tests.conftest import MNIST_DIR, ZOO_ID, assert_one_line_error, invoke

OFFLINE = {"HF_HUB_OFFLINE": "1", "NO_PROXY": "*", "HTTPS_PROXY": "http://127.0.0.1:9"}


# --- 10. corrupt data files ----------------------------------------------------------------------


def _write_idx(path: Path, dims: list[int]) -> None:
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(header + bytes(int(torch.tensor(dims).prod())))


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A small, well-formed MNIST test split in torchvision's raw layout."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k", "train"):  # torchvision's reader wants both splits' files
        _write_idx(raw / f"{stem}-images-idx3-ubyte", [20, 28, 28])
        _write_idx(raw / f"{stem}-labels-idx1-ubyte", [20])
    return tmp_path / "data"


def _evaluate_mnist(data_dir: Path, tmp_path: Path):
    return invoke("evaluate", "--model", f"{__name__}:tiny_mnist_model", "--dataset", "mnist",
                  "--data-dir", data_dir, "--n-examples", "5", "--steps", "1", "--results-dir", tmp_path / "results",
                  "--device", "cpu", "--quiet")


def tiny_mnist_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))


def test_a_well_formed_small_mnist_loads(mnist_dir, tmp_path):
    out = _evaluate_mnist(mnist_dir, tmp_path)
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("which", ["images", "labels"])
def test_an_mnist_file_one_byte_short_is_named_with_what_is_wrong(which, mnist_dir, tmp_path):
    short = mnist_dir / "MNIST" / "raw" / f"t10k-{which}-idx{3 if which == 'images' else 1}-ubyte"
    short.write_bytes(short.read_bytes()[:-1])
    line = assert_one_line_error(_evaluate_mnist(mnist_dir, tmp_path), f"MNIST {which} file {short} is corrupt",
                                 "truncated", "delete it and pass --download")
    assert "not found" not in line
    assert not (tmp_path / "results").exists()


def test_a_missing_mnist_labels_file_names_the_labels_file(mnist_dir, tmp_path):
    labels = mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.unlink()
    line = assert_one_line_error(_evaluate_mnist(mnist_dir, tmp_path), f"MNIST not found: {labels} missing")
    assert "images" not in line


def test_mnist_files_that_disagree_are_named(mnist_dir, tmp_path):
    _write_idx(mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", [19])
    assert_one_line_error(_evaluate_mnist(mnist_dir, tmp_path), "holds 20 images", "19 labels")


def test_the_real_mnist_files_pass_the_check():
    from wmrbench.data.mnist import check_raw_files

    if not (MNIST_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip(f"real MNIST not found under {MNIST_DIR}")
    check_raw_files(str(MNIST_DIR), train=False)
    check_raw_files(str(MNIST_DIR), train=True)


# --- 11. a bad summary never breaks the others ---------------------------------------------------


def _copy_results(digits_results: Path, tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(digits_results, results, ignore=shutil.ignore_patterns("leaderboard-*", "plots", ".lock"))
    return results


BAD_SUMMARIES = {
    "alpha_train is text": (lambda s: s["model"].__setitem__("alpha_train", "two"), "model.alpha_train is 'two'"),
    "defense is a number": (lambda s: s["model"].__setitem__("defense", 5), "model.defense is 5"),
    "NaN metric": (None, "NaN is not a JSON number"),
    "another schema": (lambda s: s.__setitem__("schema", 99), "schema 99"),
    "alpha key is text": (lambda s: s["metrics"]["A_sa"].__setitem__("x", 1.0), "has the key 'x'"),
    "run is a path": (lambda s: s["config"].__setitem__("run", "../escape"), "is not a run name"),
    "not JSON": (None, "not valid JSON"),
}


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("case", sorted(BAD_SUMMARIES))
def test_a_bad_summary_is_skipped_with_a_warning_by_leaderboard_and_plot(case, tmp_path, digits_results):
    edit, words = BAD_SUMMARIES[case]
    results = _copy_results(digits_results, tmp_path)
    path = results / "trades-a2" / "summary.json"
    if case == "NaN metric":
        path.write_text(path.read_text().replace('"A_nat": ', '"A_nat": NaN, "was": ', 1))
    elif case == "not JSON":
        path.write_text(path.read_text()[:-20])
    else:
        summary = json.loads(path.read_text())
        edit(summary)
        path.write_text(json.dumps(summary))

    board = invoke("leaderboard", results)
    assert board.exit_code == 0, board.output
    assert "trades-a0" in board.stdout and "trades-a2" not in board.stdout
    warnings = [line for line in board.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and str(path) in warnings[0] and words in warnings[0], board.stderr

    plots = invoke("plot", results)
    assert plots.exit_code == 0, plots.output
    assert words in plots.stderr and (results / "plots" / "weights-trades-a0.png").is_file()
    assert not (results / "plots" / "weights-trades-a2.png").exists()


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_bad_records_cost_only_their_own_weights_plot(tmp_path, digits_results):
    results = _copy_results(digits_results, tmp_path)
    records = results / "trades-a2" / "records.csv"
    summary = json.loads((results / "trades-a2" / "summary.json").read_text())
    summary.pop("records_sha256", None)  # as an older wmrbench wrote it: no hash to check
    (results / "trades-a2" / "summary.json").write_text(json.dumps(summary))
    records.write_text(records.read_text().replace(",", ",x", 40))
    plots = invoke("plot", results)
    assert plots.exit_code == 0, plots.output
    assert "Warning: no weights plot for trades-a2" in plots.stderr
    assert (results / "plots" / "weights-trades-a0.png").is_file()


# --- 12. messages that never invite unsafe steps -------------------------------------------------


class Payload:
    """Unpickling this with a full unpickler would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_malicious_checkpoint_gets_wmrbench_s_refusal_not_torch_s_advice(zipped, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    if zipped:
        torch.save({"model": Payload(marker)}, evil)
    else:
        evil.write_bytes(pickle.dumps({"model": Payload(marker)}, protocol=2))
    out = invoke("evaluate", "--checkpoint", evil, "--arch", "digitsnet", "--dataset", "digits", "--device", "cpu",
                 "--results-dir", tmp_path / "results", "--quiet")
    line = assert_one_line_error(out, f"refusing to load Python objects from {evil} (posix.system)",
                                 "never runs code from a file")
    assert "weights_only" not in line and "trust" not in line
    assert not marker.exists() and not (tmp_path / "results").exists()


def test_a_corrupt_zoo_file_says_to_delete_it_and_is_not_listed_as_cached(tmp_path):
    path = tmp_path / "cifar10" / "Linf" / f"{ZOO_ID}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>Google Drive quota exceeded</html>")
    out = invoke("evaluate", "--model-id", ZOO_ID, "--model-dir", tmp_path, "--results-dir", tmp_path / "results",
                 env=OFFLINE)
    assert_one_line_error(out, f"delete {path} to download it again")
    listing = invoke("models", "--model-dir", tmp_path)
    assert listing.exit_code == 0, listing.output
    assert f"{ZOO_ID}  (corrupt cache file {path}: delete it)" in listing.stdout.splitlines()
    assert "(cached)" not in listing.stdout


# --- files get the mode a normal file gets -------------------------------------------------------


def test_written_files_get_the_users_umask_not_0600(tmp_path, digits_runs):
    old = os.umask(0o022)
    try:
        out = invoke("evaluate", "--checkpoint", digits_runs["trades-a0"], "--n-examples", "10", "--steps", "1",
                     "--alpha-test", "1", "--results-dir", tmp_path, "--device", "cpu", "--quiet")
        assert out.exit_code == 0, out.output
        out = invoke("train", "--dataset", "digits", "--epochs", "1", "--steps", "1", "--batch-size", "256",
                     "--device", "cpu", "--quiet", "--checkpoint-dir", tmp_path / "ck", "--run", "modes")
        assert out.exit_code == 0, out.output
        os.umask(0o077)  # a stricter umask is honoured too
        board = invoke("leaderboard", tmp_path, "--output", tmp_path / "board.md")
        assert board.exit_code == 0, board.output
    finally:
        os.umask(old)
    for path in (tmp_path / "trades-a0" / "summary.json", tmp_path / "trades-a0" / "records.csv",
                 tmp_path / "ck" / "modes" / "last.pt", tmp_path / "ck" / "modes" / "metrics.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((tmp_path / "board.md").stat().st_mode) == 0o600

    # Replacing a file keeps its mode, as `open(path, "w")` would.
    records = tmp_path / "trades-a0" / "records.csv"
    records.chmod(0o664)
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a0"], "--n-examples", "12", "--steps", "1",
                 "--alpha-test", "1", "--results-dir", tmp_path, "--device", "cpu", "--quiet", "--overwrite")
    assert out.exit_code == 0, out.output
    assert len(records.read_text().splitlines()) == 13 and stat.S_IMODE(records.stat().st_mode) == 0o664
