"""``wmrbench attack``: run evaluate's attacks on a model and save the adversarial points to a file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.core.errors import WmrbenchError


@p.command
def attack(
    config: ConfigFile = None,
    model_id: p.ModelId = None,
    model_source: Any = p.MODEL_SOURCE,
    data: Any = p.DATA,
    split: p.Split = "test",
    n_examples: p.NExamples = None,
    run: p.AttackRun = None,
    budget: Any = p.BUDGET,
    attack_method: Any = p.ATTACK_METHOD,
    alpha_test: p.AttackAlphaTest = None,
    restarting: Any = p.RESTARTS,
    seed: p.Seed = None,
    results_dir: p.ResultsDir = None,
    output: p.AttackOutput = None,
    overwrite: p.Overwrite = False,
    quiet: p.Quiet = False,
    runtime: Any = p.RUNTIME_GROUP,
    compile: p.Compile = None,
    **given: Any,
) -> None:
    """Attack a model (PGD, weighted PGD); save the points for `evaluate --adversarial`.

    The file (torch.load(..., weights_only=True)) holds the clean inputs, labels and indices, and
    per attack the adversarial inputs, margins, correctness and normalized weights, with the full
    config. It is written once, at the end: a killed `attack` starts over (`evaluate` resumes).
    """
    from wmrbench.core.checks import parse_enum
    from wmrbench.core.config import number_key
    from wmrbench.evaluation import Split, run_attack
    from wmrbench.models import MODEL_OPTIONS

    with user_errors():
        options = o.options_from(o.EVAL_SETTINGS, {**locals(), **given})
        o.note_precision(options.get("precision"))
        sources = o.sources_of(given, [model_id] if model_id else None)
        if len(sources) > 1:
            raise WmrbenchError("attack takes one model: give one --model-id")
        if not sources:
            raise WmrbenchError(f"say which model to attack: {MODEL_OPTIONS}")
        path, adv = run_attack(sources[0], options, given["dataset"], parse_enum(Split, split, "split"), run, output,
                               show_progress=not quiet, overwrite=overwrite)
    n = len(adv.label)
    for key, points in adv.attacks.items():
        what = "unweighted PGD" if key == "pgd" else f"weighted PGD, alpha {number_key(points.alpha)}"
        accuracy = 100.0 * float(points.correct.double().mean())
        weighted = 100.0 * float((points.weight * points.correct.double()).sum())
        typer.echo(f"{what}: accuracy {accuracy:.2f}%, weighted accuracy {weighted:.2f}% ({n} examples)")
    typer.echo(f"adversarial examples: {path}")
