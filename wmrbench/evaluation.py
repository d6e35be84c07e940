"""Run the attacks over a test split and write per-example records plus a summary.

Per batch: one clean forward (A_nat), ONE unweighted PGD attack (A_rob and every A_sa), and ONE
weighted PGD call in which all alpha_test values run side by side: the batch is stacked once per
alpha and each copy carries its alpha (A_tr). Random starts are keyed on (seed, example index),
so an example's result does not depend on its batch, the batch size or its place in the stack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from wmrbench import engine
from wmrbench.config import DatasetName, EvalConfig, InnerLoss, eval_attack_for, to_jsonable
from wmrbench.data import ImageSet, batches, dataset_spec, load_split
from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_json
from wmrbench.metrics import compute_metrics
from wmrbench.progress import progress_bar
from wmrbench.records import tr_columns, write_records
from wmrbench.models.sources import checkpoint_train_config, load_model_from_checkpoint
from wmrbench.runtime import (
    autocast_dtype, default_precision, prepare_input, prepare_model, provenance, resolve_device,
)

DEFAULT_ALPHA_TEST = (1.0, 1.5, 2.0)  # the paper's alpha_test sweep on MNIST and CIFAR-10


@dataclass
class EvalResult:
    records: pd.DataFrame
    summary: dict[str, Any]
    out_dir: Path


def attack_batch(
    model: nn.Module, index: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, amp: torch.dtype | None
) -> dict[str, Tensor]:
    """Clean, unweighted and stacked weighted attacks on one batch -> per-example columns."""
    a = cfg.attack
    common = dict(eps=a.eps, step_size=a.step_size, steps=a.steps, restarts=a.restarts,
                  start=a.start, loss=InnerLoss.CE, seed=cfg.seed, autocast_dtype=amp)
    clean_logits = engine.predict(model, x, amp)
    rob = engine.pgd(model, x, y, alpha=None, index=index, **common)
    k, n = len(cfg.alpha_test), len(y)
    alpha = torch.tensor(cfg.alpha_test, device=x.device).repeat_interleave(n)
    stacked = engine.pgd(
        model, x.repeat(k, 1, 1, 1), y.repeat(k), alpha=alpha, index=index.repeat(k), **common
    )
    columns = {
        "index": index,
        "label": y,
        "clean_correct": clean_logits.argmax(1) == y,
        "clean_margin": engine.margin(clean_logits, y),
        "pgd_correct": rob.logits.argmax(1) == y,
        "pgd_margin": rob.margin,
    }
    tr_correct = (stacked.logits.argmax(1) == y.repeat(k)).view(k, n)
    tr_margin = stacked.margin.view(k, n)
    for j, alpha_value in enumerate(cfg.alpha_test):
        correct_col, margin_col = tr_columns(alpha_value)
        columns[correct_col] = tr_correct[j]
        columns[margin_col] = tr_margin[j]
    return columns


def evaluate_model(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, show_progress: bool = True
) -> pd.DataFrame:
    """Per-example records of ``model`` on ``data`` (already cut to n_examples)."""
    device = resolve_device(cfg.device)
    amp = autocast_dtype(cfg.precision, device)
    model = prepare_model(model, device).eval()
    data = data.to(device)
    parts: list[dict[str, Tensor]] = []
    with progress_bar(enabled=show_progress) as progress:
        task = progress.add_task("attacking", total=len(data), info="")
        full = min(cfg.batch_size, len(data))
        for index, x, y in batches(data, cfg.batch_size):
            # --- issue 5 (speed): the last batch is padded to full size by repeating its last
            # example, and the padding dropped from the columns. Every batch then has one shape,
            # so the attack's CUDA graph (or compiled kernels) is reused; starts are keyed per
            # example, so the padding changes no real example's result.
            n_real = len(y)
            if n_real < full:
                index, x, y = (torch.cat([t, t[-1:].expand(full - n_real, *t.shape[1:])]) for t in (index, x, y))
            columns = attack_batch(model, index, prepare_input(x, device), y, cfg, amp)
            parts.append({key: value[:n_real] for key, value in columns.items()})
            # --- end issue 5
            progress.advance(task, n_real)
    # One transfer at the end: the loop itself never waits for the host.
    merged = {key: torch.cat([p[key] for p in parts]).cpu() for key in parts[0]}
    frame = {}
    for key, values in merged.items():
        if values.dtype == torch.bool:
            frame[key] = values.to(torch.int8).numpy()
        elif values.is_floating_point():
            frame[key] = values.to(torch.float64).numpy()
        else:
            frame[key] = values.numpy()
    return pd.DataFrame(frame)


def check_model_fits(model: nn.Module, data: ImageSet, what: str) -> None:
    """A shape mismatch between model and data becomes one line, not a traceback."""
    probe = data.images(torch.arange(1))
    try:
        logits = engine.predict(model.cpu(), probe)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WmrbenchError(f"{what} cannot take inputs of shape {tuple(probe.shape[1:])}: {first}") from None
    n_classes = int(data.y.max()) + 1
    if logits.dim() != 2 or logits.shape[1] < n_classes:
        raise WmrbenchError(f"{what} gives outputs of shape {tuple(logits.shape[1:])}, the data has {n_classes} classes")


def write_result(
    out_dir: Path, records: pd.DataFrame, cfg: EvalConfig, model_info: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """records.csv, then summary.json (the summary's presence means the result is complete)."""
    summary = {
        "run": cfg.run,
        "model": model_info,
        "config": to_jsonable(cfg),
        "metrics": compute_metrics(records, list(cfg.alpha_test)),
        "seconds": round(seconds, 3),
        "versions": provenance(),
    }
    write_records(out_dir / "records.csv", records)
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def run_evaluation(
    model: nn.Module, model_info: dict[str, Any], cfg: EvalConfig, show_progress: bool = True
) -> EvalResult:
    """Load the test split, attack, and write ``<results_dir>/<run>/{records.csv,summary.json}``."""
    resolve_device(cfg.device)
    dataset_spec(cfg.dataset)
    data = load_split(cfg.dataset, cfg.data_dir, train=False).subset(cfg.n_examples)
    check_model_fits(model, data, model_info.get("name", "the model"))
    started = time.perf_counter()
    records = evaluate_model(model, data, cfg, show_progress)
    out_dir = Path(cfg.results_dir) / cfg.run
    summary = write_result(out_dir, records, cfg, model_info, time.perf_counter() - started)
    return EvalResult(records, summary, out_dir)


def build_eval_config(dataset: DatasetName, run: str, overrides: dict[str, Any]) -> EvalConfig:
    """The paper's evaluation attack for ``dataset`` with every non-None override applied."""
    given = {k: v for k, v in overrides.items() if v is not None}
    attack = eval_attack_for(dataset, **{k: given.pop(k, None) for k in ("eps", "step_size", "steps", "restarts", "start")})
    device = given.pop("device", "auto")
    precision = given.pop("precision", None) or default_precision(resolve_device(device))
    values: dict[str, Any] = dict(
        alpha_test=DEFAULT_ALPHA_TEST, n_examples=None, batch_size=256, seed=0, data_dir="data",
        results_dir="results",
    )
    values.update(given)
    return EvalConfig(dataset=dataset, attack=attack, device=device, precision=precision, run=run, **values)


def evaluate_checkpoint(
    checkpoint: str, arch: str | None, dataset: DatasetName | None, run: str | None,
    overrides: dict[str, Any], show_progress: bool = True,
) -> EvalResult:
    """Evaluate a wmrbench checkpoint (or a plain state_dict with ``arch``) on its dataset."""
    obj_config = checkpoint_train_config(checkpoint)
    if dataset is None:
        if "dataset" not in obj_config:
            raise WmrbenchError(f"{checkpoint} is a plain state_dict: say which data set with --dataset")
        dataset = DatasetName(obj_config["dataset"])
    info = dataset_spec(dataset).info
    model, train_config = load_model_from_checkpoint(checkpoint, arch, info.num_classes, info.in_channels)
    if run is None:
        path = Path(checkpoint)
        run = path.parent.name if path.name == "last.pt" else path.stem
    cfg = build_eval_config(dataset, run, overrides)
    model_info = {
        "name": run,
        "source": "checkpoint",
        "checkpoint": str(checkpoint),
        "arch": train_config.get("arch", arch),
        "defense": train_config.get("defense"),
        "alpha_train": train_config.get("alpha_train"),
        "beta": train_config.get("beta") if train_config.get("defense") == "trades" else None,
        "train_config": train_config,
    }
    return run_evaluation(model, model_info, cfg, show_progress)
