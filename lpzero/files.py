"""Writing output files atomically: a temporary file beside the target, then a rename.

An interrupted write or a full disk leaves the previous file (or none), never a
truncated one. Every file lpzero writes for a user goes through here, so every write
failure is reported the same way: an `OSError` that names the file (a full disk, a
read-only folder), or a `WriteError` (an `LPZeroError` and an `OSError`) where the writer
was safetensors, which raises its own error type without the file's name.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from safetensors import SafetensorError

from .errors import LPZeroError, WriteError

#: the lock file of an output folder a run owns
LOCK_FILE = ".lpzero.lock"


def _file_mode() -> int:
    """The mode a new file gets under the process's umask (safetensors' own files would be 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` to fill a temporary file in `path`'s folder, then rename it to `path`.

    A failure leaves no temporary file and raises an `OSError` whose `filename` is `path`.
    """
    path = Path(path)
    # unique per process and call, so concurrent writers never share a temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        tmp.replace(path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, SafetensorError):
            raise WriteError(f"{path}: cannot be written: {e}") from e
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, str(tmp), tmp):
            raise type(e)(e.errno, e.strerror, str(path)) from e  # the file the user named, not our temporary
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, data: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent))


@contextlib.contextmanager
def owned_folder(path: Path, what: str = "--out") -> Iterator[Path]:
    """Create `path` and hold it for this run: a second run into it is refused in one line naming
    the running one's pid. The lock is the kernel's (flock): it goes with the process, so a killed
    run never leaves the folder locked."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise LPZeroError(f"{what} {path} is in use by another lpzero run (pid {pid}); wait for it to end or "
                              "choose another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield path
    finally:
        handle.close()


def remove_outputs(folder: Path, names: Iterable[str]) -> None:
    """Remove an earlier run's outputs (files or folders) from `folder`, so it never holds two runs' files."""
    for name in names:
        target = Path(folder) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
