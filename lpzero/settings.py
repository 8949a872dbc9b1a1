"""Ranges of numeric settings, declared once on the settings dataclass and read by every check.

A settings field that has a range is declared with `bounded(default, min=..., max=...)`; the
dataclass calls `check_ranges(self, "evolution")` in `__post_init__`, and the CLI builds its
option types from the same declaration (`lpzero.commands.options.ranged`), so a range is
written in one place and the Python API and the CLI cannot disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import LPZeroError

#: the metadata key under which a field's `Range` is kept
RANGE = "range"


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: from `min` to `max` (None: unbounded), ends open or closed."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def holds(self, value: float) -> bool:
        """Whether `value` is a finite number within the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.min is not None and (value <= self.min if self.min_open else value < self.min):
            return False
        return not (self.max is not None and (value >= self.max if self.max_open else value > self.max))

    def describe(self) -> str:
        """The range as a phrase: "at least 2", "in (0, 1]", "in [0, 1]"."""
        if self.max is None:
            return f"above {self.min:g}" if self.min_open else f"at least {self.min:g}"
        if self.min is None:
            return f"below {self.max:g}" if self.max_open else f"at most {self.max:g}"
        return f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}{')' if self.max_open else ']'}"


def bounded(default: Any, *, min: float | None = None, max: float | None = None, min_open: bool = False,
            max_open: bool = False) -> Any:
    """A dataclass field with `default` whose values must lie in the range (see `check_ranges`)."""
    return field(default=default, metadata={RANGE: Range(min, max, min_open, max_open)})


def field_range(settings: type, name: str) -> Range | None:
    """The `Range` declared for field `name` of a settings dataclass, or None."""
    for f in fields(settings):
        if f.name == name:
            return f.metadata.get(RANGE)
    raise KeyError(name)


def check_ranges(settings: object, what: str) -> None:
    """LPZeroError naming every field of `settings` outside its declared range ("invalid `what` settings: ...")."""
    problems = []
    for f in fields(settings):
        allowed = f.metadata.get(RANGE)
        value = getattr(settings, f.name)
        if allowed is not None and not allowed.holds(value):
            problems.append(f"{f.name} {value!r} ({allowed.describe()})")
    if problems:
        raise LPZeroError(f"invalid {what} settings: " + "; ".join(problems))


__all__ = ["RANGE", "Range", "bounded", "check_ranges", "field_range"]
