"""`LoNASBenchmark`: the sub-networks of one LoNAS super-network, scored on their inherited weights.

It reads a directory built by `lpzero build lonas-mini` (`lpzero.benchmarks.lonas.build`)
or a user's local checkpoint (a `save_pretrained` LLaMA-family directory: LLaMA, Mistral,
Qwen2, Qwen3) with an optional local peft adapter directory, both through transformers'
and peft's own loaders, in the checkpoint's stored dtype; a checkpoint's text is tokenized
with its own saved tokenizer.
`search_space()` gives its sub-networks as genomes, for a NAS search.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from ..base import (Architecture, Batch, Benchmark, BenchmarkError, WeightSite, ZCSites, default_data_root,
                    read_json_object)
from ..builds import BUILD_FILE
from ..checkpoints import check_text_stream, check_tokenizer_ids, stored_dtype
from ..half_cpu import fast_half_backward
from ..sites import layer_sites, site_map
from .export import export_subnetwork
from .slicing import WeightFamily, count_subnetwork_params, extract_subnetwork, in_family
from .space import LONAS_ALPHA, LONAS_RANK, SPACE_PRESETS, Choice, LoNASSpace, choice_id, lonas_space
from .supernetwork import (ADAPTER_CONFIG, check_adapter, check_base_config, check_base_weights, check_space_modules,
                           decoder_layers, inner_model, load_base, make_supernetwork, read_adapter_config)
from .describe import describe_lonas
from .text import VOCAB_FILE, Vocabulary, lonas_tokenizer, token_stream, tokenized, unknown_token

#: file names of a built LoNAS directory (beside `base/` and `adapter/`)
SPACE_FILE, GROUND_TRUTH_FILE = "space.json", "ground_truth.json"
#: what an architecture id of a ground-truth file may contain
_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


#: where `lpzero build lonas-mini` writes by default, and where "lonas-mini" looks after the data root
LONAS_MINI_DIR = "lonas_mini"


def lonas_mini_path(root: Path) -> Path:
    """The built lonas-mini directory: under the data root, else in the working folder."""
    for candidate in (root / LONAS_MINI_DIR, Path(LONAS_MINI_DIR)):
        if (candidate / GROUND_TRUTH_FILE).is_file():
            return candidate
    raise BenchmarkError(f"lonas-mini is not built (looked in {root / LONAS_MINI_DIR} and ./{LONAS_MINI_DIR}): "
                         f"run `lpzero build lonas-mini` (writes ./{LONAS_MINI_DIR}), or open a built copy as "
                         "lonas:DIR")


class LoNASBenchmark(Benchmark):
    """Sub-networks of one LoNAS super-network, scored on their inherited weights.

    `path` is a built LoNAS directory (`base/`, `adapter/`, `space.json`,
    `ground_truth.json`) or a local LLaMA checkpoint directory (config.json and
    weights; then `adapter` names an optional peft adapter directory, `space` a
    preset name or space.json, `ground_truth` an optional ground_truth.json).
    Without a ground truth the architectures are the max, heuristic and min
    sub-networks with ground truth NaN: `lpzero nas` can search, `rank` cannot.

    Which weights are proxy inputs (W, G) is `weights`: "both" (default; base and
    LoRA matrices, each paired with its own gradient), "base" or "lora". `dtype`: "auto"
    (the checkpoint's stored dtype), "float32", "bfloat16" or "float16". `text`: a UTF-8
    file the mini-batches are drawn from (default WikiText-2 valid), tokenized with the
    checkpoint's own tokenizer (a built LoNAS directory: GPT-2's through `lpzero_vocab.json`).
    """

    raw_metric = "test_ppl"
    paper_batch_size = 16
    paper_seq_len = 128
    default_batch_size = 4
    default_seq_len = 128

    def __init__(self, path: str | os.PathLike, data_root: str | os.PathLike | None = None, name: str = "lonas",
                 adapter: str | os.PathLike | None = None, space: str | None = None,
                 ground_truth: str | os.PathLike | None = None, weights: WeightFamily = "both", dtype: str = "auto",
                 text: str | os.PathLike | None = None) -> None:
        self.name = name
        self.path = Path(path)
        self.data_root = Path(data_root) if data_root is not None else None
        if not self.path.is_dir():
            raise BenchmarkError(f"{self.path}: LoNAS directory not found")
        if weights not in ("base", "lora", "both"):
            raise BenchmarkError(f"weights={weights!r}: expected base, lora or both")
        self.weights = weights
        built = (self.path / "base").is_dir()
        self.base_path = self.path / "base" if built else self.path
        if adapter is None and built and (self.path / "adapter").is_dir():
            adapter = self.path / "adapter"
        self.adapter_path = None if adapter is None else Path(adapter)
        # every file is checked now, once, from its header: a bad one is one line before any work,
        # not one warning per candidate
        config_path = self.base_path / "config.json"
        base_config = check_base_config(read_json_object(config_path), str(config_path))
        check_base_weights(self.base_path, base_config)
        self.base_config = base_config
        self.dtype = stored_dtype(base_config, dtype, str(config_path))
        self.text_path = None if text is None else Path(text)
        self.build_size = self._read_build() if built else None
        self.space_source = ""  # where the space came from (`lpzero info`), set by `_read_space`
        self.space_path = None if space is None or space in SPACE_PRESETS else Path(space)
        self.space = self._read_space(space, base_config, built)
        if self.adapter_path is not None:
            check_adapter(self.adapter_path, self.space, base_config)
        gt_path = Path(ground_truth) if ground_truth is not None else self.path / GROUND_TRUTH_FILE
        if ground_truth is not None or gt_path.is_file():
            self._truth = self._read_ground_truth(gt_path)
        else:  # a checkpoint without ground truth: its named sub-networks, for nas and info
            self._truth = {p: (self.space.pick(p), math.nan) for p in ("max", "heuristic", "min")}
        self._supernet: nn.Module | None = None
        vocab_path = self.base_path / VOCAB_FILE
        self.vocabulary = Vocabulary.read(vocab_path) if vocab_path.is_file() else None
        self.default_seq_len = min(self.paper_seq_len, self.max_seq_len())
        # a built directory reads GPT-2 ids through its vocabulary; a checkpoint its own tokenizer
        self.tokenizer_path = None if self.vocabulary is not None else self.base_path
        if self.tokenizer_path is not None or self.text_path is not None:
            self._check_text()  # the tokenizer and the text fail now, before any work, not per candidate

    @classmethod
    def open(cls, name: str, argument: str | None = None, data: str | os.PathLike | None = None,
             **options) -> "LoNASBenchmark":
        """"lonas-mini": the built directory (`lonas_mini_path`); "lonas:DIR": DIR."""
        root = Path(data) if data is not None else default_data_root()
        path = Path(argument) if argument is not None else lonas_mini_path(root)
        return cls(path, data_root=root, name=name, **options)

    # --- reading ---------------------------------------------------------------------------

    def _read_build(self) -> str | None:
        """The size of a built directory's build ("mini", "smoke"; None for a build that did not record it)."""
        path = self.path / BUILD_FILE
        if not path.is_file():
            return None
        size = read_json_object(path).get("size_name")
        if size is not None and not isinstance(size, str):
            raise BenchmarkError(f"{path}: size_name is {size!r} (expected a string)")
        return size

    def _read_space(self, space: str | None, base_config: dict, built: bool) -> LoNASSpace:
        """The space: `space` (a preset or a file), a built directory's space.json, or LoNAS's rules
        applied to config.json and the adapter's rank; it must be for the checkpoint's depth and FFN width."""
        config_path = self.base_path / "config.json"
        if space in SPACE_PRESETS:
            found, self.space_source = SPACE_PRESETS[space], f"preset {space}"
            where = f"preset {space!r}"
        elif space is not None or built:
            path = Path(space) if space is not None else self.path / SPACE_FILE
            found = LoNASSpace.from_json(read_json_object(path), str(path))
            self.space_source = f"{path} ({'--space-file' if space is not None else SPACE_FILE})"
            where = str(path)
        else:  # LoNAS's rules: FFN widths 100 to 50 % of intermediate_size, ranks r and r - r/8
            rank, alpha = LONAS_RANK, LONAS_ALPHA
            if self.adapter_path is not None:
                cfg = read_adapter_config(self.adapter_path)
                rank, alpha = cfg["r"], cfg["lora_alpha"]
                self.space_source = f"derived from {config_path} and {self.adapter_path / ADAPTER_CONFIG} (r={rank})"
            else:
                self.space_source = f"derived from {config_path} (LoNAS's r={rank}; new LoRA adapters)"
            return lonas_space(base_config["num_hidden_layers"], base_config["intermediate_size"], rank, alpha)
        check_space_modules(found, base_config.get("model_type", "llama"), where)
        if (found.num_layers, found.intermediate_size) != (base_config["num_hidden_layers"],
                                                           base_config["intermediate_size"]):
            raise BenchmarkError(f"{where}: space {found.name!r} is for {found.num_layers} layers of FFN width "
                                 f"{found.intermediate_size} (num_layers, intermediate_size); {config_path} has "
                                 f"num_hidden_layers {base_config['num_hidden_layers']}, intermediate_size "
                                 f"{base_config['intermediate_size']}")
        return found

    def _read_ground_truth(self, path: Path) -> dict[str, tuple[Choice, float]]:
        data = read_json_object(path)
        subs = data.get("subnetworks")
        if not isinstance(subs, dict) or not subs:
            raise BenchmarkError(f"{path}: subnetworks is {subs!r} (expected {{id: {{'choice': ..., 'ppl': ...}}}})")
        truth = {}
        for arch_id, entry in subs.items():
            if not _ID_PATTERN.fullmatch(arch_id) or not isinstance(entry, dict):
                raise BenchmarkError(f"{path}: subnetworks.{arch_id}: bad entry {entry!r}")
            ppl = entry.get("ppl")
            # a bool is an int to Python: "ppl": true would read as 1.0
            if isinstance(ppl, bool) or not isinstance(ppl, (int, float)) or not math.isfinite(ppl) or ppl < 1:
                raise BenchmarkError(f"{path}: subnetworks.{arch_id}.ppl is {ppl!r} (a perplexity is a finite "
                                     "number >= 1)")
            choice = entry.get("choice")
            if not isinstance(choice, dict):
                raise BenchmarkError(f"{path}: subnetworks.{arch_id}.choice is {choice!r} (expected an object "
                                     "mapping every group of the space to one of its choices)")
            try:
                choice = self.space.check(choice)
            except BenchmarkError as e:
                raise BenchmarkError(f"{path}: subnetworks.{arch_id}.choice: {e}") from None
            truth[arch_id] = (choice, float(ppl))
        return truth

    def _check_text(self) -> None:
        """BenchmarkError when the tokenizer is missing or has ids the model has no row for, or a text is mostly
        unknown tokens or too short for any window (`check_text_stream`). The window of the --seq-len a
        command uses depends on its batch: `check_batch` checks it when the batch is set."""
        tokenizer = lonas_tokenizer(self.tokenizer_path) if self.tokenizer_path is not None else None
        if tokenizer is not None:
            check_tokenizer_ids(tokenizer, self.tokenizer_path, int(self.base_config["vocab_size"]))
        if self.data_root is None and self.text_path is None:
            return  # no text to check yet: `stream` names the missing data root when asked
        # a user's text only: WikiText-2 is the default whatever a toy tokenizer makes of it
        unknown = unknown_token(tokenizer, self.vocabulary) if self.text_path is not None else None
        check_text_stream(self.batch_stream(), self.text_path or "wikitext-2/valid.txt", unknown)

    def check_batch(self, batch_size: int | None = None, seq_len: int | None = None) -> None:
        """BenchmarkError when no mini-batch of `seq_len` tokens can be made: longer than the model's
        positions, or than the text has tokens in this model's tokenizer (a window is seq_len + 1).
        A workflow calls it before any work; `make_batch` calls it again."""
        seq_len = seq_len or self.default_seq_len
        if seq_len > self.max_seq_len():
            raise BenchmarkError(f"{self.base_path / 'config.json'}: --seq-len {seq_len} exceeds "
                                 f"max_position_embeddings {self.max_seq_len()}")
        stream = self.batch_stream()
        if len(stream) <= seq_len:
            raise BenchmarkError(f"{self.text_path or 'wikitext-2/valid.txt'}: {len(stream)} tokens, fewer than one "
                                 f"window of {seq_len} + 1 (--seq-len {seq_len})")

    def describe_space(self) -> list[tuple[str, str]]:
        """What `lpzero info` says of this benchmark beyond the common summary (`describe.describe_lonas`)."""
        return describe_lonas(self)

    def score_settings(self) -> dict[str, str | None]:
        """What a score depends on besides the batch and the sub-network, resolved, for a run's record
        (`lpzero nas`'s summary and report): the dtype the models load in, the adapter, the text."""
        return {"dtype": str(self.dtype).removeprefix("torch."),
                "adapter": None if self.adapter_path is None else str(self.adapter_path.resolve()),
                "text": "WikiText-2 valid" if self.text_path is None else str(self.text_path.resolve())}

    def search_space(self) -> SubnetworkGenomes:
        """Every sub-network of the space (not only the ground truth's), as genomes: what a NAS search reads."""
        return SubnetworkGenomes(self)

    def supernetwork(self) -> nn.Module:
        """The super-network (loaded once per benchmark object), on the CPU, in eval mode."""
        if self._supernet is None:
            model = make_supernetwork(load_base(self.base_path, dtype=self.dtype), self.space, self.adapter_path)
            self._supernet = model.eval()
        return self._supernet

    # --- Benchmark interface -----------------------------------------------------------------

    def max_seq_len(self) -> int:
        return int(self.base_config.get("max_position_embeddings", self.paper_seq_len))

    def ids(self) -> list[str]:
        return list(self._truth)

    def check_id(self, arch_id: str) -> None:
        if arch_id not in self._truth:
            raise BenchmarkError(f"{self.name}: unknown sub-network id {arch_id!r}")

    def choice(self, arch_id: str) -> Choice:
        self.check_id(arch_id)
        return dict(self._truth[arch_id][0])

    def architecture(self, arch_id: str) -> Architecture:
        """The sub-network's choices; ground truth minus held-out perplexity."""
        self.check_id(arch_id)
        choice, ppl = self._truth[arch_id]
        return Architecture(arch_id, dict(choice), -ppl, ppl)

    def build_model(self, arch_id: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
        """The sub-network on inherited super-network weights (`seed` is not used: nothing is random)."""
        return self.build_subnetwork(self.choice(arch_id), device)

    def build_subnetwork(self, choice: Mapping[str, int], device: str | torch.device = "cpu") -> nn.Module:
        """Any sub-network of the space (views of the super-network's storage on the CPU)."""
        sub = extract_subnetwork(self.supernetwork(), self.space, choice, self.weights).eval()
        # J is the gradient at the embedding's output: make that output a leaf that wants a
        # gradient, rather than computing the whole embedding table's gradient
        inner_model(sub).get_input_embeddings().register_forward_hook(_output_wants_grad)
        if torch.device(device).type != "cpu":
            return sub.to(device)
        fast_half_backward(sub)  # a bfloat16 checkpoint's backward on a CPU without bfloat16 arithmetic
        return sub

    def count_params(self, arch_id: str) -> dict[str, int]:
        """base / lora / nonembedding / total parameters of the sub-network."""
        return count_subnetwork_params(self.supernetwork(), self.space, self.choice(arch_id))

    def make_batch(self, seed: int, batch_size: int | None = None, seq_len: int | None = None) -> Batch:
        """Random windows of the text: WikiText-2 valid (the text lonas-mini was trained on) or `text`."""
        seq_len = seq_len or self.default_seq_len
        self.check_batch(batch_size, seq_len)
        stream = self.batch_stream()
        gen = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, len(stream) - seq_len, (batch_size or self.default_batch_size,), generator=gen)
        return Batch(torch.stack([stream[s: s + seq_len] for s in starts.tolist()]))

    def batch_stream(self) -> torch.Tensor:
        """The mini-batches' text (`text`, else WikiText-2 valid) in this model's token ids."""
        if self.text_path is None and self.tokenizer_path is None:
            return self.stream("valid")  # lonas-mini: exactly the stream it always read
        self._check_vocabulary()
        return tokenized(self.data_root, self.text_path, self.tokenizer_path, self.vocabulary)

    def stream(self, split: str) -> torch.Tensor:
        """WikiText-2 `split` in this model's token ids."""
        if self.data_root is None:
            raise BenchmarkError(f"{self.name}: no data root for the text")
        self._check_vocabulary()
        if self.tokenizer_path is not None:
            return tokenized(self.data_root, None, self.tokenizer_path, None, split)
        return token_stream(self.data_root, split, self.vocabulary)

    def _check_vocabulary(self) -> None:
        vocab_size = int(self.base_config["vocab_size"])
        if self.vocabulary is not None and self.vocabulary.size > vocab_size:
            raise BenchmarkError(f"{self.base_path / VOCAB_FILE}: {self.vocabulary.size} tokens, more than the "
                                 f"model's {vocab_size}")

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy."""
        device = next(model.parameters()).device
        ids = batch.input_ids.to(device)
        return model(input_ids=ids, labels=ids).loss

    def zc_sites(self, model: nn.Module) -> ZCSites:
        """Where the proxy inputs live in a sub-network; B = batch, T = tokens, per layer i:

        - embedding: `embed_tokens`; J is the gradient w.r.t. its output [B, T, D].
        - activations (A): the input of `mlp.down_proj`, act(gate(x)) * up(x) [B, T, width_i].
        - heads (H): the input of `self_attn.o_proj`, the heads' outputs concatenated [B, T, D].
        - softmax (S): the attention probabilities [B, heads, T, T] (eager attention's second output).
        - weights (W, G): per layer, in module order, the base weight of q, k, v, o, gate, up,
          down (family "base") and lora_A, lora_B of the six adapted modules (family "lora");
          `self.weights` says which families are read. Each is paired with its own gradient.
        """
        layers = decoder_layers(model)
        inner = inner_model(model)
        model_type = self.base_config["model_type"]
        smap = site_map(model_type)  # the one table of where the inputs live in a transformers family
        activations, heads, softmax, weights = [], [], [], []
        for i, layer in enumerate(layers):
            a, h, s = layer_sites(layer, i, smap, model_type)
            activations.append(a)
            heads.append(h)
            softmax.append(s)
            for pname, p in layer.named_parameters():
                if pname.endswith("weight") and p.dim() == 2 and in_family(pname, self.weights):
                    weights.append(WeightSite(i, f"L{i}.{pname.replace('.default', '')}", p))
        return ZCSites(inner.get_input_embeddings(), activations, heads, softmax, weights)

    def data_files(self) -> list[Path]:
        """What the scores read besides the architectures: the base's and adapter's configs and weights,
        space.json, ground_truth.json, the tokenizer and the text (hashed cheaply by `fingerprint`)."""
        patterns = ("*.json", "*.safetensors", "*.bin", "*.model", "*.txt")
        folders = [self.base_path] + ([self.adapter_path] if self.adapter_path is not None else [])
        files = [f for d in folders for pattern in patterns for f in sorted(Path(d).glob(pattern))]
        files += [self.path / SPACE_FILE, self.path / GROUND_TRUTH_FILE]
        if self.space_path is not None:
            files.append(self.space_path)
        if self.text_path is not None:
            files.append(self.text_path)
        return list(dict.fromkeys(files))  # a checkpoint directory is both the base and the path

    def fingerprint(self) -> str:
        """`Benchmark.fingerprint`, and the dtype the models load in where it is not the checkpoint's own
        (`--dtype`: other scores, so `nas --resume` refuses a checkpoint of another dtype)."""
        own = super().fingerprint()
        try:
            if self.dtype == stored_dtype(self.base_config):
                return own
        except BenchmarkError:  # a stored dtype lpzero does not load in: `--dtype` chose another
            pass
        return hashlib.sha1(f"{own}:{self.dtype}".encode()).hexdigest()[:16]


class SubnetworkGenomes:
    """A LoNAS benchmark's sub-networks as genomes: gene i is the index of group i's choice.

    Every genome is a distinct sub-network; candidates are built and counted on the
    benchmark's super-network, and written as peft adapters (`export_subnetwork`).
    """

    def __init__(self, bench: LoNASBenchmark) -> None:
        self.bench = bench
        self._truth: dict[tuple, float] | None = None

    @property
    def space(self) -> LoNASSpace:
        """The benchmark's space (the groups and their choices)."""
        return self.bench.space

    def choices(self) -> list[int]:
        """The number of choices of each gene."""
        return [len(g.choices) for g in self.space.groups]

    def decode(self, genome: Sequence[int]) -> Choice:
        """The sub-network a genome codes."""
        return self.space.decode(genome)

    def encode(self, choice: Mapping[str, int]) -> list[int]:
        """The genome of a sub-network (BenchmarkError outside the space)."""
        return self.space.encode(choice)

    def describe(self, choice: Mapping[str, int]) -> str:
        """The sub-network's short stable name (`choice_id`)."""
        return choice_id(self.space, choice)

    def smallest(self) -> Choice:
        """The sub-network with the fewest parameters."""
        return self.space.pick("min")

    def count_params(self, choice: Mapping[str, int]) -> dict[str, int]:
        """base / lora / nonembedding / total parameters of the sub-network."""
        return count_subnetwork_params(self.bench.supernetwork(), self.space, choice)

    def build(self, choice: Mapping[str, int], device: str | torch.device = "cpu") -> nn.Module:
        """The sub-network on inherited super-network weights."""
        return self.bench.build_subnetwork(choice, device)

    def ground_truth(self, choice: Mapping[str, int]) -> float | None:
        """Minus the held-out perplexity, where the benchmark's ground truth has this sub-network."""
        if self._truth is None:  # built once: a report asks for every candidate
            archs = (self.bench.architecture(a) for a in self.bench.ids())
            self._truth = {_key(a.config): a.ground_truth for a in archs if not math.isnan(a.ground_truth)}
        return self._truth.get(_key(choice))

    def export(self, choices: Sequence[Mapping[str, int]], out: Path) -> list[Path]:
        """`out/subnetwork_<k>/`: a peft adapter and `lonas_subnetwork.json` per sub-network."""
        return [export_subnetwork(self.bench.supernetwork(), self.space, choice, Path(out) / f"subnetwork_{k}",
                                  self.bench.base_path) for k, choice in enumerate(choices)]


def _key(choice: Mapping[str, int]) -> tuple:
    return tuple(sorted(choice.items()))


def _output_wants_grad(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output if output.requires_grad or not torch.is_grad_enabled() else output.detach().requires_grad_()
