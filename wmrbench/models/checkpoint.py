"""Checkpoint files: wmrbench training checkpoints and plain state_dicts (``--checkpoint``).

A checkpoint is untrusted input: it is read once, with ``torch.load(..., weights_only=True)``
(:func:`wmrbench.core.io.safe_torch_load`), which unpickles tensors and plain containers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from wmrbench.core.config import CUSTOM_DATASET
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.io import safe_torch_load
from wmrbench.models.registry import create_model, model_spec

CHECKPOINT_FORMAT = "wmrbench-checkpoint-v1"


def extract_state_dict(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights inside a wmrbench checkpoint or a common wrapper, 'module.' stripped."""
    if obj.get("format") == CHECKPOINT_FORMAT:
        state = obj["model"]
    else:
        state = obj
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WmrbenchError("the checkpoint holds no state_dict of tensors")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Strict load with a one-line explanation of any mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, model needs {tuple(own[k].shape)}")
        raise WmrbenchError(f"{what} does not fit the architecture: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint (or another torch file, named by ``what``), read safely; failures are one line."""
    return safe_torch_load(path, what)


def train_config_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The training config a wmrbench checkpoint records ({} for a plain state_dict)."""
    if obj.get("format") != CHECKPOINT_FORMAT:
        return {}
    config = obj.get("config", {})
    if not isinstance(config, dict):
        raise WmrbenchError(f"the checkpoint's config is a {type(config).__name__}, not an object (edited by hand?)")
    return dict(config)


def model_from_checkpoint(
    obj: dict[str, Any], path: str | Path, arch: str | None, num_classes: int, in_channels: int
) -> nn.Module:
    """Build the architecture a checkpoint records (or ``arch`` for a plain state_dict) and load
    the weights of ``obj`` (the file at ``path``, already read) into it, strictly."""
    config = train_config_of(obj)
    saved_arch = config.get("arch")
    if config.get("dataset") == CUSTOM_DATASET:  # wmrbench.fit: ``arch`` records the user's class name, not a registry name
        saved_arch = None
    if saved_arch is not None and not isinstance(saved_arch, str):
        raise WmrbenchError(f"checkpoint {path} records the architecture {saved_arch!r}, not a name")
    if arch is not None and saved_arch is not None and arch != saved_arch:
        raise WmrbenchError(f"{setting('arch', arch)} contradicts the checkpoint, which was trained as {saved_arch}")
    arch = arch or saved_arch
    if arch is None:
        what = "was trained by wmrbench.fit on a model of the user's own" if config else "is a plain state_dict"
        raise WmrbenchError(f"{path} {what}: say which architecture with {setting('arch')}")
    model_spec(arch)  # unknown arch -> one-line error before anything else
    model = create_model(arch, num_classes=num_classes, in_channels=in_channels)
    load_state_into(model, extract_state_dict(obj), f"checkpoint {path}")
    return model


def load_model_from_checkpoint(path: str | Path, arch: str | None, num_classes: int, in_channels: int) -> nn.Module:
    """Read a checkpoint file and build its model (see :func:`model_from_checkpoint`)."""
    return model_from_checkpoint(read_checkpoint(path), path, arch, num_classes, in_channels)
