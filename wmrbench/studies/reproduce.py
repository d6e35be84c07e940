"""``wmrbench reproduce table1``: the paper's Table 1 by one command, resumable at every point.

Table 1 (MNIST, SmallCNN): PGD, PGD+ours (alpha_train 0.5), TRADES and TRADES+ours (alpha_train 2),
100 epochs each with the paper's settings (presets.py), evaluated with the paper's protocol
(PGD-40, step 0.01, eps 0.3, uniform start, 10 restarts, fp32, the whole test set) at alpha_test
1, 1.5 and 2; the table puts wmrbench's numbers beside the paper's, with the difference per cell.
``quick`` does the same on the embedded digits set with its small preset (not the paper's
setting: its table is never put beside the paper's MNIST numbers as if comparable).

Resumable at every point, on this machine or another one with the folders copied over: the
runs and evaluations are planned once and carried out by :mod:`wmrbench.studies.planner`, which
``reproduce family`` and ``demo`` share (the four runs of a seed train side by side, as one
sweep; with several seeds and ``--stack on``, every seed's runs as one stack:
:func:`wmrbench.training.stacked.fit_groups`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.core.attack_config import Precision, RestartFrom, RestartRule
from wmrbench.core.checks import check_int, check_seed, parse_enum
from wmrbench.core.config import DatasetName, Defense, EvalConfig, Protocol, TrainConfig, number_key
from wmrbench.core.errors import WmrbenchError, render_settings, setting
from wmrbench.core.io import atomic_write_text
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.studies.planner import Plan, Work, carry_out, planned_eval
from wmrbench.core.presets import (
    DEFAULT_ALPHA_TEST,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DATA_DIR,
    DEFAULT_DEVICE,
    DEFAULT_RESULTS_DIR,
    DEFAULT_SEED,
    PAPER_PROTOCOLS,
    preset_for,
    train_config,
)
from wmrbench.results.comparison import compare_records
from wmrbench.results.metrics import compute_metrics
from wmrbench.results.records import RECORDS_NAME, Summary, read_records, under_weighted_rule
from wmrbench.report.paper import paper_tables
from wmrbench.report.tables import defense_label
from wmrbench.report.reproduction import (
    Gain,
    Gains,
    Reproduction,
    check_claims,
    comparison_table,
    paper_reference,
    to_csv_report,
    to_markdown_report,
)
from wmrbench.training.stacked import DEFAULT_STACK, Stack
from wmrbench.training import run_dir, seed_run_name, with_timing

TABLE = 1
DEFENSES = (Defense.PGD, Defense.TRADES)  # each as its baseline (alpha_train 0) and "+ours"
QUICK_DATASET = DatasetName.DIGITS
PAPER_DATASET = DatasetName.MNIST
PAPER_RESTARTS = PAPER_PROTOCOLS[PAPER_DATASET].restarts  # 10: the authors' evaluation
# Training seeds per model at the paper's scale: a gain is then tested over seeds, not only over
# test images (docs/definitions.md: seed-to-seed sd about 1 point on A_rob, 3-4 on A_sa(2) on
# digits). Three is the fewest for which a paired t over seeds has useful power for large gains;
# --quick trains one, its verdicts saying they cover test images only.
PAPER_TRAIN_SEEDS = 3

Log = Callable[[str], None]


@dataclass(frozen=True)
class ReproduceConfig:
    """The settings of ``reproduce table1``; None means the paper's (or, with quick, the digits preset's)."""

    quick: bool = False
    epochs: int | None = None  # default: the preset's (MNIST 100, digits 30)
    n_examples: int | None = None  # default: the whole test set
    restarts: int | None = None  # default: the paper's 10
    # Each restart afresh from x (wmrbench's default), or chained from the previous end point
    # (the authors' evaluation loop); the choice among restarts is wmrbench's either way.
    restart_from: RestartFrom = RestartFrom.START
    alpha_test: tuple[float, ...] = DEFAULT_ALPHA_TEST
    seed: int = DEFAULT_SEED
    device: str = DEFAULT_DEVICE
    # Training precision: fp32 as the authors' code (bf16 would be faster on a GPU, and is not
    # the paper's); evaluation is always fp32, as the paper's numbers are.
    precision: Precision = Precision.FP32
    data_dir: str = DEFAULT_DATA_DIR
    checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR
    results_dir: str = DEFAULT_RESULTS_DIR
    download: bool = False
    stop_after_epochs: int | None = None  # end this invocation after that many epochs (rerun to go on)
    stack: Stack = DEFAULT_STACK  # the four runs as one stacked model (on), taking turns (off), or auto
    # Training seeds per model (None: PAPER_TRAIN_SEEDS, or 1 with quick): seed, seed + 1, ...
    train_seeds: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stack", parse_enum(Stack, self.stack, "stack"))
        if self.train_seeds is not None:
            object.__setattr__(self, "train_seeds", check_int(self.train_seeds, "train_seeds", 1))
        object.__setattr__(self, "precision", parse_enum(Precision, self.precision, "precision"))
        object.__setattr__(self, "restart_from", parse_enum(RestartFrom, self.restart_from, "restart-from"))
        for name in ("epochs", "n_examples", "restarts", "stop_after_epochs"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_int(getattr(self, name), name, 1))
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def dataset(self) -> DatasetName:
        return QUICK_DATASET if self.quick else PAPER_DATASET

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seeds of every model: ``seed`` and the ones after it."""
        n = self.train_seeds if self.train_seeds is not None else (1 if self.quick else PAPER_TRAIN_SEEDS)
        return tuple(range(self.seed, self.seed + n))

    @property
    def table_dir(self) -> Path:
        """Where the evaluations and the table go: RESULTS_DIR/table1-DATASET."""
        return Path(self.results_dir) / f"table{TABLE}-{self.dataset.value}"


def planned_runs(cfg: ReproduceConfig) -> list[TrainConfig]:
    """The four training runs per seed, named ``table1-DATASET-DEFENSE-aALPHA`` (with several
    seeds, ``...-sSEED``), with the preset's settings."""
    runs = []
    for seed in cfg.seeds:
        for defense in DEFENSES:
            for alpha in (0.0, preset_for(cfg.dataset, defense).alpha_train):
                name = f"table{TABLE}-{cfg.dataset.value}-{defense.value}-a{number_key(alpha)}"
                runs.append(train_config(
                    cfg.dataset, defense, run=seed_run_name(name, seed) if len(cfg.seeds) > 1 else name,
                    alpha_train=alpha, epochs=cfg.epochs, seed=seed, device=cfg.device, precision=cfg.precision,
                    data_dir=cfg.data_dir, checkpoint_dir=cfg.checkpoint_dir, download=cfg.download or None,
                ))
    return runs


def eval_options(cfg: ReproduceConfig, run: TrainConfig) -> dict[str, Any]:
    """The paper's protocol on MNIST; on digits (not in the paper) its preset attack with the
    paper's 10 restarts; fp32 either way."""
    restarts = cfg.restarts if cfg.restarts is not None else PAPER_RESTARTS
    return dict(
        # The paper's choice among restarts, so that the numbers beside the paper's are measured
        # like them; the same attack run also records wmrbench's weighted rule (reported too).
        protocol=Protocol.DEFAULT if cfg.quick else Protocol.PAPER, restarts=restarts, restart_from=cfg.restart_from,
        restart_rule=RestartRule.MAX_CE, alpha_test=cfg.alpha_test, n_examples=cfg.n_examples, seed=cfg.seed,
        device=cfg.device, precision=Precision.FP32, results_dir=str(cfg.table_dir), data_dir=run.data_dir,
        download=cfg.download or None,
    )


def plan(cfg: ReproduceConfig) -> Plan:
    """The four runs per seed and one evaluation of each, named as the run (every setting checked)."""
    runs = tuple(planned_runs(cfg))
    return Plan(cfg.table_dir, runs, tuple(planned_eval(run, run.run, cfg.dataset, eval_options(cfg, run)) for run in runs))


@dataclass
class Outcome:
    """What one invocation did, and where the table is (None until every run is evaluated)."""

    reproduction: Reproduction | None
    files: list[Path] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)  # runs that took epochs in this invocation
    evaluated: list[str] = field(default_factory=list)  # runs evaluated in this invocation
    unfinished: list[str] = field(default_factory=list)  # runs still short of their epochs


def reproduce_table1(cfg: ReproduceConfig, log: Log = lambda line: None, show_progress: bool = True) -> Outcome:
    """Train what is not trained, evaluate what is not evaluated, write the table (see the module)."""
    planned = plan(cfg)

    def write(work: Work) -> tuple[Reproduction, list[Path]]:
        reproduction = _reproduction(cfg, list(planned.runs), work.summaries)
        return reproduction, _write(cfg, reproduction)

    work, table = carry_out(planned, write, log, show_progress, cfg.stop_after_epochs, cfg.stack)
    reproduction, files = table if table is not None else (None, [])
    return Outcome(reproduction, files, work.trained, work.evaluated, work.unfinished)


def _reproduction(cfg: ReproduceConfig, runs: list[TrainConfig], summaries: list[Summary]) -> Reproduction:
    if len(cfg.seeds) > 1:
        return _seed_reproduction(cfg, runs, summaries)
    paper = paper_tables()
    paper = paper[paper["table"] == TABLE].reset_index(drop=True)
    evaluation = summaries[0].config
    attack = evaluation.attack
    measured = (f"evaluation: PGD-{attack.steps}, step {attack.step_size:g}, Linf eps {attack.eps:g}, {attack.start.value} "
                f"start, {attack.restarts} restart(s) ({attack.restart_from.value}, {attack.restart_rule.value} rule), "
                f"{evaluation.precision.value}, "
                f"{summaries[0].metrics.n_examples} test images, seed {evaluation.seed}")
    first = runs[0]
    training = (f"training: {first.arch}, {first.epochs} epochs, batch {first.batch_size}, attack {first.attack.steps} steps "
                f"of {first.attack.step_size:g} at eps {first.attack.eps:g} ({first.attack.start.value} start), "
                f"{first.precision.value}, seed {first.seed}; alpha_train " + ", ".join(
                    f"{r.defense.value.upper()} {r.alpha_train:g}" for r in runs if r.alpha_train > 0))
    seconds = [f"{s.run} {sum(h.get('seconds', 0.0) for h in _history(r)):.0f} s training + {s.seconds:.0f} s evaluation"
               for r, s in zip(runs, summaries)]
    versions = summaries[0].versions
    provenance = ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
    gains = paired_gains(cfg.table_dir, runs, summaries)
    notes = [training, measured, "each number carries its 95% interval (a percentile bootstrap over the test images, "
             "2,000 resamples; it covers the sampling of test images for this attack, not the attack's own randomness); "
             "each gain's interval is paired (the same resampled images for both models)", "wall time (the runs train side by side: their epoch times overlap): " + "; ".join(seconds),
             f"versions: {provenance}", f"checkpoints: {Path(cfg.checkpoint_dir)}; results: {cfg.table_dir}",
             "one training run per model: every interval and verdict covers the test images only, not the training "
             "run's own randomness (seed to seed, about as large as the gains here); "
             + render_settings(f"{setting('train_seeds')} N tests over seeds")]
    if cfg.quick:
        notes.insert(0, "NOT the paper's setting: digits (8x8, 1,797 images, embedded) with its small preset, a "
                        "CPU-sized stand-in; only the '+ours'-vs-baseline comparison carries over, not the numbers")
        comparison = comparison_table(summaries)
        return Reproduction(
            f"Table {TABLE}, quick: digits (not the paper's MNIST setting)", notes, comparison, check_claims(comparison, gains),
            reference=paper_reference(paper),
            reference_note="The paper's MNIST numbers (Table 1), NOT comparable with the digits numbers above: "
                           "another data set, model, attack and schedule. Compare the direction of the gains only.",
            weighted_rule=_weighted_rule_table(cfg, runs, summaries),
            weighted_gains=paired_gains(cfg.table_dir, runs, summaries, under_weighted_rule),
        )
    differ = _differences_from_paper(runs[0], evaluation, summaries[0].metrics.n_examples)
    notes.insert(0, "measured as the paper (MNIST, SmallCNN, 100 epochs, PGD-40 with 10 restarts on 10,000 images)"
                 if not differ else "differs from the paper's setting: " + ", ".join(differ)
                 + " (the paper's numbers are shown beside, but are not measured the same way)")
    comparison = comparison_table(summaries, paper)
    return Reproduction(f"Table {TABLE}: robustness against non-uniform attacks on MNIST, wmrbench beside the paper",
                        notes, comparison, check_claims(comparison, gains),
                        weighted_rule=_weighted_rule_table(cfg, runs, summaries),
                        weighted_gains=paired_gains(cfg.table_dir, runs, summaries, under_weighted_rule))


def _seed_reproduction(cfg: ReproduceConfig, runs: list[TrainConfig], summaries: list[Summary]) -> Reproduction:
    """Several seeds per model: each model's row holds the means over its seeds with two-level
    intervals (seeds, then test images), and each gain is tested over seeds (wmrbench.results.groups)."""
    from wmrbench.results.groups import as_summary, compare_groups, group_summary, load_group

    models: dict[tuple[Defense, float], list[tuple[TrainConfig, Summary]]] = {}
    for run, summary in zip(runs, summaries, strict=True):
        models.setdefault((run.defense, run.alpha_train), []).append((run, summary))
    groups, rows = {}, []
    for (defense, alpha), members in models.items():
        name = f"table{TABLE}-{cfg.dataset.value}-{defense.value}-a{number_key(alpha)}"
        groups[(defense, alpha)] = load_group([cfg.table_dir / r.run for r, _ in members], name=name)
        rows.append(as_summary(group_summary(groups[(defense, alpha)]), members[0][1]))
    gains: Gains = {}
    for defense in DEFENSES:
        keys = [k for k in groups if k[0] is defense]
        base = next(k for k in keys if k[1] == 0)
        for ours in (k for k in keys if k[1] > 0):
            compared = compare_groups(groups[ours], groups[base], alphas=list(cfg.alpha_test))
            label = defense_label(models[ours][0][1].model)
            for d in compared.differences:
                for alpha in ([d.alpha] if d.alpha is not None else [float(a) for a in cfg.alpha_test]):
                    gains[(label, alpha, d.metric)] = Gain(d.difference, d.lo, d.hi, d.p_value if d.p_value is not None else 1.0,
                                                         runs=min(d.runs_a, d.runs_b))
    evaluation, first = summaries[0].config, runs[0]
    notes = [
        f"{len(cfg.seeds)} training seeds per model ({', '.join(map(str, cfg.seeds))}): each row is the mean over its "
        "seeds; each interval is two-level (seeds resampled, then the test images, the same images for every seed); "
        "each gain's verdict is a paired t test over seeds (wmrbench compare's rule)",
        f"training: {first.arch}, {first.epochs} epochs, batch {first.batch_size}, {first.precision.value}",
        f"evaluation: PGD-{evaluation.attack.steps}, {evaluation.attack.restarts} restart(s) "
        f"({evaluation.attack.restart_rule.value} rule), {summaries[0].metrics.n_examples} test images, seed {evaluation.seed}",
        f"checkpoints: {Path(cfg.checkpoint_dir)}; results: {cfg.table_dir}",
    ]
    paper = paper_tables()
    paper = paper[paper["table"] == TABLE].reset_index(drop=True)
    comparison = comparison_table(rows) if cfg.quick else comparison_table(rows, paper)
    title = (f"Table {TABLE}, quick: digits (not the paper's MNIST setting), {len(cfg.seeds)} seeds per model" if cfg.quick
             else f"Table {TABLE} on MNIST, {len(cfg.seeds)} seeds per model, wmrbench beside the paper")
    return Reproduction(title, notes, comparison, check_claims(comparison, gains),
                        reference=paper_reference(paper) if cfg.quick else None,
                        reference_note="The paper's MNIST numbers (Table 1), NOT comparable with the digits numbers above."
                        if cfg.quick else "")


def paired_gains(table_dir: Path, runs: list[TrainConfig], summaries: list[Summary],
                 rule: Callable[[pd.DataFrame], pd.DataFrame | None] | None = None) -> Gains:
    """Each "+ours" run minus its baseline (same defense), paired on the same test images from
    their records (:func:`wmrbench.results.comparison.compare_records`): the gain's 95% interval and
    p-value per metric and alpha_test. A pair whose records are missing is left out (its row
    then says the direction only).

    ``rule`` turns the records into another restart rule's (:func:`under_weighted_rule`: the
    same attack run, chosen among its restarts by wmrbench's weighted rule); a pair whose records
    do not carry that rule is left out.
    """
    gains: Gains = {}
    by_defense: dict[Defense, dict[bool, tuple[TrainConfig, Summary]]] = {}
    for run, summary in zip(runs, summaries, strict=True):
        by_defense.setdefault(run.defense, {})[run.alpha_train > 0] = (run, summary)
    for pair in by_defense.values():
        if True not in pair or False not in pair:
            continue
        (base_run, _), (ours_run, ours) = pair[False], pair[True]
        try:
            records = [read_records(table_dir / r.run / RECORDS_NAME) for r in (ours_run, base_run)]
            if rule is not None:
                records = [rule(r) for r in records]
                if any(r is None for r in records):
                    continue
            compared = compare_records(ours_run.run, records[0], base_run.run, records[1],
                                       alphas=ours.metrics.alphas)
        except WmrbenchError:
            continue
        label = defense_label(ours.model)
        for d in compared.differences:
            for alpha in ([d.alpha] if d.alpha is not None else ours.metrics.alphas):
                gains[(label, alpha, d.metric)] = Gain(d.difference, d.lo, d.hi, d.p_value, d.mcnemar_p)
    return gains


def _weighted_rule_table(cfg: ReproduceConfig, runs: list[TrainConfig], summaries: list[Summary]) -> pd.DataFrame | None:
    """The comparison under wmrbench's weighted restart rule, from the ``weighted_rule.*`` columns
    the max-ce evaluations recorded (the same attack run: no second evaluation). None when a
    result lacks them (evaluated before they existed)."""
    weighted = []
    for run, summary in zip(runs, summaries):
        records = under_weighted_rule(read_records(cfg.table_dir / run.run / RECORDS_NAME))
        if records is None:
            return None
        weighted.append(dataclasses.replace(summary, metrics=compute_metrics(records, list(summary.config.alpha_test))))
    return comparison_table(weighted)


def _history(run: TrainConfig) -> list[dict[str, Any]]:
    # The seconds are in timing.jsonl beside last.pt (older checkpoints hold them themselves).
    return with_timing(list(read_checkpoint(run_dir(run) / "last.pt").get("history", [])), run_dir(run))


def _differences_from_paper(run: TrainConfig, evaluation: EvalConfig, n_examples: int) -> list[str]:
    paper = PAPER_PROTOCOLS[PAPER_DATASET]
    preset = preset_for(PAPER_DATASET, Defense.TRADES)
    out = []
    if run.epochs != preset.epochs:
        out.append(f"epochs {run.epochs} (paper {preset.epochs})")
    if n_examples != paper.n_examples:
        out.append(f"test images {n_examples} (paper {paper.n_examples})")
    if evaluation.attack.restarts != paper.restarts:
        out.append(f"restarts {evaluation.attack.restarts} (paper {paper.restarts})")
    return out


def _write(cfg: ReproduceConfig, rep: Reproduction) -> list[Path]:
    name = f"table{TABLE}"
    return [atomic_write_text(cfg.table_dir / f"{name}.md", to_markdown_report(rep)),
            atomic_write_text(cfg.table_dir / f"{name}.csv", to_csv_report(rep))]

