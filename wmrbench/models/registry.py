"""Architecture registry: a decorator to register a builder, ``create_model`` to build by name.

Loaders never special-case model names: they look the name up here (the timm pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from wmrbench.core.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]  # (num_classes, in_channels) -> nn.Module
    description: str
    input_shape: tuple[int, int, int] = (3, 32, 32)  # (C, H, W) it was designed for


_REGISTRY: Registry[ModelSpec] = Registry("arch")


def register_model(
    name: str, description: str = "", input_shape: tuple[int, int, int] = (3, 32, 32)
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY.add(name, ModelSpec(name, builder, description or (builder.__doc__ or "").strip(), input_shape))
        return builder

    return decorator


def list_models() -> list[str]:
    return _REGISTRY.names()


def model_spec(name: str) -> ModelSpec:
    """The registered architecture ``name``, or one line listing the choices."""
    return _REGISTRY.get(name)


def create_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Build a registered architecture with freshly initialised weights."""
    return model_spec(name).builder(num_classes=num_classes, in_channels=in_channels)
