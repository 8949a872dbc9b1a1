"""LoNAS's text: WikiText-2 (or a user's text) in a model's token ids, held-out windows, perplexity.

A built LoNAS model (`lpzero build lonas-mini`) reads GPT-2 tokens (`lpzero.benchmarks.text`)
through its `Vocabulary`, which keeps the most frequent of them and maps the rest to one
unknown token. A user's checkpoint reads its own tokenizer (`lpzero.benchmarks.checkpoints`,
`tokenized`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..base import BenchmarkError, read_json
from ..checkpoints import checkpoint_tokenizer, folder_text_ids, text_ids, tokenizer_unknown
from ..text import gpt2_stream, gpt2_tokenizer
from .slicing import run_subnetwork
from .space import LoNASSpace

#: the vocabulary file of a model directory (absent: the model reads its own tokenizer's ids)
VOCAB_FILE = "lpzero_vocab.json"


@dataclass(frozen=True)
class Vocabulary:
    """A model's vocabulary as GPT-2 token ids: `kept[i]` is new id i; every other GPT-2 id maps to `unk`."""

    kept: tuple[int, ...]

    @property
    def unk(self) -> int:
        """The id every GPT-2 token outside `kept` maps to."""
        return len(self.kept)

    @property
    def size(self) -> int:
        """Number of ids, the unknown token's included."""
        return len(self.kept) + 1

    def lookup(self, source_size: int) -> torch.Tensor:
        """GPT-2 id -> id in this vocabulary, as a table for `source_size` GPT-2 ids."""
        table = torch.full((source_size,), self.unk, dtype=torch.long)
        table[torch.tensor(self.kept, dtype=torch.long)] = torch.arange(len(self.kept))
        return table

    def to_json(self) -> dict:
        """The vocabulary as `lpzero_vocab.json` stores it (`read` reads it back)."""
        return {"source": "gpt2", "unk": self.unk, "kept": list(self.kept)}

    @classmethod
    def read(cls, path: Path) -> "Vocabulary":
        """The vocabulary in `path` (a `to_json` file); BenchmarkError if malformed."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("source") != "gpt2" or not isinstance(data.get("kept"), list):
            raise BenchmarkError(f"{path}: expected {{'source': 'gpt2', 'kept': [GPT-2 token ids]}}")
        return cls(tuple(int(i) for i in data["kept"]))


@functools.lru_cache(maxsize=8)
def token_stream(data_root: Path, split: str, vocabulary: Vocabulary | None) -> torch.Tensor:
    """WikiText-2 `split` as one stream of token ids (GPT-2's, mapped into `vocabulary` if given)."""
    ids = gpt2_stream(data_root, split)
    if vocabulary is None:
        return ids
    return vocabulary.lookup(len(gpt2_tokenizer(data_root)))[ids]


def unknown_token(tokenizer, vocabulary: Vocabulary | None) -> tuple[int, str] | None:
    """(id, name) of the token a text's unknown words become: the tokenizer's, or (no tokenizer) that of a
    built directory's vocabulary; None where there is none (a byte-level tokenizer knows every text)."""
    if tokenizer is not None:
        return tokenizer_unknown(tokenizer)
    return None if vocabulary is None else (vocabulary.unk, f"{VOCAB_FILE}'s unknown token")


@functools.lru_cache(maxsize=8)
def tokenized(data_root: Path | None, text: Path | None, tokenizer_folder: Path | None,
              vocabulary: Vocabulary | None = None, split: str = "valid") -> torch.Tensor:
    """`source_text` as one stream of token ids: the tokenizer of `tokenizer_folder`, or (None)
    GPT-2's mapped into `vocabulary`."""
    if tokenizer_folder is None:
        if text is None:
            return token_stream(data_root, split, vocabulary)
        gpt2 = gpt2_tokenizer(data_root)
        ids = text_ids(gpt2, None, text)
        return ids if vocabulary is None else vocabulary.lookup(len(gpt2))[ids]
    return folder_text_ids(tokenizer_folder, data_root, text, split)


def lonas_tokenizer(folder: Path):
    """The tokenizer of a LoNAS checkpoint folder (one without it reads GPT-2's ids through `VOCAB_FILE`)."""
    return checkpoint_tokenizer(folder, also=f" and no {VOCAB_FILE}")


def windows(stream: torch.Tensor, seq_len: int, limit: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows [n, seq_len] of a token stream (at most `limit`)."""
    n = (len(stream) - 1) // seq_len
    if limit is not None:
        n = min(n, limit)
    if n < 1:
        raise BenchmarkError(f"{len(stream)} tokens: fewer than one window of {seq_len}")
    return stream[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def window_nll(model: nn.Module, space: LoNASSpace, choice: Mapping[str, int], token_windows: torch.Tensor,
               device: str | torch.device = "cpu", chunk: int = 32) -> list[float]:
    """Summed next-token NLL of each window [n, T] under the sub-network `choice` (tokens 2..T predicted)."""
    out = []
    for part in token_windows.split(chunk):
        part = part.to(device)
        logits = run_subnetwork(model, space, choice, input_ids=part).logits[:, :-1].float()
        losses = nn.functional.cross_entropy(logits.transpose(1, 2), part[:, 1:], reduction="none")
        out += losses.sum(dim=1).tolist()
    return out


def perplexity(nll: list[float], seq_len: int) -> float:
    """Perplexity from the summed NLLs of windows of `seq_len` tokens (seq_len - 1 predictions each)."""
    return math.exp(sum(nll) / (len(nll) * (seq_len - 1)))
