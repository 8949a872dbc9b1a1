"""LoNAS's text: WikiText-2 (or a user's text) in a model's token ids, held-out windows, perplexity.

A built LoNAS model (`lpzero build lonas-mini`) reads GPT-2 tokens (`lpzero.benchmarks.text`)
through its `Vocabulary`, which keeps the most frequent of them and maps the rest to one
unknown token. A user's checkpoint reads its own tokenizer (`checkpoint_tokenizer`,
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
from ..text import gpt2_stream, gpt2_tokenizer, text_lines
from .slicing import run_subnetwork
from .space import LoNASSpace

#: the vocabulary file of a model directory (absent: the model reads its own tokenizer's ids)
VOCAB_FILE = "lpzero_vocab.json"
#: the files a `save_pretrained` tokenizer is read from (fast, or sentencepiece where installed)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


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


@functools.lru_cache(maxsize=4)
def checkpoint_tokenizer(folder: Path):
    """The tokenizer saved in a checkpoint directory (`AutoTokenizer`, local files only).

    BenchmarkError when the folder has none or it cannot be read (a `tokenizer.model`
    without the sentencepiece package, a malformed file).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise BenchmarkError(f"{folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)}) and no {VOCAB_FILE}: "
                             "save the model's tokenizer there (tokenizer.save_pretrained)")
    try:
        if (folder / "tokenizer.json").is_file() and _generic_class(folder):
            # a tokenizer saved from a bare `tokenizers` object: AutoTokenizer would pick the class of the
            # model's type instead (transformers 5), which rebuilds it and may tokenize nothing
            return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # transformers, tokenizers and sentencepiece raise their own types
        raise BenchmarkError(f"{folder}: cannot read its tokenizer: {type(e).__name__}: {e}") from None


def _generic_class(folder: Path) -> bool:
    """Whether tokenizer_config.json names no model-specific tokenizer class (or is absent)."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return False
    data = read_json(path)
    return isinstance(data, dict) and data.get("tokenizer_class") in ("TokenizersBackend", "PreTrainedTokenizerFast")


def source_text(data_root: Path | None, text: Path | None, split: str = "valid") -> str:
    """The text mini-batches come from: the file `text`, else WikiText-2 `split`'s running text."""
    if text is not None:
        if not text.is_file():
            raise BenchmarkError(f"{text}: file not found")
        try:
            return text.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BenchmarkError(f"{text}: cannot read it as UTF-8 text: {e}") from None
    if data_root is None:
        raise BenchmarkError("no data root for the text (WikiText-2), and no text file given")
    return " ".join(text_lines(data_root, split))  # as `gpt2_stream` joins it


@functools.lru_cache(maxsize=8)
def tokenized(data_root: Path | None, text: Path | None, tokenizer_folder: Path | None,
              vocabulary: Vocabulary | None = None, split: str = "valid") -> torch.Tensor:
    """`source_text` as one stream of token ids: the tokenizer of `tokenizer_folder`, or (None)
    GPT-2's mapped into `vocabulary`."""
    if tokenizer_folder is None:
        if text is None:
            return token_stream(data_root, split, vocabulary)
        gpt2 = gpt2_tokenizer(data_root)
        ids = torch.tensor(gpt2(source_text(None, text), add_special_tokens=False)["input_ids"], dtype=torch.long)
        return ids if vocabulary is None else vocabulary.lookup(len(gpt2))[ids]
    tokenizer = checkpoint_tokenizer(tokenizer_folder)
    ids = tokenizer(source_text(data_root, text, split), add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


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
