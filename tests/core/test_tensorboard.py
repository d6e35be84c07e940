"""train --tensorboard DIR writes each epoch's scalars and the importance weights' histogram."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import invoke


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
def test_tensorboard_logs_scalars_and_the_weight_histogram(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = invoke("train", "--epochs", "2", "--steps", "1", "--batch-size", "256", "--alpha-train", "2",
                 "--eval-every", "1", "--val-size", "60", "--device", "cpu", "--checkpoint-dir", tmp_path / "ck",
                 "--tensorboard", tmp_path / "tb", "--quiet")
    assert out.exit_code == 0, out.output
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/adv_accuracy", "train/mean_weight", "train/lr", "held_out/A_rob",
                "held_out/A_tr@2", "held_out/selected A_rob"):
        assert tag in tags["scalars"], tag
        assert [e.step for e in events.Scalars(tag)] == [1, 2]
    assert "train/importance_weights" in tags["histograms"]
    histogram = events.Histograms("train/importance_weights")[-1].histogram_value
    assert histogram.num > 0 and histogram.max > histogram.min  # alpha_train 2: the weights spread


def test_tensorboard_is_recorded_and_resumable(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    base = ("train", "--epochs", "2", "--steps", "1", "--batch-size", "256", "--device", "cpu",
            "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert invoke(*base, "--stop-after-epochs", "1").exit_code == 0
    out = invoke(*base, "--resume", "--tensorboard", tmp_path / "tb")  # may be added on resume
    assert out.exit_code == 0, out.output
    assert any((tmp_path / "tb").iterdir())
