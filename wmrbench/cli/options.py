"""Options shared by ``evaluate`` and ``attack``: one definition, one help text, one name each."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, TypeVar

import typer

from wmrbench.config import (
    AAVersion,
    AttackMethod,
    AttackMode,
    EvalOptions,
    Norm,
    Options,
    PaddingMode,
    Precision,
    Protocol,
    RestartFrom,
    RestartRule,
    Start,
    check_run_name,
    parse_alphas,
    parse_enum,
    parse_ints,
)
from wmrbench.errors import WmrbenchError

O = TypeVar("O", bound=Options)

PRESET = "default: the paper's evaluation attack for the dataset"
MODEL = "Model"  # help panel of the options that say which model
ATTACK = "Attack"

Checkpoint = Annotated[str | None, typer.Option(help="A wmrbench checkpoint (last.pt), or a plain state_dict (with --arch or --model).", rich_help_panel=MODEL)]
Arch = Annotated[str | None, typer.Option(help="Registered architecture of a plain state_dict (e.g. smallcnn).", rich_help_panel=MODEL)]
ThreatModel = Annotated[str | None, typer.Option(help="RobustBench threat model of --model-id: Linf | L2 | corruptions (default Linf).", rich_help_panel=MODEL)]
ModelDir = Annotated[str | None, typer.Option(help="RobustBench cache: MODEL_DIR/<dataset>/<threat_model>/<id>.pt loads offline (default models).", rich_help_panel=MODEL)]
Factory = Annotated[str | None, typer.Option("--model", help="Your own model: MODULE:FUNCTION (or path/file.py:FUNCTION) returning an nn.Module on [0, 1] inputs; weights from --checkpoint.", rich_help_panel=MODEL)]
Mean = Annotated[str | None, typer.Option(help="Your model expects normalized inputs: per-channel means, e.g. 0.4914,0.4822,0.4465; wmrbench wraps the model so that attacks still run on [0, 1] images (with --std; for --model and --checkpoint --arch).", rich_help_panel=MODEL)]
Std = Annotated[str | None, typer.Option(help="Per-channel standard deviations of that normalization, e.g. 0.2471,0.2435,0.2616 (with --mean).", rich_help_panel=MODEL)]
Dataset = Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default: the checkpoint's; cifar10 for --model-id).")]
DataDir = Annotated[str | None, typer.Option(help="Folder holding the data set files (default data).")]
Download = Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet; cifar10 via torchvision, tinyimagenet, mnist).")]
Compile = Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the attacked model: about 2x faster on a GPU for ResNet-18 after a one-off ~30 s compile; same results (default: no).", rich_help_panel=ATTACK)]
VerifyChecksums = Annotated[bool | None, typer.Option("--verify-checksums/--no-verify-checksums", help="Check the CIFAR-10 files against torchvision's published MD5s (default: yes; the other data sets have no per-file checksums).")]

Eps = Annotated[float | None, typer.Option(help=f"Radius of the threat model's ball, L-inf or L2 ({PRESET}).", rich_help_panel=ATTACK)]
StepSize = Annotated[float | None, typer.Option(help=f"PGD step size ({PRESET}).", rich_help_panel=ATTACK)]
Steps = Annotated[int | None, typer.Option(help=f"PGD steps ({PRESET}).", rich_help_panel=ATTACK)]
Restarts = Annotated[int | None, typer.Option(help="Random restarts; per example one point is kept, by --restart-rule (default 1; --protocol paper: 10).", rich_help_panel=ATTACK)]
Method = Annotated[str | None, typer.Option("--attack", help="pgd (the paper's; default) | apgd-ce | apgd-dlr | autoattack | pgd-lsa (logit-scaling PGD, CE(logits/T) for T 0.1, 10, 1e4) | pgd-cw (PGD on the logit margin): the uniform attack behind A_rob and A_sa; A_tr runs its weighted form (weighted APGD-CE for autoattack, which has none). APGD sets its own step size (2*eps, halved on schedule): --step-size is ignored.", rich_help_panel=ATTACK)]
AAVersionOpt = Annotated[str | None, typer.Option("--aa-version", help="standard (default) | plus | rand: AutoAttack's version, through the pyautoattack package.", rich_help_panel=ATTACK)]
ProtocolOpt = Annotated[str | None, typer.Option("--protocol", help="default (the paper's attack, 1 restart: quick) | paper (the authors' evaluation: uniform start, 10 restarts; MNIST PGD-40 step 0.01 eps 0.3, CIFAR-10 PGD-20 step 0.0031 eps 0.031, Tiny ImageNet PGD-10 step eps/4 eps 0.016). Other options still apply on top.", rich_help_panel=ATTACK)]
NormOpt = Annotated[str | None, typer.Option("--norm", help="linf | l2: the threat model's ball (default: the model's RobustBench threat model, else linf; l2 defaults to eps 0.5 on CIFAR-10, 2.0 on MNIST, PGD-20 with step eps/4).", rich_help_panel=ATTACK)]
RestartFromOpt = Annotated[str | None, typer.Option("--restart-from", help="start (each restart starts afresh from x; default) | previous (chained: from the previous restart's end point plus fresh noise, as the authors' evaluation).", rich_help_panel=ATTACK)]
RestartRuleOpt = Annotated[str | None, typer.Option("--restart-rule", help="weighted (default: per example a misclassified restart with the lowest margin, else the highest margin; the attacker's best for every alpha at once) | max-ce (the restart with the highest cross-entropy at its end point, ties to the later one: the authors' evaluation, --protocol paper's default; the records then also hold the weighted rule's picks among the same restarts, as weighted_rule.* columns). PGD and APGD; AutoAttack's ensemble chooses its own points.", rich_help_panel=ATTACK)]
StartOpt = Annotated[str | None, typer.Option("--start", help="uniform (Madry; default) | normal (0.001*N(0,I)) | zero.", rich_help_panel=ATTACK)]
NExamples = Annotated[int | None, typer.Option(help="Use the first N examples of the split (default: all).")]
BatchSize = Annotated[int | None, typer.Option(help="Examples per batch and process; each batch is stacked once per alpha (default 256). Results do not depend on it.")]
Seed = Annotated[int | None, typer.Option(help="Seed of the random starts, keyed per example (default 0).", rich_help_panel=ATTACK)]
Seeds = Annotated[str | None, typer.Option(help="Repeat the attack with other keyed starts, e.g. 0,1,2: the first seed's records are the result (as --seed 0 gives them), each other seed's go beside them (records-seed1.csv, ...), and the summary and the terminal show each metric's spread over the seeds (min, max, mean, std): the attack's own randomness, which the sampling interval over examples does not cover. Each seed costs one more attack. Not resumable part-way past the first seed.", rich_help_panel=ATTACK)]
Device = Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N (default auto).")]
PrecisionOpt = Annotated[str | None, typer.Option("--precision", help="fp32 (default: reported numbers are fp32's) | bf16 (faster on a GPU, but a weaker attack: on the MNIST TRADES model it overstated A_rob by 0.40 points (1,000 images, GPU) and A_tr(2) by 5.5 points (200 images, CPU); see README; recorded in the result).")]
ResultsDir = Annotated[str | None, typer.Option(help="Results go to RESULTS_DIR/RUN/ (default results).")]
Quiet = Annotated[bool, typer.Option(help="No progress bars, and no per-batch lines when the output is not a terminal (epoch lines and results still print).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing complete result (or adversarial file) of this run; for evaluate, also start an unfinished evaluation of it over (its saved batches are deleted). Without it, either is refused.")]


# Options given as text whose config field is an Enum: (Enum, the option's name in messages).
ENUM_OPTIONS = {
    "start": (Start, "start"), "precision": (Precision, "precision"), "method": (AttackMethod, "attack"),
    "aa_version": (AAVersion, "aa-version"), "protocol": (Protocol, "protocol"), "norm": (Norm, "norm"),
    "attack_mode": (AttackMode, "attack-mode"), "padding_mode": (PaddingMode, "padding-mode"),
    "restart_from": (RestartFrom, "restart-from"), "restart_rule": (RestartRule, "restart-rule"),
}


def _parsed(name: str, value: Any) -> Any:
    """A raw option value in the type its config field takes (None stays "not given")."""
    if value is None:
        return None
    if name in ENUM_OPTIONS:
        enum_type, option = ENUM_OPTIONS[name]
        return parse_enum(enum_type, value, option)
    if name == "alpha_test":
        return parse_alphas(value)
    if name == "milestones":
        return parse_ints(value, "--milestones")
    if name == "seeds":
        return parse_ints(value, "--seeds")
    if name == "download":
        return value or None  # a flag: absent means "not given", not "no"
    return value


def options_from(cls: type[O], values: dict[str, Any]) -> O:
    """The options object of a command, from its parameters (pass ``locals()``).

    A command's parameters are named exactly like the fields of its options dataclass (one name
    per setting everywhere), so the object is built by name; the command's other parameters
    (model source, --run, --quiet ...) are ignored here.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: _parsed(name, value) for name, value in values.items() if name in names})


def _check_run(value: str | None) -> str | None:
    """Every command's --run is checked here, as it is parsed, before any other work: one line."""
    from wmrbench.cli.common import fail

    if value is None:
        return None
    try:
        return check_run_name(value)
    except WmrbenchError as exc:
        fail(str(exc))


def run_option(help: str) -> Any:
    """The ``--run`` option of a command (train, evaluate, attack, rerun): its own help, one check."""
    return typer.Option("--run", help=help, callback=_check_run)


def note_precision(options: EvalOptions) -> None:
    """Say, before any work, that a bf16 evaluation does not give fp32's (reported) numbers."""
    if options.precision is Precision.BF16:
        typer.echo(
            "Note: --precision bf16 runs the attack in bf16 autocast: a weaker attack than fp32's "
            "(on the MNIST TRADES model it overstated A_rob by 0.40 points (1,000 images, GPU) and A_tr(2) by 5.5 points (200 images, CPU)); the result records bf16, "
            "and its numbers should not be compared with fp32 ones",
            err=True,
        )


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """'0.5,0.25' -> (0.5, 0.25); None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise WmrbenchError(f"{option} takes comma-separated numbers, e.g. 0.4914,0.4822,0.4465; got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise WmrbenchError(f"{option} takes finite numbers; got {text!r}")
    return values

Ci = Annotated[str, typer.Option("--ci", help="How each number's 95% interval (a bootstrap over the test examples, for this attack) is shown: pm (53.30 ± 2.4, half the interval's width; default) | interval (53.30 [50.90, 55.70]) | none. CSV keeps it as METRIC_lo / METRIC_hi columns unless none.")]
