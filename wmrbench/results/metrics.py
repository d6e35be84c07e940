"""Pure functions: per-example records -> A_nat, A_rob, A_sa(alpha), A_tr(alpha), A_wc(alpha),
in percent.

A_sa and A_tr are exact expectations under the attacker's sampling distribution: each example
counts with its normalized weight ``s_i / sum_j s_j``, ``s_i = exp(-alpha * margin_i)``.
With alpha = 0 every weight is exactly 1, so A_sa(0) and A_tr(0) equal A_rob bit for bit.

A_wc (wmrbench's own extension, not in the paper): the same weighted accuracy over the
attacker's best point per example among every point the run computed for it (the clean input,
the unweighted attack's, each weighted attack's; each attack has already chosen among its
restarts by the same rule). The rule (a misclassified point with the lowest margin if there is
one, else the correct point with the highest margin) is the attacker's best for every alpha at
once, so A_wc <= min(A_sa, A_tr) at every alpha.

:func:`accuracy`, :func:`weighted_accuracy` and :func:`normalized_weights` take numpy arrays,
lists or torch tensors (on any device, with or without gradient: they are read as float64 on
the CPU, which changes no value), so that an attack's result feeds them directly:
``weighted_accuracy(res.correct, res.margin, 2.0)``. They return Python floats / numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from wmrbench.results.records import Metrics, attack_column_pairs, tr_alphas, tr_columns

ArrayLike = Any  # a numpy array, a sequence of numbers or a torch tensor


def as_float64(values: ArrayLike) -> np.ndarray:
    """``values`` as a float64 numpy array; a torch tensor is detached and copied to the CPU first
    (duck-typed, so that this module needs no torch). float32, float16 and bfloat16 values are
    exact in float64, and booleans become 0 and 1, so no number changes."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def accuracy(correct: ArrayLike) -> float:
    """The mean of ``correct`` (booleans or 0/1), in percent."""
    return 100.0 * float(as_float64(correct).mean())


def weighted_accuracy(correct: ArrayLike, margin: ArrayLike, alpha: float) -> float:
    """``sum_i s_i correct_i / sum_i s_i`` with ``s_i = exp(-alpha * margin_i)``, in percent."""
    margin = as_float64(margin)
    # exp(-alpha * (m - min m)) has the same normalized weights and cannot overflow.
    shift = margin.min() if alpha > 0 and margin.size else 0.0
    s = np.exp(-alpha * (margin - shift))
    return 100.0 * float((s * as_float64(correct)).sum() / s.sum())


def normalized_weights(margin: ArrayLike, alpha: float) -> np.ndarray:
    """``s_i / sum_j s_j``, shifted like :func:`weighted_accuracy` so that no weight overflows."""
    margin = as_float64(margin)
    shift = margin.min() if alpha > 0 and margin.size else 0.0
    s = np.exp(-alpha * (margin - shift))
    return s / s.sum()


def worst_case_points(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per example, (correct, margin) of the attacker's best point among every point the
    records hold: clean, unweighted PGD and each weighted attack."""
    pairs = [("clean_correct", "clean_margin"), *attack_column_pairs(records)]
    pairs = [(c, m) for c, m in pairs if c in records and m in records]
    correct = np.stack([records[c].to_numpy(dtype=bool) for c, _ in pairs])  # (candidates, N)
    margin = np.stack([records[m].to_numpy(dtype=np.float64) for _, m in pairs])
    # Misclassified candidates first, by their lowest margin; else the correct one with the highest.
    key = np.where(correct, -margin, margin - 10.0)  # margins lie in [-1, 1]: -10 puts errors first
    best = key.argmin(axis=0)
    cols = np.arange(correct.shape[1])
    return correct[best, cols], margin[best, cols]


def compute_metrics(records: pd.DataFrame, alphas: list[float] | None = None) -> Metrics:
    """All metrics from the records; ``alphas`` defaults to those with weighted-attack columns."""
    alphas = tr_alphas(records) if alphas is None else alphas
    pgd_correct = records["pgd_correct"].to_numpy()
    pgd_margin = records["pgd_margin"].to_numpy()
    a_sa: dict[float, float] = {}
    a_tr: dict[float, float] = {}
    a_wc: dict[float, float] = {}
    wc_correct, wc_margin = worst_case_points(records)
    for alpha in map(float, alphas):  # keys are floats: an int 2 and 2.0 are one alpha
        a_sa[alpha] = weighted_accuracy(pgd_correct, pgd_margin, alpha)
        a_wc[alpha] = weighted_accuracy(wc_correct, wc_margin, alpha)
        correct_col, margin_col = tr_columns(alpha)
        if correct_col in records:
            a_tr[alpha] = weighted_accuracy(records[correct_col].to_numpy(), records[margin_col].to_numpy(), alpha)
    return Metrics(
        n_examples=int(len(records)), A_nat=accuracy(records["clean_correct"].to_numpy()),
        A_rob=accuracy(pgd_correct), A_sa=a_sa, A_tr=a_tr, A_wc=a_wc,
    )
