"""The one error hierarchy of lpzero (imports nothing of lpzero, so every layer may use it).

Every error a user can cause (a missing file, a malformed config, an unknown name,
a value out of range) is an `LPZeroError`; the CLI prints its message as one line
and exits with code 2. Each layer raises its own subclass:
`lpzero.primitives.PrimitiveError`, `lpzero.benchmarks.BenchmarkError`, and the
ones below for the layers above the benchmarks.
"""
from __future__ import annotations


class LPZeroError(Exception):
    """Bad input: the message names the value or file and what is allowed."""


class UnknownNameError(LPZeroError):
    """A name (benchmark, proxy, toolbox, op, format, ...) that is not registered."""

    def __init__(self, what: str, name: object, known: "list[str] | tuple[str, ...]") -> None:
        self.what, self.name, self.known = what, name, tuple(known)
        super().__init__(f"unknown {what} {name!r} (known: {', '.join(map(str, self.known))})")


class CacheError(LPZeroError):
    """A cache that is missing an architecture or cannot be read."""


class ResultError(LPZeroError):
    """A run's output file (best.json, checkpoint.json) that cannot be used."""


class WriteError(LPZeroError, OSError):
    """An output file that could not be written (a full disk, a read-only folder), naming the file."""
