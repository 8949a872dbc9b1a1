import json
import math

import numpy as np
import pytest
from deap import gp

from lpzero.evolve import EvolutionState, EvolveSettings, run_evolution
from lpzero.fitness import INVALID_FITNESS, FitnessEvaluator, spearman_fitness
from lpzero.rps import rps_guard
from lpzero.toolbox import build_toolbox
from synthetic import planted_truth, synthetic_inputs


def setup(kind="typed", **kw):
    inputs = synthetic_inputs()
    ev = FitnessEvaluator(None, inputs, planted_truth(inputs))
    tb = build_toolbox(kind, ev, **kw)
    ev.pset = tb.pset
    return tb, ev


def run(tmp_path, kind="typed", iterations=60, resume=False, **settings):
    tb, ev = setup(kind)
    s = EvolveSettings(population=20, iterations=iterations, checkpoint_every=10, **settings)
    return run_evolution(tb, ev, s, tmp_path, resume=resume)


def test_invalid_proxies_get_the_worst_fitness_and_a_reason():
    assert spearman_fitness([1.0, 1.0, 1.0], [1, 2, 3]).reason == "constant scores"
    ev = spearman_fitness([1.0, math.nan, 2.0], [1, 2, 3])
    assert ev.fitness == INVALID_FITNESS and "non-finite" in ev.reason
    assert INVALID_FITNESS < -1.0
    assert spearman_fitness([3.0, 2.0, 1.0], [1, 2, 3]).spearman == pytest.approx(-1.0)


@pytest.mark.parametrize("kind", ["typed", "paper"])
def test_search_recovers_a_planted_proxy(tmp_path, kind):
    state = run(tmp_path, kind, iterations=150)
    assert state.population[0].fitness.values[0] > 0.95


@pytest.mark.parametrize("kind", ["typed", "paper"])
def test_same_seed_same_result(tmp_path, kind):
    a = run(tmp_path / "a", kind)
    b = run(tmp_path / "b", kind)
    assert [str(i) for i in a.population] == [str(i) for i in b.population]
    assert [r["best"] for r in a.log] == [r["best"] for r in b.log]


@pytest.mark.parametrize("kind", ["typed", "paper"])
def test_resume_reaches_the_uninterrupted_result(tmp_path, kind):
    whole = run(tmp_path / "whole", kind, iterations=60)
    run(tmp_path / "cut", kind, iterations=30)
    resumed = run(tmp_path / "cut", kind, iterations=60, resume=True)
    assert [str(i) for i in resumed.population] == [str(i) for i in whole.population]
    saved = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert saved["iteration"] == 60


def test_random_search_baseline_runs(tmp_path):
    state = run(tmp_path, iterations=40, random_search=True)
    assert len(state.log) == 40


def test_a_script_can_reregister_operators(tmp_path):
    tb, ev = setup()
    tb.register("mutate", gp.mutNodeReplacement, pset=tb.pset)
    tb.decorate("mutate", rps_guard(tb.rps_log))
    tb.register("select", lambda pop, k: pop[:k])
    state = run_evolution(tb, ev, EvolveSettings(population=20, iterations=30), tmp_path)
    assert np.isfinite(state.population[0].fitness.values[0])


def test_no_rps_switch_lets_rule_breaking_offspring_through():
    from deap import gp as deap_gp

    for rps, expect_changed in ((False, True), (True, False)):
        tb, _ = setup(rps=rps)
        bad = deap_gp.PrimitiveTree.from_string("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))", tb.pset)
        tb.register("mutate", lambda ind: (bad,))
        if rps:
            tb.decorate("mutate", rps_guard(tb.rps_log, max_tries=2))
        parent = deap_gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(W))", tb.pset)
        (child,) = tb.mutate(parent)
        assert (str(child) != str(parent)) == expect_changed
        assert (tb.rps_log.rejected > 0) == rps


def test_same_seed_same_result_in_separate_processes(tmp_path):
    """Type classes hash by address, which differs between processes; the run must not care."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from synthetic import planted_truth, synthetic_inputs\n"
        "from lpzero.evolve import EvolutionState, EvolveSettings, run_evolution\n"
        "from lpzero.fitness import FitnessEvaluator\n"
        "from lpzero.toolbox import build_toolbox\n"
        "x = [object() for _ in range(int(sys.argv[3]))]  # shift later allocations\n"
        "inputs = synthetic_inputs(); ev = FitnessEvaluator(None, inputs, planted_truth(inputs))\n"
        "tb = build_toolbox('typed', ev); ev.pset = tb.pset\n"
        "state = run_evolution(tb, ev, EvolveSettings(population=20, iterations=80))\n"
        "print([str(i) for i in state.population])\n"
    )
    tests = Path(__file__).resolve().parent
    outs = {subprocess.run([sys.executable, "-c", script, str(tests), str(tests.parent), str(n)], capture_output=True,
                           text=True, check=True).stdout for n in (0, 7919)}
    assert len(outs) == 1


def test_scores_equal_up_to_rounding_are_constant():
    assert spearman_fitness([0.25, 0.25 * (1 + 1e-8), 0.25 * (1 - 1e-8)], [1, 2, 3]).reason == "constant scores"
    assert spearman_fitness([0.25, 0.26, 0.27], [1, 2, 3]).valid


@pytest.mark.parametrize("pool_kind", ["process", "thread"])
def test_parallel_fitness_through_toolbox_map_repeats_the_serial_run(pool_kind):
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    from lpzero.toolbox import ensure_creator

    settings = EvolveSettings(population=20, iterations=30)
    tb, ev = setup()
    serial = run_evolution(tb, ev, settings)
    tb, ev = setup()
    # DEAP's recipe: register a pool's map; spawned workers must create DEAP's classes first
    pool = (multiprocessing.get_context("spawn").Pool(2, initializer=ensure_creator) if pool_kind == "process"
            else ThreadPoolExecutor(2))
    with pool:
        tb.register("map", pool.map)
        parallel = run_evolution(tb, ev, settings)
    assert [str(i) for i in parallel.population] == [str(i) for i in serial.population]
    assert parallel.log == [{**r, "seconds": p["seconds"]} for r, p in zip(serial.log, parallel.log)]


def _rankings(state, ev):
    return [ev.details(ind).ranking for ind in state.population if ev.details(ind).valid]


def test_population_holds_one_tree_per_ranking_of_the_sample(tmp_path):
    import random

    tb, ev = setup()
    random.seed(42)
    drawn = _rankings(EvolutionState(population=tb.population(40)), ev)
    assert len(set(drawn)) < len(drawn)  # random trees include copies of one proxy ...
    tb, ev = setup()
    start = run_evolution(tb, ev, EvolveSettings(population=40, iterations=0))
    kept = _rankings(start, ev)  # ... which the initial population redraws
    assert len(start.population) == 40 and len(kept) == len(set(kept))
    tb, ev = setup()
    s = EvolveSettings(population=20, iterations=150)
    by_ranking = run_evolution(tb, ev, s)
    kept = _rankings(by_ranking, ev)
    assert len(kept) == len(set(kept))
    # the same search keeping text-distinct trees fills its pool with rank-equivalent copies
    tb, ev = setup()
    by_text = run_evolution(tb, ev, EvolveSettings(population=20, iterations=150, distinct="text"))
    assert len(set(_rankings(by_text, ev))) < len(_rankings(by_text, ev))


def test_the_smaller_of_two_equivalent_proxies_is_kept():
    from deap import creator

    from lpzero.evolve import _admit, identity_function

    tb, ev = setup()
    pset = tb.pset
    big = gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(abs__Tw(abs__Tw(G))))", pset)
    small = gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(abs__Tw(G)))", pset)
    pop = []
    members = {}
    identity = identity_function("ranking", ev)
    for tree in (big, small, big):
        ind = creator.ProxyTree(tree)
        ind.fitness.values = ev(ind)
        _admit(pop, members, identity, ind, size=5)
    assert [str(i) for i in pop] == [str(small)]


def test_final_selection_reranks_the_hall_of_fame_on_the_search_part():
    from lpzero.errors import LPZeroError
    from lpzero.experiment import select_final

    fittest_first = [0.95, 0.97, None, 0.96]  # search-part ρ of the hall of fame, fittest first
    assert select_final(fittest_first, "sample") == [0, 1, 2, 3]
    assert select_final(fittest_first, "search") == [1, 3, 0, 2]  # invalid on the part: last
    with pytest.raises(LPZeroError, match="unknown final selection"):
        select_final(fittest_first, "held-out")


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    from lpzero.errors import LPZeroError

    run(tmp_path, iterations=20)
    with pytest.raises(LPZeroError, match="other settings.*seed=42"):
        run(tmp_path, iterations=20, resume=True, seed=7)
    assert len(run(tmp_path, iterations=30, resume=True).log) == 30  # more iterations is a legal change


def _search(out=None, resume=False, progress=None, runs=3):
    from lpzero.experiment import SearchSetup, evolve_on

    inputs = synthetic_inputs()
    setup = SearchSetup(runs=runs, evolve=EvolveSettings(population=12, iterations=20, checkpoint_every=5))
    return evolve_on(inputs, planted_truth(inputs), setup, out, resume=resume, progress=progress)


def test_runs_of_a_search_have_their_own_seeds_and_pool_their_finalists():
    from lpzero.experiment import run_seed

    assert run_seed(42, 0) == 42  # a one-run search is the paper's run with the CLI's seed
    assert len({run_seed(42, r) for r in range(8)} | {run_seed(43, r) for r in range(1, 8)}) == 15
    runs = _search()
    assert runs.seeds == [run_seed(42, r) for r in range(3)]
    pooled = [runs.evaluator.details(ind).ranking for s in runs.states for ind in s.population[:5]]
    assert len(set(pooled)) < len(pooled)  # the runs found some proxy in common ...
    finalists = runs.finalists(per_run=5, distinct="ranking")
    identities = [runs.evaluator.details(ind).ranking for _, ind in finalists]
    assert len(identities) == len(set(identities))  # ... which the finalists list once
    assert {run for run, _ in finalists} == {0, 1, 2}
    fitness = [ind.fitness.values[0] for _, ind in finalists]
    assert fitness == sorted(fitness, reverse=True)


def test_an_interrupted_search_of_several_runs_resumes_to_the_same_result(tmp_path):
    whole = _search(tmp_path / "whole")

    def interrupt(done, best):
        if done == 27:  # in run 1, after its checkpoint at iteration 5
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "cut", progress=interrupt)
    assert not (tmp_path / "cut" / "run_2").exists()
    resumed = _search(tmp_path / "cut", resume=True)
    assert [[str(i) for i in s.population] for s in resumed.states] == \
           [[str(i) for i in s.population] for s in whole.states]


def test_the_example_research_script_runs_its_operators_on_typed_trees():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "custom_operators.py"
    spec = importlib.util.spec_from_file_location("custom_operators", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tb, ev = setup()
    script.customize(tb)
    state = run_evolution(tb, ev, EvolveSettings(population=20, iterations=300))
    assert np.isfinite(state.population[0].fitness.values[0])
