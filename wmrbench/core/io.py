"""File I/O with three promises: writes are atomic, a run folder has one writer at a time, and
torch files are read safely.

Atomic: write to a temporary name in the same folder, fsync, then rename; a reader (or a
resumed run) sees either the old file or the complete new one, never a torn one. The file gets
the mode a plain ``open(path, "w")`` would give it (0666 less the umask for a new file, the old
file's mode when one is replaced), not mkstemp's 0600. A write that fails (a full disk, a
read-only folder) is one line naming the file: ``No space left on device: PATH``.

Only regular files are replaced. The rename would put a regular file in place of whatever is at
the path, so a destination that exists and is not a regular file (a FIFO, a device node such as
``/dev/full`` or ``/dev/null``, a folder, a socket) is refused with one line before anything is
written: renaming over ``/dev/null`` as root would destroy the device node. A symbolic link to a
regular file is followed: the file it points to is replaced atomically and the link stays, as
``>`` in a shell and most editors do (replacing the link with a copy would silently cut the tie
the user made). A link to anything else, or to nothing, is refused like the thing it points to.
The check runs first (so a refused write costs no work) and again at the rename itself: on Linux
the new file goes in with ``renameat2``, either without replacing anything (``RENAME_NOREPLACE``)
or by exchanging it with the old file (``RENAME_EXCHANGE``), and what came out is looked at; a
node that appeared after the check is exchanged back into place, untouched, and the write is
refused. Where ``renameat2`` is missing (another OS, a file system without it) a plain rename
is used, and a node created in the instant between the last check and the rename is not guarded
against.

One writer: :func:`lock_folder` takes an exclusive ``fcntl.flock`` on ``FOLDER/.lock`` (which
holds the writer's pid) for as long as a command writes there; a second writer is refused with
one line naming the first. The kernel drops the lock when its process ends, however it ends
(kill -9 included), so a lock never outlives its writer. Temporary files a killed writer left
behind (``.NAME.*.tmp``) are removed when the next writer takes the folder.

Safe: every torch file wmrbench reads (checkpoints, zoo files, adversarial files, data caches)
goes through :func:`safe_torch_load`, ``torch.load(..., weights_only=True)``, which rebuilds
tensors and plain containers only and never runs code from the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from wmrbench.core.errors import WmrbenchError, first_line

try:  # POSIX; elsewhere run folders are not locked (documented in docs/reliability.md)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
TMP_SUFFIX = ".tmp"


def os_error_line(exc: OSError, path: str | Path) -> str:
    """``No space left on device: PATH``: what the system said, and which file."""
    reason = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or first_line(exc)
    return f"{reason}: {path}"


def make_folder(folder: str | Path, what: str = "folder") -> Path:
    """``folder`` and its parents, or one line (a path through a file, a read-only place)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WmrbenchError(f"cannot create the {what} {folder}: a file of that name is in the way") from None
    except OSError as exc:
        raise WmrbenchError(f"cannot create the {what} {folder}: {os_error_line(exc, exc.filename or folder)}") from None
    if not folder.is_dir():
        raise WmrbenchError(f"cannot create the {what} {folder}: a file of that name is in the way")
    return folder


def check_writable(folder: str | Path, what: str = "folder") -> Path:
    """One line now if no file can be created in ``folder`` (read-only, not ours), rather than a
    failed write after the work."""
    folder = Path(folder)
    try:
        fd, tmp = _temporary(folder / ".wmrbench-write-check")
        os.close(fd)
        tmp.unlink()
    except OSError as exc:
        raise WmrbenchError(f"cannot write to the {what} {folder}: {os_error_line(exc, exc.filename or folder)}") from None
    return folder


def _temporary(path: Path) -> tuple[int, Path]:
    """A new file ``.NAME.<random>.tmp`` beside ``path``, opened for writing, created with the mode
    a plain open() gives (0666 less the umask: the kernel applies it), or ``path``'s own mode."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        try:
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))  # replacing a file keeps its mode
        except FileNotFoundError:
            pass
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def write_target(path: str | Path, hint: str = "") -> Path:
    """The regular file a write to ``path`` replaces (a symlink's target), or one line when ``path``
    exists and is not a regular file. ``hint`` ends that line (e.g. how to write to stdout)."""
    path = Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file in the way of a folder: make_folder says so)
        return path
    except OSError as exc:
        raise WmrbenchError(os_error_line(exc, path)) from None
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISLNK(mode):
        target = Path(os.path.realpath(path))
        try:
            target_mode = os.stat(target).st_mode
        except FileNotFoundError:
            raise WmrbenchError(f"refusing to write {path}: it is a symbolic link to {target}, which does not exist{hint}") from None
        except OSError as exc:
            raise WmrbenchError(os_error_line(exc, path)) from None
        if stat.S_ISREG(target_mode):
            return target
        raise WmrbenchError(
            f"refusing to write {path}: it is a symbolic link to {target}, {_kind(target_mode)}, not a regular file{hint}")
    raise WmrbenchError(f"refusing to write {path}: it is {_kind(mode)}, not a regular file{hint}")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(handle)`` atomically; an OSError is one line naming the file.
    A destination that is not a regular file is refused (see the module's docstring); the path
    returned is the one given, also when a symlink's target was replaced."""
    given = Path(path)
    path = write_target(given)
    make_folder(path.parent)
    tmp: Path | None = None
    try:
        fd, tmp = _temporary(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        write_target(path)  # again: the writer may have run for a while
        _rename_over_regular(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WmrbenchError(os_error_line(exc, path)) from None
        disk = _disk_error(exc)
        if disk is not None:  # torch.save wraps the failed write in a RuntimeError
            raise WmrbenchError(os_error_line(disk, path)) from None
        raise
    return given


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux's ``renameat2``; False where it is unavailable (no such call, or the file system
    does not support the flag), an OSError when it fails for another reason."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    import ctypes

    call = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if call is None:
        return False
    if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(dst))


def _rename_over_regular(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``, replacing at most a regular file, even one swapped for a FIFO
    or a device node after :func:`write_target` looked (see the module's docstring)."""
    for _ in range(100):
        try:
            if not _renameat2(tmp, path, _RENAME_NOREPLACE):
                os.replace(tmp, path)  # no renameat2 here: the checks before are all there is
            return
        except FileExistsError:
            pass  # something is at path: exchange, then look at what came out
        try:
            if not _renameat2(tmp, path, _RENAME_EXCHANGE):
                os.replace(tmp, path)
                return
        except FileNotFoundError:
            continue  # it went away in between: try the plain way again
        old = os.lstat(tmp).st_mode  # tmp's name now holds what was at path
        if stat.S_ISREG(old):
            os.unlink(tmp)
            return
        _renameat2(tmp, path, _RENAME_EXCHANGE)  # put it back as it was
        raise WmrbenchError(f"refusing to write {path}: it became {_kind(old)} while the file was written, "
                            f"not a regular file; nothing was replaced")
    raise FileExistsError(errno.EEXIST, "the destination kept changing", str(path))


def _disk_error(exc: BaseException) -> OSError | None:
    """The OSError behind an exception of a writer that wraps it (torch.save), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def remove_file(path: str | Path) -> None:
    """Delete ``path`` if it is there; an OSError is one line naming it."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise WmrbenchError(os_error_line(exc, path)) from None


def remove_stale_temporaries(folder: str | Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) a killed writer left in ``folder``; only for
    ``names`` when given. Call it only while holding the folder's lock: a live writer's
    temporary file is not stale."""
    removed = []
    folder = Path(folder)
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        if names is not None and not any(tmp.name.startswith(f".{name}.") for name in names):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        return f"process {pid}"
    return "another process"


@contextlib.contextmanager
def lock_folder(folder: str | Path, what: str, hint: str) -> Iterator[Path]:
    """Hold the one-writer lock of ``folder`` (made if missing) while the body runs.

    A second writer gets one line: ``FOLDER is in use by process PID (its WHAT); HINT``. Stale
    temporary files are removed once the lock is held. A folder this call made and nothing was
    written to is removed again on the way out (a command that failed leaves nothing behind).
    """
    folder = Path(folder)
    made = [p for p in [folder, *folder.parents] if not p.exists()]  # the folders this call makes
    make_folder(folder, what)
    check_writable(folder, what)
    path = folder / LOCK_NAME
    fd = -1
    while fcntl is not None:
        try:  # never follow a link, never block on a FIFO: what was opened is looked at first
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise WmrbenchError(f"{path} is a symbolic link, not the {what}'s lock file; remove it") from None
            raise WmrbenchError(f"cannot write to the {what} {folder}: {os_error_line(exc, path)}") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise WmrbenchError(f"{path} is {_kind(mode)}, not the {what}'s lock file (a regular file); remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise WmrbenchError(f"cannot lock the {what} {folder}: {os_error_line(exc, path)}") from None
            raise WmrbenchError(f"{folder} is in use by {_holder(path)} (its {what}); {hint}") from None
        try:  # the file we locked must still be the one at the path (a releasing writer may remove it)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        if fd >= 0:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        remove_stale_temporaries(folder)
        yield folder
    finally:
        if made:  # nothing written: leave no empty folder behind (a failed command writes nothing)
            with contextlib.suppress(OSError):
                if {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
                    path.unlink(missing_ok=True)
                    for empty in made:  # deepest first; rmdir refuses a folder that is not empty
                        empty.rmdir()
        if fd >= 0:
            os.close(fd)  # releases the flock


def write_stdout(text: str) -> None:
    """``text`` on standard output (``--output -``), flushed now, so that a failed write (a full
    disk behind a redirect, ``> /dev/full``, a closed pipe) is one line here and never reported as
    written."""
    import sys

    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        with contextlib.suppress(OSError, ValueError):  # leave nothing for the interpreter to fail on at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise WmrbenchError(f"cannot write to standard output: {exc.strerror or first_line(exc)}") from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda h: h.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda h: torch.save(obj, h))


# Lines of torch's weights_only messages that give advice instead of saying what was wrong: the
# advice to load with weights_only=False (which runs the file's code) is never repeated.
_ADVICE = ("weights only load failed", "weights_only", "trust", "add_safe_globals", "safe_globals(",
           "documentation of torch.load", "alternatively")


def _unpickler_detail(exc: BaseException) -> str:
    """What was wrong, from torch's long weights_only message, without its advice."""
    text = str(exc).replace("WeightsUnpickler error:", "\n")
    for line in text.splitlines():
        line = line.strip()
        if line and not any(advice in line.lower() for advice in _ADVICE):
            return line.split(" Please use ", 1)[0]
    return type(exc).__name__


def _python_global(exc: BaseException) -> str | None:
    """The Python global (class or function) a file asked the unpickler for, if that is why it failed."""
    match = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
    return match.group(1) if match else None


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """A torch file (``what`` names it in messages) read with weights_only=True; a dict at top level.

    Failures are one line: a missing file, a file that holds Python objects (refused), and a
    corrupt or foreign file (e.g. an HTML page where a download should be).
    """
    path = Path(path)
    if not path.is_file():
        raise WmrbenchError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only a global the unpickler refused (a class, or a function such as os.system) means
        # Python objects; anything else is a corrupt file. Neither message repeats torch's advice
        # to set weights_only=False: that would run the file's code.
        name = _python_global(exc)
        if name is not None:
            raise WmrbenchError(
                f"refusing to load Python objects from {path} ({name}): a {what} must hold only tensors and "
                "plain containers, and wmrbench never runs code from a file"
            ) from None
        raise WmrbenchError(f"cannot read {what} {path}: corrupt or not a PyTorch file ({_unpickler_detail(exc)})") from None
    except Exception as exc:  # noqa: BLE001
        # Any content may reach this reader: torch's legacy unpickler and its zip reader raise
        # whatever the bytes provoke (IndexError, KeyError, MemoryError, struct.error, ...), and no
        # list of exception types stays complete. Every one of them means the file is not a
        # checkpoint; only KeyboardInterrupt and SystemExit (BaseException) pass through.
        raise WmrbenchError(
            f"cannot read {what} {path}: corrupt or not a PyTorch file ({first_line(exc, with_type=True, limit=200)})"
        ) from None
    if not isinstance(obj, dict):
        raise WmrbenchError(f"cannot read {what} {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj
