"""Files of adversarial points, as their readers see them: the names of ``wmrbench attack``'s file
(:mod:`wmrbench.evaluation.adversarial_file` writes and checks it) and the small file of the
examples that decide A_sa, which ``evaluate --keep-examples K`` writes beside the records.

The examples that decide A_sa at an alpha are those with the largest share of the normalized
weight ``s_i / sum_j s_j``, ``s = exp(-alpha * margin)`` at the unweighted PGD points: the lowest
margins. A_sa at that alpha is a weighted mean in which these few carry most of the weight.

``examples.pt`` (one file, written atomically, read with ``torch.load(..., weights_only=True)``)::

    {"format": "wmrbench-examples-v1", "run": str, "alpha": float, "n_examples": int (N, all evaluated),
     "index": int64 [k], "label": int64 [k], "pred": int64 [k] (-1: not known),
     "x": float32 [k, C, H, W], "x_adv": float32 [k, C, H, W], "margin": float32 [k],
     "share": float64 [k] (each one's normalized weight among all N),
     "records_sha256": str (of the records.csv they were chosen from)}

It sits below the evaluation (which writes it) and the reports (which read it): neither imports
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import atomic_torch_save, safe_torch_load
from wmrbench.results.metrics import normalized_weights

ADVERSARIAL_FORMAT = "wmrbench-adversarial-v1"
ADVERSARIAL_NAME = "adversarial.pt"  # RESULTS_DIR/RUN/adversarial.pt unless --output says otherwise
PGD = "pgd"  # the unweighted attack's key in the adversarial file

EXAMPLES_FORMAT = "wmrbench-examples-v1"
EXAMPLES_NAME = "examples.pt"  # beside records.csv
DEFAULT_KEEP = 16
UNKNOWN_PRED = -1  # the adversarial file records whether a point is classified right, not as what


@dataclass(frozen=True)
class DecidingExamples:
    """The k examples with the largest share of A_sa's weight at ``alpha``, largest first."""

    run: str
    alpha: float
    n_examples: int  # N: how many examples the weights are normalized over
    index: Tensor
    label: Tensor
    pred: Tensor
    x: Tensor
    x_adv: Tensor
    margin: Tensor
    share: Tensor
    source: str = EXAMPLES_NAME  # which file they were read from
    records_sha256: str = ""  # of the records.csv they were chosen from ("" when not known)

    @property
    def total_share(self) -> float:
        """How much of the weight the k examples carry together (0..1)."""
        return float(self.share.sum())


def deciding_order(margins: np.ndarray, alpha: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the k largest normalized weights at ``alpha`` (ties: the earlier position
    first) and every example's normalized weight."""
    share = normalized_weights(np.asarray(margins, dtype=np.float64), alpha)
    order = np.argsort(-share, kind="stable")[: max(0, k)]
    return order, share


def save_examples(path: str | Path, ex: DecidingExamples) -> Path:
    return atomic_torch_save(path, {
        "format": EXAMPLES_FORMAT, "run": ex.run, "alpha": float(ex.alpha), "n_examples": int(ex.n_examples),
        "index": ex.index.long(), "label": ex.label.long(), "pred": ex.pred.long(), "x": ex.x.float().contiguous(),
        "x_adv": ex.x_adv.float().contiguous(), "margin": ex.margin.float(), "share": ex.share.double(),
        "records_sha256": ex.records_sha256,
    })


def _check_images(bad: str, k: int, *images: Tensor) -> None:
    for t in images:
        if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[0] != k or not bool(t.isfinite().all()):
            raise WmrbenchError(f"{bad} (its images are not {k} finite [C, H, W] arrays)")
        if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
            raise WmrbenchError(f"{bad} (its images are not in [0, 1])")


def load_examples(path: str | Path) -> DecidingExamples:
    """Read an ``examples.pt`` (weights_only=True) and check that it is whole: one line if not."""
    obj = safe_torch_load(path, what="examples file")
    bad = f"{path} is not a wmrbench examples file"
    if not isinstance(obj, dict) or obj.get("format") != EXAMPLES_FORMAT:
        raise WmrbenchError(f"{bad} (format {obj.get('format') if isinstance(obj, dict) else None!r}, expected {EXAMPLES_FORMAT!r})")
    try:
        ex = DecidingExamples(str(obj["run"]), float(obj["alpha"]), int(obj["n_examples"]), obj["index"], obj["label"],
                              obj["pred"], obj["x"], obj["x_adv"], obj["margin"], obj["share"], Path(path).name,
                              str(obj.get("records_sha256", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise WmrbenchError(f"{bad} (incomplete: {type(exc).__name__} {exc})") from None
    k = len(ex.index) if isinstance(ex.index, Tensor) else -1
    if k < 0 or not all(isinstance(t, Tensor) and t.shape[:1] == (k,) for t in (ex.label, ex.pred, ex.margin, ex.share)):
        raise WmrbenchError(f"{bad} (its arrays do not have one row per example)")
    _check_images(bad, k, ex.x, ex.x_adv)
    return ex


def examples_from_adversarial(path: str | Path, alpha: float, k: int = DEFAULT_KEEP) -> DecidingExamples:
    """The deciding examples among the unweighted PGD points ``wmrbench attack`` saved: the same
    points A_sa weighs. The file says whether each point is classified right, not as what."""
    obj = safe_torch_load(path, what="adversarial file")
    bad = f"{path} is not a wmrbench adversarial file"
    if not isinstance(obj, dict) or obj.get("format") != ADVERSARIAL_FORMAT:
        raise WmrbenchError(f"{bad} (format {obj.get('format') if isinstance(obj, dict) else None!r}, expected {ADVERSARIAL_FORMAT!r})")
    try:
        pgd = obj["attacks"][PGD]
        index, label, x, x_adv, margin, correct = obj["index"], obj["label"], obj["x"], pgd["x_adv"], pgd["margin"], pgd["correct"]
        n = len(label)
        if n == 0 or not all(isinstance(t, Tensor) and t.shape[0] == n for t in (index, x, x_adv, margin, correct)):
            raise ValueError("its arrays do not have one row per example")
    except (KeyError, TypeError, ValueError) as exc:
        raise WmrbenchError(f"{bad} ({exc})") from None
    order, share = deciding_order(margin.double().numpy(), alpha, k)
    pick = torch.from_numpy(order)
    pred = torch.where(correct[pick].bool(), label[pick].long(), torch.full_like(label[pick].long(), UNKNOWN_PRED))
    ex = DecidingExamples(
        run=Path(path).parent.name, alpha=float(alpha), n_examples=n, index=index[pick].long(), label=label[pick].long(),
        pred=pred, x=x[pick].float(), x_adv=x_adv[pick].float(), margin=margin[pick].float(),
        share=torch.from_numpy(share[order]), source=Path(path).name,
    )
    _check_images(bad, len(pick), ex.x, ex.x_adv)
    return ex
