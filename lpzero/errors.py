"""Errors lpzero reports to the user as one line (the CLI catches these)."""
from __future__ import annotations

from benchmarks import BenchmarkError
from primitives import PrimitiveError


class LPZeroError(Exception):
    """Bad input at the search/report layer: a missing cache, a malformed best.json."""


#: every error the CLI turns into a one-line message and exit code 2
USER_ERRORS = (LPZeroError, BenchmarkError, PrimitiveError)
