"""Model registry and model sources. Importing this package registers every architecture."""

from wmrbench.models import architectures as _architectures  # noqa: F401  (registers models)
from wmrbench.models.registry import create_model, list_models, model_spec, register_model

__all__ = ["create_model", "list_models", "model_spec", "register_model"]
