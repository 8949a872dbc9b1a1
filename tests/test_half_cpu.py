"""bfloat16 / float16 linear layers with float32 backward products on CPUs without half arithmetic."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lpzero.benchmarks import half_cpu
from lpzero.benchmarks.half_cpu import fast_half_backward
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.benchmarks.lonas import LoNASBenchmark

from test_lonas_checkpoints import write_checkpoint


@pytest.fixture
def no_native_half(monkeypatch):
    """Behave as on a CPU without bfloat16 / float16 arithmetic, whatever this one has."""
    monkeypatch.setattr(half_cpu, "native_half", lambda dtype: False)


def _grads(layer: nn.Linear, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    y = layer(x)
    y.float().square().sum().backward()
    return [y.detach(), x.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_backward_products_agree_with_the_native_ones(no_native_half, dtype):
    torch.manual_seed(0)
    native = nn.Linear(48, 2 * half_cpu.ROW_BLOCK + 5).to(dtype)  # several row blocks, the last one short
    fast = copy.deepcopy(native)
    assert fast_half_backward(fast) == 1
    x = torch.randn(2, 3, 48, dtype=dtype)
    for a, b in zip(_grads(native, x), _grads(fast, x)):
        assert b.dtype == a.dtype and b.shape == a.shape
        # float32 accumulation both ways; only where the last bit is rounded may they differ
        assert torch.allclose(a.float(), b.float(), rtol=1e-2, atol=1e-2)
        assert (a.float() - b.float()).norm() <= 1e-2 * a.float().norm()


def test_float32_and_native_cpus_are_left_alone(monkeypatch):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).bfloat16())
    monkeypatch.setattr(half_cpu, "native_half", lambda dtype: True)
    assert fast_half_backward(model) == 0
    monkeypatch.setattr(half_cpu, "native_half", lambda dtype: False)
    assert fast_half_backward(model) == 1  # the bfloat16 layer only
    assert "forward" not in vars(model[0]) and "forward" in vars(model[1])


def test_a_bfloat16_subnetwork_gets_the_float32_backward(no_native_half, tmp_path):
    write_checkpoint(tmp_path, "llama", torch.bfloat16, seed=1)
    bench = LoNASBenchmark(tmp_path / "base", adapter=tmp_path / "adapter", text=tmp_path / "text.txt")
    sub = bench.build_model("max")
    patched = [m for m in sub.modules() if type(m) is nn.Linear and "forward" in vars(m)]
    assert patched and all(m.weight.dtype == torch.bfloat16 for m in patched)
    # the super-network the sub-network's weights are views of keeps its own layers
    assert not any("forward" in vars(m) for m in bench.supernetwork().modules() if type(m) is nn.Linear)
    batch = bench.make_batch(0, 2, 16)
    fast = extract_inputs(bench, sub, batch, symbols="WG")
    for m in patched:
        del m.forward  # back to the native kernels
    native = extract_inputs(bench, sub, batch, symbols="G")["G"]
    assert len(fast["G"]) == len(native) > 0
    for w, g, ref in zip(fast["W"], fast["G"], native):
        assert g.stored.dtype == w.stored.dtype  # bfloat16 base weights, peft's float32 LoRA
        assert (g.tensor - ref.tensor).norm() <= 2e-2 * ref.tensor.norm() + 1e-6
