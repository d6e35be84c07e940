"""``wmrbench attack``: run evaluate's attacks on a model and save the adversarial points to a file."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.errors import WmrbenchError


def attack(
    config: ConfigFile = None,
    checkpoint: p.Checkpoint = None,
    arch: p.Arch = None,
    model_id: p.ModelId = None,
    threat_model: p.ThreatModel = None,
    model_dir: p.ModelDir = None,
    model: p.Factory = None,
    mean: p.Mean = None,
    std: p.Std = None,
    dataset: p.Dataset = None,
    split: Annotated[str, typer.Option(help="test | train: the split to attack.")] = "test",
    data_dir: p.DataDir = None,
    download: p.Download = False,
    verify_checksums: p.VerifyChecksums = None,
    compile: p.Compile = None,
    eps: p.Eps = None,
    step_size: p.StepSize = None,
    steps: p.Steps = None,
    restarts: p.Restarts = None,
    start: p.StartOpt = None,
    method: p.Method = None,
    aa_version: p.AAVersionOpt = None,
    protocol: p.ProtocolOpt = None,
    norm: p.NormOpt = None,
    restart_from: p.RestartFromOpt = None,
    restart_rule: p.RestartRuleOpt = None,
    alpha_test: Annotated[str | None, typer.Option(help="Comma-separated alphas: one weighted PGD each, beside the unweighted PGD that always runs (default 1,1.5,2).", rich_help_panel=p.ATTACK)] = None,
    n_examples: p.NExamples = None,
    batch_size: p.BatchSize = None,
    seed: p.Seed = None,
    device: p.Device = None,
    precision: p.PrecisionOpt = None,
    results_dir: p.ResultsDir = None,
    run: Annotated[str | None, p.run_option(help="Name of the attack (default: the model's run, id or function name).")] = None,
    output: Annotated[str | None, typer.Option(help="The file to write (default RESULTS_DIR/RUN/adversarial.pt). It must be a regular file (a device or FIFO is refused) and not - : the file is binary and is read back by path.")] = None,
    overwrite: p.Overwrite = False,
    quiet: p.Quiet = False,
) -> None:
    """Attack a model with PGD and weighted PGD; save the points for `evaluate --adversarial`.

    The file (a .pt readable with torch.load(weights_only=True)) holds the clean inputs, labels and indices, and per attack the adversarial inputs, margins, correctness and normalized weights, with the full config as a JSON string.
    It is written once, at the end: a killed `attack` starts over (it has no --resume; `evaluate` has).
    """
    from wmrbench.checks import parse_enum
    from wmrbench.evaluation import Split, run_attack
    from wmrbench.models import MODEL_OPTIONS, model_sources

    with user_errors():
        options = o.options_from(o.EvalOptions, locals())
        o.note_precision(options)
        sources = model_sources(checkpoint, arch, [model_id] if model_id else None, model, threat_model, model_dir,
                                o.parse_floats(mean, "--mean"), o.parse_floats(std, "--std"))
        if len(sources) > 1:
            raise WmrbenchError("attack takes one model: give one --model-id")
        if not sources:
            raise WmrbenchError(f"say which model to attack: {MODEL_OPTIONS}")
        path, adv = run_attack(sources[0], options, dataset, parse_enum(Split, split, "split"), run, output,
                               show_progress=not quiet, overwrite=overwrite)
    n = len(adv.label)
    for key, points in adv.attacks.items():
        what = "unweighted PGD" if key == "pgd" else f"weighted PGD, alpha {points.alpha:g}"
        accuracy = 100.0 * float(points.correct.double().mean())
        weighted = 100.0 * float((points.weight * points.correct.double()).sum())
        typer.echo(f"{what}: accuracy {accuracy:.2f}%, weighted accuracy {weighted:.2f}% ({n} examples)")
    typer.echo(f"adversarial examples: {path}")
