"""Evaluation: one pipeline (:mod:`.pipeline`) with pluggable per-batch scorers (:mod:`.scorers`):
a fresh attack (``evaluate``), the attack keeping its points (``attack``, in the format of
:mod:`.adversarial_file`), and a replay of saved points (``evaluate --adversarial``);
:mod:`.api` is the same evaluation called from Python on a model object and tensors.

The names below are imported on first use (PEP 562), so that a reader of result folders (the
reports import :mod:`.partial`, the one home of the ``.partial/`` layout) does not load the
attack engine by importing this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AdversarialSet": "adversarial_file", "AttackPoints": "adversarial_file", "Split": "adversarial_file",
    "load_adversarial": "adversarial_file", "save_adversarial": "adversarial_file",
    "EvaluationResult": "api", "evaluate": "api",
    "EvalResult": "pipeline", "collect": "pipeline", "records_frame": "pipeline",
    "Failure": "runs", "Rerun": "runs", "evaluate_adversarial": "runs", "evaluate_model": "runs",
    "evaluate_models": "runs", "evaluate_source": "runs", "evaluate_sources": "runs", "rerun_result": "runs",
    "run_attack": "runs",
    "AttackScorer": "scorers", "PointsScorer": "scorers", "ReplayScorer": "scorers",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from wmrbench.evaluation.adversarial_file import AdversarialSet, AttackPoints, Split, load_adversarial, save_adversarial
    from wmrbench.evaluation.api import EvaluationResult, evaluate
    from wmrbench.evaluation.pipeline import EvalResult, collect, records_frame
    from wmrbench.evaluation.runs import (
        Failure, Rerun, evaluate_adversarial, evaluate_model, evaluate_models, evaluate_source, evaluate_sources,
        rerun_result, run_attack,
    )
    from wmrbench.evaluation.scorers import AttackScorer, PointsScorer, ReplayScorer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
