"""Resumable evaluation: the batches of an unfinished ``evaluate``, saved as they finish.

``RESULTS_DIR/RUN/.partial/`` holds

* ``manifest.json``: what is being evaluated (the full EvalConfig, the model's description and
  the SHA-256 of its weights, the SHA-256 of the examples, the software, the kind of device) and
  the command that finishes it. Written before the first batch file.
* ``batch-000003.pt``: the record columns of global batch 3 (examples ``3 * B`` to ``4 * B - 1``
  for a batch size B), one file per finished batch, written atomically by the process that
  attacked it (under torchrun each rank writes its own).

Why one file per batch, keyed by its global number: random starts are keyed on (seed, example
index), every batch is padded to the same size, and AutoAttack reseeds per call, so a batch's
records depend only on the batch (its examples, the settings, the model), never on the batches
before it, the process that ran it or the number of processes. A batch found on disk is exactly
what attacking it again would give, so ``evaluate --resume`` writes a records.csv byte for byte
equal to an uninterrupted run's. That holds only for the same settings, weights, examples,
software and kind of device: the manifest records them and a resume that differs in any of
them is refused by name (:func:`resume_config`, :func:`check_same`).

Everything here is JSON or a torch file of tensors read with ``weights_only=True``: nothing is
ever unpickled. The folder is removed once the result's summary.json is written; a killed run
never writes a summary, so a folder holding ``.partial/`` and no summary.json is an unfinished
result (:func:`unfinished`, which ``leaderboard`` and ``plot`` use to skip it with a warning).

This module is the one home of that layout (the folder's and files' names, reading and writing
them); :mod:`wmrbench.results.records` keeps the records and summary schema. It imports no part of the
pipeline, so readers such as the reports may import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wmrbench.core import resume as resume_rule
from wmrbench.core.config import EvalConfig, eval_config_from_dict, to_jsonable
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.io import atomic_torch_save, atomic_write_json, remove_stale_temporaries, safe_torch_load
from wmrbench.results.records import SUMMARY_NAME, ModelInfo

# The folder's and files' names and what a reader of result folders needs (is it unfinished, how
# far did it get) live in wmrbench.results.partial_layout, below the reports and the evaluation alike.
from wmrbench.results.partial_layout import (  # noqa: F401  (this module's public names, as before)
    BATCH_FILE, MANIFEST_NAME, PARTIAL_DIR, Unfinished, batch_path, has_partial, partial_dir, partial_progress,
    saved_batches, unfinished,
)
FORMAT = "wmrbench-partial-evaluation"
VERSION = 1
# What a resume must share with the start, besides the settings: the model as it is described
# (its weights are compared by hash; where its file lies may change) and the software.
_MODEL_FIELDS = ("source", "arch", "model_id", "threat_model", "factory", "mean", "std")
_SOFTWARE = ("wmrbench", "torch", "git_commit")


def tensors_sha256(named: Iterable[tuple[str, Tensor]]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes (the identity of weights or data)."""
    digest = hashlib.sha256()
    for name, tensor in named:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def model_sha256(model: nn.Module) -> str:
    return tensors_sha256(model.state_dict().items())


@dataclass(frozen=True)
class Manifest:
    """What an unfinished evaluation is, so that only the same evaluation continues it."""

    config: EvalConfig
    model: ModelInfo
    model_sha256: str
    data_sha256: str  # of the examples evaluated (images and labels), wherever they were read from
    n_batches: int
    device_type: str  # cpu | cuda | mps: other arithmetic rounds differently
    software: dict[str, str | None]  # wmrbench, torch and git_commit: one result, one version
    resume_command: str  # what finishes it, for the messages of leaderboard and plot

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **to_jsonable(self)}

    @classmethod
    def from_json(cls, d: Any) -> Manifest:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("not a wmrbench partial-evaluation manifest")
        if d.get("version") != VERSION:
            raise ValueError(f"version {d.get('version')!r}; this wmrbench reads version {VERSION}")
        software = d.get("software")
        if not isinstance(software, dict):
            raise ValueError("no software object")
        return cls(
            config=eval_config_from_dict(d.get("config")), model=ModelInfo.from_json(d.get("model")),
            model_sha256=str(d["model_sha256"]), data_sha256=str(d["data_sha256"]), n_batches=int(d["n_batches"]),
            device_type=str(d["device_type"]), software={k: software.get(k) for k in _SOFTWARE},
            resume_command=str(d.get("resume_command", "")),
        )


def new_manifest(
    cfg: EvalConfig, info: ModelInfo, model: nn.Module, x: Tensor, y: Tensor, device_type: str,
    versions: dict[str, Any], resume_command: str,
) -> Manifest:
    """The manifest of evaluating ``model`` on the examples ``x``, ``y`` (already cut to n_examples)."""
    size = min(cfg.batch_size, len(y))
    return Manifest(
        config=cfg, model=info, model_sha256=model_sha256(model), data_sha256=tensors_sha256([("x", x), ("y", y)]),
        n_batches=-(-len(y) // size), device_type=device_type, software={k: versions.get(k) for k in _SOFTWARE},
        resume_command=resume_command,
    )


def read_manifest(folder: Path) -> Manifest:
    """The manifest of ``folder``'s unfinished evaluation, or one line saying why there is none."""
    if not has_partial(folder):
        complete = " (its result is complete: summary.json)" if (Path(folder) / SUMMARY_NAME).is_file() else ""
        raise WmrbenchError(f"{setting('resume', True)}: {folder} holds no unfinished evaluation to continue{complete}; "
                             f"run without {setting('resume')}")
    path = partial_dir(folder) / MANIFEST_NAME
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, WmrbenchError) as exc:  # missing, cut, foreign
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc).splitlines() or [""])[0]
        raise WmrbenchError(f"{setting('resume', True)}: cannot read {path} ({why}); pass {setting('overwrite', True)} to start over") from None


def _shown(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def resume_config(saved: EvalConfig, requested: EvalConfig, folder: Path) -> EvalConfig:
    """The saved config with the requested resumable settings (where things are, which device);
    any other setting that differs is refused by name: a result holds one evaluation
    (:mod:`wmrbench.core.resume`, the rule training's resume follows too)."""
    changed = resume_rule.changed(saved, requested)
    if changed:
        before, after = resume_rule.settings_of(saved), resume_rule.settings_of(requested)
        what = "; ".join(f"{setting(n)} {_shown(before[n])} there, {_shown(after[n])} now" for n in changed)
        raise WmrbenchError(
            f"{setting('resume', True)}: {folder} was started with other settings ({what}); drop those options to continue it, "
            f"or pass {setting('overwrite', True)} to start over"
        )
    return resume_rule.merged(saved, requested)


def check_same(saved: Manifest, now: Manifest, folder: Path) -> None:
    """Before any attack: the model, the examples, the software and the kind of device are the
    saved evaluation's, or one line saying which is not."""
    def refuse(what: str) -> None:
        raise WmrbenchError(f"{setting('resume', True)}: {folder} was started {what}; continue it as it was started, "
                            f"or pass {setting('overwrite', True)} to start over")

    described = [f for f in _MODEL_FIELDS if getattr(saved.model, f) != getattr(now.model, f)]
    if described:
        refuse(f"on another model ({', '.join(f'{f} {_shown(getattr(saved.model, f))}' for f in described)} there)")
    if saved.model_sha256 != now.model_sha256:
        refuse("on other weights (their SHA-256 differs)")
    if saved.data_sha256 != now.data_sha256:
        refuse(f"on other examples (their SHA-256 differs; check {setting('data_dir')}, {saved.config.data_dir} there)")
    if saved.device_type != now.device_type:
        refuse(f"on {saved.device_type}, and this process runs on {now.device_type} (its numbers would round otherwise)")
    software = [k for k in _SOFTWARE if saved.software.get(k) and now.software.get(k)
                and saved.software[k] != now.software[k]]
    if software:
        refuse(f"with other software ({', '.join(f'{k} {saved.software[k]}' for k in software)} there)")


def check_claim(folder: Path, overwrite: bool, resume: bool) -> None:
    """Whether the command may take ``folder`` as far as its unfinished evaluation goes: without
    --resume it is refused unless --overwrite (which starts over); --resume needs one."""
    if resume:
        read_manifest(folder)
    elif has_partial(folder) and not overwrite:
        raise WmrbenchError(
            f"{folder} holds an unfinished evaluation ({partial_progress(folder)}); "
            f"pass {setting('resume', True)} to continue it, or {setting('overwrite', True)} to start over"
        )


def clear(folder: Path) -> None:
    """Delete ``folder``'s unfinished evaluation (``--overwrite``, or a result now complete)."""
    where = partial_dir(folder)
    try:
        shutil.rmtree(where)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WmrbenchError(f"cannot remove {where}: {exc.strerror or exc}") from None


def remove_stale(folder: Path) -> None:
    """The temporary files a killed writer left in the partial folder (call it holding the lock)."""
    if partial_dir(folder).is_dir():
        remove_stale_temporaries(partial_dir(folder))


class PartialStore:
    """One evaluation's saved batches: :meth:`load` one, :meth:`save` one as it finishes.

    The manifest is written just before this process's first batch file, so a run that fails
    before finishing any batch leaves nothing to resume (:meth:`discard_if_empty` removes it).
    """

    def __init__(self, folder: Path, manifest: Manifest, resumed: bool) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self.manifest_written = resumed  # a resumed run keeps the manifest it was started with
        self.keys: list[str] | None = None  # the record columns, the same in every batch

    def load(self, number: int, lo: int, hi: int) -> dict[str, Tensor] | None:
        """Batch ``number`` (examples lo .. hi-1) if it was saved, else None; a file that is not
        that batch is one line (it is never silently attacked again or trusted)."""
        path = batch_path(self.folder, number)
        if not path.is_file():
            return None
        saved = safe_torch_load(path, "saved batch")
        columns = saved.get("columns")
        why = None
        if saved.get("format") != FORMAT or saved.get("batch") != number or not isinstance(columns, dict):
            why = f"not batch {number} of a wmrbench evaluation"
        elif not all(isinstance(v, Tensor) and v.dim() == 1 and len(v) == hi - lo for v in columns.values()):
            why = f"its columns do not hold {hi - lo} examples each"
        elif not torch.equal(columns.get("index", torch.empty(0)), torch.arange(lo, hi)):
            why = f"its examples are not {lo} to {hi - 1}"
        elif self.keys is not None and list(columns) != self.keys:
            why = "its columns are not the other batches' columns"
        if why is not None:
            raise WmrbenchError(f"{path}: {why}; delete it to attack that batch again")
        self.keys = list(columns)
        return columns

    def save(self, number: int, columns: dict[str, Tensor]) -> dict[str, Tensor]:
        """Write batch ``number`` atomically; returns its columns on the CPU. The copy to the host
        is the one point per batch where the loop waits for the device."""
        host = {key: value.detach().to("cpu", copy=True) for key, value in columns.items()}
        if not self.manifest_written:
            atomic_write_json(partial_dir(self.folder) / MANIFEST_NAME, self.manifest.to_json())
            self.manifest_written = True
        atomic_torch_save(batch_path(self.folder, number), {"format": FORMAT, "batch": number, "columns": host})
        self.keys = list(host)
        return host

    def discard_if_empty(self) -> None:
        """After a failure: no batch saved means nothing to resume, so nothing is left behind."""
        if not saved_batches(self.folder):
            clear(self.folder)

    def finish(self) -> None:
        """The result is written (its summary.json is the marker): the saved batches go."""
        clear(self.folder)

