"""Tiny tokenizers, tables and spaces for the `hf` tests, written in the test's own folder (no downloads)."""
from __future__ import annotations

from pathlib import Path

import yaml

from lpzero.benchmarks import default_data_root

#: the vocabulary of the tiny models (transformers' tests use 99)
VOCAB = 99


def tiny_tokenizer(folder: Path, vocab: int = 90) -> Path:
    """A BPE tokenizer of `vocab` tokens trained on a slice of WikiText-2 (a small alphabet: the tiny models'
    vocabulary holds every id), saved with `save_pretrained` in `folder`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = (default_data_root() / "text" / "wikitext-2" / "valid.txt").read_text().splitlines()[:300]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab, limit_alphabet=50,
                                                            special_tokens=["<unk>"]))
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>").save_pretrained(folder)
    return folder


def write_table(folder: Path, rows: list[tuple[str, dict, float]], model_type: str = "llama", **keys) -> Path:
    """`folder/table.yaml` of `rows` (id, config keys, metric) and a tiny tokenizer beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tok")
    table = {"model_type": model_type, "tokenizer": "tok/", "higher_is_better": False, "metric": "valid_ppl",
             "architectures": [{"id": i, "config": c, "metric": m} for i, c, m in rows], **keys}
    path = folder / "table.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


def llama(layers: int, hidden: int, ffn: int, heads: int = 2) -> dict:
    """Tiny LLaMA config keys (vocabulary `VOCAB`, 64 positions)."""
    return {"num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": ffn,
            "num_attention_heads": heads, "num_key_value_heads": 1, "vocab_size": VOCAB, "max_position_embeddings": 64}


#: five tiny LLaMA architectures with made-up perplexities (the larger, the better)
ROWS = [("a0", llama(1, 16, 32), 90.0), ("a1", llama(2, 16, 48), 80.0), ("a2", llama(1, 32, 64), 75.0),
        ("a3", llama(2, 32, 64), 60.0), ("a4", llama(3, 32, 96), 52.0)]
