"""The heterogeneous ELECTRA-style encoder of the FlexiBERT / NAS-Bench-BERT search space.

Every encoder layer picks its own token-mixing operation, then runs its own stack of
feed-forward layers:

- SA: multi-head self-attention, scaled dot-product (SDP) or weighted multiplicative
  (WMA: the query passes through one more bias-free `hidden x hidden` matrix);
- LT: a parameter-free linear transform of each head's (tokens x head_dim) block, the real
  part of a 2-D DFT or an unnormalized 2-D DCT-II, after one input projection;
- DSC: ConvBERT's span-based dynamic convolution with kernel 5 or 9: half the heads do
  self-attention, the other half a convolution whose kernel each token predicts itself.

SA and DSC are followed by an output projection, residual and LayerNorm; LT is not (its
output goes straight into the feed-forward block, which then uses it as its residual too).
The feed-forward block is `num_feed_forward` GELU layers of width `feed_forward_dim` and a
down-projection, residual and LayerNorm. The embedding is ELECTRA-small's: 30,522 tokens,
512 positions, 2 token types, all 128 wide, projected to the hidden size when that is not 128.

These facts follow the PyTorch model the FlexiBERT proxy study scored (Serianni & Kalita,
`modeling_electra.py` in aaronserianni/training-free-nas); this file is written anew.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig
from transformers.activations import ACT2FN
from transformers.models.electra.modeling_electra import ElectraEmbeddings, ElectraSelfOutput

from ..base import ConfigError

VOCAB_SIZE = 30522
MAX_POSITIONS = 512
EMBEDDING_SIZE = 128
INIT_STD = 0.02
DROPOUT = 0.1
#: the sizes every model got in the original proxy code, which left them at ElectraConfig's defaults
PROXY_CODE_HIDDEN_SIZE = 256
PROXY_CODE_FEED_FORWARD_DIM = 1024

#: operation_type -> the operation_parameter values it accepts (DSC: any odd kernel size)
OPERATION_PARAMETERS: dict[str, tuple[str, ...]] = {"SA": ("SDP", "WMA"), "LT": ("DFT", "DCT"), "DSC": ()}


@dataclass(frozen=True)
class LayerSpec:
    """One encoder layer of the search space (one entry of `nas_config.encoder_layers`)."""

    operation_type: str
    operation_parameter: str | int
    num_heads: int
    feed_forward_dim: int
    num_feed_forward: int

    @classmethod
    def from_dict(cls, d: Any) -> "LayerSpec":
        """Parse and check one layer; `ValueError` naming the bad field otherwise."""
        if not isinstance(d, dict):
            raise ConfigError(f"encoder layer is {type(d).__name__}, not an object")
        missing = [k for k in ("operation_type", "operation_parameter", "num_operation_heads",
                               "feed_forward_dimension", "num_feed_forward") if k not in d]
        if missing:
            raise ConfigError(f"encoder layer lacks {', '.join(missing)}")
        op, param = d["operation_type"], d["operation_parameter"]
        if op not in OPERATION_PARAMETERS:
            raise ConfigError(f"unknown operation_type {op!r} (known: {', '.join(OPERATION_PARAMETERS)})")
        if op == "DSC":
            if not _is_int(param) or param < 1 or param % 2 == 0:
                raise ConfigError(f"unknown operation_parameter {param!r} for DSC (an odd kernel size)")
        elif param not in OPERATION_PARAMETERS[op]:
            known = " or ".join(OPERATION_PARAMETERS[op])
            raise ConfigError(f"unknown operation_parameter {param!r} for {op} ({known})")
        for key in ("num_operation_heads", "feed_forward_dimension", "num_feed_forward"):
            if not _is_int(d[key]) or d[key] < 1:
                raise ConfigError(f"{key} must be a positive integer, got {d[key]!r}")
        if op == "DSC" and d["num_operation_heads"] % 2:
            # Half the heads attend and half convolve; odd counts do not split.
            raise ConfigError(f"DSC needs an even num_operation_heads, got {d['num_operation_heads']}")
        return cls(op, param, d["num_operation_heads"], d["feed_forward_dimension"], d["num_feed_forward"])


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class FlexiBERTConfig:
    """A whole model: hidden size, layers, and whether padding is masked out of attention."""

    hidden_size: int
    layers: tuple[LayerSpec, ...]
    apply_attention_mask: bool = True

    @classmethod
    def from_overrides(cls, overrides: Any) -> "FlexiBERTConfig":
        """From a benchmark entry's `hparams.model_hparam_overrides`; `ValueError` if malformed."""
        if not isinstance(overrides, dict):
            raise ConfigError("model_hparam_overrides is not an object")
        hidden = overrides.get("hidden_size")
        if not _is_int(hidden) or hidden < 1:
            raise ConfigError(f"hidden_size must be a positive integer, got {hidden!r}")
        layers = (overrides.get("nas_config") or {}).get("encoder_layers")
        if not isinstance(layers, list) or not layers:
            raise ConfigError("nas_config.encoder_layers must be a non-empty list")
        specs = tuple(LayerSpec.from_dict(layer) for layer in layers)
        for i, spec in enumerate(specs):
            if hidden % spec.num_heads:
                raise ConfigError(f"layer {i}: hidden_size {hidden} is not divisible by {spec.num_heads} heads")
        return cls(hidden, specs)

    def as_in_proxy_code(self) -> "FlexiBERTConfig":
        """The model the original proxy code actually built for this architecture.

        It passed only the layer list to ElectraConfig, so every model got the defaults:
        hidden size 256 and 1024-wide feed-forward layers. Its encoder also never received
        the attention mask, so padding tokens were attended to.
        """
        layers = tuple(replace(s, feed_forward_dim=PROXY_CODE_FEED_FORWARD_DIM) for s in self.layers)
        return FlexiBERTConfig(PROXY_CODE_HIDDEN_SIZE, layers, apply_attention_mask=False)


def _electra_config(hidden_size: int) -> ElectraConfig:
    """The transformers config for the ELECTRA pieces reused here (embeddings, output block)."""
    return ElectraConfig(
        vocab_size=VOCAB_SIZE,
        embedding_size=EMBEDDING_SIZE,
        hidden_size=hidden_size,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        hidden_dropout_prob=DROPOUT,
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )


class Embeddings(nn.Module):
    """ELECTRA's 128-wide embeddings, projected up to the hidden size: ids [B, T] -> [B, T, hidden]."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.electra = ElectraEmbeddings(_electra_config(hidden_size))
        # ELECTRA adds the projection only when the widths differ.
        self.project = nn.Linear(EMBEDDING_SIZE, hidden_size) if hidden_size != EMBEDDING_SIZE else nn.Identity()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.electra(input_ids=input_ids))


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, T, heads * d] -> [B, heads, T, d]."""
    b, t, _ = x.shape
    return x.view(b, t, num_heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, T, d] -> [B, T, heads * d]."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def _attend(q, k, v, num_heads: int, head_size: int, mask, softmax: nn.Module, dropout: nn.Module):
    """Scaled dot-product attention over [B, T, heads * head_size] inputs -> [B, heads, T, head_size].

    The probabilities pass through the `softmax` module so a hook can see them.
    """
    q, k, v = (_split_heads(x, num_heads) for x in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_size)
    if mask is not None:
        scores = scores + mask
    return dropout(softmax(scores)) @ v


class SelfAttention(nn.Module):
    """SA: multi-head self-attention, SDP or WMA; [B, T, hidden] -> merged heads [B, T, hidden]."""

    def __init__(self, hidden_size: int, num_heads: int, weighted: bool):
        super().__init__()
        self.num_heads, self.head_size = num_heads, hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        # WMA scores q W k^T: the extra matrix W multiplies the (already projected) query.
        self.weight = nn.Linear(hidden_size, hidden_size, bias=False) if weighted else None
        self.softmax = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query(x)
        if self.weight is not None:
            q = self.weight(q)
        ctx = _attend(q, self.key(x), self.value(x), self.num_heads, self.head_size, mask, self.softmax, self.dropout)
        return _merge_heads(ctx)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The unnormalized DCT-II as a matrix C: (C @ x)[k] = 2 * sum_i x[i] cos(pi k (2i + 1) / 2n).

    This is scipy's `dct(x, type=2, norm=None)`, the transform the original model used.
    """
    k = torch.arange(n, device=device)[:, None]
    i = torch.arange(n, device=device)[None, :]
    # Reduce the angle exactly in integers first: k (2i + 1) grows to ~2n^2, too big for float32.
    phase = (k * (2 * i + 1)) % (4 * n)
    return (2 * torch.cos(math.pi * phase.double() / (2 * n))).to(dtype)


class HeadwiseTransform(nn.Module):
    """The parameter-free mixing of LT: per head, a 2-D transform over (tokens, head_dim).

    [B, T, hidden] -> [B, T, hidden]; "DFT" keeps the real part of the 2-D FFT, "DCT" applies
    the unnormalized 2-D DCT-II.
    """

    def __init__(self, kind: str, num_heads: int):
        super().__init__()
        self.kind, self.num_heads = kind, num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = _split_heads(x, self.num_heads)
        if self.kind == "DFT":
            mixed = torch.fft.fft2(heads).real
        else:
            t, d = heads.shape[-2:]
            mixed = dct_matrix(t, x.dtype, x.device) @ heads @ dct_matrix(d, x.dtype, x.device).T
        return _merge_heads(mixed)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, num_heads={self.num_heads}"


class LinearTransform(nn.Module):
    """LT: an input projection, then the head-wise DFT or DCT; [B, T, hidden] -> [B, T, hidden]."""

    def __init__(self, hidden_size: int, num_heads: int, kind: str):
        super().__init__()
        self.input = nn.Linear(hidden_size, hidden_size)
        self.transform = HeadwiseTransform(kind, num_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # A Fourier/cosine transform mixes all positions; there is nothing to mask.
        return self.transform(self.input(x))


class SeparableConv1d(nn.Module):
    """Depthwise convolution over tokens then a pointwise one; [B, C_in, T] -> [B, C_out, T]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.depthwise = nn.Conv1d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The depthwise convolution written as a weighted sum over sliding windows: the same
        # result, but PyTorch's CPU backward of a grouped Conv1d is ~100x slower than this.
        taps = self.depthwise.kernel_size[0]
        windows = F.pad(x, (taps // 2, taps // 2)).unfold(2, taps, 1)  # [B, C, T, taps]
        depthwise = (windows * self.depthwise.weight).sum(-1)
        return self.pointwise(depthwise) + self.bias


class DynamicSpanConv(nn.Module):
    """DSC: ConvBERT's mixed attention; [B, T, hidden] -> [attention heads ; conv heads] [B, T, hidden].

    `num_heads` of the layer are split in two: num_heads/2 heads of ordinary self-attention
    and num_heads/2 heads of dynamic convolution, each head `hidden/num_heads` wide. For the
    convolution, every token predicts a softmax-normalized kernel of `kernel_size` taps from
    (its query) * (a separable convolution of the keys around it), then averages the
    `conv_out_layer` projections of its neighbours with that kernel.
    """

    def __init__(self, hidden_size: int, num_heads: int, kernel_size: int):
        super().__init__()
        self.num_heads = num_heads // 2
        self.head_size = hidden_size // num_heads
        self.kernel_size = kernel_size
        width = self.num_heads * self.head_size  # hidden/2: each branch fills half the output
        self.query = nn.Linear(hidden_size, width)
        self.key = nn.Linear(hidden_size, width)
        self.value = nn.Linear(hidden_size, width)
        self.key_conv_attn_layer = SeparableConv1d(hidden_size, width, kernel_size)
        self.conv_kernel_layer = nn.Linear(width, self.num_heads * kernel_size)
        self.conv_out_layer = nn.Linear(hidden_size, width)
        self.softmax = nn.Softmax(dim=-1)
        self.kernel_softmax = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        heads, size, taps = self.num_heads, self.head_size, self.kernel_size
        q, k, v = self.query(x), self.key(x), self.value(x)

        key_span = self.key_conv_attn_layer(x.transpose(1, 2)).transpose(1, 2)
        kernel = self.kernel_softmax(self.conv_kernel_layer(key_span * q).view(b, t, heads, taps))
        # Window j of token i holds token i - taps//2 + j (zeros beyond the ends).
        pad = taps // 2
        windows = F.pad(self.conv_out_layer(x), (0, 0, pad, pad)).unfold(1, taps, 1)
        conv = torch.einsum("btndk,btnk->btnd", windows.reshape(b, t, heads, size, taps), kernel)

        attn = _attend(q, k, v, heads, size, mask, self.softmax, self.dropout).transpose(1, 2)
        return torch.cat([attn, conv], dim=2).reshape(b, t, 2 * heads * size)


class FeedForward(nn.Module):
    """`num_feed_forward` GELU layers, a down-projection, residual and LayerNorm."""

    def __init__(self, hidden_size: int, width: int, depth: int):
        super().__init__()
        self.dense = nn.ModuleList(nn.Linear(hidden_size if i == 0 else width, width) for i in range(depth))
        # One activation module per layer, so each activation output has its own hook point.
        self.activations = nn.ModuleList(ACT2FN["gelu"] for _ in range(depth))
        self.output = nn.Linear(width, hidden_size)
        self.dropout = nn.Dropout(DROPOUT)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for dense, act in zip(self.dense, self.activations):
            h = act(dense(h))
        return self.LayerNorm(self.dropout(self.output(h)) + x)


class FlexiBERTLayer(nn.Module):
    """One encoder layer: token-mixing `operation`, its `operation_output` (None for LT), `feed_forward`."""

    def __init__(self, hidden_size: int, spec: LayerSpec):
        super().__init__()
        self.spec = spec
        if spec.operation_type == "SA":
            self.operation = SelfAttention(hidden_size, spec.num_heads, weighted=spec.operation_parameter == "WMA")
        elif spec.operation_type == "LT":
            self.operation = LinearTransform(hidden_size, spec.num_heads, str(spec.operation_parameter))
        else:
            self.operation = DynamicSpanConv(hidden_size, spec.num_heads, int(spec.operation_parameter))
        # The original LT layer has no output projection and no residual around the transform.
        self.operation_output = (
            None if spec.operation_type == "LT" else ElectraSelfOutput(_electra_config(hidden_size))
        )
        self.feed_forward = FeedForward(hidden_size, spec.feed_forward_dim, spec.num_feed_forward)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mixed = self.operation(x, mask)
        if self.operation_output is not None:
            mixed = self.operation_output(mixed, x)
        return self.feed_forward(mixed)


class FlexiBERTModel(nn.Module):
    """The encoder: `embeddings` then `layers`; returns the last hidden state [B, T, hidden]."""

    def __init__(self, config: FlexiBERTConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config.hidden_size)
        self.layers = nn.ModuleList(FlexiBERTLayer(config.hidden_size, spec) for spec in config.layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.shape[1] > MAX_POSITIONS:
            raise ConfigError(f"sequence length {input_ids.shape[1]} exceeds the model's {MAX_POSITIONS} positions")
        hidden = self.embeddings(input_ids)
        mask = None
        if attention_mask is not None and self.config.apply_attention_mask:
            # Additive mask over keys: 0 where attended, the most negative float at padding.
            blocked = attention_mask[:, None, None, :] == 0
            mask = torch.zeros(blocked.shape, dtype=hidden.dtype, device=hidden.device)
            mask = mask.masked_fill(blocked, torch.finfo(hidden.dtype).min)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden

    @torch.no_grad()
    def init_weights(self) -> None:
        """BERT/ELECTRA initialization: N(0, 0.02) weights, zero biases, unit LayerNorms."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                m.weight.normal_(0.0, INIT_STD)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, INIT_STD)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, SeparableConv1d):
                m.bias.zero_()


def build_flexibert(config: FlexiBERTConfig, seed: int, device: str | torch.device = "cpu") -> FlexiBERTModel:
    """A `FlexiBERTModel` with weights drawn from `seed`, in eval mode (dropout off).

    Weights are drawn on the CPU from a forked RNG, so the same seed gives the same weights
    on every device and the caller's global RNG state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FlexiBERTModel(config)
        model.init_weights()
    return model.to(device).eval()


@functools.lru_cache(maxsize=4096)
def count_parameters(config: FlexiBERTConfig) -> int:
    """Number of parameters of the model, counted on a meta-device build (no memory, no init)."""
    with torch.device("meta"):
        model = FlexiBERTModel(config)
    return sum(p.numel() for p in model.parameters())
