"""lpzero.nas without data: Pareto arithmetic, NSGA-II determinism, memo, resume, constraints, the tabular space.

`ToySpace` has per-layer genes (the canonicalisation case) and needs no model: the NSGA-II
tests score it with a pure function. `TinySpace` is an open space of tiny GPT-2 models on the
fake benchmark's batches, opened by the CLI tests as `test_nas_search:TinySpace`.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict
from typing import Sequence

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from conftest import FAKE_BENCHMARK
from fake_benchmark import N_POSITIONS, VOCAB_SIZE, TinyGPT2Benchmark
from lpzero.benchmarks.attention import register_hookable_attention
from lpzero.errors import ResultError
from deap import base, tools

from lpzero.nas import (Candidate, CandidateResult, EvalSettings, NASCheckpoint, NASError, NSGASettings, Pick,
                        SearchSpace, TabularSpace, budget_regret, build_nsga_toolbox, ensure_nas_creator,
                        evaluate_candidate, front_hypervolume_ratio, hypervolume_2d, pareto_mask, pick_candidates,
                        pick_within, proxy_spec, run_nsga, tabular_figures)
from lpzero.nas.nsga import CHECKPOINT_FILE, individual_from_genome, random_genome
from lpzero.workflows.nas import run_nas


class ToySpace(SearchSpace):
    """n in 1..4 layers, each with a width 0..4; widths beyond n do not matter."""

    name = "toy"

    def choices(self) -> list[int]:
        return [4] + [5] * 4

    def decode(self, genome: Sequence[int]) -> dict:
        self.check_genome(genome)
        n = genome[0] + 1
        return {"n": n, "w": list(genome[1:1 + n])}

    def encode(self, config: dict) -> list[int]:
        return [config["n"] - 1] + config["w"] + [0] * (4 - config["n"])

    def base_benchmark(self):
        raise NotImplementedError

    def build_model(self, config, seed, device="cpu"):
        raise NotImplementedError

    def count_params(self, config: dict) -> dict[str, int]:
        return {"total": 10 * config["n"] + sum(config["w"])}

    def write(self, configs, out):
        return []


def toy_evaluate(space: ToySpace, calls: list[str], limit: float | None = None):
    """A toolbox's `evaluate`: score and cost from the config alone (over `limit` parameters: infeasible);
    records every key asked for."""
    def evaluate(key):
        calls.append(key)
        c = space.config(key)
        params = space.count_params(c)["total"]
        over = 0.0 if limit is None else max(0.0, (params - limit) / limit)
        return CandidateResult(float(sum((i + 1) * w for i, w in enumerate(c["w"]))), feasible=over == 0,
                               violation=over, params=params)
    return evaluate


class TinySpace(SearchSpace):
    """Tiny GPT-2 decoders on the fake benchmark's batches: n_layer 1..3, n_embd 16/32, n_inner 128/192."""

    name = "tiny"
    VALUES = {"n_layer": [1, 2, 3], "n_embd": [16, 32], "n_inner": [128, 192]}

    def __init__(self, data=None, path=None) -> None:
        self.bench = TinyGPT2Benchmark()

    def choices(self) -> list[int]:
        return [len(v) for v in self.VALUES.values()]

    def decode(self, genome):
        self.check_genome(genome)
        return {k: v[g] for (k, v), g in zip(self.VALUES.items(), genome)}

    def encode(self, config):
        return [v.index(config[k]) for k, v in self.VALUES.items()]

    def base_benchmark(self):
        return self.bench

    def build_model(self, config, seed, device="cpu"):
        gpt2 = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=N_POSITIONS, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, attn_implementation=register_hookable_attention(),
                          bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1, **config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT2LMHeadModel(gpt2)
        model.loss_type = "ForCausalLM"
        return model.to(device)

    def count_params(self, config):
        return {"total": sum(p.numel() for p in self.build_model(config, 0).parameters())}

    def smallest(self):
        return {k: v[0] for k, v in self.VALUES.items()}

    def write(self, configs, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "configs.json").write_text(json.dumps(list(configs)))
        return [out / "configs.json"]


# --- Pareto arithmetic ----------------------------------------------------------------------

def test_pareto_mask_keeps_the_non_dominated_points():
    score = [1.0, 2.0, 2.0, 0.5, 3.0]
    cost = [[1], [2], [3], [2], [5]]
    assert pareto_mask(score, cost).tolist() == [True, True, False, False, True]


def test_pick_within_takes_the_best_score_that_fits_the_budget():
    assert pick_within([5, 9, 7], [1, 10, 3], budget=5) == 2
    assert pick_within([5, 9, 7], [1, 10, 3], budget=0.5) is None


def test_hypervolume_of_a_staircase():
    # points (truth, cost): (2, 1), (3, 2); reference (0, 4): 2 * 1 + 3 * 2 = 8
    assert hypervolume_2d([2, 3], [1, 2], ref_truth=0, ref_cost=4) == pytest.approx(8.0)
    assert hypervolume_2d([2, 3, 1], [1, 2, 3], 0, 4) == pytest.approx(8.0)  # a dominated point adds nothing


def test_a_proxy_equal_to_the_truth_has_the_whole_hypervolume():
    rng = np.random.default_rng(0)
    truth, cost = rng.normal(size=30), rng.uniform(1, 10, size=30)
    assert front_hypervolume_ratio(truth, truth, cost) == pytest.approx(1.0)
    assert front_hypervolume_ratio(-truth, truth, cost) < 1.0


def test_regret_on_the_fake_benchmark():
    bench = TinyGPT2Benchmark()
    truth = [bench.architecture(a).ground_truth for a in bench.ids()]
    params = [bench.count_params(a)["total"] for a in bench.ids()]
    budget = sorted(params)[3]
    exact = budget_regret(truth, truth, params, budget)
    assert exact["regret"] == 0.0
    by_size = budget_regret(params, truth, params, budget)  # the largest model that fits
    assert by_size["pick"] == int(np.argmax(np.where(np.array(params) <= budget, params, -1)))
    assert by_size["regret"] == pytest.approx(exact["best_truth"] - truth[by_size["pick"]])


# --- NSGA-II --------------------------------------------------------------------------------

SMALL = NSGASettings(population=6, generations=4, seed=3)


def _run(settings=SMALL, out=None, resume=False, record=None, toolbox=None, limit=None):
    space, calls = ToySpace(), []
    tb = toolbox or build_nsga_toolbox(space, settings)
    tb.register("evaluate", toy_evaluate(space, calls, limit))
    record = {"nsga": asdict(settings), "space": "toy", **(record or {})}
    checkpoint = None if out is None else NASCheckpoint(out / CHECKPOINT_FILE, record, resume)
    return run_nsga(tb, settings, ["params"], checkpoint), calls


def test_genes_beyond_the_layer_count_do_not_make_another_architecture():
    space = ToySpace()
    assert space.key(space.decode([0, 3, 1, 2, 4])) == space.key(space.decode([0, 3, 0, 0, 0]))
    assert space.canonical([1, 3, 1, 2, 4]) == [1, 3, 1, 0, 0]


def test_nsga_with_a_seed_is_deterministic():
    a, _ = _run()
    b, _ = _run()
    assert a.population == b.population and list(a.memo) == list(b.memo)
    c, _ = _run(NSGASettings(population=6, generations=4, seed=4))
    assert c.population != a.population


def test_nsga_scores_each_architecture_once():
    result, calls = _run(NSGASettings(population=8, generations=6, seed=1))
    assert len(calls) == len(set(calls)) == len(result.memo)


def test_the_population_holds_distinct_architectures():
    space = ToySpace()
    result, _ = _run(NSGASettings(population=8, generations=6, seed=1))
    keys = [space.key(space.decode(g)) for g in result.population]
    assert len(keys) == len(set(keys))


def test_resume_continues_to_the_uninterrupted_result(tmp_path):
    whole, _ = _run(out=tmp_path / "whole")
    _run(NSGASettings(population=6, generations=2, seed=3), out=tmp_path / "split")
    resumed, calls = _run(out=tmp_path / "split", resume=True)
    assert resumed.population == whole.population
    assert resumed.memo == whole.memo
    saved = json.loads((tmp_path / "split" / CHECKPOINT_FILE).read_text())
    assert saved["generation"] == 4 and len(calls) < len(whole.memo)  # the first part was not rescored


def test_resume_refuses_other_settings(tmp_path):
    _run(out=tmp_path, record={"proxy": "a"})
    with pytest.raises(ResultError, match="proxy"):
        _run(out=tmp_path, resume=True, record={"proxy": "b"})


def test_resume_refuses_a_checkpoint_of_another_version_or_a_damaged_one(tmp_path):
    _run(NSGASettings(population=6, generations=2, seed=3), out=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "version": 2}))
    with pytest.raises(ResultError, match="checkpoint of version 2; this lpzero reads version 1"):
        _run(out=tmp_path, resume=True)
    path.write_text(json.dumps({**saved, "population": [[9, 9, 9, 9, 9]]}))  # no such genome in the toy space
    with pytest.raises(ResultError, match="damaged checkpoint \\(key 'population'"):
        _run(out=tmp_path, resume=True)


def test_a_script_re_registers_mutate_on_the_nsga_toolbox():
    called = Counter()
    tb = build_nsga_toolbox(ToySpace(), SMALL)
    default_mutate = tb.mutate

    def mutate(ind):
        called["mutate"] += 1
        return default_mutate(ind)

    tb.register("mutate", mutate)
    result, _ = _run(toolbox=tb)
    assert called["mutate"] > 0
    assert result.population == _run()[0].population  # the same operator, wrapped: the same search


def test_candidates_are_scored_through_the_toolbox_map_and_the_hall_of_fame_is_passed_in():
    tb, mapped = build_nsga_toolbox(ToySpace(), SMALL), Counter()

    def counted_map(fn, keys):
        keys = list(keys)
        mapped["keys"] += len(keys)
        return map(fn, keys)

    tb.register("map", counted_map)
    tb.register("evaluate", toy_evaluate(ToySpace(), []))
    front = tools.ParetoFront()
    result = run_nsga(tb, SMALL, ["params"], halloffame=front)
    assert mapped["keys"] == len(result.memo) > SMALL.population
    best = max(r.score for r in result.memo.values())
    assert len(front) and max(ind.fitness.values[0] for ind in front) == best


def test_a_toolbox_made_by_hand_is_the_one_the_loop_calls():
    space, called = ToySpace(), Counter()

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            called[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    tb = base.Toolbox()
    tb.register("from_genome", individual_from_genome, space=space, cls=ensure_nas_creator(1)[1])
    tb.register("genome", random_genome, space.choices())
    tb.register("individual", tools.initIterate, tb.from_genome, tb.genome)
    tb.register("population", counted("population", tools.initRepeat), list, tb.individual, n=6)
    tb.register("select_parents", counted("select_parents", tools.selRandom), k=2)
    tb.register("mate", counted("mate", tools.cxTwoPoint))
    tb.register("mutate", counted("mutate", tools.mutUniformInt), low=0, up=[n - 1 for n in space.choices()],
                indpb=1.0)
    tb.register("select", counted("select", tools.selNSGA2))
    result, _ = _run(NSGASettings(population=6, generations=3, seed=0, crossover=1.0), toolbox=tb)
    assert called["population"] == 1 and called["select_parents"] >= 3 * 3
    assert called["mate"] == called["select_parents"]  # crossover 1.0: every pair of parents is mated
    assert called["mutate"] >= 3 * 6 and called["select"] >= 1
    assert len(result.population) == 6 and len(result.memo) > 6


def test_the_pick_is_made_before_anything_is_written():
    found = [Candidate(k, k, {}, CandidateResult(s, feasible=f, params=p))
             for k, s, p, f in (("a", 3.0, 10, True), ("b", 5.0, 30, True), ("c", 5.0, 20, True),
                                ("d", 9.0, 5, False), ("e", None, 1, True), ("f", 1.0, 40, True))]
    picked = pick_candidates(found, ["params"])
    assert picked.chosen.key == "c"  # the highest score within the limits; of equal scores the cheaper
    assert [c.key for c in picked.front] == ["a", "c"] and [c.key for c in picked.valid] == ["a", "b", "c", "f"]
    assert [c.key for c in found if c.chosen] == ["c"] and [c.key for c in found if c.on_front] == ["a", "c"]
    assert pick_candidates(found[3:5], ["params"]).chosen is None


def test_infeasible_candidates_only_fill_up_the_population():
    space = ToySpace()
    result, _ = _run(NSGASettings(population=6, generations=5, seed=0), limit=25)
    feasible = [k for k, r in result.memo.items() if r.feasible]
    kept = [space.key(space.decode(g)) for g in result.population]
    assert len(feasible) >= 6 and all(result.memo[k].feasible for k in kept)


# --- candidates, constraints and the tabular space -------------------------------------------

def test_a_candidate_over_the_parameter_limit_is_not_scored():
    space = TabularSpace(FAKE_BENCHMARK)
    settings = EvalSettings(2, 8, costs=("params",), limits={"params": 1000})
    r = evaluate_candidate("tiny4", space, proxy_spec("num_params"), settings)
    assert r.feasible is False and r.score is None and r.violation > 0 and "build" not in r.seconds


def test_flops_are_counted_and_limited():
    space = TabularSpace(FAKE_BENCHMARK)
    settings = EvalSettings(2, 8, costs=("params", "flops"), cost_seq_len=8)
    small = evaluate_candidate("tiny0", space, proxy_spec("num_params"), settings)
    large = evaluate_candidate("tiny4", space, proxy_spec("num_params"), settings)
    assert 0 < small.flops < large.flops and small.score < large.score
    limited = EvalSettings(2, 8, costs=("params", "flops"), limits={"flops": small.flops}, cost_seq_len=8)
    assert evaluate_candidate("tiny4", space, proxy_spec("num_params"), limited).feasible is False


def test_latency_is_measured_and_limited():
    space = TabularSpace(FAKE_BENCHMARK)
    settings = EvalSettings(2, 8, costs=("params", "latency"), cost_seq_len=8)
    r = evaluate_candidate("tiny4", space, proxy_spec("num_params"), settings)
    assert r.latency > 0 and r.feasible is True and r.score is not None
    limited = EvalSettings(2, 8, costs=("params", "latency"), limits={"latency": 1e-6}, cost_seq_len=8)
    over = evaluate_candidate("tiny4", space, proxy_spec("num_params"), limited)
    assert over.feasible is False and over.score is None


def test_a_candidate_that_raises_is_kept_with_its_error_and_marked_for_a_retry():
    class Broken(TabularSpace):
        def build_model(self, config, seed, device="cpu"):
            raise OSError("truncated weight file")

    r = evaluate_candidate("tiny4", Broken(FAKE_BENCHMARK), proxy_spec("grad_norm"), EvalSettings(2, 8))
    assert r.retry and r.score is None and r.error == "OSError: truncated weight file"
    assert CandidateResult.from_json(r.to_json()) == r and "retry" not in CandidateResult(1.0).to_json()


def test_a_parameter_limit_below_the_smallest_architecture_is_an_error(tmp_path):
    space = TabularSpace(FAKE_BENCHMARK)
    with pytest.raises(NASError, match="below the smallest architecture"):
        run_nas(space, proxy_spec("num_params"), EvalSettings(2, 8, limits={"params": 10}), SMALL, tmp_path)


def test_tabular_run_picks_within_the_limit_and_reports_regret(tmp_path):
    space = TabularSpace(FAKE_BENCHMARK)
    params = {a: space.count_params({"id": a})["total"] for a in space.ids}
    limit = sorted(params.values())[3]
    summary = run_nas(space, proxy_spec("num_params"), EvalSettings(2, 8, limits={"params": limit}), SMALL, tmp_path,
                      given={a: float(p) for a, p in params.items()})
    chosen = summary["chosen"]
    assert chosen["params"] == limit  # the largest that fits: the parameter count is the proxy
    truth = {a: space.ground_truth({"id": a}) for a in space.ids}
    best = max(truth[a] for a in space.ids if params[a] <= limit)
    assert summary["tabular"]["regret"] == pytest.approx(best - truth[chosen["key"]])
    assert math.isclose(summary["tabular"]["hypervolume_ratio"], summary["tabular"]["hypervolume_ratio"])


def test_the_tabular_comparison_counts_only_candidates_with_a_ground_truth():
    found = [Candidate(k, k, {}, CandidateResult(s, params=p), t)
             for k, t, s, p in (("a", 1.0, 3.0, 10), ("b", None, 9.0, 5), ("c", 2.0, 1.0, 20))]
    summary = tabular_figures(Pick(found, found, found, found[0]), "params")  # crashed comparing None with floats
    assert summary["best"] == "c" and summary["regret"] == 1.0 and summary["feasible"] == 2
