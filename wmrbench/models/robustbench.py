"""RobustBench model zoo: list ids, find a checkpoint in RobustBench's cache layout, load it.

Models load through RobustBench's own ``robustbench.utils.load_model(model_name, model_dir,
dataset, threat_model)``, which reads ``<model_dir>/<dataset>/<threat_model>/<NAME>.pt`` (an
ensemble: ``<NAME>.pt_m0.pt``, ``<NAME>.pt_m1.pt``, ...) and downloads it only when it is missing.

Checkpoint safety: robustbench 1.1.1 calls ``torch.load(path)`` without ``weights_only``. Before
``load_model`` ever sees a file, wmrbench reads that file itself with ``weights_only=True``
(:func:`wmrbench.models.checkpoint.read_checkpoint`), so a file holding anything but tensors and
plain containers is refused with one line and never reaches a full unpickler. A file that passed
can only make the second unpickler call the same allow-listed constructors (and on torch >= 2.6,
robustbench's call defaults to ``weights_only=True`` anyway). Downloads go to a temporary name,
are validated the same way, and only then renamed into the cache, so ``load_model`` itself never
downloads and a failed or bogus download leaves nothing behind.

RobustBench models take images in [0, 1]; any normalization is a layer inside them.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from torch import nn

from wmrbench.core.compat import RobustBenchAPI, robustbench_api
from wmrbench.core.errors import WmrbenchError, first_line, setting
from wmrbench.core.io import write_target
from wmrbench.models.checkpoint import read_checkpoint

DEFAULT_ZOO_DATASET = "cifar10"
DEFAULT_THREAT_MODEL = "Linf"
DEFAULT_MODEL_DIR = "models"


def _parse(enum_type: Any, value: str, what: str) -> Any:
    """RobustBench's enum member for ``value``, matched case-insensitively (Linf = linf = LINF)."""
    for member in enum_type:
        if member.value.lower() == str(value).lower():
            return member
    choices = ", ".join(m.value for m in enum_type)
    raise WmrbenchError(f"RobustBench has no {what} {value!r}; choose one of: {choices}")


def zoo_keys(dataset: str, threat_model: str) -> tuple[Any, Any]:
    """(BenchmarkDataset, ThreatModel) for the user's strings, or one line listing the choices."""
    api = robustbench_api()
    return _parse(api.BenchmarkDataset, dataset, "data set"), _parse(api.ThreatModel, threat_model, "threat model")


def zoo_ids(dataset: str = DEFAULT_ZOO_DATASET, threat_model: str = DEFAULT_THREAT_MODEL) -> list[str]:
    """Every model id RobustBench 1.1.1 knows for a data set and threat model, sorted."""
    api = robustbench_api()
    ds, tm = zoo_keys(dataset, threat_model)
    return sorted(api.model_dicts.get(ds, {}).get(tm, {}))


def _entry(api: RobustBenchAPI, model_id: str, ds: Any, tm: Any) -> dict[str, Any]:
    """The zoo entry, or one line: where else the id exists, or the closest known ids."""
    models = api.model_dicts.get(ds, {}).get(tm, {})
    if model_id in models:
        return models[model_id]
    elsewhere = [
        f"{d.value}/{t.value}" for d, by_tm in api.model_dicts.items() for t, names in by_tm.items()
        if model_id in names
    ]
    if elsewhere:
        raise WmrbenchError(
            f"RobustBench model {model_id!r} is not in the {ds.value}/{tm.value} zoo; it exists for "
            f"{', '.join(elsewhere)} (pass {setting('dataset')} and {setting('threat_model')})"
        )
    close = difflib.get_close_matches(model_id, list(models), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "list them with `wmrbench models`"
    raise WmrbenchError(f"unknown RobustBench model id {model_id!r} for {ds.value}/{tm.value}; {hint}")


def checkpoint_paths(model_id: str, model_dir: str, ds: Any, tm: Any, gdrive_id: Any) -> list[Path]:
    """Where RobustBench's cache keeps this model's file(s)."""
    base = Path(model_dir) / ds.value / tm.value / f"{model_id}.pt"
    if isinstance(gdrive_id, list):  # an ensemble: one file per member
        return [Path(f"{base}_m{i}.pt") for i in range(len(gdrive_id))]
    return [base]


def looks_like_torch_file(path: Path) -> bool:
    """A cheap check that needs no full read of a file of hundreds of MB: a whole zip archive
    (torch.save's format: a truncated download has no central directory) or a legacy torch
    pickle. An HTML error page or a cut-off download fails it."""
    try:
        if zipfile.is_zipfile(path):
            return True
        with open(path, "rb") as handle:
            return handle.read(1) == b"\x80"  # pickle protocol 2+ opcode: torch's legacy format
    except OSError:
        return False


def cache_state(model_ids: list[str], dataset: str, threat_model: str, model_dir: str) -> dict[str, Path | None]:
    """For each id whose checkpoint file(s) are all in the cache: None when they look whole
    (they load offline), else the first file that is corrupt (it must be deleted)."""
    api = robustbench_api()
    ds, tm = zoo_keys(dataset, threat_model)
    models = api.model_dicts.get(ds, {}).get(tm, {})
    state: dict[str, Path | None] = {}
    for model_id in model_ids:
        paths = checkpoint_paths(model_id, model_dir, ds, tm, models[model_id].get("gdrive_id"))
        if all(p.is_file() for p in paths):
            state[model_id] = next((p for p in paths if not looks_like_torch_file(p)), None)
    return state


def cached(model_ids: list[str], dataset: str, threat_model: str, model_dir: str) -> set[str]:
    """The ids whose checkpoint file(s) are in the cache and look whole (they load offline)."""
    return {model_id for model_id, bad in cache_state(model_ids, dataset, threat_model, model_dir).items() if bad is None}


def _reason(exc: BaseException) -> str:
    """The useful part of a network error (requests nests it deep inside its message)."""
    text = str(exc).strip()
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    detail = errno.group(0).strip() if errno else (first_line(exc, limit=120) if text else "")
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__


def _download(api: RobustBenchAPI, gdrive_id: str, path: Path) -> None:
    """Fetch one checkpoint into a private temporary folder, validate it, then rename it into the cache."""
    place_by_hand = f"place the checkpoint by hand at {path.resolve()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A folder, not a file: gdown writes its own partial files beside the target, and all must go.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".download", dir=path.parent))
    tmp = tmp_dir / path.name
    try:
        print(f"downloading {path.name} from Google Drive (id {gdrive_id}) to {path.parent}", file=sys.stderr)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # robustbench prints the temporary name
                api.download_gdrive(gdrive_id, str(tmp))
        except Exception as exc:  # network (requests: OSError) or Drive (gdown) errors: all mean "no file"
            raise WmrbenchError(
                f"cannot download {path.name} from Google Drive (id {gdrive_id}): {_reason(exc)}; {place_by_hand}"
            ) from None
        try:
            read_checkpoint(tmp)
        except WmrbenchError as exc:  # e.g. Google's HTML quota page instead of the file
            raise WmrbenchError(f"the download of {path.name} is not a valid checkpoint ({exc}); {place_by_hand}") from None
        os.replace(tmp, write_target(path))  # never over a device or FIFO (see wmrbench.core.io)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def load_zoo_model(
    model_id: str, dataset: str = DEFAULT_ZOO_DATASET, threat_model: str = DEFAULT_THREAT_MODEL,
    model_dir: str = DEFAULT_MODEL_DIR,
) -> nn.Module:
    """A RobustBench model in eval mode, loaded by ``robustbench.utils.load_model``."""
    api = robustbench_api()
    ds, tm = zoo_keys(dataset, threat_model)
    entry = _entry(api, model_id, ds, tm)
    gdrive_id = entry.get("gdrive_id")
    if not gdrive_id:
        # RobustBench serves these (e.g. the XCiT models) through timm from Hugging Face, which
        # neither uses its cache layout nor goes through the weights_only check here.
        raise WmrbenchError(
            f"RobustBench model {model_id!r} has no checkpoint in RobustBench's cache (timm fetches it from "
            "Hugging Face); wmrbench loads zoo models from the cache only"
        )
    members = gdrive_id if isinstance(gdrive_id, list) else [gdrive_id]
    for path, member_id in zip(checkpoint_paths(model_id, model_dir, ds, tm, gdrive_id), members):
        if not path.is_file():
            _download(api, member_id, path)
        try:
            read_checkpoint(path)  # weights_only=True before robustbench's own torch.load
        except WmrbenchError as exc:  # a cut-off download, an HTML page, a planted file
            raise WmrbenchError(f"{exc}; delete {path} to download it again, or put a good copy there") from None
    try:
        model = api.load_model(model_name=model_id, model_dir=model_dir, dataset=ds.value, threat_model=tm.value)
    except (RuntimeError, KeyError, ValueError) as exc:  # state_dict does not fit the architecture
        raise WmrbenchError(f"RobustBench could not load {model_id} from {model_dir}: {first_line(exc, limit=200)}") from None
    return model.eval()
