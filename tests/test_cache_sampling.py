"""lpzero.cache.sampling: W and G at the same positions, calibrated weights, extremes kept (real GPT-2 models),
order statistics selected without a full sort equal to the sorted ones."""
import numpy as np
import pytest
import torch

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import as_weighted, extract_inputs
from lpzero.cache import calibrated_weights, sample_inputs, sampling, stack_stored
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


def _tensors_to_select_from() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = sampling.SELECT_MIN_ELEMENTS + 1000
    return {
        "normal": rng.standard_normal(n).astype(np.float32),
        "half zeros, as a causal attention map": np.where(rng.random(n) < 0.5, 0, rng.random(n)).astype(np.float32),
        "signed zeros and denormals": (rng.choice([-0.0, 0.0, 1e-42, -1e-42, 3.0], n)).astype(np.float32),
        "few distinct values": rng.integers(-2, 3, n).astype(np.float32),
        "heavy tails": (rng.standard_cauchy(n) ** 3).astype(np.float32),
        "with inf": np.concatenate([rng.standard_normal(n), [np.inf, -np.inf]]).astype(np.float32),
        "with NaN": np.concatenate([rng.standard_normal(n), [np.nan]]).astype(np.float32),
        "small": rng.standard_normal(500).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_tensors_to_select_from()))
def test_order_statistics_equal_the_full_sort_and_leave_the_values_untouched(name):
    values = _tensors_to_select_from()[name]
    before = values.copy()
    n = values.size
    ranks = np.concatenate([np.arange(5), np.random.default_rng(1).integers(0, n, 300), np.arange(n - 5, n)])
    got, expected = sampling.order_statistics(values, ranks), np.sort(values)[ranks]
    np.testing.assert_array_equal(got, expected)  # NaN equals NaN here; -0.0 equals 0.0
    np.testing.assert_array_equal(values, before)


@pytest.mark.parametrize("name", ["normal", "few distinct values", "half zeros, as a causal attention map"])
def test_without_tails_is_the_middle_of_the_sorted_values(name):
    values = _tensors_to_select_from()[name]
    ordered, tail = np.sort(values), 128
    middle = sampling._without_tails(values, float(ordered[tail - 1]), float(ordered[-tail]), tail)
    np.testing.assert_array_equal(np.sort(middle), ordered[tail:-tail])
    constant = np.full(1000, 0.25, dtype=np.float32)
    np.testing.assert_array_equal(sampling._without_tails(constant, 0.25, 0.25, tail), np.full(1000 - 2 * tail, 0.25))


@pytest.mark.parametrize("name", ["normal", "heavy tails", "few distinct values", "with NaN"])
def test_selecting_order_statistics_stores_what_a_full_sort_stores(name, monkeypatch):
    flat = torch.from_numpy(_tensors_to_select_from()[name])
    selected = sampling._value_stratified_sample(flat, 1024, torch.Generator().manual_seed(4))
    monkeypatch.setattr(sampling, "SELECT_MIN_ELEMENTS", flat.numel() + 1)  # every tensor sorted whole
    ordered = np.sort(flat.numpy())
    monkeypatch.setattr(sampling, "_without_tails", lambda values, low, high, tail: ordered[tail:values.size - tail])
    sorted_whole = sampling._value_stratified_sample(flat, 1024, torch.Generator().manual_seed(4))
    assert torch.equal(selected[0].nan_to_num(), sorted_whole[0].nan_to_num())  # the same kept values
    # weights calibrated on the same values summed in another order: equal to float32 rounding
    assert torch.allclose(selected[1], sorted_whole[1], rtol=1e-6, atol=0)


@pytest.mark.parametrize("samples", [1, 7])
def test_fewer_than_eight_samples_keep_no_exact_tails(samples):
    flat = torch.from_numpy(_tensors_to_select_from()["normal"])
    values, weights = sampling._value_stratified_sample(flat, samples, torch.Generator().manual_seed(0))
    assert values.shape == weights.shape == (samples,)
    assert weights.sum().item() == pytest.approx(flat.numel(), rel=1e-6)  # calibrated on the whole tensor
