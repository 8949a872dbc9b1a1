"""One registry for every kind of named plugin: benchmarks, spaces, proxies, op tables, toolboxes, executors.

A `Registry` maps a name to an object. An entry is registered once (a second
registration of a name is refused, as NASLib's `@measure` does), either as the object
itself or as `"module:ATTR"` text imported when first asked for: the `lpzero` command
must not import transformers (seconds) to list its commands. Asked for a name, a
registry answers, in order:

1. a registered name (`"gpt2"`), or a registered prefix and its argument (`"lts:PATH"`:
   the prefix `lts` with the argument `PATH`);
2. an entry point of the registry's group (`lpzero.benchmarks`, `lpzero.spaces`,
   `lpzero.proxies`, `lpzero.ops`, `lpzero.toolboxes`, `lpzero.executors`), so another
   package registers a plugin with one line of its own metadata;
3. a user's object as `"package.module:ATTR"` or `"path/to/file.py:ATTR"`;

and otherwise raises an `UnknownNameError` that lists the known names. Imports nothing of
lpzero but its errors, so every layer may keep a registry.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import LPZeroError, UnknownNameError

T = TypeVar("T")
_MISSING = object()


def load_object(spec: str, what: str = "object", error: type[LPZeroError] = LPZeroError) -> Any:
    """The object named by `"package.module:ATTR"` or `"path/to/file.py:ATTR"` (one line of error if not)."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise error(f"{what} {spec!r} is not of the form module:NAME or file.py:NAME")
    if where.endswith(".py"):
        module = _file_module(Path(where), spec, what, error)
    else:
        try:
            module = importlib.import_module(where)
        # a user's module may fail in any way (SyntaxError, NameError, ...): one line, never a traceback;
        # importlib has already removed the failed module from sys.modules
        except (Exception, SystemExit) as e:
            raise error(f"{what} {spec!r}: module {where!r} cannot be imported: {import_failure(e)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise error(f"{what} {spec!r}: {where} has no attribute {attr!r}") from None


def _file_module(path: Path, spec: str, what: str, error: type[LPZeroError]):
    path = path.resolve()
    if not path.is_file():
        raise error(f"{path}: file not found ({what} {spec!r})")
    # one module per file, however often it is named
    name = f"lpzero_user_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    module = sys.modules.get(name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # before executing: dataclasses and pickling look it up
        try:
            module_spec.loader.exec_module(module)
        # a user's file may fail in any way (SyntaxError, NameError, a raise at import): one line naming the
        # file and the exception, and no half-executed module left for the next lookup to find
        except (Exception, SystemExit) as e:
            del sys.modules[name]
            raise error(f"{path}: cannot be imported: {import_failure(e, path)}") from None
    return module


def import_failure(e: BaseException, path: Path | None = None) -> str:
    """Why an import failed, on one line: the exception (its type unless an ImportError, whose message says
    it) and, for a file, the line of it that raised."""
    text = " ".join(str(e).split()) or "(no message)"
    reason = text if isinstance(e, ImportError) else f"{type(e).__name__}: {text}"
    if path is None or isinstance(e, SyntaxError):  # a SyntaxError names its line itself
        return reason
    lines = [frame.lineno for frame in traceback.extract_tb(e.__traceback__) if frame.filename == str(path)]
    return f"{reason} (line {lines[-1]})" if lines else reason


def object_path(obj: object) -> str | None:
    """`"module:ATTR"` under which `obj` can be imported again, or None (a lambda, a local object)."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", getattr(obj, "__name__", None))
    if not module or not name or "<" in name:
        return None
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{name}" if found is obj else None


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """What a name resolved to: the object, its argument (`PATH` of `"lts:PATH"`), and how it was found."""

    obj: T
    argument: str | None
    source: str  # "registered", "entry point" or "path"


class Registry(Generic[T]):
    """Named plugins of one kind (see the module docstring).

    `check(obj)` returns an error text for an object that is not of the kind (e.g. not a
    `Benchmark` subclass), or None; `forms` are extra accepted forms shown in errors
    (`"module:Class"`, `"file.py:Class"`).
    """

    def __init__(self, kind: str, group: str | None = None, error: type[LPZeroError] = LPZeroError,
                 unknown: type[UnknownNameError] = UnknownNameError,
                 check: Callable[[object], str | None] | None = None,
                 forms: tuple[str, ...] = ("module:NAME", "file.py:NAME")) -> None:
        self.kind, self.group, self.error, self.unknown, self.check, self.forms = kind, group, error, unknown, check, forms
        self._entries: dict[str, Any] = {}
        self._prefixes: set[str] = set()
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, obj: Any = _MISSING, *, prefix: bool = False, description: str = "") -> Any:
        """Register `obj` (or `"module:ATTR"` text) as `name`; without `obj`, a decorator.

        `prefix=True`: the entry also answers `"name:ARGUMENT"`. A name registered twice is refused.
        """
        if obj is _MISSING:
            def decorate(fn: Any) -> Any:
                self.register(name, fn, prefix=prefix, description=description)
                return fn
            return decorate
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        self._descriptions[name] = description
        if prefix:
            self._prefixes.add(name)
        return obj

    def names(self) -> list[str]:
        """Registered names (prefixes as `NAME:ARG`), then entry points, in registration order."""
        own = [f"{n}:ARG" if n in self._prefixes and n not in self._entries else n for n in self._entries]
        return own + [n for n in self._entry_point_names() if n not in self._entries]

    def is_prefix(self, name: str) -> bool:
        """Whether `name` is registered as a prefix (it answers `"name:ARGUMENT"`)."""
        return name in self._prefixes

    def descriptions(self) -> dict[str, str]:
        """Registered name -> its one-line description."""
        return dict(self._descriptions)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._entry_point_names()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def get(self, name: str) -> T:
        """The object `name` names (no argument allowed)."""
        found = self.lookup(name)
        if found.argument is not None:
            raise self.error(f"{self.kind} {name!r}: {name.partition(':')[0]} takes no argument")
        return found.obj

    def lookup(self, name: str) -> Lookup[T]:
        """Resolve `name` (a registered name or prefix, an entry point, or a path), loading it if needed."""
        if not isinstance(name, str) or not name:
            raise self.unknown(self.kind, name, self.names() + list(self.forms))
        if name in self._entries:
            return Lookup(self._load(name), None, "registered")
        head, sep, argument = name.partition(":")
        if sep and head in self._prefixes:
            return Lookup(self._load(head), argument, "registered")
        for ep in self._entry_points():
            if ep.name == name:
                try:
                    return Lookup(self._checked(ep.load(), f"entry point {name!r}"), None, "entry point")
                except (Exception, SystemExit) as e:  # another package's module, failing in any way
                    raise self.error(f"{self.kind} entry point {name!r} ({ep.value}) cannot be imported: "
                                     f"{import_failure(e)}") from None
        if sep:
            return Lookup(self._checked(load_object(name, self.kind, self.error), f"{self.kind} {name!r}"), None, "path")
        raise self.unknown(self.kind, name, self.names() + list(self.forms))

    def _load(self, name: str) -> T:
        obj = self._entries[name]
        if isinstance(obj, str):
            obj = self._checked(load_object(obj, self.kind, self.error), f"{self.kind} {name!r}")
            self._entries[name] = obj
        return obj

    def _checked(self, obj: Any, what: str) -> T:
        problem = self.check(obj) if self.check is not None else None
        if problem:
            raise self.error(f"{what} {problem}")
        return obj

    def _entry_points(self) -> list:
        return list(entry_points(group=self.group)) if self.group else []

    def _entry_point_names(self) -> list[str]:
        return sorted(ep.name for ep in self._entry_points())


def subclass_check(base: type) -> Callable[[object], str | None]:
    """A registry `check` accepting subclasses of `base` only."""
    def check(obj: object) -> str | None:
        if isinstance(obj, type) and issubclass(obj, base):
            return None
        return f"is not a subclass of {base.__module__.replace('.base', '')}.{base.__name__}"
    return check
