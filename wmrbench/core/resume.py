"""The one resume rule of training runs and evaluations: what a ``resume`` may change.

A resumed run continues what was started, so it takes the SAVED config; the options given now
go on top, and only the settings its config class marks ``RESUMABLE``
(:data:`wmrbench.core.config.RESUMABLE`: where things are, how long to go on, which device) may
differ from the saved ones. Any other difference is refused by name, by the caller's message.

Why a module of its own, below both ``training`` and ``evaluation``: both resume, by the same
rule, and neither may import the other; ``config.py`` declares the settings and which are
resumable, this applies that declaration (it needs nothing but the config classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from wmrbench.core.config import RESUMABLE, fields_with, with_options

C = TypeVar("C")


def resumable_settings(cls: type) -> frozenset[str]:
    """The settings of a config class that a resume may change."""
    return fields_with(cls, RESUMABLE)


def requested(saved: C, options: Mapping[str, Any], **where: Any) -> C:
    """What a resume asks for: the saved config with the given options on top, and ``where``
    (the folder that was read, which is the one written, so a copied folder continues as its
    own; a data set or defense named again). ``None`` in ``where`` is "not given"."""
    return dataclasses.replace(with_options(saved, options), **{k: v for k, v in where.items() if v is not None})  # type: ignore[type-var]


def settings_of(cfg: Any) -> dict[str, Any]:
    """Every setting of ``cfg`` by its flat name, as messages and :func:`with_options` name them:
    its own fields, with the nested ``attack``'s (``eps``, ``steps``, ...) in its place, so that a
    refusal names the setting that differs, not "attack"."""
    flat = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "attack"}
    attack = getattr(cfg, "attack", None)
    if dataclasses.is_dataclass(attack):
        flat.update({f.name: getattr(attack, f.name) for f in dataclasses.fields(attack)})
    return flat


def changed(saved: C, requested: C, settings: Callable[[C], dict[str, Any]] = settings_of) -> list[str]:
    """The settings (by the names ``settings`` gives them) that differ and may not."""
    resumable = resumable_settings(type(saved))
    before, after = settings(saved), settings(requested)
    return [name for name in before if name not in resumable and before[name] != after[name]]


def merged(saved: C, requested: C) -> C:
    """The saved config with the requested values of the resumable settings (call it once
    :func:`changed` found nothing)."""
    return dataclasses.replace(  # type: ignore[type-var]
        saved, **{k: getattr(requested, k) for k in resumable_settings(type(saved))}
    )
