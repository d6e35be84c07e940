"""The adversarial file format (``wmrbench attack`` writes it, ``evaluate --adversarial`` reads it).

ONE file, written atomically, readable with ``torch.load(..., weights_only=True)``::

    {"format": "wmrbench-adversarial-v1",
     "config": JSON string (run, split, model source and description, EvalConfig, versions),
     "index": int64 [N] (positions in the split), "label": int64 [N],
     "x": float32 [N, C, H, W] (the clean inputs),
     "attacks": {"pgd": {...}, "<alpha>": {...}, ...}}

where each attack holds ``alpha`` (0.0 for the unweighted PGD), ``x_adv`` float32 [N, C, H, W],
``margin`` float32 [N] and ``correct`` bool [N] (the attacked model's, at x_adv), ``restart``
int64 [N] (which restart each example kept) and ``weight`` float64 [N]: the attacker's normalized weights ``s_i / sum_j s_j`` at that alpha (uniform 1/N for
the unweighted PGD).

The clean inputs are saved too (a decision, not an accident): with them the file alone gives
A_nat, the eps-ball can be checked when the file is read, and the examples can be scored on
another model (a transfer attack) without the data set. They cost 1/(k+2) of the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wmrbench.core import distributed
from wmrbench.core.config import EvalConfig, eval_config_from_dict, number_from_key, number_key, to_jsonable
from wmrbench.data import check_labels, dataset_spec
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import atomic_torch_save, safe_torch_load
from wmrbench.results.metrics import normalized_weights
from wmrbench.models.source import ModelSource
from wmrbench.results.records import ModelInfo

# The format's names have one home below the evaluation and the reports (which read the file too).
from wmrbench.results.points import ADVERSARIAL_FORMAT, ADVERSARIAL_NAME, PGD  # noqa: E402,F401
EPS_SLACK = 1e-6  # float32 rounding of x +- eps


class Split(str, Enum):
    TEST = "test"
    TRAIN = "train"


@dataclass
class AttackPoints:
    alpha: float  # 0.0 for the unweighted PGD
    x_adv: Tensor
    margin: Tensor
    correct: Tensor
    weight: Tensor
    restart: Tensor | None = None  # which restart each example kept (files before it: None)

    @classmethod
    def of(cls, alpha: float, x_adv: Tensor, margin: Tensor, correct: Tensor, restart: Tensor) -> AttackPoints:
        weight = torch.from_numpy(normalized_weights(margin.numpy(), alpha))
        return cls(alpha, x_adv.float().contiguous(), margin.float(), correct.bool(), weight, restart.long())


@dataclass
class AdversarialSet:
    run: str
    split: Split
    source: ModelSource
    model: ModelInfo
    config: EvalConfig
    versions: dict[str, Any]
    index: Tensor
    label: Tensor
    x: Tensor
    # PGD for the unweighted attack, else the weighted attack's alpha_test (in the file: its name)
    attacks: dict[str | float, AttackPoints]

    def header(self) -> dict[str, Any]:
        return {
            "format": ADVERSARIAL_FORMAT, "run": self.run, "split": self.split.value,
            "source": to_jsonable(self.source), "model": to_jsonable(self.model),
            "eval_config": to_jsonable(self.config), "versions": self.versions,
        }


def save_adversarial(path: str | Path, adv: AdversarialSet) -> Path:
    obj = {
        "format": ADVERSARIAL_FORMAT,
        "config": json.dumps(adv.header(), sort_keys=True),
        "index": adv.index, "label": adv.label, "x": adv.x,
        "attacks": {_name(key): {"alpha": float(p.alpha), "x_adv": p.x_adv, "margin": p.margin, "correct": p.correct,
                          "weight": p.weight, "restart": p.restart} for key, p in adv.attacks.items()},
    }
    if distributed.is_main_process():  # under torchrun every rank holds all points; one writes
        atomic_torch_save(path, obj)
    return Path(path)


def _name(key: str | float) -> str:
    """An attack's name in the file: PGD, or the weighted attack's alpha_test by its number name."""
    return key if isinstance(key, str) else number_key(key)


def _key(name: str) -> str | float:
    """The inverse of :func:`_name`, where the file is read."""
    return name if name == PGD else number_from_key(name)


def _parse(obj: dict[str, Any], bad: str) -> AdversarialSet:
    try:
        header = json.loads(obj["config"])
        attacks = {_key(key): AttackPoints(float(a["alpha"]), a["x_adv"], a["margin"], a["correct"], a["weight"],
                                     a.get("restart"))
                   for key, a in obj["attacks"].items()}
        return AdversarialSet(
            run=str(header["run"]), split=Split(header["split"]), source=ModelSource.from_json(header["source"]),
            model=ModelInfo.from_json(header["model"]), config=eval_config_from_dict(header["eval_config"]),
            versions=dict(header.get("versions") or {}), index=obj["index"], label=obj["label"], x=obj["x"],
            attacks=attacks,
        )
    except (KeyError, TypeError, ValueError, AttributeError, WmrbenchError) as exc:
        raise WmrbenchError(f"{bad} (incomplete: {type(exc).__name__} {exc})") from None


def load_adversarial(path: str | Path) -> AdversarialSet:
    """Read an adversarial file with weights_only=True and check that it is whole and consistent."""
    obj = safe_torch_load(path, what="adversarial file")
    bad = f"{path} is not a wmrbench adversarial file"
    if obj.get("format") != ADVERSARIAL_FORMAT:
        raise WmrbenchError(f"{bad} (format {obj.get('format')!r}, expected {ADVERSARIAL_FORMAT!r})")
    adv = _parse(obj, bad)
    n = len(adv.label)
    tensors = [adv.index, adv.label, adv.x] + [t for p in adv.attacks.values() for t in (p.x_adv, p.margin, p.correct, p.weight)]
    if PGD not in adv.attacks or not all(isinstance(t, Tensor) and t.shape[0] == n for t in tensors):
        raise WmrbenchError(f"{bad} (its arrays do not have one row per example)")
    if n == 0:
        raise WmrbenchError(f"adversarial file {path} is corrupt: it holds no examples")
    # The examples themselves: a label outside the data set's classes is the file's fault, and
    # must not reach the model (whose outputs would then be blamed for not fitting).
    check_labels(adv.label, dataset_spec(adv.config.dataset).info.num_classes, f"adversarial file {path}")
    if adv.index.dtype.is_floating_point or len(set(adv.index.tolist())) != n:
        raise WmrbenchError(f"adversarial file {path} is corrupt: its example indices are not {n} distinct integers")
    if not bool(adv.x.isfinite().all()) or adv.x.min() < 0 or adv.x.max() > 1:
        raise WmrbenchError(f"adversarial file {path} is corrupt: its clean images x are not all in [0, 1]")
    eps = adv.config.attack.eps
    for name, p in ((_name(key), p) for key, p in adv.attacks.items()):
        if p.x_adv.shape != adv.x.shape:
            raise WmrbenchError(f"{bad} (attack {name}: x_adv has shape {tuple(p.x_adv.shape)}, x {tuple(adv.x.shape)})")
        if not all(bool(t.isfinite().all()) for t in (p.x_adv, p.margin, p.weight)):
            raise WmrbenchError(f"{bad} (attack {name} holds non-finite points, margins or weights)")
        # A point outside the threat model would make every number computed from it meaningless.
        if (p.x_adv - adv.x).abs().max() > eps + EPS_SLACK or p.x_adv.min() < 0 or p.x_adv.max() > 1:
            raise WmrbenchError(f"{path}: attack {name} leaves the eps={eps:g} ball around x or [0, 1]")
    return adv
