"""Every command-line option, declared once: its name, type and help text.

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
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from wmrbench.config import check_run_name
from wmrbench.errors import WmrbenchError


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


# ---- evaluate, attack, audit: the model, the data, the attack ---------------------------------

PRESET = "default: the paper's evaluation attack for the dataset"
MODEL = "Model"  # help panel of the options that say which model
ATTACK = "Attack"

Checkpoint = Annotated[str | None, typer.Option(help="A wmrbench checkpoint (last.pt), or a plain state_dict (with --arch or --model). Several (comma-separated, or a quoted glob 'checkpoints/x-s*/last.pt'): one result each, on the same examples.", rich_help_panel=MODEL)]
Arch = Annotated[str | None, typer.Option(help="Registered architecture of a plain state_dict (e.g. smallcnn).", rich_help_panel=MODEL)]
ThreatModel = Annotated[str | None, typer.Option(help="RobustBench threat model of --model-id: Linf | L2 | corruptions (default Linf).", rich_help_panel=MODEL)]
ModelDir = Annotated[str | None, typer.Option(help="RobustBench cache: MODEL_DIR/<dataset>/<threat_model>/<id>.pt loads offline (default models).", rich_help_panel=MODEL)]
Factory = Annotated[str | None, typer.Option("--model", help="Your own model: MODULE:FUNCTION (or path/file.py:FUNCTION) returning an nn.Module on [0, 1] inputs; weights from --checkpoint.", rich_help_panel=MODEL)]
Mean = Annotated[str | None, typer.Option(help="Your model expects normalized inputs: per-channel means, e.g. 0.4914,0.4822,0.4465; wmrbench wraps the model so that attacks still run on [0, 1] images (with --std; for --model and --checkpoint --arch).", rich_help_panel=MODEL)]
Std = Annotated[str | None, typer.Option(help="Per-channel standard deviations of that normalization, e.g. 0.2471,0.2435,0.2616 (with --mean).", rich_help_panel=MODEL)]
ModelId = Annotated[str | None, typer.Option(help="RobustBench zoo id, e.g. Carmon2019Unlabeled.", rich_help_panel=MODEL)]
Dataset = Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default: the checkpoint's; cifar10 for --model-id).")]
DataDir = Annotated[str | None, typer.Option(help="Folder holding the data set files (default data).")]
Download = Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet; cifar10 via torchvision, tinyimagenet, mnist).")]
Compile = Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the attacked model: about 2x faster on a GPU for ResNet-18 after a one-off ~30 s compile; same results (default: no).", rich_help_panel=ATTACK)]
VerifyChecksums = Annotated[bool | None, typer.Option("--verify-checksums/--no-verify-checksums", help="Check the CIFAR-10 files against torchvision's published MD5s (default: yes; the other data sets have no per-file checksums).")]

# The attack's settings.
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
DATA = Group({
    "dataset": (Dataset, None), "data_dir": (DataDir, None), "download": (Download, False),
    "verify_checksums": (VerifyChecksums, None),
})
BUDGET = Group({"eps": (Eps, None), "step_size": (StepSize, None), "steps": (Steps, None)})
ATTACK_CHOICE = Group({
    "restarts": (Restarts, None), "start": (StartOpt, None), "method": (Method, None), "aa_version": (AAVersionOpt, None),
    "protocol": (ProtocolOpt, None), "norm": (NormOpt, None), "restart_from": (RestartFromOpt, None),
    "restart_rule": (RestartRuleOpt, None),
})
RUNTIME = Group({
    "batch_size": (BatchSize, None), "seed": (Seed, None), "device": (Device, None),
    "precision": (PrecisionOpt, None), "results_dir": (ResultsDir, None),
})

Ci = Annotated[str, typer.Option("--ci", help="How each number's 95% interval (a bootstrap over the test examples, for this attack) is shown: pm (53.30 ± 2.4, half the interval's width; default) | interval (53.30 [50.90, 55.70]) | none. CSV keeps it as METRIC_lo / METRIC_hi columns unless none.")]


# ---- train -------------------------------------------------------------------------------

TRAIN_PRESET = "default: the paper's preset for the dataset"

TrainDataset = Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default digits).")]
TrainDefense = Annotated[str | None, typer.Option(help="pgd (Madry PGD-AT) | trades (default) | mart | gairat | mail-at | mail-trades: the training loss and its attack, from the defense registry (docs/definitions.md). alpha_train ('+ours') applies to pgd and trades only.")]
TrainAlphaTrain = Annotated[str | None, typer.Option(help="Weight sharpness alpha; 0 = unweighted baseline (default), > 0 = '+ours'. Several, comma-separated (0,0.5,2), train one run per value side by side in this process, on the same data order: runs RUN-a0, RUN-a0.5, ... (default names DATASET-DEFENSE-aALPHA), each with its own checkpoint folder.")]
Beta = Annotated[float | None, typer.Option(help=f"beta of the KL term: TRADES' 1/lambda, MART's and MAIL-TRADES' beta ({TRAIN_PRESET}).")]
BurnIn = Annotated[int | None, typer.Option(help=f"GAIRAT, MAIL: epochs of the unweighted base loss (PGD-AT or TRADES) before the reweighting starts ({TRAIN_PRESET}, e.g. GAIRAT 59 and MAIL 60 on MNIST).")]
GairLambda = Annotated[float | None, typer.Option(help=f"GAIRAT's lambda in the weight (1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2 ({TRAIN_PRESET}: -1, the authors').")]
MailBias = Annotated[float | None, typer.Option(help=f"MAIL's bias in the weight 3 * sigmoid(slope * (PM + bias)), PM = -margin ({TRAIN_PRESET}: -1.5, the authors').")]
MailSlope = Annotated[float | None, typer.Option(help=f"MAIL's slope (> 0) in that weight ({TRAIN_PRESET}: 1, the authors').")]
DetachWeights = Annotated[bool | None, typer.Option("--detach-weights/--no-detach-weights", help="Detach s_i from the graph (default: no, as in the authors' code).")]
NormalizeWeights = Annotated[bool | None, typer.Option("--normalize-weights/--no-normalize-weights", help="Divide the weighted loss by sum s_i (detached) instead of m (default: no).")]
TrainArch = Annotated[str | None, typer.Option(help=f"Architecture from the registry ({TRAIN_PRESET}).")]
TrainEps = Annotated[float | None, typer.Option(help=f"L-inf radius of the training attack ({TRAIN_PRESET}).")]
TrainStepSize = Annotated[float | None, typer.Option(help=f"Training attack step size ({TRAIN_PRESET}).")]
TrainSteps = Annotated[int | None, typer.Option(help=f"Training attack steps ({TRAIN_PRESET}).")]
TrainRestarts = Annotated[int | None, typer.Option(help="Training attack restarts (default 1).")]
TrainStart = Annotated[str | None, typer.Option(help="Attack start: normal (0.001*N(0,I), Algorithm 1; default) | uniform (U(-eps, eps), as the authors' PGD-AT code) | zero.")]
Epochs = Annotated[int | None, typer.Option(help=f"Epochs ({TRAIN_PRESET}).")]
TrainBatchSize = Annotated[int | None, typer.Option(help=f"Global mini-batch size, split evenly over torchrun's processes ({TRAIN_PRESET}).")]
Lr = Annotated[float | None, typer.Option(help=f"SGD learning rate ({TRAIN_PRESET}).")]
Momentum = Annotated[float | None, typer.Option(help=f"SGD momentum ({TRAIN_PRESET}).")]
WeightDecay = Annotated[float | None, typer.Option(help=f"Weight decay ({TRAIN_PRESET}).")]
Milestones = Annotated[str | None, typer.Option(help=f"Epochs where lr is multiplied by gamma, e.g. 75,90 ({TRAIN_PRESET}).")]
Gamma = Annotated[float | None, typer.Option(help=f"lr factor at each milestone ({TRAIN_PRESET}).")]
Augment = Annotated[bool | None, typer.Option(help=f"Random crop (padding 4) and flip ({TRAIN_PRESET}).")]
AttackModeOpt = Annotated[str | None, typer.Option(help="eval (Algorithm 1; default) | train: the model's mode while the training attack runs (the authors' PGD-AT code attacks in train mode).")]
EvalEvery = Annotated[int | None, typer.Option(help="Evaluate on the held-out split every N epochs (and after the last); keeps best.pt beside last.pt (default 0: never).")]
ValSize = Annotated[int | None, typer.Option(help="Examples held out from the TRAINING split (chosen with --seed) for --eval-every; never the test set.")]
SelectBy = Annotated[str | None, typer.Option(help="What best.pt maximizes: A_rob (default) | A_sa@ALPHA | A_tr@ALPHA, e.g. A_tr@2.")]
TensorboardOpt = Annotated[str | None, typer.Option(help="Write each epoch's scalars (loss, attack accuracy, mean weight, lr, held-out metrics) and the importance weights' histogram here; open with `tensorboard --logdir DIR` (needs the tensorboard extra).")]
PaddingModeOpt = Annotated[str | None, typer.Option(help=f"zeros | reflect: how the random crop pads ({TRAIN_PRESET}: reflect for CIFAR-10 PGD-AT, as the authors' code).")]
NTrain = Annotated[int | None, typer.Option(help="A first try on a subset: train on the first N training examples (those not held out by --val-size; default: all). Not the paper's setting.")]
MaxSteps = Annotated[int | None, typer.Option(help="A first try: end each epoch after N mini-batches (default: every batch). Not the paper's setting.")]
TrainSeed = Annotated[int | None, typer.Option(help="Seed for weights, shuffling and attack starts (default 0).")]
TrainSeeds = Annotated[str | None, typer.Option(help="Several training seeds, e.g. 0,1,2: one run per seed (and per --alpha-train), named RUN-sSEED, each the run --seed SEED --run RUN-sSEED trains alone.")]
CheckpointDir = Annotated[str | None, typer.Option(help="Checkpoints go to CHECKPOINT_DIR/RUN/last.pt (default checkpoints).")]
TrainRun = Annotated[str | None, run_option(help="Run name (default: DATASET-DEFENSE-aALPHA).")]
TrainPrecision = Annotated[str | None, typer.Option(help="bf16 | fp32 (default: bf16 on CUDA, fp32 on CPU).")]
LogEvery = Annotated[int | None, typer.Option(help="Read the running loss back once per this many steps (default 20).")]
TrainCompile = Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model for the training forward passes; the attack runs it uncompiled (default: no).")]
DivergenceStop = Annotated[bool | None, typer.Option("--divergence-stop/--no-divergence-stop", help="Stop a run whose loss explodes while staying finite: an epoch's mean loss over 10 x ln(classes) x exp(alpha_train) x (1 + beta for TRADES), or training attack accuracy back at chance after it was clearly above (docs/reliability.md); the last good checkpoint is kept. --no-divergence-stop only warns and trains on (default: stop). NaN or inf always stops.")]
TrainResume = Annotated[bool, typer.Option(help="Continue RUN exactly from its last.pt.")]
StopAfterEpochs = Annotated[int | None, typer.Option(help="Stop this invocation after N epochs (resume later).")]
StackOpt = Annotated[str, typer.Option(help="How the runs of a sweep (several --alpha-train values) train: on = as ONE stacked model, one attack and one forward/backward for all runs per step (pgd and trades only; the same checkpoints); off (default) = taking turns, each bit for bit its solo run. Stacked runs equal their solo runs bit for bit on the CPU, within float32 rounding on CUDA (docs/reproduction.md).")]
QuietBars = Annotated[bool, typer.Option(help="No progress bars (epoch lines and results still print).")]
QuietDemo = Annotated[bool, typer.Option("--quiet", help="No progress bars and no epoch lines: the table alone.")]


# ---- report: the HTML page; evaluate: the examples it shows ----------------------------------

ReportDirs = Annotated[list[str] | None, typer.Argument(help="Folders searched (recursively) for summary.json files (default results); several are named by folder.", show_default=False)]
ReportOutput = Annotated[str, typer.Option("--output", help="The HTML file written (atomically): one self-contained page that opens from disk, offline.")]
ReportExamples = Annotated[int, typer.Option("--examples", help="How many of the examples that decide A_sa each result's page shows (the largest shares of the weight at its largest alpha_test).")]
ReportTitle = Annotated[str, typer.Option("--title", help="The page's title.")]
KeepExamples = Annotated[int | None, typer.Option("--keep-examples", help="Also keep the K examples that decide A_sa (largest weight at the largest alpha_test) as RESULTS_DIR/RUN/examples.pt: their clean and adversarial images, for `wmrbench report`. K is typically 16.", rich_help_panel=ATTACK)]


# ---- the launcher: train, evaluate, reproduce (several independent runs as jobs) -----------

LAUNCH = "Launcher"  # help panel

LauncherOpt = Annotated[str | None, typer.Option("--launcher", help="inline (default: in this process) | local (one process per run, via submitit) | slurm (one job array; prints the job ids and returns). docs/cluster.md.", rich_help_panel=LAUNCH)]
LauncherDir = Annotated[str | None, typer.Option(help="Folder for the jobs' pickles, logs and the sweeps' ledger; on a cluster, a shared file system (default jobs).", rich_help_panel=LAUNCH)]
Partition = Annotated[str | None, typer.Option(help="SLURM partition of each job (default: the cluster's).", rich_help_panel=LAUNCH)]
TimeMin = Annotated[int | None, typer.Option(help="Time limit of each job in minutes (default 240); a run that needs longer is requeued and resumes.", rich_help_panel=LAUNCH)]
GpusPerJob = Annotated[int | None, typer.Option(help="GPUs per job (default 1).", rich_help_panel=LAUNCH)]
CpusPerJob = Annotated[int | None, typer.Option(help="CPUs per job (default: the cluster's).", rich_help_panel=LAUNCH)]
ArrayParallelism = Annotated[int | None, typer.Option(help="Jobs of the array running at once (default 64).", rich_help_panel=LAUNCH)]
Account = Annotated[str | None, typer.Option(help="SLURM account to charge (default: yours).", rich_help_panel=LAUNCH)]
Sbatch = Annotated[list[str] | None, typer.Option(help="An extra #SBATCH option as KEY=VALUE, e.g. mem=64G or qos=high; repeat for several.", rich_help_panel=LAUNCH)]
MaxTimeouts = Annotated[int | None, typer.Option(help="Requeues of a job after it reaches its time limit (default 3); preemptions requeue without limit.", rich_help_panel=LAUNCH)]

LAUNCHER = Group({
    "launcher": (LauncherOpt, None), "launcher_dir": (LauncherDir, None), "partition": (Partition, None),
    "time_min": (TimeMin, None), "gpus_per_job": (GpusPerJob, None), "cpus_per_job": (CpusPerJob, None),
    "array_parallelism": (ArrayParallelism, None), "account": (Account, None), "sbatch": (Sbatch, None),
    "max_timeouts": (MaxTimeouts, None),
})
