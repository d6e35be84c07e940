"""Your own model: ``--model module:function`` (or ``path/to/file.py:function``).

The function is called with no arguments and must return an ``nn.Module`` that maps images in
[0, 1] to logits (normalization, if any, inside the model). Weights come from ``--checkpoint``
(read with ``weights_only=True``) or from the function itself. Importing the module runs its
code: that is the point of the option, so name only code you trust.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from wmrbench.core.errors import WmrbenchError, first_line, setting


def _import(module: str) -> ModuleType:
    if module.endswith(".py") or "/" in module or "\\" in module:
        path = Path(module)
        if not path.is_file():
            raise WmrbenchError(f"{setting('factory')}: no such file {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(loaded)
        except Exception as exc:  # the user's code failed: say where, in one line
            raise WmrbenchError(f"{setting('factory')}: importing {path} failed: {first_line(exc, with_type=True)}") from None
        return loaded
    # The `wmrbench` console script does not put the working directory on sys.path (python -m
    # does): add it, so that a module next to the user's data imports either way.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise WmrbenchError(f"{setting('factory')}: no module named {exc.name!r} (from the working directory or the environment)") from None
        raise WmrbenchError(f"{setting('factory')}: importing {module} failed: {first_line(exc, with_type=True)}") from None
    except Exception as exc:
        raise WmrbenchError(f"{setting('factory')}: importing {module} failed: {first_line(exc, with_type=True)}") from None


def parse_factory(spec: str) -> tuple[str, str]:
    """'pkg.mod:build' -> ('pkg.mod', 'build'), or one line saying what --model takes."""
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name.isidentifier():
        raise WmrbenchError(f"{setting('factory')} takes MODULE:FUNCTION (e.g. mypkg.nets:build), got {spec!r}")
    return module, name


def build_from_factory(spec: str) -> nn.Module:
    """Import ``module:function``, call it, check that it returned an nn.Module."""
    module, name = parse_factory(spec)
    factory = getattr(_import(module), name, None)
    if factory is None:
        raise WmrbenchError(f"{setting('factory')}: {module} has no attribute {name!r}")
    if not callable(factory):
        raise WmrbenchError(f"{setting('factory')}: {spec} is not callable")
    try:
        model = factory()
    except Exception as exc:
        raise WmrbenchError(f"{setting('factory')}: {spec}() failed: {first_line(exc, with_type=True)}") from None
    if not isinstance(model, nn.Module):
        raise WmrbenchError(f"{setting('factory')}: {spec}() returned {type(model).__name__}, not a torch.nn.Module")
    return model
