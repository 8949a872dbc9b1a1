"""Checkpoints: a run's state as one versioned JSON file, written atomically and read back checked.

Every resumable loop of lpzero (Algorithm 1 of the proxy search, NSGA-II, the exhaustive
pass of `lpzero nas`) saves and loads through here, so they share one behaviour:

- `write_checkpoint(path, fmt, data)` writes `{"version": fmt.version, **data}` atomically
  and as strict JSON (`lpzero.files`): an interrupted save leaves the previous checkpoint, and a
  non-finite number is null with a why-key beside it, read back as that number (a file of an
  older lpzero, with NaN/-Infinity tokens, reads the same).
- `read_checkpoint(path, fmt)` refuses a file of another version in one line naming both versions,
  and a damaged file (not JSON, a key missing, a value of the wrong form) with a
  `ResultError` naming the file and the key; `Checkpoint.read(key, convert)` converts
  one value under that rule.
- `differences(saved, now, may_change)` lists what a resumed run would change ("seed was
  42 then, 7 now"), and `require_same` refuses a resume that changes anything but the
  keys allowed to change (more iterations or generations, say).
- `random_state()` / `set_random_state(data)` (Python's `random`) and `numpy_state(rng)` /
  `set_numpy_state(rng, data)` (a numpy `Generator`, `RandomState` or `numpy.random`) are
  random states as JSON, so a resumed run draws the numbers an uninterrupted one would.

A record of any other loop fits the same way: a `CheckpointFormat` with its kind, version
and keys, and the two calls. LoNAS training stores tensors, so it saves `versioned(fmt, data)`
with `torch.save` and checks what `torch.load` gives back with `check_record`.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from lpzero.errors import LPZeroError, ResultError
from lpzero.files import atomic_write_json, from_strict_json

#: the key of the format version in every checkpoint file
VERSION_KEY = "version"
#: what a user can do about a checkpoint that cannot be resumed
FRESH = "delete it or start afresh without --resume"
#: how a changed value is shown when it was not in the checkpoint
ABSENT = "absent"
#: longest value shown in full in a difference line (fingerprints and lists of ids are cut)
SHOWN = 60


@dataclass(frozen=True)
class CheckpointFormat:
    """One kind of checkpoint: its name in messages, its version, the keys every file of it has."""

    kind: str
    version: int
    keys: tuple[str, ...] = ()
    #: the version of a file without a version key (written before the format was versioned); None: refused
    unversioned: int | None = None


class Checkpoint:
    """A loaded checkpoint: its values by key, each read through `read` so a bad one is named."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data = Path(path), data

    def read(self, key: str, convert: Callable[[Any], Any] | None = None) -> Any:
        """`convert(value)` of `key` (the value itself without `convert`); ResultError naming the
        file and key if the key is missing or `convert` fails on the value (a built-in error of bad
        data, or an LPZeroError such as a tree that does not parse)."""
        if key not in self.data:
            raise ResultError(f"{self.path}: damaged checkpoint (no key {key!r}); {FRESH}")
        if convert is None:
            return self.data[key]
        try:
            return convert(self.data[key])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, LPZeroError) as e:
            raise ResultError(f"{self.path}: damaged checkpoint (key {key!r}: {type(e).__name__}: {e}); "
                              f"{FRESH}") from None

    def __getitem__(self, key: str) -> Any:
        return self.read(key)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def versioned(fmt: CheckpointFormat, data: Mapping[str, Any]) -> dict:
    """`data` (every key of `fmt`) with `fmt`'s version: what a checkpoint file holds, JSON or not."""
    missing = [k for k in fmt.keys if k not in data]
    if missing:
        # a caller's bug, not a user's: the file would be refused on load
        raise ValueError(f"{fmt.kind} checkpoint without {', '.join(missing)}")
    return {VERSION_KEY: fmt.version, **data}


def write_checkpoint(path: Path, fmt: CheckpointFormat, data: Mapping[str, Any]) -> None:
    """Write `data` (JSON values, every key of `fmt`) with `fmt`'s version to `path`, atomically."""
    atomic_write_json(Path(path), versioned(fmt, data), indent=None)


def read_checkpoint(path: Path, fmt: CheckpointFormat) -> Checkpoint:
    """The checkpoint at `path`, of `fmt`'s version and with all its keys; ResultError otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ResultError(f"{path}: cannot read the checkpoint ({e})") from None
    try:
        data = from_strict_json(json.loads(text))
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: damaged checkpoint (not JSON: line {e.lineno}: {e.msg}); {FRESH}") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: damaged checkpoint (not a JSON object); {FRESH}")
    return check_record(path, fmt, data)


def check_record(path: Path, fmt: CheckpointFormat, data: object) -> Checkpoint:
    """A checkpoint's content however it was read (JSON here; a torch file's dict for model weights),
    checked: of `fmt`'s version and with all its keys, else a ResultError naming `path`."""
    path = Path(path)
    if not isinstance(data, dict):
        raise ResultError(f"{path}: damaged checkpoint (not a record of keys and values); {FRESH}")
    version = data.get(VERSION_KEY, fmt.unversioned)
    if version != fmt.version:
        found = "no version" if version is None else f"version {version!r}"
        raise ResultError(f"{path}: {fmt.kind} checkpoint of {found}; this lpzero reads version {fmt.version}")
    missing = [k for k in fmt.keys if k not in data]
    if missing:
        raise ResultError(f"{path}: not an {fmt.kind} checkpoint (no key {missing[0]!r}); {FRESH}")
    return Checkpoint(path, data)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def differences(saved: Mapping, now: Mapping, may_change: Iterable[str] = (), prefix: str = "") -> list[str]:
    """"`key` was A then, B now" for each value of `now` that differs from the checkpoint's `saved`.

    Nested dicts are compared key by key and named with dots (`proxy.name`); keys in
    `may_change` (dotted names) are not compared. `now` is compared as JSON would store it
    (tuples as lists), so a value equal to the saved one never counts as changed.
    """
    if not prefix:
        now = json.loads(json.dumps(now))
    skip = set(may_change)
    out: list[str] = []
    for key in sorted(set(saved) | set(now), key=str):
        name = f"{prefix}{key}"
        if name in skip:
            continue
        a, b = saved.get(key, ABSENT), now.get(key, ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, skip, f"{name}.")
        elif a != b:
            shown = (ABSENT if v is ABSENT else _show(v) for v in (a, b))
            out.append("{} was {} then, {} now".format(name, *shown))
    return out


def require_same(path: Path, saved: Mapping, now: Mapping, may_change: Iterable[str] = ()) -> None:
    """ResultError listing the `differences` if a resumed run would change anything but `may_change`."""
    changed = differences(saved, now, may_change)
    if changed:
        raise ResultError(f"{path}: written with other settings: this run has other settings than the "
                          f"checkpoint's ({'; '.join(changed)}); resume with the checkpoint's settings, use another "
                          "output folder, or start afresh without --resume")


def random_state(state: tuple | None = None) -> list:
    """Python `random`'s state (the current one if `state` is None) as JSON: [version, internal, gauss]."""
    version, internal, gauss = random.getstate() if state is None else state
    return [version, list(internal), gauss]


def random_state_from_json(data: Any) -> tuple:
    """The `random.setstate` tuple of `random_state`'s JSON; ValueError or TypeError if it is not one."""
    if not isinstance(data, list) or len(data) != 3:
        raise ValueError(f"a random state is [version, internal state, gauss], not {_show(data)}")
    version, internal, gauss = data
    if not isinstance(internal, list) or not all(isinstance(x, int) and 0 <= x < 2 ** 32 for x in internal):
        # random.setstate would take a larger integer modulo 2**32: another state than the saved one
        raise TypeError("the internal random state is not a list of 32-bit unsigned integers")
    if not (gauss is None or isinstance(gauss, float)):
        raise TypeError(f"the random state's gauss value is {_show(gauss)}, not a number or null")
    state = (version, tuple(internal), gauss)
    random.Random().setstate(state)  # refuses a wrong length or version here, not halfway through a resume
    return state


def set_random_state(data: Any) -> None:
    """Restore Python `random`'s state from `random_state`'s JSON."""
    random.setstate(random_state_from_json(data))


def _plain(value: Any) -> Any:
    """numpy's state as JSON values (arrays and numpy integers have `tolist`)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.tolist() if hasattr(value, "tolist") else value


def numpy_state(rng: Any) -> dict:
    """The state of a numpy `Generator`, `RandomState` or the `numpy.random` module, as JSON."""
    state = rng.bit_generator.state if hasattr(rng, "bit_generator") else rng.get_state(legacy=False)
    return _plain(state)


def set_numpy_state(rng: Any, data: dict) -> None:
    """Restore what `numpy_state(rng)` returned into `rng` (numpy takes the lists for its arrays)."""
    if not isinstance(data, dict):
        raise TypeError(f"a numpy random state is a dict, not {type(data).__name__}")
    if hasattr(rng, "bit_generator"):
        rng.bit_generator.state = data
    else:
        rng.set_state(data)
