"""`lpzero nas` end to end: score a space's candidates, find the Pareto front, write the outputs.

A space that lists all its architectures (tabular) is scored exhaustively; any other is
searched with NSGA-II (`lpzero.nas.nsga`). Candidates are scored on an executor
(`lpzero.executors`), each architecture once; the scores so far are checkpointed (after
every generation, or every `CHUNK` architectures of an exhaustive pass), so `resume`
continues where a run stopped.

Once scored, `pick_candidates` decides: the Pareto front of the candidates within the
limits and the chosen one (the highest score within the limits); `_write_outputs` only
writes what it decided. Outputs in `out`: `pareto.csv` (the front), `candidates.csv`
(every scored candidate), `pareto.png`, `chosen/` (the chosen architecture, in the space's
own format), `front/` (the front's architectures), `report.md`, `summary.json`,
`checkpoint.json`.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from lpzero.cache import InputCache
from lpzero.executors import Executor, LocalExecutor, TaskFailure
from lpzero.files import atomic_write_json, atomic_write_text, remove_outputs
from lpzero.proxies import FoundProxy, Proxy
from lpzero.search import FitnessEvaluator

from .evaluate import EvalSettings, evaluate_candidate
from .nsga import (CHECKPOINT_FILE, RETRY, Evaluator, NSGASettings, load_checkpoint, restored_memo, run_nsga,
                   save_checkpoint)
from .pareto import front_hypervolume_ratio, pareto_mask
from .report import plot_pareto, report_markdown, write_csv
from .space import NASError, SearchSpace

#: an exhaustive pass checkpoints after every CHUNK architectures (a process pool starts once per chunk)
CHUNK = 64
SUMMARY_FILE = "summary.json"
#: what a run writes into its folder besides its checkpoint
OUTPUTS = ("pareto.csv", "candidates.csv", "pareto.png", "chosen", "front", "report.md", SUMMARY_FILE)

log = logging.getLogger("lpzero")


def cached_scores(cache: InputCache, ids: Sequence[str], proxy: Proxy) -> dict[str, float]:
    """Proxy scores of a benchmark's architectures from a filled cache.

    A baseline's value is the one the cache stored (computed from the full model); a found
    proxy's tree is evaluated on the cached samples (what the search's fitness reads), with
    the primitive set of its own op table.
    """
    if not isinstance(proxy, FoundProxy):
        return {a: proxy.orientation * float(cache.info(a)["baselines"][proxy.name]) for a in ids}
    evaluator = FitnessEvaluator(proxy.pset, cache.load(list(ids)), np.zeros(len(ids)))
    values = evaluator.scores(proxy.parsed)
    return {a: proxy.orientation * float(v) for a, v in zip(ids, values)}


def scorer(space: SearchSpace, proxy: Proxy | None, settings: EvalSettings, executor: Executor,
           given: dict[str, float] | None = None,
           on_result: Callable[[str], None] | None = None) -> Callable[[list[str]], dict[str, dict]]:
    """`evaluate_many(keys)` for an `Evaluator`: each key's `evaluate_candidate` on `executor`.

    With `given` (key -> score, e.g. from a cache) only the costs are computed and the scores
    are taken from it. A candidate whose task raises is kept as invalid with the error and the
    `RETRY` flag (a resume scores it again); a worker killed in a process pool is replaced and its
    unfinished candidates scored again, once.
    """
    def evaluate_many(keys: list[str]) -> dict[str, dict]:
        results: dict[str, dict] = {}
        for attempt in range(2):
            todo = [k for k in keys if k not in results]
            try:
                _score_into(results, todo)
                break
            except BrokenProcessPool as e:
                # a worker killed from outside (out of memory, a signal) breaks the whole pool: the executor
                # starts a fresh one, and the unfinished candidates are scored again, once
                unfinished = [k for k in keys if k not in results]
                if attempt:
                    more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
                    shown = ", ".join(unfinished[:3]) + more
                    raise NASError(f"a worker process died twice while scoring {shown} ({e}); the scores so far are "
                                   "checkpointed: rerun with --resume, or with fewer --jobs") from None
                log.warning("a worker process died (%s): scoring %d candidate(s) again", e, len(unfinished))
        return results

    def _score_into(results: dict[str, dict], keys: list[str]) -> None:
        for key, r in executor.imap_unordered(evaluate_candidate, keys, space, None if given is not None else proxy,
                                              settings):
            if isinstance(r, TaskFailure):
                log.warning("candidate %s failed: %s", key, r.error)
                # kept for this run's report, but scored again on --resume: the error may be fixed
                r = {"score": None, "feasible": True, "violation": 0.0, "error": r.error, "seconds": {}, RETRY: True}
            elif given is not None:
                value = given[key]
                r["score"] = value if math.isfinite(value) else None
                if r["score"] is None:
                    r["error"] = f"non-finite score {value}"
            results[key] = r
            if on_result:
                on_result(key)

    return evaluate_many


def run_nas(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, out: Path,
            executor: Executor | None = None, resume: bool = False, given: dict[str, float] | None = None,
            scores_note: str = "exact", progress: Callable[[int], None] | None = None) -> dict:
    """Search `space` for architectures with a high proxy score and low costs; write the outputs to `out`.

    `given`: precomputed scores by key (tabular spaces, from a cache), described by `scores_note`.
    `progress(n)` is called with the number of candidates scored so far (checkpointed ones included).
    Returns the summary (also written to `summary.json`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the previous run's results go first (its checkpoint stays for --resume): a run that stops
    # early must not leave another run's summary beside its own files
    remove_outputs(out, OUTPUTS if resume else (*OUTPUTS, CHECKPOINT_FILE))
    if given is not None:
        settings = replace(settings, score=False)  # the scores are given: build models only for costs
    smallest = space.smallest()
    limit = settings.limits.get("params")
    if limit is not None and smallest is not None:
        least = space.count_params(smallest)["total"]
        if least > limit:
            raise NASError(f"--max-params {limit:,.0f} is below the smallest architecture of space {space.name} "
                           f"({least:,} parameters)")
    executor = executor or LocalExecutor()
    counts = {"restored": 0, "new": 0}

    def tick(_key: str) -> None:
        counts["new"] += 1
        if progress:
            progress(counts["restored"] + counts["new"])

    evaluator = Evaluator(scorer(space, proxy, settings, executor, given, tick), settings.costs)
    genomes = space.all_genomes()
    record = nas_record(space, proxy, settings, nsga, scores_note, genomes)
    checkpoint = out / CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        counts["restored"] = len(restored_memo(load_checkpoint(checkpoint, record)))
        if progress:
            progress(counts["restored"])
    t = time.perf_counter()
    if genomes is not None:
        search = f"exhaustive ({len(genomes)} architectures)"
        _exhaustive(space, genomes, evaluator, checkpoint, resume, record)
    else:
        search = (f"NSGA-II, population {nsga.population}, {nsga.generations} generations, seed {nsga.seed} "
                  f"(crossover {nsga.crossover}, mutation {nsga.mutation})")
        run_nsga(space, evaluator, nsga, out, resume, record)
    seconds = time.perf_counter() - t
    picked = pick_candidates(candidate_rows(space, evaluator, settings.costs), settings.costs)
    return _write_outputs(space, proxy, settings, picked, out, search, scores_note, counts["new"], seconds)


def nas_record(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, scores_note: str,
               genomes: list[list[int]] | None) -> dict:
    """What decides a search's result, as its checkpoint records it: a resume must have the same (but more
    generations). The space is its name, the `fingerprint` of its data, and for an exhaustive pass the
    architectures it scores (a changed `--ids` / `--limit`)."""
    record = {"nsga": None if genomes is not None else asdict(nsga), "space": space.name,
              "fingerprint": space.fingerprint(), "proxy": proxy.record(), "settings": settings.record(),
              "scores": scores_note}
    if genomes is not None:
        keys = [space.key(space.decode(g)) for g in genomes]
        record["architectures"] = {"count": len(keys), "sha1": hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]}
    return record


def check_resume(space: SearchSpace, proxy: Proxy, settings: EvalSettings, nsga: NSGASettings, out: Path) -> None:
    """ResultError, before any work, if `out`'s checkpoint belongs to a run `run_nas` would refuse to resume
    (how scores are computed, "scores", is checked by `run_nas`: it is known once a cache is opened)."""
    checkpoint = Path(out) / CHECKPOINT_FILE
    if checkpoint.is_file():
        load_checkpoint(checkpoint, nas_record(space, proxy, settings, nsga, "", space.all_genomes()), ("scores",))


def _exhaustive(space: SearchSpace, genomes: list[list[int]], evaluator: Evaluator, checkpoint: Path, resume: bool,
                record: dict) -> None:
    if resume and checkpoint.is_file():
        evaluator.memo.update(restored_memo(load_checkpoint(checkpoint, record)))
    keys = [space.key(space.decode(g)) for g in genomes]
    todo = [k for k in keys if k not in evaluator.memo]
    for start in range(0, len(todo), CHUNK):
        evaluator.evaluate(todo[start:start + CHUNK])
        save_checkpoint(checkpoint, record, evaluator.memo)  # no population or random state: nothing is drawn


@dataclass
class Pick:
    """What a search decided: every scored candidate (a row each), the Pareto front, the chosen one."""

    #: one per scored candidate; `on_front` and `chosen` say what was decided about it
    rows: list[dict]
    #: the rows within the limits with a valid score
    valid: list[dict]
    #: the front's rows, by the first cost, then the score (highest first)
    front: list[dict]
    #: the highest score within the limits (ties: the lower first cost, then the key); None if no row is valid
    chosen: dict | None


def candidate_rows(space: SearchSpace, evaluator: Evaluator, costs: Sequence[str]) -> list[dict]:
    """A row per scored candidate (the `Evaluator`'s memo, in scoring order), nothing decided yet."""
    rows = []
    for key, r in evaluator.memo.items():
        config = space.config(key)
        rows.append({"key": key, "architecture": space.describe(config), "config": config, "score": r["score"],
                     **{c: r.get(c) for c in ("params", "flops", "latency")},
                     "feasible": bool(r["feasible"]), "violation": r["violation"], "error": r.get("error"),
                     "ground_truth": space.ground_truth(config),
                     "seconds": round(sum(r.get("seconds", {}).values()), 4),
                     "on_front": False, "chosen": False})
    return rows


def pick_candidates(rows: list[dict], costs: Sequence[str]) -> Pick:
    """The front (score up, `costs` down) of the valid rows and the chosen one; marks both in the rows."""
    costs = list(costs)
    valid = [r for r in rows if r["feasible"] and r["score"] is not None]
    chosen = None
    if valid:
        mask = pareto_mask([r["score"] for r in valid], [[r[c] for c in costs] for r in valid])
        for r, m in zip(valid, mask):
            r["on_front"] = bool(m)
        chosen = min(valid, key=lambda r: (-r["score"], r[costs[0]], r["key"]))
        chosen["chosen"] = True
    front = sorted((r for r in valid if r["on_front"]), key=lambda r: (r[costs[0]], -r["score"]))
    return Pick(rows, valid, front, chosen)


def _write_outputs(space: SearchSpace, proxy: Proxy, settings: EvalSettings, picked: Pick, out: Path,
                   search: str, scores_note: str, new: int, seconds: float) -> dict:
    """Write what `pick_candidates` decided; NASError (after candidates.csv and summary.json) if nothing was chosen."""
    costs = list(settings.costs)
    rows, valid, front, chosen = picked.rows, picked.valid, picked.front, picked.chosen
    write_csv(out / "candidates.csv", rows, costs)
    write_csv(out / "pareto.csv", front, costs)
    n_failed = sum(1 for r in rows if r["error"] and r["feasible"])
    summary = {
        "space": space.name, "proxy": proxy.record(), "scores": scores_note, "settings": settings.record(),
        "search": search, "evaluated": len(rows), "feasible": sum(1 for r in rows if r["feasible"]),
        "failed": n_failed, "scored_now": new, "seconds": seconds,
        "candidates_per_second": new / seconds if seconds > 0 else 0.0,
        "front": [r["key"] for r in front], "chosen": None, "chosen_files": [], "tabular": None,
    }
    if chosen is None:
        atomic_write_json(out / SUMMARY_FILE, summary)
        raise NASError(f"space {space.name}: none of the {len(rows)} candidates scored is within the limits "
                       "with a valid score (see candidates.csv)")
    summary["chosen"] = {k: chosen[k] for k in ("key", "architecture", "config", "score", *costs, "ground_truth")}
    summary["chosen_files"] = [str(p.relative_to(out)) for p in space.write([chosen["config"]], out / "chosen")]
    space.write([r["config"] for r in front], out / "front")
    if chosen["ground_truth"] is not None:
        summary["tabular"] = _tabular(rows, valid, chosen, costs[0])
    plot_pareto(rows, costs, out / "pareto.png", f"{space.name}: {proxy.name} ({len(valid)} scored within limits)")
    atomic_write_text(out / "report.md", report_markdown(summary, front, costs))
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def _tabular(rows: list[dict], valid: list[dict], chosen: dict, cost: str) -> dict:
    """The pick against the ground truth: regret within the limits, its rank, the front's hypervolume.

    Only candidates with a ground truth count (a LoNAS space measured a few hundred of its sub-networks).
    """
    feasible = [r for r in rows if r["feasible"] and r["ground_truth"] is not None]
    valid = [r for r in valid if r["ground_truth"] is not None]
    best = max(feasible, key=lambda r: r["ground_truth"])
    truth = np.array([r["ground_truth"] for r in feasible])
    rank = int(len(feasible) - rankdata(truth, method="max")[feasible.index(chosen)] + 1)
    return {"pick_truth": chosen["ground_truth"], "best": best["key"], "best_truth": best["ground_truth"],
            "regret": best["ground_truth"] - chosen["ground_truth"], "pick_rank": rank, "feasible": len(feasible),
            "hypervolume_ratio": front_hypervolume_ratio([r["score"] for r in valid],
                                                         [r["ground_truth"] for r in valid],
                                                         [r[cost] for r in valid])}
