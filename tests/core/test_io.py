"""wmrbench.core.io's two remaining windows: a node that appears at the destination after the last
check (the rename itself must not replace it), and a ``.lock`` that is not a regular file.

Real nodes in tmp_path: a FIFO (os.mkfifo) and, as root, a character device with /dev/null's
numbers. The race is made real by creating the node inside ``write_target``'s second call, the
last check before the rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import wmrbench.core.io as io
from wmrbench.core.errors import WmrbenchError


def _make_node(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("existed", [False, True])
def test_a_node_made_after_the_last_check_is_never_replaced(tmp_path: Path, monkeypatch, kind, existed) -> None:
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    target = tmp_path / "summary.json"
    if existed:
        target.write_text("old")
    real, calls = io.write_target, []

    def racing(path, hint=""):
        out = real(path, hint)
        calls.append(path)
        if len(calls) == 2:  # after the check just before the rename: the window
            Path(path).unlink(missing_ok=True)
            _make_node(Path(path), kind)
        return out

    monkeypatch.setattr(io, "write_target", racing)
    with pytest.raises(WmrbenchError, match=r"refusing to write .*summary\.json: it became a .*nothing was replaced"):
        io.atomic_write_text(target, "new")
    mode = os.lstat(target).st_mode
    assert (stat.S_ISFIFO if kind == "fifo" else stat.S_ISCHR)(mode)  # the node is still there, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary left behind


def test_atomic_writes_still_create_and_replace_regular_files(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    io.atomic_write_text(target, "one")
    io.atomic_write_text(target, "two")
    assert target.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_a_lock_that_is_not_a_regular_file_is_one_line(tmp_path: Path, kind) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / io.LOCK_NAME
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "folder":
        lock.mkdir()
    else:
        (tmp_path / "elsewhere").write_text("")
        lock.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(WmrbenchError) as caught:
        with io.lock_folder(folder, "results folder", "hint"):
            pass
    assert "\n" not in str(caught.value) and str(lock) in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == [io.LOCK_NAME]  # left as it was
