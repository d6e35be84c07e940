"""Where a model comes from (``ModelSource``) and how it is built: the one place that turns the
model options of ``evaluate`` and ``attack`` into an ``nn.Module`` with its description.

Exactly one source per model:

* ``--checkpoint PATH [--arch NAME]``: a wmrbench checkpoint, or a plain state_dict with ``--arch``;
* ``--model-id NAME [--dataset] [--threat-model] [--model-dir]``: the RobustBench zoo;
* ``--model MODULE:FUNCTION [--checkpoint PATH]``: your own architecture (and weights).

Models know nothing of data sets: :func:`open_source` reads the checkpoint (once) and says which
data set it records, the caller resolves the data set and passes its shape to :func:`build_model`.
"""

from __future__ import annotations

import dataclasses
import glob
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from torch import nn

from wmrbench.core.checks import check_alpha, parse_enum
from wmrbench.core.config import Defense
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.models.checkpoint import extract_state_dict, load_state_into, model_from_checkpoint, read_checkpoint, train_config_of
from wmrbench.models.normalize import Normalized, check_normalization
from wmrbench.models.robustbench import DEFAULT_MODEL_DIR, DEFAULT_THREAT_MODEL, DEFAULT_ZOO_DATASET, load_zoo_model
from wmrbench.models.user_code import build_from_factory, parse_factory
from wmrbench.results.records import ModelInfo

MODEL_OPTIONS = f"{setting('checkpoint')} PATH [{setting('arch')} NAME], {setting('model_id')} NAME, or {setting('factory')} MODULE:FUNCTION [{setting('checkpoint')} PATH]"


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
    mean: tuple[float, ...] | None = None  # --mean / --std: the model normalizes [0, 1] inputs itself
    std: tuple[float, ...] | None = None
    # evaluate --defense / --alpha-train: what the user says a plain model was trained with (a
    # wmrbench checkpoint records it), so that its rows are labelled and matched with the paper's
    defense: str | None = None
    alpha_train: float | None = None

    def default_run(self) -> str:
        """The result name when --run is not given."""
        if self.kind is SourceKind.ROBUSTBENCH:
            assert self.model_id is not None
            return self.model_id
        if self.checkpoint is not None:
            path = Path(self.checkpoint)
            # checkpoints/<run>/last.pt is named by its folder (resolved: ./last.pt has one too)
            folder = path.resolve().parent.name
            if path.name == "last.pt":
                return folder or path.stem
            return f"{folder}-best" if path.name == "best.pt" and folder else path.stem
        assert self.factory is not None
        return self.factory.rpartition(":")[2]

    def command_options(self) -> list[str]:
        """The model options of ``evaluate`` that name this source again (for a command to print)."""
        options: list[str] = []
        if self.kind is SourceKind.ROBUSTBENCH:
            options += ["--model-id", str(self.model_id), "--threat-model", str(self.threat_model),
                        "--model-dir", str(self.model_dir)]
        if self.factory is not None:
            options += ["--model", self.factory]
        if self.checkpoint is not None:
            options += ["--checkpoint", self.checkpoint]
        if self.arch is not None:
            options += ["--arch", self.arch]
        for option, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None:
                options += [option, ",".join(repr(v) for v in values)]
        if self.defense is not None:
            options += ["--defense", self.defense]
        if self.alpha_train is not None:
            options += ["--alpha-train", repr(self.alpha_train)]
        return options

    @classmethod
    def from_json(cls, d: Any) -> ModelSource:
        """Inverse of config.to_jsonable (adversarial files record their source)."""
        try:
            values = {k: d.get(k) for k in ("checkpoint", "arch", "model_id", "threat_model", "model_dir", "factory")}
            for key in ("mean", "std"):
                values[key] = None if d.get(key) is None else tuple(float(v) for v in d[key])
            values["defense"] = None if d.get("defense") is None else str(d["defense"])
            values["alpha_train"] = None if d.get("alpha_train") is None else float(d["alpha_train"])
            return cls(kind=SourceKind(d["kind"]), **values)
        except (KeyError, ValueError, TypeError):
            raise WmrbenchError(f"not a model source record: {d!r}") from None


def model_sources(
    checkpoint: str | None = None, arch: str | None = None, model_ids: list[str] | None = None,
    factory: str | None = None, threat_model: str | None = None, model_dir: str | None = None,
    mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
    defense: str | None = None, alpha_train: float | None = None,
) -> list[ModelSource]:
    """The sources the model options name (one, several model ids, or none); one line if they clash."""
    ids = [i.strip() for text in (model_ids or []) for i in text.split(",") if i.strip()]
    if ids and (mean is not None or std is not None):
        raise WmrbenchError(f"{setting('mean')} and {setting('std')} wrap your own models; RobustBench models normalize their inputs themselves")
    if alpha_train is not None and defense is None:
        raise WmrbenchError(f"{setting('alpha_train')} says how a model was trained with {setting('defense')}: give {setting('defense')} pgd or trades too")
    if defense is not None:
        defense = parse_enum(Defense, defense, "defense").value
        alpha_train = check_alpha(alpha_train if alpha_train is not None else 0.0, "alpha_train")
    sources = _sources(checkpoint, arch, ids, factory, threat_model, model_dir)
    return [dataclasses.replace(s, mean=mean, std=std, defense=defense, alpha_train=alpha_train) for s in sources]


def _sources(
    checkpoint: str | None, arch: str | None, ids: list[str], factory: str | None, threat_model: str | None,
    model_dir: str | None,
) -> list[ModelSource]:
    if ids and (checkpoint or arch or factory):
        raise WmrbenchError(f"{setting('model_id')} loads RobustBench's weights: drop {setting('checkpoint')}, {setting('arch')} and {setting('factory')}")
    if (threat_model or model_dir) and not ids:
        raise WmrbenchError(f"{setting('threat_model')} and {setting('model_dir')} apply only with {setting('model_id')}")
    if factory and arch:
        raise WmrbenchError(f"{setting('arch')} names a registered architecture and {setting('factory')} builds your own: use one of them")
    if arch and not checkpoint:
        raise WmrbenchError(f"{setting('arch')} describes the weights in {setting('checkpoint')}: give {setting('checkpoint')} too")
    if ids:
        unique = list(dict.fromkeys(ids))
        return [ModelSource(SourceKind.ROBUSTBENCH, model_id=i, threat_model=DEFAULT_THREAT_MODEL if threat_model is None else threat_model,
                            model_dir=DEFAULT_MODEL_DIR if model_dir is None else model_dir) for i in unique]
    if factory:
        parse_factory(factory)
        return [ModelSource(SourceKind.FACTORY, factory=factory, checkpoint=checkpoint)]
    if checkpoint:
        sources = [ModelSource(SourceKind.CHECKPOINT, checkpoint=c, arch=arch) for c in checkpoints(checkpoint)]
        names = [s.default_run() for s in sources]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise WmrbenchError(f"{sources[names.index(name)].checkpoint} and {sources[i].checkpoint} would both write "
                                    f"the result {name}: evaluate them one at a time, each with its own {setting('run')}")
        return sources
    return []


def checkpoints(text: str) -> list[str]:
    """The checkpoints ``--checkpoint`` names: one file, or several (comma-separated, or a quoted
    glob such as ``'checkpoints/mnist-trades-a2-s*/last.pt'``), each glob's matches sorted. A
    file that exists is taken as named, commas and all."""
    if Path(text).exists() or ("," not in text and not glob.has_magic(text)):
        return [text]
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if glob.has_magic(part) and not Path(part).exists():
            matches = sorted(glob.glob(part))
            if not matches:
                raise WmrbenchError(f"{setting('checkpoint', part)}: no file matches")
            out.extend(matches)
        else:
            out.append(part)
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class OpenedSource:
    """A source whose checkpoint (if any) has been read, once, and validated as a torch file."""

    source: ModelSource
    contents: dict[str, Any] | None = None  # the checkpoint file's top-level dict
    train_config: dict[str, Any] = field(default_factory=dict)  # {} unless a wmrbench checkpoint

    @property
    def recorded_dataset(self) -> str | None:
        """The data set this model belongs to, when the source says (a wmrbench checkpoint
        records it; a zoo id defaults to cifar10); None when the user must say."""
        if self.source.kind is SourceKind.ROBUSTBENCH:
            return DEFAULT_ZOO_DATASET
        return self.train_config.get("dataset")


def open_source(source: ModelSource) -> OpenedSource:
    if source.checkpoint is None:
        return OpenedSource(source)
    contents = read_checkpoint(source.checkpoint)
    return OpenedSource(source, contents, train_config_of(contents))


def _training_info(train_config: dict[str, Any], checkpoint: str | None) -> dict[str, Any]:
    """Defense, alpha_train and beta (1/lambda) of a wmrbench checkpoint, for the paper's tables;
    a value that is not what wmrbench writes (a config edited by hand, another version's) is one
    line, never a result whose summary no reader can use."""
    defense = train_config.get("defense")
    bad = None
    if defense is not None and defense not in [d.value for d in Defense]:
        bad = f"defense {defense!r}"
    for name in ("alpha_train", "beta"):
        value = train_config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            bad = bad or f"{name} {value!r}"
    if bad is not None:
        raise WmrbenchError(
            f"checkpoint {checkpoint} records a training config with {bad}, which wmrbench never writes "
            "(edited by hand, or another version?)"
        )
    return {
        "defense": defense,
        "alpha_train": train_config.get("alpha_train"),
        "beta": train_config.get("beta") if defense == "trades" else None,
        "train_config": train_config,
    }


def build_model(opened: OpenedSource, run: str, dataset: str, num_classes: int, in_channels: int) -> tuple[nn.Module, ModelInfo]:
    """The model an opened source names, for ``dataset`` (a zoo id's data set; shapes for the
    others), wrapped in its normalization if it has one, and the description its result records."""
    source = opened.source
    check_normalization(source.mean, source.std, in_channels)
    model, info = _build(opened, run, dataset, num_classes, in_channels)
    if source.defense is not None:
        said = (source.defense, source.alpha_train)
        if info.defense is not None and (str(info.defense), float(info.alpha_train or 0.0)) != said:
            raise WmrbenchError(
                f"{source.checkpoint} records defense {info.defense}, alpha_train {float(info.alpha_train or 0.0):g}: "
                f"drop {setting('defense')} and {setting('alpha_train')} (they describe a model that does not record them)"
            )
        info = dataclasses.replace(info, defense=source.defense, alpha_train=source.alpha_train)
    if source.mean is None or source.std is None:
        return model, info
    return Normalized(model, source.mean, source.std), dataclasses.replace(info, mean=source.mean, std=source.std)


def _build(opened: OpenedSource, run: str, dataset: str, num_classes: int, in_channels: int) -> tuple[nn.Module, ModelInfo]:
    source = opened.source
    if source.kind is SourceKind.ROBUSTBENCH:
        assert source.model_id is not None
        threat_model = DEFAULT_THREAT_MODEL if source.threat_model is None else source.threat_model
        model_dir = DEFAULT_MODEL_DIR if source.model_dir is None else source.model_dir
        model = load_zoo_model(source.model_id, dataset, threat_model, model_dir)
        info = ModelInfo(name=run, source=source.kind.value, arch=type(model).__name__, model_id=source.model_id,
                         threat_model=threat_model, model_dir=model_dir)
        return model, info
    training = _training_info(opened.train_config, source.checkpoint)
    if source.kind is SourceKind.FACTORY:
        assert source.factory is not None
        model = build_from_factory(source.factory)
        if opened.contents is not None:
            load_state_into(model, extract_state_dict(opened.contents), f"checkpoint {source.checkpoint}")
        info = ModelInfo(name=run, source=source.kind.value, arch=type(model).__name__, factory=source.factory,
                         checkpoint=source.checkpoint, **training)
        return model, info
    assert source.checkpoint is not None and opened.contents is not None
    model = model_from_checkpoint(opened.contents, source.checkpoint, source.arch, num_classes, in_channels)
    info = ModelInfo(name=run, source=source.kind.value, arch=opened.train_config.get("arch", source.arch),
                     checkpoint=str(source.checkpoint), **training)
    return model, info
