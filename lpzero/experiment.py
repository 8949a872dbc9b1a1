"""An evolution run end to end: split, cache, search, held-out report, outputs.

Protocol (issue "lpzero evolve"): the architectures are split (seeded) into a
search part and a held-out part; fitness is computed on `sample` architectures
drawn from the search part only. Algorithm 1 runs `runs` times on that sample
(seeds derived from the search's seed); the fittest trees of every run compete
in the final selection, on the whole search part. The report gives the found
proxy's ρ/τ on the held-out part and on the whole benchmark (the paper's
protocol), beside the best hand-designed proxy on the same held-out part.
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from deap import base, gp

from benchmarks import Benchmark

from .cache import InputCache
from .errors import LPZeroError
from .evolve import (EvolutionState, EvolveSettings, identity_function, rank_key, rps_counts, run_evolution,
                     write_log_csv)
from .export import proxy_formula
from .fitness import INVALID_FITNESS, Evaluation, FitnessEvaluator, is_valid_fitness, spearman_fitness
from .protection import active_nodes, guard_activity
from .protection import describe as describe_protection
from .toolbox import build_toolbox

#: identifies the primitive set a saved tree refers to; bump when op semantics change
PRIMITIVE_SET_VERSION = "1"
BEST_FILE = "best.json"


@dataclass
class SearchSetup:
    toolbox: str = "typed"
    sample: int = 50
    holdout: float = 0.5
    rps: bool = True
    n_unary: int = 2
    max_height: int = 8
    hall_of_fame: int = 10
    #: independent runs of Algorithm 1 (seeds from `run_seed`); the `hall_of_fame` fittest
    #: proxies of each compete in the final selection. 1 is the paper's single run.
    runs: int = 8
    #: how the final proxy is chosen from the hall of fame: "search" (highest ρ on the whole
    #: search part, of which the fitness sample is a subset) or "sample" (highest fitness)
    final_selection: str = "search"
    evolve: EvolveSettings = field(default_factory=EvolveSettings)


def split_architectures(ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(search part, held-out part), shuffled with `seed`; the held-out part is never searched."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    n_hold = int(round(holdout * len(order)))
    if n_hold >= len(order) or (holdout > 0 and n_hold == 0):
        raise LPZeroError(f"--holdout {holdout} leaves no architectures on one side of {len(order)}")
    return sorted(order[n_hold:], key=ids.index), sorted(order[:n_hold], key=ids.index)


def metrics(scores: np.ndarray, truth: np.ndarray) -> dict:
    ev = spearman_fitness(scores, truth, with_kendall=True)
    return {"spearman": ev.spearman, "kendall": ev.kendall, "n": int(len(truth)), "invalid_reason": ev.reason}


def evaluate_tree(pset: gp.PrimitiveSetTyped, tree, cache: InputCache, ids: list[str], truth: np.ndarray) -> dict:
    ev = FitnessEvaluator(pset, cache.load(ids), truth)
    return metrics(ev.scores(tree), truth)


def best_baseline(cache: InputCache, ids: list[str], truth: np.ndarray) -> dict | None:
    """The cached hand-designed proxy with the highest |ρ| on `ids`."""
    infos = [cache.info(a)["baselines"] for a in ids]
    names = set.intersection(*(set(i) for i in infos)) if infos else set()
    best = None
    for name in sorted(names):
        m = metrics(np.array([i[name] for i in infos]), truth)
        if m["spearman"] is not None and (best is None or abs(m["spearman"]) > abs(best["spearman"])):
            best = {"proxy": name, **m}
    return best


def run_seed(seed: int, run: int) -> int:
    """Seed of run `run` of a search seeded `seed`; run 0 uses `seed` itself, so a one-run
    search is exactly the paper's Algorithm 1 with that seed."""
    return seed if run == 0 else random.Random(f"lpzero-run-{seed}-{run}").getrandbits(31)


@dataclass
class SearchRuns:
    """The independent runs of Algorithm 1 of one search, on one fitness sample."""

    evaluator: FitnessEvaluator
    states: list[EvolutionState] = field(default_factory=list)
    toolboxes: list[base.Toolbox] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @property
    def pset(self) -> gp.PrimitiveSetTyped:
        return self.toolboxes[0].pset

    def finalists(self, per_run: int, distinct: str) -> list[tuple[int, object]]:
        """(run, tree) of the `per_run` fittest valid proxies of every run, fittest first.

        A proxy several runs found (same ranking of the sample, or same text) is listed
        once, as its smallest tree.
        """
        identity = identity_function(distinct, self.evaluator)
        chosen: dict = {}
        for run, state in enumerate(self.states):
            valid = [ind for ind in state.population if is_valid_fitness(ind.fitness.values)]
            for ind in valid[:per_run]:
                key = identity(ind)
                if key not in chosen or rank_key(ind) < rank_key(chosen[key][1]):
                    chosen[key] = (run, ind)
        return sorted(chosen.values(), key=lambda pair: rank_key(pair[1]))


def evolve_on(inputs: dict, truth: np.ndarray, setup: SearchSetup, out: Path | None = None, resume: bool = False,
              progress: Callable[[int, float], None] | None = None, customize: Callable | None = None) -> SearchRuns:
    """`setup.runs` runs of Algorithm 1 with fitness on `inputs`/`truth` (the search sample).

    Run r is seeded `run_seed(seed, r)` and checkpoints into `out/run_<r>/`. The runs share
    one evaluator, so a proxy any run has scored costs the others nothing. `customize(toolbox)`,
    if given, may re-register DEAP operators on each run's toolbox before its loop.
    `progress(done, best)` counts iterations over all runs.
    """
    if setup.runs < 1:
        raise LPZeroError(f"--runs must be at least 1 (got {setup.runs})")
    runs = SearchRuns(FitnessEvaluator(None, inputs, truth))
    best_so_far = INVALID_FITNESS
    for r in range(setup.runs):
        tb = build_toolbox(setup.toolbox, runs.evaluator, rps=setup.rps, n_unary=setup.n_unary,
                           max_height=setup.max_height, select_fraction=setup.evolve.top_fraction)
        runs.evaluator.pset = tb.pset
        if customize is not None:
            customize(tb)
        settings = replace(setup.evolve, seed=run_seed(setup.evolve.seed, r))

        def run_progress(it: int, best: float, done: int = r * settings.iterations) -> None:
            nonlocal best_so_far
            best_so_far = max(best_so_far, best)
            if progress is not None:
                progress(done + it, best_so_far)

        state = run_evolution(tb, runs.evaluator, settings, None if out is None else out / f"run_{r}",
                              resume=resume, progress=run_progress)
        runs.states.append(state)
        runs.toolboxes.append(tb)
        runs.seeds.append(settings.seed)
    return runs


def search_sample(ids: list[str], setup: SearchSetup) -> tuple[list[str], list[str], list[str]]:
    """(search part, held-out part, fitness sample drawn from the search part) of a run's seed."""
    seed = setup.evolve.seed
    search_ids, held_ids = split_architectures(ids, setup.holdout, seed)
    sample_ids = sorted(random.Random(seed + 1).sample(search_ids, min(setup.sample, len(search_ids))), key=ids.index)
    return search_ids, held_ids, sample_ids


FINAL_SELECTIONS = ("search", "sample")


def select_final(part_rho: Sequence[float | None], how: str) -> list[int]:
    """Order in which hall-of-fame trees (best sample fitness first) are offered as the found proxy.

    `part_rho[i]` is tree i's ρ, oriented as on the sample, on the whole search part (None
    if invalid there). "search" orders by it: fitness on 50 architectures cannot separate
    the hall of fame, and more search architectures can; "sample" keeps fitness order.
    """
    if how == "sample":
        return list(range(len(part_rho)))
    if how != "search":
        raise LPZeroError(f"unknown final selection {how!r} (known: {', '.join(FINAL_SELECTIONS)})")
    return sorted(range(len(part_rho)), key=lambda i: math.inf if part_rho[i] is None else -part_rho[i])


def run_search(bench: Benchmark, cache: InputCache, ids: list[str], setup: SearchSetup, out: Path,
               resume: bool = False, progress: Callable[[int, float], None] | None = None,
               customize: Callable | None = None) -> dict:
    """Run the search on `ids` (already cached) and write all outputs into `out` (`customize`: see `evolve_on`)."""
    seed = setup.evolve.seed
    search_ids, held_ids, sample_ids = search_sample(ids, setup)
    truth = {a: bench.architecture(a).ground_truth for a in ids}

    def gt(some: list[str]) -> np.ndarray:
        return np.array([truth[a] for a in some])

    out.mkdir(parents=True, exist_ok=True)
    runs = evolve_on(cache.load(sample_ids), gt(sample_ids), setup, out, resume, progress, customize)
    evaluator, pset = runs.evaluator, runs.pset

    held_inputs = FitnessEvaluator(pset, cache.load(held_ids), gt(held_ids))
    search_inputs = FitnessEvaluator(pset, cache.load(search_ids), gt(search_ids))
    all_inputs = FitnessEvaluator(pset, cache.load(ids), gt(ids))
    finalists = runs.finalists(setup.hall_of_fame, setup.evolve.distinct)
    if not finalists:
        invalid = sum((s.invalid for s in runs.states), Counter())
        raise LPZeroError(f"no valid proxy in {setup.runs} run(s) of {setup.evolve.iterations} iterations (invalid "
                          f"by reason: {dict(invalid)}); try more iterations or a larger --sample")
    part = [metrics(evaluator.details(ind).orientation * search_inputs.scores(ind), gt(search_ids))
            for _, ind in finalists]
    hof = []
    for i in select_final([m["spearman"] for m in part], setup.final_selection)[: setup.hall_of_fame]:
        run, ind = finalists[i]
        found: Evaluation = evaluator.details(ind)
        sign = found.orientation  # every figure below is of the oriented proxy, as its formula shows
        protection = [g.to_dict() for g in guard_activity(ind, pset, evaluator.inputs)]
        guarded = active_nodes(protection)
        hof.append({
            "tree": str(ind),
            "genes": ind.genes.to_dict() if hasattr(ind, "genes") else None,
            "orientation": sign,
            "run": run,
            "search": {"spearman": sign * found.spearman, "fitness": found.fitness, "n": len(sample_ids)},
            "search_part": part[i],
            "heldout": metrics(sign * held_inputs.scores(ind), gt(held_ids)),
            "whole": metrics(sign * all_inputs.scores(ind), gt(ids)),
            "formula": proxy_formula(ind, sign, "text", guarded=guarded),
            "latex": proxy_formula(ind, sign, "latex", guarded=guarded),
            "protection": protection,
        })
    rps = [rps_counts(tb) for tb in runs.toolboxes]
    best = {
        "lpzero_best_version": 1,
        "benchmark": cache.settings.benchmark,
        "toolbox": setup.toolbox,
        "primitive_set_version": PRIMITIVE_SET_VERSION,
        **hof[0],
        "baseline_heldout": best_baseline(cache, held_ids, gt(held_ids)),
        "split": {"seed": seed, "search": len(search_ids), "heldout": len(held_ids), "sample": len(sample_ids),
                  "search_ids": search_ids, "heldout_ids": held_ids, "sample_ids": sample_ids},
        "cache": {**asdict(cache.settings), "key": cache.settings.key()},
        "setup": {**asdict(setup)},
        "runs": [{"run": r, "seed": runs.seeds[r], "best_tree": str(state.population[0]),
                  "best_fitness": state.population[0].fitness.values[0]
                  if is_valid_fitness(state.population[0].fitness.values) else None,
                  "seconds": state.seconds}
                 for r, state in enumerate(runs.states)],
        "candidates": len(finalists),
        "rps": {"rejected": sum(c["rejected"] for c in rps), "gave_up": sum(c["gave_up"] for c in rps),
                "reasons": dict(sum((Counter(c["reasons"]) for c in rps), Counter()))},
        "invalid": dict(sum((s.invalid for s in runs.states), Counter())),
        "seconds": sum(s.seconds for s in runs.states),
    }
    (out / BEST_FILE).write_text(json.dumps(best, indent=1))
    (out / "hall_of_fame.json").write_text(json.dumps(hof, indent=1))
    write_log_csv(out / "log.csv", [s.log for s in runs.states])
    plot_evolution([s.log for s in runs.states], out / "evolution.png")
    (out / "report.md").write_text(report_text(best, hof))
    return best


def plot_evolution(logs: list[list[dict]], path: Path) -> None:
    """Best and median fitness per iteration, one pair of lines per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run, log in enumerate(logs):
        it = [r["iteration"] for r in log]
        ax.plot(it, [r["best"] for r in log], color="C0", alpha=0.7, lw=1, label="best |ρ|" if run == 0 else None)
        ax.plot(it, [r["median"] for r in log], color="C1", alpha=0.7, lw=1,
                label="median |ρ|" if run == 0 else None)
    if len(logs) > 1:
        ax.set_title(f"{len(logs)} runs")
    ax.set_xlabel("iteration")
    ax.set_ylabel("fitness (|Spearman ρ| on the search sample)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def report_text(best: dict, hof: list[dict]) -> str:
    h, w, b = best["heldout"], best["whole"], best["baseline_heldout"]
    n_runs = len(best["runs"])
    lines = [
        f"# lpzero evolve — {best['benchmark']} ({best['toolbox']} toolbox)",
        "",
        f"Found proxy: `{best['formula']}`",
        "",
        f"$$ {best['latex']} $$",
        "",
        "| set | n | Spearman ρ | Kendall τ |",
        "|---|---|---|---|",
        f"| search sample (fitness) | {best['search']['n']} | {_fmt(best['search']['spearman'])} | |",
        f"| search part | {best['search_part']['n']} | {_fmt(best['search_part']['spearman'])} | "
        f"{_fmt(best['search_part']['kendall'])} |",
        f"| held-out | {h['n']} | {_fmt(h['spearman'])} | {_fmt(h['kendall'])} |",
        f"| whole benchmark | {w['n']} | {_fmt(w['spearman'])} | {_fmt(w['kendall'])} |",
    ]
    if b:
        lines.append(f"| best hand-designed ({b['proxy']}), held-out | {b['n']} | {_fmt(b['spearman'])} | "
                     f"{_fmt(b['kendall'])} |")
    lines += [
        "",
        "ρ is oriented with ground truth higher = better (for GPT-2, minus perplexity).",
        describe_protection(best.get("protection", [])),
        "",
        f"RPS rejected {best['rps']['rejected']} offspring; invalid proxies by reason: {best['invalid']}.",
        f"Search time: {best['seconds']:.1f} s ({n_runs} run{'s' if n_runs > 1 else ''} of "
        f"{best['setup']['evolve']['iterations']} iterations).",
        "",
        "## Hall of fame",
        "",
        f"The first {len(hof)} of {best['candidates']} candidates (the {best['setup']['hall_of_fame']} fittest valid "
        f"proxies of each run) in the order of the final selection ({best['setup']['final_selection']}).",
        "",
        "| # | run | sample ρ | search-part ρ | held-out ρ | formula |",
        "|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(hof, 1):
        lines.append(f"| {i} | {e['run']} | {_fmt(e['search']['spearman'])} | {_fmt(e['search_part']['spearman'])} | "
                     f"{_fmt(e['heldout']['spearman'])} | `{e['formula']}` |")
    return "\n".join(lines) + "\n"


SPLIT_PARTS = ("all", "search", "heldout")


def split_ids(best: dict, part: str, ids: list[str]) -> list[str]:
    """The architectures of `ids` in one part ("all", "search", "heldout") of a run's split."""
    if part == "all":
        return ids
    if part not in SPLIT_PARTS:
        raise LPZeroError(f"unknown split part {part!r} (known: {', '.join(SPLIT_PARTS)})")
    saved = best.get("split", {}).get(f"{part}_ids")
    if saved is None:
        raise LPZeroError("this best.json does not list its split's architectures (written by an older "
                          "lpzero); run `lpzero evolve` again")
    unknown = sorted(set(saved) - set(ids))
    if unknown:
        raise LPZeroError(f"the run's {part} part has architectures outside the selection: {', '.join(unknown[:5])}")
    saved = set(saved)
    return [a for a in ids if a in saved]


def load_best(path: Path) -> dict:
    if not path.is_file():
        raise LPZeroError(f"{path}: file not found")
    try:
        best = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LPZeroError(f"{path}: malformed JSON (line {e.lineno}): {e.msg}") from None
    for key in ("tree", "primitive_set_version"):
        if key not in best:
            raise LPZeroError(f"{path}: not an lpzero best.json (no {key!r})")
    if best["primitive_set_version"] != PRIMITIVE_SET_VERSION:
        raise LPZeroError(f"{path}: written for primitive set version {best['primitive_set_version']}, "
                          f"this lpzero has {PRIMITIVE_SET_VERSION}")
    return best


def tree_inputs(tree: gp.PrimitiveTree) -> set[str]:
    """The input symbols (A, J, G, H, W, S) a tree reads."""
    return {node.value for node in tree if isinstance(node, gp.Terminal) and isinstance(node.value, str)}


def parse_tree(text: str):
    from primitives import OPS, build_primitive_set

    pset = build_primitive_set(OPS)
    try:
        return gp.PrimitiveTree.from_string(text, pset), pset
    except (KeyError, TypeError, IndexError) as e:
        raise LPZeroError(f"cannot parse proxy tree {text!r}: {e}") from None
