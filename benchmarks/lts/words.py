"""Word-level mini-batches of WikiText-2 for the Transformer-XL models (NVIDIA's word vocabulary convention).

The Transformer-XL runs of LiteTransformerSearch were trained on WikiText-103 with NVIDIA's
word vocabulary: each line split on whitespace, an `<eos>` closing every line (blank lines and
headings included), `<eos>` as id 0 and the other words by decreasing frequency, `<unk>` a
word like any other (the corpus already replaced rare words by it). Only WikiText-2 ships with
the data, so this module builds the same kind of vocabulary from it:

- the counts are those of WikiText-2's valid and test files together, so both splits share one
  vocabulary: about 18,300 symbols, far fewer than WikiText-103's 267,736 (`n_token`);
- ids above that are never used, and since every id falls below the adaptive softmax's first
  cutoff (19,997), every target lies in the head cluster: the tail clusters are reached only
  through the head's cluster entries;
- the frequency ranks differ from WikiText-103's, so id k is the k-th most frequent word of
  WikiText-2, not WikiText-103's word k: the models are random-weight ones, so only the
  distribution of ids matters, and it follows the same Zipf-like ranking.

When `n_token` is smaller than the vocabulary (tiny test models), the `n_token` most frequent
symbols keep their ids and every other word becomes `<unk>` (the last id if `<unk>` itself
does not fit), as NVIDIA's vocabulary does with a size limit. Windows are drawn with an
explicit seeded generator, so the same seed gives the same batch.
"""
from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import torch

from ..base import Batch, BenchmarkError
from ..text import stream_windows

EOS = "<eos>"
UNK = "<unk>"
#: the WikiText-2 files whose words make the vocabulary
VOCABULARY_SPLITS = ("valid", "test")


def _split_lines(data_root: Path, split: str) -> list[str]:
    path = Path(data_root) / "text" / "wikitext-2" / f"{split}.txt"
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    return path.read_text(encoding="utf-8").splitlines()


@functools.lru_cache(maxsize=4)
def word_vocabulary(data_root: Path) -> dict[str, int]:
    """Symbol -> id: `<eos>` 0, then WikiText-2's (valid + test) words by decreasing count.

    Ties keep the order in which the words first occur (valid before test).
    """
    counts: Counter[str] = Counter()
    for split in VOCABULARY_SPLITS:
        for line in _split_lines(data_root, split):
            counts.update(line.split())
    symbols = [EOS] + [word for word, _ in counts.most_common() if word != EOS]
    return {word: i for i, word in enumerate(symbols)}


@functools.lru_cache(maxsize=4)
def word_stream(data_root: Path, split: str) -> torch.Tensor:
    """WikiText-2 `split` as one stream of word ids, an `<eos>` after every line (as in training)."""
    vocab = word_vocabulary(data_root)
    ids: list[int] = []
    for line in _split_lines(data_root, split):
        # Every word of the split is in the vocabulary (built from it); only a split outside
        # VOCABULARY_SPLITS could have unknown ones.
        ids.extend(vocab.get(word, vocab.get(UNK, 0)) for word in line.split())
        ids.append(vocab[EOS])
    return torch.tensor(ids, dtype=torch.long)


def fit_vocabulary(ids: torch.Tensor, n_token: int, unk_id: int | None) -> torch.Tensor:
    """`ids` with every id >= n_token replaced by `<unk>`'s id (n_token - 1 if it is not below n_token)."""
    if unk_id is None or unk_id >= n_token:
        unk_id = n_token - 1
    return torch.where(ids < n_token, ids, torch.full_like(ids, unk_id))


def word_batch(data_root: str | Path, seed: int, batch_size: int, seq_len: int, n_token: int,
               split: str = "valid") -> Batch:
    """`batch_size` random windows of `seq_len` word ids from WikiText-2 `split`, ids below `n_token`."""
    if n_token < 2:
        raise BenchmarkError(f"n_token must be at least 2 (<eos> and a word), got {n_token}")
    root = Path(data_root)
    windows = stream_windows(word_stream(root, split), seed, batch_size, seq_len, f"wikitext-2/{split}.txt").input_ids
    return Batch(fit_vocabulary(windows, n_token, word_vocabulary(root).get(UNK)))
