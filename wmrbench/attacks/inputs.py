"""The one check of what a Python caller hands the attack engine: images, labels, alpha and the
model's answer to them. :class:`~wmrbench.attacks.wrappers.WeightedPGD` / ``WeightedAPGD``,
``wmrbench.losses.*`` and ``wmrbench.evaluate`` all call it, so that each refuses the same inputs
with the same line (a ``WmrbenchError``), not a torch traceback deep inside or a NaN loss.

It runs once per call, never per attack step: the shape and dtype checks read no values, and
the value checks (finite images in [0, 1], labels in range, alpha finite and >= 0, the model's
outputs finite) are gathered into ONE host sync, after one forward pass of the first example
in eval mode (which also gives the number of classes the labels must fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench.core.checks import check_alpha
from wmrbench.core.errors import WmrbenchError, first_line



def _tensor(value: object, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise WmrbenchError(f"{what} must be a torch tensor; got {type(value).__name__}")
    if value.is_meta:
        raise WmrbenchError(f"{what} is a meta tensor (a shape without data); give a tensor with values")
    return value


def check_image_shape(x: object, what: str = "x") -> Tensor:
    """A non-empty (N, C, H, W) float32 batch (values are not read here)."""
    x = _tensor(x, what)
    if x.dim() != 4:
        hint = f" (add the channel axis: {what}.unsqueeze(1))" if x.dim() == 3 else ""
        raise WmrbenchError(f"{what} has shape {tuple(x.shape)}; give images as (N, C, H, W){hint}")
    if len(x) == 0:
        raise WmrbenchError(f"{what} holds no images (an empty batch)")
    if not x.is_floating_point():
        raise WmrbenchError(f"{what} is {x.dtype}; give float images in [0, 1] (e.g. x.float() / 255)")
    return x


def check_dtype(model: nn.Module, x: Tensor, what: str = "x") -> None:
    """Images in the model's own dtype (float32 for most; a float64 model takes float64): half or
    float64 images for a float32 model would be attacked in another arithmetic, or fail deep
    inside; ``precision=`` is how the attacks compute in bf16 or fp16."""
    dtype = next((t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()), torch.float32)
    if x.dtype != dtype:
        raise WmrbenchError(f"{what} is {x.dtype} and the model {dtype}; give {what}.to({dtype}) "
                            "(precision= sets the attack's arithmetic)")


def check_label_shape(y: object, n: int, what: str = "y") -> Tensor:
    """One integer class index per image (values are not read here)."""
    y = _tensor(y, what)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise WmrbenchError(f"{what} holds {y.dtype} values; labels are integer class indices (e.g. {what}.long())")
    if y.dim() != 1 or len(y) != n:
        raise WmrbenchError(f"{what} has shape {tuple(y.shape)}; give the labels as one label per image ({n})")
    return y


def check_alpha_value(alpha: object, n: int) -> float | Tensor:
    """alpha: a number >= 0, or a tensor of one value or one per example (values read later)."""
    if not isinstance(alpha, Tensor):
        return check_alpha(alpha)  # type: ignore[arg-type]
    alpha = _tensor(alpha, "alpha")
    if not alpha.is_floating_point():
        raise WmrbenchError(f"alpha is a {alpha.dtype} tensor; give floats >= 0")
    if alpha.dim() > 1 or (alpha.dim() == 1 and len(alpha) not in (1, n)):
        raise WmrbenchError(f"alpha has shape {tuple(alpha.shape)}; give one value, or one per example ({n})")
    return alpha


def check_logits(logits: object, n: int, what: str = "the model") -> Tensor:
    """The model's answer must be an (N, classes) tensor of at least 2 classes."""
    if not isinstance(logits, Tensor):
        raise WmrbenchError(f"{what} returns a {type(logits).__name__}; it must return the logits tensor alone "
                            "(N, classes), e.g. wrap it to return output[0]")
    if logits.dim() != 2 or logits.shape[0] != n:
        raise WmrbenchError(f"{what} returns shape {tuple(logits.shape)} for {n} images; it must return logits (N, classes)")
    if logits.shape[1] < 2:
        raise WmrbenchError(f"{what} returns {logits.shape[1]} output per image; it must return one logit per class "
                            "(at least 2: the margin compares the true class with the others)")
    return logits


def probe(model: nn.Module, x: Tensor, what: str = "the model") -> Tensor:
    """The model's logits at ``x`` in eval mode, without gradients, its mode restored (BatchNorm
    statistics untouched); a model that cannot take ``x`` is one line."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise WmrbenchError(f"{what} cannot take inputs of shape {tuple(x.shape[1:])}: {first_line(exc)}") from None
    finally:
        model.train(was_training)
    return check_logits(out, len(x), what)


def check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise WmrbenchError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    meta = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if meta:
        raise WmrbenchError(f"the model's {meta[0]} is a meta tensor (not loaded): load its weights first "
                            "(e.g. to_empty() and load_state_dict)")
    return model


@dataclass(frozen=True)
class Checked:
    """The inputs after the check, on the model's device."""

    x: Tensor
    y: Tensor
    alpha: float | Tensor
    classes: int


def check_value_ranges(x: Tensor, y: Tensor | None, classes: int | None, alpha: float | Tensor | None = None,
                       logits: Tensor | None = None, what: str = "x", model: str = "the model") -> None:
    """The value checks, in one host sync: x finite and in [0, 1], y in 0..classes-1, alpha
    finite and >= 0, the probe's logits finite."""
    parts = [torch.isfinite(x).all().double(), x.amin().double(), x.amax().double()]
    if y is not None:
        parts += [y.amin().double(), y.amax().double()]
    if isinstance(alpha, Tensor):
        parts += [torch.isfinite(alpha).all().double(), alpha.amin().double()]
    if logits is not None:
        parts += [torch.isfinite(logits).all().double()]
    values = torch.stack([p.to(x.device) for p in parts]).tolist()  # the one sync
    finite, lo, hi = values[:3]
    rest = values[3:]
    if not finite:
        raise WmrbenchError(f"{what} holds non-finite values (NaN or inf); give images in [0, 1]")
    if lo < 0.0 or hi > 1.0:
        # %.10g: a value just past 1 must not print as 1 ("in [0, 1]; give them in [0, 1]" says nothing)
        off = max(-lo, hi - 1.0)
        fix = ("rounding error? x.clamp(0, 1)" if off < 1e-3 else
               "x / 255 for 0..255 pixels" if hi <= 255 and lo >= 0 else "normalization belongs inside the model")
        raise WmrbenchError(f"{what} holds values in [{lo:.10g}, {hi:.10g}], outside [0, 1]; give images in [0, 1] ({fix})")
    if y is not None:
        y_lo, y_hi, rest = int(rest[0]), int(rest[1]), rest[2:]
        top = f"..{classes - 1}" if classes is not None else ""
        if y_lo < 0 or (classes is not None and y_hi >= classes):
            raise WmrbenchError(f"the labels hold {y_lo if y_lo < 0 else y_hi}; labels are class indices 0{top}"
                                + (f" ({model} has {classes} outputs)" if classes is not None else ""))
    if isinstance(alpha, Tensor):
        a_finite, a_lo, rest = rest[0], rest[1], rest[2:]
        if not a_finite or a_lo < 0:
            raise WmrbenchError(f"alpha must be finite and >= 0 (0 is the uniform, unweighted case); got a value "
                                f"{'NaN or inf' if not a_finite else a_lo}")
    if logits is not None and not rest[0]:
        raise WmrbenchError(f"{model} gives non-finite outputs (NaN or inf) on the first image, before any attack or "
                            "training step: its weights or its forward are at fault")


def check_attack_inputs(model: nn.Module, x: object, y: object, alpha: object = 0.0,
                        device: torch.device | None = None) -> Checked:
    """Everything a call of the attack engine from Python needs, checked once; the tensors moved
    to ``device`` (the model's). One forward pass of the first image and one host sync."""
    check_model(model)
    x = check_image_shape(x)
    y = check_label_shape(y, len(x))
    checked_alpha = check_alpha_value(alpha, len(x))
    check_dtype(model, x)
    if device is not None:
        x, y = x.detach().to(device), y.to(device)
        checked_alpha = checked_alpha.to(device) if isinstance(checked_alpha, Tensor) else checked_alpha
    logits = probe(model, x[:1])
    check_value_ranges(x, y, logits.shape[1], checked_alpha, logits)
    return Checked(x.detach(), y, checked_alpha, int(logits.shape[1]))
