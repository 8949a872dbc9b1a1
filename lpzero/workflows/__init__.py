"""The workflows layer: each command's work end to end, one settings object in, one result object out.

| command | settings | function | result |
|---|---|---|---|
| `lpzero cache` | `CachingRequest` | `cache` | `CachingResult` |
| `lpzero rank` | `RankRequest` | `rank` | `RankResult` |
| `lpzero evolve` | `EvolveRequest` | `evolve` | `EvolveResult` |
| `lpzero nas` | `NASRequest` | `nas` | `NASResult` |
| `lpzero build` | `BuildRequest` | `build` | `BuildResult` |

A workflow opens and checks everything before any work, then calls the layers below: the
search (`lpzero.search`, `lpzero.nas`) decides, the report (`lpzero.report`) writes. The CLI
(`lpzero.commands`) and a Python script call these the same way.
"""
from __future__ import annotations

from .build import BuildRequest, BuildResult, build
from .cache import CachingRequest, CachingResult, cache
from .evolve import EvolveRequest, EvolveResult, evolve
from .nas import NASRequest, NASResult, nas, run_nas
from .rank import RankRequest, RankResult, rank

__all__ = ["BuildRequest", "BuildResult", "CachingRequest", "CachingResult", "EvolveRequest", "EvolveResult",
           "NASRequest", "NASResult", "RankRequest", "RankResult", "build", "cache", "evolve", "nas", "rank",
           "run_nas"]
