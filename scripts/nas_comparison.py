"""Tabular NAS with a proxy against the ground truth: regret under parameter budgets, and front hypervolume.

    python scripts/nas_comparison.py                       # GPT-2 200 and FlexiBERT 500
    python scripts/nas_comparison.py --benchmarks gpt2 --out runs/nas_comparison

For each benchmark: every architecture is scored by the found proxy exactly (from its model,
as `lpzero nas --space tabular:BENCH --proxy runs/BENCH/best.json` does, on the batch the
proxy was found with), by the parameter count (`num_params`, total parameters), by
`decoder_params` and by the best cached hand-designed proxy. For budgets at 25 / 50 / 75% of
the parameter range, each proxy picks its highest-scoring architecture within budget; its
regret is the ground truth of the best architecture within budget minus that of the pick
(GPT-2: perplexity points, FlexiBERT: GLUE points). The hypervolume ratio is that of the
proxy's Pareto set over (proxy score, parameters), measured over (ground truth, parameters),
as a fraction of the true front's (reference point: worst ground truth, largest model). A proxy
that grows with the parameter count has a large front (the parameter count's own front is every
architecture, so its ratio is 1 by construction): read the ratio beside the front's size and the
regrets. The dense mean regret averages the regret over 100 budgets spread over the range.

The found proxy's exact scores are kept in `<out>/scores_<benchmark>.json`, so a second run
builds no model. Writes nas_comparison.csv (per budget), nas_comparison_summary.csv,
nas_comparison.png, and prints the table.
"""
from __future__ import annotations

import csv
import io
import json
from functools import partial
from pathlib import Path

import click
import numpy as np
import torch
from matplotlib.figure import Figure

from lpzero.cache import CacheSettings, InputCache
from lpzero.executors import make_executor
from lpzero.files import atomic_write, atomic_write_json, atomic_write_text
from lpzero.nas import (EvalSettings, TabularSpace, budget_regret, evaluate_candidate, front_hypervolume_ratio,
                        pareto_mask, proxy_spec)
from lpzero.report import best_baseline
from lpzero.search import correlation

FRACTIONS = (0.25, 0.5, 0.75)
#: budgets evenly spread over the parameter range for the dense mean regret
DENSE = 100


def found_scores(space: TabularSpace, best_path: Path, out: Path, jobs: int) -> dict[str, float]:
    """The found proxy's exact score of every architecture (kept in out/scores_<benchmark>.json)."""
    path = out / f"scores_{space.benchmark_name}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved["proxy"] == str(best_path) and set(saved["scores"]) == set(space.ids):
            return saved["scores"]
    proxy = proxy_spec(str(best_path))
    cache = json.loads(best_path.read_text())["cache"]  # the batch the proxy was found with
    settings = EvalSettings(cache["batch_size"], cache["seq_len"], cache["batch_seed"], cache["model_seed"])
    with make_executor(None, jobs) as executor:
        results = executor.map(partial(evaluate_candidate, space=space, proxy=proxy, settings=settings), space.ids)
        scores = {k: (np.nan if r.score is None else r.score) for k, r in zip(space.ids, results)}
    atomic_write_json(path, {"proxy": str(best_path), "settings": settings.record(), "scores": scores})
    return scores


def compare(name: str, runs: Path, out: Path, jobs: int) -> tuple[list[dict], list[dict], dict]:
    space = TabularSpace(name)
    bench = space.bench
    ids = space.ids
    truth = np.array([bench.architecture(a).ground_truth for a in ids])
    params = np.array([space.count_params({"id": a})["total"] for a in ids], dtype=float)
    cache = InputCache(CacheSettings.for_benchmark(bench))
    infos = [cache.info(a)["baselines"] for a in ids]
    proxies = {"found proxy": np.array([found_scores(space, runs / name / "best.json", out, jobs)[a] for a in ids]),
               "num_params": np.array([i["num_params"] for i in infos]),
               "decoder_params": np.array([i["decoder_params"] for i in infos])}
    best = best_baseline(cache, ids, truth)
    if best and best["proxy"] not in proxies:
        sign = 1 if best["spearman"] > 0 else -1
        proxies[f"best hand-designed ({best['proxy']})"] = sign * np.array([i[best["proxy"]] for i in infos])
    lo, hi = params.min(), params.max()
    rows, summary = [], []
    for proxy, score in proxies.items():
        regrets = []
        for q in FRACTIONS:
            budget = lo + q * (hi - lo)
            r = budget_regret(score, truth, params, budget)
            regrets.append(r["regret"])
            rows.append({"benchmark": name, "proxy": proxy, "budget_fraction": q, "budget_params": int(budget),
                         "pick": ids[r["pick"]], "pick_truth": r["pick_truth"], "pick_params": int(params[r["pick"]]),
                         "best": ids[r["best"]], "best_truth": r["best_truth"], "regret": r["regret"]})
        dense = [budget_regret(score, truth, params, b)["regret"] for b in np.linspace(lo, hi, DENSE + 1)[1:]]
        summary.append({"benchmark": name, "proxy": proxy, "spearman": correlation(score, truth)["spearman"],
                        "mean_regret": float(np.mean(regrets)), "mean_regret_dense": float(np.mean(dense)),
                        "hypervolume_ratio": front_hypervolume_ratio(score, truth, params),
                        "front_size": int(pareto_mask(score, params[:, None]).sum()), "n": len(ids)})
    plot = {"truth": truth, "params": params, "proxies": proxies, "rows": rows, "raw": bench.raw_metric}
    return rows, summary, plot


def to_csv(rows: list[dict]) -> str:
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return text.getvalue()


def draw(plots: dict[str, dict], path: Path) -> None:
    """Per benchmark: ground truth against parameters; the true front, the found proxy's front and picks."""
    fig = Figure(figsize=(6 * len(plots), 4.5))
    for ax, (name, p) in zip(fig.subplots(1, len(plots), squeeze=False)[0], plots.items()):
        t, c = p["truth"], p["params"]
        ax.scatter(c, t, s=6, color="0.7", label="architectures")
        true = pareto_mask(t, c[:, None])
        order = np.argsort(c[true])
        ax.step(c[true][order], t[true][order], where="post", color="k", lw=1, label="true front")
        found = pareto_mask(p["proxies"]["found proxy"], c[:, None])
        ax.scatter(c[found], t[found], s=16, color="C3", label="found proxy's front", zorder=3)
        for proxy, marker, color in (("found proxy", "*", "C3"), ("num_params", "s", "C0")):
            picks = [r for r in p["rows"] if r["proxy"] == proxy]
            ax.scatter([r["pick_params"] for r in picks], [r["pick_truth"] for r in picks], marker=marker, s=90,
                       color=color, edgecolor="k", zorder=5 if marker == "*" else 4,
                       label=f"{proxy}: picks at 25/50/75%")
        for r in p["rows"]:
            if r["proxy"] == "found proxy":
                ax.axvline(r["budget_params"], color="0.5", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (total)")
        ax.set_ylabel(f"ground truth (higher = better; {p['raw']})")
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--benchmarks", default="gpt2,flexibert", show_default=True)
@click.option("--runs", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Folder holding <benchmark>/best.json.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/nas_comparison", show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes scoring the found proxy.")
def main(benchmarks: str, runs: str, out: str, jobs: int) -> None:
    torch.set_num_threads(1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, summary, plots = [], [], {}
    for name in benchmarks.split(","):
        r, s, plot = compare(name, Path(runs), out_dir, jobs)
        rows += r
        summary += s
        plots[name] = plot
    atomic_write_text(out_dir / "nas_comparison.csv", to_csv(rows))
    atomic_write_text(out_dir / "nas_comparison_summary.csv", to_csv(summary))
    draw(plots, out_dir / "nas_comparison.png")

    click.echo(f"{'benchmark':<10} {'proxy':<38} {'ρ':>6} {'regret 25%':>10} {'50%':>7} {'75%':>7} {'mean':>7} "
          f"{'dense':>7} {'HV':>6} {'front':>7}")
    for s in summary:
        reg = [r["regret"] for r in rows if r["benchmark"] == s["benchmark"] and r["proxy"] == s["proxy"]]
        click.echo(f"{s['benchmark']:<10} {s['proxy']:<38} {s['spearman']:>6.3f} {reg[0]:>10.3f} {reg[1]:>7.3f} "
              f"{reg[2]:>7.3f} {s['mean_regret']:>7.3f} {s['mean_regret_dense']:>7.3f} {s['hypervolume_ratio']:>6.3f} "
              f"{s['front_size']:>3}/{s['n']}")
    click.echo("(regret: ground-truth points below the best architecture within budget, GPT-2 perplexity, FlexiBERT GLUE; "
          f"dense: mean over {DENSE} budgets spread over the range; HV: hypervolume of the proxy's front over "
          "(ground truth, parameters) / the true front's; front: size of the proxy's Pareto set)")
    click.echo(f"written: {out_dir}/nas_comparison.csv, nas_comparison_summary.csv, nas_comparison.png, scores_*.json")


if __name__ == "__main__":
    main()
