"""One registry type for everything wmrbench looks up by name (architectures, attacks, data
sets): the timm pattern. Loaders and commands never special-case a name; they look it up, and
an unknown name is one line listing the choices."""

from __future__ import annotations

from typing import Generic, TypeVar

from wmrbench.core.errors import WmrbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # what the names name, for messages: "arch", "attack", "dataset"
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        """The item registered as ``name`` (case-insensitive), or one line listing the choices."""
        try:
            return self._items[str(name).lower()]
        except KeyError:
            raise WmrbenchError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None
