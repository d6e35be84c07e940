"""RobustBench zoo models through RobustBench's own load_model, offline, from its cache layout."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ZOO_ID, invoke
from wmrbench.core.compat import robustbench_api
from wmrbench.core.errors import WmrbenchError
from wmrbench.models.robustbench import load_zoo_model

# Any attempt to reach the network fails at once: a proxy on a closed local port.
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}

TINY = ("--n-examples", "2", "--steps", "1", "--alpha-test", "1", "--batch-size", "2", "--quiet")


def test_robustbench_imports_with_the_autoattack_alias() -> None:
    api = robustbench_api()
    assert api.version == "1.1.1"
    import autoattack
    import pyautoattack

    assert autoattack is pyautoattack is sys.modules["autoattack"]
    # robustbench.eval does `from autoattack import AutoAttack` in the PyPI wheel: it now imports.
    assert importlib.import_module("robustbench.eval").__name__ == "robustbench.eval"


def test_zoo_checkpoint_loads_offline_with_its_weights(zoo_cache, monkeypatch) -> None:
    model_dir, state = zoo_cache
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    model = load_zoo_model(ZOO_ID, "cifar10", "linf", str(model_dir))
    assert not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_evaluate_model_id_offline(zoo_cache, cifar10_dir: Path, tmp_path: Path) -> None:
    model_dir, _ = zoo_cache
    out = invoke("evaluate", "--model-id", ZOO_ID, "--model-dir", model_dir, "--data-dir", cifar10_dir, "--no-verify-checksums",
                 "--results-dir", tmp_path, *TINY, env=OFFLINE)
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / ZOO_ID / "summary.json").read_text())
    assert summary["model"]["source"] == "robustbench"
    assert summary["model"]["model_id"] == ZOO_ID and summary["model"]["threat_model"] == "Linf"
    assert summary["config"]["dataset"] == "cifar10"
    assert summary["config"]["attack"]["eps"] == pytest.approx(0.031)  # the paper's CIFAR-10 attack
    assert summary["metrics"]["n_examples"] == 2
    assert set(summary["metrics"]["A_tr"]) == {"1"}
    assert (tmp_path / ZOO_ID / "records.csv").is_file()


def test_unknown_id_is_one_line_with_the_closest_ids(tmp_path: Path) -> None:
    out = invoke("evaluate", "--model-id", "Carmon2019Unlabled", "--model-dir", tmp_path, env=OFFLINE)
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown RobustBench model id 'Carmon2019Unlabled'" in lines[0]
    assert "closest: Carmon2019Unlabeled" in lines[0]
    assert not any(tmp_path.iterdir())  # nothing written, nothing downloaded


def test_id_of_another_threat_model_says_where_it_exists(tmp_path: Path) -> None:
    out = invoke("evaluate", "--model-id", "Carmon2019Unlabeled", "--threat-model", "L2",
                 "--model-dir", tmp_path, env=OFFLINE)
    assert out.exit_code == 2
    assert out.stderr.strip().splitlines() == [
        "Error: RobustBench model 'Carmon2019Unlabeled' is not in the cifar10/L2 zoo; it exists for "
        "cifar10/Linf (pass --dataset and --threat-model)"
    ]


def test_failed_download_names_the_file_to_place(tmp_path: Path) -> None:
    out = invoke("evaluate", "--model-id", "Carmon2019Unlabeled", "--model-dir", tmp_path, env=OFFLINE)
    assert out.exit_code == 2
    error = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    expected = (tmp_path / "cifar10" / "Linf" / "Carmon2019Unlabeled.pt").resolve()
    assert error[0].endswith(f"place the checkpoint by hand at {expected}")
    assert "cannot download Carmon2019Unlabeled.pt" in error[0]
    assert list((tmp_path / "cifar10" / "Linf").iterdir()) == []  # no partial or temporary file left


def test_timm_served_id_says_it_has_no_cached_checkpoint(tmp_path: Path) -> None:
    api = robustbench_api()
    zoo = api.model_dicts[api.BenchmarkDataset("cifar10")][api.ThreatModel("Linf")]
    served = sorted(name for name, entry in zoo.items() if not entry["gdrive_id"])
    if not served:  # the PyPI wheel of 1.1.1 (uv.lock) lists the XCiT models; some builds do not
        pytest.skip("this robustbench build lists no cifar10/Linf model without a Google Drive id")
    out = invoke("evaluate", "--model-id", served[0], "--model-dir", tmp_path, env=OFFLINE)
    assert out.exit_code == 2
    assert out.stderr.strip().splitlines() == [
        f"Error: RobustBench model {served[0]!r} has no checkpoint in RobustBench's cache "
        "(timm fetches it from Hugging Face); wmrbench loads zoo models from the cache only"
    ]


class Payload:
    """Unpickling this (with weights_only=False) creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_with_objects_is_refused_before_robustbench_unpickles_it(tmp_path: Path, monkeypatch) -> None:
    # Make robustbench's own torch.load (which passes no weights_only) unsafe, as on old torch:
    # only wmrbench's weights_only=True check then stands between the file and a full unpickler.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload = Payload(tmp_path / "code-ran")
    path = tmp_path / "models" / "cifar10" / "Linf" / f"{ZOO_ID}.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "payload": payload}, path)
    with pytest.raises(WmrbenchError, match="refusing to load Python objects from .*never runs code"):
        load_zoo_model(ZOO_ID, "cifar10", "Linf", str(tmp_path / "models"))
    assert not payload.marker.exists()


def test_corrupt_cached_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cifar10" / "Linf" / f"{ZOO_ID}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>Google Drive quota exceeded</html>")
    out = invoke("evaluate", "--model-id", ZOO_ID, "--model-dir", tmp_path, env=OFFLINE)
    assert out.exit_code == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"cannot read checkpoint {path}: corrupt or not a PyTorch file" in out.stderr


def test_several_ids_one_failure_keeps_the_others(zoo_cache, cifar10_dir: Path, tmp_path: Path) -> None:
    model_dir, _ = zoo_cache
    out = invoke("evaluate", "--model-id", "NoSuchModel2099", "--model-id", ZOO_ID, "--model-dir", model_dir,
                 "--data-dir", cifar10_dir, "--no-verify-checksums", "--results-dir", tmp_path, *TINY, env=OFFLINE)
    assert out.exit_code == 2
    assert (tmp_path / ZOO_ID / "summary.json").is_file()  # evaluated after the failure
    assert not (tmp_path / "NoSuchModel2099").exists()
    assert "Error: NoSuchModel2099: unknown RobustBench model id" in out.stderr
    assert "1 of 2 models failed" in out.stderr


def test_models_lists_the_zoo_and_marks_cached_ids(zoo_cache) -> None:
    model_dir, _ = zoo_cache
    out = invoke("models", "--model-dir", model_dir)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert "Carmon2019Unlabeled" in lines
    assert f"{ZOO_ID}  (cached)" in lines
    api = robustbench_api()
    ids = [line.removesuffix("  (cached)") for line in lines]
    assert ids == sorted(api.model_dicts[api.BenchmarkDataset("cifar10")][api.ThreatModel("Linf")])
    assert sum(line.endswith("(cached)") for line in lines) == 1
    out = invoke("models", "--dataset", "mnist")
    assert out.exit_code == 2 and "choose one of: cifar10, cifar100, imagenet" in out.stderr
