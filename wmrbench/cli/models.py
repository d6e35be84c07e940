"""``wmrbench models``: the RobustBench zoo ids that ``--model-id`` accepts."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def models(
    config: ConfigFile = None,
    dataset: Annotated[str, typer.Option(help="RobustBench data set: cifar10 | cifar100 | imagenet.")] = "cifar10",
    threat_model: Annotated[str, typer.Option(help="Linf | L2 | corruptions.")] = "Linf",
    model_dir: Annotated[str, typer.Option(help="RobustBench cache folder: ids whose checkpoint is there are marked.")] = "models",
) -> None:
    """List RobustBench's model ids (for `evaluate --model-id`); mark those already in the cache."""
    from wmrbench.models.robustbench import cached, zoo_ids

    with user_errors():
        ids = zoo_ids(dataset, threat_model)
        present = cached(ids, dataset, threat_model, model_dir)
    for model_id in ids:
        typer.echo(f"{model_id}  (cached)" if model_id in present else model_id)
    typer.echo(f"{len(ids)} ids for {dataset}/{threat_model}; {len(present)} in {model_dir}", err=True)
