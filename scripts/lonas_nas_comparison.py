"""Pick a LoNAS sub-network under the heuristic's parameter budget four ways, and compare.

(a) NSGA-II maximising a proxy (a found `best.json`, or a baseline name), (b) NSGA-II
maximising the parameter count, (c) LoNAS's heuristic sub-network, (d) LoNAS-style
NSGA-II that evaluates each candidate's validation perplexity. (a), (b), (d) use the same
NSGA-II settings and seed. The validation text of (d) is the *end* of WikiText-2 test,
disjoint from the held-out windows of the ground truth (its beginning), which then
judge every pick: held-out perplexity and the wall time of each search, side by side.

    python scripts/lonas_nas_comparison.py --proxy runs/lonas/best.json --out runs/lonas_nas

Writes `comparison.csv`, `comparison.json` and `comparison.png` to --out, and prints the table.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import click
import torch
from matplotlib.figure import Figure

from lpzero.benchmarks.lonas import GROUND_TRUTH_FILE, perplexity, window_nll, windows
from lpzero.executors import LocalExecutor
from lpzero.files import atomic_write, atomic_write_json, atomic_write_text
from lpzero.nas import (CHECKPOINT_FILE, CandidateResult, EvalSettings, NASCheckpoint, NSGASettings,
                        build_nsga_toolbox, proxy_spec, run_nsga)
from lpzero.benchmarks.lonas.search_space import LoNASSearchSpace
from lpzero.workflows.nas import run_nas


def validation_evaluate(space: LoNASSearchSpace, val: torch.Tensor, budget: float):
    """An NSGA-II toolbox's `evaluate` whose score is minus the validation perplexity (LoNAS's search), under
    the budget."""
    bench = space.bench
    model, lonas = bench.supernetwork(), bench.space

    def evaluate(key: str) -> CandidateResult:
        config = space.config(key)
        t = time.perf_counter()
        params = space.count_params(config)["total"]
        feasible = params <= budget
        score = -perplexity(window_nll(model, lonas, config, val), val.shape[1]) if feasible else None
        return CandidateResult(score, feasible, max(0.0, (params - budget) / budget),
                               seconds={"evaluate": time.perf_counter() - t}, params=params)

    return evaluate


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--space", "space_name", default="lonas", show_default=True, help="lonas (lonas-mini) or lonas:DIR.")
@click.option("--proxy", "proxy_text", required=True, help="A found best.json, or a baseline name.")
@click.option("--population", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--generations", type=click.IntRange(min=0), default=12, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--val-windows", type=click.IntRange(min=1), default=256, show_default=True,
              help="Validation windows of (d), from the end of WikiText-2 test.")
@click.option("--data", type=click.Path(), default=None, help="Data root (default: $LPZERO_DATA, else ../shared/data).")
@click.option("--out", type=click.Path(file_okay=False), default="runs/lonas_nas", show_default=True)
def main(space_name: str, proxy_text: str, population: int, generations: int, seed: int, batch_size: int,
         seq_len: int, val_windows: int, data: str | None, out: str) -> None:
    space = LoNASSearchSpace(data, space_name.partition(":")[2] or None)
    bench = space.bench
    heuristic = bench.space.pick("heuristic")
    budget = space.count_params(heuristic)["total"]
    truth = json.loads((bench.path / GROUND_TRUTH_FILE).read_text())
    window = int(bench.base_config["max_position_embeddings"])
    test = windows(bench.stream("test"), window)
    held_out = test[: truth["tokens"] // window]
    val = test[-val_windows:]
    if len(held_out) + len(val) > len(test):
        raise click.BadParameter(f"{val_windows}: overlaps the {len(held_out)} held-out windows", param_hint="--val-windows")
    nsga = NSGASettings(population, generations, seed=seed)
    settings = EvalSettings(batch_size, min(seq_len, window), costs=("params",), limits={"params": budget})
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    picks = {}
    for label, proxy_text in (("proxy", proxy_text), ("params", "num_params")):
        t = time.perf_counter()
        summary = run_nas(space, proxy_spec(proxy_text), settings, nsga, out_dir / label, LocalExecutor())
        picks[label] = (summary["chosen"]["config"], time.perf_counter() - t, summary["evaluated"])
    picks["heuristic"] = (heuristic, 0.0, 0)
    toolbox = build_nsga_toolbox(space, nsga, 1, validation_evaluate(space, val, budget))
    checkpoint = NASCheckpoint(out_dir / "validation" / CHECKPOINT_FILE,
                               {"nsga": asdict(nsga), "space": space.name, "scores": "validation perplexity"})
    t = time.perf_counter()
    memo = run_nsga(toolbox, nsga, ("params",), checkpoint).memo
    valid = {k: r for k, r in memo.items() if r.feasible}
    best = max(valid, key=lambda k: valid[k].score)
    picks["validation"] = (space.config(best), time.perf_counter() - t, len(memo))

    model, lonas = bench.supernetwork(), bench.space
    rows = []
    for label, (config, seconds, evaluated) in picks.items():
        ppl = perplexity(window_nll(model, lonas, config, held_out), window)
        rows.append({"search": label, "subnetwork": space.describe(config), "params": space.count_params(config)["total"],
                     "heldout_ppl": ppl, "search_seconds": seconds, "evaluated": evaluated})
    reference = next(r for r in rows if r["search"] == "validation")
    for r in rows:
        r["ppl_vs_validation_pick"] = r["heldout_ppl"] / reference["heldout_ppl"] - 1
        r["speedup_vs_validation_search"] = (reference["search_seconds"] / r["search_seconds"]
                                             if r["search_seconds"] > 0 else math.inf)
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "comparison.csv", text.getvalue())
    atomic_write_json(out_dir / "comparison.json", {"budget_params": budget, "held_out_tokens": truth["tokens"],
                                                     "validation_tokens": int(val.numel()), "nsga": vars(nsga),
                                                     "proxy": proxy_text, "rows": rows})
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for r in rows:
        ax.scatter(r["search_seconds"], r["heldout_ppl"], label=r["search"])
    ax.set_xlabel("search wall time (s)")
    ax.set_ylabel("held-out perplexity of the pick")
    ax.set_title(f"{space.name}: picks within {budget:,} parameters")
    ax.legend()
    fig.tight_layout()
    atomic_write(out_dir / "comparison.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    click.echo(f"budget: {budget:,} parameters (the heuristic sub-network's); held-out {truth['tokens']:,} tokens")
    click.echo(f"{'search':<11} {'params':>10} {'held-out ppl':>13} {'vs (d)':>8} {'seconds':>8} {'evaluated':>9}")
    for r in rows:
        click.echo(f"{r['search']:<11} {r['params']:>10,} {r['heldout_ppl']:>13.3f} {r['ppl_vs_validation_pick']:>+8.2%} "
              f"{r['search_seconds']:>8.1f} {r['evaluated']:>9}")


if __name__ == "__main__":
    main()
