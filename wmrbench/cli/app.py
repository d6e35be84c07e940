"""The ``wmrbench`` Typer application: commands are registered from their own modules."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from wmrbench.cli.attack import attack
from wmrbench.cli.audit import audit
from wmrbench.cli.compare import compare
from wmrbench.cli.common import user_errors
from wmrbench.cli.demo import demo
from wmrbench.cli.evaluate import evaluate
from wmrbench.cli.leaderboard import leaderboard
from wmrbench.cli.models import models
from wmrbench.cli.plot import plot
from wmrbench.cli.report import report
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


def _one_line_usage_errors() -> None:
    """Typer prints a usage error (``--steps 2.5``, ``--nope``) as a usage line, a hint and a
    5-line box. Every other bad input ends in one line ``Error: ...`` with exit code 2, so these
    do too: the message is click's own (it names the option and the fault)."""
    from typer import rich_utils

    if getattr(rich_utils.rich_format_error, "_wmrbench", False):
        return

    def one_line(exc: Any) -> None:  # typer's own click fork's ClickException
        if exc.__class__.__name__ == "NoArgsIsHelpError":  # help was printed: no error to add
            return
        message = " ".join(exc.format_message().split())
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            hint = f" (see '{ctx.command_path} --help')"
        typer.echo(f"Error: {message}{hint}", err=True)

    one_line._wmrbench = True  # type: ignore[attr-defined]
    rich_utils.rich_format_error = one_line  # type: ignore[assignment]


_hide_flag_types()
_one_line_usage_errors()

ROOT_OPTIONS = ("--threads",)  # the root's options that take a value and may follow the command name

# `wmrbench --help` lists the commands in the order a newcomer meets them: see it work (demo),
# measure a real checkpoint (evaluate), tell two results apart (compare), check the numbers can be
# trusted (audit), then gather and show them (leaderboard, report, plot); training one's own
# models and the paper's tables take hours and come next; the tools last.
FIRST_DAY = ("demo", "evaluate", "compare", "audit", "leaderboard", "report", "plot", "train", "reproduce",
             "attack", "rerun", "models")


class _RootGroup(TyperGroup):
    """``--threads`` belongs to the root (it is applied before any command imports torch's work),
    but users write it after the command too (``wmrbench evaluate --threads 1 ...``): it is
    moved in front of the command name before click parses, so both places mean the same."""

    def list_commands(self, ctx: Any) -> list[str]:
        """The commands in :data:`FIRST_DAY` order (any other after them, as registered)."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: FIRST_DAY.index(n) if n in FIRST_DAY else len(FIRST_DAY))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        moved: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":  # everything after it is an argument, never an option
                rest += args[i:]
                break
            name = arg.split("=", 1)[0]
            if name in ROOT_OPTIONS:
                take = 1 if "=" in arg else 2
                moved += args[i:i + take]
                i += take
                continue
            rest.append(arg)
            i += 1
        return super().parse_args(ctx, moved + rest)


app = typer.Typer(
    cls=_RootGroup,
    name="wmrbench",
    help="Robustness under non-uniform attacks: weighted PGD, weighted adversarial training, A_sa and A_tr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _command in (demo, evaluate, compare, audit, leaderboard, report, plot, train, attack, rerun, models):
    app.command()(_command)
app.add_typer(reproduce_app, name="reproduce")


def _version(value: bool) -> None:
    if value:
        from wmrbench import __version__

        typer.echo(f"wmrbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="torch's CPU threads, before or after the command (default $WMRBENCH_THREADS, $OMP_NUM_THREADS, else half the cores, 1-4).")] = None,
) -> None:
    """wmrbench: train and audit classifiers under non-uniform adversarial attacks."""
    from wmrbench.core.runtime import apply_threads

    with user_errors():
        apply_threads(threads)


def main() -> None:
    app()
