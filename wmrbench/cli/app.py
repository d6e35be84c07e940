"""The ``wmrbench`` Typer application: commands are registered from their own modules."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperOption

from wmrbench.cli.attack import attack
from wmrbench.cli.audit import audit
from wmrbench.cli.demo import demo
from wmrbench.cli.evaluate import evaluate
from wmrbench.cli.leaderboard import leaderboard
from wmrbench.cli.models import models
from wmrbench.cli.plot import plot
from wmrbench.cli.reproduce import reproduce_app
from wmrbench.cli.rerun import rerun
from wmrbench.cli.train import train


def _hide_flag_types() -> None:
    """Typer 0.29's rich help prints a type after every option, ``<bool>`` after flags too
    (``--quiet <bool>``), as if a flag took a value. Flags take none: show no type for them."""
    show_type = getattr(TyperOption, "display_type_rich", None)
    if show_type is None or getattr(show_type, "_wmrbench", False):
        return  # another Typer: nothing to hide, or already done

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else show_type(self, ctx)

    display_type_rich._wmrbench = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    name="wmrbench",
    help="Robustness under non-uniform attacks: weighted PGD, weighted adversarial training, A_sa and A_tr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(train)
app.command()(evaluate)
app.command()(demo)
app.command()(attack)
app.command()(audit)
app.command()(leaderboard)
app.command()(plot)
app.command()(models)
app.command()(rerun)
app.add_typer(reproduce_app, name="reproduce")


def _version(value: bool) -> None:
    if value:
        from wmrbench import __version__

        typer.echo(f"wmrbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """wmrbench: train and audit classifiers under non-uniform adversarial attacks."""


def main() -> None:
    app()
