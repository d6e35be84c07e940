"""``attack``: save the adversarial examples of a model; ``evaluate --adversarial``: score them.

``run_attack`` runs exactly the attacks ``evaluate`` runs (through
:func:`wmrbench.evaluation.run_batch_attacks`, hence through ``engine.pgd``): one unweighted PGD
and one weighted PGD per alpha_test, with starts keyed on (seed, example index). It writes ONE
file, atomically, readable with ``torch.load(..., weights_only=True)``::

    {"format": "wmrbench-adversarial-v1",
     "config": JSON string (run, split, model source and description, EvalConfig, versions),
     "index": int64 [N] (positions in the split), "label": int64 [N],
     "x": float32 [N, C, H, W] (the clean inputs),
     "attacks": {"pgd": {...}, "<alpha>": {...}, ...}}

where each attack holds ``alpha`` (0.0 for the unweighted PGD), ``x_adv`` float32 [N, C, H, W],
``margin`` float32 [N] and ``correct`` bool [N] (the attacked model's, at x_adv) and ``weight``
float64 [N]: the attacker's normalized weights ``s_i / sum_j s_j`` at that alpha (uniform 1/N for
the unweighted PGD).

The clean inputs are saved too (a decision, not an accident): with them the file alone gives
A_nat, the eps-ball can be checked when the file is read, and the examples can be scored on
another model (a transfer attack) without the data set. They cost 1/(k+2) of the file.

``evaluate_adversarial`` scores the file's points on a model without attacking again; on the
attacked model with the same batch size it reproduces ``evaluate``'s records and metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wmrbench import engine
from wmrbench.config import DatasetName, EvalConfig, eval_config_from_dict, to_jsonable
from wmrbench.data import ImageSet, load_split
from wmrbench.errors import WmrbenchError
from wmrbench.evaluation import (
    EvalResult, batch_columns, build_eval_config, check_model_fits, collect, records_frame,
    run_batch_attacks, write_result,
)
from wmrbench import distributed
from wmrbench.io import atomic_torch_save
from wmrbench.metrics import normalized_weights
from wmrbench.models.loader import MODEL_OPTIONS, ModelSource, load_source, source_from_dict
from wmrbench.models.sources import read_checkpoint
from wmrbench.records import alpha_key
from wmrbench.runtime import provenance

ADVERSARIAL_FORMAT = "wmrbench-adversarial-v1"
PGD = "pgd"  # the unweighted attack's key
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


@dataclass
class AdversarialSet:
    config: dict[str, Any]
    index: Tensor
    label: Tensor
    x: Tensor
    attacks: dict[str, AttackPoints]

    @property
    def eval_config(self) -> EvalConfig:
        return eval_config_from_dict(self.config["eval_config"])


# --- attack --------------------------------------------------------------------------------------


def _attack_points(model: nn.Module, index: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, amp: torch.dtype | None) -> dict[str, Tensor]:
    """One batch: evaluate's attacks, keeping the points (stacked copies regrouped per example)."""
    found = run_batch_attacks(model, index, x, y, cfg, amp)
    k, n = len(cfg.alpha_test), len(y)
    out = {"index": index, "label": y, "x": x, "pgd_x_adv": found.rob.x_adv, "pgd_margin": found.rob.margin}
    # [k*n, ...] alpha-major -> [n, k, ...]: rows of later batches then concatenate per example.
    out["tr_x_adv"] = found.stacked.x_adv.reshape(k, n, *x.shape[1:]).transpose(0, 1)
    out["tr_margin"] = found.stacked.margin.view(k, n).transpose(0, 1)
    out["pgd_correct"] = found.rob.logits.argmax(1) == y
    out["tr_correct"] = (found.stacked.logits.argmax(1) == y.repeat(k)).view(k, n).transpose(0, 1)
    return out


def _points(alpha: float, x_adv: Tensor, margin: Tensor, correct: Tensor) -> AttackPoints:
    weight = torch.from_numpy(normalized_weights(margin.numpy(), alpha))
    return AttackPoints(alpha, x_adv.float().contiguous(), margin.float(), correct.bool(), weight)


def run_attack(
    source: ModelSource, dataset: DatasetName | None, split: Split, run: str | None,
    output: str | None, overrides: dict[str, Any], show_progress: bool = True,
) -> tuple[Path, AdversarialSet]:
    """Attack a model on a split; write the points to ``output`` (default RESULTS_DIR/RUN/adversarial.pt)."""
    run = run or source.default_run()
    loaded = load_source(source, dataset, run)
    cfg = build_eval_config(loaded.dataset, run, overrides)
    data = load_split(
        cfg.dataset, cfg.data_dir, train=split is Split.TRAIN, download=cfg.download,
        verify_checksums=cfg.verify_checksums,
    ).subset(cfg.n_examples)
    check_model_fits(loaded.model, data, loaded.info.get("name", "the model"))
    path = Path(output) if output else Path(cfg.results_dir) / run / "adversarial.pt"
    cols = collect(loaded.model, data, cfg, _attack_points, show_progress)
    attacks = {PGD: _points(0.0, cols["pgd_x_adv"], cols["pgd_margin"], cols["pgd_correct"])}
    for j, alpha in enumerate(cfg.alpha_test):
        attacks[alpha_key(alpha)] = _points(alpha, cols["tr_x_adv"][:, j], cols["tr_margin"][:, j], cols["tr_correct"][:, j])
    config = {
        "format": ADVERSARIAL_FORMAT, "run": run, "split": split.value, "source": to_jsonable(source),
        "model": loaded.info, "eval_config": to_jsonable(cfg), "versions": provenance(),
    }
    adv = AdversarialSet(config, cols["index"], cols["label"], cols["x"].float().contiguous(), attacks)
    save_adversarial(path, adv)
    return path, adv


def save_adversarial(path: str | Path, adv: AdversarialSet) -> Path:
    obj = {
        "format": ADVERSARIAL_FORMAT,
        "config": json.dumps(adv.config, sort_keys=True),
        "index": adv.index, "label": adv.label, "x": adv.x,
        "attacks": {key: {"alpha": float(p.alpha), "x_adv": p.x_adv, "margin": p.margin,
                          "correct": p.correct, "weight": p.weight} for key, p in adv.attacks.items()},
    }
    if distributed.is_main_process():  # under torchrun every rank holds all points; one writes
        atomic_torch_save(path, obj)
    return Path(path)


def load_adversarial(path: str | Path) -> AdversarialSet:
    """Read an adversarial file with weights_only=True and check that it is whole and consistent."""
    obj = read_checkpoint(path, what="adversarial file")
    bad = f"{path} is not a wmrbench adversarial file"
    if obj.get("format") != ADVERSARIAL_FORMAT:
        raise WmrbenchError(f"{bad} (format {obj.get('format')!r}, expected {ADVERSARIAL_FORMAT!r})")
    try:
        config = json.loads(obj["config"])
        index, label, x = obj["index"], obj["label"], obj["x"]
        attacks = {key: AttackPoints(float(a["alpha"]), a["x_adv"], a["margin"], a["correct"], a["weight"])
                   for key, a in obj["attacks"].items()}
        eps = float(config["eval_config"]["attack"]["eps"])
        eval_config_from_dict(config["eval_config"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WmrbenchError(f"{bad} (incomplete: {type(exc).__name__} {exc})") from None
    n = len(label)
    tensors = [index, label, x] + [t for p in attacks.values() for t in (p.x_adv, p.margin, p.correct, p.weight)]
    if PGD not in attacks or not all(isinstance(t, Tensor) and t.shape[0] == n for t in tensors):
        raise WmrbenchError(f"{bad} (its arrays do not have one row per example)")
    for key, p in attacks.items():
        if p.x_adv.shape != x.shape:
            raise WmrbenchError(f"{bad} (attack {key}: x_adv has shape {tuple(p.x_adv.shape)}, x {tuple(x.shape)})")
        # A point outside the threat model would make every number computed from it meaningless.
        if (p.x_adv - x).abs().max() > eps + EPS_SLACK or p.x_adv.min() < 0 or p.x_adv.max() > 1:
            raise WmrbenchError(f"{path}: attack {key} leaves the eps={eps:g} ball around x or [0, 1]")
    return AdversarialSet(config, index, label, x, attacks)


# --- score ---------------------------------------------------------------------------------------


REPLAY_FIXED = ("eps", "step_size", "steps", "restarts", "start", "seed", "data_dir")


def _replay_config(adv: AdversarialSet, path: str | Path, run: str, overrides: dict[str, Any]) -> EvalConfig:
    """The file's EvalConfig with the settings that may change when scoring applied."""
    fixed = [k for k in REPLAY_FIXED if overrides.get(k) is not None]
    if fixed:
        names = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise WmrbenchError(f"{names}: the attack is already in {path}; these settings apply when attacking")
    saved = adv.eval_config
    alpha_test = overrides.get("alpha_test") or saved.alpha_test
    missing = [a for a in alpha_test if a not in saved.alpha_test]
    if missing:
        raise WmrbenchError(
            f"{path} holds weighted attacks for alpha_test {', '.join(f'{a:g}' for a in saved.alpha_test)}; "
            f"not for {', '.join(f'{a:g}' for a in missing)}"
        )
    values = {k: v for k, v in overrides.items() if v is not None and k not in REPLAY_FIXED}
    values.update(alpha_test=tuple(alpha_test), run=run)
    merged = {**to_jsonable(saved), **to_jsonable(values)}
    return eval_config_from_dict(merged)


def score_adversarial(model: nn.Module, adv: AdversarialSet, cfg: EvalConfig, show_progress: bool = True) -> Any:
    """Records of ``model`` at the file's clean and adversarial points (no attack runs)."""
    data = ImageSet(adv.x, adv.label).subset(cfg.n_examples)
    keys = [alpha_key(a) for a in cfg.alpha_test]
    held: dict[str, Tensor] = {}

    def score_batch(model: nn.Module, pos: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, amp: torch.dtype | None) -> dict[str, Tensor]:
        if not held:  # the points go to the model's device once, not once per batch
            held.update({key: adv.attacks[key].x_adv.to(pos.device) for key in [PGD, *keys]})
            held["index"] = adv.index.to(pos.device)
        # The stacked points, alpha-major, exactly as evaluate's weighted attack scored them.
        stacked = torch.cat([held[key][pos] for key in keys]).to(x.dtype)
        return batch_columns(
            held["index"][pos], y, engine.predict(model, x, amp),
            engine.predict(model, held[PGD][pos].to(x.dtype), amp), engine.predict(model, stacked, amp),
            cfg.alpha_test,
        )

    return records_frame(collect(model, data, cfg, score_batch, show_progress, what="scoring"))


def evaluate_adversarial(
    path: str | Path, source: ModelSource | None, dataset: DatasetName | None, run: str | None,
    overrides: dict[str, Any], show_progress: bool = True,
) -> EvalResult:
    """Score a saved attack on the model it attacked (``source=None``) or on another one."""
    adv = load_adversarial(path)
    saved_source = source_from_dict(adv.config["source"])
    saved_dataset = adv.eval_config.dataset
    if dataset is not None and dataset is not saved_dataset:
        raise WmrbenchError(f"{path} holds {saved_dataset.value} examples, not {dataset.value}")
    if run is None:
        # Points crafted on another model make a transfer result: never overwrite the model's own.
        run = adv.config["run"] if source in (None, saved_source) else f"{source.default_run()}-from-{adv.config['run']}"
    try:
        loaded = load_source(source or saved_source, saved_dataset, run)
    except WmrbenchError as exc:
        if source is not None:
            raise
        raise WmrbenchError(f"{exc} (the attacked model, as {path} records it; or name one with {MODEL_OPTIONS})") from None
    cfg = _replay_config(adv, path, run, overrides)
    check_model_fits(loaded.model, ImageSet(adv.x, adv.label), loaded.info.get("name", "the model"))
    started = time.perf_counter()
    records = score_adversarial(loaded.model, adv, cfg, show_progress)
    out_dir = Path(cfg.results_dir) / cfg.run
    extra = {"adversarial": {"file": str(path), "split": adv.config.get("split"), "attacked": adv.config["source"]}}
    summary = write_result(out_dir, records, cfg, loaded.info, time.perf_counter() - started, extra)
    return EvalResult(records, summary, out_dir)
