"""FlexiBERT / NAS-Bench-BERT: 500 heterogeneous ELECTRA-style encoders and their GLUE scores.

Reads `flexibert/BERT_benchmark.json` (Serianni & Kalita 2023). Each entry's
`hparams.model_hparam_overrides` is the architecture (hidden size and a list of 2 or 4
encoder layers), `scores.glue` its average GLUE score. The models themselves are built by
`lpzero.benchmarks.flexibert.model`.

Compatibility: the original proxy code built every model with ElectraConfig's defaults
except for the layer list, i.e. at hidden size 256 with 1024-wide feed-forward layers and
without attention masking, whatever the architecture said. `hidden_size_compat=True`
builds those models; their parameter counts equal the reference CSV's for all 500.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import (
    ConfigError,
    Architecture,
    Batch,
    Benchmark,
    BenchmarkError,
    Site,
    WeightSite,
    ZCSites,
    read_json,
    resolve_data_root,
)
from .model import (
    MAX_POSITIONS,
    DynamicSpanConv,
    FlexiBERTConfig,
    FlexiBERTModel,
    LinearTransform,
    SelfAttention,
    build_flexibert,
    count_parameters,
)
from ..text import encoder_batch

BENCHMARK_FILE = "BERT_benchmark.json"
#: seed of the random readout vector of the default backward objective (see `loss`)
READOUT_SEED = 1234
#: parameter counts of the original proxy study, relative to the data root
REFERENCE_CSV = Path("reference") / "flexibert" / "BERT_results_activation.csv"


class FlexiBERTBenchmark(Benchmark):
    """The FlexiBERT benchmark; ground truth is the GLUE score (higher is better)."""

    name = "flexibert"
    raw_metric = "glue"
    #: the original proxy code scored one batch of 128 texts ...
    paper_batch_size = 128
    #: ... padded to the ELECTRA tokenizer's model_max_length (padding="max_length")
    paper_seq_len = 512
    #: CPU default: 128 x 512 costs about two minutes per model on 2 cores
    default_batch_size = 16
    default_seq_len = 128

    def max_seq_len(self) -> int:
        return MAX_POSITIONS

    def __init__(
        self,
        folder: str | Path,
        data_root: str | Path | None = None,
        hidden_size_compat: bool = False,
    ):
        """`folder` holds BERT_benchmark.json; `data_root` the text, tokenizers and reference files.

        `hidden_size_compat=True` builds each model as the original proxy code did (see the
        module docstring) instead of at its own hidden and feed-forward sizes.
        """
        self.folder = Path(folder)
        self.data_root = Path(data_root) if data_root is not None else self.folder.parent
        self.hidden_size_compat = hidden_size_compat
        self._path = self.folder / BENCHMARK_FILE
        reference = self._read_reference_params()
        self._archs: dict[str, Architecture] = {}
        self._configs: dict[str, FlexiBERTConfig] = {}
        entries = read_json(self._path)
        if not isinstance(entries, list):
            raise BenchmarkError(f"{self._path}: expected a list of architectures, got {type(entries).__name__}")
        for index, entry in enumerate(entries):
            self._add(index, entry, reference)

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options) -> "FlexiBERTBenchmark":
        """The benchmark under the data root's `flexibert/` (the data root must exist)."""
        root = resolve_data_root(data)
        return cls(root / "flexibert", data_root=root, **options)

    def _add(self, index: int, entry: Any, reference: dict[str, int]) -> None:
        where = f"{self._path}: entry {index}"
        if not isinstance(entry, dict) or "id" not in entry:
            raise BenchmarkError(f"{where}: not an object with an 'id'")
        arch_id = str(entry["id"])
        where = f"{self._path}: architecture {arch_id}"
        if arch_id in self._archs:
            raise BenchmarkError(f"{where}: duplicate id")
        glue = _lookup(entry, ("scores", "glue"), where)
        if not isinstance(glue, (int, float)) or isinstance(glue, bool):
            raise BenchmarkError(f"{where}: scores.glue is not a number: {glue!r}")
        overrides = _lookup(entry, ("hparams", "model_hparam_overrides"), where)
        try:
            config = FlexiBERTConfig.from_overrides(overrides)
        except ConfigError as e:
            raise BenchmarkError(f"{where}: {e}") from None
        ref = {"total": reference[arch_id]} if arch_id in reference else {}
        self._archs[arch_id] = Architecture(arch_id, overrides, float(glue), float(glue), ref)
        self._configs[arch_id] = config.as_in_proxy_code() if self.hidden_size_compat else config

    def _read_reference_params(self) -> dict[str, int]:
        """ID -> "Number of Parameters" from the reference CSV, or {} when it is not there."""
        path = self.data_root / REFERENCE_CSV
        if not path.is_file():
            return {}
        counts: dict[str, int] = {}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"ID", "Number of Parameters"} <= set(reader.fieldnames or ()):
                raise BenchmarkError(f"{path}: needs columns 'ID' and 'Number of Parameters'")
            for row in reader:
                try:
                    counts[str(int(row["ID"]))] = int(float(row["Number of Parameters"]))
                except (TypeError, ValueError):
                    raise BenchmarkError(f"{path}: line {reader.line_num}: bad ID or parameter count") from None
        return counts

    def ids(self) -> list[str]:
        return sorted(self._archs, key=int)

    def architecture(self, arch_id: str) -> Architecture:
        self.check_id(arch_id)
        return self._archs[arch_id]

    def model_config(self, arch_id: str) -> FlexiBERTConfig:
        """The `FlexiBERTConfig` that `build_model` builds (after the compatibility option)."""
        self.check_id(arch_id)
        return self._configs[arch_id]

    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        return build_flexibert(self.model_config(arch_id), seed, device)

    def count_params(self, arch_id: str) -> dict[str, int]:
        """{"total": every parameter of the model}, counted on the meta device."""
        return {"total": count_parameters(self.model_config(arch_id))}

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        batch_size = self.default_batch_size if batch_size is None else batch_size
        seq_len = self.default_seq_len if seq_len is None else seq_len
        return encoder_batch(self.data_root, seed, batch_size, seq_len)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The scalar the proxies' backward pass differentiates.

        With `hidden_size_compat` it is the original proxy code's objective, the sum of the
        last hidden state (`backward(ones_like(last_hidden_state))`), padding included.
        That objective is degenerate: the last module is a LayerNorm, and at initialization
        (unit gain, zero bias) each token's outputs sum to zero whatever the input, so every
        gradient before that LayerNorm is float rounding noise.

        Otherwise it is a fixed random linear readout of the last hidden state at real
        (unpadded) tokens, sum_t <h_t, r> with r ~ N(0, 1) drawn from a fixed seed: as cheap
        as the original, and its gradients reach every layer.
        """
        device = next(model.parameters()).device
        batch = batch.to(device)
        hidden = model(batch.input_ids, batch.attention_mask)
        if self.hidden_size_compat:
            return hidden.sum()
        readout = torch.randn(hidden.shape[-1], generator=torch.Generator().manual_seed(READOUT_SEED)).to(device)
        mask = batch.attention_mask.to(hidden.dtype).unsqueeze(-1) if batch.attention_mask is not None else 1.0
        return (hidden * mask * readout).sum()

    def zc_sites(self, model: nn.Module) -> ZCSites:
        """Where the six proxy inputs live; B = batch, T = tokens, H = the model's hidden size.

        - embedding: `model.embeddings` (ELECTRA embeddings plus the 128 -> H projection when
          H != 128), output [B, T, H].
        - activations: the output of every feed-forward GELU module,
          `layers[i].feed_forward.activations[j]`, [B, T, feed_forward_dim]; num_feed_forward
          sites per layer, named "ffn{j}".
        - heads: the output of the layer's token-mixing operation, [B, T, H] for every type:
            SA:  input of `layers[i].operation_output.dense` (the merged heads before the
                 output projection);
            LT:  output of `layers[i].operation.transform` (the DFT/DCT of the projected input);
            DSC: input of `layers[i].operation_output.dense` (the mixed-attention output:
                 H/2 from the attention heads, then H/2 from the dynamic-convolution heads).
        - softmax: probabilities, each row summing to 1 over the last dimension:
            SA:  output of `layers[i].operation.softmax`, [B, heads, T, T], named "attention";
            DSC: output of `layers[i].operation.softmax`, [B, heads/2, T, T], named "attention",
                 and of `layers[i].operation.kernel_softmax`, [B, T, heads/2, kernel],
                 named "conv_kernel";
            LT:  none (no Site carries that layer's index).
        - tfnas_softmax: what training-free-nas's softmax hook (on each mixer's `softmax`
          module) saw: the SA and DSC attention maps (not the DSC kernel softmax, which the
          original computes with the functional `torch.softmax`), and in LT layers the
          softmax over head_dim of each head of the transform output, which the original's
          DFT/DCT modules compute and never use.
        - weights: the weight of every nn.Linear inside each encoder layer (operation, its
          output projection, feed-forward), named by its path inside the layer, e.g.
          "operation.query"; no biases, LayerNorms or convolution kernels.
        """
        if not isinstance(model, FlexiBERTModel):
            raise BenchmarkError(f"{self.name}: zc_sites needs a model from build_model, got {type(model).__name__}")
        activations: list[Site] = []
        heads: list[Site] = []
        softmax: list[Site] = []
        tfnas_softmax: list[Site] = []
        weights: list[WeightSite] = []
        for i, layer in enumerate(model.layers):
            ffn = layer.feed_forward
            activations += [Site(i, act, "output", f"ffn{j}") for j, act in enumerate(ffn.activations)]
            op = layer.operation
            if isinstance(op, LinearTransform):
                heads.append(Site(i, op.transform, "output", "transform"))
                tfnas_softmax.append(Site(i, op.transform, "output", "transform", softmax_heads=op.transform.num_heads))
            else:
                heads.append(Site(i, layer.operation_output.dense, "input", "heads"))
            if isinstance(op, (SelfAttention, DynamicSpanConv)):
                softmax.append(Site(i, op.softmax, "output", "attention"))
                tfnas_softmax.append(softmax[-1])
            if isinstance(op, DynamicSpanConv):
                softmax.append(Site(i, op.kernel_softmax, "output", "conv_kernel"))
            weights += [
                WeightSite(i, name, m.weight) for name, m in layer.named_modules() if isinstance(m, nn.Linear)
            ]
        return ZCSites(model.embeddings, activations, heads, softmax, weights,
                       position_embedding=model.embeddings.electra.position_embeddings.weight,
                       tfnas_softmax=tfnas_softmax)


def _lookup(entry: dict, keys: tuple[str, ...], where: str) -> Any:
    """entry[keys[0]][keys[1]]...; `BenchmarkError` naming the dotted path if absent."""
    value: Any = entry
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise BenchmarkError(f"{where}: missing {'.'.join(keys[: depth + 1])}")
        value = value[key]
    return value
