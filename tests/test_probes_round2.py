"""Second round of probes (docs/promises.md): bad input a new user tries on the newest commands, each one line
and exit code 2 before any work, never a traceback or a run that mixes results."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.cli import main
from test_lonas_checkpoints import write_checkpoint


def one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_double_parsimony_with_an_infinite_tournament_is_one_line_before_work(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["evolve", "--benchmark", FAKE_BENCHMARK, "--parsimony", "double:1e400,1.5",
                                  "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    one_line_error(r, "--parsimony 'double:1e400,1.5': double takes a fitness tournament size")
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_the_same_file_benchmark_spelled_twice_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(FAKE_BENCHMARK.rpartition(":")[0]).parent)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["evolve", "--benchmark", f"{FAKE_BENCHMARK},fake_benchmark.py:TinyGPT2Benchmark",
                                  "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--population", "2", "--sample", "3",
                                  "--iterations", "0"])
    one_line_error(r, "--benchmark names a benchmark twice")
    assert not out.exists()


@pytest.mark.parametrize("target", ["", "hall_of_fame.json"])
def test_export_with_a_format_of_a_front_is_refused_not_printed_as_text(tmp_path, target):
    (tmp_path / "hall_of_fame.json").write_text("[]")
    (tmp_path / "pareto_front.json").write_text(json.dumps(
        [{"complexity": 3, "search_part": {"spearman": 0.5}, "formula": "mean(theta_H)"}]))
    r = CliRunner().invoke(main, ["export", str(tmp_path / target), "--format", "torch"])
    one_line_error(r, f"--format torch exports one found proxy: give {tmp_path / 'best.json'}")


def test_an_out_folder_the_file_system_cannot_make_is_one_line(tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    r = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", "/proc/lpzero-probe"])
    one_line_error(r, "/proc/lpzero-probe: No such file or directory")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny LLaMA checkpoint (base/, adapter/ of rank 8, text.txt), written once."""
    root = tmp_path_factory.mktemp("probes_lonas")
    write_checkpoint(root)
    return root


def test_nas_resume_refuses_another_dtype(checkpoint, tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint, root)
    out = tmp_path / "nas"
    args = ["nas", "--space", f"lonas:{root / 'base'}", "--adapter", str(root / "adapter"), "--text",
            str(root / "text.txt"), "--proxy", "grad_norm", "--population", "2", "--cost", "params",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    first = CliRunner().invoke(main, [*args, "--generations", "0"])
    assert first.exit_code == 0, first.output
    before = (out / "checkpoint.json").read_text()
    r = CliRunner().invoke(main, [*args, "--generations", "1", "--resume", "--dtype", "bfloat16"])
    one_line_error(r, "checkpoint.json: space")
    assert (out / "checkpoint.json").read_text() == before  # nothing scored in bfloat16 beside float32 scores
