"""How fast `lpzero nas` scores open-space candidates, where the time goes, and how it scales with workers.

    python scripts/bench_nas.py                                   # 100 LTS candidates, 1 and 2 workers
    python scripts/bench_nas.py --candidates 30 --workers 1 --costs params,flops

Scores the same random candidates (distinct architectures, drawn with --seed) with the
found proxy as `lpzero nas` does (`evaluate_candidate` on an executor), first in this
process with the time of each stage (parameter count, model build, FLOPs, input pass,
proxy arithmetic), then on process pools of each --workers size. Every process runs
one torch thread. Writes `bench_nas.json` to --out and prints the tables.
"""
from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import click
import torch

from lpzero.executors import TaskFailure, make_executor
from lpzero.files import atomic_write_json
from lpzero.nas import EvalSettings, evaluate_candidate, get_space, proxy_spec

STAGES = ("params", "build", "flops", "latency", "pass", "proxy")


def candidates(space, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    keys: dict[str, None] = {}
    while len(keys) < n:
        keys.setdefault(space.key(space.decode([rng.randrange(c) for c in space.choices()])), None)
    return list(keys)


def run(keys, space, proxy, settings, workers: int) -> tuple[float, dict]:
    executor = make_executor("local" if workers == 1 else "process", workers)
    t = time.perf_counter()
    with executor:
        results = dict(executor.imap_unordered(evaluate_candidate, keys, space, proxy, settings))
    wall = time.perf_counter() - t
    failed = [r for r in results.values() if isinstance(r, TaskFailure)]
    if failed:
        raise click.ClickException(f"{len(failed)} candidates failed, e.g. {failed[0].item}: {failed[0].error}")
    return wall, results


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--space", "space_name", default="lts", show_default=True)
@click.option("--proxy", "proxy_text", default="runs/gpt2/best.json", show_default=True)
@click.option("--candidates", "n_candidates", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True,
              help="lpzero nas --quick's batch size.")
@click.option("--seq-len", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--costs", default="params", show_default=True)
@click.option("--workers", default="1,2", show_default=True, help="Comma-separated pool sizes (1: this process).")
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench_nas", show_default=True)
def main(space_name: str, proxy_text: str, n_candidates: int, seed: int, batch_size: int, seq_len: int, costs: str,
         workers: str, out: str) -> None:
    torch.set_num_threads(1)

    space = get_space(space_name)
    proxy = proxy_spec(proxy_text)
    settings = EvalSettings(batch_size, seq_len, costs=tuple(costs.split(",")), cost_seq_len=192)
    keys = candidates(space, n_candidates, seed)
    report: dict = {"space": space.name, "proxy": proxy.record(), "candidates": len(keys),
                    "batch": [batch_size, seq_len], "costs": list(settings.costs), "scaling": []}
    for n_workers in [int(w) for w in workers.split(",")]:
        wall, results = run(keys, space, proxy, settings, n_workers)
        row = {"workers": n_workers, "seconds": wall, "candidates_per_second": len(keys) / wall}
        report["scaling"].append(row)
        click.echo(f"{n_workers} worker(s): {len(keys)} candidates in {wall:.1f} s = {row['candidates_per_second']:.2f}/s")
        if n_workers == 1:
            per = {s: [r["seconds"].get(s, 0.0) for r in results.values()] for s in STAGES}
            total = sum(sum(v) for v in per.values())
            report["stages"] = {s: {"mean_seconds": statistics.mean(v), "share": sum(v) / total}
                                for s, v in per.items() if any(v)}
            params = [r["params"] for r in results.values()]
            report["params"] = {"min": min(params), "median": statistics.median(params), "max": max(params)}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "bench_nas.json", report)

    if "stages" in report:
        click.echo(f"\nwhere the time goes (1 worker, mean per candidate; params {report['params']['min']:,} to "
              f"{report['params']['max']:,}, median {report['params']['median']:,.0f}):")
        click.echo(f"{'stage':<8} {'seconds':>8} {'share':>7}")
        for s, v in report["stages"].items():
            click.echo(f"{s:<8} {v['mean_seconds']:>8.3f} {v['share']:>7.1%}")
    click.echo(f"\n{'workers':>7} {'seconds':>8} {'cand/s':>7} {'speed-up':>8}")
    base = report["scaling"][0]["seconds"]
    for r in report["scaling"]:
        click.echo(f"{r['workers']:>7} {r['seconds']:>8.1f} {r['candidates_per_second']:>7.2f} {base / r['seconds']:>8.2f}")
    click.echo(f"written: {out_dir / 'bench_nas.json'}")


if __name__ == "__main__":
    main()
