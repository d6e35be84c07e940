"""``wmrbench attack``: run evaluate's attacks on a model and save the adversarial points to a file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.errors import WmrbenchError


@p.command
def attack(
    config: ConfigFile = None,
    model_id: p.ModelId = None,
    model_source: Any = p.MODEL_SOURCE,
    data: Any = p.DATA,
    split: Annotated[str, typer.Option(help="test | train: the split to attack.")] = "test",
    compile: p.Compile = None,
    budget: Any = p.BUDGET,
    attack_choice: Any = p.ATTACK_CHOICE,
    alpha_test: Annotated[str | None, typer.Option(help="Comma-separated alphas: one weighted PGD each, beside the unweighted PGD that always runs (default 1,1.5,2).", rich_help_panel=p.ATTACK)] = None,
    n_examples: p.NExamples = None,
    runtime: Any = p.RUNTIME,
    run: Annotated[str | None, p.run_option(help="Name of the attack (default: the model's run, id or function name).")] = None,
    output: Annotated[str | None, typer.Option(help="The file to write (default RESULTS_DIR/RUN/adversarial.pt). It must be a regular file (a device or FIFO is refused) and not - : the file is binary and is read back by path.")] = None,
    overwrite: p.Overwrite = False,
    quiet: p.Quiet = False,
    **given: Any,
) -> None:
    """Attack a model with PGD and weighted PGD; save the points for `evaluate --adversarial`.

    The file (a .pt readable with torch.load(weights_only=True)) holds the clean inputs, labels and indices, and per attack the adversarial inputs, margins, correctness and normalized weights, with the full config as a JSON string.
    It is written once, at the end: a killed `attack` starts over (it has no --resume; `evaluate` has).
    """
    from wmrbench.checks import parse_enum
    from wmrbench.evaluation import Split, run_attack
    from wmrbench.models import MODEL_OPTIONS

    with user_errors():
        options = o.options_from(o.EVAL_SETTINGS, {**locals(), **given})
        o.note_precision(options)
        sources = o.sources_of(given, [model_id] if model_id else None)
        if len(sources) > 1:
            raise WmrbenchError("attack takes one model: give one --model-id")
        if not sources:
            raise WmrbenchError(f"say which model to attack: {MODEL_OPTIONS}")
        path, adv = run_attack(sources[0], options, given["dataset"], parse_enum(Split, split, "split"), run, output,
                               show_progress=not quiet, overwrite=overwrite)
    n = len(adv.label)
    for key, points in adv.attacks.items():
        what = "unweighted PGD" if key == "pgd" else f"weighted PGD, alpha {points.alpha:g}"
        accuracy = 100.0 * float(points.correct.double().mean())
        weighted = 100.0 * float((points.weight * points.correct.double()).sum())
        typer.echo(f"{what}: accuracy {accuracy:.2f}%, weighted accuracy {weighted:.2f}% ({n} examples)")
    typer.echo(f"adversarial examples: {path}")
