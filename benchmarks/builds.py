"""Benchmarks lpzero builds itself, with a measured ground truth: what `lpzero build NAME` runs.

A family that can build a benchmark declares one `BuildRecipe` and registers it in `BUILDS`
(`lpzero.benchmarks`), e.g. `BUILDS.register("lonas-mini", "....lonas.build:LONAS_MINI")`: the
default folders, the build itself (resumable: an interrupted build finishes when run again), the
name that opens the result, and the one line that sums it up.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lpzero.executors import Executor
from lpzero.files import atomic_write_json

from .base import BenchmarkError, read_json_object

#: a build's record in its folder: its settings and each finished stage's facts and seconds
BUILD_FILE = "build.json"

#: a build's progress callback: (stage, done, total)
BuildProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BuildRecipe:
    """How one benchmark is built (see the module docstring)."""

    #: where it is built by default (relative to the working folder), and where `--smoke` builds
    folder: str
    smoke_folder: str
    #: (folder, data root, smoke, seed, device, progress, executor) -> the build's record (build.json)
    build: Callable[[Path, Path, bool, int, str, BuildProgress | None, Executor | None], dict]
    #: folder -> the benchmark name that opens it (its registered name where it is the default folder)
    open_as: Callable[[Path], str]
    #: the build's record -> one line of what was built and measured
    summary: Callable[[dict], str]


def recipe_check(obj: object) -> str | None:
    """Why `obj` is not a `BuildRecipe` (a registry's check), or None."""
    return None if isinstance(obj, BuildRecipe) else f"not a BuildRecipe: {obj!r:.60}"


class StagedBuild:
    """What every build in stages shares: `build.json` (settings that a resume must match, each finished
    stage's facts and seconds), progress ticks, and running the stages not yet finished.

    A subclass has `out` (the folder), `progress` and `state` (`read_state`'s record), and a stage that
    resumes from an interruption sets `earlier_seconds` to the time it had already spent.
    """

    out: Path
    progress: BuildProgress | None
    state: dict
    earlier_seconds: float = 0.0

    def read_state(self, expected: dict, **current: object) -> dict:
        """The folder's build.json, or a new record of `expected` and `current`; BenchmarkError where the folder
        holds a build with other `expected` settings (`current` ones, e.g. versions, are updated)."""
        path = self.out / BUILD_FILE
        expected = json.loads(json.dumps(expected))  # as JSON stores it (tuples become lists)
        if not path.is_file():
            return {**expected, **current, "stages": {}}
        state = read_json_object(path)
        if {k: state.get(k) for k in expected} != expected:
            raise BenchmarkError(f"{path}: a build with other settings is in {self.out} (seed/size/version "
                                 "differ); use another --out or remove it")
        if not isinstance(state.get("stages"), dict):
            raise BenchmarkError(f"{path}: stages is {state.get('stages')!r} (expected an object)")
        return {**state, **current}

    def tick(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def run_stages(self, stages: Sequence[tuple[str, Callable[[], dict | None]]]) -> dict:
        """Run each stage not yet recorded as finished, recording its facts and seconds; returns the record."""
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / BUILD_FILE, self.state)
        for stage, run in stages:
            if stage in self.state["stages"]:
                continue
            self.earlier_seconds = 0.0
            start = time.perf_counter()
            facts = run() or {}
            seconds = self.earlier_seconds + time.perf_counter() - start
            self.state["stages"][stage] = {"seconds": round(seconds, 1), **facts}
            atomic_write_json(self.out / BUILD_FILE, self.state)
        return self.state


__all__ = ["BUILD_FILE", "BuildProgress", "BuildRecipe", "StagedBuild", "recipe_check"]
