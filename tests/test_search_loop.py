"""lpzero.search.loop: Algorithm 1 through the toolbox, checkpoints, distinct proxies."""
import functools
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import operator

import pytest
from deap import base, creator, gp, tools

from lpzero.errors import LPZeroError, ResultError
from lpzero.primitives import generate_typed
from lpzero.search.loop import (BLOAT_FIELDS, EvolutionState, EvolveSettings, LoopCheckpoint, LoopStatistics, _admit,
                                identity_function, run_evolution)
from lpzero.search.rps import rps_guard
from lpzero.search.toolbox import cx_one_point, ensure_creator, from_record
from synthetic import synthetic_toolbox


def run(tmp_path, kind="typed", iterations=60, resume=False, **settings):
    tb, _ = synthetic_toolbox(kind)
    s = EvolveSettings(population=20, iterations=iterations, checkpoint_every=10, **settings)
    return run_evolution(tb, s, LoopCheckpoint.of_toolbox(tb, tmp_path, resume=resume), LoopStatistics.of_toolbox(tb))


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
    c = run(tmp_path / "c", kind, seed=7)
    assert [str(i) for i in c.population] != [str(i) for i in a.population]


@pytest.mark.parametrize("kind", ["typed", "paper"])
def test_resume_reaches_the_uninterrupted_result(tmp_path, kind):
    whole = run(tmp_path / "whole", kind, iterations=60)
    run(tmp_path / "cut", kind, iterations=30)
    resumed = run(tmp_path / "cut", kind, iterations=60, resume=True)
    assert [str(i) for i in resumed.population] == [str(i) for i in whole.population]
    assert [r["best"] for r in resumed.log] == [r["best"] for r in whole.log]
    saved = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert saved["iteration"] == 60


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    run(tmp_path, iterations=20)
    with pytest.raises(ResultError, match="other settings.*settings.seed was 42 then, 7 now"):
        run(tmp_path, iterations=20, resume=True, seed=7)
    assert len(run(tmp_path, iterations=30, resume=True).log) == 30  # more iterations is a legal change


def test_a_damaged_checkpoint_is_one_clear_error(tmp_path):
    run(tmp_path, iterations=20)
    ckpt = tmp_path / "checkpoint.json"
    ckpt.write_text(ckpt.read_text()[:100])
    with pytest.raises(ResultError, match="damaged checkpoint"):
        run(tmp_path, iterations=20, resume=True)


def test_the_log_is_a_deap_logbook_of_the_population_statistics(tmp_path):
    state = run(tmp_path, iterations=10)
    assert isinstance(state.logbook, tools.Logbook) and len(state.logbook) == 10
    fits = [ind.fitness.values[0] for ind in state.population]
    assert state.log[-1]["best"] == max(fits)
    assert set(state.log[-1]) == {"iteration", "best", "median", "invalid", "rps_rejected", "seconds", *BLOAT_FIELDS}


def test_random_search_draws_new_proxies_instead_of_varying_parents(tmp_path):
    tb, _ = synthetic_toolbox()
    calls = Counter()
    for name in ("mate", "mutate", "select", "individual"):
        original = getattr(tb, name)
        tb.register(name, lambda *a, _f=original, _n=name, **k: (calls.update([_n]), _f(*a, **k))[1])
    random.seed(0)
    state = run_evolution(tb, EvolveSettings(population=20, iterations=40, random_search=True))
    assert len(state.log) == 40
    assert calls["mate"] == calls["mutate"] == calls["select"] == 0
    assert calls["individual"] >= 20 + 40


def test_every_operator_a_script_registers_is_the_one_the_loop_calls(tmp_path):
    tb, ev = synthetic_toolbox()
    calls = Counter()

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    tb.register("evaluate", counted("evaluate", ev))
    tb.register("mate", counted("mate", gp.cxOnePoint))
    tb.register("mutate", counted("mutate", gp.mutNodeReplacement), pset=tb.pset)
    tb.decorate("mutate", rps_guard(tb.rps_log))
    tb.register("select", counted("select", tools.selTournament), tournsize=3)
    state = run_evolution(tb, EvolveSettings(population=20, iterations=30, crossover=1.0, mutation=1.0),
                          LoopCheckpoint.of_toolbox(tb, tmp_path), LoopStatistics.of_toolbox(tb))
    assert calls["select"] == 30 and calls["mate"] == 30 and calls["mutate"] >= 30
    assert calls["evaluate"] >= 20 + 30
    assert state.population[0].evaluation.valid


def test_a_custom_evaluate_returning_a_plain_tuple_works():
    tb, ev = synthetic_toolbox()
    tb.register("evaluate", lambda ind: (ev(ind).fitness,))
    state = run_evolution(tb, EvolveSettings(population=20, iterations=20, distinct="text"))
    assert state.population[0].fitness.values[0] > 0


def _hand_made_toolbox() -> base.Toolbox:
    """A toolbox made by hand from DEAP's parts: no RPS log, no record functions."""
    _, ev = synthetic_toolbox()
    ensure_creator()
    tb = base.Toolbox()
    tb.register("expr", generate_typed, ev.pset, 2, 5)
    tb.register("individual", tools.initIterate, creator.ProxyTree, tb.expr)
    tb.register("population", tools.initRepeat, list, tb.individual)
    tb.register("evaluate", ev)
    tb.register("select", tools.selTournament, tournsize=3)
    tb.register("mate", cx_one_point)
    tb.register("expr_mut", generate_typed, min_=0, max_=3)
    tb.register("mutate", gp.mutUniform, expr=tb.expr_mut, pset=ev.pset)
    for name in ("mate", "mutate"):
        tb.decorate(name, gp.staticLimit(key=operator.attrgetter("height"), max_value=8))
    return tb


def test_a_toolbox_made_by_hand_runs_and_resumes_with_what_is_passed_in(tmp_path):
    tb = _hand_made_toolbox()
    assert not any(hasattr(tb, name) for name in ("rps_log", "record", "from_record", "pset"))
    settings = EvolveSettings(population=20, iterations=30, checkpoint_every=10)
    whole = run_evolution(tb, settings, LoopCheckpoint(tmp_path / "whole"))
    assert whole.population[0].evaluation.valid and {r["rps_rejected"] for r in whole.log} == {0}
    saved = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())
    assert saved["rps"] is None and saved["population"][0]["tree"] == str(whole.population[0])
    run_evolution(_hand_made_toolbox(), EvolveSettings(population=20, iterations=15, checkpoint_every=10),
                  LoopCheckpoint(tmp_path / "cut"))
    read_back = functools.partial(from_record, pset=tb.evaluate.func.pset)  # the evaluator's set reads trees back
    resumed = run_evolution(_hand_made_toolbox(), settings, LoopCheckpoint(tmp_path / "cut", resume=True,
                                                                           from_record=read_back))
    assert [str(i) for i in resumed.population] == [str(i) for i in whole.population]
    with pytest.raises(LPZeroError, match="from_record"):
        run_evolution(_hand_made_toolbox(), settings, LoopCheckpoint(tmp_path / "cut", resume=True))


def test_statistics_and_a_hall_of_fame_are_passed_in(tmp_path):
    tb, _ = synthetic_toolbox()
    hof = tools.HallOfFame(3)
    state = run_evolution(tb, EvolveSettings(population=20, iterations=20), stats=LoopStatistics(complexity=lambda i: 7),
                          halloffame=hof)
    assert {r["complexity_max"] for r in state.log} == {7}  # the complexity given, not the node count
    assert len(hof) == 3 and hof[0].fitness.values[0] == state.population[0].fitness.values[0]


def test_a_checkpoint_written_before_checkpoints_had_a_version_still_resumes(tmp_path):
    whole = run(tmp_path / "whole", iterations=30)
    run(tmp_path / "cut", iterations=20)
    path = tmp_path / "cut" / "checkpoint.json"
    old = json.loads(path.read_text())
    del old["version"]
    path.write_text(json.dumps(old))
    resumed = run(tmp_path / "cut", iterations=30, resume=True)
    assert [str(i) for i in resumed.population] == [str(i) for i in whole.population]
    old["version"] = 2
    path.write_text(json.dumps(old))
    with pytest.raises(ResultError, match="version 2; this lpzero reads version 1"):
        run(tmp_path / "cut", iterations=30, resume=True)


@pytest.mark.slow
def test_same_seed_same_result_in_separate_processes(tmp_path):
    """Type classes hash by address, which differs between processes; the run must not care."""
    script = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "from synthetic import synthetic_toolbox\n"
        "from lpzero.search import EvolveSettings, run_evolution\n"
        "x = [object() for _ in range(int(sys.argv[2]))]  # shift later allocations\n"
        "tb, _ = synthetic_toolbox()\n"
        "state = run_evolution(tb, EvolveSettings(population=20, iterations=80))\n"
        "print([str(i) for i in state.population])\n"
    )
    tests = Path(__file__).resolve().parent
    outs = {subprocess.run([sys.executable, "-c", script, str(tests), str(n)], capture_output=True,
                           text=True, check=True).stdout for n in (0, 7919)}
    assert len(outs) == 1


@pytest.mark.slow
@pytest.mark.parametrize("pool_kind", ["process", "thread"])
def test_parallel_fitness_through_toolbox_map_repeats_the_serial_run(pool_kind):
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    settings = EvolveSettings(population=20, iterations=30)
    tb, _ = synthetic_toolbox()
    serial = run_evolution(tb, settings)
    tb, _ = synthetic_toolbox()
    # DEAP's recipe: register a pool's map; spawned workers must create DEAP's classes first
    pool = (multiprocessing.get_context("spawn").Pool(2, initializer=ensure_creator) if pool_kind == "process"
            else ThreadPoolExecutor(2))
    with pool:
        tb.register("map", pool.map)
        parallel = run_evolution(tb, settings)
    assert [str(i) for i in parallel.population] == [str(i) for i in serial.population]
    assert parallel.log == [{**r, "seconds": p["seconds"]} for r, p in zip(serial.log, parallel.log)]


def _rankings(population):
    return [ind.evaluation.ranking for ind in population if ind.evaluation.valid]


def test_population_holds_one_tree_per_ranking_of_the_sample():
    from lpzero.search.loop import evaluate_all

    tb, _ = synthetic_toolbox()
    random.seed(42)
    drawn = tb.population(40)
    evaluate_all(tb, drawn)
    assert len(set(_rankings(drawn))) < len(_rankings(drawn))  # random trees include copies of one proxy ...
    tb, _ = synthetic_toolbox()
    start = run_evolution(tb, EvolveSettings(population=40, iterations=0))
    kept = _rankings(start.population)  # ... which the initial population redraws
    assert len(start.population) == 40 and len(kept) == len(set(kept))
    tb, _ = synthetic_toolbox()
    kept = _rankings(run_evolution(tb, EvolveSettings(population=20, iterations=150)).population)
    assert len(kept) == len(set(kept))
    # the same search keeping text-distinct trees fills its pool with rank-equivalent copies
    tb, _ = synthetic_toolbox()
    by_text = _rankings(run_evolution(tb, EvolveSettings(population=20, iterations=150, distinct="text")).population)
    assert len(set(by_text)) < len(by_text)


def test_the_smaller_of_two_equivalent_proxies_is_kept():
    tb, ev = synthetic_toolbox()
    big = gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(abs__Tw(abs__Tw(G))))", tb.pset)
    small = gp.PrimitiveTree.from_string("layer_sum__Lw(l1__Tw(abs__Tw(G)))", tb.pset)
    pop, members = [], {}
    identity = identity_function("ranking")
    for tree in (big, small, big):
        ind = creator.ProxyTree(tree)
        ind.fitness.values = ind.evaluation = ev(ind)
        _admit(pop, members, identity, ind, size=5)
    assert [str(i) for i in pop] == [str(small)]


@pytest.mark.parametrize("changes, message", [
    ({"population": 1}, "population 1"),
    ({"crossover": 1.5}, "crossover 1.5"),
    ({"top_fraction": 0.0}, "top_fraction 0.0"),
    ({"distinct": "tree"}, "distinct 'tree'"),
])
def test_settings_out_of_range_are_refused(changes, message):
    from lpzero.errors import LPZeroError

    with pytest.raises(LPZeroError, match=message):
        EvolveSettings(**changes)


def test_state_log_is_the_logbook_records():
    state = EvolutionState(population=[])
    state.logbook.record(iteration=1, best=0.5)
    assert state.log == [{"iteration": 1, "best": 0.5}]
