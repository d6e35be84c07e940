"""Run the attacks over a test split and write per-example records plus a summary.

Per batch: one clean forward (A_nat), ONE unweighted PGD attack (A_rob and every A_sa), and ONE
weighted PGD call in which all alpha_test values run side by side: the batch is stacked once per
alpha and each copy carries its alpha (A_tr). Random starts are keyed on (seed, example index),
so an example's result does not depend on its batch, the batch size or its place in the stack.

Under ``torchrun`` each rank attacks a contiguous run of whole batches (``batch_size`` is per
process) and the per-example columns are gathered in index order; rank 0 writes the result,
which is the same for any number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from wmrbench import distributed, engine
from wmrbench.config import DatasetName, EvalConfig, InnerLoss, eval_attack_for, to_jsonable
from wmrbench.data import ImageSet, batches, dataset_spec, load_split
from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_json
from wmrbench.metrics import compute_metrics
from wmrbench.models.loader import ModelSource, SourceKind, load_source, model_sources
from wmrbench.progress import progress_bar
from wmrbench.records import tr_columns, write_records
from wmrbench.runtime import (
    autocast_dtype, default_precision, prepare_input, prepare_model, provenance, resolve_device,
)

DEFAULT_ALPHA_TEST = (1.0, 1.5, 2.0)  # the paper's alpha_test sweep on MNIST and CIFAR-10


@dataclass
class EvalResult:
    records: pd.DataFrame
    summary: dict[str, Any]
    out_dir: Path


@dataclass
class BatchAttacks:
    """Everything the attacks found on one batch (the stacked attack holds k copies, alpha-major)."""

    clean_logits: Tensor
    rob: engine.AttackResult  # unweighted PGD: A_rob and every A_sa
    stacked: engine.AttackResult  # weighted PGD, one copy of the batch per alpha_test: A_tr


def run_batch_attacks(
    model: nn.Module, index: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, amp: torch.dtype | None
) -> BatchAttacks:
    """Clean forward, ONE unweighted PGD and ONE stacked weighted PGD over all alpha_test values."""
    a = cfg.attack
    common = dict(eps=a.eps, step_size=a.step_size, steps=a.steps, restarts=a.restarts,
                  start=a.start, loss=InnerLoss.CE, seed=cfg.seed, autocast_dtype=amp,
                  compile_model=cfg.compile)
    clean_logits = engine.predict(model, x, amp)
    rob = engine.pgd(model, x, y, alpha=None, index=index, **common)
    k, n = len(cfg.alpha_test), len(y)
    alpha = torch.tensor(cfg.alpha_test, device=x.device).repeat_interleave(n)
    stacked = engine.pgd(
        model, x.repeat(k, 1, 1, 1), y.repeat(k), alpha=alpha, index=index.repeat(k), **common
    )
    return BatchAttacks(clean_logits, rob, stacked)


def batch_columns(
    index: Tensor, y: Tensor, clean_logits: Tensor, pgd_logits: Tensor, stacked_logits: Tensor,
    alpha_test: tuple[float, ...],
) -> dict[str, Tensor]:
    """Per-example record columns from the logits at the clean, PGD and stacked weighted points."""
    k, n = len(alpha_test), len(y)
    columns = {
        "index": index,
        "label": y,
        "clean_correct": clean_logits.argmax(1) == y,
        "clean_margin": engine.margin(clean_logits, y),
        "pgd_correct": pgd_logits.argmax(1) == y,
        "pgd_margin": engine.margin(pgd_logits, y),
    }
    tr_correct = (stacked_logits.argmax(1) == y.repeat(k)).view(k, n)
    tr_margin = engine.margin(stacked_logits, y.repeat(k)).view(k, n)
    for j, alpha_value in enumerate(alpha_test):
        correct_col, margin_col = tr_columns(alpha_value)
        columns[correct_col] = tr_correct[j]
        columns[margin_col] = tr_margin[j]
    return columns


def attack_batch(
    model: nn.Module, index: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, amp: torch.dtype | None
) -> dict[str, Tensor]:
    """Clean, unweighted and stacked weighted attacks on one batch -> per-example columns."""
    found = run_batch_attacks(model, index, x, y, cfg, amp)
    return batch_columns(index, y, found.clean_logits, found.rob.logits, found.stacked.logits, cfg.alpha_test)


# (model, index, x, y, cfg, autocast dtype) -> per-example tensors, e.g. attack_batch
BatchFn = Callable[..., dict[str, Tensor]]


def _padded(index: Tensor, x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """A short batch filled up to ``size`` rows by repeating its last example."""
    fill = size - len(y)
    if fill <= 0:
        return index, x, y
    last = torch.full((fill,), len(y) - 1, device=y.device)
    return torch.cat([index, index[last]]), torch.cat([x, x[last]]), torch.cat([y, y[last]])


def collect(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, per_batch: BatchFn, show_progress: bool = True,
    what: str = "attacking",
) -> dict[str, Tensor]:
    """Run ``per_batch`` over ``data`` in batches; its tensors, concatenated on the CPU.

    Every forward pass has the same shape: the last batch is filled up to the others' size
    (the extra rows are dropped), because some CPU and GPU kernels round differently for very
    small batches. Under torchrun, whole batches are shared out (rank r takes a contiguous run
    of them), so every example sits in the same batch as with one process and the records are
    the same bit for bit; every rank returns all of them, in index order.
    """
    device = distributed.resolve_device(cfg.device)
    distributed.check_enough(len(data), distributed.env_world_size(), "examples to evaluate")
    ctx = distributed.setup(device)
    amp = autocast_dtype(cfg.precision, device)
    model = prepare_model(model, device).eval()
    data = data.to(device)
    size = min(cfg.batch_size, len(data))
    # Global indices: the random starts are keyed on them, so the shard does not matter.
    shard = distributed.eval_shard(len(data), size, ctx.rank, ctx.world_size, device)
    parts: list[dict[str, Tensor]] = []
    with progress_bar(enabled=show_progress and ctx.is_main) as progress:
        label = what if not ctx.enabled else f"{what} (rank 0 of {ctx.world_size})"
        task = progress.add_task(label, total=len(shard), info="")
        for index, x, y in batches(data, size, shard):
            n = len(y)
            index, x, y = _padded(index, x, y, size)
            columns = per_batch(model, index, prepare_input(x, device), y, cfg, amp)
            parts.append({key: values[:n] for key, values in columns.items()})
            progress.advance(task, n)
    # One transfer and one gather at the end: the loop itself never waits for the host.
    local = {key: torch.cat([p[key] for p in parts]).cpu() for key in parts[0]} if parts else None
    return distributed.all_gather_columns(local)


def records_frame(columns: dict[str, Tensor]) -> pd.DataFrame:
    """Per-example columns (1-D tensors) -> the records DataFrame (bools as 0/1, floats as float64)."""
    frame = {}
    for key, values in columns.items():
        if values.dtype == torch.bool:
            frame[key] = values.to(torch.int8).numpy()
        elif values.is_floating_point():
            frame[key] = values.to(torch.float64).numpy()
        else:
            frame[key] = values.numpy()
    return pd.DataFrame(frame)


def evaluate_model(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, show_progress: bool = True
) -> pd.DataFrame:
    """Per-example records of ``model`` on ``data`` (already cut to n_examples)."""
    return records_frame(collect(model, data, cfg, attack_batch, show_progress))


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


def build_summary(
    records: pd.DataFrame, cfg: EvalConfig, model_info: dict[str, Any], seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "run": cfg.run,
        "model": model_info,
        "config": to_jsonable(cfg),
        **(extra or {}),
        "metrics": compute_metrics(records, list(cfg.alpha_test)),
        "seconds": round(seconds, 3),
        "processes": distributed.env_world_size(),
        "versions": provenance(),
    }


def write_result(
    out_dir: Path, records: pd.DataFrame, cfg: EvalConfig, model_info: dict[str, Any], seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """records.csv, then summary.json (the summary's presence means the result is complete).

    Under torchrun every rank builds the summary; only rank 0 writes.
    """
    summary = build_summary(records, cfg, model_info, seconds, extra)
    if distributed.is_main_process():
        write_records(out_dir / "records.csv", records)
        atomic_write_json(out_dir / "summary.json", summary)
    return summary


def run_evaluation(
    model: nn.Module, model_info: dict[str, Any], cfg: EvalConfig, show_progress: bool = True
) -> EvalResult:
    """Load the test split, attack, and write ``<results_dir>/<run>/{records.csv,summary.json}``.

    Under torchrun every rank returns the whole result; only rank 0 writes it.
    """
    distributed.resolve_device(cfg.device)
    dataset_spec(cfg.dataset)
    data = load_split(
        cfg.dataset, cfg.data_dir, train=False, download=cfg.download, verify_checksums=cfg.verify_checksums
    ).subset(cfg.n_examples)
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


def evaluate_source(
    source: ModelSource, dataset: DatasetName | None, run: str | None, overrides: dict[str, Any],
    show_progress: bool = True,
) -> EvalResult:
    """Evaluate the model a source names on its data set (the checkpoint's, or cifar10 for a zoo id)."""
    run = run or source.default_run()
    loaded = load_source(source, dataset, run)
    cfg = build_eval_config(loaded.dataset, run, overrides)
    return run_evaluation(loaded.model, loaded.info, cfg, show_progress)


def evaluate_checkpoint(
    checkpoint: str, arch: str | None, dataset: DatasetName | None, run: str | None,
    overrides: dict[str, Any], show_progress: bool = True,
) -> EvalResult:
    """Evaluate a wmrbench checkpoint (or a plain state_dict with ``arch``) on its dataset."""
    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=checkpoint, arch=arch)
    return evaluate_source(source, dataset, run, overrides, show_progress)


def evaluate_model_id(
    model_id: str, dataset: DatasetName | None, threat_model: str | None, model_dir: str | None,
    run: str | None, overrides: dict[str, Any], show_progress: bool = True,
) -> EvalResult:
    """Evaluate a RobustBench zoo model (default: cifar10, Linf, cache under models/)."""
    (source,) = model_sources(model_ids=[model_id], threat_model=threat_model, model_dir=model_dir)
    return evaluate_source(source, dataset, run, overrides, show_progress)


def evaluate_factory(
    factory: str, checkpoint: str | None, dataset: DatasetName | None, run: str | None,
    overrides: dict[str, Any], show_progress: bool = True,
) -> EvalResult:
    """Evaluate your own ``module:function`` model, with weights from ``checkpoint`` if given."""
    source = ModelSource(SourceKind.FACTORY, factory=factory, checkpoint=checkpoint)
    return evaluate_source(source, dataset, run, overrides, show_progress)


@dataclass
class Failure:
    name: str
    message: str


def evaluate_sources(
    sources: list[ModelSource], dataset: DatasetName | None, overrides: dict[str, Any],
    show_progress: bool = True,
) -> tuple[list[EvalResult], list[Failure]]:
    """Evaluate several models in turn, each into its own result; a failure in one loses no other.

    A bad input (WmrbenchError) or any other error of one model (a download that fails, CUDA out
    of memory on a huge zoo model) is recorded and the next model goes on.
    """
    results: list[EvalResult] = []
    failures: list[Failure] = []
    for source in sources:
        try:
            results.append(evaluate_source(source, dataset, None, overrides, show_progress))
        except WmrbenchError as exc:
            failures.append(Failure(source.default_run(), str(exc)))
        except Exception as exc:  # noqa: BLE001  reported at the end, never swallowed
            text = str(exc).strip()
            failures.append(Failure(source.default_run(), f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"))
    return results, failures
