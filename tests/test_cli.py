"""The CLI end to end with click's CliRunner, on tiny slices."""
import csv
import json

import pytest
from click.testing import CliRunner

from lpzero.cli import main

TINY = ["--ids", "config_9_j3,config_4_j5,config_0_j0,config_0_j5,config_1_j3,config_2_j0",
        "--batch-size", "2", "--seq-len", "32", "--samples", "64"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("LPZERO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_info_json_counts_match_the_benchmark_for_all_gpt2(run):
    r = run("info", "gpt2", "--json")
    archs = json.loads(r.output)["architectures"]
    assert len(archs) == 200
    assert all(a["params"] == a["reference_params"] for a in archs)
    assert all(a["ground_truth"] == -a["raw"] for a in archs)


def test_info_json_counts_match_flexibert_with_compat(run):
    archs = json.loads(run("info", "flexibert", "--json", "--hidden-size-compat").output)["architectures"]
    assert len(archs) == 500 and all(a["params"]["total"] == a["reference_params"]["total"] for a in archs)


@pytest.mark.parametrize("args, message", [
    (["info", "nosuch"], "unknown benchmark 'nosuch'"),
    (["info", "gpt2", "--data", "/nonexistent"], "/nonexistent: data directory not found"),
    (["info", "lts:/nonexistent"], "/nonexistent: results directory not found"),
    (["cache", "gpt2", "--ids", "config_99_j0"], "unknown architecture id 'config_99_j0'"),
    (["rank", "gpt2", "--proxies", "nosuch"], "unknown proxy 'nosuch'"),
    (["export", "missing.json"], "missing.json: file not found"),
    (["info", "gpt2", "--hidden-size-compat"], "applies to the flexibert benchmark only"),
    (["rank", "gpt2", "--split", "heldout"], "--split needs exactly one --proxy"),
])
def test_bad_input_is_one_line_and_exit_2(run, args, message):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


def test_malformed_yaml_names_the_file(run, tmp_path):
    import shutil

    from lpzero.benchmarks import default_data_root

    src = default_data_root() / "lts_gpt2_wt103"
    (tmp_path / "lts" / "config_0" / "j0").mkdir(parents=True)
    shutil.copy(src / "config_0" / "j0" / "model_config.yaml", tmp_path / "lts" / "config_0" / "j0")
    (tmp_path / "lts" / "ppl_summary.yaml").write_text("config_0_j0: {valid_ppl: [unclosed\n")
    r = CliRunner().invoke(main, ["info", f"lts:{tmp_path / 'lts'}"])
    assert r.exit_code == 2 and "ppl_summary.yaml: malformed YAML" in r.output


def test_cache_evolve_export_rank_end_to_end(run, tmp_path):
    r = run("cache", "gpt2", *TINY, "--baselines", "num_params")
    assert "6 architectures cached" in r.output
    r = run("evolve", "--benchmark", "gpt2", *TINY, "--baselines", "num_params", "--population", "8",
            "--iterations", "15", "--sample", "3", "--runs", "2", "--out", "runs/e2e")
    assert "Found proxy" in r.output and "held-out" in r.output
    best = json.loads((tmp_path / "runs/e2e/best.json").read_text())
    assert best["heldout"]["n"] == 3 and best["baseline_heldout"]["proxy"] == "num_params"
    # the found proxy is the hall-of-fame tree with the best ρ on the whole search part
    hof = json.loads((tmp_path / "runs/e2e/hall_of_fame.json").read_text())
    assert best["search_part"]["n"] == 3 and best["tree"] == hof[0]["tree"]
    part_rho = [e["search_part"]["spearman"] for e in hof]
    assert part_rho == sorted(part_rho, reverse=True)
    for name in ("hall_of_fame.json", "log.csv", "evolution.png", "report.md", "run_0/checkpoint.json",
                 "run_1/checkpoint.json"):
        assert (tmp_path / "runs/e2e" / name).is_file()
    # two runs with their own seeds, both in the log; the hall of fame draws on both
    assert [r["seed"] for r in best["runs"]][0] == 42 and len({r["seed"] for r in best["runs"]}) == 2
    with open(tmp_path / "runs/e2e/log.csv") as f:
        assert [row["run"] for row in csv.DictReader(f)] == ["0"] * 15 + ["1"] * 15
    assert {e["run"] for e in hof} <= {0, 1} and best["candidates"] >= len(hof)
    latex = run("export", "runs/e2e/best.json", "--format", "latex").output.strip()
    assert latex == best["latex"]
    # protected ops: checked on the search sample, said in the report, written out by export where active
    report = (tmp_path / "runs/e2e/report.md").read_text()
    assert ("Protection was active" in report) == any(g["architectures"] for g in best["protection"])
    capped = {**best, "tree": "layer_sum__Lh(exp__Lh(l1__Th(H)))", "orientation": 1,
              "protection": [{"node": 1, "op": "exp", "subtree": "exp__Lh(l1__Th(H))", "active_fraction": 1.0,
                              "architectures": 3, "of": 3}]}
    (tmp_path / "capped.json").write_text(json.dumps(capped))
    assert run("export", "capped.json", "--format", "text").output.strip() == "layer_sum_l(exp(Min(80, l1(theta_H))))"
    r = run("rank", "gpt2", *TINY, "--proxies", "num_params", "--proxy", "runs/e2e/best.json", "--out", "runs/rank")
    rows = json.loads((tmp_path / "runs/rank/rank.json").read_text())
    assert [row["proxy"] for row in rows] == ["num_params", "e2e"]
    assert all(set(row) == {"proxy", "spearman", "kendall", "seconds_per_arch", "n"} for row in rows)
    # exact scores from full inputs rank the 6 architectures as the run reported on the whole slice
    assert rows[1]["spearman"] == pytest.approx(best["whole"]["spearman"], abs=0.35)
    assert (tmp_path / "runs/rank/rank_num_params.png").is_file()
    # --split heldout scores exactly the architectures the search never saw
    r = run("rank", "gpt2", *TINY, "--proxies", "num_params", "--proxy", "runs/e2e/best.json", "--split", "heldout",
            "--out", "runs/rank_heldout", "--no-plots")
    held = json.loads((tmp_path / "runs/rank_heldout/rank.json").read_text())
    assert [row["n"] for row in held] == [3, 3]
    assert sorted(best["split"]["heldout_ids"] + best["split"]["search_ids"]) == sorted(TINY[1].split(","))
    # resume: a finished run resumed with more iterations continues from its checkpoint
    r = run("evolve", "--benchmark", "gpt2", *TINY, "--baselines", "num_params", "--population", "8",
            "--iterations", "20", "--sample", "3", "--runs", "2", "--out", "runs/e2e", "--resume")
    for i in (0, 1):
        assert json.loads((tmp_path / f"runs/e2e/run_{i}/checkpoint.json").read_text())["iteration"] == 20
