"""LiteTransformerSearch (Archai) results directories as a benchmark, of either of its model families.

Layout of a results directory (any path; `lts_gpt2_wt103/` is the GPT-2 one, `lts_transxl_wt103/`
the Transformer-XL one):

    config_<i>/j<k>/model_config.yaml   one trained architecture, id "config_<i>_j<k>"
    ppl_summary.yaml                    {id: {valid_ppl: ..., ...}}  ground truth, lower is better
    params_summary.yaml                 {id: {AdaEmb, Attn, FFN, nonembedding, total}}  optional

The architectures are exactly the ids of `ppl_summary.yaml`; each must have its
`model_config.yaml`. The directory's model family (`families`: GPT-2 flex or Transformer-XL) is
recognised from its configs; it decides the model builder, where the proxy inputs live and the
mini-batches (GPT-2 BPE tokens, or WikiText-2 words for the word-level Transformer-XL).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
from torch import nn

from ..base import (
    ConfigError,
    Architecture,
    Batch,
    Benchmark,
    BenchmarkError,
    ZCSites,
    default_data_root,
    known_ids,
    read_yaml,
    resolve_data_root,
)
from ..text import decoder_batch, gpt2_tokenizer
from .families import LTSFamily, family_of
from .words import word_batch

_ID = re.compile(r"config_(\d+)_j(\d+)")
PARAM_KEYS = ("AdaEmb", "Attn", "FFN", "nonembedding", "total")
#: the directory's own parameter counts (optional)
PARAMS_FILE = "params_summary.yaml"
#: architectures whose counts `check_family` compares (each counted on the meta device, a fraction of a second)
FAMILY_CHECKED = 5
#: the results directories shipped with the data, by registered name (`lpzero.benchmarks.lts`)
DATA_FOLDERS = {"gpt2": "lts_gpt2_wt103", "transxl": "lts_transxl_wt103"}


def _natural_key(arch_id: str) -> tuple[int, int]:
    """(i, k) of "config_<i>_j<k>", so config_2 sorts before config_10."""
    i, k = _ID.fullmatch(arch_id).groups()  # type: ignore[union-attr]  (ids are validated on load)
    return int(i), int(k)


class LTSBenchmark(Benchmark):
    """Trained architectures of an Archai / LTS results directory (GPT-2 flex or Transformer-XL)."""

    raw_metric = "valid_ppl"
    paper_batch_size = 16
    paper_seq_len = 192  # the paper's (and Archai's) tgt_len
    default_batch_size = 4  # CPU default: the 200 models at 16 x 192 take hours on 2 cores

    def __init__(
        self,
        path: str | os.PathLike,
        data_root: str | os.PathLike | None = None,
        name: str = "gpt2",
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.data_root = Path(data_root) if data_root is not None else default_data_root()
        if not self.path.is_dir():
            raise BenchmarkError(f"{self.path}: results directory not found")
        self._ppl = self._read_ppl(self.path / "ppl_summary.yaml")
        self._ids = sorted(self._ppl, key=_natural_key)
        for arch_id in self._ids:
            path = self._config_path(arch_id)
            if not path.is_file():
                raise BenchmarkError(f"{path}: file not found (architecture {arch_id})")
        params_path = self.path / PARAMS_FILE
        self._params = self._read_params(params_path) if params_path.exists() else {}
        self._configs: dict[str, dict] = {}
        self._family: LTSFamily | None = None
        self._max_seq_len: int | None = None
        self._family_checked = False

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options) -> "LTSBenchmark":
        """"gpt2": the results directory under the data root (which must exist); "lts:PATH": PATH."""
        if argument is None:
            root = resolve_data_root(data)
            return cls(root / DATA_FOLDERS[name], data_root=root, name=name, **options)
        root = resolve_data_root(data) if data is not None else default_data_root()
        return cls(argument, data_root=root, name=name, **options)

    @property
    def default_seq_len(self) -> int:  # type: ignore[override]
        """192 (the paper's), or the shortest `tgt_len` of the directory's models if shorter."""
        return min(self.paper_seq_len, self.max_seq_len())

    @property
    def family(self) -> LTSFamily:
        """The directory's model family, recognised from its first architecture's config."""
        if self._family is None:
            self._family = family_of(self._raw_config(self._ids[0]))
        return self._family

    def max_seq_len(self) -> int:
        """The models' positions: the shortest `tgt_len` of the results directory."""
        if self._max_seq_len is None:
            self._max_seq_len = min(self._model_config(a).n_positions for a in self._ids)
        return self._max_seq_len

    # --- reading the results directory -------------------------------------------------

    @staticmethod
    def _read_ppl(path: Path) -> dict[str, float]:
        summary = read_yaml(path)
        if not isinstance(summary, dict) or not summary:
            raise BenchmarkError(f"{path}: expected a non-empty mapping of architecture ids")
        ppl = {}
        for arch_id, entry in summary.items():
            if not isinstance(arch_id, str) or not _ID.fullmatch(arch_id):
                raise BenchmarkError(f"{path}: key {arch_id!r} is not an id of the form config_<i>_j<k>")
            value = entry.get("valid_ppl") if isinstance(entry, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise BenchmarkError(f"{path}: {arch_id} has no numeric valid_ppl")
            if not math.isfinite(value) or value < 1:
                raise BenchmarkError(f"{path}: {arch_id} has valid_ppl {value} (a perplexity is finite and >= 1)")
            ppl[arch_id] = float(value)
        return ppl

    @staticmethod
    def _read_params(path: Path) -> dict[str, dict[str, int]]:
        summary = read_yaml(path)
        if not isinstance(summary, dict):
            raise BenchmarkError(f"{path}: expected a mapping of architecture ids")
        params = {}
        for arch_id, entry in summary.items():
            counts = entry if isinstance(entry, dict) else {}
            if not all(isinstance(counts.get(k), (int, float)) for k in PARAM_KEYS):
                raise BenchmarkError(f"{path}: {arch_id} lacks numeric {', '.join(PARAM_KEYS)}")
            # Archai wrote the counts as floats (e.g. 6631088.0).
            params[str(arch_id)] = {k: int(counts[k]) for k in PARAM_KEYS}
        return params

    def check_family(self) -> None:
        """BenchmarkError unless the builder of the directory's family reproduces its own parameter counts
        (params_summary.yaml) of `FAMILY_CHECKED` architectures spread over its ids.

        A directory of a model family lpzero does not build, in the same layout and keys, would
        otherwise be built as another family without a word. Every checked architecture must match,
        as all 200 of each shipped directory do; a directory without parameter counts is taken as it is.
        """
        if self._family_checked:
            return
        with_counts = [a for a in self._ids if a in self._params]
        step = max(1, len(with_counts) // FAMILY_CHECKED)
        checked = with_counts[::step][:FAMILY_CHECKED]
        differing = [a for a in checked if self.count_params(a) != self._params[a]]
        if differing:
            first = differing[0]
            ours, theirs = self.count_params(first), self._params[first]
            key = next(k for k in PARAM_KEYS if ours[k] != theirs[k])
            raise BenchmarkError(
                f"{self.name}: our {self.family.name} builder (the family its configs name) reproduces the parameter "
                f"counts of {len(checked) - len(differing)} of {len(checked)} architectures checked against "
                f"{self.path / PARAMS_FILE} (e.g. {first}: {key} {ours[key]} here, {theirs[key]} there); is it another "
                "model family? pass --allow-param-mismatch to go on")
        self._family_checked = True

    def _config_path(self, arch_id: str) -> Path:
        i, k = _ID.fullmatch(arch_id).groups()  # type: ignore[union-attr]
        return self.path / f"config_{i}" / f"j{k}" / "model_config.yaml"

    def _raw_config(self, arch_id: str) -> dict:
        self.check_id(arch_id)
        if arch_id not in self._configs:
            path = self._config_path(arch_id)
            raw = read_yaml(path)
            if not isinstance(raw, dict):
                raise BenchmarkError(f"{path}: expected a mapping of config keys")
            self._configs[arch_id] = raw
        return self._configs[arch_id]

    def _model_config(self, arch_id: str):
        """The architecture's validated config, as its family reads it."""
        raw = self._raw_config(arch_id)
        try:
            return self.family.parse(raw)
        except (ConfigError, TypeError) as e:
            raise BenchmarkError(f"{self._config_path(arch_id)}: {e}") from None

    # --- Benchmark interface ------------------------------------------------------------

    def ids(self) -> list[str]:
        """`config_<i>_j<k>` ids sorted numerically by (i, k)."""
        return list(self._ids)

    def check_id(self, arch_id: str) -> None:
        if arch_id not in self._ppl:
            summary = self.path / "ppl_summary.yaml"
            raise BenchmarkError(f"{self.name}: unknown architecture id {arch_id!r} (not in {summary}; known: "
                                 f"{known_ids(self.ids())})")

    def architecture(self, arch_id: str) -> Architecture:
        """Config, ground truth (-valid_ppl) and Archai's parameter counts (if shipped)."""
        raw = self._raw_config(arch_id)
        ppl = self._ppl[arch_id]
        return Architecture(
            id=arch_id,
            config=dict(raw),
            ground_truth=-ppl,
            raw=ppl,
            reference_params=dict(self._params.get(arch_id, {})),
        )

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The architecture with weights drawn from `seed`, in eval mode (dropout off)."""
        config = self._model_config(arch_id)
        if not self.family.word_level:
            vocabulary = len(gpt2_tokenizer(self.data_root))
            if config.n_token < vocabulary:
                raise BenchmarkError(f"{self._config_path(arch_id)}: n_token {config.n_token} is smaller than the "
                                     f"GPT-2 tokenizer's {vocabulary} token ids the mini-batches use")
        return self.family.build(config, seed, device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        """AdaEmb / Attn / FFN / nonembedding / total of our model, counted on the meta device."""
        return self.family.count(self._model_config(arch_id))

    def describe_space(self) -> list[tuple[str, str]]:
        text = ("WikiText-2 words (its frequency-sorted vocabulary, docs/concepts.md)" if self.family.word_level
                else "WikiText-2 in GPT-2 tokens")
        return [("family", f"{self.family.name} (recognised from the configs)"), ("text", text)]

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """Random windows of WikiText-2 (default 4 x 192): GPT-2 tokens, or for a word-level family its
        words (`words.word_batch`, ids below the directory's smallest `n_token`)."""
        batch_size, seq_len = batch_size or self.default_batch_size, seq_len or self.default_seq_len
        if self.family.word_level:
            n_token = min(self._model_config(a).n_token for a in self._ids)
            return word_batch(self.data_root, seed, batch_size, seq_len, n_token)
        return decoder_batch(self.data_root, seed, batch_size, seq_len)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy of the adaptive softmax over the batch."""
        model = self._model(model)
        device = next(model.parameters()).device
        return model.loss(batch.input_ids.to(device))

    def zc_sites(self, model: nn.Module) -> ZCSites:
        """Where the proxy inputs live in one of the family's models (`gpt2_flex.gpt2_flex_sites`,
        `transxl.transxl_sites`: their docstrings give each site and its shape)."""
        return self.family.sites(self._model(model))

    def _model(self, model: nn.Module) -> nn.Module:
        if not isinstance(model, self.family.model):
            raise BenchmarkError(f"{self.name}: expected a {self.family.model.__name__} model, got "
                                 f"{type(model).__name__}")
        return model
