"""Complexity, the Pareto front of complexity vs search-part ρ, --select, and `lpzero export RUN`."""
import dataclasses
import json
import math
import shutil

import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.cli import main
from lpzero.errors import LPZeroError
from lpzero.primitives import OPS, Op, PrimitiveError, parse_tree, pset_of
from lpzero.search import SearchSetup
from lpzero.search.complexity import (DEFAULT_SELECT, parse_select, pareto_front, pysr_scores, renamed_select,
                                      select_model, tree_complexity)

SEARCH = ["--population", "8", "--iterations", "15", "--sample", "3", "--runs", "2", "--baselines", "none",
          "--batch-size", "2", "--seq-len", "16", "--holdout", "0.34"]


def invoke(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


# --- complexity ---------------------------------------------------------------------------

def test_complexity_counts_nodes_with_the_ops_weights():
    tree = parse_tree("layer_sum__Lw(frobenius__Tw(G))", pset_of(OPS))
    assert tree_complexity(tree, OPS) == 3  # every built-in op weighs 1, as do inputs
    heavy = OPS.copy()
    heavy._ops["frobenius"] = dataclasses.replace(OPS["frobenius"], complexity=4)
    assert tree_complexity(tree, heavy) == 6


@pytest.mark.parametrize("weight", [0, -1, 1.5, True])
def test_an_op_refuses_a_complexity_that_is_not_a_positive_whole_number(weight):
    with pytest.raises(PrimitiveError, match="complexity"):
        dataclasses.replace(OPS["abs"], complexity=weight)
    assert Op.__dataclass_fields__["complexity"].default == 1


# --- the front and model selection -----------------------------------------------------------

def test_the_front_keeps_the_best_tree_at_each_complexity_that_beats_all_simpler_ones():
    complexity = [5, 3, 3, 7, 4, 9, 2]
    rho = [0.90, 0.80, 0.85, 0.88, None, 0.95, 0.85]
    # complexity 2: 0.85; 3: 0.85 is no better; 5: 0.90; 7: 0.88 is dominated; 9: 0.95; None never enters
    assert pareto_front(complexity, rho) == [6, 0, 5]
    assert pareto_front([3, 3], [0.5, 0.5]) == [0]  # ties: the earlier (fitter) tree


def test_select_accuracy_keeps_the_final_selection_and_simplest_takes_the_simplest_within_delta():
    complexity, rho = [2, 4, 7, 12], [0.60, 0.90, 0.95, 0.96]
    assert select_model("accuracy", complexity, rho) is None
    assert select_model("simplest:0.01", complexity, rho) == 2
    assert select_model("simplest:0", complexity, rho) == 3
    assert select_model("simplest:0.5", complexity, rho) == 0


def test_best_and_score_are_pysrs_largest_drop_of_log_loss_per_complexity_near_the_best_and_anywhere():
    complexity, rho = [2, 4, 7, 12], [0.60, 0.90, 0.95, 0.96]
    scores = pysr_scores(complexity, rho)
    assert scores[0] == 0.0 and scores[1] == pytest.approx(-math.log(0.1 / 0.4) / 2)
    # 4 has the largest score, but its loss 0.1 is not within 1.5 x the best loss 0.04; 7 (0.05) is
    assert select_model("best", complexity, rho) == 2
    assert select_model("score", complexity, rho) == 1  # PySR's "score": the largest score, wherever its loss
    assert select_model("best", [3], [1.0]) == 0  # ρ = 1: loss 0 is clamped, not log(0)


@pytest.mark.parametrize("old, new", [("best", "accuracy"), ("score", "best")])
def test_the_former_select_spellings_name_their_new_meaning(old, new):
    assert f"--select {new}" in renamed_select(old) and renamed_select(new if new != "best" else "accuracy") is None


@pytest.mark.parametrize("bad", ["simplest", "simplest:-1", "simplest:nan", "score:2", "best:1", "accuracy:1", "held-out"])
def test_a_malformed_select_is_refused_before_any_work(bad):
    with pytest.raises(LPZeroError, match="select"):
        parse_select(bad)
    with pytest.raises(LPZeroError, match="select"):
        SearchSetup(select=bad)


def test_the_default_select_is_the_one_chosen_on_validation_data():
    assert SearchSetup().select == DEFAULT_SELECT == "simplest:0.005"
    parse_select(DEFAULT_SELECT)


# --- end to end on the fake benchmark ----------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`lpzero evolve` on the fake benchmark with each --select: {select: (folder, best.json)}."""
    root = tmp_path_factory.mktemp("front")
    done = {}
    for select in ("accuracy", "simplest:1", "best"):
        out = root / select.replace(":", "_")
        invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", root / "cache", "--out", out,
               "--select", select, *SEARCH)
        done[select] = out, json.loads((out / "best.json").read_text())
    return done


def test_the_run_writes_the_front_its_plot_and_report(runs):
    out, best = runs["accuracy"]
    hof = json.loads((out / "hall_of_fame.json").read_text())
    front = json.loads((out / "pareto_front.json").read_text())
    assert isinstance(hof, list) and best["tree"] == hof[0]["tree"]  # the default choice is today's
    assert best["select"] == "accuracy" and best["setup"]["select"] == "accuracy"
    assert (out / "pareto_formulas.png").stat().st_size > 0
    assert front and all({"complexity", "search", "search_part", "heldout", "formula", "tree"} <= set(e) for e in front)
    c = [e["complexity"] for e in front]
    rho = [e["search_part"]["spearman"] for e in front]
    assert c == sorted(set(c)) and rho == sorted(set(rho))  # simpler first, each strictly better
    assert all(isinstance(e["complexity"], int) for e in hof)
    assert "## Pareto front" in (out / "report.md").read_text()


def test_other_selections_pick_a_front_tree_and_record_it(runs):
    out, best = runs["simplest:1"]
    front = json.loads((out / "pareto_front.json").read_text())
    assert best["select"] == "simplest:1" and best["tree"] == front[0]["tree"]  # ρ within 1 of the best: simplest
    out, best = runs["best"]
    assert best["tree"] in [e["tree"] for e in json.loads((out / "pareto_front.json").read_text())]


def test_export_prints_the_front_of_a_run(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs["accuracy"][0], out)  # a copy: the other tests read the module's run
    front = json.loads((out / "pareto_front.json").read_text())
    for target in (out, out / "hall_of_fame.json", out / "pareto_front.json"):
        lines = invoke("export", target).output.strip().splitlines()
        assert "complexity" in lines[0] and len(lines) == 1 + len(front)
        assert lines[1].split()[0] == str(front[0]["complexity"]) and front[0]["formula"] in lines[1]
    (out / "pareto_front.json").unlink()
    r = invoke("export", out, ok=False)
    assert r.exit_code == 2 and "pareto_front.json: file not found" in r.output
