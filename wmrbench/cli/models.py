"""``wmrbench models``: the RobustBench zoo ids that ``--model-id`` accepts."""

from __future__ import annotations

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def models(
    config: ConfigFile = None,
    dataset: p.ZooDataset = "cifar10",
    threat_model: p.ZooThreatModel = "Linf",
    model_dir: p.ZooModelDir = "models",
) -> None:
    """List RobustBench's model ids for `evaluate --model-id`; mark those already cached."""
    from wmrbench.models import cache_state, zoo_ids

    with user_errors():
        ids = zoo_ids(dataset, threat_model)
        state = cache_state(ids, dataset, threat_model, model_dir)
    for model_id in ids:
        if model_id not in state:
            typer.echo(model_id)
        elif state[model_id] is None:
            typer.echo(f"{model_id}  (cached)")
        else:
            typer.echo(f"{model_id}  (corrupt cache file {state[model_id]}: delete it)")
    present = sum(bad is None for bad in state.values())
    typer.echo(f"{len(ids)} ids for {dataset}/{threat_model}; {present} in {model_dir}", err=True)
