"""The files of a search, written from its `SearchResult` (`lpzero evolve`'s outputs).

`write_search(out, result)` writes, into the search's folder: `hall_of_fame.json` (the finalists
in final-selection order), `pareto_front.json` (complexity vs search-part ρ, simplest first),
`log.csv`, `evolution.png`, `pareto_formulas.png`, `report.md` and, last, `best.json` (the
found proxy, see `lpzero.proxies.found_proxy`): a best.json means every other output is there.
Each tree's record (`TreeRecords`) holds its figures from the result, its simplified formula
and where its ops' guards were active on the fitness sample. A search on several benchmarks
writes the first benchmark's view at the top level of best.json (what `lpzero rank` and
`lpzero export` read) and every benchmark's figures under `"benchmarks"`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from lpzero.benchmarks import folder_name
from lpzero.files import atomic_write_json, atomic_write_text
from lpzero.primitives import op_table_path
from lpzero.search import Scored, SearchPart, SearchResult, SearchRuns
from lpzero.search.loop import raw_rank_key, write_log_csv

from .export import proxy_formula
from .front import FRONT_FILE, HALL_OF_FAME_FILE
from .markdown import report_text
from .plots import PARETO_PLOT, plot_evolution, plot_pareto
from .protection import active_nodes, guard_activity
from .results import BEST_FILE, BEST_VERSION, PRIMITIVE_SET_VERSION, best_baseline

#: what a search writes into its folder besides the runs' checkpoints (best.json last)
OUTPUTS = (HALL_OF_FAME_FILE, FRONT_FILE, "log.csv", "evolution.png", PARETO_PLOT, "report.md", BEST_FILE)


def default_out(names: Sequence[str], under: str = "runs") -> Path:
    """`runs/<benchmark>` (several: `runs/<first>+<second>...`), with the characters of `lts:PATH`-style
    names made safe for a folder name."""
    return Path(under) / "+".join(folder_name(name) for name in names)


class TreeRecords:
    """The record of each tree of a result, as hall_of_fame.json, pareto_front.json and best.json hold it;
    every figure is of the oriented proxy, as its formula shows. A tree of both the hall of fame and the
    front is made once."""

    def __init__(self, result: SearchResult) -> None:
        self.result = result
        self.inputs = result.sample_inputs  # guard activity is reported on the fitness sample
        self._made: dict[tuple[int, str], dict] = {}

    def __call__(self, scored: Scored) -> dict:
        key = (scored.run, str(scored.tree))
        if key not in self._made:
            self._made[key] = self._record(scored)
        return dict(self._made[key])

    def _record(self, scored: Scored) -> dict:
        result, ind = self.result, scored.tree
        found = ind.evaluation
        sign = found.orientation
        protection = [g.to_dict() for g in guard_activity(ind, result.pset, self.inputs, result.ops)]
        guarded = active_nodes(protection)
        record = {
            "tree": str(ind),
            "genes": ind.genes.to_dict() if hasattr(ind, "genes") else None,
            "orientation": sign,
            "run": scored.run,
            "complexity": scored.complexity,
            "search": {"spearman": sign * found.spearman, "fitness": found.fitness,
                       "n": len(result.parts[0].sample_ids)},
            "search_part": scored.search_part,
            "heldout": scored.first["heldout"],
            "whole": scored.first["whole"],
            "formula": proxy_formula(ind, sign, "text", result.ops, guarded),
            "latex": proxy_formula(ind, sign, "latex", result.ops, guarded),
            "protection": protection,
        }
        if len(result.parts) > 1:
            record["benchmarks"] = scored.figures
        return record


def search_records(result: SearchResult) -> tuple[dict, list[dict], list[dict]]:
    """(the best.json record, the hall of fame's records, the front's records) of a search's result."""
    records = TreeRecords(result)
    hof = [records(s) for s in result.hall_of_fame]
    front = [records(s) for s in result.front]
    found = records(result.chosen)
    first, setup = result.parts[0], result.setup
    per_benchmark = found.pop("benchmarks", None)
    best = {
        **_header(first, result),
        **found,
        "select": setup.select,
        **({"combine": setup.combine, "normalize": setup.normalize} if per_benchmark is not None else {}),
        **_benchmark_record(first, result),
    }
    if per_benchmark is not None:
        best["benchmarks"] = [{**fig, "ground_truth": f"{p.bench.raw_metric}, oriented higher = better",
                               **({"scale": result.scales[p.name]} if p.name in result.scales else {}),
                               **_benchmark_record(p, result)} for p, fig in zip(result.parts, per_benchmark)]
    best.update(_summary(result))
    return best, hof, front


def write_search(out: Path, result: SearchResult) -> dict:
    """Every output file of a search into `out` (best.json last); returns the best.json record."""
    best, hof, front = search_records(result)
    states = result.runs.states
    write_log_csv(out / "log.csv", [s.log for s in states])
    plot_evolution([s.log for s in states], out / "evolution.png")
    atomic_write_json(out / HALL_OF_FAME_FILE, hof)
    atomic_write_json(out / FRONT_FILE, front)
    plot_pareto(front, best["tree"], out / PARETO_PLOT)
    atomic_write_text(out / "report.md", report_text(best, hof, front))
    atomic_write_json(out / BEST_FILE, best)  # last: a best.json means every other output is there
    return best


def _header(first: SearchPart, result: SearchResult) -> dict:
    """The first keys of best.json: its version, benchmark, ground truth, toolbox and op table."""
    ops_path = op_table_path(result.ops)
    return {
        "lpzero_best_version": BEST_VERSION,
        "benchmark": first.cache.settings.benchmark,
        "ground_truth": f"{first.bench.raw_metric}, oriented higher = better",
        "toolbox": result.setup.toolbox,
        "primitive_set_version": PRIMITIVE_SET_VERSION,
        **({"ops": ops_path} if ops_path is not None else {}),  # absent: the built-in table
    }


def _benchmark_record(part: SearchPart, result: SearchResult) -> dict:
    """A benchmark's best hand-designed proxy held out, its split and its cache settings."""
    return {
        "baseline_heldout": best_baseline(part.cache, part.held_ids, part.gt(part.held_ids)),
        "split": {"seed": result.setup.evolve.seed, "search": len(part.search_ids), "heldout": len(part.held_ids),
                  "sample": len(part.sample_ids), "search_ids": part.search_ids, "heldout_ids": part.held_ids,
                  "sample_ids": part.sample_ids},
        "cache": {**asdict(part.cache.settings), "key": part.cache.settings.key()},
    }


def run_summaries(runs: SearchRuns) -> list[dict]:
    """Each run's seed, fittest tree and its raw fitness (|ρ| on the sample; None if invalid), seconds."""
    summaries = []
    for r, state in enumerate(runs.states):
        fittest = min(state.population, key=raw_rank_key)
        summaries.append({"run": r, "seed": runs.seeds[r], "best_tree": str(fittest),
                          "best_fitness": fittest.evaluation.fitness if fittest.evaluation.valid else None,
                          "seconds": state.seconds})
    return summaries


def _summary(result: SearchResult) -> dict:
    """The last keys of best.json: settings, each run's summary, candidates, RPS and invalid counts, time."""
    runs = result.runs
    rps = [tb.rps_log.to_dict() for tb in runs.toolboxes]
    return {
        "setup": asdict(result.setup),
        "runs": run_summaries(runs),
        "candidates": result.candidates,
        "rps": {"rejected": sum(c["rejected"] for c in rps), "gave_up": sum(c["gave_up"] for c in rps),
                "reasons": dict(sum((Counter(c["reasons"]) for c in rps), Counter()))},
        "invalid": dict(sum((s.invalid for s in runs.states), Counter())),
        "seconds": sum(s.seconds for s in runs.states),
    }


__all__ = ["OUTPUTS", "TreeRecords", "default_out", "run_summaries", "search_records", "write_search"]
