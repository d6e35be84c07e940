"""Evaluation: one pipeline (:mod:`.pipeline`) with pluggable per-batch scorers (:mod:`.scorers`):
a fresh attack (``evaluate``), the attack keeping its points (``attack``, in the format of
:mod:`.adversarial_file`), and a replay of saved points (``evaluate --adversarial``)."""

from wmrbench.evaluation.adversarial_file import (
    AdversarialSet,
    AttackPoints,
    Split,
    load_adversarial,
    save_adversarial,
)
from wmrbench.evaluation.pipeline import EvalResult, collect, records_frame
from wmrbench.evaluation.runs import (
    Failure,
    Rerun,
    evaluate_adversarial,
    evaluate_model,
    evaluate_models,
    evaluate_source,
    evaluate_sources,
    rerun_result,
    run_attack,
)
from wmrbench.evaluation.scorers import AttackScorer, PointsScorer, ReplayScorer

__all__ = [
    "AdversarialSet", "Rerun", "rerun_result", "AttackPoints", "AttackScorer", "EvalResult", "Failure", "PointsScorer", "ReplayScorer",
    "Split", "collect", "evaluate_adversarial", "evaluate_model", "evaluate_models", "evaluate_source", "evaluate_sources", "load_adversarial",
    "records_frame", "run_attack", "save_adversarial",
]
