"""The training checkpoint holds no wall-clock time: identical runs write identical last.pt bytes,
each epoch's seconds live in timing.jsonl beside it, and a checkpoint written before that (its
history holding the seconds itself) still resumes, ending as the same bytes."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import torch

from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.presets import train_config
from wmrbench.training import fit, with_timing


def tiny(**kw):
    # a relative checkpoint_dir: runs made from two folders save the same config
    values = dict(alpha_train=2.0, epochs=2, steps=1, batch_size=256, milestones=(), checkpoint_dir="ck", device="cpu",
                  n_train=512)
    values.update(kw)
    return train_config(DatasetName.DIGITS, Defense.TRADES, **values)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_identical_runs_write_the_same_bytes_and_keep_their_seconds_beside_them(tmp_path, monkeypatch):
    results = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        results.append(tmp_path / name / fit(tiny(), show_progress=False).checkpoint)
    a, b = results
    assert filecmp.cmp(a, b, shallow=False)
    assert all("seconds" not in h for h in torch.load(a, weights_only=True)["history"])
    timing = lines(a.parent / "timing.jsonl")
    assert [t["epoch"] for t in timing] == [1, 2] and all(t["seconds"] > 0 for t in timing)
    assert [m["seconds"] for m in lines(a.parent / "metrics.jsonl")] == [t["seconds"] for t in timing]


def test_a_checkpoint_that_holds_its_seconds_still_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    for name in ("whole", "old"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "whole")
    whole = tmp_path / "whole" / fit(tiny(), show_progress=False).checkpoint
    monkeypatch.chdir(tmp_path / "old")
    last = fit(tiny(), stop_after_epochs=1, show_progress=False).checkpoint
    # As written before timing.jsonl existed: the seconds in the history, no sidecar.
    saved = torch.load(last, weights_only=True)
    saved["history"][0]["seconds"] = 1.5
    torch.save(saved, last)
    (last.parent / "timing.jsonl").unlink()
    resumed = fit(tiny(), resume=True, show_progress=False)
    assert filecmp.cmp(whole, resumed.checkpoint, shallow=False)
    assert resumed.history[0]["seconds"] == 1.5
    assert [t["epoch"] for t in lines(last.parent / "timing.jsonl")] == [1, 2]
    assert lines(last.parent / "metrics.jsonl")[0]["seconds"] == 1.5


def test_with_timing_merges_by_epoch_and_skips_what_it_cannot_use(tmp_path):
    history = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "seconds": 9.0}]
    assert with_timing(history, tmp_path) == history  # no sidecar: as it is
    # a damaged line, an epoch last.pt does not hold (another run's file copied in), and an
    # epoch whose seconds the checkpoint itself holds (an old one): only epoch 1 is filled in
    (tmp_path / "timing.jsonl").write_text('{"epoch": 1, "seconds": 2.0}\nnot json\n'
                                           '{"epoch": 2, "seconds": 3.0}\n{"epoch": 3, "seconds": 4.0}\n')
    assert with_timing(history, tmp_path) == [{"epoch": 1, "loss": 0.5, "seconds": 2.0},
                                              {"epoch": 2, "loss": 0.4, "seconds": 9.0}]
