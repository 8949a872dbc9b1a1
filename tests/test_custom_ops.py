"""Custom op tables round-trip through best.json, and re-registered operators keep the setup's limits.

Uses the worked example, `scripts/custom_operators.py` (its `CUSTOM_OPS`: the built-in table
plus `softplus`; its `customize`: re-registered mate, mutate and select), loaded by file path
as a new process would load it.
"""
from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
from deap import gp

from conftest import FAKE_BENCHMARK
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cache.request import CacheRequest
from lpzero.errors import ResultError
from lpzero.primitives import OPS, op_table, parse_tree, pset_of
from lpzero.proxies.found_proxy import PRIMITIVE_SET_VERSION, FoundProxy
from lpzero.registry import load_object
from lpzero.report import found_formula, load_best
from lpzero.search import EvolveSettings, SearchSetup, violations
from lpzero.search.toolbox import build_toolbox, register_operator
from lpzero.workflows.evolve import EvolveRequest, evolve

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "custom_operators.py"
CUSTOM = f"{SCRIPT}:CUSTOM_OPS"
#: a tree that reads the new op
SOFTPLUS_TREE = "layer_sum__Lw(mean__Tw(softplus__Tw(W)))"
#: neg∘neg: an involution twice, which RPS rejects
REJECTED_TREE = "layer_sum__Lw(mean__Tw(neg__Tw(neg__Tw(W))))"


def _toolbox(rps: bool, max_height: int = 6, ops=OPS):
    random.seed(0)
    return build_toolbox("typed", lambda ind: (0.0,), ops=ops, pset=pset_of(ops), rps=rps, max_height=max_height)


@pytest.mark.parametrize("rps", [True, False])
def test_a_reregistered_mutate_never_exceeds_max_height(rps):
    tb = _toolbox(rps, ops=op_table(CUSTOM))
    load_object(f"{SCRIPT}:customize")(tb)  # mutate inserts nodes: unlimited, trees grow by one each time
    heights = []
    for _ in range(20):
        ind = tb.individual()
        for _ in range(25):
            (ind,) = tb.mutate(ind)
            heights.append(ind.height)
    assert max(heights) <= 6 and len(set(heights)) > 1


def test_register_operator_limits_height_of_mate_as_build_toolbox_does():
    tb = _toolbox(rps=False, max_height=5)  # as tall as the first trees may be

    def grow(a, b):  # every offspring taller than the limit (height 6)
        tall = parse_tree("layer_sum__Lw(neg__Lw(neg__Lw(neg__Lw(neg__Lw(mean__Tw(W))))))", tb.pset)
        return type(a)(tall), type(b)(tall)

    register_operator(tb, "mate", grow)
    a, b = tb.individual(), tb.individual()
    assert all(child.height <= 5 for child in tb.mate(a, b))


def test_with_rps_off_a_reregistered_operator_is_not_rps_guarded():
    def always_rejected(ind):
        return (type(ind)(parse_tree(REJECTED_TREE, pset_of(OPS))),)

    guarded, free = _toolbox(rps=True), _toolbox(rps=False)
    for tb in (guarded, free):
        register_operator(tb, "mutate", always_rejected)
    start = guarded.individual()
    assert str(guarded.mutate(start)[0]) == str(start)  # RPS on: retried, then the parent is kept
    assert guarded.rps_log.rejected > 0 and guarded.rps_log.gave_up == 1
    assert str(free.mutate(free.individual())[0]) == REJECTED_TREE  # RPS off: what the operator made
    assert free.rps_log.rejected == 0


def test_the_scripts_operators_follow_no_rps():
    tb = _toolbox(rps=False)
    load_object(f"{SCRIPT}:customize")(tb)
    offspring = []
    for _ in range(200):
        offspring.extend(tb.mutate(tb.individual()))
        offspring.extend(tb.mate(tb.individual(), tb.individual()))
    assert tb.rps_log.rejected == 0 and any(violations(o) for o in offspring)


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    """A search with the script's op table on the fake benchmark: its output folder."""
    root = tmp_path_factory.mktemp("custom_ops")
    setup = SearchSetup(sample=3, runs=1, hall_of_fame=2, evolve=EvolveSettings(population=6, iterations=4, seed=1))
    request = EvolveRequest(BenchmarkRequest(FAKE_BENCHMARK), CacheRequest(2, 16, samples=64, cache_dir=str(root / "cache")),
                            setup=setup, baselines="none", out=str(root / "run"), ops=CUSTOM)
    evolve(request, customize=load_object(f"{SCRIPT}:customize"))
    return root / "run"


def test_best_json_records_the_op_table_it_was_found_with(custom_run):
    best = json.loads((custom_run / "best.json").read_text())
    assert best["ops"] == CUSTOM
    assert FoundProxy.load(custom_run).ops is op_table(CUSTOM)


@pytest.mark.slow
def test_a_custom_op_table_loads_back_in_a_new_process(custom_run, tmp_path):
    best = json.loads((custom_run / "best.json").read_text())
    path = tmp_path / "found" / "best.json"  # the search's record, with a tree that reads the new op
    path.parent.mkdir()
    path.write_text(json.dumps({**best, "tree": SOFTPLUS_TREE, "protection": []}))
    code = ("import sys; from lpzero.proxies.found_proxy import FoundProxy; from lpzero.report import found_formula; "
            "p = FoundProxy.load(sys.argv[1]); print(p.name, p.ops_path, p.parsed, sep='\\n'); "
            "print(found_formula(p, 'text'))")
    # from another folder: the script's folder is not on sys.path there
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    here = FoundProxy.load(path)
    assert out == ["found:found", CUSTOM, SOFTPLUS_TREE, found_formula(here, "text")]
    assert "log(exp(theta_W) + 1)" in out[-1]


def test_a_found_proxy_pickles_with_its_op_table(custom_run):
    proxy = FoundProxy.load(custom_run)
    again = pickle.loads(pickle.dumps(proxy))
    assert (again.name, again.tree, again.ops, again.orientation) == (proxy.name, proxy.tree, proxy.ops,
                                                                      proxy.orientation)


def _best(tmp_path, **keys) -> Path:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"tree": "layer_sum__Lw(l1__Tw(W))", "primitive_set_version": PRIMITIVE_SET_VERSION,
                                **keys}))
    return path


@pytest.mark.parametrize("ops, reason", [
    ("no_such_module_xyz:OPS", "module 'no_such_module_xyz' cannot be imported: No module named 'no_such_module_xyz'"),
    ("lpzero.primitives:NO_TABLE", "lpzero.primitives has no attribute 'NO_TABLE'"),
    ("lpzero.primitives:INPUTS", "is not an op table"),
    ("broken.py:OPS", "SyntaxError"),
    ("gone.py:OPS", "file not found"),
])
def test_an_op_table_that_cannot_be_imported_is_one_line(tmp_path, ops, reason):
    (tmp_path / "broken.py").write_text("OPS = (\n")
    if ops.startswith(("broken", "gone")):
        ops = f"{tmp_path / ops.partition(':')[0]}:OPS"
    path = _best(tmp_path, ops=ops)
    with pytest.raises(ResultError) as e:
        load_best(path)
    message = str(e.value)
    assert message.startswith(f"{path}: its op table {ops!r} cannot be imported: ") and reason in message
    assert "\n" not in message


def test_without_ops_a_best_json_reads_with_the_built_in_table(tmp_path):
    assert FoundProxy.load(_best(tmp_path)).ops is OPS
    assert FoundProxy.load(_best(tmp_path, ops="default")).ops is OPS
    with pytest.raises(ResultError, match="cannot parse proxy tree"):  # the new op is not in the built-in table
        FoundProxy.load(_best(tmp_path, tree=SOFTPLUS_TREE))


def test_a_found_proxy_is_named_after_its_folder(tmp_path):
    (tmp_path / "run7").mkdir()
    _best(tmp_path / "run7")
    assert FoundProxy.load(tmp_path / "run7").name == "found:run7"
    assert FoundProxy.load(tmp_path / "run7" / "best.json", name="mine").name == "mine"
    assert isinstance(FoundProxy.load(tmp_path / "run7").parsed, gp.PrimitiveTree)
