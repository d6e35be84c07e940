"""``--config FILE.toml``: any option of any command from a file; the command line wins.

The file holds option names (``alpha-test`` or ``alpha_test``) with TOML values at its top level,
where each applies to the commands that have that option (one file can serve ``train`` and
``evaluate``), and optionally one table per command (``[train]``, ``[evaluate]`` ...) whose values
are that command's own and win over the top level. A list becomes the comma-separated text the option takes
(``alpha-test = [1, 1.5, 2]`` is ``--alpha-test 1,1.5,2``). An unknown name is an error, never
ignored: a typo in a config file must not silently run another experiment. A ``[launcher]`` table
holds the launcher's settings (``partition``, ``time-min`` ...; docs/cluster.md) for every command
that launches jobs; the top level and the command's own table win over it.

It works through click's ``default_map``: the file's values become the defaults of this one
invocation, so anything given on the command line still overrides them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from wmrbench.core.errors import WmrbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LAUNCHER_TABLE = "launcher"
LAUNCHER_KEYS = frozenset({"launcher", "launcher_dir", "partition", "time_min", "gpus_per_job", "cpus_per_job",
                           "array_parallelism", "account", "sbatch", "max_timeouts"})
LIST_OPTIONS = frozenset({"sbatch"})  # options given several times: a TOML list stays a list
COMMANDS = ("train", "evaluate", "attack", "demo", "leaderboard", "plot", "models", "rerun")


def _value(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def read_config(path: Path, command: str, known: set[str], anywhere: set[str]) -> dict[str, Any]:
    """The file's settings for ``command`` (whose options are ``known``; ``anywhere`` holds every
    command's), keyed by parameter name; one line for any problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WmrbenchError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WmrbenchError(f"--config: {path} is not valid TOML: {exc}") from None
    # [launcher]: the launcher's settings, for every command that launches (train, evaluate, reproduce).
    table = data.pop(LAUNCHER_TABLE, None) if isinstance(data.get(LAUNCHER_TABLE), dict) else None
    if table is not None:
        odd = [k for k in table if k.replace("-", "_") not in LAUNCHER_KEYS]
        if odd:
            raise WmrbenchError(f"--config: {path}: [launcher] has no setting {odd[0]!r}; its settings: "
                                + ", ".join(sorted(k.replace("_", "-") for k in LAUNCHER_KEYS)))
        if LAUNCHER_KEYS & known:
            data = {**table, **data}  # the top level and the command's table win
    shared = {k: v for k, v in data.items() if not (isinstance(v, dict) and k in COMMANDS)}
    unknown = [k for k in shared if k.replace("-", "_") not in anywhere]
    if unknown:
        raise WmrbenchError(f"--config: {path}: no command has an option {unknown[0]!r}")
    settings = {k: v for k, v in shared.items() if k.replace("-", "_") in known}  # others are other commands'
    settings.update(data.get(command, {}))
    out = {}
    for key, value in settings.items():
        name = key.replace("-", "_")
        if name not in known or name == "config":
            choices = ", ".join(sorted(n.replace("_", "-") for n in known - {"config"}))
            raise WmrbenchError(f"--config: {path}: {command} has no option {key!r}; its options: {choices}")
        out[name] = list(value) if name in LIST_OPTIONS and isinstance(value, list) else _value(value)
    return out


def _check_types(ctx: click.Context, path: Path, settings: dict[str, Any]) -> None:
    """Each value converted as its option converts it, here, so that a wrong type names the file
    and the key (click would name only the option, as if it had come from the command line)."""
    params = {p.name: p for p in ctx.command.params if p.name}
    for name, value in settings.items():
        param = params[name]
        coerce = getattr(param, "get_runtime_param", None)  # Typer >= 0.20 converts here
        try:
            if coerce is not None and not (isinstance(value, bool) and getattr(param, "is_flag", False)):
                coerce().coerce(value, param=param, ctx=ctx)
            elif coerce is None:
                param.type_cast_value(ctx, value)
        except (typer.BadParameter, click.BadParameter) as exc:
            key = param.opts[0].lstrip("-") if param.opts else name
            fault = " ".join(exc.format_message().split())
            raise WmrbenchError(f"--config: {path}: {key} = {value!r} is not a valid value: {fault}") from None


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    known = {p.name for p in ctx.command.params if p.name}
    siblings = getattr(ctx.parent.command, "commands", {}) if ctx.parent is not None else {}
    anywhere = {p.name for c in siblings.values() for p in c.params if p.name} | known
    try:
        settings = read_config(value, ctx.command.name or "", known, anywhere)
        _check_types(ctx, value, settings)
    except WmrbenchError as exc:
        from wmrbench.cli.common import as_options

        typer.echo(f"Error: {as_options(exc)}", err=True)
        raise typer.Exit(2) from None
    ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", is_eager=True, callback=_load, dir_okay=False,
        help="A TOML file of options (docs/cli.md); options on the command line win.",
    ),
]
