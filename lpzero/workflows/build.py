"""`lpzero build`: build a benchmark with its ground truth (an interrupted build resumes).

`BuildRequest` is the command's one settings object; `build(request)` builds the benchmark it names
in its folder (`lonas-mini`: `lpzero.benchmarks.lonas.build.build_lonas_mini`, then the analysis of
its ground truth's spread) and returns a `BuildResult`: the folder, the build's record and the name
to open it by.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lpzero.benchmarks import LONAS_MINI_DIR, resolve_data_root
from lpzero.benchmarks.lonas.build import build_lonas_mini
from lpzero.benchmarks.lonas.spread import record_spread
from lpzero.cache.request import Progress, check_device, no_progress
from lpzero.errors import UnknownNameError
from lpzero.executors import ExecutorSettings

#: what `lpzero build` builds
BUILDS = ("lonas-mini",)
#: where `--smoke` builds by default: never in the real build's folder, which `lonas-mini` opens
SMOKE_DIR = "lonas_mini_smoke"


@dataclass(frozen=True)
class BuildRequest:
    """Everything `lpzero build` is told: what to build, where, at which size, with which seed, on what."""

    name: str = "lonas-mini"
    #: the build's folder (None: ./lonas_mini, with `smoke` ./lonas_mini_smoke); a finished stage there is reused
    out: str | None = None
    #: a seconds-long toy size, for tests
    smoke: bool = False
    seed: int = 0
    device: str = "cpu"
    #: the data root (None: $LPZERO_DATA, else ../shared/data)
    data: str | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    def __post_init__(self) -> None:
        if self.name not in BUILDS:
            raise UnknownNameError("benchmark to build", self.name, BUILDS)


@dataclass
class BuildResult:
    """The built folder, the build's record (its stages, each with its facts and seconds) and the name that
    opens it (`lonas-mini`, or `lonas:FOLDER`)."""

    folder: Path
    state: dict
    open_as: str


def build(request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
    """Build what `request` names (see the module docstring)."""
    check_device(request.device)
    folder = Path(request.out or (SMOKE_DIR if request.smoke else LONAS_MINI_DIR))
    with request.executor.make() as executor:
        state = build_lonas_mini(folder, resolve_data_root(request.data), request.smoke, request.seed, request.device,
                                 progress, executor)
    record_spread(folder)
    open_as = "lonas-mini" if folder == Path(LONAS_MINI_DIR) else f"lonas:{folder}"
    return BuildResult(folder, state, open_as)


__all__ = ["BUILDS", "BuildRequest", "BuildResult", "SMOKE_DIR", "build"]
