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
