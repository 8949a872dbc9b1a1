"""lpzero.cache.sampling: W and G at the same positions, calibrated weights, extremes kept (real GPT-2 models)."""
import pytest
import torch

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import as_weighted, extract_inputs
from lpzero.cache import calibrated_weights, sample_inputs, stack_stored
from lpzero.primitives import OPS

ARCH = "config_9_j3"


@pytest.mark.data
def test_w_and_g_are_sampled_at_the_same_positions():
    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(ARCH, 0), bench.make_batch(0, 2, 32))
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
    full = torch.randn(10_000, generator=torch.Generator().manual_seed(1)) + 0.1
    kept = full[::100]
    w = calibrated_weights([kept], [full], torch.full((100,), 100.0))
    for f in (lambda v: v, lambda v: v * v):
        assert (w.double() * f(kept.double())).sum().item() == pytest.approx(f(full.double()).sum().item(), rel=1e-5)
    assert (w >= 0).all()
    inf = full.clone()
    inf[0] = float("inf")
    assert torch.equal(calibrated_weights([kept], [inf], torch.full((100,), 100.0)), torch.full((100,), 100.0))


@pytest.mark.data
def test_single_input_families_keep_extremes_and_estimate_heavy_tails():
    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(ARCH, 0), bench.make_batch(0, 2, 32))
    stored = sample_inputs(x, 256, seed=0)
    s_full = x["S"][0].tensor.reshape(-1)
    assert stored["S.values"][0].max().item() == s_full.max().item() == 1.0  # a causal map's first row
    assert stored["S.values"][0].min().item() == s_full.min().item() == 0.0  # the masked half
    assert stored["S.weights"][0].sum().item() == pytest.approx(s_full.numel())
    sampled, full = stack_stored([stored], 256)["S"], as_weighted(x)["S"]
    for name in ("std", "frobenius", "mean", "min_max"):
        est = OPS[name].torch_fn(sampled) if name != "min_max" else OPS["mean"].torch_fn(
            sampled.with_values(OPS["min_max"].torch_fn(sampled)))
        ref = OPS[name].torch_fn(full) if name != "min_max" else OPS["mean"].torch_fn(
            full.with_values(OPS["min_max"].torch_fn(full)))
        assert est[0, 0].item() == pytest.approx(ref[0, 0].item(), rel=0.03), name


@pytest.mark.data
def test_sampled_norm_estimates_the_full_norm():
    bench = get_benchmark("gpt2")
    x = extract_inputs(bench, bench.build_model(ARCH, 0), bench.make_batch(0, 2, 32))
    sampled = stack_stored([sample_inputs(x, 4096, seed=0)], 4096)["W"]
    full = as_weighted(x)["W"]
    est, ref = OPS["l1"].torch_fn(sampled), OPS["l1"].torch_fn(full)
    assert torch.allclose(est, ref, rtol=0.05)
