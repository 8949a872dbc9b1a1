"""A tiny, self-contained benchmark for tests: six small GPT-2 decoders.

`TinyGPT2Benchmark` implements the full `benchmarks.base.Benchmark` interface
with no data files: models are transformers' `GPT2LMHeadModel` with tiny configs,
batches are random token ids, and the ground truth is a made-up list of numbers.
It is meant for tests of anything above the benchmark layer (proxy inputs,
baselines, fitness, evolution), so it is small enough that a full proxy
evaluation of all six architectures takes about a second on a CPU.

Choices that matter to tests:

- All dropout probabilities are 0, so a forward pass is deterministic and
  module inputs equal module outputs for the dropout modules used as sites.
- Attention is transformers' eager attention with one change: the probabilities
  pass through the module `attn.attn_dropout` (the softmax site). transformers
  5.x's own eager path applies dropout functionally, leaving no module to hook,
  and its `reorder_and_upcast_attn` path (which does use the module) cannot run
  in float64, which synflow needs. The variant is registered with transformers'
  `AttentionInterface` by `benchmarks.attention` (the same one the GPT-2 benchmark uses).
- `n_inner` is at least 128 for every architecture, so proxies with a size
  threshold on weight rows (head importance: >= 128) see at least one layer.
- The architectures have distinct parameter counts, and ids sort in the order
  of their index (`tiny0` .. `tiny5`).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from lpzero.benchmarks.attention import gpt2_block_sites, register_hookable_attention
from lpzero.benchmarks.base import Architecture, Batch, Benchmark, BenchmarkError, ZCSites

VOCAB_SIZE = 99
N_POSITIONS = 64

#: (n_layer, n_embd, n_inner, n_head) of each architecture
ARCH_SHAPES: list[tuple[int, int, int, int]] = [
    (1, 16, 128, 2),
    (2, 16, 128, 4),
    (1, 32, 192, 2),
    (2, 32, 128, 4),
    (3, 32, 192, 4),
    (3, 16, 192, 2),
]

#: made-up validation perplexities (lower is better), one per architecture
FAKE_PPL: list[float] = [61.0, 48.5, 52.25, 40.0, 33.75, 45.5]

class TinyGPT2Benchmark(Benchmark):
    """Six tiny GPT-2 language models with made-up perplexities.

    `ground_truth` is minus the perplexity (higher is better); `raw` is the
    perplexity itself.
    """

    name = "tiny-gpt2"
    raw_metric = "valid_ppl"
    default_batch_size = 4
    default_seq_len = 16
    paper_seq_len = N_POSITIONS

    def __init__(self, data_root: object = None) -> None:
        """No data files: `data_root` is accepted (as `get_benchmark` passes it) and unused."""

    def ids(self) -> list[str]:
        return [f"tiny{i}" for i in range(len(ARCH_SHAPES))]

    def max_seq_len(self) -> int:
        return N_POSITIONS

    def architecture(self, arch_id: str) -> Architecture:
        self.check_id(arch_id)
        index = self.ids().index(arch_id)
        n_layer, n_embd, n_inner, n_head = ARCH_SHAPES[index]
        config = {"n_layer": n_layer, "n_embd": n_embd, "n_inner": n_inner, "n_head": n_head}
        ppl = FAKE_PPL[index]
        return Architecture(id=arch_id, config=config, ground_truth=-ppl, raw=ppl)

    def gpt2_config(self, arch_id: str) -> GPT2Config:
        """The transformers config of one architecture."""
        shape = self.architecture(arch_id).config
        return GPT2Config(
            vocab_size=VOCAB_SIZE,
            n_positions=N_POSITIONS,
            n_embd=shape["n_embd"],
            n_layer=shape["n_layer"],
            n_head=shape["n_head"],
            n_inner=shape["n_inner"],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            attn_implementation=register_hookable_attention(),
            # GPT-2's default special ids (50256) lie outside this tiny vocabulary.
            bos_token_id=VOCAB_SIZE - 1,
            eos_token_id=VOCAB_SIZE - 1,
        )

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        config = self.gpt2_config(arch_id)
        # Fork the global RNG so building a model neither depends on nor disturbs
        # whatever random state the caller has.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT2LMHeadModel(config)
        # Name the loss explicitly; transformers warns when it has to guess.
        model.loss_type = "ForCausalLM"
        return model.to(device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        """Counts in the Archai layout: nonembedding = attention + FFN + all LayerNorms."""
        model = self.build_model(arch_id, seed=0)
        total = sum(p.numel() for p in model.parameters())
        tr = model.transformer
        embedding = tr.wte.weight.numel() + tr.wpe.weight.numel()
        return {"total": total, "embedding": embedding, "nonembedding": total - embedding}

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        batch_size = batch_size or self.default_batch_size
        seq_len = seq_len or self.default_seq_len
        gen = torch.Generator().manual_seed(seed)
        return Batch(torch.randint(0, VOCAB_SIZE, (batch_size, seq_len), generator=gen))

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy (the model shifts the labels itself)."""
        return model(input_ids=batch.input_ids, labels=batch.input_ids).loss

    def zc_sites(self, model: nn.Module) -> ZCSites:
        tr = model.transformer
        activations, heads, softmax, weights = gpt2_block_sites(tr.h)
        # `drop` sees (token + position embedding) and, with p = 0, passes it on unchanged.
        return ZCSites(
            embedding=tr.drop,
            activations=activations,
            heads=heads,
            softmax=softmax,
            weights=weights,
            position_embedding=tr.wpe.weight,
        )


class CrashOnceBenchmark(TinyGPT2Benchmark):
    """Kills the process that builds `tiny2` the first time (a file in `data_root` remembers): a dying worker."""

    def __init__(self, data_root: object = None) -> None:
        self.marker = Path(str(data_root)) / "crashed"

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        if arch_id == "tiny2" and not self.marker.exists():
            self.marker.write_text("")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().build_model(arch_id, seed, device)


class FailingBenchmark(TinyGPT2Benchmark):
    """`tiny3` cannot be built: a task that fails for a reason of its own."""

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        if arch_id == "tiny3":
            raise BenchmarkError("tiny3: this architecture cannot be built")
        return super().build_model(arch_id, seed, device)
