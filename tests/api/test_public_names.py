"""The stable API: every public name stays, resolves and says what it is; `import wmrbench` is cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

from tests.conftest import HANG_S

import wmrbench

# The public names as released. Removing one breaks users: this list only grows (deprecate
# first, then remove in a major version, and only then edit this list).
FROZEN = [
    "__version__",
    "WeightedPGD", "WeightedAPGD", "WeightedAttackResult",
    "losses",
    "evaluate", "EvaluationResult",
    "fit", "FitResult",
    "metrics", "accuracy", "weighted_accuracy", "normalized_weights", "compute_metrics",
    "create_model",
]
LOSSES = ["LossResult", "pgd_at", "trades", "mart", "gairat", "mail_at", "mail_trades"]



def test_no_public_name_disappears():
    missing = [name for name in FROZEN if name not in wmrbench.__all__]
    assert not missing, f"public names removed from wmrbench.__all__: {missing}"
    assert set(LOSSES) <= set(wmrbench.losses.__all__)


def _check_documented(obj: object, name: str) -> None:
    doc = inspect.getdoc(obj) or ""
    # a dataclass without a docstring gets its signature as __doc__: not documentation
    assert doc.strip() and not doc.startswith(f"{name}("), f"{name} has no docstring"


@pytest.mark.parametrize("name", [n for n in sorted(set(FROZEN) | set(wmrbench.__all__)) if n != "__version__"])
def test_every_public_name_resolves_and_has_a_docstring(name):
    obj = getattr(wmrbench, name)
    _check_documented(obj, name)
    assert name in dir(wmrbench)


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_resolves_and_has_a_docstring(name):
    _check_documented(getattr(wmrbench.losses, name), name)


def test_version_and_unknown_names():
    assert isinstance(wmrbench.__version__, str) and wmrbench.__version__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wmrbench.nope  # noqa: B018
    assert isinstance(wmrbench.losses, types.ModuleType) and wmrbench.metrics is sys.modules["wmrbench.results.metrics"]
    assert wmrbench.WeightedPGD is wmrbench.attacks.WeightedPGD


def test_import_wmrbench_loads_no_torch():
    """The CLI imports the package first: the public names load on first use, not at import."""
    code = "import sys, wmrbench; assert 'torch' not in sys.modules, 'torch imported'; print(len(wmrbench.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stderr
