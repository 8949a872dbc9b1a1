"""lpzero.executors: local, process pool and Ray run the same work; failures are named, dead workers retried."""
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from lpzero.cache import CacheSettings, InputCache
from lpzero.cli import main
from lpzero.errors import CacheError, LPZeroError
from lpzero.executors import LocalExecutor, ProcessExecutor, TaskFailure, make_executor
from lpzero.search import EvolveSettings, run_evolution
from synthetic import synthetic_toolbox

TESTS = Path(__file__).resolve().parent
IDS = ["tiny0", "tiny2", "tiny3", "tiny5"]


def halve(x, divisor):
    if x == 3:
        raise ValueError("three is odd")
    return x / divisor


def settings(root, cls="TinyGPT2Benchmark"):
    return CacheSettings(f"{TESTS / 'fake_benchmark.py'}:{cls}", batch_size=2, seq_len=16, samples=64, data=str(root))


def assert_same_files(a: InputCache, b: InputCache, ids=IDS):
    for arch in ids:
        x, y = load_file(str(a.path(arch))), load_file(str(b.path(arch)))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), arch
        assert a.info(arch)["baselines"] == b.info(arch)["baselines"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lpzero[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    cache = InputCache(settings(tmp_path_factory.mktemp("serial")), tmp_path_factory.mktemp("serial_cache"))
    cache.compute(IDS, ["grad_norm"])
    return cache


@pytest.mark.parametrize("make", [LocalExecutor, lambda: ProcessExecutor(2)], ids=["local", "process"])
def test_results_come_back_and_a_failing_task_is_named(make):
    with make() as ex:
        results = dict(ex.imap_unordered(halve, [1, 2, 3, 4], 2))
    assert {k: v for k, v in results.items() if k != 3} == {1: 0.5, 2: 1.0, 4: 2.0}
    assert results[3] == TaskFailure(3, "ValueError: three is odd")


def test_a_failing_architecture_is_named_and_the_others_are_cached(tmp_path):
    cache = InputCache(settings(tmp_path, "FailingBenchmark"), tmp_path / "cache")
    with pytest.raises(CacheError, match="1 of 4 architecture\\(s\\) failed.*tiny3: BenchmarkError: tiny3: this"):
        cache.compute(IDS, ["num_params"])
    assert cache.missing(IDS) == ["tiny3"]


def test_ray_without_ray_installed_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LPZeroError, match='needs Ray: pip install "lpzero\\[ray\\]"'):
        make_executor("ray")


@pytest.mark.slow
def test_a_ray_built_cache_equals_the_serial_one(ray_cluster, serial, tmp_path):
    cache = InputCache(serial.settings, tmp_path)
    with make_executor("ray") as ex:
        assert sorted(cache.compute(IDS, ["grad_norm"], executor=ex)) == sorted(IDS)
    assert_same_files(serial, cache)


@pytest.mark.slow
def test_a_killed_ray_worker_is_retried_and_the_cache_is_complete(ray_cluster, serial, tmp_path):
    cache = InputCache(settings(tmp_path, "CrashOnceBenchmark"), tmp_path / "cache")
    with make_executor("ray") as ex:
        cache.compute(IDS, ["grad_norm"], executor=ex)
    assert (tmp_path / "crashed").exists()  # the worker building tiny2 did die once
    assert_same_files(serial, cache)


@pytest.mark.slow
def test_a_failing_task_on_ray_is_named_and_the_others_are_cached(ray_cluster, tmp_path):
    cache = InputCache(settings(tmp_path, "FailingBenchmark"), tmp_path / "cache")
    with make_executor("ray") as ex, pytest.raises(CacheError, match="tiny3: BenchmarkError"):
        cache.compute(IDS, ["num_params"], executor=ex)
    assert cache.missing(IDS) == ["tiny3"]


@pytest.mark.slow
def test_toolbox_map_on_ray_repeats_the_serial_run(ray_cluster):
    settings_ = EvolveSettings(population=12, iterations=10)
    tb, _ = synthetic_toolbox()
    expected = run_evolution(tb, settings_)
    tb, _ = synthetic_toolbox()
    with make_executor("ray") as ex:
        tb.register("map", ex.map)
        parallel = run_evolution(tb, settings_)
    assert [str(i) for i in parallel.population] == [str(i) for i in expected.population]


@pytest.mark.slow
def test_cli_cache_on_ray_builds_the_serial_cache(ray_cluster, serial, tmp_path):
    r = CliRunner().invoke(main, ["cache", serial.settings.benchmark, "--data", serial.settings.data, "--cache-dir",
                                  str(tmp_path), "--ids", ",".join(IDS), "--batch-size", "2", "--seq-len", "16",
                                  "--samples", "64", "--baselines", "grad_norm", "--executor", "ray"])
    assert r.exit_code == 0, r.output
    assert_same_files(serial, InputCache(serial.settings, tmp_path))
