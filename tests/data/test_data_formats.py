"""CIFAR-10 and Tiny ImageNet in their real on-disk formats, through the real loaders and CLI.

CIFAR-10: a few hundred random images written as the official python batches (a Python 2
pickle, protocol 2, of a dict with b'batch_label', b'labels', b'data' (N, 3072) uint8 and
b'filenames'). Tiny ImageNet: a small ``tiny-imagenet-200`` tree of real JPEGs written with PIL
(wnids.txt, train/<wnid>/images, val/images + val/val_annotations.txt). Both are loaded by the
registered loaders, trained on for one epoch with ``wmrbench train`` and evaluated with
``wmrbench evaluate``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from wmrbench.cli.app import app
from wmrbench.core.config import DatasetName
from wmrbench.data import load_split
from wmrbench.data.tinyimagenet import tiny_imagenet_cache_path
from wmrbench.core.errors import WmrbenchError
from wmrbench.models import create_model

runner = CliRunner()


# --- writers of the real formats -----------------------------------------------------------------


class Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]  # the pure-Python pickler
    """Writes what Python 2's cPickle wrote for the official batches: protocol 2, every string a
    Python 2 byte string (BINSTRING), and numpy's historical module name numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_string(self, obj: bytes | str) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], label: str, python2: bool = True) -> None:
    batch = {
        b"batch_label": label.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"image_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as handle:
        if python2:
            Python2Pickler(handle, protocol=2).dump(batch)
        else:  # what Python 3 writes at protocol 2 (bytes via _codecs.encode)
            pickle.dump(batch, handle, protocol=2)


def make_cifar10(root: Path, per_batch: int = 40, n_test: int = 100, seed: int = 0, python2: bool = True) -> dict[str, np.ndarray]:
    """cifar-10-batches-py/ with 5 x per_batch training and n_test test images; returns them."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts_x, parts_y = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        write_cifar_batch(folder / f"data_batch_{i}", data, labels, f"training batch {i} of 5", python2)
        parts_x.append(data)
        parts_y.append(labels)
    test_x = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_y = [int(v) for v in rng.integers(0, 10, n_test)]
    write_cifar_batch(folder / "test_batch", test_x, test_y, "testing batch 1 of 1", python2)
    return {
        "train_x": np.concatenate(parts_x).reshape(-1, 3, 32, 32), "train_y": np.concatenate(parts_y),
        "test_x": test_x.reshape(-1, 3, 32, 32), "test_y": np.array(test_y),
    }


WNIDS = [f"n0{7000000 - 1111 * k}" for k in range(10)]  # listed out of name order, as in the real file


def make_tiny_imagenet(root: Path, per_class: int = 6, n_val: int = 20, seed: int = 0) -> Path:
    """A tiny-imagenet-200 tree of real 64x64 JPEGs (some grayscale, as in the real set)."""
    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tclass {w}\n" for w in WNIDS))

    def jpeg(path: Path, gray: bool = False) -> None:
        pixels = rng.integers(0, 256, (64, 64) if gray else (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="L" if gray else "RGB").save(path, format="JPEG", quality=90)

    for wnid in WNIDS:
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(per_class):
            jpeg(images / f"{wnid}_{k}.JPEG", gray=(k == 0))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(
            "".join(f"{wnid}_{k}.JPEG\t0\t0\t63\t63\n" for k in range(per_class)))
    lines = []
    for k in range(n_val):
        jpeg(base / "val" / "images" / f"val_{k}.JPEG", gray=(k == 3))
        lines.append(f"val_{k}.JPEG\t{WNIDS[int(rng.integers(0, len(WNIDS)))]}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    jpeg(base / "test" / "images" / "test_0.JPEG")
    return base


# --- CIFAR-10 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("python2", [True, False], ids=["python2-pickle", "python3-pickle"])
def test_cifar10_batches_load_through_the_registered_loader(tmp_path: Path, python2: bool) -> None:
    written = make_cifar10(tmp_path, python2=python2)
    train = load_split(DatasetName.CIFAR10, str(tmp_path), train=True, verify_checksums=False)
    test = load_split(DatasetName.CIFAR10, str(tmp_path), train=False, verify_checksums=False)
    assert train.x.dtype == torch.uint8 and train.x.shape == (200, 3, 32, 32)
    assert np.array_equal(train.x.numpy(), written["train_x"])
    assert np.array_equal(train.y.numpy(), written["train_y"]) and train.y.dtype == torch.int64
    assert np.array_equal(test.x.numpy(), written["test_x"])
    assert np.array_equal(test.y.numpy(), written["test_y"])
    # --data-dir may also name the batches folder itself
    same = load_split(DatasetName.CIFAR10, str(tmp_path / "cifar-10-batches-py"), train=False, verify_checksums=False)
    assert torch.equal(same.x, test.x)


def test_cifar10_rows_are_channel_major_like_the_official_files(tmp_path: Path) -> None:
    """Row layout: 1024 red values, then 1024 green, then 1024 blue, each row-major 32x32."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 0] = 11  # red, top-left
    row[0, 1024 + 32] = 22  # green, second row, first column
    row[0, 2048 + 31] = 33  # blue, first row, last column
    write_cifar_batch(folder / "test_batch", row, [7], "testing batch 1 of 1")
    image = load_split(DatasetName.CIFAR10, str(tmp_path), train=False, verify_checksums=False).x[0]
    assert image[0, 0, 0] == 11 and image[1, 1, 0] == 22 and image[2, 0, 31] == 33
    assert int(image.sum()) == 66


def test_cifar10_checksums_are_checked_by_default_and_skippable(tmp_path: Path) -> None:
    make_cifar10(tmp_path)
    with pytest.raises(WmrbenchError, match="MD5 of the official CIFAR-10 file.*verify_checksums=False"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=False)
    assert len(load_split(DatasetName.CIFAR10, str(tmp_path), train=False, verify_checksums=False)) == 100


def test_cifar10_missing_files_name_the_expected_path(tmp_path: Path) -> None:
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(WmrbenchError, match="CIFAR-10 not found: expected .*data_batch_3"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=True, verify_checksums=False)
    result = runner.invoke(app, [
        "train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nowhere"), "--device", "cpu",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet",
    ])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: CIFAR-10 not found: expected {tmp_path / 'nowhere' / 'cifar-10-batches-py' / 'data_batch_1'} "
        "(the python version, cifar-10-python.tar.gz, unpacked); pass --data-dir, or --download to fetch it"
    )
    assert not (tmp_path / "ckpt").exists()


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getcwd, ())


def test_cifar10_reader_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": _Evil(), b"labels": []}, handle, protocol=2)
    with pytest.raises(WmrbenchError, match=r"cannot read CIFAR-10 batch .*test_batch: it asks for posix.getcwd"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=False, verify_checksums=False)


def test_cifar10_batches_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_cifar_batch(folder / "test_batch", np.zeros((4, 784), dtype=np.uint8), [0, 1, 2, 3], "x")
    with pytest.raises(WmrbenchError, match=r"not a CIFAR-10 batch: b'data' must be uint8 of shape \(N, 3072\), got \(4, 784\)"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=False, verify_checksums=False)


def test_cifar10_one_epoch_through_train_and_evaluate_cli(tmp_path: Path) -> None:
    make_cifar10(tmp_path / "data")
    result = runner.invoke(app, [
        "train", "--dataset", "cifar10", "--defense", "trades", "--alpha-train", "2",
        "--arch", "tinycnn", "--steps", "1", "--epochs", "1", "--batch-size", "64",
        "--data-dir", str(tmp_path / "data"), "--no-verify-checksums", "--device", "cpu",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    # the run's full config, preset note included, comes first
    assert result.stdout.startswith("config:\n")
    for line in ("  dataset: cifar10", "  lr: 0.2", "  weight_decay: 0.0002", "  milestones: [75, 90]",
                 "  augment: True", "  attack.eps: 0.031", "  attack.step_size: 0.007", "  beta: 5.0",
                 "  alpha_train: 2.0", "  preset note: the paper's CIFAR-10 TRADES setting"):
        assert line in result.stdout
    last = tmp_path / "ckpt" / "cifar10-trades-a2" / "last.pt"
    history = [json.loads(x) for x in (last.parent / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 1 and np.isfinite(history[0]["loss"])

    result = runner.invoke(app, [
        "evaluate", "--checkpoint", str(last), "--data-dir", str(tmp_path / "data"),
        "--no-verify-checksums", "--n-examples", "40", "--steps", "2", "--alpha-test", "1,2",
        "--results-dir", str(tmp_path / "results"), "--device", "cpu", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "results" / "cifar10-trades-a2" / "summary.json").read_text())
    assert summary["metrics"]["n_examples"] == 40
    assert summary["config"]["attack"] == {"eps": 0.031, "step_size": 0.003, "steps": 2, "restarts": 1, "start": "uniform",
                                           "norm": "linf", "restart_from": "start", "restart_rule": "weighted"}
    assert summary["config"]["verify_checksums"] is False


# --- Tiny ImageNet ------------------------------------------------------------------------------


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_tiny_imagenet_tree_loads_through_the_registered_loader(tmp_path: Path, point_at: str) -> None:
    base = make_tiny_imagenet(tmp_path)
    data_dir = str(tmp_path if point_at == "parent" else base)
    train = load_split(DatasetName.TINYIMAGENET, data_dir, train=True)
    val = load_split(DatasetName.TINYIMAGENET, data_dir, train=False)
    assert train.x.dtype == torch.uint8 and train.x.shape == (60, 3, 64, 64)
    assert val.x.shape == (20, 3, 64, 64)
    # labels: the class's place among the sorted wnids (torchvision ImageFolder's numbering)
    ordered = sorted(WNIDS)
    assert ordered != WNIDS
    for i, (wnid, k) in enumerate((w, k) for w in ordered for k in range(6)):
        assert int(train.y[i]) == ordered.index(wnid)
        assert np.array_equal(train.x[i].numpy(), _decoded(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG"))
    annotations = (base / "val" / "val_annotations.txt").read_text().splitlines()
    for i, line in enumerate(annotations):
        name, wnid = line.split("\t")[:2]
        assert int(val.y[i]) == ordered.index(wnid)
        assert np.array_equal(val.x[i].numpy(), _decoded(base / "val" / "images" / name))


def test_tiny_imagenet_decoded_tensors_are_cached_and_refreshed_when_files_change(tmp_path: Path) -> None:
    base = make_tiny_imagenet(tmp_path)
    first = load_split(DatasetName.TINYIMAGENET, str(tmp_path), train=False)
    cache = tiny_imagenet_cache_path(base, train=False)
    assert cache.is_file()
    saved = torch.load(cache, weights_only=True)
    assert torch.equal(saved["x"], first.x) and torch.equal(saved["y"], first.y)
    # the cache is what the second load reads: mark it, and the mark comes back
    saved["x"][0].zero_()
    torch.save(saved, cache)
    assert int(load_split(DatasetName.TINYIMAGENET, str(tmp_path), train=False).x[0].sum()) == 0
    # a changed image file invalidates it
    Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8)).save(base / "val" / "images" / "val_5.JPEG", format="JPEG")
    again = load_split(DatasetName.TINYIMAGENET, str(tmp_path), train=False)
    assert torch.equal(again.x[0], first.x[0])
    assert np.array_equal(again.x[5].numpy(), _decoded(base / "val" / "images" / "val_5.JPEG"))
    assert abs(int(again.x[5].float().mean()) - 200) <= 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_tree", "Tiny ImageNet not found: expected {root}/wnids.txt"),
        ("no_annotations", "Tiny ImageNet is incomplete: {root}/val/val_annotations.txt is missing"),
        ("no_class_folder", "Tiny ImageNet is incomplete: {root}/train/{wnid}/images is missing"),
        ("no_val_image", "Tiny ImageNet is incomplete: {root}/val/images/val_7.JPEG (listed in val_annotations.txt) is missing"),
    ],
)
def test_tiny_imagenet_incomplete_layout_is_one_line_and_exit_2(tmp_path: Path, damage: str, message: str) -> None:
    base = make_tiny_imagenet(tmp_path / "data", per_class=1, n_val=8)
    wnid = sorted(WNIDS)[2]
    split = "val" if damage in ("no_annotations", "no_val_image") else "train"
    if damage == "no_tree":
        data_dir = tmp_path / "elsewhere"
        base = data_dir / "tiny-imagenet-200"
    else:
        data_dir = tmp_path / "data"
        if damage == "no_annotations":
            (base / "val" / "val_annotations.txt").unlink()
        elif damage == "no_class_folder":
            for f in (base / "train" / wnid / "images").iterdir():
                f.unlink()
            (base / "train" / wnid / "images").rmdir()
        else:
            (base / "val" / "images" / "val_7.JPEG").unlink()
    expected = "Error: " + message.format(root=base, wnid=wnid)
    with pytest.raises(WmrbenchError):
        load_split(DatasetName.TINYIMAGENET, str(data_dir), train=split == "train")
    if split == "train":
        args = ["train", "--dataset", "tinyimagenet", "--checkpoint-dir", str(tmp_path / "ckpt")]
    else:  # a plain state_dict of the right architecture, so that only the data is wrong
        weights = tmp_path / "tinycnn.pt"
        torch.save(create_model("tinycnn", num_classes=200).state_dict(), weights)
        args = ["evaluate", "--checkpoint", str(weights), "--arch", "tinycnn", "--dataset", "tinyimagenet",
                "--results-dir", str(tmp_path / "results")]
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir), "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "results").exists()


def test_tiny_imagenet_one_epoch_through_train_and_evaluate_cli(tmp_path: Path) -> None:
    make_tiny_imagenet(tmp_path / "data")
    result = runner.invoke(app, [
        "train", "--dataset", "tinyimagenet", "--defense", "pgd", "--alpha-train", "0.3",
        "--arch", "tinycnn", "--steps", "1", "--epochs", "1", "--batch-size", "32",
        "--data-dir", str(tmp_path / "data"), "--device", "cpu",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    for line in ("  dataset: tinyimagenet", "  attack.eps: 0.016", "  attack.step_size: 0.004", "  lr: 0.2",
                 "  weight_decay: 0.0005", "  milestones: [60]", "  gamma: 0.2", "  augment: True",
                 "  preset note: Tiny ImageNet:"):
        assert line in result.stdout
    assert "crop 64 / padding 4 and flip" in result.stdout
    last = tmp_path / "ckpt" / "tinyimagenet-pgd-a0.3" / "last.pt"
    assert last.is_file()

    result = runner.invoke(app, [
        "evaluate", "--checkpoint", str(last), "--data-dir", str(tmp_path / "data" / "tiny-imagenet-200"),
        "--steps", "2", "--results-dir", str(tmp_path / "results"), "--device", "cpu", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "results" / "tinyimagenet-pgd-a0.3" / "summary.json").read_text())
    assert summary["metrics"]["n_examples"] == 20
    assert summary["config"]["attack"]["eps"] == 0.016 and summary["config"]["attack"]["step_size"] == 0.004
