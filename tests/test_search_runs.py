"""lpzero.search.search: a search's split, runs with their own seeds, the final selection."""
import importlib.util
from collections import Counter
from pathlib import Path

import pytest
from deap import tools

from lpzero.errors import LPZeroError
from lpzero.search import EvolveSettings, SearchSetup, evolve_on, run_seed, search_sample, select_final
from lpzero.search.loop import identity_function, rank_key
from synthetic import planted_truth, synthetic_inputs


def test_final_selection_reranks_the_hall_of_fame_on_the_search_part():
    fittest_first = [0.95, 0.97, None, 0.96]  # search-part ρ of the hall of fame, fittest first
    assert select_final(fittest_first, "sample") == [0, 1, 2, 3]
    assert select_final(fittest_first, "search") == [1, 3, 0, 2]  # invalid on the part: last
    with pytest.raises(LPZeroError, match="unknown final selection 'held-out'"):
        select_final(fittest_first, "held-out")


def test_the_split_keeps_the_held_out_part_out_of_the_sample():
    ids = [f"a{i}" for i in range(40)]
    search, held, sample = search_sample(ids, SearchSetup(sample=10, holdout=0.25))
    assert len(held) == 10 and len(search) == 30 and len(sample) == 10
    assert set(sample) <= set(search) and not set(held) & set(search)
    assert search_sample(ids, SearchSetup(sample=10, holdout=0.25)) == (search, held, sample)


@pytest.mark.parametrize("changes, message", [
    ({"holdout": 0.0}, "holdout 0.0"),
    ({"sample": 1}, "sample 1"),
    ({"runs": 0}, "runs 0"),
    ({"toolbox": "nosuch"}, "unknown toolbox 'nosuch'"),
])
def test_setup_out_of_range_is_refused(changes, message):
    with pytest.raises(LPZeroError, match=message):
        SearchSetup(**changes)


def _search(out=None, resume=False, progress=None, runs=3, customize=None, iterations=20):
    inputs = synthetic_inputs()
    setup = SearchSetup(runs=runs, evolve=EvolveSettings(population=12, iterations=iterations, checkpoint_every=5))
    return evolve_on(inputs, planted_truth(inputs), setup, out, resume=resume, progress=progress,
                     customize=customize)


def test_runs_of_a_search_have_their_own_seeds_and_pool_their_finalists():
    assert run_seed(42, 0) == 42  # a one-run search is the paper's run with the CLI's seed
    assert len({run_seed(42, r) for r in range(8)} | {run_seed(43, r) for r in range(1, 8)}) == 15
    runs = _search()
    assert runs.seeds == [run_seed(42, r) for r in range(3)]
    assert all(tb.pset is runs.pset for tb in runs.toolboxes)  # one primitive set for evaluator and toolboxes
    pooled = [ind.evaluation.ranking for s in runs.states for ind in s.population[:5]]
    assert len(set(pooled)) < len(pooled)  # the runs found some proxy in common ...
    finalists = runs.finalists(per_run=5, distinct="ranking")
    identities = [ind.evaluation.ranking for _, ind in finalists]
    assert len(identities) == len(set(identities))  # ... which the finalists list once
    assert {run for run, _ in finalists} == {0, 1, 2}
    fitness = [ind.fitness.values[0] for _, ind in finalists]
    assert fitness == sorted(fitness, reverse=True)


def _finalists_by_hand(runs, per_run, distinct):
    """The finalists as they were chosen before DEAP's hall of fame: a dict of the smallest tree per proxy."""
    identity, chosen = identity_function(distinct), {}
    for run, state in enumerate(runs.states):
        for ind in [ind for ind in state.population if ind.evaluation.valid][:per_run]:
            key = identity(ind)
            if key not in chosen or rank_key(ind) < rank_key(chosen[key][1]):
                chosen[key] = (run, ind)
    return sorted(chosen.values(), key=lambda pair: rank_key(pair[1]))


@pytest.mark.parametrize("searched_with", ["ranking", "text"])
def test_the_hall_of_fame_picks_the_trees_the_hand_written_one_picked(searched_with):
    inputs = synthetic_inputs()
    setup = SearchSetup(runs=3, evolve=EvolveSettings(population=12, iterations=30, distinct=searched_with))
    runs = evolve_on(inputs, planted_truth(inputs), setup)
    for distinct in ("ranking", "text"):
        for per_run in (1, 5, 12):
            expected = _finalists_by_hand(runs, per_run, distinct)
            got = runs.finalists(per_run, distinct)
            assert [(r, str(i), i.fitness.values) for r, i in got] == \
                   [(r, str(i), i.fitness.values) for r, i in expected]


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


def test_the_example_research_script_runs_its_own_operators():
    path = Path(__file__).resolve().parents[1] / "scripts" / "custom_operators.py"
    spec = importlib.util.spec_from_file_location("custom_operators", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = Counter()

    def customize(tb):
        script.customize(tb)
        assert tb.select.func is tools.selTournament and tb.mutate.func.__module__ == "custom_operators"
        for name in ("mutate", "select"):
            chosen = getattr(tb, name)
            tb.register(name, lambda *a, _f=chosen, _n=name, **k: (calls.update([_n]), _f(*a, **k))[1])

    runs = _search(runs=1, customize=customize, iterations=300)
    assert calls["select"] == 300 and calls["mutate"] > 100  # the script's operators, not the defaults
    assert runs.states[0].population[0].fitness.values[0] > 0.5


def test_resume_refuses_other_fitness_data_or_context(tmp_path):
    _search(tmp_path, runs=1)
    inputs = synthetic_inputs(seed=1)  # another sample of architectures
    setup = SearchSetup(runs=1, evolve=EvolveSettings(population=12, iterations=20, checkpoint_every=5))
    with pytest.raises(LPZeroError, match="fitness_data"):
        evolve_on(inputs, planted_truth(inputs), setup, tmp_path, resume=True)
    inputs = synthetic_inputs()
    with pytest.raises(LPZeroError, match="holdout"):
        evolve_on(inputs, planted_truth(inputs), setup, tmp_path, resume=True, context={"holdout": 0.7})
