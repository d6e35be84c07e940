"""Where a model comes from (``ModelSource``) and how it is built: the one place that turns the
model options of ``evaluate`` and ``attack`` into an ``nn.Module`` with its description.

Exactly one source per model:

* ``--checkpoint PATH [--arch NAME]``: a wmrbench checkpoint, or a plain state_dict with ``--arch``;
* ``--model-id NAME [--dataset] [--threat-model] [--model-dir]``: the RobustBench zoo;
* ``--model MODULE:FUNCTION [--checkpoint PATH]``: your own architecture (and weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from torch import nn

from wmrbench.config import DatasetName, parse_enum
from wmrbench.data import dataset_spec
from wmrbench.errors import WmrbenchError
from wmrbench.models.factory import build_from_factory, parse_factory
from wmrbench.models.robustbench import DEFAULT_MODEL_DIR, DEFAULT_THREAT_MODEL, DEFAULT_ZOO_DATASET, load_zoo_model
from wmrbench.models.sources import (
    checkpoint_train_config, extract_state_dict, load_model_from_checkpoint, load_state_into, read_checkpoint,
)


MODEL_OPTIONS = "--checkpoint PATH [--arch NAME], --model-id NAME, or --model MODULE:FUNCTION [--checkpoint PATH]"


class SourceKind(str, Enum):
    CHECKPOINT = "checkpoint"  # --checkpoint [--arch]
    ROBUSTBENCH = "robustbench"  # --model-id
    FACTORY = "factory"  # --model [--checkpoint]


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    checkpoint: str | None = None
    arch: str | None = None
    model_id: str | None = None
    threat_model: str | None = None
    model_dir: str | None = None
    factory: str | None = None

    def default_run(self) -> str:
        """The result name when --run is not given."""
        if self.kind is SourceKind.ROBUSTBENCH:
            assert self.model_id is not None
            return self.model_id
        if self.checkpoint is not None:
            path = Path(self.checkpoint)
            return path.parent.name if path.name == "last.pt" else path.stem
        assert self.factory is not None
        return self.factory.rpartition(":")[2]

    def describe(self) -> str:
        """The options that name this model (for messages)."""
        if self.kind is SourceKind.ROBUSTBENCH:
            return f"--model-id {self.model_id}"
        if self.kind is SourceKind.FACTORY:
            return f"--model {self.factory}" + (f" --checkpoint {self.checkpoint}" if self.checkpoint else "")
        return f"--checkpoint {self.checkpoint}" + (f" --arch {self.arch}" if self.arch else "")


def source_from_dict(d: dict[str, Any]) -> ModelSource:
    """Inverse of config.to_jsonable for ModelSource (adversarial files record their source)."""
    try:
        return ModelSource(kind=SourceKind(d["kind"]), **{k: d.get(k) for k in (
            "checkpoint", "arch", "model_id", "threat_model", "model_dir", "factory")})
    except (KeyError, ValueError, TypeError):
        raise WmrbenchError(f"not a model source record: {d!r}") from None


def model_sources(
    checkpoint: str | None = None, arch: str | None = None, model_ids: list[str] | None = None,
    factory: str | None = None, threat_model: str | None = None, model_dir: str | None = None,
) -> list[ModelSource]:
    """The sources the model options name (one, several model ids, or none); one line if they clash."""
    ids = [i.strip() for text in (model_ids or []) for i in text.split(",") if i.strip()]
    if ids and (checkpoint or arch or factory):
        raise WmrbenchError("--model-id loads RobustBench's weights: drop --checkpoint, --arch and --model")
    if (threat_model or model_dir) and not ids:
        raise WmrbenchError("--threat-model and --model-dir apply only with --model-id")
    if factory and arch:
        raise WmrbenchError("--arch names a registered architecture and --model builds your own: use one of them")
    if arch and not checkpoint:
        raise WmrbenchError("--arch describes the weights in --checkpoint: give --checkpoint too")
    if ids:
        unique = list(dict.fromkeys(ids))
        return [ModelSource(SourceKind.ROBUSTBENCH, model_id=i, threat_model=threat_model or DEFAULT_THREAT_MODEL,
                            model_dir=model_dir or DEFAULT_MODEL_DIR) for i in unique]
    if factory:
        parse_factory(factory)
        return [ModelSource(SourceKind.FACTORY, factory=factory, checkpoint=checkpoint)]
    if checkpoint:
        return [ModelSource(SourceKind.CHECKPOINT, checkpoint=checkpoint, arch=arch)]
    return []


def parse_dataset(dataset: str | None) -> DatasetName | None:
    return None if dataset is None else parse_enum(DatasetName, dataset, "dataset")


@dataclass
class LoadedModel:
    model: nn.Module
    dataset: DatasetName
    info: dict[str, Any]  # what summary.json records under "model"


def _training_info(train_config: dict[str, Any]) -> dict[str, Any]:
    """Defense, alpha_train and beta (1/lambda) of a wmrbench checkpoint, for the paper's tables."""
    defense = train_config.get("defense")
    return {
        "defense": defense,
        "alpha_train": train_config.get("alpha_train"),
        "beta": train_config.get("beta") if defense == "trades" else None,
    }


def _dataset_of(train_config: dict[str, Any], dataset: DatasetName | None, what: str) -> DatasetName:
    if dataset is not None:
        return dataset
    if "dataset" not in train_config:
        raise WmrbenchError(f"{what}: say which data set with --dataset")
    return DatasetName(train_config["dataset"])


def load_source(source: ModelSource, dataset: DatasetName | None, run: str) -> LoadedModel:
    """Build the model, resolve its data set (the checkpoint's when not given) and describe it."""
    info: dict[str, Any] = {"name": run, "source": source.kind.value}
    if source.kind is SourceKind.ROBUSTBENCH:
        assert source.model_id is not None
        dataset = dataset or DatasetName(DEFAULT_ZOO_DATASET)
        model = load_zoo_model(source.model_id, dataset.value, source.threat_model or DEFAULT_THREAT_MODEL,
                               source.model_dir or DEFAULT_MODEL_DIR)
        info.update(model_id=source.model_id, threat_model=source.threat_model, model_dir=source.model_dir,
                    arch=type(model).__name__, defense=None, alpha_train=None, beta=None)
        return LoadedModel(model, dataset, info)

    if source.kind is SourceKind.FACTORY:
        assert source.factory is not None
        train_config = checkpoint_train_config(source.checkpoint) if source.checkpoint else {}
        dataset = _dataset_of(train_config, dataset, f"--model {source.factory}")
        dataset_spec(dataset)
        model = build_from_factory(source.factory)
        if source.checkpoint:
            state = extract_state_dict(read_checkpoint(source.checkpoint))
            load_state_into(model, state, f"checkpoint {source.checkpoint}")
        info.update(factory=source.factory, checkpoint=source.checkpoint, arch=type(model).__name__,
                    **_training_info(train_config), train_config=train_config)
        return LoadedModel(model, dataset, info)

    assert source.checkpoint is not None
    train_config = checkpoint_train_config(source.checkpoint)
    dataset = _dataset_of(train_config, dataset, f"{source.checkpoint} is a plain state_dict")
    spec = dataset_spec(dataset).info
    model, train_config = load_model_from_checkpoint(source.checkpoint, source.arch, spec.num_classes, spec.in_channels)
    info.update(checkpoint=str(source.checkpoint), arch=train_config.get("arch", source.arch),
                **_training_info(train_config), train_config=train_config)
    return LoadedModel(model, dataset, info)
