"""Fast backward passes of bfloat16 / float16 linear layers on CPUs without native half arithmetic.

On a CPU without bfloat16 (float16) matrix instructions (oneDNN reports none, e.g. AVX2 only),
PyTorch's half-precision matrix product is fast for `x @ W.T` (a linear layer's forward) but
falls back to a slow path for `g @ W` (the gradient at its input) and `g.T @ x` (its weight's
gradient): a bfloat16 Linear(4096, 11008) backward on 32 tokens takes about 15 s against 0.4 s
in float32 (`python scripts/lonas_7b.py speed`), which makes every gradient pass of a 7B
sub-network tens of minutes.

`fast_half_backward(model)` makes each `nn.Linear` of a half-precision model compute its two
backward products in float32 (the weight converted a block of rows at a time, so the extra
memory is one block, never a float32 copy of the model) and round the results to the layer's
dtype, as the native kernels do after accumulating in float32. The forward pass is unchanged.
It does nothing where the CPU has native half arithmetic, on float32 models, or off the CPU.
"""
from __future__ import annotations

import types

import torch
from torch import nn
from torch.nn import functional as F

#: rows of a weight converted to float32 at once for the input gradient (4096 x 1024 floats: 16 MiB)
ROW_BLOCK = 1024


def native_half(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies `dtype` matrices natively (oneDNN's own test)."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == torch.float16:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True


def _input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """grad @ weight accumulated in float32, the weight's rows (the layer's outputs) a block at a time."""
    total = torch.zeros(grad.shape[0], weight.shape[1], dtype=torch.float32)
    for start in range(0, weight.shape[0], ROW_BLOCK):
        stop = start + ROW_BLOCK
        total.addmm_(grad[:, start:stop].float(), weight[start:stop].float())
    return total


class _HalfLinear(torch.autograd.Function):
    """F.linear whose backward products are computed in float32 (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.with_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad, weight).to(x.dtype).reshape(*grad_out.shape[:-1], weight.shape[1])
        if ctx.needs_input_grad[1]:
            flat_x = x.reshape(-1, x.shape[-1])
            grad_w = (grad.t().float() @ flat_x.float()).to(weight.dtype)
        if ctx.with_bias and ctx.needs_input_grad[2]:
            grad_b = grad.float().sum(0).to(grad_out.dtype)
        return grad_x, grad_w, grad_b


def _half_linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return _HalfLinear.apply(x, self.weight, self.bias)


def fast_half_backward(model: nn.Module) -> int:
    """Give each half-precision CPU `nn.Linear` of `model` the float32 backward where the CPU needs it.

    Returns how many layers were changed (0 on float32 models, off the CPU, or where the CPU
    has native half arithmetic). The change is per module instance: other copies of the
    layers (a super-network the model's weights are views of) keep their own forward.
    """
    changed = 0
    for module in model.modules():
        if type(module) is not nn.Linear:  # subclasses (quantized, peft's) keep their own forward
            continue
        weight = module.weight
        if weight.device.type != "cpu" or weight.dtype not in (torch.bfloat16, torch.float16):
            continue
        if native_half(weight.dtype):
            continue
        module.forward = types.MethodType(_half_linear_forward, module)
        changed += 1
    return changed
