"""Training one GPT-NeoX architecture of `neox-mini` from scratch and measuring its held-out perplexity.

`train_architecture` is one executor task: it builds the model from its config (transformers'
`AutoConfig.for_model("gpt_neox", **config)`, so a reader that does the same gets the model
that was trained), trains it with lonas-mini's loop (`lpzero.benchmarks.training.train`: AdamW, warmup
and cosine schedule, random windows of the token stream, checkpointed every 100 steps and
resumed from its own checkpoint), then returns its perplexity on fixed windows of WikiText-2
*test*. It writes nothing but its training checkpoint: the driver writes the result.

transformers and tokenizers are imported inside the functions (seconds to import), as in
the rest of this package.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lpzero.executors import torch_threads

from ..training import TrainingPlan, train
from ..text import text_lines

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: the model family every architecture belongs to
MODEL_TYPE = "gpt_neox"
#: the keys of an architecture's config, in the order benchmark.yaml writes them
CONFIG_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "vocab_size")
#: held-out windows per forward pass while evaluating
EVAL_CHUNK = 32


@dataclass(frozen=True)
class TrainSettings:
    """How every architecture is trained and evaluated (the same for all: only the seed differs)."""

    steps: int
    lr: float
    batch_size: int
    seq_len: int
    #: held-out windows of `seq_len` tokens, the first ones of WikiText-2 test
    eval_windows: int
    #: lines of running text read from each split (None: all of them)
    max_lines: int | None = None

    @property
    def token_budget(self) -> int:
        """Training tokens each architecture sees."""
        return self.steps * self.batch_size * self.seq_len


@dataclass(frozen=True)
class TrainTask:
    """One training run: architecture `arch_id` with `config`, initialised and fed batches from `seed`.

    `key` names the run's files (`<key>.json`, `<key>.checkpoint.pt`).
    """

    key: str
    arch_id: str
    config: dict
    seed: int


def neox_config(config: dict):
    """transformers' GPT-NeoX config of an architecture (every other setting at its default)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(MODEL_TYPE, **config)


def neox_model(config: dict, seed: int, attention: str = "sdpa") -> "PreTrainedModel":
    """A freshly initialised GPT-NeoX causal LM of `config`, its weights drawn from `seed`.

    sdpa attention trains about as fast as eager on a CPU or faster, and computes the same function.
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(neox_config(config), attn_implementation=attention)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """All parameters, and those outside the input embedding and the output projection."""
    embedding = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    params = list(model.parameters())
    return {"params": sum(p.numel() for p in params),
            "non_embedding_params": sum(p.numel() for p in params if id(p) not in embedding)}


@functools.lru_cache(maxsize=1)
def load_tokenizer(folder: str, stamp: int):
    """The build's tokenizer, once per process (`stamp`, tokenizer.json's mtime, only keys the cache)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


@functools.lru_cache(maxsize=2)
def text_stream(tokenizer_folder: str, data_root: str, split: str, max_lines: int | None,
                stamp: int) -> torch.Tensor:
    """WikiText-2 `split`'s running text (headings dropped; the first `max_lines` lines), its lines joined by
    spaces, in the build's tokens.

    Encoded line by line (in parallel: several times faster than one long string) with the space
    that joins it to the line before: a byte-level BPE never merges across that space, so the
    ids are those of the joined text.
    """
    backend = load_tokenizer(tokenizer_folder, stamp).backend_tokenizer
    lines = text_lines(Path(data_root), split)[:max_lines]
    encoded = backend.encode_batch(lines[:1] + [" " + line for line in lines[1:]], add_special_tokens=False)
    return torch.tensor([i for e in encoded for i in e.ids], dtype=torch.long)


def _stamp(tokenizer_folder: Path) -> int:
    return (tokenizer_folder / "tokenizer.json").stat().st_mtime_ns


def tokenizer_of(folder: Path):
    """The tokenizer saved in `folder` (loaded once per process, again when it was rewritten)."""
    return load_tokenizer(str(folder), _stamp(folder))


def streams(tokenizer_folder: Path, data_root: Path, max_lines: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(training stream: WikiText-2 valid, held-out stream: WikiText-2 test) in the build's tokens."""
    stamp = _stamp(tokenizer_folder)
    return (text_stream(str(tokenizer_folder), str(data_root), "valid", max_lines, stamp),
            text_stream(str(tokenizer_folder), str(data_root), "test", max_lines, stamp))


def held_out_windows(stream: torch.Tensor, seq_len: int, n: int) -> torch.Tensor:
    """The first `n` consecutive non-overlapping windows [n, seq_len] of `stream` (fewer if it is short)."""
    n = min(n, (len(stream) - 1) // seq_len)
    return stream[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def perplexity(model: nn.Module, token_windows: torch.Tensor, device: str) -> float:
    """exp of the mean next-token NLL over every window (tokens 2..T of each predicted)."""
    model.eval()
    total, count = 0.0, 0
    for part in token_windows.split(EVAL_CHUNK):
        part = part.to(device)
        logits = model(input_ids=part).logits[:, :-1].float()
        # summed in float64: the mean of about 10^5 values must not depend on the chunking's rounding
        losses = nn.functional.cross_entropy(logits.transpose(1, 2), part[:, 1:], reduction="none")
        total += float(losses.double().sum())
        count += losses.numel()
    return math.exp(total / count)


def train_architecture(task: TrainTask, out: str, data_root: str, settings: TrainSettings,
                       device: str = "cpu") -> dict:
    """Train `task`'s architecture and measure it: an executor task; returns its result record.

    One torch thread wherever it runs, as lpzero's other tasks: float sums round differently
    with another count, so the results would depend on the executor and on --jobs.
    `out/runs/<key>.checkpoint.pt` is the run's checkpoint (resumed from, removed at the end).
    """
    folder = Path(out)
    train_stream, test_stream = streams(folder / "tokenizer", Path(data_root), settings.max_lines)
    started = time.perf_counter()
    with torch_threads():
        model = neox_model(task.config, task.seed).to(device)
        params = list(model.parameters())
        plan = TrainingPlan(f"training {task.key}", settings.steps, settings.lr, settings.seq_len,
                            settings.batch_size, task.seed, device)
        result = train(model, params, lambda batch, rng: model(input_ids=batch, labels=batch).loss, train_stream,
                       plan, folder / "runs" / f"{task.key}.checkpoint.pt")
        ppl = perplexity(model, held_out_windows(test_stream, settings.seq_len, settings.eval_windows), device)
    return {"id": task.arch_id, "seed": task.seed, "config": task.config, "test_ppl": ppl,
            "final_train_loss": result.loss, **parameter_counts(model),
            "seconds": round(result.earlier_seconds + time.perf_counter() - started, 2)}


__all__ = ["CONFIG_KEYS", "MODEL_TYPE", "TrainSettings", "TrainTask", "held_out_windows", "neox_config",
           "neox_model", "parameter_counts", "perplexity", "streams", "tokenizer_of", "train_architecture"]
