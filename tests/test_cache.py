"""Cache: contents, resume, invalidation, sampling."""
import pytest
import torch

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.cache import CacheSettings, InputCache, sample_inputs
from lpzero.errors import LPZeroError
from lpzero.primitives import OPS

IDS = ["config_9_j3", "config_4_j5"]


def settings(**kw):
    return CacheSettings(**{"benchmark": "gpt2", "batch_size": 2, "seq_len": 32, "samples": 64, **kw})


def test_compute_load_and_resume(tmp_path):
    cache = InputCache(settings(), tmp_path)
    assert cache.compute(IDS, baselines=["num_params"]) == IDS
    loaded = cache.load(IDS)
    assert loaded["W"].values.shape[0] == 2 and loaded["W"].values.shape[2] == 64
    assert cache.info(IDS[0])["baselines"]["num_params"] > 0
    assert cache.compute(IDS, baselines=["num_params"]) == []  # nothing left to do
    cache.path(IDS[1]).unlink()
    (cache.dir / f"{IDS[1]}.safetensors.tmp").write_text("torn write")  # an interrupted run's leftover
    assert cache.compute(IDS, baselines=["num_params"]) == [IDS[1]]
    assert cache.missing(IDS, baselines=["num_params", "grad_norm"]) == IDS  # a new baseline is missing
    assert cache.size_bytes() > 0


def test_changed_settings_never_read_stale_data(tmp_path):
    keys = {settings().key(), settings(seq_len=16).key(), settings(batch_seed=1).key(), settings(samples=32).key(),
            settings(model_seed=1).key(), settings(benchmark="flexibert").key()}
    assert len(keys) == 6
    assert settings().key() == settings(data="/elsewhere").key()
    with pytest.raises(LPZeroError, match="not cached"):
        InputCache(settings(seq_len=16), tmp_path).load(IDS)


def test_w_and_g_are_sampled_at_the_same_positions():
    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(IDS[0], 0), bench.make_batch(0, 2, 32))
    stored = sample_inputs(x, 64, seed=3)
    w_full, g_full = x["W"][0].tensor.reshape(-1), x["G"][0].tensor.reshape(-1)
    w_s, g_s = stored["W.values"][0], stored["G.values"][0]
    # each sampled (w, g) pair is a pair of the full tensors at one position
    pairs = set(zip(w_full.tolist(), g_full.tolist()))
    assert all((w, g) in pairs for w, g in zip(w_s.tolist(), g_s.tolist()))
    assert torch.equal(stored["W.weights"], stored["G.weights"])
    # calibrated: the weighted sample reproduces the full tensors' sums and sums of squares
    w = stored["W.weights"][0].double()
    for kept, full in ((w_s, w_full), (g_s, g_full)):
        kept, full = kept.double(), full.double()
        assert (w * kept * kept).sum().item() == pytest.approx((full * full).sum().item(), rel=1e-5)
    assert (w * w_s.double()).sum().item() == pytest.approx(w_full.double().sum().item(), rel=1e-4)
    assert w.sum().item() == pytest.approx(w_full.numel(), rel=1e-6)


def test_calibrated_weights_reproduce_the_totals_and_keep_the_design_without_information():
    from lpzero.cache import calibrated_weights

    full = torch.randn(10_000, generator=torch.Generator().manual_seed(1)) + 0.1
    kept = full[::100]
    w = calibrated_weights([kept], [full], torch.full((100,), 100.0))
    for f in (lambda v: v, lambda v: v * v):
        assert (w.double() * f(kept.double())).sum().item() == pytest.approx(f(full.double()).sum().item(), rel=1e-5)
    assert (w >= 0).all()
    inf = full.clone()
    inf[0] = float("inf")
    assert torch.equal(calibrated_weights([kept], [inf], torch.full((100,), 100.0)), torch.full((100,), 100.0))


def test_single_input_families_keep_extremes_and_estimate_heavy_tails():
    from lpzero.benchmarks.inputs import as_weighted as full_weighted
    from lpzero.cache import stack_stored

    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(IDS[0], 0), bench.make_batch(0, 2, 32))
    stored = sample_inputs(x, 256, seed=0)
    s_full = x["S"][0].tensor.reshape(-1)
    assert stored["S.values"][0].max().item() == s_full.max().item() == 1.0  # a causal map's first row
    assert stored["S.values"][0].min().item() == s_full.min().item() == 0.0  # the masked half
    assert stored["S.weights"][0].sum().item() == pytest.approx(s_full.numel())
    sampled, full = stack_stored([stored], 256)["S"], full_weighted(x)["S"]
    for name in ("std", "frobenius", "mean", "min_max"):
        est = OPS[name].torch_fn(sampled) if name != "min_max" else OPS["mean"].torch_fn(
            sampled.with_values(OPS["min_max"].torch_fn(sampled)))
        ref = OPS[name].torch_fn(full) if name != "min_max" else OPS["mean"].torch_fn(
            full.with_values(OPS["min_max"].torch_fn(full)))
        assert est[0, 0].item() == pytest.approx(ref[0, 0].item(), rel=0.03), name


def test_sampled_norm_estimates_the_full_norm(tmp_path):
    from lpzero.benchmarks.inputs import as_weighted as full_weighted
    from lpzero.cache import stack_stored

    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(IDS[0], 0), bench.make_batch(0, 2, 32))
    sampled = stack_stored([sample_inputs(x, 4096, seed=0)], 4096)["W"]
    full = full_weighted(x)["W"]
    est, ref = OPS["l1"].torch_fn(sampled), OPS["l1"].torch_fn(full)
    assert torch.allclose(est, ref, rtol=0.05)


def test_serial_and_parallel_builds_are_bitwise_identical(tmp_path):
    # float reductions round differently with another thread count; the cache fixes it
    from safetensors.torch import load_file

    serial, parallel = InputCache(settings(), tmp_path / "serial"), InputCache(settings(), tmp_path / "parallel")
    serial.compute(IDS)
    parallel.compute(IDS, jobs=2)
    for a in IDS:
        x, y = load_file(str(serial.path(a))), load_file(str(parallel.path(a)))
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), (a, k)
