"""Mini-batches of real text (WikiText-2) tokenized with the shipped vocabularies.

Decoders get contiguous windows of the GPT-2 token stream (as language-model training
does; `lpzero.benchmarks.lonas.text` maps it into a small model's vocabulary); encoders
get padded lines. Both are drawn with an explicit seeded generator,
so the same seed gives the same batch.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .base import Batch, BenchmarkError


def _require(path: Path) -> Path:
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    return path


@functools.lru_cache(maxsize=4)
def gpt2_tokenizer(data_root: Path):
    """GPT-2 byte-level BPE from `tokenizers/gpt2/{vocab.json,merges.txt}`."""
    from transformers import GPT2TokenizerFast

    folder = data_root / "tokenizers" / "gpt2"
    _require(folder / "vocab.json"), _require(folder / "merges.txt")
    try:
        return GPT2TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # the tokenizers library raises its own types for malformed files
        raise BenchmarkError(f"{folder}: not a GPT-2 tokenizer (vocab.json, merges.txt): {e}") from None


@functools.lru_cache(maxsize=4)
def bert_tokenizer(data_root: Path):
    """BERT uncased WordPiece from `tokenizers/bert/vocab.txt` (the ELECTRA vocabulary)."""
    from transformers import BertTokenizerFast

    folder = data_root / "tokenizers" / "bert"
    _require(folder / "vocab.txt")
    try:
        return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)
    except Exception as e:  # the tokenizers library raises its own types for malformed files
        raise BenchmarkError(f"{folder}: not a BERT WordPiece vocabulary (vocab.txt): {e}") from None


def text_lines(data_root: Path, split: str) -> list[str]:
    """The lines of running text of WikiText-2 `split` (headings and blank lines dropped)."""
    path = _require(data_root / "text" / "wikitext-2" / f"{split}.txt")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    # Section headings (" = Title = ") and blank lines are not running text.
    text = [ln for ln in lines if ln and not ln.startswith("=")]
    if not text:
        raise BenchmarkError(f"{path}: no lines of running text")
    return text


@functools.lru_cache(maxsize=4)
def gpt2_stream(data_root: Path, split: str) -> torch.Tensor:
    """WikiText-2 `split`'s running text as one stream of GPT-2 token ids (shared by the decoders)."""
    text = " ".join(text_lines(data_root, split))
    ids = gpt2_tokenizer(data_root)(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def stream_windows(stream: torch.Tensor, seed: int, batch_size: int, seq_len: int, where: str) -> Batch:
    """`batch_size` windows of `seq_len` tokens of `stream` at random starts drawn from `seed` (the same seed,
    the same batch); BenchmarkError naming the text `where` when it holds no such window."""
    if len(stream) <= seq_len:
        raise BenchmarkError(f"{where}: {len(stream)} tokens, fewer than seq_len={seq_len}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=gen)
    return Batch(torch.stack([stream[s : s + seq_len] for s in starts.tolist()]))


def decoder_batch(data_root: Path, seed: int, batch_size: int, seq_len: int, split: str = "valid") -> Batch:
    """`batch_size` random windows of `seq_len` GPT-2 tokens from WikiText-2."""
    return stream_windows(gpt2_stream(data_root, split), seed, batch_size, seq_len, f"wikitext-2/{split}.txt")


def encoder_batch(data_root: Path, seed: int, batch_size: int, seq_len: int, split: str = "valid") -> Batch:
    """`batch_size` random WikiText-2 paragraphs, WordPiece-tokenized, padded to `seq_len`."""
    lines = text_lines(data_root, split)
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(lines), generator=gen)[:batch_size].tolist()
    enc = bert_tokenizer(data_root)(
        [lines[i] for i in picks],
        padding="max_length",
        truncation=True,
        max_length=seq_len,
        return_tensors="pt",
    )
    return Batch(enc["input_ids"], enc["attention_mask"])
