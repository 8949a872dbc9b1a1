"""Local transformers checkpoints, whatever their family: the dtype to load in, a folder's tokenizer,
a text in its tokens and the checks that the two fit a model (`lonas:DIR`, `hf:`, `lpzero score`).

Nothing is downloaded: a tokenizer is read from a local folder (`checkpoint_tokenizer`), the text is a
user's file or WikiText-2 under the data root (`source_text`).
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path
from typing import Iterator

import torch

from .base import BenchmarkError, read_json
from .text import text_lines

#: a checkpoint's dtypes ("auto": the one its config.json stores)
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: the files a `save_pretrained` tokenizer is read from (fast, or sentencepiece where installed)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
#: the largest share of a user's text that may be its tokenizer's unknown token: beyond it the mini-batches are
#: mostly that one token, and every proxy would score it rather than the text
MAX_UNKNOWN = 0.5
#: the shortest window a text must hold (and its next token) whatever --seq-len says: shorter, it cannot give a
#: mini-batch worth scoring. The window a command does use is checked when its batch is set (`check_batch`).
MIN_WINDOW = 32


def stored_dtype(config: dict, dtype: str = "auto", where: str = "config.json") -> torch.dtype:
    """The dtype to load in: `dtype`, or for "auto" the config's `dtype`/`torch_dtype` (float32 if absent)."""
    if dtype not in DTYPES:
        raise BenchmarkError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
        if dtype not in DTYPES[1:]:
            raise BenchmarkError(f"{where}: stored dtype {dtype!r} is not one of {', '.join(DTYPES[1:])} "
                                 "(choose one with dtype=)")
    return getattr(torch, dtype)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence what a user cannot act on while models load or save: transformers' progress
    bars and a deprecation warning peft triggers inside transformers."""
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


@functools.lru_cache(maxsize=4)
def checkpoint_tokenizer(folder: Path, also: str = ""):
    """The tokenizer saved in a checkpoint directory (`AutoTokenizer`, local files only).

    BenchmarkError when the folder has none (`also`: what else the message says was missing) or it
    cannot be read (a `tokenizer.model` without the sentencepiece package, a malformed file).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise BenchmarkError(f"{folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)}){also}: save the model's "
                             "tokenizer there (tokenizer.save_pretrained)")
    try:
        if (folder / "tokenizer.json").is_file() and _generic_class(folder):
            # a tokenizer saved from a bare `tokenizers` object: AutoTokenizer would pick the class of the
            # model's type instead (transformers 5), which rebuilds it and may tokenize nothing
            return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # transformers, tokenizers and sentencepiece raise their own types
        raise BenchmarkError(f"{folder}: cannot read its tokenizer: {type(e).__name__}: {e}") from None


def check_tokenizer_ids(tokenizer, folder: Path, vocab_size: int) -> None:
    """BenchmarkError naming `folder` when its tokenizer has more tokens than the model has rows, or an id
    beyond them (ids need not be contiguous: a tokenizer may fit by its count and not by its ids)."""
    size = len(tokenizer)
    if size > vocab_size:
        raise BenchmarkError(f"{folder}: its tokenizer has {size} tokens, more than the model's vocabulary of "
                             f"{vocab_size}")
    vocab = tokenizer.get_vocab()
    token = max(vocab, key=vocab.__getitem__, default=None)
    if token is not None and vocab[token] >= vocab_size:
        raise BenchmarkError(f"{folder}: its tokenizer's largest id is {vocab[token]} ({token!r}), beyond the "
                             f"model's vocabulary (config.json vocab_size {vocab_size}: ids 0 to {vocab_size - 1})")


def tokenizer_unknown(tokenizer) -> tuple[int, str] | None:
    """(id, name) of the token a text's unknown words become in `tokenizer`; None where it has none (a
    byte-level tokenizer knows every text)."""
    return None if tokenizer.unk_token_id is None else (int(tokenizer.unk_token_id), str(tokenizer.unk_token))


def check_text_stream(stream: torch.Tensor, where: Path | str, unknown: tuple[int, str] | None) -> None:
    """BenchmarkError naming the text `where` when its tokens (`stream`) are more than `MAX_UNKNOWN`
    the unknown token (`unknown`: its id and name; None: a tokenizer without one) or hold no window
    of `MIN_WINDOW` tokens and the next."""
    if unknown is not None and len(stream):
        share = float((stream == unknown[0]).double().mean())
        if share > MAX_UNKNOWN:
            raise BenchmarkError(f"{where}: {share:.1%} of its {len(stream)} tokens are the unknown token "
                                 f"{unknown[1]!r} (id {unknown[0]}), more than the {MAX_UNKNOWN:.0%} allowed: the "
                                 "mini-batches would be that one token, not the text")
    if len(stream) <= MIN_WINDOW:
        raise BenchmarkError(f"{where}: {len(stream)} tokens, fewer than one window of {MIN_WINDOW} + 1, the "
                             "shortest lpzero scores whatever --seq-len")


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


def text_ids(tokenizer, data_root: Path | None, text: Path | None, split: str = "valid") -> torch.Tensor:
    """`source_text` as one stream of `tokenizer`'s ids (no special tokens)."""
    ids = tokenizer(source_text(data_root, text, split), add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


@functools.lru_cache(maxsize=8)
def folder_text_ids(tokenizer_folder: Path, data_root: Path | None, text: Path | None,
                    split: str = "valid") -> torch.Tensor:
    """`text_ids` with the tokenizer of a checkpoint folder, read once per folder and text."""
    return text_ids(checkpoint_tokenizer(tokenizer_folder), data_root, text, split)
