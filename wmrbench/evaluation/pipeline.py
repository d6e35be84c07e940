"""The one evaluation pipeline: load the model and its split, run a per-batch scorer over every
example, gather the per-example records, write the result.

The scorer is what varies (:mod:`wmrbench.evaluation.scorers`): a fresh attack (``evaluate``),
the same attack keeping its points (``attack``), or the model at points saved earlier
(``evaluate --adversarial``). Shards, padding and the gather live here, once.

Under ``torchrun`` each rank scores a contiguous run of whole batches (``batch_size`` is per
process) and the per-example columns are gathered in index order; rank 0 writes the result,
which is the same for any number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from wmrbench import attacks, distributed
from wmrbench.config import DatasetName, EvalConfig, EvalOptions, Norm, Protocol, parse_enum
from wmrbench.data import ImageSet, batches, dataset_spec, load_split
from wmrbench.errors import WmrbenchError, first_line
from wmrbench.metrics import compute_metrics
from wmrbench.models.source import ModelSource, OpenedSource, SourceKind, build_model, open_source
from wmrbench.presets import eval_config
from wmrbench.progress import progress_bar
from wmrbench.records import AdversarialOrigin, ModelInfo, Summary, write_records, write_summary
from wmrbench.runtime import prepare_input, prepare_model, provenance

# (model, index, x, y) -> per-example columns (1-D tensors) for one batch
Scorer = Callable[[nn.Module, Tensor, Tensor, Tensor], dict[str, Tensor]]


@dataclass
class EvalResult:
    summary: Summary
    records: pd.DataFrame
    out_dir: Path


@dataclass
class Prepared:
    """A model ready to be scored, with its config, description and data."""

    model: nn.Module
    info: ModelInfo
    cfg: EvalConfig
    data: ImageSet


def resolve_dataset(opened: OpenedSource, dataset: DatasetName | str | None) -> DatasetName:
    """The data set given, else the one the source records, else one line asking for it."""
    if dataset is not None:
        return parse_enum(DatasetName, dataset, "dataset")
    if opened.recorded_dataset is None:
        what = f"--model {opened.source.factory}" if opened.source.factory else f"{opened.source.checkpoint} is a plain state_dict"
        raise WmrbenchError(f"{what}: say which data set with --dataset")
    return parse_enum(DatasetName, opened.recorded_dataset, "dataset")


def threat_norm(source: ModelSource) -> Norm:
    """The norm a model is attacked in by default: its RobustBench threat model's, else L-inf.

    A zoo model is benchmarked in one threat model; attacking an L2 model in L-inf (or the
    reverse) gives numbers no one can compare. Corruption models are not adversarial models.
    """
    if source.kind is not SourceKind.ROBUSTBENCH:
        return Norm.LINF
    threat = (source.threat_model or "Linf").lower()
    if threat == "corruptions":
        raise WmrbenchError(
            f"{source.model_id} is a RobustBench corruptions model: it is benchmarked on common corruptions "
            "(CIFAR-10-C), not adversarial attacks; wmrbench evaluates Linf and L2 models"
        )
    return Norm.L2 if threat == "l2" else Norm.LINF


def load_model(opened: OpenedSource, run: str, dataset: DatasetName) -> tuple[nn.Module, ModelInfo]:
    info = dataset_spec(dataset).info
    return build_model(opened, run, dataset.value, info.num_classes, info.in_channels)


def prepare(
    source: ModelSource, options: EvalOptions, dataset: DatasetName | str | None = None, run: str | None = None,
    train_split: bool = False,
) -> Prepared:
    """Open the source, build the config (the data set's preset with the options on top), build
    the model and load the split; every bad input ends here, before any attack runs."""
    opened = open_source(source)
    dataset = resolve_dataset(opened, dataset)
    norm = options.norm or threat_norm(source)
    # A wmrbench checkpoint knows where its data set lives: evaluate it there unless told otherwise.
    recorded_dir = opened.train_config.get("data_dir") if dataset.value == opened.recorded_dataset else None
    base = eval_config(dataset, run or source.default_run(), options.protocol or Protocol.DEFAULT, norm,
                       data_dir=recorded_dir)
    cfg = options.apply(base)
    distributed.resolve_device(cfg.device)
    model, info = load_model(opened, cfg.run, dataset)
    data = load_split(
        dataset, cfg.data_dir, train=train_split, download=cfg.download, verify_checksums=cfg.verify_checksums
    ).subset(cfg.n_examples)
    check_model_fits(model, data, info.name)
    return Prepared(model, info, cfg, data)


def check_model_fits(model: nn.Module, data: ImageSet, what: str) -> None:
    """A shape mismatch between model and data becomes one line, not a traceback."""
    probe = data.images(torch.arange(1))
    try:
        logits = attacks.predict(model.cpu(), probe)
    except RuntimeError as exc:
        raise WmrbenchError(f"{what} cannot take inputs of shape {tuple(probe.shape[1:])}: {first_line(exc)}") from None
    n_classes = int(data.y.max()) + 1
    if logits.dim() != 2 or logits.shape[1] < n_classes:
        raise WmrbenchError(f"{what} gives outputs of shape {tuple(logits.shape[1:])}, the data has {n_classes} classes")


def _padded(index: Tensor, x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """A short batch filled up to ``size`` rows by repeating its last example."""
    fill = size - len(y)
    if fill <= 0:
        return index, x, y
    last = torch.full((fill,), len(y) - 1, device=y.device)
    return torch.cat([index, index[last]]), torch.cat([x, x[last]]), torch.cat([y, y[last]])


def collect(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, scorer: Scorer, show_progress: bool = True,
    what: str = "attacking",
) -> dict[str, Tensor]:
    """Run ``scorer`` over ``data`` in batches; its tensors, concatenated on the CPU.

    Every forward pass has the same shape: the last batch is filled up to the others' size
    (the extra rows are dropped), because some CPU and GPU kernels round differently for very
    small batches. Under torchrun, whole batches are shared out (rank r takes a contiguous run
    of them), so every example sits in the same batch as with one process and the records are
    the same bit for bit; every rank returns all of them, in index order.
    """
    device = distributed.resolve_device(cfg.device)
    distributed.check_enough(len(data), distributed.env_world_size(), "examples to evaluate")
    ctx = distributed.setup(device)
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
            columns = scorer(model, index, prepare_input(x, device), y)
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


def write_result(
    records: pd.DataFrame, cfg: EvalConfig, info: ModelInfo, seconds: float,
    adversarial: AdversarialOrigin | None = None,
) -> EvalResult:
    """records.csv, then summary.json (the summary's presence means the result is complete).

    Under torchrun every rank builds the summary; only rank 0 writes.
    """
    summary = Summary(
        run=cfg.run, model=info, config=cfg, metrics=compute_metrics(records, list(cfg.alpha_test)),
        seconds=round(seconds, 3), processes=distributed.env_world_size(), versions=provenance(),
        adversarial=adversarial,
    )
    out_dir = Path(cfg.results_dir) / cfg.run
    if distributed.is_main_process():
        write_records(out_dir / "records.csv", records)
        write_summary(out_dir / "summary.json", summary)
    return EvalResult(summary, records, out_dir)


class Timer:
    """Seconds since creation (what a summary records as the evaluation's duration)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
