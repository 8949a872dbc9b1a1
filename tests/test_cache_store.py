"""lpzero.cache.store: contents, resume, invalidation, serial = parallel (on the fake benchmark)."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import FAKE_BENCHMARK
from lpzero.cache import CacheSettings, InputCache
from lpzero.errors import CacheError
from lpzero.proxies import HAND_DESIGNED, ProxyContext

IDS = ["tiny1", "tiny4"]


def settings(**kw):
    return CacheSettings(**{"benchmark": FAKE_BENCHMARK, "batch_size": 2, "seq_len": 16, "samples": 64, **kw})


def test_compute_load_and_resume(tmp_path):
    cache = InputCache(settings(), tmp_path)
    assert cache.compute(IDS, baselines=["num_params"]) == IDS
    loaded = cache.load(IDS)
    assert loaded["W"].values.shape[0] == 2 and loaded["W"].values.shape[2] == 64
    assert cache.info(IDS[0])["baselines"]["num_params"] > 0
    assert cache.compute(IDS, baselines=["num_params"]) == []  # nothing left to do
    cache.path(IDS[1]).unlink()
    (cache.dir / f".{IDS[1]}.safetensors.123.tmp").write_text("torn write")  # an interrupted run's leftover
    assert cache.compute(IDS, baselines=["num_params"]) == [IDS[1]]
    assert cache.missing(IDS, baselines=["num_params", "grad_norm"]) == IDS  # a new baseline is missing
    assert cache.compute(IDS, baselines=["grad_norm"]) == IDS
    assert set(cache.info(IDS[0])["baselines"]) == {"num_params", "grad_norm"}  # added, not replaced
    assert cache.size_bytes() > 0


def test_changed_settings_never_read_stale_data(tmp_path):
    keys = {settings().key(), settings(seq_len=8).key(), settings(batch_seed=1).key(), settings(samples=32).key(),
            settings(model_seed=1).key(), settings(benchmark="flexibert").key()}
    assert len(keys) == 6
    assert settings().key() == settings(data="/elsewhere").key()
    with pytest.raises(CacheError, match="not cached"):
        InputCache(settings(seq_len=8), tmp_path).load(IDS)


def test_settings_for_a_benchmark_take_its_batch_unless_told():
    from fake_benchmark import TinyGPT2Benchmark

    bench = TinyGPT2Benchmark()
    assert (CacheSettings.for_benchmark(bench).batch_size, CacheSettings.for_benchmark(bench).seq_len) == (4, 16)
    assert CacheSettings.for_benchmark(bench, seq_len=8).seq_len == 8
    assert CacheSettings.for_benchmark(bench, paper_batch=True).batch_size == bench.paper_batch_size


@pytest.mark.slow
def test_serial_and_parallel_builds_are_bitwise_identical(tmp_path):
    # float reductions round differently with another thread count; the cache fixes it
    serial, parallel = InputCache(settings(), tmp_path / "serial"), InputCache(settings(), tmp_path / "parallel")
    serial.compute(IDS, baselines=["grad_norm"])
    parallel.compute(IDS, baselines=["grad_norm"], jobs=2)
    for a in IDS:
        x, y = load_file(str(serial.path(a))), load_file(str(parallel.path(a)))
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), (a, k)
        assert serial.info(a)["baselines"] == parallel.info(a)["baselines"]


def parameters_and_a_half(ctx: ProxyContext) -> float:
    """A user's proxy, named to the cache as file.py:ATTR."""
    return 1.5 * sum(p.numel() for p in ctx.model().parameters())


def test_a_proxy_named_by_path_is_computed_and_stored_under_that_name(tmp_path):
    mine = f"{Path(__file__).resolve()}:parameters_and_a_half"
    cache = InputCache(settings(), tmp_path)
    assert cache.compute(IDS, baselines=["num_params", mine]) == IDS
    for a in IDS:
        stored = cache.info(a)["baselines"]
        assert stored[mine] == 1.5 * stored["num_params"] and cache.info(a)["seconds"][mine] >= 0
    assert cache.missing(IDS, baselines=[mine]) == []


def test_stored_baselines_are_the_proxies_on_the_caches_own_batch(tmp_path):
    # bitwise: the cache scores the proxies as a fresh context does, after extracting the inputs
    s = settings()
    cache = InputCache(s, tmp_path)
    names = ["grad_norm", "lpzero_gpt2", "synflow"]
    cache.compute(IDS[:1], baselines=names)
    bench = s.open_benchmark()
    ctx = ProxyContext(bench, IDS[0], s.model_seed, bench.make_batch(s.batch_seed, s.batch_size, s.seq_len))
    assert cache.info(IDS[0])["baselines"] == {n: HAND_DESIGNED[n](ctx) for n in names}
