"""The Python API refuses what ``evaluate`` refuses, with one shared check
(:mod:`wmrbench.attacks.inputs`): WeightedPGD, WeightedAPGD, losses.* and wmrbench.evaluate
each raise one ``WmrbenchError`` line for each bad input, never a torch traceback deep inside
or a NaN loss; and the check runs once per call, not per attack step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from wmrbench.training import losses
from wmrbench.attacks import WeightedAPGD, WeightedPGD
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation import evaluate
from wmrbench.models import create_model

N = 6


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("digitsnet", num_classes=10, in_channels=1).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(N, 1, 8, 8, generator=g), torch.randint(0, 10, (N,), generator=g)


class TupleModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _model()

    def forward(self, x):
        return self.inner(x), x


class OneOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 1)

    def forward(self, x):
        return self.linear(x.flatten(1))


class NanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _model()

    def forward(self, x):
        return self.inner(x) * float("nan")


ATTACK = dict(eps=0.1, step_size=0.05, steps=2)

CALLERS: dict[str, Callable[..., object]] = {
    "WeightedPGD": lambda model, x, y, alpha=0.0: WeightedPGD(model, **ATTACK, alpha=alpha)(x, y),
    "WeightedAPGD": lambda model, x, y, alpha=0.0: WeightedAPGD(model, eps=0.1, steps=2, alpha=alpha)(x, y),
    "losses.pgd_at": lambda model, x, y, alpha=0.0: losses.pgd_at(model, x, y, **ATTACK, alpha=alpha),
    "losses.trades": lambda model, x, y, alpha=0.0: losses.trades(model, x, y, **ATTACK, alpha=alpha),
    "losses.gairat": lambda model, x, y, alpha=0.0: losses.gairat(model, x, y, **ATTACK),
    "losses.mail_at": lambda model, x, y, alpha=0.0: losses.mail_at(model, x, y, **ATTACK),
    "evaluate": lambda model, x, y, alpha=0.0: evaluate(model, x, y, eps=0.1, step_size=0.05, steps=2,
                                                        alpha_test=(1.0,), device="cpu"),
}


def _nan_x(x, y):
    x = x.clone()
    x[2, 0, 3, 3] = float("nan")
    return x, y


BAD_INPUTS = {
    "x with NaN": (lambda: _model(), _nan_x, "non-finite"),
    "x above 1": (lambda: _model(), lambda x, y: (x + 1e-3 * (x > 0.99).float() + 0.01, y), "[0, 1]"),
    "labels above the classes": (lambda: _model(), lambda x, y: (x, torch.full_like(y, 10)), "labels hold 10"),
    "negative labels": (lambda: _model(), lambda x, y: (x, torch.full_like(y, -1)), "labels hold -1"),
    "float labels": (lambda: _model(), lambda x, y: (x, y.float()), "integer class indices"),
    "labels of another length": (lambda: _model(), lambda x, y: (x, y[:3]), "one label per image"),
    "float64 x": (lambda: _model(), lambda x, y: (x.double(), y), "torch.float64"),
    "half x": (lambda: _model(), lambda x, y: (x.half(), y), "torch.float16"),
    "uint8 x": (lambda: _model(), lambda x, y: ((x * 255).to(torch.uint8), y), "torch.uint8"),
    "x without a channel axis": (lambda: _model(), lambda x, y: (x[:, 0], y), "unsqueeze(1)"),
    "a model returning a tuple": (TupleModel, lambda x, y: (x, y), "returns a tuple"),
    "a model with one output": (OneOutput, lambda x, y: (x, y), "1 output per image"),
    "a model returning NaN": (NanModel, lambda x, y: (x, y), "non-finite outputs"),
    "meta x": (lambda: _model(), lambda x, y: (x.to("meta"), y), "meta tensor"),
    "a meta model": (lambda: _model().to("meta"), lambda x, y: (x, y), "meta tensor"),
    "an empty batch": (lambda: _model(), lambda x, y: (x[:0], y[:0]), "no images"),
    "x not a tensor": (lambda: _model(), lambda x, y: (x.tolist(), y), None),
}


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_caller_refuses_each_bad_input_in_one_line(caller, case):
    make_model, damage, fragment = BAD_INPUTS[case]
    x, y = damage(*_batch())
    if caller == "evaluate" and case in ("float64 x", "half x"):
        # evaluate copies the examples into its own float32 set (ImageSet.images) and so takes
        # any float images; the attacks hand back x_adv in x's dtype and refuse a mismatch.
        assert evaluate(make_model(), x, y, eps=0.1, step_size=0.05, steps=2, alpha_test=(1.0,), device="cpu")
        return
    with pytest.raises(WmrbenchError) as caught:
        CALLERS[caller](make_model(), x, y)
    message = str(caught.value)
    assert "\n" not in message, message
    if fragment is not None:
        assert fragment in message, message


@pytest.mark.parametrize("caller", ["WeightedPGD", "WeightedAPGD"])
@pytest.mark.parametrize(("alpha", "fragment"), [
    (torch.full((N,), -1.0), "alpha must be finite and >= 0"),
    (torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0, 1.0]), "NaN or inf"),
    (torch.ones(N + 1), "one per example (6)"),
    (torch.ones(2, N), "one per example (6)"),
    (torch.ones(N, dtype=torch.long), "give floats"),
])
def test_an_alpha_tensor_is_checked_with_the_batch(caller, alpha, fragment):
    x, y = _batch()
    with pytest.raises(WmrbenchError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CALLERS[caller](_model(), x, y, alpha)


def test_a_good_per_example_alpha_still_runs():
    x, y = _batch()
    out = WeightedPGD(_model(), **ATTACK, alpha=torch.linspace(0, 2, N))(x, y)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_the_check_runs_once_per_call_not_per_step(monkeypatch):
    """One probe (a forward pass of one image) per call, whatever the number of steps."""
    import wmrbench.attacks.inputs as inputs

    calls = []
    original = inputs.check_value_ranges

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(inputs, "check_value_ranges", counting)
    x, y = _batch()
    WeightedPGD(_model(), eps=0.1, step_size=0.01, steps=20)(x, y)
    assert len(calls) == 1


def _random_input(rng: torch.Generator):
    """A random (x, y, alpha): a valid batch whose every aspect is damaged with probability 0.3
    by a random fault (shape, dtype, values, labels, alpha), so some inputs are valid by chance."""
    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=rng))]

    def damaged() -> bool:
        return float(torch.rand(1, generator=rng)) < 0.3

    n = pick([1, 3, N]) if not damaged() else 0
    shape = (n, 1, 8, 8) if not damaged() else pick([(n, 8, 8), (n, 64), (n, 1, 8, 8, 1), (n, 3, 8, 8)])
    x = torch.rand(shape, generator=rng)
    if damaged():
        x = x * pick([2.0, -1.0, float("nan"), float("inf")])
    if damaged():
        x = pick([x.double(), x.half(), (x.abs() * 255).nan_to_num().to(torch.uint8), x.bfloat16()])
    y = torch.randint(0, 10, (n,), generator=rng)
    if damaged():
        y = pick([y + 10, y - 11, y[: max(n - 1, 0)], y.float(), y.bool(), y[:, None]])
    alpha = pick([0.0, 2.0, torch.rand(n, generator=rng) * 2]) if not damaged() else pick(
        [-1.0, float("nan"), torch.rand(n + 1, generator=rng), torch.full((n,), float("nan")), -torch.ones(n)])
    return x, y, alpha


@pytest.mark.parametrize("caller", ["WeightedPGD", "losses.pgd_at"])
def test_fuzzed_inputs_raise_one_line_or_run(caller):
    """80 random (x, y, alpha): each either runs or raises one WmrbenchError line, never another exception."""
    rng = torch.Generator().manual_seed(2021)
    model = _model()
    refused = 0
    for k in range(80):
        x, y, alpha = _random_input(rng)
        if caller == "losses.pgd_at" and isinstance(alpha, torch.Tensor):
            alpha = float(alpha.reshape(-1)[0]) if alpha.numel() else 0.0  # losses take one alpha
        try:
            CALLERS[caller](model, x, y, alpha)
        except WmrbenchError as exc:
            refused += 1
            assert "\n" not in str(exc), str(exc)
        except Exception as exc:  # noqa: BLE001 - the bug this test names
            pytest.fail(f"case {k}: x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}, alpha {alpha!r}: "
                        f"{type(exc).__name__}: {exc}")
    assert 20 < refused < 80  # most random inputs are refused, some are valid and run
