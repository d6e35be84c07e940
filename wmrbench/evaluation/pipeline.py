"""The one evaluation pipeline: load the model and its split, run a per-batch scorer over every
example, gather the per-example records, write the result.

The scorer is what varies (:mod:`wmrbench.evaluation.scorers`): a fresh attack (``evaluate``),
the same attack keeping its points (``attack``), or the model at points saved earlier
(``evaluate --adversarial``). Shards, padding and the gather live here, once.

Under ``torchrun`` each rank scores a contiguous run of whole batches (``batch_size`` is per
process) and the per-example columns are gathered in index order; rank 0 writes the result,
which is the same for any number of processes.

A result is claimed before any work (:func:`claim_result`): its folder must be writable, must
not hold a complete result already (unless ``overwrite``) nor an unfinished one (unless
``resume`` continues it or ``overwrite`` starts over), and is locked until the result is
written. While ``evaluate`` runs, each finished batch is saved in the folder's ``.partial/``
(:mod:`wmrbench.evaluation.partial`), so that a killed run can be resumed. The result is written
as one unit (:func:`write_result`): the old summary goes first, then records.csv, then
summary.json holding the records' SHA-256, so a reader sees either no result or a complete,
matching pair.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from wmrbench import attacks

from wmrbench.core import distributed
from wmrbench.attacks.inputs import check_dtype, check_model, probe as probe_model
from wmrbench.attacks.wrappers import model_device
from wmrbench.core.attack_config import AttackMethod, Norm
from wmrbench.core.checks import parse_enum
from wmrbench.core.config import CUSTOM_DATASET, DatasetName, EvalConfig, Protocol, with_options
from wmrbench.data import ImageSet, dataset_spec, load_split
from wmrbench.core.errors import WmrbenchError, first_line, render_settings, setting
from wmrbench.evaluation import partial
from wmrbench.evaluation.partial import PartialStore
from wmrbench.results.metrics import compute_metrics
from wmrbench.results.uncertainty import uncertainty
from wmrbench.models.source import ModelSource, OpenedSource, SourceKind, build_model, open_source
from wmrbench.core.presets import eval_config
from wmrbench.core.progress import AttackBar, progress_bar
from wmrbench.core.io import atomic_write_text, check_writable, lock_folder, make_folder, remove_file, write_target
from wmrbench.results.records import (
    RECORDS_NAME, SUMMARY_NAME, AdversarialOrigin, ModelInfo, SeedSpread, Summary, is_margin_column, seed_records_name,
    sha256_text, to_csv_text, write_summary,
)
from wmrbench.core.runtime import prepare_input, prepare_model, provenance

# (model, index, x, y, stage=...) -> per-example columns (1-D tensors) for one batch; ``stage`` is
# told the name of each attack as it starts (wmrbench.evaluation.scorers)
Scorer = Callable[..., dict[str, Tensor]]


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
        what = setting("factory", opened.source.factory) if opened.source.factory else f"{opened.source.checkpoint} is a plain state_dict"
        raise WmrbenchError(f"{what}: say which data set with {setting('dataset')}")
    if opened.recorded_dataset == CUSTOM_DATASET:  # wmrbench.fit on the user's own data: no name to load
        raise WmrbenchError(f"{opened.source.checkpoint} was trained by wmrbench.fit on the user's own data: say which "
                            f"data set to evaluate it on with {setting('dataset')} (and its architecture with "
                            f"{setting('arch')} or {setting('factory')}), or evaluate it from Python with wmrbench.evaluate")
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


def plan(
    source: ModelSource, options: Mapping[str, Any], dataset: DatasetName | str | None = None, run: str | None = None,
) -> tuple[OpenedSource, EvalConfig]:
    """Open the source and build the config (the data set's preset with the options on top)."""
    opened = open_source(source)
    dataset = resolve_dataset(opened, dataset)
    norm = options.get("norm") or threat_norm(source)
    if run is None:
        run = source.default_run()
        # Another attack on the same model is another result: a default name that ignored the
        # attack would collide with (and be refused by) the PGD result already there.
        method = options.get("method")
        if method is not None and method is not AttackMethod.PGD:
            run = f"{run}-{AttackMethod(method).value}"
    # A wmrbench checkpoint knows where its data set lives: evaluate it there unless told otherwise.
    recorded_dir = opened.train_config.get("data_dir") if dataset.value == opened.recorded_dataset else None
    base = eval_config(dataset, run, options.get("protocol") or Protocol.DEFAULT, norm, data_dir=recorded_dir)
    return opened, with_options(base, options)


def prepare(opened: OpenedSource, cfg: EvalConfig, train_split: bool = False) -> Prepared:
    """Build the model and load the split (after :func:`plan`); every bad input ends here,
    before any attack runs."""
    dataset = cfg.dataset
    model, info = load_model(opened, cfg.run, dataset)
    split = load_split(dataset, cfg.data_dir, train=train_split, download=cfg.download, verify_checksums=cfg.verify_checksums)
    if cfg.n_examples is not None and cfg.n_examples > len(split) and distributed.is_main_process():
        # Said, not silently done: the result holds fewer examples than were asked for.
        print(render_settings(f"Note: {setting('n_examples', cfg.n_examples)} is more than the {len(split)} examples of the "
                                f"{dataset.value} {'train' if train_split else 'test'} split: all {len(split)} are used"),
              file=sys.stderr)
    data = split.subset(cfg.n_examples)
    check_model_fits(model, data, info.name)
    factory = opened.source.factory
    if factory is not None and opened.source.checkpoint is None and distributed.is_main_process():
        # Said once every input is known good, before the attack: nothing says these weights were trained.
        function = factory.rpartition(":")[2]
        print(render_settings(f"Warning: {setting('factory', factory)} without {setting('checkpoint')}: the weights are those "
                              f"{function}() builds (random, unless it loads trained ones itself); give "
                              f"{setting('checkpoint', 'FILE')} to load a state_dict"),
              file=sys.stderr)
    return Prepared(model, info, cfg, data)


def check_model_fits(model: nn.Module, data: ImageSet, what: str) -> None:
    """A shape mismatch between model and data, or a model whose weights or outputs are not
    finite (a diverged training), becomes one line, not a traceback or a NaN result."""
    check_model(model)  # meta weights first: their values cannot be read
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        raise WmrbenchError(
            f"{what} has non-finite weights ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): "
            "a diverged training? it cannot be evaluated"
        )
    # The probe image goes to the model, wherever the model is (a model an earlier evaluate left on
    # CUDA stays there): the user's model is never moved here, and never to the CPU behind their back.
    probe = data.images(torch.arange(1, device=data.y.device)).to(model_device(model))
    check_dtype(model, probe, "the images")
    logits = probe_model(model, probe, what)  # the attacks' own probe: a tuple, 1 output: one line
    n_classes = int(data.y.max()) + 1
    if logits.dim() == 2 and logits.shape[1] < 2:  # a margin needs another class to compare with
        raise WmrbenchError(f"{what} gives {logits.shape[1]} output per example; a classifier gives one logit per "
                            f"class (at least 2; for a binary task, 2 logits, not one sigmoid score)")
    if logits.dim() != 2 or logits.shape[1] < n_classes:
        raise WmrbenchError(f"the labels hold {n_classes - 1} and {what} gives {logits.shape[1]} outputs: labels are "
                            f"class indices 0..{logits.shape[1] - 1} (the data has {n_classes} classes)")
    if not bool(logits.isfinite().all()):
        value = logits.flatten()[~logits.flatten().isfinite()][0].item()
        raise WmrbenchError(f"{what} gives non-finite outputs ({value}) on the first example; it cannot be evaluated")


def _padded(index: Tensor, x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """A short batch filled up to ``size`` rows by repeating its last example."""
    fill = size - len(y)
    if fill <= 0:
        return index, x, y
    last = torch.full((fill,), len(y) - 1, device=y.device)
    return torch.cat([index, index[last]]), torch.cat([x, x[last]]), torch.cat([y, y[last]])


def collect(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, scorer: Scorer, show_progress: bool = True,
    what: str = "attacking", saved: PartialStore | None = None, device: torch.device | None = None,
) -> dict[str, Tensor]:
    """Run ``scorer`` over ``data`` in batches; its tensors, concatenated on the CPU.

    Every forward pass has the same shape: the last batch is filled up to the others' size
    (the extra rows are dropped), because some CPU and GPU kernels round differently for very
    small batches. Under torchrun, whole batches are shared out (rank r takes a contiguous run
    of them), so every example sits in the same batch as with one process and the records are
    the same bit for bit; every rank returns all of them, in index order.

    With ``saved`` (``evaluate``), a batch saved by an earlier run is read instead of attacked,
    and each batch attacked is saved as it finishes (by the rank that attacked it). A batch is
    the same whenever and wherever it is attacked, so the records do not depend on how many
    runs it took.

    ``device``: where to run, as the command resolved it once at its start (``cfg.device``
    resolved here when a caller has not).
    """
    device = distributed.resolve_device(cfg.device) if device is None else device
    distributed.check_enough(len(data), distributed.env_world_size(), "examples to evaluate")
    ctx = distributed.setup(device)
    if saved is not None:
        # Every rank has checked the results folder before any rank writes into it.
        distributed.barrier()
    model = prepare_model(model, device).eval()
    data = data.to(device)
    size = min(cfg.batch_size, len(data))
    # Global batch numbers: random starts are keyed on the examples' global indices and saved
    # batches on the batch's number, so neither the shard nor an earlier run matters.
    numbers = distributed.eval_batches(len(data), size, ctx.rank, ctx.world_size)
    parts: list[dict[str, Tensor]] = []
    with progress_bar(enabled=show_progress and ctx.is_main) as progress:
        label = what if not ctx.enabled else f"{what} (rank 0 of {ctx.world_size})"
        bar = AttackBar(progress, label, total=min(len(data), numbers.stop * size) - numbers.start * size)
        for number in numbers:
            lo, hi = number * size, min(len(data), (number + 1) * size)
            columns = saved.load(number, lo, hi) if saved is not None else None
            if columns is None:
                index = torch.arange(lo, hi, device=device)
                index, x, y = _padded(index, data.images(index), data.y[index], size)
                found = scorer(model, index, prepare_input(x, device), y, stage=bar.stage)
                columns = {key: values[: hi - lo] for key, values in found.items()}
                if saved is not None:
                    columns = saved.save(number, columns)
            parts.append(columns)
            bar.batch_done(hi - lo, columns.get("pgd_correct"))
    # Without saved batches: one transfer and one gather at the end, and the loop itself never
    # waits for the host (but for the bar's count, once per batch, while a bar is shown).
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


def result_dir(cfg: EvalConfig) -> Path:
    return Path(cfg.results_dir) / cfg.run


def refuse_existing(path: Path, overwrite: bool, what: str) -> None:
    """One line when ``path`` (a complete result) exists and ``overwrite`` was not given."""
    if path.is_dir():
        raise WmrbenchError(f"{path} is a folder, not a {what} file; choose another {setting('run')} or {setting('output')}")
    if path.exists() and not overwrite:
        raise WmrbenchError(
            f"{path} already exists (a complete {what}); pass {setting('overwrite', True)} to replace it, "
            f"or choose another {setting('run')}"
        )


@contextlib.contextmanager
def claim_folder(folder: Path, done: Path, overwrite: bool, what: str) -> Iterator[Path]:
    """Before any work: ``folder`` can be written, ``done`` (the file that marks a complete
    result) is not there unless ``overwrite``, and the folder is this process's until the body
    ends (:func:`wmrbench.core.io.lock_folder`). Under torchrun only rank 0 writes and locks."""
    if not done.is_dir():  # never a device or FIFO (wmrbench.core.io); a folder gets refuse_existing's line
        write_target(done)
    refuse_existing(done, overwrite, what)  # every rank answers the same, before any work
    if not distributed.is_main_process():
        yield folder
        return
    with lock_folder(folder, "results folder", f"wait for it to finish, or choose another {setting('run')}"):
        refuse_existing(done, overwrite, what)  # again, now that no one else can write it
        yield folder


@contextlib.contextmanager
def claim_result(cfg: EvalConfig, overwrite: bool, resume: bool = False) -> Iterator[Path]:
    """:func:`claim_folder` for ``RESULTS_DIR/RUN/`` (whose summary.json marks a complete result),
    which may also hold an unfinished evaluation (``.partial/``): refused unless ``resume``
    continues it or ``overwrite`` starts over (the saved batches are deleted then, under the
    lock, before any work). ``resume`` needs one; it may replace a complete result beside it,
    since only ``overwrite`` starts an evaluation there."""
    folder = result_dir(cfg)

    def check() -> None:
        for name in (RECORDS_NAME, SUMMARY_NAME):  # never a device or FIFO (wmrbench.core.io), and before any work
            if not (folder / name).is_dir():
                write_target(folder / name)
        if not resume:
            refuse_existing(folder / SUMMARY_NAME, overwrite, "result")
        partial.check_claim(folder, overwrite, resume)

    check()  # every rank answers the same, before any work
    if not distributed.is_main_process():
        yield folder
        return
    with lock_folder(folder, "results folder", f"wait for it to finish, or choose another {setting('run')}"):
        check()  # again, now that no one else can write it
        if overwrite:
            partial.clear(folder)
        partial.remove_stale(folder)
        yield folder


@contextlib.contextmanager
def claim_file(path: Path, overwrite: bool, what: str) -> Iterator[Path]:
    """Before any work, for a file given by path (``attack --output``): its folder can be
    written, and the file is not there unless ``overwrite``. (A shared folder is not locked.)
    ``-`` (standard output) is refused: the file is binary and is read back by path; a path that
    is not a regular file (a device, a FIFO) is refused, even with ``overwrite``."""
    if str(path) == "-":
        raise WmrbenchError(f"the {what} is a binary torch file that is read back by its path: give {setting('output')} a file name, not -")
    if not path.is_dir():  # a folder gets refuse_existing's own line
        write_target(path)
    refuse_existing(path, overwrite, what)
    if distributed.is_main_process():  # a read-only folder says so now, not after the attack
        check_writable(make_folder(path.parent, "output folder"), "output folder")
    yield path


def check_finite_records(records: pd.DataFrame, what: str) -> None:
    """Margins that are not finite (a model or an attack that went NaN) never make a result."""
    margins = [c for c in records.columns if is_margin_column(c)]  # weighted_rule.* too
    bad = {c: int((~np.isfinite(records[c].to_numpy(dtype=np.float64))).sum()) for c in margins}
    bad = {c: n for c, n in bad.items() if n}
    if bad:
        where = ", ".join(f"{c} ({n} examples)" for c, n in bad.items())
        raise WmrbenchError(f"{what} gave non-finite margins in {where}; nothing was written")


@dataclass(frozen=True)
class Summarized:
    """A result before anything is written: its summary and the texts of its records files."""

    summary: Summary
    csv_text: str  # records.csv, whose SHA-256 the summary holds
    seed_texts: dict[int, str]  # evaluate --seeds: records-seed<S>.csv of every other seed


def summarize(
    records: pd.DataFrame, cfg: EvalConfig, info: ModelInfo, seconds: float,
    adversarial: AdversarialOrigin | None = None, seed_records: dict[int, pd.DataFrame] | None = None,
    model: nn.Module | None = None, data: ImageSet | None = None,
) -> Summarized:
    """The summary of ``records``: metrics, intervals (the seeded bootstrap), hashes; writes
    nothing. ``evaluate`` writes it (:func:`write_result`); ``wmrbench.evaluate`` returns it.

    ``seed_records`` (``evaluate --seeds``): the records of every seed after ``cfg.seed``,
    summarized in the summary's ``seed_spread``.
    """
    check_finite_records(records, info.name)
    csv_text = to_csv_text(records)
    metrics = compute_metrics(records, list(cfg.alpha_test))
    seed_texts = {}
    spread = None
    if seed_records:
        for seed, frame in seed_records.items():
            check_finite_records(frame, f"{info.name} (seed {seed})")
            seed_texts[seed] = to_csv_text(frame)
        spread = SeedSpread(
            seeds=(cfg.seed, *seed_records),
            metrics={str(cfg.seed): metrics, **{str(s): compute_metrics(f, list(cfg.alpha_test)) for s, f in seed_records.items()}},
            records_sha256={str(s): sha256_text(text) for s, text in seed_texts.items()},
        )
    summary = Summary(
        run=cfg.run, model=info, config=cfg, metrics=metrics,
        seconds=round(seconds, 3), processes=distributed.env_world_size(), versions=provenance(),
        adversarial=adversarial, records_sha256=sha256_text(csv_text), seed_spread=spread,
        uncertainty=uncertainty(records, list(cfg.alpha_test)),  # seeded: a rerun writes the same intervals
        model_sha256=partial.model_sha256(model) if model is not None else None,
        data_sha256=partial.tensors_sha256([("x", data.x), ("y", data.y)]) if data is not None else None,
    )
    return Summarized(summary, csv_text, seed_texts)


def write_result(
    records: pd.DataFrame, cfg: EvalConfig, info: ModelInfo, seconds: float,
    adversarial: AdversarialOrigin | None = None, seed_records: dict[int, pd.DataFrame] | None = None,
    model: nn.Module | None = None, data: ImageSet | None = None,
) -> EvalResult:
    """The result (:func:`summarize`) as one unit: the old summary.json goes, records.csv is
    written (and each other seed's records beside it), then summary.json with the records'
    SHA-256 (its presence, with a matching hash, means the result is complete). Call it inside
    :func:`claim_result`.

    Under torchrun every rank builds the summary; only rank 0 writes.
    """
    done = summarize(records, cfg, info, seconds, adversarial, seed_records, model, data)
    out_dir = result_dir(cfg)
    if distributed.is_main_process():
        remove_file(out_dir / SUMMARY_NAME)  # the old result stops being complete first
        atomic_write_text(out_dir / RECORDS_NAME, done.csv_text)
        for seed, text in done.seed_texts.items():
            atomic_write_text(out_dir / seed_records_name(seed), text)
        write_summary(out_dir / SUMMARY_NAME, done.summary)
    return EvalResult(done.summary, records, out_dir)


class Timer:
    """Seconds since creation (what a summary records as the evaluation's duration)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
