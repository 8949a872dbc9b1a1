"""`lpzero build`: build a benchmark with its ground truth (an interrupted build resumes).

`BuildRequest` is the command's one settings object; `build(request)` runs the `BuildRecipe` that
`lpzero.benchmarks.BUILDS` holds for the name (`lonas-mini`: a LoNAS super-network and its
sub-networks; `neox-mini`: GPT-NeoX models trained here) in its folder and returns a `BuildResult`:
the folder, the build's record and the name to open it by.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lpzero.benchmarks import BUILDS, BuildRecipe, resolve_data_root
from lpzero.cache.request import Progress, check_device, no_progress
from lpzero.executors import ExecutorSettings


@dataclass(frozen=True)
class BuildRequest:
    """Everything `lpzero build` is told: what to build, where, at which size, with which seed, on what."""

    name: str = "lonas-mini"
    #: the build's folder (None: the recipe's, e.g. ./lonas_mini; with `smoke` ./lonas_mini_smoke); a finished
    #: stage there is reused
    out: str | None = None
    #: a seconds-long toy size, for tests
    smoke: bool = False
    seed: int = 0
    device: str = "cpu"
    #: the data root (None: $LPZERO_DATA, else ../shared/data)
    data: str | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    def __post_init__(self) -> None:
        self.recipe()  # an unknown name fails here, listing the known ones

    def recipe(self) -> BuildRecipe:
        return BUILDS.get(self.name)

    def folder(self) -> Path:
        recipe = self.recipe()
        return Path(self.out or (recipe.smoke_folder if self.smoke else recipe.folder))


@dataclass
class BuildResult:
    """The built folder, the build's record (its stages, each with its facts and seconds), the name that
    opens it (`lonas-mini`, or `lonas:FOLDER`) and one line of what was built."""

    folder: Path
    state: dict
    open_as: str
    summary: str


def build(request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
    """Build what `request` names (see the module docstring)."""
    check_device(request.device)
    recipe, folder = request.recipe(), request.folder()
    with request.executor.make() as executor:
        state = recipe.build(folder, resolve_data_root(request.data), request.smoke, request.seed, request.device,
                             progress, executor)
    return BuildResult(folder, state, recipe.open_as(folder), recipe.summary(state))


__all__ = ["BuildRequest", "BuildResult", "build"]
