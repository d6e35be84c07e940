"""The epoch line names each held-out metric once, and the selected one when it is another."""

from __future__ import annotations

from wmrbench.training.loop import _epoch_line


def _stats(by: str, value: float) -> dict:
    return {"epoch": 1, "loss": 0.5, "adv_accuracy": 0.25, "lr": 0.1, "seconds": 1.0,
            "val": {"A_nat": 90.0, "A_rob": 40.0}, "selected": {"by": by, "value": value}}


def test_a_rob_selection_is_printed_once():
    stats = _stats("A_rob", 40.0)
    line = _epoch_line(stats, 2, [stats])
    assert line.count("A_rob") == 1 and "held-out A_nat 90.00 A_rob 40.00  (best so far: best.pt)" in line


def test_another_selection_is_printed_beside_a_rob():
    stats = _stats("A_tr@2", 31.5)
    line = _epoch_line(stats, 2, [stats])
    assert "A_rob 40.00 A_tr@2 31.50" in line
