"""`lpzero nas` end to end with click's CliRunner on the fake benchmark, one behaviour per test.

Tabular runs use the fake benchmark (`tabular:FAKE_BENCHMARK`); the open-space runs use
`TinySpace` of test_nas_search (tiny GPT-2 models, no data), opened as `module:Class`.
"""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.cli import main

TABULAR = f"tabular:{FAKE_BENCHMARK}"
OPEN = "test_nas_search:TinySpace"
#: small batches: the fake models are tiny, a CLI test must be quick
SMALL = ["--batch-size", "2", "--seq-len", "8", "--cost-seq-len", "8"]


def invoke(*args, ok=True):
    result = CliRunner().invoke(main, ["nas", *[str(a) for a in args]])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tabular_with_a_baseline_writes_every_output(tmp_path):
    out = tmp_path / "nas"
    invoke("--space", TABULAR, "--proxy", "num_params", "--max-params", "200000", "--out", out, *SMALL)
    for name in ("pareto.csv", "candidates.csv", "pareto.png", "report.md", "summary.json",
                 "chosen/architectures.json", "front/architectures.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluated"] == 6 and summary["chosen"]["params"] <= 200000
    assert summary["tabular"]["regret"] >= 0 and 0 < summary["tabular"]["hypervolume_ratio"] <= 1


def test_tabular_with_a_found_proxy_scores_exactly_and_counts_flops(tmp_path, found):
    out = tmp_path / "nas"
    result = invoke("--space", TABULAR, "--proxy", found, "--cost", "params,flops", "--out", out, *SMALL)
    front = _csv(out / "pareto.csv")
    assert front and all(float(r["flops"]) > 0 and r["score"] for r in front)
    assert "exact (2 x 8 batch" in result.output


def test_an_open_space_is_searched_with_nsga_and_resumed(tmp_path, found):
    out = tmp_path / "nas"
    args = ["--space", OPEN, "--proxy", found, "--population", "4", "--out", out, *SMALL]
    invoke(*args, "--generations", "1")
    first = json.loads((out / "checkpoint.json").read_text())
    invoke(*args, "--generations", "3", "--resume")
    resumed = json.loads((out / "checkpoint.json").read_text())
    assert first["generation"] == 1 and resumed["generation"] == 3
    assert set(first["memo"]) <= set(resumed["memo"])
    assert all(resumed["memo"][k] == v for k, v in first["memo"].items())  # nothing rescored
    assert (out / "chosen" / "configs.json").is_file()


def test_resume_with_another_proxy_is_refused(tmp_path, found):
    out = tmp_path / "nas"
    invoke("--space", OPEN, "--proxy", found, "--population", "4", "--generations", "0", "--out", out, *SMALL)
    result = invoke("--space", OPEN, "--proxy", "num_params", "--population", "4", "--generations", "0",
                    "--out", out, "--resume", *SMALL, ok=False)
    assert result.exit_code == 2 and "other settings than the checkpoint's (proxy." in result.output


@pytest.mark.parametrize("args, message", [
    (["--space", "nosuch", "--proxy", "num_params"], "unknown space 'nosuch'"),
    (["--space", TABULAR, "--proxy", "nosuch"], "unknown proxy (a best.json path or a baseline) 'nosuch'"),
    (["--space", TABULAR, "--proxy", "num_params", "--max-params", "10"], "below the smallest architecture"),
    (["--space", TABULAR, "--proxy", "num_params", "--cost", "size"], "unknown cost 'size'"),
    (["--space", OPEN, "--proxy", "num_params", "--cached-scores"], "--cached-scores applies to a tabular space"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = invoke(*args, "--out", tmp_path / "nas", *SMALL, ok=False)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_malformed_best_json_is_named(tmp_path):
    bad = tmp_path / "best.json"
    bad.write_text("{not json")
    result = invoke("--space", TABULAR, "--proxy", bad, "--out", tmp_path / "nas", ok=False)
    assert result.exit_code == 2 and f"{bad}: malformed JSON" in result.output


@pytest.mark.parametrize("args, message", [
    (["--max-params", "nan"], "--max-params nan: a limit must be a finite number"),
    (["--cost", "params,params"], "a cost is named twice"),
    (["--cost-seq-len", "500"], "--cost-seq-len 500: the models of"),
])
def test_limits_and_costs_that_mean_nothing_are_refused_before_work(tmp_path, args, message):
    result = invoke("--space", TABULAR, "--proxy", "num_params", "--out", tmp_path / "nas", "--batch-size", "2",
                    "--seq-len", "8", *args, ok=False)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "nas").exists()  # refused before anything was written


def test_a_resume_may_read_the_same_found_proxy_by_its_folder(tmp_path, found):
    out = tmp_path / "nas"
    invoke("--space", TABULAR, "--proxy", found, "--out", out, *SMALL)
    again = invoke("--space", TABULAR, "--proxy", found.parent, "--out", out, "--resume", *SMALL)
    assert "this run scored 0 " in again.output  # every candidate came from the checkpoint


def test_a_second_run_into_a_busy_out_is_refused_naming_the_first(tmp_path):
    import os

    from lpzero.files import owned_folder

    with owned_folder(tmp_path / "nas"):  # a run in progress
        result = invoke("--space", TABULAR, "--proxy", "num_params", "--out", tmp_path / "nas", *SMALL, ok=False)
    assert result.exit_code == 2 and f"in use by another lpzero run (pid {os.getpid()})" in result.output


def test_an_earlier_runs_outputs_never_stay_beside_a_new_runs(tmp_path):
    out = tmp_path / "nas"
    (out / "front").mkdir(parents=True)
    (out / "front" / "from_another_run").mkdir()
    (out / "report.md").write_text("another run's report")
    invoke("--space", TABULAR, "--proxy", "num_params", "--out", out, *SMALL)
    assert not (out / "front" / "from_another_run").exists()
    assert "another run" not in (out / "report.md").read_text()


def test_a_registered_proxy_name_is_never_shadowed_by_a_folder_of_that_name(tmp_path, found, monkeypatch):
    import shutil

    shutil.copytree(found.parent, tmp_path / "num_params")  # a found proxy's folder named like a baseline
    monkeypatch.chdir(tmp_path)
    by_name = invoke("--space", TABULAR, "--proxy", "num_params", "--out", tmp_path / "a", *SMALL)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["proxy"]["name"] == "num_params"
    assert "--proxy num_params is the hand-designed proxy; the folder num_params here is read only as a path " \
           "(--proxy ./num_params)" in by_name.output
    invoke("--space", TABULAR, "--proxy", "./num_params", "--out", tmp_path / "b", *SMALL)
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["proxy"]["name"].startswith("found:")
