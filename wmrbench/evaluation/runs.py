"""What ``evaluate`` and ``attack`` do, each as one call of the pipeline with its scorer."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from wmrbench.core import distributed
from wmrbench.core import resume as resume_rule
from wmrbench.core.config import (
    ATTACK_FIELDS,
    FIXED_BY_ATTACK,
    DatasetName,
    EvalConfig,
    fields_with,
    given_settings,
    with_options,
)
from wmrbench.data import ImageSet
from wmrbench.core.errors import Interrupted, WmrbenchError, first_line, setting
from wmrbench.evaluation import partial
from wmrbench.evaluation.adversarial_file import (
    ADVERSARIAL_NAME,
    PGD,
    AdversarialSet,
    AttackPoints,
    Split,
    load_adversarial,
    save_adversarial,
)
from wmrbench.evaluation.examples import write_examples
from wmrbench.core.io import remove_file
from wmrbench.results.points import EXAMPLES_NAME
from wmrbench.evaluation.partial import PartialStore
from wmrbench.evaluation.pipeline import (
    EvalResult,
    Prepared,
    Timer,
    check_finite_records,
    check_model_fits,
    claim_file,
    claim_folder,
    claim_result,
    collect,
    load_model,
    plan,
    prepare,
    records_frame,
    result_dir,
    write_result,
)
from wmrbench.evaluation.scorers import AttackScorer, PointsScorer, ReplayScorer
from wmrbench.models.source import MODEL_OPTIONS, ModelSource, OpenedSource, SourceKind, open_source
from wmrbench.results.records import (
    PYTHON_SOURCE,
    is_margin_column,
    AdversarialOrigin,
    ModelInfo,
    Summary,
    read_summary,
    to_csv_text,
    tr_columns,
    tr_restart_column,
)
from wmrbench.core.runtime import provenance


def evaluate_model(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, show_progress: bool = True, saved: PartialStore | None = None,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Per-example records of ``model`` attacked on ``data`` (already cut to n_examples); with
    ``saved``, batches saved earlier are read and the others saved as they finish."""
    scorer = AttackScorer(cfg)
    return records_frame(collect(model, data, cfg, scorer, show_progress, scorer.what, saved, device))


def attack_examples(
    model: nn.Module, data: ImageSet, cfg: EvalConfig, device: torch.device, show_progress: bool = True,
    saved: PartialStore | None = None,
) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """What ``evaluate`` measures on ``data`` (already cut to n_examples): the records of the
    attack with ``cfg.seed``, and those of every other seed of ``cfg.seeds`` (``--seeds``).

    The one evaluation loop: the command (:func:`evaluate_source`) and the Python API
    (:func:`wmrbench.evaluation.api.evaluate`) both call it, then :func:`summarize` the records.
    """
    records = evaluate_model(model, data, cfg, show_progress, saved, device)
    # --seeds: the same attack with each other seed's keyed starts (not saved part-way:
    # a resumed run reads the first seed's batches and attacks with the others again).
    seed_records = {seed: evaluate_model(model, data, dataclasses.replace(cfg, seed=seed, seeds=()), show_progress,
                                         device=device) for seed in cfg.seeds[1:]}
    return records, seed_records


def resume_command(source: ModelSource, cfg: EvalConfig) -> str:
    """The command that continues ``cfg``'s evaluation of ``source`` (the settings come from the
    saved manifest; the model, the data set and where the result lies are named)."""
    return shlex.join(["wmrbench", "evaluate", *source.command_options(), "--dataset", cfg.dataset.value,
                       "--run", cfg.run, "--results-dir", cfg.results_dir, "--resume"])


def _manifest(prepared: Prepared, source: ModelSource, device: torch.device) -> partial.Manifest:
    return partial.new_manifest(prepared.cfg, prepared.info, prepared.model, prepared.data.x, prepared.data.y,
                                device.type, provenance(), resume_command(source, prepared.cfg))


def _resumed_config(
    started: EvalConfig, fresh: EvalConfig, options: Mapping[str, Any], dataset: DatasetName | str | None,
) -> EvalConfig:
    """As training's --resume: the saved settings with the options given on top (only the
    resumable ones may differ), written to the folder that was read."""
    requested = resume_rule.requested(started, options, run=fresh.run, results_dir=fresh.results_dir, dataset=dataset)
    cfg = partial.resume_config(started, requested, result_dir(fresh))
    return cfg


def evaluate_source(
    source: ModelSource, options: Mapping[str, Any], dataset: DatasetName | str | None = None, run: str | None = None,
    show_progress: bool = True, overwrite: bool = False, resume: bool = False, keep_examples: int | None = None,
) -> EvalResult:
    """Evaluate the model a source names on its data set; write ``<results_dir>/<run>/``
    (with ``keep_examples`` K, also the K examples that decide A_sa: ``examples.pt``).

    An existing complete result there is refused unless ``overwrite``; where the result goes
    is checked before any work. Each finished batch is saved in ``<run>/.partial/`` until the
    result is written; ``resume`` continues from them (with the settings they were started
    with: one that differs, other weights or other examples are refused before any work) and
    gives the result an uninterrupted run gives. Under torchrun every rank returns the whole
    result; only rank 0 writes it.
    """
    opened, cfg = plan(source, options, dataset, run)
    started = partial.read_manifest(result_dir(cfg)) if resume else None
    if started is not None:
        cfg = _resumed_config(started.config, cfg, options, dataset)
    device = distributed.resolve_device(cfg.device)  # once, before any work; passed down from here
    with claim_result(cfg, overwrite, resume):
        prepared = prepare(opened, cfg)
        manifest = _manifest(prepared, source, device)
        if started is not None:
            partial.check_same(started, manifest, result_dir(cfg))
        saved = PartialStore(result_dir(cfg), started or manifest, resumed=started is not None)
        main = distributed.is_main_process()
        timer = Timer()
        try:
            records, seed_records = attack_examples(prepared.model, prepared.data, prepared.cfg, device, show_progress, saved)
        except BaseException as exc:
            if main:  # a run that saved no batch leaves nothing to resume, and nothing behind
                saved.discard_if_empty()
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
                raise Interrupted(_interrupted_line(result_dir(cfg), manifest.resume_command)) from None
            raise
        try:
            check_finite_records(records, prepared.info.name)
        except WmrbenchError:
            if main:  # the same model would give the same non-finite margins: nothing worth resuming
                saved.finish()
            raise
        result = write_result(records, prepared.cfg, prepared.info, timer.seconds, seed_records=seed_records,
                              model=prepared.model, data=prepared.data)
        if main:  # the summary marks the result complete: the saved batches have served
            saved.finish()
            if keep_examples:
                write_examples(result.out_dir, prepared.model, prepared.data, prepared.cfg, records, keep_examples, device)
            else:  # an earlier evaluation's examples would not be this result's
                remove_file(result.out_dir / EXAMPLES_NAME)
        return result


def _interrupted_line(folder: Path, command: str) -> str:
    """What a Ctrl-C kept of an evaluation, and the command that continues it."""
    if not partial.has_partial(folder):
        return f"no batch of {folder} had finished, so nothing was saved; run the same command again to start it"
    return f"{folder} keeps {partial.partial_progress(folder)}; continue with: {command}"


@dataclass
class Failure:
    name: str
    message: str


def evaluate_sources(
    sources: list[ModelSource], options: Mapping[str, Any], dataset: DatasetName | str | None = None,
    show_progress: bool = True, overwrite: bool = False, resume: bool = False, keep_examples: int | None = None,
) -> tuple[list[EvalResult], list[Failure]]:
    """Evaluate several models in turn, each into its own result; a failure in one loses no other.

    A bad input (WmrbenchError) or any other error of one model (a download that fails, CUDA out
    of memory on a huge zoo model) is recorded and the next model goes on.
    """
    results: list[EvalResult] = []
    failures: list[Failure] = []
    for source in sources:
        try:
            results.append(evaluate_source(source, options, dataset, None, show_progress, overwrite, resume, keep_examples))
        except WmrbenchError as exc:
            failures.append(Failure(source.default_run(), str(exc)))
        except Exception as exc:  # noqa: BLE001  reported at the end, never swallowed
            failures.append(Failure(source.default_run(), first_line(exc, with_type=True)))
    return results, failures


def run_attack(
    source: ModelSource, options: Mapping[str, Any], dataset: DatasetName | str | None = None, split: Split = Split.TEST,
    run: str | None = None, output: str | None = None, show_progress: bool = True, overwrite: bool = False,
) -> tuple[Path, AdversarialSet]:
    """Attack a model on a split; write the points to ``output`` (default RESULTS_DIR/RUN/adversarial.pt).

    An existing file there is refused unless ``overwrite``; where it goes is checked before any work.
    """
    opened, cfg = plan(source, options, dataset, run)
    device = distributed.resolve_device(cfg.device)  # once, before any work
    if output:
        path = Path(output)
        claim = claim_file(path, overwrite, "adversarial file")
    else:
        path = Path(cfg.results_dir) / cfg.run / ADVERSARIAL_NAME
        claim = claim_folder(path.parent, path, overwrite, "adversarial file")
    with claim:
        return path, _attack(opened, cfg, source, split, path, show_progress, device)


def _attack(
    opened: OpenedSource, cfg: EvalConfig, source: ModelSource, split: Split, path: Path, show_progress: bool,
    device: torch.device,
) -> AdversarialSet:
    prepared = prepare(opened, cfg, train_split=split is Split.TRAIN)
    cols = collect(prepared.model, prepared.data, cfg, PointsScorer(cfg), show_progress, device=device)
    margins = {key: values for key, values in cols.items() if is_margin_column(key)}
    check_finite_records(records_frame(margins), prepared.info.name)  # no NaN points or weights are saved
    found: dict[str | float, AttackPoints] = {
        PGD: AttackPoints.of(0.0, cols["pgd_x_adv"], cols["pgd_margin"], cols["pgd_correct"], cols["pgd_restart"])}
    for j, alpha in enumerate(cfg.alpha_test):
        correct_col, margin_col = tr_columns(alpha)
        found[alpha] = AttackPoints.of(
            alpha, cols["tr_x_adv"][:, j], cols[margin_col], cols[correct_col], cols[tr_restart_column(alpha)]
        )
    adv = AdversarialSet(
        run=cfg.run, split=split, source=source, model=prepared.info, config=cfg, versions=provenance(),
        index=cols["index"], label=cols["label"], x=cols["x"].float().contiguous(), attacks=found,
    )
    save_adversarial(path, adv)
    return adv


FIXED_OPTIONS = (fields_with(EvalConfig, FIXED_BY_ATTACK) - {"attack"}) | ATTACK_FIELDS


def replay_config(adv: AdversarialSet, path: str | Path, run: str, options: Mapping[str, Any]) -> EvalConfig:
    """The file's EvalConfig with the options that may change when scoring applied."""
    given = given_settings(options)
    fixed = sorted(k for k in given if k in FIXED_OPTIONS)
    if fixed:
        names = ", ".join(setting(k) for k in fixed)
        raise WmrbenchError(f"{names}: the attack is already in {path}; these settings apply when attacking")
    saved = adv.config.alpha_test
    missing = [a for a in given.get("alpha_test", ()) if a not in saved]
    if missing:
        raise WmrbenchError(
            f"{path} holds weighted attacks for alpha_test {', '.join(f'{a:g}' for a in saved)}; "
            f"not for {', '.join(f'{a:g}' for a in missing)}"
        )
    return with_options(adv.config, run=run, **given)


def evaluate_adversarial(
    path: str | Path, source: ModelSource | None, options: Mapping[str, Any], dataset: DatasetName | str | None = None,
    run: str | None = None, show_progress: bool = True, overwrite: bool = False,
) -> EvalResult:
    """Score a saved attack on the model it attacked (``source=None``) or on another one.

    An existing complete result of that run is refused unless ``overwrite``."""
    adv = load_adversarial(path)
    saved_dataset = adv.config.dataset
    if dataset is not None and DatasetName(dataset) is not saved_dataset:
        raise WmrbenchError(f"{path} holds {saved_dataset.value} examples, not {DatasetName(dataset).value}")
    if run is None:
        # Points crafted on another model make a transfer result: never overwrite the model's own.
        run = adv.run if source in (None, adv.source) else f"{source.default_run()}-from-{adv.run}"
    cfg = replay_config(adv, path, run, options)
    device = distributed.resolve_device(cfg.device)  # once, before any work
    with claim_result(cfg, overwrite):
        try:
            model, info = load_model(open_source(source or adv.source), run, saved_dataset)
        except WmrbenchError as exc:
            if source is not None:
                raise
            raise WmrbenchError(f"{exc} (the attacked model, as {path} records it; or name one with {MODEL_OPTIONS})") from None
        data = ImageSet(adv.x, adv.label)
        check_model_fits(model, data, info.name)
        timer = Timer()
        scorer = ReplayScorer(adv, cfg)
        records = records_frame(collect(model, data.subset(cfg.n_examples), cfg, scorer, show_progress, scorer.what,
                                        device=device))
        origin = AdversarialOrigin(file=str(path), split=adv.split.value, attacked=adv.header()["source"])
        return write_result(records, cfg, info, timer.seconds, origin, model=model, data=data.subset(cfg.n_examples))


def evaluate_models(
    sources: list[ModelSource], options: Mapping[str, Any], dataset: DatasetName | str | None = None,
    run: str | None = None, adversarial: str | None = None, show_progress: bool = True, overwrite: bool = False,
    resume: bool = False, keep_examples: int | None = None,
) -> tuple[list[EvalResult], list[Failure]]:
    """What ``evaluate`` does with the models its options name: score saved points
    (``adversarial``), evaluate one model (its error is the command's), or several in turn
    (``resume``: continue their unfinished evaluations). ``keep_examples`` K: each result also
    keeps the K examples that decide A_sa (:mod:`wmrbench.evaluation.examples`)."""
    if keep_examples is not None and keep_examples < 1:
        raise WmrbenchError(f"{setting('keep_examples', keep_examples)}: keep at least 1 example (16 is typical)")
    if keep_examples and adversarial is not None:
        raise WmrbenchError(f"{setting('adversarial')} scores saved points: the report shows that file's own points; "
                            f"drop {setting('keep_examples')}")
    if resume and overwrite:
        raise WmrbenchError(f"{setting('resume', True)} continues an unfinished evaluation and {setting('overwrite', True)} "
                            "starts over: give one of them")
    if resume and adversarial is not None:
        # Scoring saved points runs no attack: it is quick to redo, so it saves no batches.
        raise WmrbenchError(f"{setting('resume', True)} continues an interrupted attack; {setting('adversarial')} attacks "
                            f"nothing: drop {setting('resume')}")
    if adversarial is not None:
        if len(sources) > 1:
            raise WmrbenchError(f"{setting('adversarial')} scores its points on one model: give one {setting('model_id')}")
        source = sources[0] if sources else None
        return [evaluate_adversarial(adversarial, source, options, dataset, run, show_progress, overwrite)], []
    if not sources:
        raise WmrbenchError(f"say which model: {MODEL_OPTIONS}; or {setting('adversarial', 'FILE')}")
    if len(sources) == 1:
        return [evaluate_source(sources[0], options, dataset, run, show_progress, overwrite, resume, keep_examples)], []
    if run is not None:
        raise WmrbenchError(f"{setting('run')} names one result; with several {setting('model_id')} each result is named by its id")
    return evaluate_sources(sources, options, dataset, show_progress, overwrite, resume, keep_examples)


def options_of(cfg: EvalConfig) -> dict[str, Any]:
    """Every setting of ``cfg`` but its data set and run (which the calls take on their own), as
    given settings: applied to any base config they give ``cfg`` back."""
    return {k: v for k, v in resume_rule.settings_of(cfg).items() if k not in ("dataset", "run")}


def source_of(model: ModelInfo) -> ModelSource:
    """The model source a result records (the options that would load that model again)."""
    return ModelSource(
        kind=SourceKind(model.source), checkpoint=model.checkpoint,
        arch=model.arch if model.source == SourceKind.CHECKPOINT.value and not model.train_config else None,
        model_id=model.model_id, threat_model=model.threat_model, model_dir=model.model_dir,
        factory=model.factory, mean=model.mean, std=model.std,
    )


@dataclass
class Rerun:
    original: Summary
    result: EvalResult
    differences: list[str]  # empty when every metric and every record is the same


def rerun_result(summary_path: str | Path, run: str | None = None, show_progress: bool = True) -> Rerun:
    """Evaluate again exactly as ``summary_path`` records (model, data, attack, seed, precision),
    into a new result, and say whether its metrics and records are the same."""
    original = read_summary(summary_path)
    if original.model.source == PYTHON_SOURCE:
        raise WmrbenchError(f"{summary_path} was measured from Python (wmrbench.evaluate) on a model object, "
                            "which nothing can load again: call wmrbench.evaluate again to rerun it")
    cfg = original.config
    run = run or f"{original.run}-rerun"
    if run == original.run:
        raise WmrbenchError(f"{setting('run', run)} is the result being rerun: give the rerun another name")
    options = {**options_of(cfg), "results_dir": cfg.results_dir}
    source = source_of(original.model)
    if original.adversarial is not None:
        # Scoring saved points: the settings the attack fixed come from the file, not from options.
        replay = {k: v for k, v in options.items() if k not in FIXED_OPTIONS}
        result = evaluate_adversarial(original.adversarial.file, source, replay, cfg.dataset, run, show_progress)
    else:
        result = evaluate_source(source, options, cfg.dataset, run, show_progress)
    return Rerun(original, result, _differences(original, Path(summary_path).parent / "records.csv", result))


def _changed_inputs(original: Summary, again: Summary) -> list[str]:
    """Which input changed since the original result, named: its weights (the file they come
    from) or its examples (the data folder). Summaries written before the hashes say nothing."""
    changed = []
    if original.model_sha256 and again.model_sha256 and original.model_sha256 != again.model_sha256:
        model = original.model
        where = model.checkpoint or (f"{model.model_dir}/{original.dataset}/{model.threat_model}/{model.model_id}.pt"
                                     if model.model_id else None) or model.factory or model.name
        changed.append(f"the weights changed: {where} is not the file evaluated then "
                       f"(SHA-256 {original.model_sha256[:12]}... then, {again.model_sha256[:12]}... now)")
    if original.data_sha256 and again.data_sha256 and original.data_sha256 != again.data_sha256:
        changed.append(f"the examples changed: the {original.dataset} files under {original.config.data_dir} are not "
                       f"the ones evaluated then (SHA-256 {original.data_sha256[:12]}... then, {again.data_sha256[:12]}... now)")
    return changed


def _differences(original: Summary, records_path: Path, result: EvalResult) -> list[str]:
    old, new = original.metrics, result.summary.metrics
    differences = _changed_inputs(original, result.summary) + [
        f"{name} {getattr(old, name)!r} -> {getattr(new, name)!r}"
        for name in ("n_examples", "A_nat", "A_rob", "A_sa", "A_tr") if getattr(old, name) != getattr(new, name)
    ]
    if records_path.is_file() and records_path.read_text() != to_csv_text(result.records):
        differences.append(f"records differ from {records_path}")
    return differences
