"""``--mean`` / ``--std``: a model that expects normalized inputs, wrapped so that it takes images
in [0, 1] like every other model here.

Attacks work in pixel space: eps, steps and the [0, 1] box are defined on the image, not on the
normalized tensor. Feeding an attack a normalized input, or attacking a model whose training
normalized its inputs without telling it, is the mistake users of torchattacks and AutoAttack
report most; the wrapper puts the normalization inside the model, where it belongs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmrbench.core.errors import WmrbenchError, setting


class Normalized(nn.Module):
    """``model((x - mean) / std)``, per channel."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


def check_normalization(mean: tuple[float, ...] | None, std: tuple[float, ...] | None, in_channels: int) -> None:
    """Both or neither; one value per input channel (or one for all); std > 0."""
    if (mean is None) != (std is None):
        raise WmrbenchError(f"{setting('mean')} and {setting('std')} go together: give both, one value per input channel")
    if mean is None or std is None:
        return
    for name, values in ((setting("mean"), mean), (setting("std"), std)):
        if len(values) not in (1, in_channels):
            raise WmrbenchError(f"{name} takes 1 or {in_channels} values (one per input channel); got {len(values)}")
    if not all(s > 0 for s in std):
        raise WmrbenchError(f"{setting('std')} values must be > 0; got {','.join(f'{s:g}' for s in std)}")
