"""``train --tensorboard DIR``: each epoch's scalars and the importance weights' histogram.

Scalars: loss, accuracy under the training attack, mean importance weight, learning rate, and,
with ``--eval-every``, the held-out A_nat, A_rob, A_sa and A_tr and the selected metric. The
histogram shows how the epoch's weights ``s_i = exp(-alpha * margin_i)`` spread: at alpha 0 they
are all 1; "+ours" puts weight on the examples the training attack breaks.

TensorBoard is an optional extra (``pip install wmrbench[tensorboard]``); only rank 0 writes.
Open it with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from wmrbench.core.errors import WmrbenchError, setting


class EpochLog:
    """A SummaryWriter when a folder is given, else nothing (one object either way)."""

    def __init__(self, log_dir: str | None) -> None:
        self.writer = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise WmrbenchError(
                f"{setting('tensorboard')} needs the tensorboard package: pip install 'wmrbench[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=log_dir)

    def epoch(self, stats: dict[str, Any], weights: Tensor | None) -> None:
        if self.writer is None:
            return
        step = int(stats["epoch"])
        for name in ("loss", "adv_accuracy", "mean_weight", "lr"):
            self.writer.add_scalar(f"train/{name}", stats[name], step)
        for name, value in stats.get("val", {}).items():
            if isinstance(value, dict):
                for alpha, v in value.items():
                    self.writer.add_scalar(f"held_out/{name}@{alpha}", v, step)
            else:
                self.writer.add_scalar(f"held_out/{name}", value, step)
        if "selected" in stats:
            self.writer.add_scalar(f"held_out/selected {stats['selected']['by']}", stats["selected"]["value"], step)
        if weights is not None and weights.numel():
            self.writer.add_histogram("train/importance_weights", weights.float().cpu(), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
