"""Shared fixtures. Real data lives in ../shared/data (beside the repository); tests that need it
skip with the reason printed when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
MNIST_CHECKPOINT = SHARED_DATA / "models" / "trades_mnist_smallcnn.pt"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def require_mnist() -> None:
    if not (MNIST_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file() or not MNIST_CHECKPOINT.is_file():
        pytest.skip(f"real MNIST data or checkpoint not found under {SHARED_DATA}")


@pytest.fixture
def mnist_model():
    require_mnist()
    from wmrbench.models.sources import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(MNIST_CHECKPOINT, "smallcnn", 10, 1)
    return model.eval()


@pytest.fixture
def mnist_test():
    require_mnist()
    from wmrbench.config import DatasetName
    from wmrbench.data import load_split

    return load_split(DatasetName.MNIST, str(MNIST_DIR), train=False)


@pytest.fixture
def digits_model():
    """A digits model with random weights and BatchNorm-free layers (deterministic, fast)."""
    from wmrbench.models import create_model

    torch.manual_seed(0)
    return create_model("digitsnet", 10, 1).eval()


@pytest.fixture
def digits_test():
    from wmrbench.config import DatasetName
    from wmrbench.data import load_split

    return load_split(DatasetName.DIGITS, "", train=False)
