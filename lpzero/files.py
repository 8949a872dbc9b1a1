"""Writing output files atomically: a temporary file beside the target, then a rename.

An interrupted write or a full disk leaves the previous file (or none), never a
truncated one. Every file lpzero writes for a user goes through here, so every write
failure is reported the same way: an `OSError` that names the file (a full disk, a
read-only folder), or a `WriteError` (an `LPZeroError` and an `OSError`) where the writer
was safetensors, which raises its own error type without the file's name.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
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


#: the suffix of the key beside a value that was written as null for not being finite ("fitness_why")
WHY = "_why"
#: how a why-line starts; the rest names each non-finite number (and where in a list it was)
NOT_FINITE = "not finite"


def _strict(value: Any) -> tuple[Any, list[str]]:
    """`value` with each non-finite float as None, and the non-finite ones found outside dicts,
    as "-inf" (the value itself) or "[2][0]: nan" (inside lists); dicts carry their own why-keys."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [repr(float(value))]  # numpy 2 would write "np.float64(nan)"
    if isinstance(value, dict):
        return strict_json(value), []
    if isinstance(value, (list, tuple)):
        items, found = [], []
        for i, item in enumerate(value):
            item, inner = _strict(item)
            items.append(item)
            found += [f"[{i}]{'' if where.startswith('[') else ': '}{where}" for where in inner]
        return items, found
    return value, []


def strict_json(data: Any) -> Any:
    """`data` as strict JSON values: every non-finite float is None, and the dict that holds it
    (directly or in a list) gets a key beside it, `"fitness": null, "fitness_why": "not finite: -inf"`
    (in a list: `"not finite: [3]: nan; [5]: inf"`), which `from_strict_json` reads back.
    A non-finite number outside any dict (a top-level list) is only null."""
    if not isinstance(data, dict):
        return _strict(data)[0]
    out: dict = {}
    for key, value in data.items():
        out[key], found = _strict(value)
        if found:
            out[f"{key}{WHY}"] = f"{NOT_FINITE}: {'; '.join(found)}"
    return out


def _restore(value: Any, why: str) -> Any:
    """`value` with the non-finite numbers of a why-line (see `strict_json`) put back."""
    for part in why[len(NOT_FINITE) + 2:].split("; "):
        where, _, number = part.rpartition(" ") if "]" in part else ("", "", part)
        if not where:
            return float(number)
        indices = [int(i) for i in where.rstrip(":").strip("[]").split("][")]
        target = value
        for i in indices[:-1]:
            target = target[i]
        target[indices[-1]] = float(number)
    return value


def from_strict_json(data: Any) -> Any:
    """What `strict_json` was given: each null with a why-key beside it back as its non-finite number.
    Files written before (with NaN/Infinity tokens, which `json.loads` accepts) come back as they were."""
    if isinstance(data, list):
        return [from_strict_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: from_strict_json(v) for k, v in data.items()}
    for key in [k for k in out if isinstance(k, str) and k.endswith(WHY)]:
        base, why = key[:-len(WHY)], out[key]
        if base in out and isinstance(why, str) and why.startswith(NOT_FINITE):
            try:
                out[base] = _restore(out[base], why)
            except (ValueError, IndexError, TypeError):
                continue  # not our why-line: leave both as they are
            del out[key]
    return out


def json_text(data: Any, indent: int | None = 1) -> str:
    """`data` as strict JSON text (no NaN or Infinity tokens, which strict parsers refuse): see `strict_json`."""
    return json.dumps(strict_json(data), indent=indent, allow_nan=False)


def atomic_write_json(path: Path, data: Any, indent: int | None = 1) -> None:
    """Write `data` as strict JSON (`json_text`) to `path`, atomically."""
    atomic_write_text(path, json_text(data, indent=indent))


@contextlib.contextmanager
def owned_folder(path: Path, command: str | None = None, what: str = "--out") -> Iterator[Path]:
    """Create `path` and hold it for this run of `command` ("evolve", "rank", "nas").

    A second run into it is refused in one line naming the running one's pid. The lock is the
    kernel's (flock): it goes with the process, so a killed run never leaves the folder locked. The
    lock file records the command, and a folder holding another command's outputs is refused: one
    run's files never mix with another command's (a folder of an older lpzero records none). A run
    that fails having written nothing leaves nothing it made: its lock file and the folders it created.
    """
    path = Path(path)
    made = _missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    new_lock, before = not lock.exists(), _entries(path)
    handle = open(lock, "a+")
    finished = False
    try:
        pid, owner = _lock(handle)
        if pid is not None:
            raise LPZeroError(f"{what} {path} is in use by another lpzero run (pid {pid}); wait for it to end or "
                              "choose another folder")
        if command is not None and owner not in (None, command) and _holds_outputs(path):
            raise LPZeroError(f"{what} {path} holds the outputs of an `lpzero {owner}` run; `lpzero {command}` "
                              "would mix its files with them: choose another folder")
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {command}" if command else str(os.getpid()))
        handle.flush()
        yield path
        finished = True
    finally:
        if not finished and new_lock and _entries(path) <= before:  # a failed run that wrote nothing
            _leave_nothing(path, made)
        handle.close()


def _lock(handle) -> tuple[str | None, str | None]:
    """Take the lock of `handle`: (None, the command the file records) once taken, or (the pid that holds
    it, None) when another run does."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        return handle.read().split(" ")[0].strip() or "unknown", None
    handle.seek(0)
    _, _, owner = handle.read().strip().partition(" ")
    return None, owner or None


def _missing_folders(path: Path) -> list[Path]:
    """The folders of `path` that do not exist yet, deepest first (what creating it makes)."""
    missing = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    return missing


def _entries(path: Path) -> set[str]:
    """The names in `path` besides its lock file."""
    return {entry.name for entry in path.iterdir()} - {LOCK_FILE}


def _holds_outputs(path: Path) -> bool:
    """Whether `path` holds anything besides its lock file."""
    return bool(_entries(path))


def _leave_nothing(path: Path, made: list[Path]) -> None:
    """After a failed run that wrote nothing: remove the lock file it made, then the folders it made (deepest
    first) while they are empty. A run that wrote checkpoints keeps them, and its lock, for --resume."""
    (path / LOCK_FILE).unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # not empty (another process put something there): leave it
            return


def check_folder(path: Path) -> None:
    """An OSError naming `path` now, before any work, where it cannot be made or used as a folder: an
    existing part of it that is a file, a name longer than the file system allows, or (for a part still
    to be made) a parent folder this process cannot write."""
    path = Path(path).absolute()
    existing = path
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    missing = path.relative_to(existing).parts
    longest = os.pathconf(existing, "PC_NAME_MAX")
    if any(len(os.fsencode(part)) > longest for part in missing):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
    if missing and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


def remove_outputs(folder: Path, names: Iterable[str]) -> None:
    """Remove an earlier run's outputs (files or folders) from `folder`, so it never holds two runs' files."""
    for name in names:
        target = Path(folder) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
