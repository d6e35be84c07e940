"""The one door to RobustBench: every robustbench import in wmrbench goes through :func:`robustbench_api`.

robustbench 1.1.1 needs two fixes to import (ENVIRONMENT.md):

1. it imports ``pkg_resources``, which setuptools 81 removed: ``setuptools<81`` is pinned in
   pyproject.toml; if it is missing anyway, the import error becomes one line saying so;
2. it imports ``autoattack`` (``robustbench.eval`` in the PyPI wheel), but PyPI's AutoAttack
   distribution (``pyautoattack``) installs the module as ``pyautoattack``: the alias is registered
   here, before the first robustbench import, and never shadows a real ``autoattack``.

The PyPI wheel of 1.1.1 (the one uv.lock installs) and other builds labelled 1.1.1 differ (zoo
size, gdown vs requests downloads): nothing here depends on either.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wmrbench.core.errors import WmrbenchError


@dataclass(frozen=True)
class RobustBenchAPI:
    """The parts of robustbench wmrbench uses (so nothing else imports robustbench itself)."""

    load_model: Callable[..., Any]  # robustbench.utils.load_model
    download_gdrive: Callable[[str, Any], None]  # (gdrive_id, file): the one load_model itself uses
    model_dicts: Any  # {BenchmarkDataset: {ThreatModel: OrderedDict[name, {"model", "gdrive_id"}]}}
    BenchmarkDataset: Any
    ThreatModel: Any
    version: str


def alias_autoattack() -> None:
    """Make ``import autoattack`` find PyPI's ``pyautoattack`` (a no-op if autoattack is real)."""
    if "autoattack" in sys.modules or importlib.util.find_spec("autoattack") is not None:
        return  # a real autoattack (e.g. installed from GitHub) wins
    try:
        import pyautoattack
    except ImportError:
        return  # nothing to alias: robustbench's own import then names what is missing
    sys.modules.setdefault("autoattack", pyautoattack)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def robustbench_api() -> RobustBenchAPI:
    """Import robustbench once, with both fixes applied; failures become one line."""
    alias_autoattack()
    try:
        with warnings.catch_warnings():
            # robustbench.loaders imports pkg_resources, and timm's old module paths, which warn
            # about their own deprecation: noise for wmrbench's users, who cannot act on it.
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            from robustbench import utils
            from robustbench.model_zoo import model_dicts
            from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as exc:
        hint = " (robustbench 1.1.1 needs setuptools<81)" if "pkg_resources" in str(exc) else ""
        raise WmrbenchError(f"cannot import robustbench: {exc}{hint}") from None
    return RobustBenchAPI(
        load_model=utils.load_model,
        # The PyPI wheel of 1.1.1 downloads with gdown (download_gdrive_new); older builds with requests.
        download_gdrive=getattr(utils, "download_gdrive_new", utils.download_gdrive),
        model_dicts=model_dicts,
        BenchmarkDataset=BenchmarkDataset,
        ThreatModel=ThreatModel,
        version=_version("robustbench"),
    )
