"""Options several commands share, each read into its settings object, and the progress bars.

Defaults come from the settings dataclasses (`BenchmarkRequest`, `CacheRequest`,
`ExecutorSettings`), so the CLI and the Python API cannot disagree. A command's
function receives the options as keyword arguments and turns them into settings
with `benchmark_request`, `cache_request` and `executor_settings`.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource
from tqdm import tqdm

from lpzero.benchmarks.checkpoints import DTYPES
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache.request import CacheRequest
from lpzero.executors import EXECUTORS, ExecutorSettings
from lpzero.settings import field_range

#: seconds between progress-bar redraws (a redirected log gets a line per redraw)
PROGRESS_INTERVAL = 2.0
POSITIVE = click.IntRange(min=1)


def default(settings: type, name: str) -> Any:
    """The default of field `name` of a settings dataclass (the one place it is written)."""
    for f in fields(settings):
        if f.name == name:
            return f.default
    raise KeyError(name)


def ranged(settings: type, name: str) -> click.ParamType:
    """The click type of field `name` of a settings dataclass: its declared range (`lpzero.settings.bounded`),
    an integer or a float range by the type of its default."""
    allowed = field_range(settings, name)
    if allowed is None:
        raise KeyError(f"{settings.__name__}.{name} declares no range")
    kind = click.IntRange if isinstance(default(settings, name), int) else click.FloatRange
    return kind(allowed.min, allowed.max, min_open=allowed.min_open, max_open=allowed.max_open)


def _apply(fn: Callable, options: list) -> Callable:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def benchmark_options(fn: Callable) -> Callable:
    """--data, --hidden-size-compat, --adapter, --space-file, --dtype, --text, --allow-param-mismatch."""
    return _apply(fn, [
        click.option("--data", type=click.Path(), default=None,
                     help="Data root (default: $LPZERO_DATA, else ../shared/data)."),
        click.option("--hidden-size-compat", is_flag=True,
                     help="FlexiBERT: build every model at hidden size 256, as the original proxy code did."),
        click.option("--adapter", type=click.Path(exists=True, file_okay=False), default=None,
                     help="lonas:CHECKPOINT: a local peft adapter directory of the super-network."),
        click.option("--space-file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="lonas:CHECKPOINT: a search-space JSON (space.json's format; default: the directory's "
                          "space.json, else LoNAS's rules applied to config.json and the adapter)."),
        click.option("--dtype", type=click.Choice(DTYPES), default=None,
                     help="LoNAS and hf: tables: the dtype models load in (default auto: a checkpoint's own, float32 "
                          "for models built from configs)."),
        click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="LoNAS and hf: tables: a text file for the mini-batches (default: the table's, else the "
                          "shipped WikiText-2)."),
        click.option("--allow-param-mismatch", is_flag=True,
                     help="LTS: go on when our builder does not reproduce the directory's own parameter counts."),
    ])


def executor_options(fn: Callable) -> Callable:
    """--jobs, --executor, --ray-address, --gpus-per-task."""
    return _apply(fn, [
        click.option("--jobs", type=POSITIVE, default=default(ExecutorSettings, "jobs"), show_default=True,
                     help="Architectures computed in parallel (processes on this machine)."),
        click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                     help="Where per-architecture work runs (default: local for --jobs 1, else process)."),
        click.option("--ray-address", default=None, help="Ray cluster for --executor ray ('auto': the one `ray start` "
                                                         "runs; default: a new local one)."),
        click.option("--gpus-per-task", type=click.FloatRange(min=0), default=default(ExecutorSettings, "gpus_per_task"),
                     show_default=True, help="GPUs each Ray task asks for."),
    ])


def cache_options(fn: Callable) -> Callable:
    """The cache, mini-batch, device, executor and architecture-selection options."""
    fn = executor_options(fn)
    return _apply(fn, [
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Cache root (default: $LPZERO_CACHE or .lpzero_cache)."),
        click.option("--batch-size", type=POSITIVE, default=None, help="Mini-batch size (default: the benchmark's CPU default)."),
        click.option("--seq-len", type=POSITIVE, default=None, help="Sequence length (default: the benchmark's CPU default)."),
        click.option("--paper-batch", is_flag=True, help="Use the paper's mini-batch shape (GPT-2 16x192, BERT 128 seqs)."),
        click.option("--batch-seed", type=int, default=default(CacheRequest, "batch_seed"), show_default=True,
                     help="Seed of the mini-batch."),
        click.option("--model-seed", type=int, default=default(CacheRequest, "model_seed"), show_default=True,
                     help="Seed of the random weights."),
        click.option("--samples", type=POSITIVE, default=default(CacheRequest, "samples"), show_default=True,
                     help="Elements kept per cached tensor."),
        click.option("--device", default=default(CacheRequest, "device"), show_default=True, help="cpu or cuda (cuda:N)."),
        click.option("--limit", type=POSITIVE, default=None, help="Only N architectures (a seeded subset, the same "
                                                                  "for every command)."),
        click.option("--ids", default=None, help="Comma-separated architecture ids."),
    ])


def benchmark_request(name: str, kw: dict) -> BenchmarkRequest:
    """The benchmark options of `kw` (popped) as a `BenchmarkRequest` of `name`."""
    adapter, space_file = kw.pop("adapter", None), kw.pop("space_file", None)
    return BenchmarkRequest(name, data=kw.pop("data", None), hidden_size_compat=kw.pop("hidden_size_compat", False),
                            adapter=None if adapter is None else str(Path(adapter).resolve()),
                            space_file=None if space_file is None else str(Path(space_file).resolve()),
                            dtype=kw.pop("dtype", None), text=kw.pop("text", None), limit=kw.pop("limit", None),
                            ids=kw.pop("ids", None), allow_param_mismatch=kw.pop("allow_param_mismatch", False))


def cache_request(kw: dict) -> CacheRequest:
    """The cache options of `kw` (popped) as a `CacheRequest`."""
    return CacheRequest(**{f.name: kw.pop(f.name) for f in fields(CacheRequest) if f.name in kw})


def executor_settings(kw: dict) -> ExecutorSettings:
    """The executor options of `kw` (popped) as `ExecutorSettings`."""
    return ExecutorSettings(kw.pop("executor", None), kw.pop("jobs", 1), kw.pop("ray_address", None),
                            kw.pop("gpus_per_task", 0))


def quick(ctx: click.Context, kw: dict, values: dict) -> None:
    """`--quick`: `values` (option -> quick value) into `kw` wherever the user gave none (explicit options win).

    The quick batch's sequence length is shortened to the benchmark's positions where they are fewer.
    """
    for name, value in values.items():
        if name in ("batch_size", "seq_len"):
            if kw.get(name) is None:
                kw[name] = value
                kw["within_positions"] = kw.get("within_positions", False) or name == "seq_len"
        elif ctx.get_parameter_source(name) == ParameterSource.DEFAULT:
            kw[name] = value


class StageBars:
    """A `Progress` shown as one tqdm bar per stage, one stage at a time (use as a context manager)."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int, postfix: str | None = None) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():  # the finished stage's bar is done
                other.close()
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="it", mininterval=PROGRESS_INTERVAL)
        if total and bar.total != total:
            bar.total = total
        if postfix:
            bar.set_postfix_str(postfix, refresh=False)
        bar.update(done - bar.n)

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()
