"""The examples run as a user runs them (a fresh interpreter, another working folder) and print
sane numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_S, REPO, require_mnist

EXAMPLES = REPO / "examples"
DOCS = REPO / "docs" / "api.md"
README = REPO / "README.md"
PAIR = r"(\S+) (-?\d+(?:\.\d+)?)"  # an example's "NAME VALUE" output


def _pairs(stdout: str) -> dict[str, float]:
    # "NAME VALUE" pairs, several per line
    return {name: float(value) for name, value in re.findall(PAIR + r"(?=\s|$)", stdout)}


def _run(script: str, cwd: Path, *args: str) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list(cwd.iterdir()), "an example wrote into the working folder"
    return _pairs(out.stdout)


def documented(script: str) -> dict[str, str]:
    """The output lines docs/api.md quotes for ``script`` (its bullet's backticked "NAME VALUE"
    pairs), as written: the decimals they show are the precision they claim."""
    text = DOCS.read_text()
    start = text.index(f"- `examples/{script}`")
    end = text.find("\n- ", start + 1)
    bullet = text[start:end if end != -1 else len(text)]
    return dict(re.findall(r"`" + PAIR + r"`", bullet))


def assert_as_documented(script: str, got: dict[str, float], tolerance: float | None = None) -> None:
    """Every number docs/api.md prints for ``script`` is what it printed: to the decimals shown,
    or within ``tolerance`` points where the docs round on purpose (a trained model's digits)."""
    quoted = documented(script)
    assert quoted, f"docs/api.md quotes no output of {script}"
    for name, text in quoted.items():
        assert name in got, f"docs/api.md quotes {name}, which {script} does not print"
        if tolerance is None:
            decimals = len(text.split(".")[1]) if "." in text else 0
            assert f"{got[name]:.{decimals}f}" == text, f"{script}: {name} is {got[name]}, docs/api.md says {text}"
        else:
            assert abs(got[name] - float(text)) <= tolerance, f"{script}: {name} is {got[name]}, docs/api.md says about {text}"


# The real checkpoint and data sit beside the repository here; the example's defaults are inside it.
SHARED_ARGS = {"weighted_attack_mnist.py": ("--checkpoint", str(REPO.parent / "shared" / "data" / "models" / "trades_mnist_smallcnn.pt"),
                                            "--data-dir", str(REPO.parent / "shared" / "data" / "mnist"))}


@pytest.mark.slow  # ~15 s of one CPU core: 120 PGD-40 steps on 100 real MNIST images
def test_weighted_attack_mnist(tmp_path):
    """The example's defaults (the real checkpoint and data, the first 100 test images, seed 0)
    give the numbers ``wmrbench evaluate`` gives on the same 100 (README, the AutoAttack
    paragraph: PGD-40 A_rob 95.00, A_sa 83.86 at alpha 1 and 58.27 at alpha 2)."""
    require_mnist()
    got = _run("weighted_attack_mnist.py", tmp_path, *SHARED_ARGS["weighted_attack_mnist.py"])
    assert got["n"] == 100
    assert got["A_nat"] >= 98.0  # published: 99.48 on the 10,000
    assert got["A_rob"] == 95.00  # published: 96.07 under PGD-40 on the 10,000
    assert got["A_sa@1"] == 83.86 and got["A_sa@2"] == 58.27
    # The ordering the paper expects: weighting and the weighted attack only lower the accuracy.
    assert got["A_tr@2"] <= got["A_sa@2"] <= got["A_sa@1"] <= got["A_rob"] <= got["A_nat"]
    assert got["A_tr@1"] <= got["A_sa@1"]
    assert 1.0 <= got["n_eff"] <= 100.0  # the last n_eff printed: A_sa's at alpha 2
    assert_as_documented("weighted_attack_mnist.py", got)


def test_trades_ours_own_loop(tmp_path):
    got = _run("trades_ours_own_loop.py", tmp_path)
    assert got["epoch"] == 1 and got["n"] == 360
    assert 0.0 < got["last"] < got["first"]  # one epoch of TRADES+ours lowers the loss
    assert got["mean_weight"] > 0
    assert got["A_nat"] > 30.0  # chance is 10 %; about 54 after one epoch here
    assert 0.0 <= got["A_rob"] <= got["A_nat"]
    # correct points weigh less than 1 and errors more: the weighted accuracy is below A_rob
    assert 0.0 <= got["A_sa@2"] < got["A_rob"]
    # A_tr@2 scores the points of the attack weighted by alpha 2, which pushes the low-margin
    # points the weight favours: it finds lower weighted accuracy than the uniform attack's
    # points do (A_sa@2). Equal numbers mean the weighted attack ran unweighted.
    assert 0.0 <= got["A_tr@2"] < got["A_sa@2"]
    assert_as_documented("trades_ours_own_loop.py", got, tolerance=1.5)


# The names the README's Python snippet leaves to the reader, made real and small: a linear model
# and real MNIST images (the snippet evaluates with dataset="mnist", so they are MNIST's shape).
README_PREAMBLE = f"""
import torch
from torch import nn
from wmrbench.data import load_split
test = load_split("mnist", {str(REPO.parent / "shared" / "data" / "mnist")!r}, train=False).subset(20)
train = load_split("mnist", {str(REPO.parent / "shared" / "data" / "mnist")!r}, train=True).subset(1100)
x, y = test.images(torch.arange(20)), test.y
x_train, y_train = train.images(torch.arange(1100)), train.y
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


def readme_snippet() -> str:
    """The README's Python block under "Use it from Python", as a user pastes it."""
    text = README.read_text()
    start = text.index("```python", text.index("### Use it from Python")) + len("```python")
    return text[start:text.index("```", start)]


@pytest.mark.slow  # fresh interpreters, twice each: the README snippet and fit_own_model take minutes of CPU
@pytest.mark.parametrize("script", ["weighted_attack_mnist.py", "trades_ours_own_loop.py", "fit_own_model.py", "README"])
def test_every_example_and_the_readme_snippet_run_twice_in_one_folder(tmp_path, script):
    """A tutorial run again must work: the second run in the same folder succeeds and prints the
    same numbers (fit_own_model and the README's snippet train a fresh run the second time)."""
    require_mnist()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if script == "README":
        path = tmp_path.parent / f"{tmp_path.name}-readme.py"  # outside the folder it runs in
        path.write_text(README_PREAMBLE + readme_snippet())
    else:
        path = EXAMPLES / script
    outputs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, str(path), *SHARED_ARGS.get(script, ())], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=HANG_S)
        assert out.returncode == 0, out.stderr[-2000:]
        outputs.append(re.sub(r"custom(-2)?", "custom", out.stdout))
    assert outputs[0] == outputs[1]
    if script in ("fit_own_model.py", "README"):  # both runs kept, side by side
        assert (tmp_path / "checkpoints" / "custom" / "last.pt").is_file()
        assert (tmp_path / "checkpoints" / "custom-2" / "last.pt").is_file()
