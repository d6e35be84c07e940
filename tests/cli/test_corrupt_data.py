"""A corrupt data file is blamed on the file, in one line, through the CLI.

Each test writes a file in the real on-disk format (MNIST IDX, CIFAR-10/100 pickles, Tiny
ImageNet's annotations, wmrbench's adversarial file), damages one thing, and runs the real
command: exit 2, one line naming the file and the fault, never a traceback, never a model whose
outputs "do not fit", and no result written.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_one_line_error, invoke
from tests.data.test_data_formats import make_tiny_imagenet

NOT_THE_MODEL = ("gives outputs of shape", "does not fit", "Traceback")


def _linear(inputs: int, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(inputs, classes))


def model_mnist() -> torch.nn.Module:
    return _linear(28 * 28, 10)


def model_10() -> torch.nn.Module:
    return _linear(3 * 32 * 32, 10)


def model_100() -> torch.nn.Module:
    return _linear(3 * 32 * 32, 100)


def model_200() -> torch.nn.Module:
    return _linear(3 * 64 * 64, 200)


def _evaluate(dataset: str, data_dir: Path, results: Path, factory: str = "model_10", *extra: str):
    return invoke("evaluate", "--model", f"{__name__}:{factory}", "--dataset", dataset,
                  "--data-dir", data_dir, "--n-examples", "4", "--steps", "1", "--alpha-test", "1",
                  "--results-dir", results, "--device", "cpu", "--quiet", "--no-verify-checksums", *extra)


def _blamed_on(out, path: Path, *fragments: str) -> str:
    line = assert_one_line_error(out, str(path), *fragments)
    assert not any(bad in line for bad in NOT_THE_MODEL), line
    return line


# --- MNIST (IDX) -----------------------------------------------------------------------------------


def _idx(dims: list[int], payload: bytes | None = None, magic: bytes | None = None) -> bytes:
    header = (magic or bytes([0, 0, 8, len(dims)])) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + (payload if payload is not None else bytes(int(np.prod(dims))))


@pytest.fixture
def mnist(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k", "train"):
        (raw / f"{stem}-images-idx3-ubyte").write_bytes(_idx([12, 28, 28]))
        (raw / f"{stem}-labels-idx1-ubyte").write_bytes(_idx([12], bytes(range(10)) + bytes([1, 2])))
    return tmp_path / "data"


def test_mnist_well_formed_loads(mnist, tmp_path):
    out = _evaluate("mnist", mnist, tmp_path / "results", "model_mnist")
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize(("damage", "fragment"), [
    ("magic", "not a 1-D uint8 IDX file"),
    ("count", "bytes, but its header (13) needs"),
    ("label", "label 12 of item 3 is outside 0..9"),
    ("disagree", "MNIST files disagree"),
])
def test_mnist_labels_file_faults_are_named(damage, fragment, mnist, tmp_path):
    labels = mnist / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    if damage == "magic":
        labels.write_bytes(_idx([12], bytes(12), magic=b"\x00\x00\x08\x03"))
    elif damage == "count":  # the header says 13 labels; 12 follow
        labels.write_bytes(_idx([13], bytes(12)))
    elif damage == "label":
        labels.write_bytes(_idx([12], bytes([0, 1, 2, 12, 4, 5, 6, 7, 8, 9, 0, 1])))
    else:
        labels.write_bytes(_idx([11], bytes(11)))
    out = _evaluate("mnist", mnist, tmp_path / "results", "model_mnist")
    _blamed_on(out, labels, fragment)
    assert not (tmp_path / "results").exists()


def test_mnist_training_labels_outside_range_stop_train_too(mnist, tmp_path):
    labels = mnist / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx([12], bytes([255] * 12)))
    out = invoke("train", "--dataset", "mnist", "--data-dir", mnist, "--epochs", "1", "--steps", "1",
                 "--checkpoint-dir", tmp_path / "ck", "--device", "cpu", "--quiet")
    _blamed_on(out, labels, "label 255 of item 0 is outside 0..9")
    assert not (tmp_path / "ck").exists()


# --- CIFAR-10 / CIFAR-100 (pickles) ----------------------------------------------------------------


def _cifar_batch(n: int, label_key: bytes, labels: list[int] | None = None, data: object = None) -> bytes:
    rng = np.random.default_rng(0)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        label_key: labels if labels is not None else [int(v) for v in rng.integers(0, 10, n)],
        b"data": data if data is not None else rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=2)


CIFAR = {  # data set: (folder, test file, label key, classes, factory)
    "cifar10": ("cifar-10-batches-py", "test_batch", b"labels", 10, "model_10"),
    "cifar100": ("cifar-100-python", "test", b"fine_labels", 100, "model_100"),
}


@pytest.mark.parametrize("dataset", sorted(CIFAR))
@pytest.mark.parametrize(("damage", "fragment"), [
    ("label", "must be 6 labels in 0.."),
    ("negative", "must be 6 labels in 0.."),
    ("count", "must be 6 labels in 0.."),
    ("truncated", "cannot read"),
    ("shape", "b'data' must be uint8 of shape (N, 3072)"),
    ("list", "it holds a list, not a dict"),
])
def test_cifar_batch_faults_are_named(dataset, damage, fragment, tmp_path):
    folder, name, key, classes, factory = CIFAR[dataset]
    path = tmp_path / "data" / folder / name
    path.parent.mkdir(parents=True)
    good = [0, 1, 2, 3, 4, 5]
    content = {
        "label": _cifar_batch(6, key, good[:5] + [classes]),
        "negative": _cifar_batch(6, key, [-1] + good[1:]),
        "count": _cifar_batch(6, key, good[:5]),
        "truncated": _cifar_batch(6, key, good)[:-40],
        "shape": _cifar_batch(6, key, good, np.zeros((6, 3000), dtype=np.uint8)),
        "list": pickle.dumps([1, 2, 3], protocol=2),
    }[damage]
    path.write_bytes(content)
    out = _evaluate(dataset, tmp_path / "data", tmp_path / "results", factory)
    _blamed_on(out, path, fragment)
    assert not (tmp_path / "results").exists()


# --- Tiny ImageNet (annotations) -------------------------------------------------------------------


@pytest.mark.parametrize(("damage", "fragment"), [
    ("unknown_class", "line 2 is not 'FILE<TAB>WNID<TAB>...' with a class from wnids.txt"),
    ("one_field", "line 1 is not 'FILE<TAB>WNID<TAB>...'"),
    ("binary", "is corrupt: not a text file"),
])
def test_tiny_imagenet_annotation_faults_are_named(damage, fragment, tmp_path):
    base = make_tiny_imagenet(tmp_path / "data", per_class=1, n_val=4)
    annotations = base / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines()
    if damage == "unknown_class":
        lines[1] = "val_1.JPEG\tn99999999\t0\t0\t63\t63"
        annotations.write_text("\n".join(lines) + "\n")
    elif damage == "one_field":
        annotations.write_text("val_0.JPEG\n")
    else:
        annotations.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    out = _evaluate("tinyimagenet", tmp_path / "data", tmp_path / "results", "model_200")
    _blamed_on(out, annotations, fragment)
    assert not (tmp_path / "results").exists()


def test_tiny_imagenet_wnids_with_too_many_classes_are_named(tmp_path):
    base = make_tiny_imagenet(tmp_path / "data", per_class=1, n_val=4)
    wnids = base / "wnids.txt"
    wnids.write_text("".join(f"n{i:08d}\n" for i in range(201)))
    out = _evaluate("tinyimagenet", tmp_path / "data", tmp_path / "results", "model_200")
    _blamed_on(out, wnids, "must list up to 200 distinct class ids")


# --- --adversarial files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adversarial(digits_runs, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("adv")
    out = invoke("attack", "--checkpoint", digits_runs["trades-a0"], "--n-examples", "8", "--steps", "1",
                 "--alpha-test", "1", "--results-dir", results, "--quiet")
    assert out.exit_code == 0, out.output
    return results / "trades-a0" / "adversarial.pt"


@pytest.mark.parametrize(("damage", "fragment"), [
    ("label", "is corrupt: label 10 of example 2 is outside 0..9"),
    ("float_label", "its labels are torch.float32"),
    ("index", "its example indices are not 8 distinct integers"),
    ("x", "its clean images x are not all in [0, 1]"),
    ("truncated", "corrupt or not a PyTorch file"),
    ("rows", "its arrays do not have one row per example"),
])
def test_adversarial_file_faults_are_named(damage, fragment, adversarial, tmp_path):
    obj = torch.load(adversarial, weights_only=True)
    path = tmp_path / "bad.pt"
    if damage == "truncated":
        path.write_bytes(adversarial.read_bytes()[:-200])
    else:
        if damage == "label":
            obj["label"][2] = 10
        elif damage == "float_label":
            obj["label"] = obj["label"].float()
        elif damage == "index":
            obj["index"][1] = obj["index"][0]
        elif damage == "x":
            obj["x"][0] += 2.0
            for attack in obj["attacks"].values():
                attack["x_adv"][0] += 2.0
        else:
            obj["label"] = obj["label"][:-1]
        torch.save(obj, path)
    out = invoke("evaluate", "--adversarial", path, "--results-dir", tmp_path / "results", "--quiet")
    _blamed_on(out, path, fragment)
    assert not (tmp_path / "results").exists()
