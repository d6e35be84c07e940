"""The defense registry (``--defense NAME``); modules add themselves with :func:`register_defense`."""

from __future__ import annotations

from wmrbench.core.config import Defense
from wmrbench.defenses.base import DefenseSpec
from wmrbench.core.registry import Registry

DEFENSES: Registry[DefenseSpec] = Registry("defense")


def register_defense(spec: DefenseSpec) -> DefenseSpec:
    DEFENSES.add(spec.name, spec)
    return spec


def get_defense(name: Defense | str) -> DefenseSpec:
    return DEFENSES.get(name.value if isinstance(name, Defense) else name)


def list_defenses() -> list[str]:
    return DEFENSES.names()
