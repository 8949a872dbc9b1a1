"""Fourth round of probes (docs/promises.md): plugins that fail to import, op tables that build no proxy,
hand-edited result files, names too long, folders of another command, unknown ids, missing or constant
ground truth, options given to several benchmarks, and what a failed or resumed run leaves behind. Each is one
line and exit code 2 before any work, or a correct result."""
from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.benchmarks.base import known_ids
from lpzero.cli import main
from lpzero.primitives import PrimitiveError, build_primitive_set, generate_typed, op_table, parse_tree, pset_of
from lpzero.primitives.pset import can_build
from lpzero.search.fitness import correlation, spearman_fitness

TESTS = Path(__file__).resolve().parent
#: a tiny batch and search: these tests are about what is refused, not what is found
TINY = ["--batch-size", "2", "--seq-len", "16", "--population", "2", "--iterations", "0", "--runs", "1",
        "--sample", "3", "--baselines", "none"]
#: a tabular nas run that needs no cache (a parameter count)
NAS = ["nas", "--space", f"tabular:{FAKE_BENCHMARK}", "--proxy", "num_params", "--batch-size", "2", "--seq-len",
       "8", "--cost-seq-len", "8"]
#: an op table file: the built-in ops without reductions (no score can be built), and reductions only
TABLES = """
from lpzero.primitives import OPS, Kind, OpTable

NO_REDUCE = OpTable()
ONLY_REDUCE = OpTable()
for op in OPS:
    (ONLY_REDUCE if op.kind == Kind.REDUCE else NO_REDUCE).add(op)
"""
#: a user's benchmark whose ground truth is the same for every architecture
FLAT = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from dataclasses import replace
from fake_benchmark import TinyGPT2Benchmark

class Flat(TinyGPT2Benchmark):
    def architecture(self, arch_id):
        return replace(super().architecture(arch_id), ground_truth=-50.0, raw=50.0)
"""


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(r, *messages: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for message in messages:
        assert message in r.stderr, r.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- 1. a plugin that fails to import -------------------------------------------------------------


@pytest.fixture(params=["syntax", "raises"])
def broken(request, tmp_path):
    """(a plugin file that fails to import, the exception it names)."""
    if request.param == "syntax":
        return write(tmp_path / "bad.py", "def f(:\n"), "SyntaxError"
    return write(tmp_path / "bad.py", "X = 1\nraise RuntimeError('boom at import')\n"), "RuntimeError: boom at import"


@pytest.mark.parametrize("command", ["info", "evolve", "nas"])
def test_a_plugin_file_that_fails_to_import_is_one_line_naming_the_file_and_the_exception(command, broken, tmp_path):
    path, reason = broken
    plugin = f"{path}:X"
    args = {"info": ["info", plugin],
            "evolve": ["evolve", "--benchmark", f"{FAKE_BENCHMARK},{plugin}", "--out", tmp_path / "out",
                       "--cache-dir", tmp_path / "cache", *TINY],
            "nas": ["nas", "--space", plugin, "--proxy", "num_params", "--out", tmp_path / "out"]}[command]
    one_line_error(invoke(*args), str(path), reason)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    # a failed import leaves no half-made module behind
    assert not [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(path)]


def test_a_module_that_raises_on_import_is_one_line_and_leaves_no_module(tmp_path, monkeypatch):
    write(tmp_path / "probe4_raising_module.py", "raise ValueError('bad\\nsetting')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    one_line_error(invoke("info", "probe4_raising_module:X"), "probe4_raising_module",
                   "ValueError: bad setting")
    assert "probe4_raising_module" not in sys.modules


# --- 2. an op table from which no proxy can be built ------------------------------------------------


def test_an_op_table_from_which_no_proxy_can_be_built_is_refused_before_work(tmp_path):
    write(tmp_path / "tables.py", TABLES)
    ops = f"{tmp_path / 'tables.py'}:NO_REDUCE"
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--ops", ops, "--out", tmp_path / "out",
               "--cache-dir", tmp_path / "cache", *TINY)
    one_line_error(r, f"--ops {ops}", "no proxy tree")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_an_op_table_without_the_paper_genomes_ops_is_refused_for_the_paper_toolbox(tmp_path):
    write(tmp_path / "tables.py", TABLES)
    ops = f"{tmp_path / 'tables.py'}:ONLY_REDUCE"
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--toolbox", "paper", "--ops", ops, "--out", tmp_path / "out",
               "--cache-dir", tmp_path / "cache", *TINY)
    one_line_error(r, f"--ops {ops} with --toolbox paper", "a binary op")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_primitive_set_says_whether_it_can_build_a_score(tmp_path):
    write(tmp_path / "tables.py", TABLES)
    assert not can_build(pset_of(op_table(f"{tmp_path / 'tables.py'}:NO_REDUCE")))
    assert can_build(pset_of(op_table(f"{tmp_path / 'tables.py'}:ONLY_REDUCE")))
    assert can_build(pset_of(op_table()))


def test_trees_of_a_table_of_reductions_only_are_generated_at_any_height(tmp_path):
    write(tmp_path / "tables.py", TABLES)
    pset = build_primitive_set(op_table(f"{tmp_path / 'tables.py'}:ONLY_REDUCE"))
    for seed in range(40):  # drawn heights beyond what the table can build used to raise IndexError
        expr = generate_typed(pset, 1, 4, rng=random.Random(seed))
        assert expr[0].ret is pset.ret


@pytest.mark.slow
def test_a_search_with_reductions_only_finds_a_proxy(tmp_path):
    write(tmp_path / "tables.py", TABLES)
    out = tmp_path / "out"
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--ops", f"{tmp_path / 'tables.py'}:ONLY_REDUCE",
               "--out", out, "--cache-dir", tmp_path / "cache", "--batch-size", "2", "--seq-len", "16",
               "--population", "4", "--iterations", "3", "--runs", "1", "--sample", "3", "--baselines", "none")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "best.json").read_text())["tree"]


# --- 3. hand-edited best.json and front files -------------------------------------------------------

GUARD = {"node": 2, "op": "abslog", "subtree": "abslog__Th(square__Th(H))", "active_fraction": 0.5,
         "architectures": 3, "of": 6}


@pytest.mark.parametrize("protection, key", [
    ([{}], "'node'"),
    ([{**GUARD, "architectures": "3"}], "'architectures'"),
    ([{**GUARD, "active_fraction": None}], "'active_fraction'"),
])
@pytest.mark.parametrize("command", ["latex", "pretty", "text", "torch", "sympy", "rank"])
def test_a_hand_edited_protection_entry_is_one_line_naming_the_file_and_key(found, tmp_path, protection, key, command):
    best = json.loads(found.read_text())
    found.write_text(json.dumps({**best, "protection": protection}))
    if command == "rank":
        r = invoke("rank", FAKE_BENCHMARK, "--proxies", "none", "--proxy", found, "--out", tmp_path / "out",
                   "--cache-dir", tmp_path / "cache", "--batch-size", "2", "--seq-len", "16")
    else:
        r = invoke("export", found, "--format", command)
    one_line_error(r, str(found), "'protection'", key)
    assert not (tmp_path / "out").exists()


def test_a_well_formed_protection_entry_still_exports(found):
    best = json.loads(found.read_text())
    found.write_text(json.dumps({**best, "protection": [GUARD]}))
    r = invoke("export", found, "--format", "text")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("search_part", [{"spearman": "x"}, 0.9, {"spearman": True}])
@pytest.mark.parametrize("target", ["", "pareto_front.json"])
def test_a_hand_edited_front_entry_is_one_line_naming_the_file_and_key(tmp_path, search_part, target):
    front = tmp_path / "pareto_front.json"
    front.write_text(json.dumps([{"complexity": 3, "search_part": {"spearman": 0.5}, "formula": "mean(theta_H)"},
                                 {"complexity": 5, "search_part": search_part, "formula": "mean(theta_A)"}]))
    one_line_error(invoke("export", tmp_path / target), str(front), "entry 1", "'search_part'")


def test_a_front_entry_without_a_correlation_prints_n_a(tmp_path):
    (tmp_path / "pareto_front.json").write_text(json.dumps(
        [{"complexity": 3, "search_part": {"spearman": None}, "formula": "mean(theta_H)"}]))
    r = invoke("export", tmp_path)
    assert r.exit_code == 0 and "n/a" in r.output, r.output


# --- 4. names longer than the file system allows ------------------------------------------------------


def test_an_out_name_longer_than_the_file_system_allows_is_one_line(tmp_path):
    out = tmp_path / ("x" * 300)
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--out", out, "--cache-dir", tmp_path / "cache", *TINY)
    one_line_error(r, "File name too long")
    assert not (tmp_path / "cache").exists()


def test_a_cache_dir_name_longer_than_the_file_system_allows_is_one_line(tmp_path):
    r = invoke("cache", FAKE_BENCHMARK, "--cache-dir", tmp_path / ("c" * 300), "--baselines", "none",
               "--ids", "tiny0", "--batch-size", "2", "--seq-len", "16")
    one_line_error(r, "File name too long")


# --- 5. a run owns its --out across commands ------------------------------------------------------------


@pytest.mark.parametrize("other", ["evolve", "rank"])
def test_a_folder_of_a_nas_run_is_refused_by_another_command_before_work(tmp_path, other):
    out = tmp_path / "out"
    first = invoke(*NAS, "--out", out)
    assert first.exit_code == 0, first.output
    before = sorted(p.name for p in out.iterdir())
    args = {"evolve": ["evolve", "--benchmark", FAKE_BENCHMARK, *TINY],
            "rank": ["rank", FAKE_BENCHMARK, "--proxies", "num_params"]}[other]
    r = invoke(*args, "--out", out, "--cache-dir", tmp_path / "cache")
    one_line_error(r, str(out), "lpzero nas")
    assert sorted(p.name for p in out.iterdir()) == before and not (tmp_path / "cache").exists()


def test_a_nas_run_into_its_own_folder_again_is_no_other_command(tmp_path):
    out = tmp_path / "out"
    assert invoke(*NAS, "--out", out).exit_code == 0
    again = invoke(*NAS, "--out", out)
    assert again.exit_code == 0, again.output


@pytest.mark.slow
def test_a_folder_of_an_evolve_run_is_refused_by_nas_and_rank(tmp_path):
    out = tmp_path / "out"
    first = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--out", out, "--cache-dir", tmp_path / "cache", *TINY)
    assert first.exit_code == 0, first.output
    report = (out / "report.md").read_text()
    one_line_error(invoke(*NAS, "--out", out), str(out), "lpzero evolve")
    one_line_error(invoke("rank", FAKE_BENCHMARK, "--proxies", "num_params", "--out", out), "lpzero evolve")
    assert (out / "report.md").read_text() == report and not (out / "summary.json").exists()


# --- 6. unknown ids list the known ones ---------------------------------------------------------------------


def test_an_unknown_id_is_named_and_the_known_ones_listed(tmp_path):
    r = invoke("cache", FAKE_BENCHMARK, "--ids", "tiny0,nosuch,tiny9", "--cache-dir", tmp_path / "cache")
    one_line_error(r, "'nosuch'", "'tiny9'", "tiny0, tiny1, tiny2, tiny3, tiny4, tiny5")
    assert not (tmp_path / "cache").exists()


def test_a_long_list_of_known_ids_is_shortened():
    text = known_ids([f"config_{i}" for i in range(200)])
    assert "config_0" in text and "config_199" in text and "200" in text and len(text) < 200


# --- 7 and 8. LoNAS: missing ground truth, options of several benchmarks ----------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny LLaMA checkpoint without ground_truth.json (base/, adapter/, text.txt), written once."""
    from test_lonas_checkpoints import write_checkpoint

    root = tmp_path_factory.mktemp("probes4_lonas")
    write_checkpoint(root)
    return root


@pytest.mark.slow
def test_a_lonas_checkpoint_without_ground_truth_says_how_to_make_it(checkpoint, tmp_path):
    r = invoke("evolve", "--benchmark", f"lonas:{checkpoint / 'base'}", "--adapter", checkpoint / "adapter",
               "--text", checkpoint / "text.txt", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache",
               *TINY, "--seq-len", "8")
    one_line_error(r, "no ground truth", "ground_truth.json", "docs/lonas.md")
    assert "--ids" not in r.stderr and not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("option", [["--text", "text.txt"], ["--adapter", "adapter"], ["--space-file", "space.json"]])
def test_a_lonas_option_with_several_benchmarks_says_it_goes_to_every_one(tmp_path, option):
    name, value = option
    (tmp_path / "adapter").mkdir()
    write(tmp_path / "text.txt", "some text")
    write(tmp_path / "space.json", "{}")
    r = invoke("evolve", "--benchmark", f"{FAKE_BENCHMARK},lonas:{tmp_path / 'base'}", name, tmp_path / value,
               "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", *TINY)
    one_line_error(r, name, "every benchmark of the --benchmark list")
    assert not (tmp_path / "out").exists()


# --- 9. constant ground truth ---------------------------------------------------------------------------------


def test_a_benchmark_with_a_constant_ground_truth_is_refused_before_caching(tmp_path):
    plugin = f"{write(tmp_path / 'flat.py', FLAT)}:Flat"
    r = invoke("evolve", "--benchmark", plugin, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", *TINY)
    one_line_error(r, "ground truth", "-50", "all 6 architectures")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_fitness_on_a_constant_ground_truth_is_invalid_without_a_scipy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = spearman_fitness(np.arange(5.0), np.full(5, 3.0), with_kendall=True)
        record = correlation(np.arange(5.0), np.full(5, 3.0))
        nan_truth = spearman_fitness(np.arange(5.0), np.array([1.0, np.nan, 2.0, 3.0, 4.0]))
    assert not ev.valid and record["spearman"] is None and record["invalid_reason"]
    assert not nan_truth.valid


# --- 10. a failed run leaves nothing, trees name their ops, --resume says when it starts afresh ----------------


def test_a_cache_that_cannot_be_made_is_refused_before_out_is_taken(tmp_path):
    a_file = write(tmp_path / "a_file", "")
    out = tmp_path / "runs" / "out"
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--out", out, *TINY, env={"LPZERO_CACHE": str(a_file)})
    one_line_error(r, str(a_file))
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_after_taking_its_out_leaves_nothing_it_made(tmp_path):
    failing = FAKE_BENCHMARK.replace(":TinyGPT2Benchmark", ":FailingBenchmark")  # tiny3 cannot be built
    r = invoke("evolve", "--benchmark", failing, "--out", tmp_path / "runs" / "out", "--cache-dir", tmp_path / "cache",
               *TINY)
    assert r.exit_code == 2 and "tiny3: this architecture cannot be built" in r.stderr, r.output
    assert not (tmp_path / "runs").exists()


def test_a_failed_run_keeps_the_folder_it_did_not_make_as_it_was(tmp_path):
    failing = FAKE_BENCHMARK.replace(":TinyGPT2Benchmark", ":FailingBenchmark")
    out = tmp_path / "out"
    out.mkdir()
    write(out / "notes.txt", "the user's")
    r = invoke("evolve", "--benchmark", failing, "--out", out, "--cache-dir", tmp_path / "cache", *TINY)
    assert r.exit_code == 2, r.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("text, named", [
    ("mean__Lw(mean__Ta(A))", "mean__Lw"),
    ("layer_sum__La(mean__Ta(W))", "not W (WeightTensors)"),
])
def test_a_type_error_in_a_tree_names_the_primitive(text, named):
    with pytest.raises(PrimitiveError) as e:
        parse_tree(text, pset_of(op_table()))
    message = str(e.value)
    assert "object at 0x" not in message and named in message and "must be" in message, message


def test_evolve_resume_into_an_empty_folder_says_it_starts_afresh(tmp_path):
    out = tmp_path / "out"
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--out", out, "--cache-dir", tmp_path / "cache", *TINY,
               "--resume")
    assert r.exit_code == 0, r.output
    assert "lpzero: warning: --resume: no checkpoint" in r.stderr


def test_nas_resume_into_an_empty_folder_says_it_starts_afresh(tmp_path):
    r = invoke(*NAS, "--out", tmp_path / "out", "--resume")
    assert r.exit_code == 0, r.output
    assert "lpzero: warning: --resume: no checkpoint" in r.stderr
