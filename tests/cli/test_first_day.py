"""First-day polish, tried as a new user would: files readable like any other file, evaluate
finding a checkpoint's data folder, tables with fixed decimals and alphas as given."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.conftest import MNIST_DIR, invoke, require_mnist
from wmrbench.core.io import atomic_write_text
from wmrbench.report.render import _paper_cell


def test_written_files_get_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_evaluate_uses_the_data_folder_the_checkpoint_records(tmp_path: Path) -> None:
    """A checkpoint trained with --data-dir X: evaluate --checkpoint without --data-dir reads X."""
    require_mnist()
    import torch

    from tests.conftest import MNIST_CHECKPOINT
    from wmrbench.core.config import to_jsonable
    from wmrbench.models.checkpoint import CHECKPOINT_FORMAT
    from wmrbench.core.presets import train_config

    cfg = train_config("mnist", "trades", run="m", data_dir=str(MNIST_DIR), device="cpu")
    state = torch.load(MNIST_CHECKPOINT, map_location="cpu", weights_only=True)  # real weights, our format
    (tmp_path / "ck" / "m").mkdir(parents=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": to_jsonable(cfg), "epoch": 1, "model": state,
                "history": []}, tmp_path / "ck" / "m" / "last.pt")
    out = invoke("evaluate", "--checkpoint", tmp_path / "ck" / "m" / "last.pt", "--n-examples", "8", "--steps", "1",
                 "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path / "r", "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "r" / "m" / "summary.json").read_text())
    assert summary["config"]["data_dir"] == str(MNIST_DIR)


def test_table_cells_have_fixed_decimals_and_alphas_as_given() -> None:
    assert [_paper_cell("A_sa", v) for v in (9.959, 5.5387e-150, 100.0)] == ["9.96", "0.00", "100.00"]
    # Alphas keep every digit that tells two values apart (0.1 and 0.10000000001 must not
    # print alike); other numbers (eps, step sizes) keep 6 significant digits.
    assert [_paper_cell("alpha_test", v) for v in (1000000.0, 1.5, 2 / 255, 0.10000000001)] == \
        ["1000000", "1.5", "0.00784313725490196", "0.10000000001"]
    assert [_paper_cell("eps", v) for v in (1000000.0, 1.5, 2 / 255)] == ["1000000", "1.5", "0.00784314"]


def test_epoch_lines_print_when_not_on_a_terminal_even_with_quiet(tmp_path: Path) -> None:
    """A redirected log (CliRunner is not a terminal) still says what each epoch did; --quiet hides
    bars only. demo says where its files went."""
    out = invoke("train", "--epochs", "2", "--steps", "1", "--batch-size", "256", "--device", "cpu",
                 "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert out.exit_code == 0, out.output
    lines = [line for line in out.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"] and "loss" in lines[0] and "adv acc" in lines[0]
