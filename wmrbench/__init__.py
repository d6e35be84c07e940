"""wmrbench: robustness under non-uniform attacks (Zeng et al., AAAI 2021).

Weighted PGD, weighted adversarial training (PGD-AT and TRADES, "+ours") and the A_sa / A_tr
metrics beside A_nat and A_rob, behind one attack engine (:mod:`wmrbench.attacks`).

The stable Python API is what ``__all__`` names (docs/api.md), the same code the CLI runs:

* ``WeightedPGD``, ``WeightedAPGD``: ``atk = wmrbench.WeightedPGD(model, eps=0.3, alpha=2.0)``,
  ``x_adv = atk(x, y)``; ``atk.run(x, y)`` gives margins, weights and correctness;
* ``losses``: ``wmrbench.losses.trades(model, x, y, eps=..., step_size=..., steps=..., alpha=2.0)``
  returns the loss to backpropagate and the per-example weights (also ``pgd_at``, ``mart``,
  ``gairat``, ``mail_at``, ``mail_trades``);
* ``evaluate`` / ``EvaluationResult``: A_nat, A_rob, A_sa, A_tr, A_wc of a model on tensors or a
  DataLoader; ``fit`` / ``FitResult``: train a user's own model on the user's own data;
* ``accuracy``, ``weighted_accuracy``, ``normalized_weights``, ``compute_metrics`` (and the
  ``metrics`` module): the metrics, on numpy arrays or torch tensors;
* ``create_model``: a registered architecture by name.

Everything else is internal: modules and names outside ``__all__`` may change between releases
without notice. The names load lazily (PEP 562), so ``import wmrbench`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("wmrbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# name -> the module that defines it (a module whose last part is the name is the module itself).
# Imported on first use, by name: no static import of these modules here, so `import wmrbench`
# loads no torch, and the import-linter layering (which reads static imports) sees the package
# root as depending on nothing (modules such as wmrbench.core.runtime import __version__ from it).
_LAZY = {
    "WeightedPGD": "wmrbench.attacks.wrappers",
    "WeightedAPGD": "wmrbench.attacks.wrappers",
    "WeightedAttackResult": "wmrbench.attacks.wrappers",
    "losses": "wmrbench.training.losses",
    "evaluate": "wmrbench.evaluation.api",
    "EvaluationResult": "wmrbench.evaluation.api",
    "fit": "wmrbench.training.api",
    "FitResult": "wmrbench.training.api",
    "metrics": "wmrbench.results.metrics",
    "accuracy": "wmrbench.results.metrics",
    "weighted_accuracy": "wmrbench.results.metrics",
    "normalized_weights": "wmrbench.results.metrics",
    "compute_metrics": "wmrbench.results.metrics",
    "create_model": "wmrbench.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wmrbench' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
