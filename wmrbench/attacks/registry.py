"""Attack registry: a decorator to register an attack by name, ``get_attack`` to look one up.

The same pattern as the model registry (:mod:`wmrbench.models.registry`): commands and configs
name an attack, nothing special-cases names. Every registered attack is a function
``(model, x, y, attack: AttackConfig, **options) -> AttackResult`` (:class:`AttackFn`); the
options an attack does not share with the others stay keyword-only. Importing
:mod:`wmrbench.attacks` registers every attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from wmrbench.attacks.objective import AttackResult
from wmrbench.core.attack_config import AttackConfig
from wmrbench.core.registry import Registry


class AttackFn(Protocol):
    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, **options: Any
    ) -> AttackResult: ...


@dataclass(frozen=True)
class AttackSpec:
    name: str
    run: AttackFn
    description: str


_REGISTRY: Registry[AttackSpec] = Registry("attack")


AnyAttack = Callable[..., AttackResult]


def register_attack(name: str, description: str = "") -> Callable[[AnyAttack], AnyAttack]:
    """Register the decorated attack function under ``name`` (lower case, e.g. ``"pgd"``); the
    description defaults to the first line of its docstring."""

    def decorator(fn: AnyAttack) -> AnyAttack:
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY.add(name, AttackSpec(name, fn, description or (doc[0] if doc else "")))
        return fn

    return decorator


def list_attacks() -> list[str]:
    return _REGISTRY.names()


def get_attack(name: str) -> AttackSpec:
    """The registered attack ``name``; a one-line WmrbenchError listing the choices otherwise."""
    return _REGISTRY.get(name)
