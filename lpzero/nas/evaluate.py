"""Scoring one candidate: its costs (parameters, FLOPs, latency), constraints, and proxy score.

`evaluate_candidate` is what `lpzero nas` registers as its toolbox's `evaluate` (with an
executor's `map`, so `--executor process|ray` spreads candidates over workers): it builds
the model once and returns a `CandidateResult` (it pickles, and its `to_json` is what the
search's checkpoint stores). Costs are checked against the limits cheapest first (parameters
need no model), and a candidate over a limit is not scored. A candidate whose evaluation
raises is a result with the error and `retry` set: the others go on, and a resume scores it again.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from lpzero.benchmarks import Batch, Benchmark, NASError, SearchSpace
from lpzero.errors import UnknownNameError
from lpzero.executors import torch_threads
from lpzero.proxies import HAND_DESIGNED, Proxy, ProxyContext, score_proxies
from lpzero.proxies import FoundProxy


log = logging.getLogger("lpzero")

#: the costs a search can minimise or limit, in the order they are checked (cheapest first)
COSTS = ("params", "flops", "latency")
#: how each cost is written in tables
COST_LABELS = {"params": "parameters", "flops": "FLOPs (one forward pass)", "latency": "latency (ms)"}


def proxy_spec(text: str) -> Proxy:
    """`--proxy`: a hand-designed proxy's name (`-name`: negated), or a found `best.json` (or its folder)
    as a `FoundProxy` named `found:<folder>`, read with the op table it records.

    A registered name always means the registered proxy, so what `--proxy grad_norm` does never depends on
    the working directory; a file or folder of that name is given as a path (`./grad_norm`), and when both
    exist a warning says which was read."""
    path = Path(text)
    negated = text.startswith("-")
    name = text[1:] if negated else text
    if name in HAND_DESIGNED:
        if path.exists():
            log.warning("--proxy %s is the hand-designed proxy; the %s %s here is read only as a path (--proxy ./%s)",
                        text, "folder" if path.is_dir() else "file", text, text)
        return HAND_DESIGNED.get(name).oriented(-1 if negated else 1)
    if path.suffix == ".json" or path.is_dir() or path.is_file():
        return FoundProxy.load(path)
    if ":" not in name:
        raise UnknownNameError("proxy (a best.json path or a baseline)", text, HAND_DESIGNED.names())
    return HAND_DESIGNED.get(name).oriented(-1 if negated else 1)


@dataclass(frozen=True)
class EvalSettings:
    """How candidates are scored and costed."""

    batch_size: int
    seq_len: int
    batch_seed: int = 0
    model_seed: int = 0
    device: str = "cpu"
    #: the costs the search minimises (a subset of COSTS, in this order)
    costs: tuple[str, ...] = ("params",)
    #: cost -> upper limit (a candidate above it is infeasible and not scored)
    limits: dict = field(default_factory=dict)
    #: FLOPs and latency are those of one forward pass (the benchmark's `loss`) on one sequence of this length
    cost_seq_len: int = 192
    latency_repeats: int = 3
    #: False: the score is not computed here (it comes from a cache; only costs are)
    score: bool = True

    def __post_init__(self) -> None:
        for name in (*self.costs, *self.limits):
            if name not in COSTS:
                raise UnknownNameError("cost", name, COSTS)
        if not self.costs:
            raise NASError("a search needs at least one cost (params, flops or latency)")

    def needed(self) -> list[str]:
        """The costs to compute: those minimised and those limited, cheapest first."""
        return [c for c in COSTS if c in self.costs or c in self.limits]

    def record(self) -> dict:
        return {"batch_size": self.batch_size, "seq_len": self.seq_len, "batch_seed": self.batch_seed,
                "model_seed": self.model_seed, "device": self.device, "costs": list(self.costs),
                "limits": dict(self.limits), "cost_seq_len": self.cost_seq_len,
                "latency_repeats": self.latency_repeats}


def count_flops(bench: Benchmark, model: nn.Module, batch: Batch) -> int:
    """FLOPs of one forward pass of the benchmark's objective, counted by torch's FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        bench.loss(model, batch)
    return int(counter.get_total_flops())


def measure_latency(bench: Benchmark, model: nn.Module, batch: Batch, repeats: int = 3) -> float:
    """Mean milliseconds of one forward pass of the benchmark's objective over `repeats` passes.

    Timed by `torch.utils.benchmark.Timer`, which warms up first and synchronises CUDA.
    """
    timer = Timer("loss(model, batch)", globals={"loss": bench.loss, "model": model, "batch": batch},
                  num_threads=torch.get_num_threads())
    with torch.no_grad():
        return 1000.0 * timer.timeit(max(1, repeats)).mean


def violation(costs: dict, limits: dict) -> float:
    """How far over its limits a candidate is: the sum of relative excesses (0: feasible)."""
    total = 0.0
    for name, limit in limits.items():
        value = costs.get(name)
        if value is not None and value > limit:
            total += (value - limit) / max(abs(limit), 1e-12)
    return total


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class CandidateResult:
    """One candidate's evaluation: its proxy `score` (oriented, higher = better; None when not computed,
    not finite or failed), the costs computed (`params`, `flops`, `latency`; None when not), whether it is
    within the limits (`feasible`) and by how much it is over them (`violation`), why its score is
    missing (`error`), seconds per stage, and `retry`: its evaluation raised, so a resume scores it again."""

    score: float | None = None
    feasible: bool = True
    violation: float = 0.0
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
    latency: float | None = None
    retry: bool = False

    @property
    def valid(self) -> bool:
        """Within the limits and scored."""
        return self.feasible and self.score is not None

    def cost(self, name: str) -> float | None:
        """The cost `name` ("params", "flops" or "latency")."""
        if name not in COSTS:
            raise UnknownNameError("cost", name, COSTS)
        return getattr(self, name)

    def objectives(self, costs: tuple[str, ...]) -> tuple[float, ...]:
        """(score, each of `costs`): what NSGA-II maximises and minimises."""
        return (float(self.score),) + tuple(float(self.cost(c)) for c in costs)

    def to_json(self) -> dict:
        """The result as a checkpoint stores it (costs not computed and a false `retry` are left out)."""
        record = {"score": self.score, "feasible": self.feasible, "violation": self.violation, "error": self.error,
                  "seconds": dict(self.seconds)}
        record.update({c: getattr(self, c) for c in COSTS if getattr(self, c) is not None})
        if self.retry:
            record["retry"] = True
        return record

    @classmethod
    def from_json(cls, entry: Any, key: str = "", costs: tuple[str, ...] = ()) -> "CandidateResult":
        """The result `to_json` wrote; TypeError or ValueError naming the entry `key` and the first value that is
        not what it should be (a feasible, scored entry must have each of `costs`)."""
        if not isinstance(entry, dict):
            raise TypeError(f"entry {key!r} is a {type(entry).__name__}, not a JSON object")
        needed = ("score", "feasible", "violation")
        if entry.get("feasible") is True and entry.get("score") is not None:
            needed += tuple(costs)
        missing = [k for k in needed if k not in entry]
        if missing:
            raise ValueError(f"entry {key!r} has no {missing[0]!r}")
        if not (entry["score"] is None or _is_number(entry["score"])):
            raise TypeError(f"entry {key!r}: score {entry['score']!r} is not a number or null")
        if not isinstance(entry["feasible"], bool):
            raise TypeError(f"entry {key!r}: feasible {entry['feasible']!r} is not true or false")
        wrong = [k for k in ("violation", *needed[3:]) if not _is_number(entry[k])]
        if wrong:
            raise TypeError(f"entry {key!r}: {wrong[0]} {entry[wrong[0]]!r} is not a number")
        seconds = entry.get("seconds", {})
        return cls(entry["score"], entry["feasible"], entry["violation"], entry.get("error"),
                   dict(seconds) if isinstance(seconds, dict) else {},
                   *(entry.get(c) for c in COSTS), retry=bool(entry.get("retry", False)))


def evaluate_candidate(key: str, space: SearchSpace, proxy: Proxy | None, settings: EvalSettings,
                       given: Mapping[str, float] | None = None) -> CandidateResult:
    """One candidate's costs and proxy score, computed on one torch thread; never raises for the
    candidate's own failure (the result holds the error, `retry` set).

    One thread wherever it runs (a process pool's workers run one), so a run's scores do not
    depend on the executor, as the cache's do not depend on `--jobs`. `proxy` is any `Proxy` (a
    `FoundProxy`, a hand-designed one), scored by `lpzero.proxies.score_proxies` on the candidate's
    model; `given` (key -> score, e.g. from a cache) replaces the proxy: only the costs are computed.
    `seconds` per stage: `params`, `build`, `flops`, `latency`, `pass` (the forward, and backward if
    the proxy needs gradients, that extracts the inputs), `proxy` (the proxy's arithmetic).
    """
    try:
        with torch_threads():
            result = _evaluate(key, space, None if given is not None else proxy,
                               settings if given is None else replace(settings, score=False))
    except Exception as e:  # the candidate's own failure: kept with its reason, and scored again on a resume
        return CandidateResult(error=f"{type(e).__name__}: {e}", retry=True)
    if given is not None:
        value = given[key]
        result.score = value if math.isfinite(value) else None
        if result.score is None:
            result.error = f"non-finite score {value}"
    return result


#: how the error of a candidate its space cannot build begins (`SearchSpace.invalid`)
INVALID = "invalid: "


def _evaluate(key: str, space: SearchSpace, proxy: Proxy | None, settings: EvalSettings) -> CandidateResult:
    config = space.config(key)
    reason = space.invalid(config)
    if reason is not None:  # dropped: not a failure a resume could fix, not a candidate either
        return CandidateResult(error=INVALID + reason)
    out = CandidateResult()
    seconds = out.seconds
    needed = settings.needed()
    t = time.perf_counter()
    out.params = int(space.count_params(config)["total"])
    seconds["params"] = time.perf_counter() - t
    if _over(out, settings):
        return out
    need_model = settings.score or "flops" in needed or "latency" in needed
    if not need_model:
        return out
    bench = space.proxy_benchmark()
    t = time.perf_counter()
    model = space.build_model(config, settings.model_seed, settings.device)
    seconds["build"] = time.perf_counter() - t
    if "flops" in needed or "latency" in needed:
        one = bench.make_batch(settings.batch_seed, 1, settings.cost_seq_len).to(settings.device)
        if "flops" in needed:
            t = time.perf_counter()
            out.flops = count_flops(bench, model, one)
            seconds["flops"] = time.perf_counter() - t
            if _over(out, settings):
                return out
        if "latency" in needed:
            t = time.perf_counter()
            out.latency = measure_latency(bench, model, one, settings.latency_repeats)
            seconds["latency"] = time.perf_counter() - t
            if _over(out, settings):
                return out
    if settings.score and proxy is not None:
        batch = bench.make_batch(settings.batch_seed, settings.batch_size, settings.seq_len).to(settings.device)
        score = _score(bench, key, model, batch, proxy, settings, seconds)
        if math.isfinite(score):
            out.score = score
        else:
            out.error = f"non-finite score {score}"
    return out


def _over(out: CandidateResult, settings: EvalSettings) -> bool:
    out.violation = violation({c: out.cost(c) for c in COSTS}, settings.limits)
    out.feasible = out.violation == 0
    return not out.feasible


def _score(bench: Benchmark, key: str, model: nn.Module, batch: Batch, proxy: Proxy, settings: EvalSettings,
           seconds: dict) -> float:
    """`proxy`'s score (oriented) of the candidate whose model is built already; its stages into `seconds`.

    `pass`: the shared work the proxy read (the forward, and backward if it needs gradients,
    that records or extracts its inputs); `proxy`: the rest (its arithmetic, and the passes
    a proxy runs by itself, e.g. grasp's second-order one).
    """
    ctx = ProxyContext(bench, key, settings.model_seed, batch, settings.device)
    ctx.shared("model", lambda: model)  # the model built above, not a second one
    result = score_proxies([proxy], ctx, strict=True)[proxy.name]
    seconds["pass"] = result.pass_seconds
    seconds["proxy"] = result.seconds - result.pass_seconds
    return result.value