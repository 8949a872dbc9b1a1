"""The six inputs on real benchmark models (smallest architectures, short batches)."""
import pytest
import torch

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.inputs import SYMBOLS, extract_inputs


@pytest.mark.parametrize("symbols", ["H", "AS", "W", "G", "J"])
def test_a_subset_of_inputs_equals_the_same_inputs_of_the_full_pass(symbols):
    bench = TinyGPT2Benchmark()
    batch = bench.make_batch(0)
    full = extract_inputs(bench, bench.build_model("tiny4", 0), batch)
    part = extract_inputs(bench, bench.build_model("tiny4", 0), batch, symbols)
    for s in SYMBOLS:
        if s in symbols:
            assert len(part[s]) == len(full[s]) > 0
            assert all(torch.equal(a.tensor, b.tensor) for a, b in zip(part[s], full[s]))
        else:
            assert part[s] == []


@pytest.fixture(scope="module")
def gpt2():
    return get_benchmark("gpt2")


@pytest.fixture(scope="module")
def flexibert():
    return get_benchmark("flexibert")


@pytest.mark.data
def test_gpt2_input_shapes(gpt2):
    arch = "config_9_j3"  # d_model 64, 2 layers: the smallest
    cfg = gpt2.architecture(arch).config
    model = gpt2.build_model(arch, seed=0)
    batch = gpt2.make_batch(0, 2, 32)
    x = extract_inputs(gpt2, model, batch)
    n, d = cfg["n_layer"], cfg["d_model"]
    assert [lt.layer for lt in x["A"]] == list(range(n))
    for i, lt in enumerate(x["A"]):
        d_inner = cfg["d_inner"][i] if isinstance(cfg["d_inner"], list) else cfg["d_inner"]
        assert lt.tensor.shape == (2, 32, d_inner)
    assert all(lt.tensor.shape == (2, 32, d) for lt in x["H"])
    assert x["J"][0].tensor.shape == (2, 32, d) and x["J"][0].tensor.abs().sum() > 0
    for lt in x["S"]:
        assert lt.tensor.shape[0] == 2 and lt.tensor.shape[2:] == (32, 32)
        assert torch.allclose(lt.tensor.sum(-1), torch.ones(()), atol=1e-5)
    assert len(x["W"]) == len(x["G"]) == 4 * n
    for w, g in zip(x["W"], x["G"]):
        assert w.tensor.shape == g.tensor.shape and w.name == g.name and g.tensor.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters()), "gradients are left cleared"


@pytest.mark.data
def test_flexibert_softmax_is_absent_for_fourier_layers(flexibert):
    # the first architecture with an LT layer
    arch = next(a for a in flexibert.ids()
                if any(l["operation_type"] == "LT" for l in flexibert.architecture(a).config["nas_config"]["encoder_layers"]))
    layers = flexibert.architecture(arch).config["nas_config"]["encoder_layers"]
    x = extract_inputs(flexibert, flexibert.build_model(arch, 0), flexibert.make_batch(0, 2, 32))
    lt_layers = {i for i, l in enumerate(layers) if l["operation_type"] == "LT"}
    assert lt_layers and not lt_layers & {lt.layer for lt in x["S"]}
    assert {lt.layer for lt in x["H"]} == set(range(len(layers)))
    assert len(x["A"]) == sum(l["num_feed_forward"] for l in layers)
    assert x["J"][0].tensor.abs().sum() > 0 and all(g.tensor.abs().sum() > 0 for g in x["G"])
    assert set(x) == set(SYMBOLS)
