"""wmrbench.launch.submit's pure parts: which GPUs a local job gets."""

from __future__ import annotations

import pytest


def test_local_jobs_take_the_machines_gpus_in_turn(monkeypatch: pytest.MonkeyPatch):
    from wmrbench.launch.submit import local_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5")
    assert [local_gpus(i, 1)["visible_gpus"] for i in range(4)] == [(2,), (3,), (5,), (2,)]
    assert local_gpus(1, 2) == {"gpus_per_node": 2, "visible_gpus": (5, 2)}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    assert local_gpus(0, 1) == {"gpus_per_node": 0, "visible_gpus": ()}  # CPU only: jobs run on the CPU
