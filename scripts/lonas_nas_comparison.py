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

import argparse
import csv
import io
import json
import math
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from lpzero.benchmarks.lonas import perplexity, window_nll, windows
from lpzero.executors import LocalExecutor
from lpzero.files import atomic_write, atomic_write_json, atomic_write_text
from lpzero.nas import EvalSettings, Evaluator, NSGASettings, proxy_spec, run_nas, run_nsga
from lpzero.nas.lonas_space import LoNASSearchSpace


def validation_evaluator(space: LoNASSearchSpace, val: torch.Tensor, budget: float) -> Evaluator:
    """An Evaluator whose score is minus the validation perplexity (LoNAS's search), under the budget."""
    bench = space.bench
    model, lonas = bench.supernetwork(), bench.space

    def evaluate_many(keys: list[str]) -> dict[str, dict]:
        out = {}
        for key in keys:
            config = space.config(key)
            t = time.perf_counter()
            params = space.count_params(config)["total"]
            feasible = params <= budget
            score = -perplexity(window_nll(model, lonas, config, val), val.shape[1]) if feasible else None
            out[key] = {"score": score, "feasible": feasible, "violation": max(0.0, (params - budget) / budget),
                        "params": params, "seconds": {"evaluate": time.perf_counter() - t}}
        return out

    return Evaluator(evaluate_many, ("params",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="lonas", help="lonas (lonas-mini) or lonas:DIR")
    ap.add_argument("--proxy", required=True, help="a found best.json, or a baseline name")
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--generations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--val-windows", type=int, default=256, help="validation windows of (d), from the end of test")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/lonas_nas"))
    args = ap.parse_args()

    path = args.space.partition(":")[2] or None
    space = LoNASSearchSpace(args.data, path)
    bench = space.bench
    heuristic = bench.space.pick("heuristic")
    budget = space.count_params(heuristic)["total"]
    truth = json.loads((bench.path / "ground_truth.json").read_text())
    seq_len = int(bench.base_config["max_position_embeddings"])
    test = windows(bench.stream("test"), seq_len)
    held_out = test[: truth["tokens"] // seq_len]
    val = test[-args.val_windows:]
    if len(held_out) + len(val) > len(test):
        raise SystemExit(f"--val-windows {args.val_windows}: overlaps the {len(held_out)} held-out windows")
    nsga = NSGASettings(args.population, args.generations, seed=args.seed)
    settings = EvalSettings(args.batch_size, min(args.seq_len, seq_len), costs=("params",), limits={"params": budget})
    args.out.mkdir(parents=True, exist_ok=True)

    picks = {}
    for label, proxy_text in (("proxy", args.proxy), ("params", "num_params")):
        t = time.perf_counter()
        summary = run_nas(space, proxy_spec(proxy_text), settings, nsga, args.out / label, LocalExecutor())
        picks[label] = (summary["chosen"]["config"], time.perf_counter() - t, summary["evaluated"])
    picks["heuristic"] = (heuristic, 0.0, 0)
    evaluator = validation_evaluator(space, val, budget)
    t = time.perf_counter()
    run_nsga(space, evaluator, nsga, args.out / "validation")
    valid = {k: r for k, r in evaluator.memo.items() if r["feasible"]}
    best = max(valid, key=lambda k: valid[k]["score"])
    picks["validation"] = (space.config(best), time.perf_counter() - t, len(evaluator.memo))

    model, lonas = bench.supernetwork(), bench.space
    rows = []
    for label, (config, seconds, evaluated) in picks.items():
        ppl = perplexity(window_nll(model, lonas, config, held_out), seq_len)
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
    atomic_write_text(args.out / "comparison.csv", text.getvalue())
    atomic_write_json(args.out / "comparison.json", {"budget_params": budget, "held_out_tokens": truth["tokens"],
                                                     "validation_tokens": int(val.numel()), "nsga": vars(nsga),
                                                     "proxy": args.proxy, "rows": rows})
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for r in rows:
        ax.scatter(r["search_seconds"], r["heldout_ppl"], label=r["search"])
    ax.set_xlabel("search wall time (s)")
    ax.set_ylabel("held-out perplexity of the pick")
    ax.set_title(f"{space.name}: picks within {budget:,} parameters")
    ax.legend()
    fig.tight_layout()
    atomic_write(args.out / "comparison.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    print(f"budget: {budget:,} parameters (the heuristic sub-network's); held-out {truth['tokens']:,} tokens")
    print(f"{'search':<11} {'params':>10} {'held-out ppl':>13} {'vs (d)':>8} {'seconds':>8} {'evaluated':>9}")
    for r in rows:
        print(f"{r['search']:<11} {r['params']:>10,} {r['heldout_ppl']:>13.3f} {r['ppl_vs_validation_pick']:>+8.2%} "
              f"{r['search_seconds']:>8.1f} {r['evaluated']:>9}")


if __name__ == "__main__":
    main()
