"""Typed configuration: str Enums at the boundary, frozen dataclasses inside, the paper's presets.

Every setting has one name everywhere (``eps``, ``step_size``, ``steps``, ``restarts``, ``alpha``),
from the CLI option (``--step-size``) to the dataclass field to the JSON written beside results.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from wmrbench.errors import WmrbenchError


class Defense(str, Enum):
    PGD = "pgd"  # Madry et al. PGD adversarial training
    TRADES = "trades"  # Zhang et al. TRADES


class DatasetName(str, Enum):
    DIGITS = "digits"
    MNIST = "mnist"
    CIFAR10 = "cifar10"
    TINYIMAGENET = "tinyimagenet"


class InnerLoss(str, Enum):
    CE = "ce"  # cross-entropy at the adversarial point (PGD-AT and every evaluation attack)
    KL = "kl"  # KL(p(x) || p(x')) summed over classes (the TRADES training attack)


class Start(str, Enum):
    NORMAL = "normal"  # x + 0.001 * N(0, I): TRADES and Algorithm 1 of the paper
    UNIFORM = "uniform"  # x + U(-eps, eps): Madry et al. PGD
    ZERO = "zero"  # x itself


class Precision(str, Enum):
    BF16 = "bf16"  # bf16 autocast (CUDA default)
    FP32 = "fp32"  # full precision (CPU default)


E = TypeVar("E", bound=Enum)


def parse_enum(enum_type: type[E], value: str | E, option: str) -> E:
    """Turn a user's string into an Enum member, or fail with one line listing the choices."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in enum_type)
        raise WmrbenchError(f"unknown {option} {value!r}; choose one of: {choices}") from None


def check_eps(eps: float) -> float:
    if not 0.0 <= eps <= 1.0:
        raise WmrbenchError(f"eps must be in [0, 1] (inputs are images in [0, 1]); got {eps}")
    return eps


def check_alpha(alpha: float, option: str = "alpha") -> float:
    if not alpha >= 0.0:  # also rejects NaN
        raise WmrbenchError(f"{option} must be >= 0 (0 is the uniform, unweighted case); got {alpha}")
    return alpha


def parse_alphas(text: str, option: str = "--alpha-test") -> tuple[float, ...]:
    """'1,1.5,2' -> (1.0, 1.5, 2.0); duplicates removed, order kept."""
    values: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise WmrbenchError(f"{option}: {part!r} is not a number") from None
        check_alpha(value, option)
        if value not in values:
            values.append(value)
    if not values:
        raise WmrbenchError(f"{option} needs at least one value, e.g. 1,1.5,2")
    return tuple(values)


@dataclass(frozen=True)
class AttackConfig:
    """One (weighted) PGD attack in the L-infinity ball of radius eps, intersected with [0, 1]."""

    eps: float
    step_size: float
    steps: int
    restarts: int = 1
    start: Start = Start.UNIFORM

    def __post_init__(self) -> None:
        check_eps(self.eps)
        if self.step_size < 0:
            raise WmrbenchError(f"step_size must be >= 0; got {self.step_size}")
        if self.steps < 0:
            raise WmrbenchError(f"steps must be >= 0; got {self.steps}")
        if self.restarts < 1:
            raise WmrbenchError(f"restarts must be >= 1; got {self.restarts}")


@dataclass(frozen=True)
class Preset:
    """The paper's setting for one dataset and defense (DESIGN.md section 2)."""

    arch: str
    eps: float
    train_step_size: float
    train_steps: int
    eval_step_size: float
    eval_steps: int
    beta: float
    alpha_train: float  # the value the paper's "+ours" rows use
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    augment: bool = False  # random crop (padding 4) + horizontal flip
    note: str = ""


TINY_IMAGENET_NOTE = (
    "Tiny ImageNet: PreActResNet-18, eps 0.016, 10 attack steps of eps/4, PGD-10 evaluation and "
    "beta 6 are the paper's; the paper gives no training recipe for it, so this preset reuses the "
    "CIFAR-10 one (SGD lr 0.2, momentum 0.9, batch 128, 100 epochs, the same weight decay and lr "
    "schedule per defense) with random crop 64 / padding 4 and flip, the closest setting the paper "
    "does give (DESIGN.md section 2)"
)

# Keyed by (dataset, defense). Values from DESIGN.md section 2 (the authors' code).
PRESETS: dict[tuple[DatasetName, Defense], Preset] = {
    (DatasetName.MNIST, Defense.TRADES): Preset(
        arch="smallcnn", eps=0.3, train_step_size=0.01, train_steps=40, eval_step_size=0.01,
        eval_steps=40, beta=6.0, alpha_train=2.0, epochs=100, batch_size=128, lr=0.01,
        momentum=0.9, weight_decay=0.0, milestones=(55, 75, 90), gamma=0.1,
    ),
    (DatasetName.MNIST, Defense.PGD): Preset(
        arch="smallcnn", eps=0.3, train_step_size=0.01, train_steps=40, eval_step_size=0.01,
        eval_steps=40, beta=6.0, alpha_train=0.5, epochs=100, batch_size=128, lr=0.01,
        momentum=0.9, weight_decay=5e-4, milestones=(60,), gamma=0.2,
    ),
    # CIFAR-10: ResNet-18; the authors' code trains with lr 0.2, batch 128, 100 epochs, random
    # crop 32 (padding 4) + flip; the paper evaluates with PGD-20 of step 0.003 at eps 0.031.
    (DatasetName.CIFAR10, Defense.TRADES): Preset(
        arch="resnet18", eps=0.031, train_step_size=0.007, train_steps=10, eval_step_size=0.003,
        eval_steps=20, beta=5.0, alpha_train=2.0, epochs=100, batch_size=128, lr=0.2,
        momentum=0.9, weight_decay=2e-4, milestones=(75, 90), gamma=0.1, augment=True,
        note="the paper's CIFAR-10 TRADES setting (authors' code): 10 attack steps of 0.007 at eps "
        "0.031, beta 5, lr 0.2 with x0.1 at epochs 75 and 90, weight decay 2e-4",
    ),
    (DatasetName.CIFAR10, Defense.PGD): Preset(
        arch="resnet18", eps=8 / 255, train_step_size=2 / 255, train_steps=10, eval_step_size=0.003,
        eval_steps=20, beta=5.0, alpha_train=2.0, epochs=100, batch_size=128, lr=0.2,
        momentum=0.9, weight_decay=5e-4, milestones=(60,), gamma=0.2, augment=True,
        note="the paper's CIFAR-10 PGD-AT setting (authors' PGD-AT code): 10 attack steps of 2/255 at "
        "eps 8/255, lr 0.2 with x0.2 at epoch 60, weight decay 5e-4; evaluated, like TRADES, at eps 0.031",
    ),
    # Tiny ImageNet: model, eps, attacks, beta and alpha_train are the paper's; its training
    # recipe is not given, so the CIFAR-10 one is reused (DESIGN.md section 2; see the note).
    (DatasetName.TINYIMAGENET, Defense.TRADES): Preset(
        arch="preactresnet18", eps=0.016, train_step_size=0.004, train_steps=10, eval_step_size=0.004,
        eval_steps=10, beta=6.0, alpha_train=5.0, epochs=100, batch_size=128, lr=0.2,
        momentum=0.9, weight_decay=2e-4, milestones=(75, 90), gamma=0.1, augment=True,
        note=TINY_IMAGENET_NOTE,
    ),
    (DatasetName.TINYIMAGENET, Defense.PGD): Preset(
        arch="preactresnet18", eps=0.016, train_step_size=0.004, train_steps=10, eval_step_size=0.004,
        eval_steps=10, beta=6.0, alpha_train=0.3, epochs=100, batch_size=128, lr=0.2,
        momentum=0.9, weight_decay=5e-4, milestones=(60,), gamma=0.2, augment=True,
        note=TINY_IMAGENET_NOTE,
    ),
    # The digits set (8x8, 1,797 images) is not in the paper: it is the embedded offline default.
    # Its attack is MNIST's scaled down (eps 0.3 erases 8x8 digits); epochs are few so the demo
    # trains two models and evaluates them in well under three minutes on a 2-core CPU.
    (DatasetName.DIGITS, Defense.TRADES): Preset(
        arch="digitsnet", eps=0.1, train_step_size=0.025, train_steps=10, eval_step_size=0.01,
        eval_steps=20, beta=6.0, alpha_train=2.0, epochs=30, batch_size=64, lr=0.05,
        momentum=0.9, weight_decay=0.0, milestones=(20, 25), gamma=0.1,
        note="not in the paper: a small offline stand-in with MNIST's recipe scaled down",
    ),
    (DatasetName.DIGITS, Defense.PGD): Preset(
        arch="digitsnet", eps=0.1, train_step_size=0.025, train_steps=10, eval_step_size=0.01,
        eval_steps=20, beta=6.0, alpha_train=0.5, epochs=30, batch_size=64, lr=0.05,
        momentum=0.9, weight_decay=5e-4, milestones=(20, 25), gamma=0.1,
        note="not in the paper: a small offline stand-in with MNIST's recipe scaled down",
    ),
}


def preset_for(dataset: DatasetName, defense: Defense = Defense.TRADES) -> Preset:
    try:
        return PRESETS[(dataset, defense)]
    except KeyError:
        raise WmrbenchError(
            f"no preset for dataset {dataset.value!r} with defense {defense.value!r}"
        ) from None


@dataclass(frozen=True)
class TrainConfig:
    run: str
    dataset: DatasetName
    arch: str
    defense: Defense
    alpha_train: float
    beta: float
    detach_weights: bool
    normalize_weights: bool
    attack: AttackConfig
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    augment: bool
    seed: int
    data_dir: str
    checkpoint_dir: str
    device: str
    precision: Precision
    log_every: int = 20  # read the running loss back from the device once per this many steps
    compile: bool = False  # torch.compile the model for the training forward (the attack stays eager)
    download: bool = False  # fetch missing data files first (needs the internet)
    verify_checksums: bool = True  # check data files against published checksums where they exist

    def __post_init__(self) -> None:
        check_alpha(self.alpha_train, "--alpha-train")
        if self.log_every < 1:
            raise WmrbenchError(f"log_every must be >= 1; got {self.log_every}")
        if self.epochs < 1:
            raise WmrbenchError(f"epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1:
            raise WmrbenchError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.beta < 0:
            raise WmrbenchError(f"beta must be >= 0; got {self.beta}")


@dataclass(frozen=True)
class EvalConfig:
    dataset: DatasetName
    attack: AttackConfig
    alpha_test: tuple[float, ...]
    n_examples: int | None
    batch_size: int
    seed: int
    data_dir: str
    device: str
    precision: Precision
    results_dir: str
    run: str
    download: bool = False  # fetch missing data files first (needs the internet)
    verify_checksums: bool = True  # check data files against published checksums where they exist
    # torch.compile the attack's model (fuses BatchNorm/ReLU/residual passes): ~2x on a GPU for
    # ResNet-18, after a one-off compile of ~30 s per model and batch shape (benchmarks/README.md).
    compile: bool = False

    def __post_init__(self) -> None:
        for alpha in self.alpha_test:
            check_alpha(alpha, "--alpha-test")
        if self.n_examples is not None and self.n_examples < 1:
            raise WmrbenchError(f"n_examples must be >= 1; got {self.n_examples}")
        if self.batch_size < 1:
            raise WmrbenchError(f"batch_size must be >= 1; got {self.batch_size}")


def build_train_config(
    dataset: DatasetName, defense: Defense, *, run: str | None = None, **overrides: Any
) -> TrainConfig:
    """The paper's preset for (dataset, defense) with every non-None override applied."""
    preset = preset_for(dataset, defense)
    given = {k: v for k, v in overrides.items() if v is not None}
    attack = AttackConfig(
        eps=given.pop("eps", preset.eps),
        step_size=given.pop("step_size", preset.train_step_size),
        steps=given.pop("steps", preset.train_steps),
        restarts=given.pop("restarts", 1),
        start=given.pop("start", Start.NORMAL),  # Algorithm 1: x + 0.001 * N(0, I)
    )
    values: dict[str, Any] = dict(
        dataset=dataset, defense=defense, arch=preset.arch, alpha_train=0.0, beta=preset.beta,
        detach_weights=False, normalize_weights=False, attack=attack, epochs=preset.epochs,
        batch_size=preset.batch_size, lr=preset.lr, momentum=preset.momentum,
        weight_decay=preset.weight_decay, milestones=preset.milestones, gamma=preset.gamma,
        augment=preset.augment, seed=0, data_dir="data", checkpoint_dir="checkpoints",
        device="auto", precision=Precision.FP32, compile=False, download=False,
        verify_checksums=True,
    )
    unknown = set(given) - set(values) - {"log_every"}
    if unknown:
        raise TypeError(f"unknown training settings: {sorted(unknown)}")
    values.update(given)
    values["milestones"] = tuple(int(m) for m in values["milestones"])
    if run is None:
        run = f"{dataset.value}-{defense.value}-a{values['alpha_train']:g}"
    return TrainConfig(run=run, **values)


def describe_train_config(cfg: TrainConfig) -> str:
    """The run's full config, one ``name: value`` line per setting, and the preset's note.

    ``train`` prints it at the start of every run, so a log says exactly what was run.
    """
    lines = ["config:"]
    for name, value in to_jsonable(cfg).items():
        if isinstance(value, dict):
            lines += [f"  {name}.{key}: {inner}" for key, inner in value.items()]
        else:
            lines.append(f"  {name}: {value}")
    preset = PRESETS.get((cfg.dataset, cfg.defense))
    if preset is not None and preset.note:
        lines.append(f"  preset note: {preset.note}")
    return "\n".join(lines)


def eval_attack_for(dataset: DatasetName, **overrides: Any) -> AttackConfig:
    """The paper's evaluation attack for a dataset (PGD-k, uniform start) with overrides."""
    preset = preset_for(dataset, Defense.TRADES)
    given = {k: v for k, v in overrides.items() if v is not None}
    return AttackConfig(
        eps=given.get("eps", preset.eps),
        step_size=given.get("step_size", preset.eval_step_size),
        steps=given.get("steps", preset.eval_steps),
        restarts=given.get("restarts", 1),
        start=given.get("start", Start.UNIFORM),
    )


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, Enums and tuples -> plain JSON values (what every result file records)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def attack_from_dict(d: dict[str, Any]) -> AttackConfig:
    return AttackConfig(
        eps=float(d["eps"]), step_size=float(d["step_size"]), steps=int(d["steps"]),
        restarts=int(d.get("restarts", 1)), start=Start(d.get("start", Start.UNIFORM.value)),
    )


def _from_dict(cls: type[Any], d: dict[str, Any], **convert: Any) -> Any:
    """Inverse of to_jsonable for a config dataclass; fields it does not know are ignored, so a
    file written by a newer version still loads."""
    values = dict(d)
    for key, fn in convert.items():
        values[key] = fn(values[key])
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def train_config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """TrainConfig from plain values (checkpoints store their config that way)."""
    return _from_dict(
        TrainConfig, d, dataset=DatasetName, defense=Defense, precision=Precision, attack=attack_from_dict,
        milestones=lambda ms: tuple(int(m) for m in ms),
    )


def eval_config_from_dict(d: dict[str, Any]) -> EvalConfig:
    """EvalConfig from plain values (adversarial files store the config they ran)."""
    return _from_dict(
        EvalConfig, d, dataset=DatasetName, precision=Precision, attack=attack_from_dict,
        alpha_test=lambda alphas: tuple(float(a) for a in alphas),
    )


__all__ = [
    "AttackConfig", "DatasetName", "Defense", "EvalConfig", "InnerLoss", "PRESETS", "Precision",
    "Preset", "Start", "TrainConfig", "attack_from_dict", "check_alpha", "build_train_config", "check_eps",
    "describe_train_config", "eval_attack_for", "eval_config_from_dict",
    "parse_alphas", "parse_enum", "preset_for", "to_jsonable", "train_config_from_dict",
]
