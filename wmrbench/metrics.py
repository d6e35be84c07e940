"""Pure functions: per-example records -> A_nat, A_rob, A_sa(alpha), A_tr(alpha), in percent.

A_sa and A_tr are exact expectations under the attacker's sampling distribution: each example
counts with its normalized weight ``s_i / sum_j s_j``, ``s_i = exp(-alpha * margin_i)``.
With alpha = 0 every weight is exactly 1, so A_sa(0) and A_tr(0) equal A_rob bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wmrbench.records import Metrics, alpha_key, tr_alphas, tr_columns


def accuracy(correct: np.ndarray) -> float:
    return 100.0 * float(np.asarray(correct, dtype=np.float64).mean())


def weighted_accuracy(correct: np.ndarray, margin: np.ndarray, alpha: float) -> float:
    """``sum_i s_i correct_i / sum_i s_i`` with ``s_i = exp(-alpha * margin_i)``, in percent."""
    margin = np.asarray(margin, dtype=np.float64)
    # exp(-alpha * (m - min m)) has the same normalized weights and cannot overflow.
    shift = margin.min() if alpha > 0 and margin.size else 0.0
    s = np.exp(-alpha * (margin - shift))
    return 100.0 * float((s * np.asarray(correct, dtype=np.float64)).sum() / s.sum())


def normalized_weights(margin: np.ndarray, alpha: float) -> np.ndarray:
    """``s_i / sum_j s_j``, shifted like :func:`weighted_accuracy` so that no weight overflows."""
    margin = np.asarray(margin, dtype=np.float64)
    shift = margin.min() if alpha > 0 and margin.size else 0.0
    s = np.exp(-alpha * (margin - shift))
    return s / s.sum()


def compute_metrics(records: pd.DataFrame, alphas: list[float] | None = None) -> Metrics:
    """All metrics from the records; ``alphas`` defaults to those with weighted-attack columns."""
    alphas = tr_alphas(records) if alphas is None else alphas
    pgd_correct = records["pgd_correct"].to_numpy()
    pgd_margin = records["pgd_margin"].to_numpy()
    a_sa, a_tr = {}, {}
    for alpha in alphas:
        a_sa[alpha_key(alpha)] = weighted_accuracy(pgd_correct, pgd_margin, alpha)
        correct_col, margin_col = tr_columns(alpha)
        if correct_col in records:
            a_tr[alpha_key(alpha)] = weighted_accuracy(records[correct_col].to_numpy(), records[margin_col].to_numpy(), alpha)
    return Metrics(
        n_examples=int(len(records)), A_nat=accuracy(records["clean_correct"].to_numpy()),
        A_rob=accuracy(pgd_correct), A_sa=a_sa, A_tr=a_tr,
    )
