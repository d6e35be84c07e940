"""``wmrbench reproduce family``: the instance-reweighting family trained side by side on one
data set and evaluated with one protocol.

The models: PGD-AT, TRADES, MART, GAIRAT, MAIL-TRADES, PGD+ours and TRADES+ours, each with its
preset (:mod:`wmrbench.core.presets`; the "+ours" rows at the paper's alpha_train). All seven share
the data settings (batch size, seed, hence the same data order: they train as one sweep, each
batch drawn once for all, :func:`wmrbench.training.fit_sweep`) and the training attack (eps,
steps, step size, start). Each model is then evaluated with PGD, APGD-CE and AutoAttack on the
same test examples and seed; A_sa, A_tr and A_wc at each alpha_test come from the PGD
evaluation (the paper's protocol).

Resumable as ``reproduce table1``, by the same planner (:mod:`wmrbench.studies.planner`): a run whose
``last.pt`` holds every epoch is skipped, an unfinished one resumes; an evaluation whose
``summary.json`` was measured as planned on the finished model is skipped, one killed part-way
continues from its saved batches.

``--epochs`` other than the preset's scales the burn-in of GAIRAT and MAIL by the same ratio
(rounded), so that the reweighted epochs keep their share of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmrbench.core.attack_config import AttackMethod, Precision
from wmrbench.core.checks import check_int, check_seed, parse_enum
from wmrbench.core.config import DatasetName, Defense, Protocol, TrainConfig
from wmrbench.core.errors import WmrbenchError, render_settings, setting
from wmrbench.core.io import atomic_write_text
from wmrbench.studies.planner import TRAIN_KEYS, Plan, Work, carry_out, planned_eval
from wmrbench.core.presets import (
    DEFAULT_ALPHA_TEST, DEFAULT_CHECKPOINT_DIR, DEFAULT_DATA_DIR, DEFAULT_DEVICE, DEFAULT_RESULTS_DIR, DEFAULT_SEED,
    PAPER_PROTOCOLS, preset_for, scaled_burn_in, train_config,
)
from wmrbench.results.comparison import compare_records
from wmrbench.results.records import RECORDS_NAME, Summary, read_records
from wmrbench.report.family import BASE_OF, PRIMARY, ROB_COLUMNS, GainIntervals, family_table, gains_table
from wmrbench.report.render import CiStyle, to_csv, to_markdown
from wmrbench.report.tables import defense_label
from wmrbench.studies.reproduce import PAPER_TRAIN_SEEDS
from wmrbench.training import seed_run_name

NAME = "family"
# (defense, "+ours"?) in table order
MODELS = (
    (Defense.PGD, False), (Defense.TRADES, False), (Defense.MART, False), (Defense.GAIRAT, False),
    (Defense.MAIL_TRADES, False), (Defense.PGD, True), (Defense.TRADES, True),
)
ATTACKS = (AttackMethod.PGD, AttackMethod.APGD_CE, AttackMethod.AUTOATTACK)
QUICK_EPOCHS = 8  # digits: ~5 s per model and epoch on one CPU core
QUICK_N = 200  # test images for PGD and APGD-CE with --quick
QUICK_AA_N = 100  # AutoAttack's Square attack is the slow part on a CPU: the first 100 with --quick

Log = Callable[[str], None]


@dataclass(frozen=True)
class FamilyConfig:
    """The settings of ``reproduce family``; None means the preset's (with quick, the quick ones)."""

    quick: bool = False
    dataset: DatasetName | None = None  # default: MNIST, or digits with quick
    epochs: int | None = None
    n_examples: int | None = None  # default: the whole test set (quick: 200)
    autoattack_n_examples: int | None = None  # default: n_examples (quick: 100)
    attacks: tuple[AttackMethod, ...] = ATTACKS
    alpha_test: tuple[float, ...] = DEFAULT_ALPHA_TEST
    seed: int = DEFAULT_SEED
    device: str = DEFAULT_DEVICE
    precision: Precision = Precision.FP32  # training; evaluation is always fp32
    data_dir: str = DEFAULT_DATA_DIR
    checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR
    results_dir: str = DEFAULT_RESULTS_DIR
    download: bool = False
    stop_after_epochs: int | None = None
    # Training seeds per model (None: PAPER_TRAIN_SEEDS, or 1 with quick): seed, seed + 1, ...
    train_seeds: int | None = None

    def __post_init__(self) -> None:
        if self.train_seeds is not None:
            object.__setattr__(self, "train_seeds", check_int(self.train_seeds, "train_seeds", 1))
        dataset = self.dataset if self.dataset is not None else (DatasetName.DIGITS if self.quick else DatasetName.MNIST)
        object.__setattr__(self, "dataset", parse_enum(DatasetName, dataset, "dataset"))
        object.__setattr__(self, "precision", parse_enum(Precision, self.precision, "precision"))
        attacks = tuple(dict.fromkeys(parse_enum(AttackMethod, a, "attack") for a in self.attacks))
        if AttackMethod.PGD not in attacks:
            raise WmrbenchError(f"{setting('attacks')} must include pgd: A_sa, A_tr and A_wc come from the PGD evaluation")
        unknown = [a.value for a in attacks if a.value not in ROB_COLUMNS]
        if unknown:
            raise WmrbenchError(f"{setting('attacks')}: {', '.join(unknown)} is not one of the family's: pgd, apgd-ce, autoattack")
        object.__setattr__(self, "attacks", attacks)
        for name in ("epochs", "n_examples", "autoattack_n_examples", "stop_after_epochs"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_int(getattr(self, name), name, 1))
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def data(self) -> DatasetName:
        assert isinstance(self.dataset, DatasetName)
        return self.dataset

    @property
    def table_dir(self) -> Path:
        return Path(self.results_dir) / f"{NAME}-{self.data.value}"

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seeds of every model: ``seed`` and the ones after it."""
        n = self.train_seeds if self.train_seeds is not None else (1 if self.quick else PAPER_TRAIN_SEEDS)
        return tuple(range(self.seed, self.seed + n))

    def examples(self, attack: AttackMethod) -> int | None:
        n = self.n_examples if self.n_examples is not None else (QUICK_N if self.quick else None)
        if attack is AttackMethod.AUTOATTACK:
            aa = self.autoattack_n_examples if self.autoattack_n_examples is not None else (QUICK_AA_N if self.quick else None)
            return aa if aa is not None else n
        return n


def model_name(cfg: FamilyConfig, defense: Defense, alpha: float) -> str:
    return f"{NAME}-{cfg.data.value}-{defense.value}-a{alpha:g}"


def planned_runs(cfg: FamilyConfig) -> list[TrainConfig]:
    """The seven training runs per seed, ``family-DATASET-DEFENSE-aALPHA`` (with several seeds,
    ``...-sSEED``), from their presets."""
    runs = []
    for seed in cfg.seeds:
        for defense, ours in MODELS:
            preset = preset_for(cfg.data, defense)
            alpha = preset.alpha_train if ours else 0.0
            epochs = cfg.epochs if cfg.epochs is not None else (QUICK_EPOCHS if cfg.quick else preset.epochs)
            burn_in = scaled_burn_in(preset, epochs)  # the same share of the run, one epoch at least after it
            name = model_name(cfg, defense, alpha)
            runs.append(train_config(
                cfg.data, defense, run=seed_run_name(name, seed) if len(cfg.seeds) > 1 else name, alpha_train=alpha,
                epochs=epochs, burn_in=burn_in, seed=seed, device=cfg.device, precision=cfg.precision,
                data_dir=cfg.data_dir, checkpoint_dir=cfg.checkpoint_dir, download=cfg.download or None,
            ))
    first = runs[0]
    for run in (r for r in runs[1:] if r.seed == first.seed):  # the family's comparison rests on these being equal
        same = (run.attack.eps, run.attack.steps, run.attack.step_size, run.attack.start, run.batch_size, run.seed)
        if same != (first.attack.eps, first.attack.steps, first.attack.step_size, first.attack.start,
                    first.batch_size, first.seed):
            raise WmrbenchError(f"{run.run}: its preset's training attack or batch differs from {first.run}'s; "
                                f"the family is compared on one attack budget and data order")
    return runs


def result_name(run: TrainConfig, attack: AttackMethod) -> str:
    return f"{run.run}-{attack.value}"


def eval_options(cfg: FamilyConfig, run: TrainConfig, attack: AttackMethod) -> dict[str, Any]:
    """The settings of ``run``'s evaluation with ``attack`` (given on top of the data set's preset)."""
    return dict(protocol=protocol(cfg), method=attack, alpha_test=cfg.alpha_test, n_examples=cfg.examples(attack), seed=cfg.seed,
                device=cfg.device, precision=Precision.FP32, results_dir=str(cfg.table_dir),
                data_dir=run.data_dir, download=cfg.download or None)


def protocol(cfg: FamilyConfig) -> Protocol:
    """The paper's evaluation (10 restarts) where the paper has one (MNIST, CIFAR-10), else the
    data set's default attack; --quick always the default (1 restart)."""
    return Protocol.PAPER if not cfg.quick and cfg.data in PAPER_PROTOCOLS else Protocol.DEFAULT


def plan(cfg: FamilyConfig) -> Plan:
    """The seven runs per seed and their evaluations, one per attack, ``RUN-ATTACK`` (every setting
    checked). A result must also have been measured on the planned burn-in (GAIRAT, MAIL)."""
    runs = tuple(planned_runs(cfg))
    evals = tuple(planned_eval(run, result_name(run, attack), cfg.data, eval_options(cfg, run, attack),
                               (*TRAIN_KEYS, "burn_in"))
                  for run in runs for attack in cfg.attacks)
    return Plan(cfg.table_dir, runs, evals)


@dataclass
class FamilyOutcome:
    table: Any = None  # pandas DataFrame once every model is evaluated
    gains: Any = None
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)


def reproduce_family(cfg: FamilyConfig, log: Log = lambda line: None, show_progress: bool = True) -> FamilyOutcome:
    """Train what is not trained, evaluate what is not evaluated, write the table (see the module)."""
    planned = plan(cfg)
    runs = list(planned.runs)
    outcome = FamilyOutcome()

    def write(work: Work) -> None:
        # the summaries come run by run, each run's attacks in cfg.attacks' order
        per_run = iter(work.summaries)
        results = [{a.value: next(per_run) for a in cfg.attacks} for _ in runs]
        if len(cfg.seeds) > 1:
            means, intervals = seed_groups(cfg, runs, results)
            outcome.table = family_table(means)
            outcome.gains = gains_table(outcome.table, intervals)
        else:
            outcome.table = family_table(results)
            outcome.gains = gains_table(outcome.table, paired_gain_intervals(cfg, runs, results))
        outcome.notes = _notes(cfg, runs, results)
        outcome.files = _write(cfg, outcome)

    # With the presets all seven share the data settings: one sweep, taking turns (--stack off:
    # the stacked step trains pgd and trades only).
    work, _ = carry_out(planned, write, log, show_progress, cfg.stop_after_epochs)
    outcome.trained, outcome.evaluated, outcome.unfinished = work.trained, work.evaluated, work.unfinished
    return outcome


def paired_gain_intervals(cfg: FamilyConfig, runs: list[TrainConfig], results: list[dict[str, Summary]]) -> GainIntervals:
    """Each reweighted model minus its unweighted base, paired on the same test images per attack
    (:func:`wmrbench.results.comparison.compare_records`): the 95% interval of every gain in the table.
    A_nat, A_sa, A_tr and A_wc come from the PGD evaluation, each A_rob column from its attack's."""
    labels = [defense_label(r[PRIMARY].model) for r in results]
    by_label = dict(zip(labels, runs, strict=True))
    out: dict[tuple[str, str, str], tuple[float, float]] = {}
    for label, run in by_label.items():
        base = by_label.get(BASE_OF.get(label, ""))
        if base is None:
            continue
        for attack in cfg.attacks:
            name_a, name_b = result_name(run, attack), result_name(base, attack)
            records = [read_records(cfg.table_dir / n / RECORDS_NAME) for n in (name_a, name_b)]
            compared = compare_records(name_a, records[0], name_b, records[1], alphas=list(cfg.alpha_test))
            _gain_cells(cfg, label, attack, compared.differences, out)
    return out


def _gain_cells(cfg: FamilyConfig, label: str, attack: AttackMethod, differences: Sequence[Any], out: GainIntervals) -> None:
    """The table's cells a comparison's intervals go to: A_rob under every attack (its own
    column), the weighted metrics under the primary attack only, every alpha_test for A_rob."""
    for d in differences:
        if d.metric == "A_rob":
            column = ROB_COLUMNS[attack.value]
        elif attack.value == PRIMARY:
            column = d.metric
        else:
            continue
        for alpha in ([d.alpha] if d.alpha is not None else [float(a) for a in cfg.alpha_test]):
            out[(label, alpha, column)] = (d.lo, d.hi)


def seed_groups(cfg: FamilyConfig, runs: list[TrainConfig],
                results: list[dict[str, Summary]]) -> tuple[list[dict[str, Summary]], GainIntervals]:
    """Several seeds per model: each model's row per attack holds the means over its seeds with
    two-level intervals (seeds, then test images), and each gain is the difference of the means
    with its two-level interval (:mod:`wmrbench.results.groups`, ``compare``'s numbers)."""
    from wmrbench.results.groups import as_summary, compare_groups, group_summary, load_group

    models: dict[tuple[Defense, float], list[int]] = {}
    for i, run in enumerate(runs):
        models.setdefault((run.defense, run.alpha_train), []).append(i)
    groups: dict[str, dict[str, Any]] = {}
    means = []
    for (defense, alpha), members in models.items():
        per_attack, row = {}, {}
        for attack in cfg.attacks:
            folders = [cfg.table_dir / result_name(runs[i], attack) for i in members]
            per_attack[attack.value] = load_group(folders, name=f"{model_name(cfg, defense, alpha)}-{attack.value}")
            row[attack.value] = as_summary(group_summary(per_attack[attack.value], alphas=cfg.alpha_test),
                                           results[members[0]][attack.value])
        groups[defense_label(row[PRIMARY].model)] = per_attack
        means.append(row)
    out: GainIntervals = {}
    for label, per_attack in groups.items():
        base = groups.get(BASE_OF.get(label, ""))
        if base is None:
            continue
        for attack in cfg.attacks:
            compared = compare_groups(per_attack[attack.value], base[attack.value], alphas=list(cfg.alpha_test))
            _gain_cells(cfg, label, attack, compared.differences, out)
    return means, out


def _notes(cfg: FamilyConfig, runs: list[TrainConfig], results: list[dict[str, Summary]]) -> list[str]:
    first = runs[0]
    pgd = results[0]["pgd"].config.attack
    notes = []
    if cfg.quick:
        notes.append(render_settings("NOT the paper's setting: digits (8x8, embedded), a few epochs, a CPU-sized "
                                     "demonstration of the command; the MNIST version (reproduce family without "
                                     f"{setting('quick')}) is a GPU job"))
    notes.append(
        f"training: {first.dataset.value}, {first.arch}, {first.epochs} epochs, batch {first.batch_size}, seed {first.seed}, "
        f"one data order for all (one sweep); attack {first.attack.steps} steps of {first.attack.step_size:g} at eps "
        f"{first.attack.eps:g} ({first.attack.start.value} start) for every defense; "
        + "; ".join(f"{r.defense.value}{' a' + format(r.alpha_train, 'g') if r.alpha_train else ''}: lr {r.lr:g}, "
                    f"wd {r.weight_decay:g}, beta {r.beta:g}" + (f", burn-in {r.burn_in}" if r.burn_in else "")
                    for r in runs))
    sizes = ", ".join(f"{a.value} on {results[0][a.value].metrics.n_examples}" for a in cfg.attacks)
    notes.append(f"evaluation: the first test images ({sizes}), seed {cfg.seed}, fp32; PGD-{pgd.steps} step "
                 f"{pgd.step_size:g} eps {pgd.eps:g}, {pgd.restarts} restart(s); APGD-CE and AutoAttack (standard, "
                 "unweighted) at the same eps; A_sa, A_tr (weighted PGD) and A_wc come from the PGD evaluation")
    if cfg.examples(AttackMethod.AUTOATTACK) != cfg.examples(AttackMethod.PGD) and AttackMethod.AUTOATTACK in cfg.attacks:
        notes.append("A_rob AA is measured on fewer images than the other columns (AutoAttack's Square attack is slow "
                     "on a CPU): compare it with the other A_rob columns only roughly")
    if len(cfg.seeds) > 1:
        notes.append(f"{len(cfg.seeds)} training seeds per model ({', '.join(map(str, cfg.seeds))}): each row is the mean "
                     "over its seeds with a two-level 95% interval (seeds resampled, then the same test images for every "
                     "seed); each gain is the difference of the means with its two-level interval (`wmrbench compare` "
                     "of the two groups, which also tests it over seeds): a gain whose interval holds 0 is not shown to be real")
        return notes
    notes.append("gains: each reweighted model minus its unweighted base at the same alpha_test, in points, with its "
                 "95% paired interval [lo, hi] (a percentile bootstrap over the same test images for both models, "
                 "2,000 resamples, seed 0; `wmrbench compare`); one training run each: this interval covers test "
                 "examples only, not the training seed nor the attack's own randomness "
                 + render_settings(f"({setting('train_seeds')} N for a test over seeds)")
                 + ": a gain whose interval holds 0 is not shown to be real")
    return notes


def _write(cfg: FamilyConfig, outcome: FamilyOutcome) -> list[Path]:
    title = f"The instance-reweighting family on {cfg.data.value}" + (render_settings(f" ({setting('quick')})") if cfg.quick else "")
    text = "\n".join([f"# {title}", "", *[f"- {n}" for n in outcome.notes], "", "## Numbers", "",
                      to_markdown(outcome.table), "## Differences from the unweighted base (points, 95% paired interval)", "",
                      to_markdown(outcome.gains, CiStyle.INTERVAL)])
    return [atomic_write_text(cfg.table_dir / f"{NAME}.md", text),
            atomic_write_text(cfg.table_dir / f"{NAME}.csv", to_csv(outcome.table))]
