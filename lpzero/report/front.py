"""A search's complexity front as a file: reading `pareto_front.json` back and printing it.

A search writes its front (`lpzero.report.search`): the best tree at each complexity that beats
every simpler one, simplest first, each entry as `hall_of_fame.json`'s (complexity, search-part ρ,
formula, ...). `lpzero export RUN` prints it with `front_text`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from lpzero.errors import ResultError

#: the Pareto front's file in a search's folder (a list, simplest tree first)
FRONT_FILE = "pareto_front.json"
HALL_OF_FAME_FILE = "hall_of_fame.json"


def load_front(path: Path | str) -> list[dict]:
    """The Pareto front of a search: its folder, its `pareto_front.json` or the `hall_of_fame.json`
    beside it; ResultError naming the file if it is missing or malformed."""
    path = Path(path)
    if path.is_dir() or path.name == HALL_OF_FAME_FILE:
        path = (path if path.is_dir() else path.parent) / FRONT_FILE
    try:
        front = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: file not found (a search of this lpzero writes it beside best.json)") from None
    except (OSError, ValueError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(front, list) or not all(isinstance(e, dict) and {"complexity", "search_part", "formula"} <= set(e)
                                              for e in front):
        raise ResultError(f"{path}: not a Pareto front (a list of entries with complexity, search_part, formula)")
    for i, entry in enumerate(front):
        problem = _entry_problem(entry)
        if problem:
            raise ResultError(f"{path}: entry {i} of the front: {problem}")
    return front


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _entry_problem(entry: dict) -> str | None:
    """What is wrong with the form of one front entry (a hand-edited file), or None."""
    complexity, part, formula = entry["complexity"], entry["search_part"], entry["formula"]
    if not _number(complexity):
        return f"'complexity' must be a number, not {complexity!r:.40}"
    if part is not None and (not isinstance(part, dict) or not (part.get("spearman") is None
                                                                or _number(part["spearman"]))):
        return f"'search_part' must be an object whose 'spearman' is a number or null, not {part!r:.60}"
    if not isinstance(formula, str):
        return f"'formula' must be a text, not {formula!r:.40}"
    return None


def _rho(x: dict | None) -> str:
    return "n/a" if not x or x.get("spearman") is None else f"{x['spearman']:+.3f}"


def front_text(front: Sequence[dict]) -> str:
    """The front as plain text, one tree a line: complexity, search-part ρ, formula."""
    lines = [f"{'complexity':>10}  {'search-part ρ':>13}  formula"]
    lines += [f"{e['complexity']:>10}  {_rho(e['search_part']):>13}  {e['formula']}" for e in front]
    return "\n".join(lines)
