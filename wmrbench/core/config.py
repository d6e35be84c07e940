"""Typed configuration: str Enums at the boundary, frozen dataclasses inside.

Every setting has one name everywhere (``eps``, ``step_size``, ``steps``, ``restarts``, ``alpha``),
from the dataclass field to the JSON written beside results; the CLI spells it as an option
(``--step-size``, wmrbench/cli/options.py), and messages name it with :func:`wmrbench.core.errors.setting`.
The defaults themselves live in :mod:`wmrbench.core.presets` (the paper's settings per data set and
defense); this module only says what a valid configuration is, and how one is changed:
:func:`with_options` is the one place where given options are applied to a config (fresh from a
preset, or saved in a checkpoint or an adversarial file).
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from wmrbench.core.attack_config import AAVersion, AttackConfig, AttackMethod, Norm, Precision, check_apgd_alpha
from wmrbench.core.checks import check_alpha, check_int, check_range, check_seed, parse_enum, set_checked
from wmrbench.core.errors import WmrbenchError, setting



class Defense(str, Enum):
    PGD = "pgd"  # Madry et al. PGD adversarial training
    TRADES = "trades"  # Zhang et al. TRADES
    # The instance-reweighting family (wmrbench.defenses, docs/definitions.md): unweighted by alpha
    MART = "mart"  # Wang et al. ICLR 2020: boosted CE + beta * (1 - p_y(x)) * KL
    GAIRAT = "gairat"  # Zhang et al. ICLR 2021: CE weighted by the PGD steps each example survived
    MAIL_AT = "mail-at"  # Wang et al. NeurIPS 2021: CE weighted by a sigmoid of the probability margin
    MAIL_TRADES = "mail-trades"  # the same weight on TRADES' KL term


class DatasetName(str, Enum):
    DIGITS = "digits"
    MNIST = "mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    TINYIMAGENET = "tinyimagenet"


# The data set a run of ``wmrbench.training.api.fit`` records when it trained on the user's own
# data (a Dataset or tensors): no name in DatasetName, nothing wmrbench can load by itself. Only
# configs accept it (parse_dataset); every loader and preset still takes DatasetName alone, so
# ``--dataset custom`` on the command line stays an unknown data set.
CUSTOM_DATASET = "custom"


def parse_dataset(value: DatasetName | str) -> DatasetName:
    """A config's data set: a DatasetName, or :data:`CUSTOM_DATASET` kept as that string."""
    if value == CUSTOM_DATASET:
        return value  # type: ignore[return-value]
    return parse_enum(DatasetName, value, "dataset")


class PaddingMode(str, Enum):
    ZEROS = "zeros"  # TRADES' random crop
    REFLECT = "reflect"  # the authors' PGD-AT code's random crop


class AttackMode(str, Enum):
    EVAL = "eval"  # Algorithm 1: attack the model in eval mode (wmrbench's default)
    TRAIN = "train"  # the authors' PGD-AT code: the training attack sees train mode


class Protocol(str, Enum):
    DEFAULT = "default"  # wmrbench's quick preset: the paper's attack, 1 restart
    PAPER = "paper"  # the authors' evaluation: the paper's attack, 10 restarts (presets.PAPER_PROTOCOLS)


def check_seeds(seeds: Any, seed: int) -> tuple[int, ...]:
    """``seeds``: distinct seeds, the first being ``seed``; one seed alone is ``()`` (no spread)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple)):
        raise WmrbenchError(f"{setting('seeds')} must be a list of seeds, e.g. 0,1,2; got {seeds!r}")
    seeds = tuple(check_seed(s, "seeds") for s in seeds)
    if len(set(seeds)) != len(seeds):
        raise WmrbenchError(f"{setting('seeds', ','.join(map(str, seeds)))}: a seed is repeated; each seed is one run of the attack")
    if seeds and seeds[0] != seed:
        raise WmrbenchError(f"{setting('seed', seed)} and {setting('seeds', ','.join(map(str, seeds)))}: the first of "
                            f"{setting('seeds')} is the result's seed; give one of them")
    return seeds if len(seeds) > 1 else ()


# A folder name may hold 255 bytes on common file systems; a run name leaves room for what is
# added to it (a sweep's "-a0.5", a rerun's "-rerun", an atomic write's ".<name>.<hex>.tmp").
MAX_RUN_BYTES = 200


def check_run_name(run: Any, option: str = "run") -> str:
    """A run name is ONE safe path component: it names ``results/<run>/`` and ``checkpoints/<run>/``
    and must never reach outside them."""
    if not isinstance(run, str):
        raise WmrbenchError(f"{setting(option)} must be a name; got {run!r}")
    why = None
    if not run.strip():
        why = "it is empty or blank"
    elif run in (".", ".."):
        why = f"{run!r} is a folder reference"
    elif "/" in run or "\\" in run:
        why = "it contains a path separator"
    elif any(unicodedata.category(ch) == "Cc" for ch in run):
        bad = next(ch for ch in run if unicodedata.category(ch) == "Cc")
        why = f"it contains the control character {bad!r}"
    elif len(run.encode("utf-8")) > MAX_RUN_BYTES:
        why = f"it is {len(run.encode('utf-8'))} bytes long, more than {MAX_RUN_BYTES}"
    if why is not None:
        shown = run if len(run) <= 60 else run[:40] + "..."
        raise WmrbenchError(
            f"{setting(option, repr(shown))} is not a run name: {why}; a run name is one folder name "
            f"(no '/', '\\', '.', '..' or control characters; at most {MAX_RUN_BYTES} bytes), e.g. cifar10-trades-a2"
        )
    return run


def number_key(value: float) -> str:
    """The name a number takes wherever it becomes one (record columns, metrics keys, run and file
    names, table cells): ``{value:g}`` (1.0 -> '1', 1.5 -> '1.5', 1e-07 -> '1e-07', as results
    always named them) when that reads back as the same float, else Python's shortest round-trip
    form (0.10000000001 -> '0.10000000001', where ``:g`` would give '0.1' for 0.1 as well).
    ``float(number_key(x)) == x`` always holds, so two distinct values never share a name. -0.0
    is named '0', as 0.0 (they are equal as numbers)."""
    value = float(value) + 0.0  # -0.0 + 0.0 is 0.0
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def number_from_key(name: str) -> float:
    """The number a name made by :func:`number_key` stands for ('1.5' -> 1.5), read back where a
    file is read (a record column, a summary's metrics key). ValueError for anything else."""
    if not isinstance(name, str):
        raise ValueError(f"{name!r} is not a number's name")
    return float(name) + 0.0


def metric_label(metric: str, alpha: float | None = None, paren: bool = False) -> str:
    """How a metric at one alpha_test is labelled wherever it is shown or flattened into one name
    (a table's column, ``--select-by``, a seed spread's key): 'A_sa@2', 'A_tr@1.5'; 'A_rob' without
    one. ``paren``: the paper's notation for prose and legends, 'A_sa(2)'."""
    if alpha is None:
        return metric
    return f"{metric}({number_key(alpha)})" if paren else f"{metric}@{number_key(alpha)}"


def parse_metric_label(label: str) -> tuple[str, float | None]:
    """The inverse of :func:`metric_label` (the '@' form), where a file that holds labels is read:
    'A_sa@2' -> ('A_sa', 2.0), 'A_rob' -> ('A_rob', None). ValueError when the alpha is no number."""
    metric, at, alpha = str(label).partition("@")
    return metric, (number_from_key(alpha) if at else None)


def parse_alphas(text: str, option: str = "alpha_test") -> tuple[float, ...]:
    """'1,1.5,2' -> (1.0, 1.5, 2.0); duplicates removed, order kept."""
    values: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise WmrbenchError(f"{setting(option)}: {part!r} is not a number") from None
        check_alpha(value, option)
        if value not in values:
            values.append(value)
    if not values:
        raise WmrbenchError(f"{setting(option)} needs at least one value, e.g. 1,1.5,2")
    return tuple(values)


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'55,75,90' -> (55, 75, 90); an empty string is the empty tuple (no milestones)."""
    try:
        return tuple(int(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise WmrbenchError(f"{setting(option)} takes comma-separated integers, e.g. 55,75,90; got {text!r}") from None


SELECT_METRICS = ("A_rob", "A_sa", "A_tr")


@dataclass(frozen=True)
class SelectBy:
    """What ``best.pt`` maximizes on the held-out split: A_rob, or A_sa / A_tr at one alpha."""

    metric: str  # A_rob | A_sa | A_tr
    alpha: float | None  # for A_sa / A_tr

    def __str__(self) -> str:
        return metric_label(self.metric, self.alpha)


def parse_select_by(text: str) -> SelectBy:
    """'A_rob', 'A_sa@2', 'A_tr@1.5' -> SelectBy; one line for anything else."""
    metric, _, alpha = str(text).partition("@")
    choices = "A_rob, A_sa@ALPHA or A_tr@ALPHA (e.g. A_tr@2)"
    if metric not in SELECT_METRICS or (metric == "A_rob") != (alpha == ""):
        raise WmrbenchError(f"{setting('select_by', repr(text))}: choose {choices}")
    try:
        value = None if metric == "A_rob" else float(alpha)
    except ValueError:
        raise WmrbenchError(f"{setting('select_by', repr(text))}: {alpha!r} is not a number; choose {choices}") from None
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise WmrbenchError(f"{setting('select_by', repr(text))}: alpha must be a finite number >= 0")
    return SelectBy(metric, value)


# Field metadata: which settings may change when a training run or an evaluation is resumed
# (where things are, how long to go on, how fast or how carefully to get there), and which
# settings of an evaluation are fixed once its attack has run (scoring saved points cannot
# change them).
RESUMABLE = {"resumable": True}
FIXED_BY_ATTACK = {"fixed_by_attack": True}


@dataclass(frozen=True)
class TrainConfig:
    run: str = field(metadata=RESUMABLE)  # the folder: resuming writes the one it was given
    dataset: DatasetName
    arch: str
    defense: Defense
    alpha_train: float
    beta: float
    detach_weights: bool
    normalize_weights: bool
    attack: AttackConfig
    epochs: int = field(metadata=RESUMABLE)
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    augment: bool
    seed: int
    data_dir: str = field(metadata=RESUMABLE)
    checkpoint_dir: str = field(metadata=RESUMABLE)
    device: str = field(metadata=RESUMABLE)
    precision: Precision
    # read the running loss back from the device once per this many steps
    log_every: int = field(default=20, metadata=RESUMABLE)
    # torch.compile the model for the training forward (the attack stays eager)
    compile: bool = field(default=False, metadata=RESUMABLE)
    # fetch missing data files first (needs the internet)
    download: bool = field(default=False, metadata=RESUMABLE)
    # check data files against published checksums where they exist
    verify_checksums: bool = field(default=True, metadata=RESUMABLE)
    # how the random crop pads (checkpoints from before this setting padded with zeros)
    padding_mode: PaddingMode = PaddingMode.ZEROS
    # the mode the model is in while the training attack runs
    attack_mode: AttackMode = AttackMode.EVAL
    # held-out evaluation every N epochs (0: never) on val_size examples carved from the training
    # split with the seed; best.pt keeps the epoch with the best select_by (A_rob | A_sa@a | A_tr@a)
    eval_every: int = field(default=0, metadata=RESUMABLE)
    val_size: int = 0
    select_by: str = "A_rob"
    # write each epoch's scalars and the weights' histogram for TensorBoard here (None: don't)
    tensorboard: str | None = field(default=None, metadata=RESUMABLE)
    # a first try on a subset: train on the first n_train training examples (0: all), and take at
    # most max_steps mini-batches per epoch (0: every batch)
    n_train: int = 0
    max_steps: int = 0
    # stop a run that explodes but stays finite (wmrbench.training.divergence's rule); False only warns
    divergence_stop: bool = field(default=True, metadata=RESUMABLE)
    # The reweighting family's own settings (wmrbench.defenses; pgd and trades ignore them).
    # burn_in: epochs of the unweighted base loss before GAIRAT / MAIL start reweighting.
    burn_in: int = 0
    gair_lambda: float = -1.0  # GAIRAT's lambda in (1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2
    mail_bias: float = -1.5  # MAIL's weight sigmoid(slope * (PM + bias)), PM = -margin
    mail_slope: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", parse_dataset(self.dataset))
        object.__setattr__(self, "defense", parse_enum(Defense, self.defense, "defense"))
        object.__setattr__(self, "padding_mode", parse_enum(PaddingMode, self.padding_mode, "padding-mode"))
        object.__setattr__(self, "attack_mode", parse_enum(AttackMode, self.attack_mode, "attack-mode"))
        object.__setattr__(self, "precision", parse_enum(Precision, self.precision, "precision"))
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, (list, tuple)):
            raise WmrbenchError(f"milestones must be a list of epochs; got {self.milestones!r}")
        set_checked(
            self, run=check_run_name(self.run), milestones=tuple(check_int(m, "milestones", 1) for m in self.milestones),
            alpha_train=check_alpha(self.alpha_train, "alpha_train"), beta=check_range(self.beta, "beta", 0.0),
            log_every=check_int(self.log_every, "log_every", 1), epochs=check_int(self.epochs, "epochs", 1),
            batch_size=check_int(self.batch_size, "batch_size", 1), lr=check_range(self.lr, "lr", 0.0),
            momentum=check_range(self.momentum, "momentum", 0.0, 1.0, open_high=True),
            weight_decay=check_range(self.weight_decay, "weight_decay", 0.0),
            gamma=check_range(self.gamma, "gamma", 0.0, open_low=True), seed=check_seed(self.seed),
            eval_every=check_int(self.eval_every, "eval_every", 0), val_size=check_int(self.val_size, "val_size", 0),
            n_train=check_int(self.n_train, "n_train", 0), max_steps=check_int(self.max_steps, "max_steps", 0),
            burn_in=check_int(self.burn_in, "burn_in", 0),
            gair_lambda=check_range(self.gair_lambda, "gair_lambda", -math.inf),
            mail_bias=check_range(self.mail_bias, "mail_bias", -math.inf),
            mail_slope=check_range(self.mail_slope, "mail_slope", 0.0, open_low=True),
        )
        parse_select_by(self.select_by)
        if self.eval_every and not self.val_size:
            raise WmrbenchError(f"{setting('eval_every')} evaluates on a held-out split: give {setting('val_size')} too "
                                "(never the test set)")


@dataclass(frozen=True)
class EvalConfig:
    # A resumed evaluation may change only the RESUMABLE settings: where things are and which
    # device of the same kind runs it. The data and the model are compared by content instead
    # (wmrbench.evaluation.partial), so a moved data folder is fine and other data is not.
    # None: examples handed over from Python (wmrbench.evaluate) without naming a data set
    dataset: DatasetName | None = field(metadata=FIXED_BY_ATTACK)
    attack: AttackConfig = field(metadata=FIXED_BY_ATTACK)
    alpha_test: tuple[float, ...]
    n_examples: int | None
    batch_size: int
    seed: int = field(metadata=FIXED_BY_ATTACK)
    data_dir: str = field(metadata={**FIXED_BY_ATTACK, **RESUMABLE})
    device: str = field(metadata=RESUMABLE)
    precision: Precision
    results_dir: str = field(metadata=RESUMABLE)
    run: str = field(metadata=RESUMABLE)
    download: bool = field(default=False, metadata=RESUMABLE)  # fetch missing data files first (needs the internet)
    # check data files against published checksums where they exist
    verify_checksums: bool = field(default=True, metadata=RESUMABLE)
    # torch.compile the attack's model (fuses BatchNorm/ReLU/residual passes): ~2x on a GPU for
    # ResNet-18, after a one-off compile of ~30 s per model and batch shape (benchmarks/README.md).
    compile: bool = False
    # the preset the attack started from; what was actually run is ``attack`` (options may differ)
    protocol: Protocol = field(default=Protocol.DEFAULT, metadata=FIXED_BY_ATTACK)
    # the uniform attack and, for AutoAttack, its version
    method: AttackMethod = field(default=AttackMethod.PGD, metadata=FIXED_BY_ATTACK)
    aa_version: AAVersion = field(default=AAVersion.STANDARD, metadata=FIXED_BY_ATTACK)
    # ``seeds``: every seed the attack runs with, ``seed`` first (its records are the result's
    # own; the others' go beside them and their spread into the summary). Empty: ``seed`` alone.
    seeds: tuple[int, ...] = field(default=(), metadata=FIXED_BY_ATTACK)

    def __post_init__(self) -> None:
        if self.dataset is not None:  # None: examples handed over from Python (wmrbench.evaluate)
            object.__setattr__(self, "dataset", parse_dataset(self.dataset))
        object.__setattr__(self, "protocol", parse_enum(Protocol, self.protocol, "protocol"))
        object.__setattr__(self, "method", parse_enum(AttackMethod, self.method, "attack"))
        object.__setattr__(self, "aa_version", parse_enum(AAVersion, self.aa_version, "aa-version"))
        object.__setattr__(self, "precision", parse_enum(Precision, self.precision, "precision"))
        if isinstance(self.alpha_test, (str, bytes)) or not isinstance(self.alpha_test, (list, tuple)):
            raise WmrbenchError(f"alpha_test must be a list of numbers; got {self.alpha_test!r}")
        object.__setattr__(self, "alpha_test", tuple(check_alpha(a, "alpha_test") for a in self.alpha_test))
        if not self.alpha_test:
            raise WmrbenchError("alpha_test needs at least one value, e.g. 1,1.5,2")
        if self.method in (AttackMethod.APGD_CE, AttackMethod.APGD_DLR, AttackMethod.AUTOATTACK):
            check_apgd_alpha(max(self.alpha_test), self.method.value)
        if self.n_examples is not None:
            object.__setattr__(self, "n_examples", check_int(self.n_examples, "n_examples", 1))
        set_checked(self, run=check_run_name(self.run), batch_size=check_int(self.batch_size, "batch_size", 1),
             seed=check_seed(self.seed), seeds=check_seeds(self.seeds, self.seed))


Config = TypeVar("Config", TrainConfig, EvalConfig)
ATTACK_FIELDS = frozenset(f.name for f in dataclasses.fields(AttackConfig))


def flat_settings(cls: type, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The settings of a config class named flat, as :func:`with_options` takes them: its own
    fields but the nested ``attack``, then the attack's (``eps``, ``step_size``, ...)."""
    own = [f.name for f in dataclasses.fields(cls) if f.name != "attack"]
    return tuple(n for n in own + sorted(ATTACK_FIELDS, key=_ATTACK_ORDER.index) if n not in exclude)


_ATTACK_ORDER = [f.name for f in dataclasses.fields(AttackConfig)]


def with_options(cfg: Config, given: Mapping[str, Any] | None = None, /, **more: Any) -> Config:
    """``cfg`` with the given settings replaced; ``None`` means "not given" and changes nothing.

    Settings are named flat (``given`` a mapping of them, or keywords): the attack's (``eps``,
    ``step_size``, ``steps``, ``restarts``, ``start``, ...) go into ``cfg.attack``. An unknown
    name is a programming error (TypeError), not a user error.
    """
    given = {k: v for k, v in {**(given or {}), **more}.items() if v is not None}
    attack = {k: given.pop(k) for k in list(given) if k in ATTACK_FIELDS}
    unknown = set(given) - {f.name for f in dataclasses.fields(cfg)}
    if unknown:
        raise TypeError(f"{type(cfg).__name__} has no settings {sorted(unknown)}")
    if attack:
        given["attack"] = dataclasses.replace(cfg.attack, **attack)
    return dataclasses.replace(cfg, **given)


def given_settings(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings of ``options`` that were given (``None`` means "not given")."""
    return {k: v for k, v in (options or {}).items() if v is not None}


def fields_with(cls: type, flag: dict[str, bool]) -> frozenset[str]:
    """The names of the fields of a config class marked with ``flag`` (RESUMABLE, FIXED_BY_ATTACK)."""
    (key,) = flag
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get(key))


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, Enums and tuples -> plain JSON values (what every result file records)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        # alpha_test keys are floats in memory and number names in files: 2.0 -> "2", never "2.0"
        return {number_key(k) if isinstance(k, float) else str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN or Infinity
    return obj


def _from_dict(cls: type[Config], d: dict[str, Any]) -> Config:
    """Inverse of to_jsonable for a config dataclass (the Enums and tuples are restored by the
    class itself); fields it does not know are ignored, so a file a newer version wrote loads."""
    if not isinstance(d, dict) or not isinstance(d.get("attack"), dict):
        raise WmrbenchError(f"not a {cls.__name__} record")
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in d.items() if k in known}
    attack = {k: v for k, v in d["attack"].items() if k in ATTACK_FIELDS}
    try:
        values["attack"] = AttackConfig(**attack)
        return cls(**values)
    except TypeError as exc:  # a field missing: a file from another version, or edited by hand
        raise WmrbenchError(f"not a {cls.__name__} record: {exc}") from None


def train_config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """TrainConfig from plain values (checkpoints store their config that way)."""
    return _from_dict(TrainConfig, d)


def eval_config_from_dict(d: dict[str, Any]) -> EvalConfig:
    """EvalConfig from plain values (summaries and adversarial files store the config they ran)."""
    return _from_dict(EvalConfig, d)
