"""``wmrbench.evaluate``: the ``evaluate`` command's measurement, called from Python on a model
object and the user's own examples.

    result = wmrbench.evaluate(model, x, y, dataset="mnist")          # the paper's MNIST attack
    result = wmrbench.evaluate(model, loader, eps=8 / 255, steps=20)  # any DataLoader of [0, 1] images
    print(result)                       # A_nat, A_rob, A_sa / A_tr / A_wc per alpha, 95% intervals
    result.records                      # one row per example, the columns of records.csv

It runs the code the command runs, not a copy: :func:`wmrbench.evaluation.runs.attack_examples`
(the pipeline with the same per-batch scorer, keyed random starts, batch padding and gather)
and :func:`wmrbench.evaluation.pipeline.summarize` (the metrics and the seeded bootstrap
intervals of the summary). On the same model, examples, settings and seed, the records and every
number equal ``wmrbench evaluate``'s (tests/evaluation/test_api.py checks it on real MNIST).

The call shape follows RobustBench's ``benchmark(model, n_examples=..., dataset=...,
threat_model=..., eps=..., device=..., to_disk=...)`` (robustbench/eval.py): a model object in,
numbers out, a data set's name standing for its attack settings, and a file only when asked
(here ``results_dir``). Nothing is written otherwise.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from wmrbench.core import distributed
from wmrbench.core.attack_config import AttackConfig, AttackMethod, Norm, Precision, RestartRule, Start
from wmrbench.attacks.inputs import check_image_shape, check_label_shape, check_value_ranges
from wmrbench.core.checks import check_int, parse_enum
from wmrbench.core.config import EvalConfig, Protocol, number_key
from wmrbench.data import ImageSet, dataset_spec
from wmrbench.data.reading import labels_of, read_examples
from wmrbench.core.defaults import DEFAULTS, scaled_step_size
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation.pipeline import Timer, check_model_fits, claim_result, summarize, write_result
from wmrbench.evaluation.runs import attack_examples
from wmrbench.core.presets import DEFAULT_ALPHA_TEST, DEFAULT_EVAL_BATCH_SIZE, DEFAULT_RESULTS_DIR, DEFAULT_SEED, eval_config
from wmrbench.results.records import PYTHON_SOURCE, Metrics, ModelInfo, Summary, Uncertainty
from wmrbench.results.uncertainty import few_examples_warnings

@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """What :func:`evaluate` measured. Accuracies in percent, as the tables show them.

    ``A_sa``, ``A_tr`` and ``A_wc`` map each alpha_test (a float) to its value. ``intervals``
    holds every metric's 95% percentile-bootstrap interval and the effective sample size n_eff
    of each weighted metric (:mod:`wmrbench.results.uncertainty`, the bootstrap the command's summary
    holds); :meth:`interval` and :meth:`n_eff` read it. ``records``: one row per example, the
    columns of records.csv. ``config``: every setting that ran. ``summary``: the typed summary
    the command would write (``out_dir`` is where it was written, None when nothing was).
    """

    A_nat: float
    A_rob: float
    A_sa: dict[float, float]
    A_tr: dict[float, float]
    A_wc: dict[float, float]
    intervals: Uncertainty
    records: pd.DataFrame
    config: EvalConfig
    summary: Summary
    out_dir: Path | None = None

    @classmethod
    def of(cls, summary: Summary, records: pd.DataFrame, out_dir: Path | None) -> EvaluationResult:
        metrics: Metrics = summary.metrics
        alphas = summary.config.alpha_test

        def per_alpha(table: dict[float, float]) -> dict[float, float]:
            return {alpha: table[alpha] for alpha in alphas if alpha in table}

        assert summary.uncertainty is not None  # summarize() always computes it
        return cls(metrics.A_nat, metrics.A_rob, per_alpha(metrics.A_sa), per_alpha(metrics.A_tr),
                   per_alpha(metrics.A_wc), summary.uncertainty, records, summary.config, summary, out_dir)

    @property
    def n_examples(self) -> int:
        return self.summary.metrics.n_examples

    def interval(self, metric: str, alpha: float | None = None) -> tuple[float, float]:
        """The 95% interval of ``metric`` (A_nat, A_rob; A_sa, A_tr, A_wc at ``alpha``), in percent."""
        found = self.intervals.interval(metric, alpha)
        if found is None:
            at = "" if alpha is None else f" at alpha {number_key(alpha)}"
            raise KeyError(f"no interval of {metric}{at}")
        return found

    def n_eff(self, alpha: float, metric: str = "A_sa") -> float:
        """The effective sample size ``(sum s)^2 / sum s^2`` of ``metric``'s weights at ``alpha``."""
        return self.intervals.n_eff[metric][alpha]

    def summary_text(self) -> str:
        """A small table: the settings, then every metric with its interval (and n_eff)."""
        from wmrbench.core.protocol import protocol_text  # the command's own title line

        cfg = self.config
        where = cfg.dataset.value if cfg.dataset is not None else "your examples"
        lines = [f"{self.n_examples} examples ({where}), {protocol_text(cfg)}, seed {cfg.seed}"]

        def cell(value: float, lo_hi: tuple[float, float] | None) -> str:
            return f"{value:6.2f} [{lo_hi[0]:6.2f}, {lo_hi[1]:6.2f}]" if lo_hi else f"{value:6.2f}"

        lines.append(f"  A_nat {cell(self.A_nat, self.intervals.interval('A_nat'))}")
        lines.append(f"  A_rob {cell(self.A_rob, self.intervals.interval('A_rob'))}")
        for alpha in cfg.alpha_test:
            parts = [f"{name} {cell(getattr(self, name)[alpha], self.intervals.interval(name, alpha))}"
                     for name in ("A_sa", "A_tr", "A_wc") if alpha in getattr(self, name)]
            n_eff = self.intervals.n_eff.get("A_sa", {}).get(alpha)
            lines.append(f"  alpha {number_key(alpha):>4}: " + "  ".join(parts) + (f"  n_eff {n_eff:.0f}" if n_eff is not None else ""))
        lines.append(f"  ({self.intervals.level:.0%} {self.intervals.method}; n_eff: of A_sa's weights)")
        lines += [f"  Warning: {line}" for line in few_examples_warnings(self.intervals)]  # as the command warns
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary_text()

    def __repr__(self) -> str:
        tr = ", ".join(f"{number_key(a)}: {v:.2f}" for a, v in self.A_tr.items())
        return f"EvaluationResult(n_examples={self.n_examples}, A_nat={self.A_nat:.2f}, A_rob={self.A_rob:.2f}, A_tr={{{tr}}})"


def evaluate(
    model: nn.Module,
    data: Tensor | DataLoader | Dataset | Iterable[Any],
    y: Tensor | None = None,
    *,
    alpha_test: float | Sequence[float] = DEFAULT_ALPHA_TEST,
    attack: AttackMethod | str = AttackMethod.PGD,
    eps: float | None = None,
    step_size: float | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    norm: Norm | str = Norm.LINF,
    start: Start | str | None = None,
    restart_rule: RestartRule | str | None = None,
    n_examples: int | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    precision: Precision | str = Precision.FP32,
    dataset: str | None = None,
    protocol: Protocol | str | None = None,
    compile: bool = False,
    results_dir: str | Path | None = None,
    run: str | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` under the uniform attack (A_rob; A_sa) and the weighted one (A_tr).

    ``data``: images in [0, 1], ``(N, C, H, W)``, with their labels ``y``; or a DataLoader, a
    Dataset or any iterable yielding ``(images, labels)`` (read in order: a shuffling loader
    gives other examples to each call). The model maps such images to logits (any
    normalization is a layer inside it); it is run in eval mode and left on ``device`` (its
    train/eval mode is restored afterwards).

    The attack: ``dataset="mnist"`` (``cifar10``, ...) takes that data set's preset (the paper's
    eps, steps and step size; ``protocol="paper"`` for the authors' evaluation); any setting
    given overrides it. Without ``dataset``, the library's defaults (:mod:`wmrbench.core.defaults`,
    the paper's CIFAR-10 evaluation: PGD-20 of step 0.003 at eps 0.031, as ``WeightedPGD``);
    ``step_size`` left out with another ``eps`` or ``steps`` keeps that walk's reach,
    ``steps * step_size / eps``. ``attack``: pgd (default), apgd-ce, apgd-dlr or
    autoattack, as ``wmrbench evaluate --attack``. ``seed`` keys the random starts (default 0);
    ``seeds=(0, 1, 2)`` repeats the attack with each (the first is the result's; the summary's
    ``seed_spread`` holds the others'). Every name means what the command's option of the same
    name means.

    Nothing is written unless ``results_dir`` is given: then ``results_dir/run/`` gets the
    command's records.csv and summary.json (``dataset`` must be named, so that the reports can
    place the result), refused if a complete result is there unless ``overwrite``.

    Bad input (images of the wrong shape or outside [0, 1], labels that
    do not match) raises :class:`wmrbench.core.errors.WmrbenchError` with one line saying why.
    """
    if not isinstance(model, nn.Module):
        raise WmrbenchError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if results_dir is not None and dataset is None:
        raise WmrbenchError("results_dir: a written result names its data set; pass dataset= as well "
                            "(its preset fills the attack settings not given)")
    cfg = _config(model, alpha_test=alpha_test, attack=attack, eps=eps, step_size=step_size, steps=steps,
                  restarts=restarts, norm=norm, start=start, restart_rule=restart_rule, n_examples=n_examples,
                  batch_size=batch_size, seed=seed, seeds=seeds, device=device, precision=precision, dataset=dataset,
                  protocol=protocol, compile=compile, results_dir=results_dir, run=run)
    resolved = distributed.resolve_device(cfg.device)  # once, before any work; passed down from here
    examples = examples_of(data, y, cfg.n_examples)
    if dataset is not None:
        _check_dataset_shape(examples, cfg.dataset)
    elif eps is None and examples.x.shape[1] == 1:
        # One channel is MNIST's shape, whose threat model (eps 0.3) is ten times the default's.
        warnings.warn(f"no dataset and no eps given: the CIFAR-10 budget (eps {cfg.attack.eps:g}) attacks these "
                      "one-channel images; pass dataset='mnist' or eps= for their own threat model", stacklevel=2)
    info = ModelInfo(name=cfg.run, source=PYTHON_SOURCE, arch=type(model).__name__)
    training = model.training
    claim = claim_result(cfg, overwrite) if results_dir is not None else contextlib.nullcontext()
    with claim:
        check_model_fits(model, examples, f"the model ({info.arch})")
        timer = Timer()
        try:
            records, seed_records = attack_examples(model, examples, cfg, resolved, show_progress)
        finally:
            model.train(training)
        if results_dir is not None:
            written = write_result(records, cfg, info, timer.seconds, seed_records=seed_records, model=model, data=examples)
            return EvaluationResult.of(written.summary, records, written.out_dir)
        done = summarize(records, cfg, info, timer.seconds, seed_records=seed_records, model=model, data=examples)
        return EvaluationResult.of(done.summary, records, None)


def _check_dataset_shape(examples: ImageSet, dataset: Any) -> None:
    """Images named as a data set must be that data set's shape: ``dataset`` picks the attack's
    preset and is written into the result, so 8x8 digits evaluated with ``dataset='mnist'``
    would be filed as an MNIST result."""
    info = dataset_spec(dataset).info
    expected = (info.in_channels, info.image_size, info.image_size)
    got = tuple(examples.x.shape[1:])
    if got != expected:
        raise WmrbenchError(f"dataset={info.name.value!r} images are {expected[0]} x {expected[1]} x {expected[2]}; these "
                            f"are {' x '.join(map(str, got))}: name their own data set, or leave dataset out and give eps")


def _config(model: nn.Module, **given: Any) -> EvalConfig:
    """The EvalConfig of one call: the data set's preset with the settings given on top, or,
    without a data set, the library's defaults (:mod:`wmrbench.core.defaults`) with them on top."""
    alpha_test = given.pop("alpha_test")
    if isinstance(alpha_test, (int, float)) and not isinstance(alpha_test, bool):
        alpha_test = (alpha_test,)  # one alpha_test given as a number
    elif isinstance(alpha_test, (list, tuple)):
        alpha_test = tuple(alpha_test)
    seeds = given.pop("seeds")
    if given["seed"] is None:  # the first of seeds, else the command's default
        given["seed"] = seeds[0] if seeds else DEFAULT_SEED
    device = given.pop("device")
    results_dir = given.pop("results_dir")
    run = given.pop("run") or _default_run(model)
    dataset, protocol, norm = given.pop("dataset"), given.pop("protocol"), given.pop("norm")
    settings = dict(
        method=given.pop("attack"), alpha_test=alpha_test, seeds=tuple(seeds) if seeds is not None else None,
        device=str(device), results_dir=str(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR,
        data_dir="", **given,  # data_dir "": the examples came from Python, not from a folder
    )
    if dataset is not None:
        return eval_config(dataset, run, protocol or Protocol.DEFAULT, norm, **settings)
    if protocol is not None and parse_enum(Protocol, protocol, "protocol") is not Protocol.DEFAULT:
        raise WmrbenchError("protocol: a protocol is a data set's preset; pass dataset= as well")
    # No data set named: the library's one rule (wmrbench.core.defaults), as WeightedPGD's defaults.
    budget = DEFAULTS.eval_attack
    eps = settings.pop("eps")
    if eps is None and norm is not None and str(getattr(norm, "value", norm)).lower() == "l2":
        raise WmrbenchError("eps: the default budget is L-infinity's; with norm='l2' give eps, or name a dataset "
                            "(its L2 preset)")
    eps = budget.eps if eps is None else eps
    steps = check_int(settings.pop("steps") if settings["steps"] is not None else budget.steps, "steps", 0)
    step_size = settings.pop("step_size")
    if step_size is None:  # keeps the default walk's reach for another eps or steps
        step_size = scaled_step_size(eps, steps, budget)
    restarts, start, rule = settings.pop("restarts"), settings.pop("start"), settings.pop("restart_rule")
    attack = AttackConfig(
        eps=eps, step_size=step_size, steps=steps, restarts=1 if restarts is None else restarts,
        start=start or Start.UNIFORM, norm=norm, restart_rule=rule or RestartRule.WEIGHTED,
    )
    # n_examples None means every example; any other None means "not given"
    values = {k: v for k, v in settings.items() if v is not None or k == "n_examples"}
    return EvalConfig(dataset=None, attack=attack, run=run, **values)


def _default_run(model: nn.Module) -> str:
    """The model's class name (a result folder's name when one is written)."""
    name = type(model).__name__
    return name if name.isidentifier() else "model"


def examples_of(data: Any, y: Tensor | None, n_examples: int | None = None) -> ImageSet:
    """The first ``n_examples`` examples (all when None) of ``data`` (a tensor with labels ``y``,
    or a DataLoader / Dataset / iterable of ``(images, labels)``), checked: images ``(N, C, H, W)``
    of finite floats in [0, 1], one integer label >= 0 each. Anything else is one line."""
    if isinstance(data, Tensor):
        if y is None:
            raise WmrbenchError("y is needed with a tensor of images: its labels, a tensor of N class indices")
        x, labels = data, labels_of(y)
    else:
        if y is not None:
            raise WmrbenchError("y goes with a tensor of images; a DataLoader or Dataset yields its own labels")
        x, labels = read_examples(data, n_examples)
    if n_examples is not None:
        x, labels = x[:n_examples], labels[:n_examples]
    # The attacks' own input check (WeightedPGD's, losses.*'s): the same lines for the same faults.
    # The labels' upper bound is checked against the model's outputs by check_model_fits.
    x = check_image_shape(x, "the images")
    labels = check_label_shape(labels, len(x))
    check_value_ranges(x, labels, None, what="the images")
    return ImageSet(x.detach(), labels.detach())
