"""The CLI end to end with click's CliRunner, one behaviour per test.

Most tests run on the fake benchmark, opened as a user's own class by file path
(`FAKE_BENCHMARK`), so they need no data; those marked `data` read ../shared/data.
"""
import csv
import json
from importlib.metadata import EntryPoint

import pytest
import torch
from click.testing import CliRunner

import lpzero.benchmarks
import lpzero.registry
from conftest import FAKE_BENCHMARK
from lpzero.cli import main
from lpzero.commands.evolve import QUICK

#: every tensor of the fake models is at most 4 x 16 x 192 = 12,288 elements: stored whole
WHOLE = ["--samples", "12288"]
SEARCH = ["--population", "8", "--iterations", "15", "--sample", "3", "--runs", "2", "--baselines", "num_params"]


def invoke(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One finished `lpzero evolve` on the fake benchmark: (output directory, best.json, cache root)."""
    root = tmp_path_factory.mktemp("cli")
    out, cache = root / "run", root / "cache"
    result = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", cache, "--out", out, *WHOLE, *SEARCH)
    return out, json.loads((out / "best.json").read_text()), cache, result.output


# --- evolve --quick -------------------------------------------------------------------

def test_quick_sets_what_the_user_left_unset(tmp_path):
    invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--quick", "--iterations", "4", "--population", "4",
           "--sample", "3", "--runs", "1", "--cache-dir", tmp_path / "c", "--out", tmp_path / "run", *WHOLE)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    # the quick batch (2 x 64, within the fake models' 64 positions) and baselines; the explicit iterations
    assert (best["cache"]["batch_size"], best["cache"]["seq_len"]) == (2, 64)
    assert best["setup"]["evolve"]["iterations"] == 4
    assert best["baseline_heldout"]["proxy"] in QUICK["baselines"].split(",")


# --- info ----------------------------------------------------------------------------

def test_info_summarises_a_benchmark():
    out = invoke("info", FAKE_BENCHMARK).output
    assert "architectures  6" in out and "ground truth   valid_ppl from 33.75 to 61" in out
    assert "mini-batch     4 x 16 (default)" in out


def test_a_benchmark_class_opens_by_module_name():
    assert "architectures  6" in invoke("info", "fake_benchmark:TinyGPT2Benchmark").output


def test_a_benchmark_opens_by_entry_point(monkeypatch):
    ep = EntryPoint("tiny", "fake_benchmark:TinyGPT2Benchmark", lpzero.benchmarks.ENTRY_POINT_GROUP)
    monkeypatch.setattr(lpzero.registry, "entry_points", lambda group: [ep] if group == ep.group else [])
    assert json.loads(invoke("info", "tiny", "--json").output)["benchmark"] == "tiny"


@pytest.mark.slow
@pytest.mark.data
def test_info_json_counts_match_the_benchmark_for_all_gpt2():
    archs = json.loads(invoke("info", "gpt2", "--json").output)["architectures"]
    assert len(archs) == 200
    assert all(a["params"] == a["reference_params"] for a in archs)
    assert all(a["ground_truth"] == -a["raw"] for a in archs)


@pytest.mark.slow
@pytest.mark.data
def test_info_json_counts_match_flexibert_with_compat():
    archs = json.loads(invoke("info", "flexibert", "--json", "--hidden-size-compat").output)["architectures"]
    assert len(archs) == 500 and all(a["params"]["total"] == a["reference_params"]["total"] for a in archs)


# --- bad input: one line, exit code 2, before any work --------------------------------

BAD_INPUT = [
    (["info", "nosuch"], "unknown benchmark 'nosuch'"),
    (["info", "nosuch.module:Bench"], "module 'nosuch.module' cannot be imported"),
    (["info", "fake_benchmark:NoSuchClass"], "has no attribute 'NoSuchClass'"),
    (["info", "fake_benchmark:VOCAB_SIZE"], "not a subclass of lpzero.benchmarks.Benchmark"),
    (["info", "gpt2", "--data", "/nonexistent"], "/nonexistent: data directory not found"),
    (["info", "lts:/nonexistent"], "/nonexistent: results directory not found"),
    (["cache", FAKE_BENCHMARK, "--ids", "tiny9"], "unknown architecture id 'tiny9'"),
    (["cache", FAKE_BENCHMARK, "--ids", ","], "--ids ',' names no architecture"),
    (["cache", FAKE_BENCHMARK, "--batch-size", "0"], "--batch-size"),
    (["cache", FAKE_BENCHMARK, "--jobs", "0"], "--jobs"),
    (["cache", FAKE_BENCHMARK, "--baselines", ","], "no proxy named"),
    (["rank", FAKE_BENCHMARK, "--proxies", "nosuch"], "unknown proxy 'nosuch'"),
    (["rank", FAKE_BENCHMARK, "--split", "heldout"], "--split needs exactly one --proxy"),
    (["export", "missing.json"], "missing.json: file not found"),
    (["info", FAKE_BENCHMARK, "--hidden-size-compat"], "applies to the flexibert benchmark only"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--holdout", "0"], "--holdout"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--crossover", "1.5"], "--crossover"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--population", "1"], "--population"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--top", "0"], "--top"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--sample", "0"], "--sample"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--limit", "-1"], "--limit"),
    (["rank", FAKE_BENCHMARK, "--out", "afile"], "--out"),
    (["evolve", "--benchmark", FAKE_BENCHMARK, "--device", "tpu"], "--device 'tpu'"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    r = invoke(*args, ok=False)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1 or "Usage:" in r.stderr  # click's own usage errors
    assert not (tmp_path / "runs").exists()  # nothing was started


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line():
    r = invoke("cache", FAKE_BENCHMARK, "--device", "cuda", ok=False)
    assert r.exit_code == 2 and "CUDA is not available" in r.stderr


@pytest.mark.parametrize("content, message", [
    ("{", "malformed JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"tree": "x"}', "no 'primitive_set_version'"),
    ('{"tree": "layer_sum__Lw(l1__Tw(W)", "primitive_set_version": "1"}', "unbalanced parentheses"),
    ('{"tree": "l1__Tw(W)", "primitive_set_version": "1"}', "not one score per architecture"),
    ('{"tree": "layer_sum__Lw(l1__Tw(W))", "primitive_set_version": "0"}', "primitive set version 0"),
])
def test_a_malformed_best_json_is_one_line(tmp_path, content, message):
    (tmp_path / "best.json").write_text(content)
    r = invoke("export", tmp_path / "best.json", ok=False)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.data
def test_malformed_yaml_names_the_file(tmp_path):
    import shutil

    from lpzero.benchmarks import default_data_root

    src = default_data_root() / "lts_gpt2_wt103"
    (tmp_path / "lts" / "config_0" / "j0").mkdir(parents=True)
    shutil.copy(src / "config_0" / "j0" / "model_config.yaml", tmp_path / "lts" / "config_0" / "j0")
    (tmp_path / "lts" / "ppl_summary.yaml").write_text("config_0_j0: {valid_ppl: [unclosed\n")
    r = invoke("info", f"lts:{tmp_path / 'lts'}", ok=False)
    assert r.exit_code == 2 and "ppl_summary.yaml: malformed YAML" in r.output


# --- cache --------------------------------------------------------------------------

def test_cache_reports_what_it_stored(tmp_path):
    out = invoke("cache", FAKE_BENCHMARK, "--cache-dir", tmp_path, "--limit", "3", "--baselines", "none").output
    assert "3 architectures cached" in out and "1024 samples per tensor" in out
    assert len(list(tmp_path.rglob("*.safetensors"))) == 3


# --- evolve ---------------------------------------------------------------------------

def test_evolve_writes_every_output(searched):
    out, best, _, printed = searched
    assert "Found proxy" in printed and "held-out" in printed
    for name in ("best.json", "hall_of_fame.json", "log.csv", "evolution.png", "report.md", "run_0/checkpoint.json",
                 "run_1/checkpoint.json"):
        assert (out / name).is_file(), name
    assert best["heldout"]["n"] == 3 and best["baseline_heldout"]["proxy"] == "num_params"


def test_evolve_picks_the_hall_of_fame_tree_best_on_the_search_part(searched):
    out, best, _, _ = searched
    hof = json.loads((out / "hall_of_fame.json").read_text())
    assert best["search_part"]["n"] == 3 and best["tree"] == hof[0]["tree"]
    part_rho = [e["search_part"]["spearman"] for e in hof]
    assert part_rho == sorted(part_rho, reverse=True)
    assert {e["run"] for e in hof} <= {0, 1} and best["candidates"] >= len(hof)


def test_evolve_logs_each_run_with_its_own_seed(searched):
    out, best, _, _ = searched
    assert best["runs"][0]["seed"] == 42 and len({r["seed"] for r in best["runs"]}) == 2
    with open(out / "log.csv") as f:
        assert [row["run"] for row in csv.DictReader(f)] == ["0"] * 15 + ["1"] * 15


def test_evolve_resume_continues_from_the_checkpoints(searched, tmp_path):
    import shutil

    out, _, cache, _ = searched
    shutil.copytree(out, tmp_path / "run")
    invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", cache, "--out", tmp_path / "run", *WHOLE,
           *SEARCH[:2], "--iterations", "20", *SEARCH[4:], "--resume")
    for i in (0, 1):
        assert json.loads((tmp_path / f"run/run_{i}/checkpoint.json").read_text())["iteration"] == 20


def test_evolve_report_says_whether_protection_was_active(searched):
    out, best, _, _ = searched
    report = (out / "report.md").read_text()
    assert ("Protection was active" in report) == any(g["architectures"] for g in best["protection"])


# --- export ---------------------------------------------------------------------------

def test_export_latex_is_the_formula_of_best_json(searched):
    out, best, _, _ = searched
    assert invoke("export", out / "best.json", "--format", "latex").output.strip() == best["latex"]


def test_export_pretty_prints_the_formula_in_unicode(searched):
    out, best, _, _ = searched
    pretty = invoke("export", out / "best.json", "--format", "pretty").output
    assert "θ" in pretty and pretty.strip() != best["formula"]


def test_export_writes_out_the_guards_that_were_active(tmp_path, searched):
    _, best, _, _ = searched
    capped = {**best, "tree": "layer_sum__Lh(exp__Lh(l1__Th(H)))", "orientation": 1,
              "protection": [{"node": 1, "op": "exp", "subtree": "exp__Lh(l1__Th(H))", "active_fraction": 1.0,
                              "architectures": 3, "of": 3}]}
    (tmp_path / "capped.json").write_text(json.dumps(capped))
    text = invoke("export", tmp_path / "capped.json", "--format", "text").output.strip()
    assert text == "layer_sum_l(exp(Min(80, l1(theta_H))))"


# --- rank -----------------------------------------------------------------------------

def test_rank_scores_a_found_proxy_exactly_as_the_search_did_on_whole_tensors(searched, tmp_path):
    out, best, cache, _ = searched
    invoke("rank", FAKE_BENCHMARK, "--cache-dir", cache, *WHOLE, "--proxies", "num_params", "--proxy",
           out / "best.json", "--out", tmp_path / "rank")
    rows = json.loads((tmp_path / "rank/rank.json").read_text())
    assert [row["proxy"] for row in rows] == ["num_params", "found:run"]
    assert all(set(row) == {"proxy", "spearman", "kendall", "seconds_per_arch", "n", "invalid_reason"} for row in rows)
    # the cache kept every element, so rebuilding the models must give the search's own figure
    assert rows[1]["spearman"] == pytest.approx(best["whole"]["spearman"], abs=1e-9)
    assert (tmp_path / "rank/rank_num_params.png").is_file()


def test_rank_split_heldout_scores_only_what_the_search_never_saw(searched, tmp_path):
    out, best, cache, _ = searched
    invoke("rank", FAKE_BENCHMARK, "--cache-dir", cache, *WHOLE, "--proxies", "num_params", "--proxy",
           out / "best.json", "--split", "heldout", "--out", tmp_path / "rank", "--no-plots")
    rows = json.loads((tmp_path / "rank/rank.json").read_text())
    assert [row["n"] for row in rows] == [3, 3]
    assert rows[1]["spearman"] == pytest.approx(best["heldout"]["spearman"], abs=1e-9)
    scores = json.loads((tmp_path / "rank/scores.json").read_text())
    assert scores["ids"] == best["split"]["heldout_ids"]


# --- ops --------------------------------------------------------------------------------

def test_ops_prints_the_op_table():
    from lpzero.primitives import OPS
    from lpzero.primitives.op import markdown_table

    out = invoke("ops").output
    assert out.strip() == markdown_table(OPS)
    assert out.count("\n") == len(OPS) + 2


@pytest.mark.parametrize("changed", [["--holdout", "0.7"], ["--sample", "2"], ["--seq-len", "8"]])
def test_evolve_resume_refuses_another_split_sample_or_cache(searched, tmp_path, changed):
    import shutil

    out, _, cache, _ = searched
    shutil.copytree(out, tmp_path / "run")
    before = sorted(p.name for p in cache.rglob("*"))
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", cache, "--out", tmp_path / "run", *WHOLE,
               *SEARCH, *changed, "--resume", ok=False)
    assert r.exit_code == 2 and "written with other settings" in r.stderr
    assert sorted(p.name for p in cache.rglob("*")) == before  # refused before any cache work


def test_an_output_folder_that_cannot_be_made_is_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    r = invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", tmp_path / "cache", "--out", "afile/run",
               ok=False)
    assert r.exit_code == 2 and "afile/run: Not a directory" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "cache").exists()


def test_an_empty_ids_option_is_refused():
    r = invoke("cache", FAKE_BENCHMARK, "--ids", "", ok=False)
    assert r.exit_code == 2 and "names no architecture" in r.stderr


def test_a_too_long_sequence_is_refused_before_any_work(tmp_path):
    r = invoke("cache", FAKE_BENCHMARK, "--cache-dir", tmp_path, "--seq-len", "65", ok=False)
    assert r.exit_code == 2 and "sequence length 65 exceeds the 64 positions" in r.stderr
    assert not any(tmp_path.iterdir())


def test_rank_refuses_a_proxy_tree_that_is_not_a_score_before_any_work(tmp_path, searched):
    _, best, _, _ = searched
    (tmp_path / "best.json").write_text(json.dumps({**best, "tree": "l1__Tw(W)"}))
    r = invoke("rank", FAKE_BENCHMARK, "--cache-dir", tmp_path / "cache", "--proxy", tmp_path / "best.json",
               "--out", tmp_path / "rank", ok=False)
    assert r.exit_code == 2 and "not one score per architecture" in r.stderr
    assert not (tmp_path / "cache").exists()


def test_limit_selects_the_same_architectures_for_every_command(tmp_path):
    out = tmp_path / "run"
    invoke("evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", tmp_path / "cache", "--out", out, "--limit", "4",
           *SEARCH[:4], "--sample", "2", "--runs", "1", "--baselines", "none")
    r = invoke("rank", FAKE_BENCHMARK, "--cache-dir", tmp_path / "cache", "--limit", "4", "--proxies", "none",
               "--proxy", out / "best.json", "--split", "heldout", "--out", tmp_path / "rank", "--no-plots")
    assert "Traceback" not in r.output
    assert json.loads((tmp_path / "rank/rank.json").read_text())[0]["n"] == 2


def test_a_proxy_found_on_another_benchmark_is_a_warning_and_refused_with_split(searched, tmp_path):
    out, best, cache, _ = searched
    (tmp_path / "best.json").write_text(json.dumps({**best, "benchmark": "flexibert"}))
    args = ["rank", FAKE_BENCHMARK, "--cache-dir", cache, *WHOLE, "--proxies", "none", "--proxy",
            tmp_path / "best.json", "--out", tmp_path / "rank", "--no-plots"]
    assert "lpzero: warning:" in invoke(*args).stderr and "found on 'flexibert'" in invoke(*args).stderr
    r = invoke(*args, "--split", "heldout", ok=False)
    assert r.exit_code == 2 and "a proxy found on 'flexibert'" in r.stderr


def test_rank_builds_each_model_once_for_all_found_proxies(searched, tmp_path, monkeypatch):
    from fake_benchmark import TinyGPT2Benchmark

    out, best, _, _ = searched
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.json").write_text(json.dumps(best))
    builds = []
    build = TinyGPT2Benchmark.build_model
    monkeypatch.setattr(TinyGPT2Benchmark, "build_model", lambda self, *a, **k: builds.append(a) or build(self, *a, **k))
    invoke("rank", "fake_benchmark:TinyGPT2Benchmark", "--cache-dir", tmp_path / "cache", *WHOLE, "--proxies", "none",
           "--proxy", tmp_path / "a/best.json", "--proxy", tmp_path / "b/best.json", "--out", tmp_path / "rank",
           "--no-plots")
    rows = json.loads((tmp_path / "rank/rank.json").read_text())
    assert [r["proxy"] for r in rows] == ["found:a", "found:b"] and rows[0]["spearman"] == rows[1]["spearman"]
    assert len(builds) == 6  # one model per architecture, not one per proxy


def test_rank_of_parameter_counts_builds_no_cache(searched, tmp_path):
    _, _, cache, _ = searched
    invoke("rank", FAKE_BENCHMARK, "--cache-dir", tmp_path / "empty", *WHOLE, "--proxies", "num_params,decoder_params",
           "--out", tmp_path / "rank", "--no-plots")
    assert not (tmp_path / "empty").exists()  # no model was run forward for a parameter count
    scores = json.loads((tmp_path / "rank/scores.json").read_text())
    invoke("rank", FAKE_BENCHMARK, "--cache-dir", cache, *WHOLE, "--proxies", "num_params", "--out",
           tmp_path / "cached", "--no-plots")
    cached = json.loads((tmp_path / "cached/scores.json").read_text())
    assert scores["scores"]["num_params"] == cached["scores"]["num_params"]


def test_rank_owns_its_out_and_clears_an_earlier_rankings_plots(tmp_path):
    from lpzero.files import owned_folder

    out = tmp_path / "rank"
    with owned_folder(out):
        busy = invoke("rank", FAKE_BENCHMARK, "--proxies", "num_params", "--out", out, ok=False)
    assert busy.exit_code == 2 and "is in use by another lpzero run" in busy.output
    (out / "rank_grad_norm.png").write_bytes(b"an earlier ranking's plot")
    invoke("rank", FAKE_BENCHMARK, "--proxies", "num_params", "--out", out, "--cache-dir", tmp_path / "c")
    assert sorted(p.name for p in out.glob("rank_*.png")) == ["rank_num_params.png"]
