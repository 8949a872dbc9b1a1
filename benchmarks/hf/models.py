"""Transformers models of one family read through a tokenizer on a text: what every `hf` benchmark shares.

`HFModels` is a `Benchmark` without architectures of its own: the mini-batches (random windows of
the text, `text` or WikiText-2 valid, in a local tokenizer), the backward objective (the family's LM
loss) and where the six inputs live (the family's `SiteMap`). A table of architectures
(`benchmark.HFBenchmark`), a search space's candidates (`space.HFSpace`) and one user's model
(`lpzero score`, `one.OneModel`) are `HFModels` with their own architectures. The tokenizer and the
text are checked when opened: the tokenizer's ids must fit the smallest vocabulary, and the text must
be mostly known tokens.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import Architecture, Batch, Benchmark, BenchmarkError, ZCSites, file_fingerprint
from ..checkpoints import (DTYPES, check_text_stream, check_tokenizer_ids, checkpoint_tokenizer, folder_text_ids,
                           text_ids, tokenizer_unknown)
from ..text import stream_windows
from ..sites import SiteMap, hf_loss, hf_sites


def dtype_of(dtype: str | None) -> torch.dtype:
    """`--dtype`'s torch dtype for models built from a config (None or "auto": float32)."""
    if dtype not in (None, *DTYPES):
        raise BenchmarkError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    return torch.float32 if dtype in (None, "auto") else getattr(torch, dtype)


class HFModels(Benchmark):
    """Models of the family `sites` on the text `text` (None: WikiText-2 valid under `data_root`) in the
    tokenizer `tokenizer` (a local directory, a loaded transformers tokenizer, or None where the batches
    come from elsewhere); no architectures (subclasses have them)."""

    paper_batch_size = 16
    paper_seq_len = 128
    default_batch_size = 4
    default_seq_len = 128
    raw_metric = "metric"

    def __init__(self, name: str, sites: SiteMap, tokenizer: str | os.PathLike | Any,
                 data_root: str | os.PathLike | None, text: str | os.PathLike | None = None,
                 vocab_size: int | None = None, max_positions: int | None = None) -> None:
        self.name, self.sites = name, sites
        loaded = not isinstance(tokenizer, (str, os.PathLike))
        self.tokenizer_path = None if loaded else Path(tokenizer)
        self.data_root = Path(data_root) if data_root is not None else None
        self.text_path = Path(text) if text is not None else None
        self.max_positions = max_positions
        self.default_seq_len = min(type(self).default_seq_len, max_positions or type(self).default_seq_len)
        self.paper_seq_len = min(type(self).paper_seq_len, max_positions or type(self).paper_seq_len)
        self.tokenizer = tokenizer if loaded else checkpoint_tokenizer(self.tokenizer_path)
        self._stream: torch.Tensor | None = None
        if self.tokenizer is None:  # batches come from elsewhere (`one.OneModel` given a batch)
            return
        if vocab_size is not None:
            check_tokenizer_ids(self.tokenizer, self.tokenizer_path or type(self.tokenizer).__name__, vocab_size)
        if self.data_root is not None or self.text_path is not None:
            unknown = tokenizer_unknown(self.tokenizer) if self.text_path is not None else None
            check_text_stream(self.stream(), self._text_name(), unknown)

    def _text_name(self) -> str:
        return str(self.text_path or "wikitext-2/valid.txt")

    def stream(self) -> torch.Tensor:
        """The mini-batches' text (`text`, else WikiText-2 valid) in the tokenizer's ids."""
        if self.tokenizer_path is not None:
            return folder_text_ids(self.tokenizer_path, self.data_root, self.text_path)
        if self._stream is None:  # a tokenizer given loaded: tokenized once per instance
            self._stream = text_ids(self.tokenizer, self.data_root, self.text_path)
        return self._stream

    def max_seq_len(self) -> int | None:
        return self.max_positions

    def check_batch(self, batch_size: int, seq_len: int) -> None:
        if len(self.stream()) <= seq_len:
            raise BenchmarkError(f"{self._text_name()}: {len(self.stream())} tokens in the tokenizer "
                                 f"{self.tokenizer_path or ''}, fewer than one window of {seq_len} + 1 (--seq-len "
                                 f"{seq_len})")

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """Random windows of the text in the tokenizer (default 4 x 128)."""
        return stream_windows(self.stream(), seed, batch_size or self.default_batch_size,
                              seq_len or self.default_seq_len, self._text_name())

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The family's LM loss: causal for decoders, masked for encoders (`sites.hf_loss`)."""
        device = next(model.parameters()).device
        return hf_loss(model, batch.to(device), self.sites)

    def zc_sites(self, model: nn.Module) -> ZCSites:
        return hf_sites(model, self.sites)

    def ids(self) -> list[str]:
        return []

    def architecture(self, arch_id: str) -> Architecture:
        raise BenchmarkError(f"{self.name}: no architecture {arch_id!r}")

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        raise BenchmarkError(f"{self.name}: no architecture {arch_id!r}")

    def count_params(self, arch_id: str) -> dict[str, int]:
        raise BenchmarkError(f"{self.name}: no architecture {arch_id!r}")

    def text_files(self) -> list[Path]:
        """The tokenizer's files and the text: what scores read besides the models."""
        files = [] if self.tokenizer_path is None else sorted(p for p in self.tokenizer_path.iterdir() if p.is_file())
        return files + ([self.text_path] if self.text_path is not None else [])

    def data_files(self) -> list[Path]:
        return self.text_files()

    def score_settings(self) -> dict[str, str | None]:
        """What a score depends on besides the batch and the architecture: the tokenizer and the text."""
        text = None if self.text_path is None else f"{self.text_path} ({file_fingerprint(self.text_path)[:12]})"
        return {"tokenizer": str(self.tokenizer_path or type(self.tokenizer).__name__), "text": text}


__all__ = ["HFModels", "dtype_of"]
