"""Model registry and model sources. Importing this package registers every architecture.

This package's names are its public door: the CLI (and a user's code) names a model through
:func:`model_sources` and lists the RobustBench zoo through :func:`zoo_ids` / :func:`cache_state`;
its modules (``source``, ``robustbench``, ``checkpoint``, ``user_code``, ...) are internal, and
an import-linter contract keeps the CLI out of them.
"""

from wmrbench.models import architectures as _architectures  # noqa: F401  (registers models)
from wmrbench.models.registry import create_model, list_models, model_spec, register_model
from wmrbench.models.robustbench import cache_state, zoo_ids
from wmrbench.models.source import MODEL_OPTIONS, ModelSource, SourceKind, model_sources

__all__ = [
    "MODEL_OPTIONS", "ModelSource", "SourceKind", "cache_state", "create_model", "list_models", "model_sources",
    "model_spec", "register_model", "zoo_ids",
]
