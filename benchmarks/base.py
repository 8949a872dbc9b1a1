"""The interface every benchmark implements.

A benchmark is a set of trained architectures with known quality. It knows how to
build the model a proxy scores for each architecture (random weights from a seed, or a
super-network's inherited weights), how to make the mini-batch a
zero-cost proxy sees, which scalar the one backward pass differentiates, and where
in its models the six proxy inputs live (`ZCSites`). Everything above this layer
(input extraction, caching, fitness, evolution) talks to benchmarks only through
this interface.
"""
from __future__ import annotations

import abc
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lpzero.errors import LPZeroError


class BenchmarkError(LPZeroError):
    """Bad benchmark input: a missing file, a malformed config, an unknown id.

    The message names the file or id and the problem; the CLI prints it on one line.
    """


class ConfigError(BenchmarkError):
    """A malformed architecture config; the benchmark that read it adds the file or id."""


def default_data_root() -> Path:
    """`LPZERO_DATA` if set, else `../shared/data` beside the repository."""
    env = os.environ.get("LPZERO_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def resolve_data_root(data: str | os.PathLike | None) -> Path:
    root = Path(data) if data is not None else default_data_root()
    if not root.is_dir():
        raise BenchmarkError(
            f"{root}: data directory not found (pass --data DIR or set LPZERO_DATA)"
        )
    return root


def read_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BenchmarkError(f"{path}: malformed YAML{where}: {getattr(e, 'problem', e)}") from None


def read_json(path: Path) -> Any:
    """The JSON in `path` (UTF-8); BenchmarkError naming the file when it is missing or malformed."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise BenchmarkError(f"{path}: malformed JSON (line {e.lineno}): {e.msg}") from None
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"{path}: not UTF-8 JSON (byte {e.start}: {e.reason})") from None


def read_json_object(path: Path) -> dict:
    """`read_json` of a file that must hold a JSON object (a list or a number is named as the error)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class Architecture:
    """One trained architecture of a benchmark.

    `ground_truth` is oriented so that higher is better (e.g. minus perplexity);
    `raw` is the benchmark's own number (e.g. the perplexity itself).
    `reference_params` are the parameter counts the benchmark itself reports
    (empty when it reports none).
    """

    id: str
    config: dict
    ground_truth: float
    raw: float
    reference_params: dict[str, int] = field(default_factory=dict)


@dataclass
class Batch:
    """One mini-batch of token ids (and, for encoders, its attention mask)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> "Batch":
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return Batch(self.input_ids.to(device), mask)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]


Where = Literal["input", "output"]


@dataclass
class Site:
    """A module whose forward input or output is one per-layer proxy input.

    `layer` is the index of the block it belongs to, so an input that does not exist
    for some block (no softmax in a Fourier layer) is visibly absent, not shifted.
    """

    layer: int
    module: nn.Module
    where: Where = "output"
    name: str = ""
    #: > 0 for a site read as probability maps although its output is not one: the number
    #: of heads the output [..., tokens, heads * d] merges; the maps are a softmax over d
    #: of each head (see `ZCSites.tfnas_softmax`)
    softmax_heads: int = 0
    #: which item of a tuple output is the input (e.g. 1: a LLaMA attention's (output, probs))
    output_index: int = 0


@dataclass
class WeightSite:
    """A weight matrix of a block: W is `param`, G is `param.grad` after backward."""

    layer: int
    name: str
    param: nn.Parameter


@dataclass
class ZCSites:
    """Where the six proxy inputs live in one model (see docs/concepts.md, 'The six inputs').

    - embedding: J is the gradient of the backward objective w.r.t. this module's output.
    - activations (A): outputs of the feed-forward activation functions.
    - heads (H): outputs of the attention heads / token-mixing operation of each block.
    - softmax (S): attention probability maps.
    - weights (W, G): the weight matrices of the blocks' linear layers.
    - position_embedding: the learned position-embedding table [positions, features],
      if the model has one (read by `jacobian_cosine`, as in the original proxies).
    - tfnas_softmax: the maps training-free-nas's "Head Softmax Confidence" hook saw,
      for benchmarks that reproduce that code (FlexiBERT); empty otherwise.
    """

    embedding: nn.Module
    activations: list[Site]
    heads: list[Site]
    softmax: list[Site]
    weights: list[WeightSite]
    position_embedding: nn.Parameter | None = None
    tfnas_softmax: list[Site] = field(default_factory=list)


class Benchmark(abc.ABC):
    """A benchmark of trained language-model architectures."""

    #: short registry name, e.g. "gpt2"
    name: str = ""
    #: what `Architecture.raw` is, e.g. "valid_ppl"
    raw_metric: str = ""
    #: the paper's mini-batch shape (batch size, sequence length)
    paper_batch_size: int = 16
    paper_seq_len: int = 192
    #: the default mini-batch shape: sized so a whole benchmark runs on a 2-core CPU
    default_batch_size: int = 4
    default_seq_len: int = 192

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options: Any) -> "Benchmark":
        """The benchmark registered (or given) as `name`, opened: how `lpzero.benchmarks.get_benchmark`
        makes every benchmark.

        `argument` is the text after a registered prefix (the `PATH` of `lts:PATH`, made absolute),
        `data` the data root (None: `default_data_root()`), `options` the command's benchmark options.
        This default is what a user's class gets: `cls(data_root=ROOT, **options)`, named `name` (the
        name opens it again, e.g. in a cache's worker processes). A built-in family overrides it to
        find its own files.
        """
        root = Path(data) if data is not None else default_data_root()
        try:
            bench = cls(data_root=root, **options)
        except TypeError as e:
            raise BenchmarkError(f"benchmark {name!r}: cannot construct {cls.__name__}(data_root=..., "
                                 f"**{options}): {e}") from None
        bench.name = name
        return bench

    def max_seq_len(self) -> int | None:
        """The longest sequence every architecture's model accepts (None: no limit)."""
        return None

    def check_batch(self, batch_size: int, seq_len: int) -> None:
        """BenchmarkError now, before any work, where `make_batch` could not make this mini-batch (e.g. a
        text shorter than `seq_len`); a workflow calls it when it settles the batch. Default: nothing to check."""

    def check_family(self) -> None:
        """BenchmarkError unless this lpzero's builder reproduces the benchmark's own records of its models
        (e.g. an LTS directory of another model family); `BenchmarkRequest.checked` calls it unless told to
        go on. Default: nothing to check."""

    @abc.abstractmethod
    def ids(self) -> list[str]:
        """Architecture ids in a stable order."""

    @abc.abstractmethod
    def architecture(self, arch_id: str) -> Architecture:
        """The architecture with this id; `BenchmarkError` if unknown."""

    @abc.abstractmethod
    def build_model(self, arch_id: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
        """The model this benchmark scores for the architecture.

        Usually random weights drawn from `seed` (same seed, same weights); a benchmark of
        sub-networks of a trained super-network (LoNAS) returns the inherited weights and
        ignores the seed.
        """

    @abc.abstractmethod
    def count_params(self, arch_id: str) -> dict[str, int]:
        """Parameter counts of our model, under the same keys as `reference_params`."""

    @abc.abstractmethod
    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """A mini-batch of real text; the same seed gives the same batch."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The scalar the one backward pass of a proxy differentiates."""

    @abc.abstractmethod
    def zc_sites(self, model: nn.Module) -> ZCSites:
        """Where the six proxy inputs live in `model` (a model from `build_model`)."""

    def architectures(self) -> list[Architecture]:
        return [self.architecture(i) for i in self.ids()]

    def check_id(self, arch_id: str) -> None:
        ids = self.ids()
        if arch_id not in ids:
            raise BenchmarkError(f"{self.name}: unknown architecture id {arch_id!r} (known: {known_ids(ids)})")

    def data_files(self) -> list[Path]:
        """Files the models or scores read beyond the architectures' configs (weights, tokenizers); default none."""
        return []

    def score_settings(self) -> dict[str, str | None]:
        """What a score depends on besides the batch and the architecture, resolved (a dtype, a tokenizer, a
        text), for a run's record (`lpzero nas`'s summary and report); default none."""
        return {}

    def describe_space(self) -> list[tuple[str, str]]:
        """(label, text) rows `lpzero info` prints after the common summary (the family, a space's groups);
        default none."""
        return []

    def fingerprint(self) -> str:
        """A short hash of what scores depend on: every architecture's id, config and ground truth, and the
        `data_files` (each hashed cheaply, `file_fingerprint`). A rebuilt benchmark gets another one."""
        h = hashlib.sha1()
        for arch in self.architectures():
            h.update(json.dumps([arch.id, arch.config, _finite_or_text(arch.ground_truth), _finite_or_text(arch.raw)],
                                sort_keys=True, default=str).encode())
        for path in self.data_files():
            h.update(f"{Path(path).name}:{file_fingerprint(path)}".encode())
        return h.hexdigest()[:16]


#: how much of each end of a data file `file_fingerprint` reads
FINGERPRINT_BYTES = 1 << 20


#: ids listed whole in a message up to this many; beyond, the first and last few and the count
LISTED_IDS = 12


def known_ids(ids: list[str]) -> str:
    """`ids` for a message that lists the known ones: all of them, or (many) the first and last few, the
    count and where to see them all."""
    if len(ids) <= LISTED_IDS:
        return ", ".join(ids) or "none"
    return (f"{', '.join(ids[:6])}, ..., {', '.join(ids[-2:])}; {len(ids)} in all, `lpzero info BENCH --json` "
            "lists them")


def file_fingerprint(path: str | os.PathLike) -> str:
    """Size and sha1 of the first and last MiB: cheap for a 13 GB weight file, and changed by any rebuild
    (a retrained weight file differs at both ends; a truncated one in size). A missing file is "missing"."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            h.update(f.read(FINGERPRINT_BYTES))
    return h.hexdigest()


def _finite_or_text(value: float) -> float | str:
    # NaN is not JSON, and would hash by its spelling anyway: name it
    return value if isinstance(value, (int, float)) and math.isfinite(value) else str(value)
