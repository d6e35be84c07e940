"""Model sources: wmrbench checkpoints and plain state_dicts (``--checkpoint`` / ``--arch``).

A checkpoint is untrusted input: it is read with ``torch.load(..., weights_only=True)``, which
unpickles tensors and plain containers only, never arbitrary objects.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wmrbench.errors import WmrbenchError
from wmrbench.models.registry import create_model, model_spec

CHECKPOINT_FORMAT = "wmrbench-checkpoint-v1"


def _unpickler_detail(text: str) -> str:
    """The line of torch's long weights_only message that says what was wrong."""
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint (or another torch file, named by ``what``) safely; failures are one line."""
    path = Path(path)
    if not path.is_file():
        raise WmrbenchError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = _unpickler_detail(str(exc)) or type(exc).__name__
        # Every message of torch's weights_only unpickler mentions weights_only; only a disallowed
        # global means Python objects. Anything else (e.g. an HTML page) is a corrupt file.
        if "Unsupported global" in str(exc):
            raise WmrbenchError(
                f"refusing to load {path}: it holds Python objects, not only tensors "
                "(checkpoints are read with weights_only=True)"
            ) from None
        raise WmrbenchError(f"cannot read {what} {path}: corrupt or not a PyTorch file ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WmrbenchError(f"cannot read {what} {path}: corrupt or not a PyTorch file ({first})") from None
    if not isinstance(obj, dict):
        raise WmrbenchError(f"cannot read {what} {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


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


def checkpoint_train_config(path: str | Path) -> dict[str, Any]:
    """The training config a wmrbench checkpoint records ({} for a plain state_dict)."""
    obj = read_checkpoint(path)
    return dict(obj.get("config", {})) if obj.get("format") == CHECKPOINT_FORMAT else {}


def load_model_from_checkpoint(
    path: str | Path, arch: str | None, num_classes: int, in_channels: int
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model a checkpoint describes (or ``arch`` for a plain state_dict) and load it.

    Returns the model and the checkpoint's training config (empty for a plain state_dict).
    """
    obj = read_checkpoint(path)
    train_config: dict[str, Any] = {}
    if obj.get("format") == CHECKPOINT_FORMAT:
        train_config = dict(obj.get("config", {}))
        saved_arch = train_config.get("arch")
        if arch is not None and saved_arch is not None and arch != saved_arch:
            raise WmrbenchError(f"--arch {arch} contradicts the checkpoint, which was trained as {saved_arch}")
        arch = arch or saved_arch
    if arch is None:
        raise WmrbenchError(f"{path} is a plain state_dict: say which architecture with --arch")
    model_spec(arch)  # unknown arch -> one-line error before anything else
    model = create_model(arch, num_classes=num_classes, in_channels=in_channels)
    load_state_into(model, extract_state_dict(obj), f"checkpoint {path}")
    return model, train_config
