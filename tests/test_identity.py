"""A benchmark is identified by what it is: one canonical name however its path is spelled, and a
fingerprint of what its scores depend on, which `lpzero nas --resume` checks (docs/promises.md)."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks import canonical_name, folder_name, get_benchmark
from lpzero.benchmarks.base import FINGERPRINT_BYTES, file_fingerprint
from lpzero.cli import main
from lpzero.nas import EvalSettings, NASError, NSGASettings, TabularSpace, proxy_spec
from lpzero.workflows.nas import run_nas

TABULAR = f"tabular:{FAKE_BENCHMARK}"
SMALL = ["--batch-size", "2", "--seq-len", "8", "--cost-seq-len", "8"]


def invoke(*args):
    return CliRunner().invoke(main, ["nas", *[str(a) for a in args]])


def one_error_line(result) -> bool:
    """Exactly one `lpzero: error:` line and no traceback (warnings may precede it)."""
    lines = result.output.strip().splitlines()
    return sum(line.startswith("lpzero: error:") for line in lines) == 1 and "Traceback" not in result.output


# --- names -----------------------------------------------------------------------------------

def test_a_prefix_benchmark_has_one_name_however_its_path_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "lts").mkdir()
    monkeypatch.chdir(tmp_path)
    names = {canonical_name(n) for n in ("lts:lts", f"lts:{tmp_path}/lts", f"lts:{tmp_path}/lts/", "lts:./lts")}
    assert names == {f"lts:{(tmp_path / 'lts').resolve()}"}
    assert canonical_name("lonas:lts") == f"lonas:{(tmp_path / 'lts').resolve()}"
    assert canonical_name("gpt2") == "gpt2" and canonical_name(FAKE_BENCHMARK) == FAKE_BENCHMARK


def test_get_benchmark_names_an_lts_directory_by_its_absolute_path(tmp_path, monkeypatch):
    source = get_benchmark("gpt2").path if _has_data() else None
    if source is None:
        pytest.skip("no LTS data")
    lts = tmp_path / "lts"
    (lts / "config_0" / "j0").mkdir(parents=True)
    (lts / "config_0" / "j0" / "model_config.yaml").write_text((source / "config_0/j0/model_config.yaml").read_text())
    (lts / "ppl_summary.yaml").write_text("config_0_j0:\n  valid_ppl: 30.5\n")
    monkeypatch.chdir(tmp_path)
    names = {get_benchmark(n).name for n in ("lts:lts", f"lts:{lts}", f"lts:{lts}/")}
    assert names == {f"lts:{lts.resolve()}"}


def _has_data() -> bool:
    try:
        get_benchmark("gpt2")
    except Exception:
        return False
    return True


def test_a_folder_name_is_short_and_unique():
    a, b = folder_name("lts:/very/long/path/to/lts"), folder_name("lts:/another/path/to/lts")
    assert a.startswith("lts_lts_") and a != b and len(a) < 20
    assert folder_name("tabular:lts:/x/lts").startswith("tabular_lts_lts_")
    assert folder_name("gpt2") == "gpt2" and folder_name("tabular:gpt2") == "tabular_gpt2"


# --- fingerprints ----------------------------------------------------------------------------

def test_a_file_fingerprint_reads_only_both_ends(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytearray(3 * FINGERPRINT_BYTES)
    path.write_bytes(bytes(data))
    before = file_fingerprint(path)
    data[len(data) // 2] = 1  # the middle is never read: a 13 GB file costs two MiB
    path.write_bytes(bytes(data))
    assert file_fingerprint(path) == before
    data[-1] = 1
    path.write_bytes(bytes(data))
    assert file_fingerprint(path) != before
    path.write_bytes(bytes(data[:-1]))  # truncated
    assert file_fingerprint(path) not in (before, file_fingerprint(tmp_path / "none"))


def test_a_benchmark_fingerprint_follows_its_architectures_and_data_files(tmp_path, monkeypatch):
    bench = TinyGPT2Benchmark()
    first = bench.fingerprint()
    assert first == TinyGPT2Benchmark().fingerprint()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a")
    monkeypatch.setattr(TinyGPT2Benchmark, "data_files", lambda self: [weights])
    with_file = bench.fingerprint()
    assert with_file != first
    weights.write_bytes(b"b")
    assert bench.fingerprint() != with_file


def test_nas_resume_refuses_a_rebuilt_benchmark_in_one_line(tmp_path, monkeypatch):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"the first super-network")
    # the class the CLI opens (file.py:Class loads its own module, not the test's import)
    monkeypatch.setattr(type(get_benchmark(FAKE_BENCHMARK)), "data_files", lambda self: [weights])
    out = tmp_path / "nas"
    args = ["--space", TABULAR, "--proxy", "num_params", "--out", out, *SMALL]
    assert invoke(*args).exit_code == 0
    weights.write_bytes(b"the rebuilt super-network")
    result = invoke(*args, "--resume")
    assert result.exit_code == 2 and "changed since this checkpoint" in result.output
    assert one_error_line(result)


@pytest.mark.data
@pytest.mark.slow
def test_a_rebuilt_lonas_directory_is_not_resumed(lonas_smoke, tmp_path):
    import shutil

    built, _ = lonas_smoke
    copy = tmp_path / "lonas"
    shutil.copytree(built, copy)
    bench = get_benchmark(f"lonas:{copy}")
    files = {p.name for p in bench.data_files()}
    assert {"space.json", "ground_truth.json", "config.json", "adapter_config.json"} <= files
    assert any(n.endswith(".safetensors") for n in files)
    out = tmp_path / "nas"
    args = ["--space", f"lonas:{copy}", "--proxy", "num_params", "--population", "2", "--generations", "0",
            "--seq-len", "16", "--out", out]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    adapter = next(p for p in bench.data_files() if p.suffix == ".safetensors" and "adapter" in p.parent.name)
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 1  # retrained: other weights
    adapter.write_bytes(bytes(data))
    result = invoke(*args, "--resume")
    assert result.exit_code == 2 and "changed since this checkpoint" in result.output


# --- failed candidates are retried; invalid scores stay -----------------------------------

class FlakySpace(TabularSpace):
    """The fake benchmark, whose models cannot be built while their ids are in `broken` (a truncated file)."""

    broken: set = set()

    def build_model(self, config, seed, device="cpu"):
        if config["id"] in self.broken:
            raise OSError(f"{config['id']}: truncated weight file")
        return super().build_model(config, seed, device)


def test_candidates_that_failed_by_an_error_are_scored_again_on_resume(tmp_path, found, monkeypatch):
    space = FlakySpace(FAKE_BENCHMARK)
    monkeypatch.setattr(FlakySpace, "broken", set(space.ids))
    proxy, settings = proxy_spec(str(found)), EvalSettings(2, 8)
    with pytest.raises(NASError, match="none of the"):
        run_nas(space, proxy, settings, NSGASettings(), tmp_path)
    monkeypatch.setattr(FlakySpace, "broken", set())  # the file is repaired
    summary = run_nas(space, proxy, settings, NSGASettings(), tmp_path, resume=True)
    assert summary["failed"] == 0 and summary["scored_now"] == len(space.ids) and summary["chosen"]


def test_an_invalid_score_stays_recorded_on_resume(tmp_path):
    space = TabularSpace(FAKE_BENCHMARK)
    given = {a: (math.nan if i == 0 else float(i)) for i, a in enumerate(space.ids)}
    settings = EvalSettings(2, 8)
    run_nas(space, proxy_spec("num_params"), settings, NSGASettings(), tmp_path, given=given)
    memo = json.loads((tmp_path / "checkpoint.json").read_text())["memo"]
    assert memo[space.ids[0]]["error"].startswith("non-finite")
    summary = run_nas(space, proxy_spec("num_params"), settings, NSGASettings(), tmp_path, resume=True, given=given)
    assert summary["scored_now"] == 0 and summary["failed"] == 1


# --- a resume with fewer generations or another selection ---------------------------------

def test_a_resume_with_fewer_generations_is_refused(tmp_path, found):
    out = tmp_path / "nas"
    args = ["--space", "test_nas_search:TinySpace", "--proxy", found, "--population", "3", "--out", out, *SMALL]
    assert invoke(*args, "--generations", "2").exit_code == 0
    result = invoke(*args, "--generations", "1", "--resume")
    assert result.exit_code == 2 and "has done 2 generations" in result.output
    assert one_error_line(result)


@pytest.mark.parametrize("again", [["--limit", "5"], ["--ids", "tiny0,tiny1"]])
def test_a_tabular_resume_with_another_selection_is_refused_before_any_work(tmp_path, again):
    out = tmp_path / "nas"
    assert invoke("--space", TABULAR, "--proxy", "num_params", "--out", out, "--limit", "3", *SMALL).exit_code == 0
    summary = (out / "summary.json").read_text()
    result = invoke("--space", TABULAR, "--proxy", "num_params", "--out", out, *again, "--resume", *SMALL)
    assert result.exit_code == 2 and "architectures." in result.output
    assert one_error_line(result)
    assert (out / "summary.json").read_text() == summary  # refused before the earlier outputs were cleared



# --- a worker killed in a process pool -----------------------------------------------------

class DyingSpace(TabularSpace):
    """The fake benchmark, whose worker process dies (as if killed) the first time a model is built,
    while the file `flag` (a class attribute, so that workers see it) exists."""

    flag: str = ""

    def build_model(self, config, seed, device="cpu"):
        import os

        if self.flag and os.path.exists(self.flag):
            os.remove(self.flag)
            os._exit(1)
        return super().build_model(config, seed, device)


@pytest.mark.slow
def test_a_killed_pool_worker_is_retried_on_a_fresh_pool(tmp_path, found, monkeypatch):
    from lpzero.executors import ProcessExecutor

    flag = tmp_path / "die"
    flag.write_text("")
    space = DyingSpace(FAKE_BENCHMARK, ids=["tiny0", "tiny1"])
    space.flag = str(flag)  # pickled with the space into the worker
    executor = ProcessExecutor(1)
    try:
        summary = run_nas(space, proxy_spec(str(found)), EvalSettings(2, 8), NSGASettings(), tmp_path / "nas",
                          executor)
    finally:
        executor.close()
    assert not flag.exists() and summary["evaluated"] == 2 and summary["failed"] == 0
