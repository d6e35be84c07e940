"""CIFAR-100: the "python version" files in their real on-disk format through the real reader,
the training preset, and a RobustBench CIFAR-100 zoo id evaluated offline from its cache layout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import invoke
from wmrbench.core.config import DatasetName, Defense
from wmrbench.data import dataset_spec, load_split
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import train_config

ZOO_ID = "Addepalli2022Efficient_RN18"  # a ResNet-18 of RobustBench's cifar100/Linf zoo: small on a CPU


def write_cifar100(data_dir: Path, n_train: int = 8, n_test: int = 6, seed: int = 0) -> Path:
    """cifar-100-python/{train,test}: pickled dicts with bytes keys, as the official archive holds them."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [int(v) for v in rng.integers(0, 100, n)]
        batch = {
            b"filenames": [f"img_{i}.png".encode() for i in range(n)], b"batch_label": f"{name} batch".encode(),
            b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
            b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return data_dir


def test_the_real_format_loads_with_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    test = load_split(DatasetName.CIFAR100, str(tmp_path), train=False, verify_checksums=False)
    train = load_split("cifar100", str(tmp_path), train=True, verify_checksums=False)
    assert test.x.shape == (6, 3, 32, 32) and test.x.dtype == torch.uint8 and len(train) == 8
    raw = pickle.loads((tmp_path / "cifar-100-python" / "test").read_bytes(), encoding="bytes")
    assert test.y.tolist() == raw[b"fine_labels"]  # the fine labels, not the 20 coarse ones
    first = torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32))
    assert torch.equal(test.x[0], first)  # channel-major rows: red, green, blue planes
    assert dataset_spec("cifar100").info.num_classes == 100


def test_checksums_and_missing_files_are_one_line(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    with pytest.raises(WmrbenchError, match="does not match the MD5 of the official CIFAR-100 file"):
        load_split("cifar100", str(tmp_path), train=False)  # our files are not the official ones
    with pytest.raises(WmrbenchError, match=r"CIFAR-100 not found: expected .*cifar-100-python/test"):
        load_split("cifar100", str(tmp_path / "nowhere"), train=False)
    bad = tmp_path / "bad" / "cifar-100-python"
    bad.mkdir(parents=True)
    (bad / "test").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [3, 100]}))
    with pytest.raises(WmrbenchError, match=r"b'fine_labels' must be 2 labels in 0..99"):
        load_split("cifar100", str(tmp_path / "bad"), train=False, verify_checksums=False)


def test_training_preset_is_cifar10s_with_100_classes() -> None:
    cfg = train_config("cifar100", "trades")
    ten = train_config("cifar10", "trades")
    assert (cfg.arch, cfg.attack, cfg.beta, cfg.lr, cfg.milestones) == (ten.arch, ten.attack, ten.beta, ten.lr, ten.milestones)
    assert train_config("cifar100", Defense.PGD).padding_mode.value == "reflect"


def test_train_one_epoch_on_cifar100_files(tmp_path: Path) -> None:
    write_cifar100(tmp_path / "data", n_train=16)
    out = invoke("train", "--dataset", "cifar100", "--arch", "tinycnn", "--epochs", "1", "--steps", "1",
                 "--batch-size", "8", "--data-dir", tmp_path / "data", "--no-verify-checksums", "--device", "cpu",
                 "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert out.exit_code == 0, out.output
    state = torch.load(tmp_path / "ck" / "cifar100-trades-a0" / "last.pt", weights_only=True)["model"]
    assert state["fc.weight"].shape == (100, 64)  # 100 classes


def test_a_cifar100_zoo_id_evaluates_offline_from_the_cache_layout(tmp_path: Path) -> None:
    from wmrbench.core.compat import robustbench_api

    api = robustbench_api()
    entry = api.model_dicts[api.BenchmarkDataset("cifar100")][api.ThreatModel("Linf")][ZOO_ID]
    torch.manual_seed(0)
    path = tmp_path / "models" / "cifar100" / "Linf" / f"{ZOO_ID}.pt"
    path.parent.mkdir(parents=True)
    torch.save(entry["model"]().state_dict(), path)  # freshly initialised weights, the real layout
    write_cifar100(tmp_path / "data")
    out = invoke("evaluate", "--model-id", ZOO_ID, "--dataset", "cifar100", "--model-dir", tmp_path / "models",
                 "--data-dir", tmp_path / "data", "--no-verify-checksums", "--n-examples", "2", "--steps", "1",
                 "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path / "results", "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "results" / ZOO_ID / "summary.json").read_text())
    assert summary["config"]["dataset"] == "cifar100" and summary["model"]["model_id"] == ZOO_ID
    assert summary["metrics"]["n_examples"] == 2
