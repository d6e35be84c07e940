"""Any content given where a torch file is read ends in one line and exit 2, with nothing written.

Not a list of known exceptions: the inputs are fuzzed (random bytes of several sizes, truncations
of a real checkpoint at many points, text, zip lookalikes, byte flips inside a real file's pickle),
because torch's legacy unpickler and its zip reader raise whatever the bytes provoke (IndexError,
KeyError, MemoryError, ...). The loader itself is fuzzed in process (many inputs, cheap); each
command that reads a torch file is then run on a sample of the same inputs.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MNIST_CHECKPOINT, SHARED_DATA, assert_one_line_error, files_under, invoke, require_mnist
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import safe_torch_load

SEED = 20210201


def _real() -> bytes:
    require_mnist()
    return MNIST_CHECKPOINT.read_bytes()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def fuzzed_inputs() -> dict[str, bytes]:
    """Named contents that are not a checkpoint; reproducible (a fixed seed)."""
    rng = random.Random(SEED)
    real = _real()
    cases: dict[str, bytes] = {"empty": b""}
    for size in (1, 2, 7, 64, 101, 1000, 4096, 65536):
        for k in range(3):
            cases[f"random-{size}-{k}"] = rng.randbytes(size)
    # A legacy (non-zip) torch file starts with a pickle: random bytes after a pickle opcode
    # reach the unpickler's deeper paths (the IndexError / KeyError of the report).
    for k in range(8):
        cases[f"pickle-prefix-{k}"] = b"\x80\x02" + rng.randbytes(rng.randint(1, 300))
        cases[f"magic-number-{k}"] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + rng.randbytes(rng.randint(1, 300))
    for cut in sorted({1, 4, 22, 30, 64, 100, 512, 1024, 4096, len(real) // 3, len(real) // 2, len(real) - 1000,
                       len(real) - 22, len(real) - 1} | {rng.randint(1, len(real) - 1) for _ in range(6)}):
        cases[f"truncated-at-{cut}"] = real[:cut]
    cases["text-ascii"] = b"this is not a checkpoint\n" * 40
    cases["text-utf8"] = "r\u00e9sultats \u2013 \u6a21\u578b\n".encode() * 20
    cases["text-json"] = b'{"format": "wmrbench-checkpoint", "model": {}}'
    cases["text-html"] = b"<!DOCTYPE html><html><body>404 Not Found</body></html>"
    cases["zip-magic-only"] = b"PK\x03\x04" + rng.randbytes(200)
    cases["zip-empty"] = _zip({})
    cases["zip-other-files"] = _zip({"readme.txt": b"hello"})
    for k in range(4):
        cases[f"zip-random-pickle-{k}"] = _zip({"archive/data.pkl": rng.randbytes(200), "archive/version": b"3\n"})
    cases["zip-pickle-without-data"] = _zip({"archive/data.pkl": b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02.",
                                             "archive/version": b"3\n"})
    # Byte flips inside a real file: the zip reader's checks or the unpickler must notice.
    for k in range(10):
        flipped = bytearray(real)
        for _ in range(8):
            at = rng.randrange(0, 4096)
            flipped[at] ^= 1 << rng.randrange(8)
        cases[f"flipped-{k}"] = bytes(flipped)
    return cases


def test_the_loader_refuses_every_fuzzed_input_in_one_line(tmp_path):
    """safe_torch_load: each input is a WmrbenchError of one line, or (a byte flip the file's
    format cannot see) a dict; never another exception."""
    for name, data in fuzzed_inputs().items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(data)
        try:
            safe_torch_load(path)
        except WmrbenchError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), (name, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - the bug this test names
            pytest.fail(f"{name}: {type(exc).__name__}: {exc}")
        assert name.startswith("flipped-"), f"{name} was read as a checkpoint"


def _sample() -> dict[str, bytes]:
    """The inputs that reached torch's deeper paths on the landed code, and one of each kind."""
    cases = fuzzed_inputs()
    keep = ("empty", "random-7-0", "random-4096-1", "pickle-prefix-0", "pickle-prefix-3", "magic-number-1",
            "truncated-at-100", "text-ascii", "text-utf8", "text-json", "zip-magic-only", "zip-random-pickle-0")
    return {name: cases[name] for name in keep}


MNIST_DIR = SHARED_DATA / "mnist"


@pytest.mark.parametrize("role", ["evaluate --checkpoint", "attack --checkpoint", "evaluate --adversarial",
                                  "audit --reference"])
def test_each_command_refuses_fuzzed_torch_files_in_one_line(role, tmp_path):
    """Through the real commands: exit 2, one line naming the file, no result, no traceback."""
    work = tmp_path / "work"
    work.mkdir()
    data = ("--dataset", "mnist", "--data-dir", MNIST_DIR, "--n-examples", "2", "--steps", "1", "--device", "cpu")
    sample = _sample()
    if role == "audit --reference":  # the audit loads MNIST before the reference (~0.7 s a case)
        sample = {name: sample[name] for name in ("pickle-prefix-0", "truncated-at-100", "text-ascii")}
    for name, content in sample.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(content)
        results = work / "results"
        if role == "evaluate --checkpoint":
            out = invoke("evaluate", "--checkpoint", path, "--arch", "smallcnn", *data, "--results-dir", results, "--quiet")
        elif role == "attack --checkpoint":
            out = invoke("attack", "--checkpoint", path, "--arch", "smallcnn", *data, "--results-dir", results, "--quiet")
        elif role == "evaluate --adversarial":
            out = invoke("evaluate", "--adversarial", path, "--results-dir", results, "--quiet")
        else:
            out = invoke("audit", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--reference", path, *data,
                         "--results-dir", results, "--quiet")
        line = assert_one_line_error(out, str(path))
        assert "Traceback" not in line, (name, line)
        assert files_under(work) == set(), (name, files_under(work))
