"""Scaling of the per-architecture work: cache build with 1 and 2 workers, process pool vs Ray,
and the extraction's overhead over a bare forward + backward pass.

    python scripts/bench_scaling.py --benchmark gpt2 --archs 12 --repeats 3

Builds the cache of `--archs` architectures (inputs only, no baselines) into fresh
folders with each executor and worker count, `--repeats` times, and prints the median
wall time and the speed-up of 2 workers over 1. A process pool is started for each
build (as each `lpzero cache` starts one); the Ray instance is started once per worker
count, so its first build pays the workers' start (a few seconds of imports each) and
later ones find them warm, as the later architectures of one long build do. Then, in this process, times for each
architecture a bare forward + backward of its model on the same batch against the
cache's work on it (forward + backward with the input hooks, sampling), alternately,
`--pass-repeats` times, and prints the median over architectures of the ratio of
their medians. Writes `scaling.csv` (one row per build) and `per_arch.csv` to `--out`.
"""
from __future__ import annotations

import csv
import random
import statistics
import tempfile
import time
from pathlib import Path

import click
import torch

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.cache import CACHE_THREADS, CacheSettings, EntryTask, InputCache, arch_seed, compute_entry, sample_inputs
from lpzero.executors import LocalExecutor, ProcessExecutor, RayExecutor


def _build(settings: CacheSettings, ids: list[str], executor) -> float:
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        InputCache(settings, Path(root)).compute(ids, executor=executor)
        return time.perf_counter() - start


def _ray_cluster(workers: int) -> None:
    """A local Ray instance with `workers` CPUs (one task each); its workers stay warm across repeats."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


def _bare_pass(bench, settings: CacheSettings, arch_id: str) -> float:
    """Seconds of building the model and one forward + backward on the cache's batch."""
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len)
    start = time.perf_counter()
    model = bench.build_model(arch_id, settings.model_seed)
    bench.loss(model, batch).backward()
    return time.perf_counter() - start


def _pass_times(bench, settings: CacheSettings, batch, arch_id: str) -> dict[str, float]:
    """Seconds of one architecture's bare pass, of the cache's work on it, and of that work's two parts."""
    bare = _bare_pass(bench, settings, arch_id)
    start = time.perf_counter()
    list(LocalExecutor().imap_unordered(compute_entry, [EntryTask(arch_id, True, ())], settings, "cpu"))
    cached = time.perf_counter() - start
    model = bench.build_model(arch_id, settings.model_seed)
    start = time.perf_counter()
    inputs = extract_inputs(bench, model, batch)
    extract = time.perf_counter() - start
    start = time.perf_counter()
    sample_inputs(inputs, settings.samples, arch_seed(arch_id, settings.model_seed))
    return {"bare_seconds": bare, "cache_seconds": cached, "extract_seconds": extract,
            "sample_seconds": time.perf_counter() - start}


@click.command()
@click.option("--benchmark", default="gpt2", show_default=True)
@click.option("--archs", type=click.IntRange(min=2), default=12, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--pass-repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Times each architecture's bare pass and cache work are measured (medians are kept).")
@click.option("--executors", default="process,ray", show_default=True,
              help="Executors to time ('' for the per-architecture breakdown alone).")
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench_scaling", show_default=True)
def main(benchmark: str, archs: int, repeats: int, pass_repeats: int, executors: str, out: str) -> None:
    bench = get_benchmark(benchmark)
    settings = CacheSettings.for_benchmark(bench)
    ids = sorted(random.Random(0).sample(bench.ids(), archs), key=bench.ids().index)
    rows = []
    for kind in [k for k in executors.split(",") if k]:
        medians = {}
        for workers in (1, 2):
            seconds = []
            if kind == "ray":
                _ray_cluster(workers)
            for repeat in range(repeats):
                executor = ProcessExecutor(workers) if kind == "process" else RayExecutor()
                with executor:
                    seconds.append(_build(settings, ids, executor))
                rows.append({"executor": kind, "workers": workers, "repeat": repeat, "seconds": seconds[-1],
                             "archs": archs})
            medians[workers] = statistics.median(seconds)
            click.echo(f"{kind:<8} {workers} worker(s): median {medians[workers]:.1f} s for {archs} architectures "
                       f"({archs / medians[workers]:.2f} arch/s; runs {', '.join(f'{s:.1f}' for s in seconds)})")
        click.echo(f"{kind:<8} speed-up of 2 workers over 1: {medians[1] / medians[2]:.2f}x")
    torch.set_num_threads(CACHE_THREADS)
    per_arch = []
    batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len)
    for arch_id in ids:
        # the bare pass and the cache's work alternate, so a slow spell of the machine falls on both
        runs = [_pass_times(bench, settings, batch, arch_id) for _ in range(pass_repeats)]
        row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        per_arch.append({"arch": arch_id, **row, "ratio": row["cache_seconds"] / row["bare_seconds"]})
    med = {k: statistics.median(r[k] for r in per_arch) for k in per_arch[0] if k != "arch"}
    click.echo(f"cache work / bare build + forward + backward, per architecture: median {med['ratio']:.2f}x "
               f"(min {min(r['ratio'] for r in per_arch):.2f}, max {max(r['ratio'] for r in per_arch):.2f})")
    click.echo(f"medians: bare build + forward + backward {med['bare_seconds']:.2f} s, forward + backward with the "
               f"input hooks {med['extract_seconds']:.2f} s, sampling {med['sample_seconds']:.2f} s")
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, table in (("scaling.csv", rows), ("per_arch.csv", per_arch)):
        if not table:
            continue
        with open(Path(out) / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    click.echo(f"written to {out}: " + ", ".join(n for n, t in (("scaling.csv", rows), ("per_arch.csv", per_arch)) if t))


if __name__ == "__main__":
    main()
