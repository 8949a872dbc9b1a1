"""Parsimony pressure (`--parsimony`) and the bloat columns of the log (docs/concepts.md, "Parsimony pressure")."""
import csv
import json
import statistics
from dataclasses import replace

import pytest
from click.testing import CliRunner
from deap import tools

from conftest import FAKE_BENCHMARK
from lpzero.cli import main
from lpzero.errors import LPZeroError, ResultError
from lpzero.search import EvolveSettings, SearchSetup, evolve_on
from lpzero.search.complexity import parse_parsimony, tree_complexity
from lpzero.search.loop import LoopCheckpoint, LoopStatistics, run_evolution
from lpzero.primitives import OPS
from synthetic import planted_truth, synthetic_inputs, synthetic_toolbox


def _run(parsimony: str = "0", iterations: int = 120, out=None, resume: bool = False):
    tb, _ = synthetic_toolbox(parsimony=parsimony)
    checkpoint = None if out is None else LoopCheckpoint.of_toolbox(tb, out, resume=resume)
    settings = EvolveSettings(population=20, iterations=iterations, checkpoint_every=10)
    return tb, run_evolution(tb, settings, checkpoint, LoopStatistics.of_toolbox(tb))


def _mean_complexity(state) -> float:
    return statistics.fmean(tree_complexity(ind, OPS) for ind in state.population)


@pytest.mark.parametrize("text, parsed", [("0", ("coefficient", (0.0,))), ("0.01", ("coefficient", (0.01,))),
                                          ("double:7,1.4", ("double", (7, 1.4)))])
def test_parsimony_forms_are_read(text, parsed):
    assert parse_parsimony(text) == parsed


@pytest.mark.parametrize("text", ["-0.1", "nan", "x", "double:0,1.4", "double:7,2.5", "double:7", "triple:1,1"])
def test_malformed_parsimony_is_refused(text):
    with pytest.raises(LPZeroError, match="--parsimony"):
        SearchSetup(parsimony=text)


def test_a_coefficient_makes_selection_see_the_penalised_fitness_and_reports_the_raw_one():
    tb, state = _run("0.02")
    for ind in state.population:
        if ind.evaluation.valid:
            assert ind.fitness.values[0] == pytest.approx(ind.evaluation.fitness - 0.02 * tb.complexity(ind))
    assert state.log[-1]["best"] == max(ind.evaluation.fitness for ind in state.population)


def test_a_coefficient_keeps_the_population_simpler():
    _, plain = _run("0")
    _, pressed = _run("0.05")
    assert _mean_complexity(pressed) < _mean_complexity(plain)


def test_double_tournament_is_the_registered_select():
    tb, state = _run("double:3,1.4", iterations=40)
    assert tb.select.func is tools.selDoubleTournament
    _, default = _run("0", iterations=40)
    assert [str(i) for i in state.population] != [str(i) for i in default.population]


def test_the_log_has_the_population_size_and_complexity():
    tb, state = _run("0", iterations=5)
    last = state.log[-1]
    assert last["size_max"] == max(len(i) for i in state.population)
    assert last["complexity_mean"] == round(statistics.fmean(tb.complexity(i) for i in state.population), 3)


def test_resume_with_another_parsimony_is_refused_and_with_another_spelling_of_it_continues(tmp_path):
    inputs = synthetic_inputs()
    setup = SearchSetup(runs=1, parsimony="0.01", evolve=EvolveSettings(population=12, iterations=10))
    evolve_on(inputs, planted_truth(inputs), setup, tmp_path)
    with pytest.raises(ResultError, match="context.parsimony was '0.01' then, absent now"):
        evolve_on(inputs, planted_truth(inputs), SearchSetup(runs=1, evolve=setup.evolve), tmp_path, resume=True)
    evolve_on(inputs, planted_truth(inputs), replace(setup, parsimony="1e-2"), tmp_path, resume=True)
    plain = SearchSetup(runs=1, evolve=setup.evolve)
    evolve_on(inputs, planted_truth(inputs), plain, tmp_path / "plain")
    evolve_on(inputs, planted_truth(inputs), replace(plain, parsimony="0.0"), tmp_path / "plain", resume=True)


@pytest.fixture(scope="module")
def pressed(tmp_path_factory):
    """`lpzero evolve --parsimony 0.01` on the fake benchmark: its output folder."""
    root = tmp_path_factory.mktemp("parsimony")
    args = ["evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", root / "cache", "--out", root / "run",
            "--samples", "12288", "--population", "8", "--iterations", "10", "--sample", "3", "--runs", "1",
            "--baselines", "num_params", "--parsimony", "0.01"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return root / "run"


def test_evolve_records_its_parsimony_in_best_json(pressed):
    assert json.loads((pressed / "best.json").read_text())["setup"]["parsimony"] == "0.01"


def test_evolve_logs_bloat_per_iteration(pressed):
    with open(pressed / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and all(float(r["complexity_mean"]) <= int(r["complexity_max"]) for r in rows)


def test_a_malformed_parsimony_is_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["evolve", "--benchmark", FAKE_BENCHMARK, "--parsimony", "-1",
                                  "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "--parsimony '-1'" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "c").exists()


def test_a_resumed_search_under_parsimony_reaches_the_uninterrupted_result(tmp_path):
    _, whole = _run("0.02", iterations=40, out=tmp_path / "whole")
    _run("0.02", iterations=20, out=tmp_path / "cut")
    _, resumed = _run("0.02", iterations=40, out=tmp_path / "cut", resume=True)
    assert [str(i) for i in resumed.population] == [str(i) for i in whole.population]
    assert [i.fitness.values for i in resumed.population] == [i.fitness.values for i in whole.population]
