"""Every command-line option, declared once: its name, type, help text and help panel.

A command's signature names its parameters by setting (``eps: p.Eps = None``), so an option
reads the same in every command that takes it, and its help is written in one place. Where
two commands mean different things by one name (``train``'s ``--eps`` is the training attack's
radius, ``evaluate``'s the threat model's), each meaning has its own alias (``TrainEps``, ``Eps``).
This module only declares; what a given option becomes is :mod:`wmrbench.cli.options`' job.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from wmrbench.core.config import check_run_name
from wmrbench.core.errors import WmrbenchError


def _check_run(value: str | None) -> str | None:
    """Every command's --run is checked here, as it is parsed, before any other work: one line."""
    from wmrbench.cli.common import as_options, fail

    if value is None:
        return None
    try:
        return check_run_name(value)
    except WmrbenchError as exc:
        fail(as_options(exc))


def run_option(help: str) -> Any:
    """The ``--run`` option of a command (train, evaluate, attack, rerun): its own help, one check."""
    return typer.Option("--run", help=help, callback=_check_run)


# ---- help panels: the same names in every command --------------------------------------------
# Options that name no panel sit in typer's first panel ("Options"): what a first run needs. The
# panels below follow it in a command's help in the order its signature first uses them.

MODEL = "Model"  # which model, beyond a checkpoint and its architecture
ATTACK = "Attack"  # the attack's budget and method (train: the training attack)
PROTOCOL = "Protocol and seeds"  # restarts, starts, the paper's protocol, seeds
DEFENSE = "Defense"  # train: the loss's own hyperparameters
SCHEDULE = "Training schedule"  # train: architecture, optimizer, epochs' data
VALIDATION = "Validation and logging"  # train: held-out evaluation, TensorBoard, log cadence
OUTPUT = "Output and resuming"  # where results go, overwriting, resuming, what is shown
PRECISION = "Precision and runtime"  # device, precision, batch size, compile: not the numbers' meaning
EXPERT = "Expert"  # departures from the paper's algorithm, safety switches, checks
LAUNCH = "Launcher"  # several runs as jobs
PANELS = (MODEL, ATTACK, PROTOCOL, DEFENSE, SCHEDULE, VALIDATION, OUTPUT, PRECISION, EXPERT, LAUNCH)

MORE = "docs/cli.md"  # where an option's help points for what does not fit in two lines


# ---- evaluate, attack, audit: the model, the data, the attack ---------------------------------

PRESET = "default: the dataset's evaluation preset"

Checkpoint = Annotated[str | None, typer.Option(help="A wmrbench checkpoint (last.pt) or a plain state_dict (with --arch or --model); several: comma-separated or a quoted glob.")]
Arch = Annotated[str | None, typer.Option(help="Registered architecture of a plain state_dict (e.g. smallcnn).")]
ThreatModel = Annotated[str | None, typer.Option(help="RobustBench threat model of --model-id: Linf | L2 | corruptions (default Linf).", rich_help_panel=MODEL)]
ModelDir = Annotated[str | None, typer.Option(help="RobustBench cache: MODEL_DIR/<dataset>/<threat_model>/<id>.pt loads offline (default models).", rich_help_panel=MODEL)]
Factory = Annotated[str | None, typer.Option("--model", help="Your own model: MODULE:FUNCTION or path/file.py:FUNCTION returning an nn.Module on [0, 1] inputs.", rich_help_panel=MODEL)]
Mean = Annotated[str | None, typer.Option(help=f"Per-channel means of a model that normalizes its inputs, e.g. 0.4914,0.4822,0.4465 (with --std; {MORE}).", rich_help_panel=MODEL)]
Std = Annotated[str | None, typer.Option(help="Per-channel standard deviations of that normalization, e.g. 0.2471,0.2435,0.2616 (with --mean).", rich_help_panel=MODEL)]
ModelId = Annotated[str | None, typer.Option(help="RobustBench zoo id, e.g. Carmon2019Unlabeled (list them: wmrbench models).")]
Dataset = Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default: the checkpoint's; cifar10 for --model-id).")]
DataDir = Annotated[str | None, typer.Option(help="Folder holding the data set files (default data).")]
Download = Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet).", show_default=False)]
Compile = Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the attacked model: faster on a GPU, same results (default: no).", rich_help_panel=PRECISION)]
VerifyChecksums = Annotated[bool | None, typer.Option("--verify-checksums/--no-verify-checksums", help="Check CIFAR-10's files against their MD5s (default: yes).", rich_help_panel=EXPERT)]

# The attack's settings.
Eps = Annotated[float | None, typer.Option(help=f"Radius of the threat model's ball, L-inf or L2 ({PRESET}).", rich_help_panel=ATTACK)]
StepSize = Annotated[float | None, typer.Option(help=f"PGD step size ({PRESET}).", rich_help_panel=ATTACK)]
Steps = Annotated[int | None, typer.Option(help=f"PGD steps ({PRESET}).", rich_help_panel=ATTACK)]
Restarts = Annotated[int | None, typer.Option(help="Random restarts; one point per example is kept, by --restart-rule (default 1; --protocol paper: 10).", rich_help_panel=PROTOCOL)]
Method = Annotated[str | None, typer.Option("--attack", help=f"pgd (default) | apgd-ce | apgd-dlr | autoattack | pgd-lsa | pgd-cw: the uniform attack; A_tr runs its weighted form ({MORE}).", rich_help_panel=ATTACK)]
AAVersionOpt = Annotated[str | None, typer.Option("--aa-version", help="standard (default) | plus | rand: AutoAttack's version (pyautoattack).", rich_help_panel=ATTACK)]
ProtocolOpt = Annotated[str | None, typer.Option("--protocol", help=f"default (the paper's attack, 1 restart) | paper (the authors' evaluation: 10 restarts, max-ce; {MORE}).", rich_help_panel=PROTOCOL)]
NormOpt = Annotated[str | None, typer.Option("--norm", help=f"linf | l2: the threat model's ball (default: the model's RobustBench threat model, else linf; {MORE}).", rich_help_panel=ATTACK)]
RestartFromOpt = Annotated[str | None, typer.Option("--restart-from", help="start (each restart afresh from x; default) | previous (from the previous end point, as the authors' evaluation).", rich_help_panel=PROTOCOL)]
RestartRuleOpt = Annotated[str | None, typer.Option("--restart-rule", help=f"weighted (default: the attacker's best for every alpha) | max-ce (the authors', --protocol paper's; {MORE}).", rich_help_panel=PROTOCOL)]
StartOpt = Annotated[str | None, typer.Option("--start", help="uniform (Madry; default) | normal (0.001*N(0,I)) | zero.", rich_help_panel=PROTOCOL)]
NExamples = Annotated[int | None, typer.Option(help="Use the first N examples of the split (default: all).")]
BatchSize = Annotated[int | None, typer.Option(help="Examples per batch and process (default 256); results do not depend on it.", rich_help_panel=PRECISION)]
Seed = Annotated[int | None, typer.Option(help="Seed of the random starts, keyed per example (default 0).", rich_help_panel=PROTOCOL)]
Seeds = Annotated[str | None, typer.Option(help=f"Repeat the attack with other seeds, e.g. 0,1,2: the first's records are the result, the spread is shown ({MORE}).", rich_help_panel=PROTOCOL)]
Device = Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N (default auto).", show_default=False, rich_help_panel=PRECISION)]
PrecisionOpt = Annotated[str | None, typer.Option("--precision", help=f"fp32 (default; reported numbers are fp32's) | bf16 (faster on a GPU, a weaker attack; {MORE}).", rich_help_panel=PRECISION)]
ResultsDir = Annotated[str | None, typer.Option(help="Results go to RESULTS_DIR/RUN/ (default results).", rich_help_panel=OUTPUT)]
Quiet = Annotated[bool, typer.Option(help="No progress bars, and no per-batch lines when not on a terminal.", rich_help_panel=OUTPUT, show_default=False)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace this run's existing result (evaluate: also restart an unfinished one); refused without it.", rich_help_panel=OUTPUT, show_default=False)]

# evaluate's, attack's and audit's own.
EvalModelIds = Annotated[list[str] | None, typer.Option("--model-id", help="RobustBench zoo id, e.g. Carmon2019Unlabeled; repeat (or comma-separate) to evaluate several in turn.")]
EvalDefense = Annotated[str | None, typer.Option("--defense", help="pgd | trades: how a model without a wmrbench checkpoint was trained; labels its rows (TRADES+ours).", rich_help_panel=MODEL)]
EvalAlphaTrain = Annotated[float | None, typer.Option("--alpha-train", help="The alpha_train that model was trained with (with --defense; default 0, the baseline).", rich_help_panel=MODEL)]
Adversarial = Annotated[str | None, typer.Option("--adversarial", help="Score the points `wmrbench attack` saved, on that model or the one named (a transfer).", rich_help_panel=MODEL)]
EvalAlphaTest = Annotated[str | None, typer.Option("--alpha-test", help="Comma-separated alpha_test values for A_sa and A_tr (default 1,1.5,2; with --adversarial: the file's).", rich_help_panel=ATTACK)]
AttackAlphaTest = Annotated[str | None, typer.Option("--alpha-test", help="Comma-separated alphas: one weighted PGD each, beside the uniform PGD (default 1,1.5,2).", rich_help_panel=ATTACK)]
EvalRun = Annotated[str | None, run_option(help="Result name (default: the checkpoint's run, the model id or the function's; -ATTACK added for --attack).")]
AttackRun = Annotated[str | None, run_option(help="Name of the attack (default: the model's run, id or function name).")]
AuditRun = Annotated[str | None, typer.Option("--run", help="Write RESULTS_DIR/RUN/audit.json (default: the checkpoint's run, the model id or the function's).")]
EvalResume = Annotated[bool, typer.Option("--resume", help=f"Continue this run's interrupted evaluation from its saved batches: the same bytes as one run ({MORE}).", rich_help_panel=OUTPUT)]
Split = Annotated[str, typer.Option("--split", help="test | train: the split to attack.")]
AttackOutput = Annotated[str | None, typer.Option("--output", help="The file to write (default RESULTS_DIR/RUN/adversarial.pt); a regular file, not -.", rich_help_panel=OUTPUT)]
Reference = Annotated[str | None, typer.Option("--reference", help="A second checkpoint (e.g. the baseline) whose transferred points must not beat the model's own (check 5).", rich_help_panel=MODEL)]
ReferenceArch = Annotated[str | None, typer.Option("--reference-arch", help="Architecture of a plain-state_dict --reference (default: --arch).", rich_help_panel=MODEL)]
AuditNExamples = Annotated[int | None, typer.Option("--n-examples", help="Audit the first N test examples (default 500).")]
AuditQuick = Annotated[bool, typer.Option("--quick", help=f"Smaller budgets, for a first look or a test ({MORE}).", show_default=False)]
AuditOverwrite = Annotated[bool, typer.Option("--overwrite", help="Run every attack again; without it, the attacks an earlier audit finished are read back.", rich_help_panel=OUTPUT, show_default=False)]


@dataclass(frozen=True)
class Group:
    """Options several commands take together, in help order: ``{name: (annotated type, default)}``.

    A command names a group once, as a parameter whose default is the group
    (``model_source: Any = p.MODEL_SOURCE``); :func:`command` expands it for Typer, so the
    commands that share these options do not list them one by one.
    """

    params: dict[str, tuple[Any, Any]]


F = TypeVar("F", bound=Callable[..., Any])


def command(func: F) -> F:
    """A Typer command whose group parameters (:class:`Group` defaults) stand for their options.

    Typer reads a command's options from its signature (``inspect.signature``, then the type
    hints): the signature shown to it has each group spelled out in place, and the command is
    called with every option by name, the group's ones landing in its ``**given``.
    """
    hints = get_type_hints(func, include_extras=True)
    shown: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        members = param.default.params if isinstance(param.default, Group) else {
            param.name: (hints.get(param.name, param.annotation), param.default)}
        for name, (annotation, default) in members.items():
            shown.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
            annotations[name] = annotation

    @functools.wraps(func)
    def run(**values: Any) -> Any:
        return func(**values)

    run.__signature__ = inspect.Signature(shown)  # type: ignore[attr-defined]
    run.__annotations__ = annotations
    return run  # type: ignore[return-value]


# The groups attack, evaluate and audit share (model_id differs: evaluate takes several).
MODEL_SOURCE = Group({
    "checkpoint": (Checkpoint, None), "arch": (Arch, None), "threat_model": (ThreatModel, None),
    "model_dir": (ModelDir, None), "model": (Factory, None), "mean": (Mean, None), "std": (Std, None),
})
DATA = Group({"dataset": (Dataset, None), "data_dir": (DataDir, None), "download": (Download, False)})
BUDGET = Group({"eps": (Eps, None), "step_size": (StepSize, None), "steps": (Steps, None)})
ATTACK_METHOD = Group({"method": (Method, None), "aa_version": (AAVersionOpt, None), "norm": (NormOpt, None)})
RESTARTS = Group({
    "protocol": (ProtocolOpt, None), "restarts": (Restarts, None), "restart_from": (RestartFromOpt, None),
    "restart_rule": (RestartRuleOpt, None), "start": (StartOpt, None),
})
RUNTIME_GROUP = Group({
    "device": (Device, None), "precision": (PrecisionOpt, None), "batch_size": (BatchSize, None),
    "verify_checksums": (VerifyChecksums, None),
})

Ci = Annotated[str, typer.Option("--ci", help="How each 95% interval shows: pm (53.30 ± 2.4; default) | interval (53.30 [50.90, 55.70]) | none.", show_default=False, rich_help_panel=OUTPUT)]


# ---- train -------------------------------------------------------------------------------

TRAIN_PRESET = "default: the dataset's preset"

TrainDataset = Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default digits).")]
TrainDefense = Annotated[str | None, typer.Option(help="pgd (PGD-AT) | trades (default) | mart | gairat | mail-at | mail-trades; alpha_train applies to pgd and trades.")]
TrainAlphaTrain = Annotated[str | None, typer.Option(help=f"Weight sharpness alpha: 0 = unweighted (default), > 0 = '+ours'; several (0,0.5,2): one run each ({MORE}).")]
Beta = Annotated[float | None, typer.Option(help=f"beta of the KL term: TRADES' 1/lambda, MART's, MAIL-TRADES' ({TRAIN_PRESET}).", rich_help_panel=DEFENSE)]
BurnIn = Annotated[int | None, typer.Option(help=f"GAIRAT, MAIL: epochs of the unweighted base loss first ({TRAIN_PRESET}).", rich_help_panel=DEFENSE)]
GairLambda = Annotated[float | None, typer.Option(help=f"GAIRAT's lambda in its weight ({TRAIN_PRESET}: -1; docs/definitions.md).", rich_help_panel=DEFENSE)]
MailBias = Annotated[float | None, typer.Option(help=f"MAIL's bias in its weight ({TRAIN_PRESET}: -1.5; docs/definitions.md).", rich_help_panel=DEFENSE)]
MailSlope = Annotated[float | None, typer.Option(help=f"MAIL's slope (> 0) in its weight ({TRAIN_PRESET}: 1).", rich_help_panel=DEFENSE)]
DetachWeights = Annotated[bool | None, typer.Option("--detach-weights/--no-detach-weights", help="Detach s_i from the graph (default: no, as the authors).", rich_help_panel=EXPERT)]
NormalizeWeights = Annotated[bool | None, typer.Option("--normalize-weights/--no-normalize-weights", help="Divide the weighted loss by sum s_i, not m (default: no).", rich_help_panel=EXPERT)]
TrainArch = Annotated[str | None, typer.Option(help=f"Architecture from the registry ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
TrainEps = Annotated[float | None, typer.Option(help=f"L-inf radius of the training attack ({TRAIN_PRESET}).", rich_help_panel=ATTACK)]
TrainStepSize = Annotated[float | None, typer.Option(help=f"Training attack step size ({TRAIN_PRESET}).", rich_help_panel=ATTACK)]
TrainSteps = Annotated[int | None, typer.Option(help=f"Training attack steps ({TRAIN_PRESET}).", rich_help_panel=ATTACK)]
TrainRestarts = Annotated[int | None, typer.Option(help="Training attack restarts (default 1).", rich_help_panel=ATTACK)]
TrainStart = Annotated[str | None, typer.Option(help="normal (0.001*N(0,I), Algorithm 1; default) | uniform (the authors' PGD-AT) | zero.", rich_help_panel=ATTACK)]
Epochs = Annotated[int | None, typer.Option(help=f"Epochs ({TRAIN_PRESET}).")]
TrainBatchSize = Annotated[int | None, typer.Option(help=f"Global mini-batch size, split over torchrun's processes ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
Lr = Annotated[float | None, typer.Option(help=f"SGD learning rate ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
Momentum = Annotated[float | None, typer.Option(help=f"SGD momentum ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
WeightDecay = Annotated[float | None, typer.Option(help=f"Weight decay ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
Milestones = Annotated[str | None, typer.Option(help=f"Epochs where lr is multiplied by gamma, e.g. 75,90 ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
Gamma = Annotated[float | None, typer.Option(help=f"lr factor at each milestone ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
Augment = Annotated[bool | None, typer.Option(help=f"Random crop (padding 4) and flip ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
AttackModeOpt = Annotated[str | None, typer.Option(help="eval (Algorithm 1; default) | train: the model's mode during the training attack.", rich_help_panel=EXPERT)]
EvalEvery = Annotated[int | None, typer.Option(help="Evaluate on the held-out split every N epochs and keep best.pt (default 0: never).", rich_help_panel=VALIDATION)]
ValSize = Annotated[int | None, typer.Option(help="Examples held out from the TRAINING split (chosen with --seed) for --eval-every; never the test set.", rich_help_panel=VALIDATION)]
SelectBy = Annotated[str | None, typer.Option(help="What best.pt maximizes: A_rob (default) | A_sa@ALPHA | A_tr@ALPHA, e.g. A_tr@2.", rich_help_panel=VALIDATION)]
TensorboardOpt = Annotated[str | None, typer.Option(help="Write each epoch's scalars and the weights' histogram to this folder (needs the tensorboard extra).", rich_help_panel=VALIDATION)]
PaddingModeOpt = Annotated[str | None, typer.Option(help=f"zeros | reflect: how the random crop pads ({TRAIN_PRESET}).", rich_help_panel=SCHEDULE)]
NTrain = Annotated[int | None, typer.Option(help="A first try: train on the first N training examples (default: all). Not the paper's setting.", rich_help_panel=SCHEDULE)]
MaxSteps = Annotated[int | None, typer.Option(help="A first try: end each epoch after N mini-batches (default: all). Not the paper's setting.", rich_help_panel=SCHEDULE)]
TrainSeed = Annotated[int | None, typer.Option(help="Seed for weights, shuffling and attack starts (default 0).")]
TrainSeeds = Annotated[str | None, typer.Option(help="Several training seeds, e.g. 0,1,2: one run each, RUN-sSEED, as --seed SEED --run RUN-sSEED alone.")]
CheckpointDir = Annotated[str | None, typer.Option(help="Checkpoints go to CHECKPOINT_DIR/RUN/last.pt (default checkpoints).", rich_help_panel=OUTPUT)]
TrainRun = Annotated[str | None, run_option(help="Run name (default: DATASET-DEFENSE-aALPHA).")]
TrainPrecision = Annotated[str | None, typer.Option(help="bf16 | fp32 (default: bf16 on CUDA, fp32 on CPU).", rich_help_panel=PRECISION)]
LogEvery = Annotated[int | None, typer.Option(help="Read the running loss back once per this many steps (default 20).", rich_help_panel=VALIDATION)]
TrainCompile = Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the training forward passes; the attack runs uncompiled (default: no).", rich_help_panel=PRECISION)]
DivergenceStop = Annotated[bool | None, typer.Option("--divergence-stop/--no-divergence-stop", help=f"Stop a run whose loss explodes (default); no: only warn ({MORE}).", rich_help_panel=EXPERT)]
TrainResume = Annotated[bool, typer.Option(help="Continue RUN exactly from its last.pt.", rich_help_panel=OUTPUT, show_default=False)]
StopAfterEpochs = Annotated[int | None, typer.Option(help="Stop this invocation after N epochs (resume later).", rich_help_panel=OUTPUT)]
StackOpt = Annotated[str, typer.Option(help=f"on | off (default): train a sweep's runs as one stacked model, or in turns, each its solo run ({MORE}).", show_default=False, rich_help_panel=PRECISION)]
QuietBars = Annotated[bool, typer.Option(help="No progress bars (epoch lines and results still print).", rich_help_panel=OUTPUT, show_default=False)]
QuietDemo = Annotated[bool, typer.Option("--quiet", help="No progress bars and no epoch lines: the table alone.", rich_help_panel=OUTPUT, show_default=False)]


# ---- reproduce table1, reproduce family ----------------------------------------------------

Table1Quick = Annotated[bool, typer.Option("--quick", help="A CPU-sized stand-in on the embedded digits set: NOT the paper's setting, not compared with its numbers.", show_default=False)]
FamilyQuick = Annotated[bool, typer.Option("--quick", help="A CPU-sized demonstration on the embedded digits set (8 epochs, 200 test images). NOT the paper's setting.", show_default=False)]
FamilyDataset = Annotated[str | None, typer.Option("--dataset", help="A data set with presets for every defense: mnist (default) | cifar10 | digits (--quick's).")]
ReproEpochs = Annotated[int | None, typer.Option("--epochs", help=f"Training epochs of every run (default: the preset's, table1's 100; --quick: table1 30, family 8; {MORE}).")]
ReproNExamples = Annotated[int | None, typer.Option("--n-examples", help="Evaluate on the first N test images (default: all, as the paper; family --quick: 200).")]
ReproTrainSeeds = Annotated[int | None, typer.Option("--train-seeds", help="Training seeds per model: --seed, --seed + 1, ... (default 3; --quick: 1); rows are means over seeds.")]
ReproRestarts = Annotated[int | None, typer.Option("--restarts", help="Evaluation restarts (default: the paper's 10).", rich_help_panel=PROTOCOL)]
ReproRestartFrom = Annotated[str, typer.Option("--restart-from", help="start (each restart afresh from x; default) | previous (chained, as the authors' evaluation).", show_default=False, rich_help_panel=PROTOCOL)]
AlphaTestList = Annotated[str, typer.Option("--alpha-test", help="Comma-separated alpha_test values.", rich_help_panel=PROTOCOL)]
TrainAttackSeed = Annotated[int, typer.Option("--seed", help="Seed of training and of the attacks' starts.", rich_help_panel=PROTOCOL)]
AutoattackNExamples = Annotated[int | None, typer.Option("--autoattack-n-examples", help="AutoAttack on the first N test images (default: --n-examples; --quick: 100).", rich_help_panel=PROTOCOL)]
FamilyAttacks = Annotated[str, typer.Option("--attacks", help="Attacks for A_rob: pgd, apgd-ce, autoattack (default: all; pgd is required, A_sa and A_tr use it).", show_default=False, rich_help_panel=PROTOCOL)]
ReproPrecision = Annotated[str, typer.Option("--precision", help="Training precision: fp32 (default, as the authors) | bf16. Evaluation is always fp32.", show_default=False, rich_help_panel=PRECISION)]
ReproDataDir = Annotated[str | None, typer.Option("--data-dir", help="Folder holding the data set (default data). Not needed with --quick.")]
ReproDownload = Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet).", show_default=False)]
ReproCheckpointDir = Annotated[str, typer.Option("--checkpoint-dir", help="Where the runs' checkpoints go, a folder per run (default checkpoints).", show_default=False, rich_help_panel=OUTPUT)]
ReproResultsDir = Annotated[str, typer.Option("--results-dir", help="Evaluations and the table (.md, .csv) go to RESULTS_DIR/TABLE-DATASET/ (default results).", show_default=False, rich_help_panel=OUTPUT)]
ReproStopAfterEpochs = Annotated[int | None, typer.Option("--stop-after-epochs", help="Stop this invocation after N epochs of training; rerun the same command to continue.", rich_help_panel=OUTPUT)]
ReproStack = Annotated[str, typer.Option("--stack", help=f"on | off (default): train the four runs as one stacked model, or in turns ({MORE}).", show_default=False, rich_help_panel=PRECISION)]


# ---- demo ----------------------------------------------------------------------------------------

DemoDefense = Annotated[str, typer.Option(help="pgd | trades (default): the defense trained with and without the weighted risk.", show_default=False)]
DemoAlphaTrain = Annotated[float | None, typer.Option(help="alpha_train of '+ours' (default: the preset's).")]
DemoCheckpointDir = Annotated[str, typer.Option(help="Where the two runs' checkpoints go.", rich_help_panel=OUTPUT)]
DemoResultsDir = Annotated[str, typer.Option(help="Where the two results go.", rich_help_panel=OUTPUT)]


# ---- compare A B ---------------------------------------------------------------------------------

CompareA = Annotated[str, typer.Argument(metavar="A", help="A result folder, or a group of runs: a glob or comma-separated folders.")]
CompareB = Annotated[str, typer.Argument(metavar="B", help="Another result folder or group, on the same test examples.")]
CompareOutput = Annotated[str | None, typer.Option(help=f"Also write the table to this file: CSV for a .csv name, else Markdown; - prints it to stdout ({MORE}).", rich_help_panel=OUTPUT)]
CompareFormat = Annotated[str | None, typer.Option("--format", help="md | csv for --output (default: from its suffix).", rich_help_panel=OUTPUT)]
Resamples = Annotated[int, typer.Option(help="Bootstrap resamples (default 2000).", show_default=False, rich_help_panel=PROTOCOL)]
BootstrapSeed = Annotated[int, typer.Option(help="Seed of the bootstrap's resampling (default 0): the same seed, the same intervals.", show_default=False, rich_help_panel=PROTOCOL)]


# ---- leaderboard, plot ---------------------------------------------------------------------------

SummariesDir = Annotated[str, typer.Argument(help="Folder searched (recursively) for summary.json files (default results).", show_default=False)]
BoardFormat = Annotated[str, typer.Option("--format", help=f"md (default) | csv | latex | robustbench (a model_info JSON per result; {MORE}).", show_default=False)]
BoardTable = Annotated[str, typer.Option(help="all (default) | non-uniform (Tables 1-3) | uniform (Tables 4-5).", show_default=False)]
SortBy = Annotated[str | None, typer.Option(help="Sort rows by this column, e.g. A_tr (best first), within each data set and alpha_test.", rich_help_panel=OUTPUT)]
ComparePaper = Annotated[bool, typer.Option(help="Put the paper's numbers beside ours where data set, defense and alpha match.", show_default=False)]
BoardOutput = Annotated[str | None, typer.Option(help="Write the tables to this file (default RESULTS_DIR/leaderboard-TABLE.EXT); - prints it to stdout alone.", rich_help_panel=OUTPUT)]
PlotOutputDir = Annotated[str | None, typer.Option(help="Where the PNG and SVG files go (default RESULTS_DIR/plots).", rich_help_panel=OUTPUT)]
PlotRuns = Annotated[list[str] | None, typer.Option(help="Draw the weights histogram for this result only (repeatable; default: every result).", rich_help_panel=OUTPUT)]


# ---- models --------------------------------------------------------------------------------------

ZooDataset = Annotated[str, typer.Option(help="RobustBench data set: cifar10 (default) | cifar100 | imagenet.", show_default=False)]
ZooThreatModel = Annotated[str, typer.Option(help="Linf (default) | L2 | corruptions.", show_default=False)]
ZooModelDir = Annotated[str, typer.Option(help="RobustBench cache folder (default models): ids whose checkpoint is there are marked.", show_default=False, rich_help_panel=MODEL)]


# ---- rerun ---------------------------------------------------------------------------------------

RerunPath = Annotated[Path, typer.Argument(help="A result's summary.json (default), or a training checkpoint (last.pt).", show_default=False)]
RerunRun = Annotated[str | None, run_option(help="Name of the new run (default: RUN-rerun, beside the original).")]


# ---- report: the HTML page; evaluate: the examples it shows ----------------------------------

ReportDirs = Annotated[list[str] | None, typer.Argument(help="Folders searched (recursively) for summary.json files (default results).", show_default=False)]
ReportOutput = Annotated[str, typer.Option("--output", help="The HTML file written: one self-contained page that opens offline.")]
ReportExamples = Annotated[int, typer.Option("--examples", help="How many of the examples that decide A_sa each result's page shows (default 16).", show_default=False, rich_help_panel=OUTPUT)]
ReportTitle = Annotated[str, typer.Option("--title", help="The page's title.", rich_help_panel=OUTPUT)]
KeepExamples = Annotated[int | None, typer.Option("--keep-examples", help="Also keep the K examples that decide A_sa (e.g. 16) in RESULTS_DIR/RUN/examples.pt for `wmrbench report`.", rich_help_panel=OUTPUT)]


# ---- the launcher: train, evaluate, reproduce (several independent runs as jobs) -----------

LauncherOpt = Annotated[str | None, typer.Option("--launcher", help="inline (default: this process) | local (a process per run, submitit) | slurm (a job array). docs/cluster.md.", rich_help_panel=LAUNCH)]
LauncherDir = Annotated[str | None, typer.Option(help="Folder for the jobs' files and the sweeps' ledger; on a cluster, shared (default jobs).", rich_help_panel=LAUNCH)]
Partition = Annotated[str | None, typer.Option(help="SLURM partition of each job (default: the cluster's).", rich_help_panel=LAUNCH)]
TimeMin = Annotated[int | None, typer.Option(help="Time limit of each job in minutes (default 240); a longer run is requeued and resumes.", rich_help_panel=LAUNCH)]
GpusPerJob = Annotated[int | None, typer.Option(help="GPUs per job (default 1).", rich_help_panel=LAUNCH)]
CpusPerJob = Annotated[int | None, typer.Option(help="CPUs per job (default: the cluster's).", rich_help_panel=LAUNCH)]
ArrayParallelism = Annotated[int | None, typer.Option(help="Jobs of the array running at once (default 64).", rich_help_panel=LAUNCH)]
Account = Annotated[str | None, typer.Option(help="SLURM account to charge (default: yours).", rich_help_panel=LAUNCH)]
Sbatch = Annotated[list[str] | None, typer.Option(help="An extra #SBATCH option as KEY=VALUE, e.g. mem=64G; repeat for several.", rich_help_panel=LAUNCH)]
MaxTimeouts = Annotated[int | None, typer.Option(help="Requeues of a job after its time limit (default 3); preemptions requeue without limit.", rich_help_panel=LAUNCH)]

LAUNCHER = Group({
    "launcher": (LauncherOpt, None), "launcher_dir": (LauncherDir, None), "partition": (Partition, None),
    "time_min": (TimeMin, None), "gpus_per_job": (GpusPerJob, None), "cpus_per_job": (CpusPerJob, None),
    "array_parallelism": (ArrayParallelism, None), "account": (Account, None), "sbatch": (Sbatch, None),
    "max_timeouts": (MaxTimeouts, None),
})
