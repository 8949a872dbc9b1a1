"""Building `neox-mini`: about 60 small GPT-NeoX language models trained here, with a measured ground truth.

A second measured family beside lonas-mini, made the same way: stages, each resumable (a
finished stage is skipped; a finished architecture is never trained again; a half-trained
one resumes from its own checkpoint), everything drawn from one seed.

1. tokenizer: a byte-level BPE (the `tokenizers` library) trained on WikiText-2 valid, small
   so that the embedding does not dominate a tiny model; saved with transformers'
   `save_pretrained` in `tokenizer/`.
2. architectures: distinct GPT-NeoX configs drawn from a small grid of depth, width, heads
   and FFN size (`NeoxSize`), in `architectures.json`.
3. train: each architecture trained from scratch on the same WikiText-2 valid tokens and
   measured on the same WikiText-2 test windows (`training.train_architecture`), one per
   executor task; the first `n_replicates` trained again with another seed. Each result is
   one file, `results/<key>.json`.
4. reliability: the Spearman rho between the two seeds' perplexities.

Then `benchmark.yaml` (the architectures, their configs and held-out perplexity) is written
last: its presence means the build is complete. `build.json` keeps the settings and each
stage's facts and seconds.
"""
from __future__ import annotations

import itertools
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr

from lpzero.executors import Executor, LocalExecutor, TaskFailure
from lpzero.files import atomic_write_json, atomic_write_text

from ..base import BenchmarkError, read_json_object
from ..builds import BUILD_FILE, BuildProgress, BuildRecipe, StagedBuild
from ..text import text_lines
from .benchmark import NEOX_MINI_DIR, TABLE_FILE
from .training import (CONFIG_KEYS, MODEL_TYPE, TrainSettings, TrainTask, neox_config, parameter_counts, streams,
                       tokenizer_of, train_architecture)

#: the benchmark itself; written last
BENCHMARK_FILE = TABLE_FILE
ARCHITECTURES_FILE = "architectures.json"
TOKENIZER_DIR = "tokenizer"
RESULTS_DIR = "results"
#: training checkpoints of half-trained architectures
RUNS_DIR = "runs"
#: the training seed of the replicates is the build's seed plus this
REPLICATE_SEED = 1000
#: the seed-to-seed Spearman rho a full build should reach (recorded, not enforced)
RELIABILITY_TARGET = 0.9
#: the tokenizer's one special token (id 0): end of text
END_OF_TEXT = "<|endoftext|>"
#: bump when a stage's recipe changes what it produces
BUILD_VERSION = 1



@dataclass(frozen=True)
class NeoxSize:
    """The grid, the training and the evaluation of a build.

    The defaults are sized for 2 CPU cores: the grid spans 0.03 M to 2.7 M non-embedding
    parameters (a 4,096-token vocabulary keeps the embedding from dominating the counts), and
    every run sees the same 122,880 training tokens (120 steps of 8 x 128: about 0.4 of an
    epoch of WikiText-2 valid), the most that keeps 72 runs within 90 minutes on a shared
    machine. A small batch: at so few tokens, more optimizer steps help more than larger ones.
    """

    vocab_size: int = 4096
    n_architectures: int = 60
    layers: tuple[int, ...] = (1, 2, 3, 4, 6)
    hidden_sizes: tuple[int, ...] = (64, 96, 128, 192)
    heads: tuple[int, ...] = (2, 4, 8)
    #: FFN size as a multiple of the width
    ffn_ratios: tuple[int, ...] = (2, 3, 4)
    seq_len: int = 128
    batch_size: int = 8
    steps: int = 120
    #: peak learning rate (AdamW, 50 warmup steps, cosine decay: lonas-mini's loop)
    lr: float = 2e-3
    #: held-out windows of `seq_len` tokens: the first 49,152 tokens of WikiText-2 test
    eval_windows: int = 384
    #: architectures trained a second time, with another seed, to measure the ground truth's reliability
    n_replicates: int = 12
    #: lines of running text read from each split (None: all; the smoke size reads a few hundred)
    max_lines: int | None = None

    def settings(self) -> TrainSettings:
        """What every architecture's training run is told."""
        return TrainSettings(self.steps, self.lr, self.batch_size, self.seq_len, self.eval_windows, self.max_lines)


#: the real build (under 90 minutes on 2 CPU cores) and a seconds-long one for tests
SIZES = {
    "mini": NeoxSize(),
    # 300: the 256 byte tokens, the special token and a few merges (a byte-level BPE cannot go below 257)
    "smoke": NeoxSize(vocab_size=300, n_architectures=4, layers=(1, 2), hidden_sizes=(32, 64), heads=(2, 4),
                      ffn_ratios=(2,), seq_len=32, batch_size=4, steps=4, eval_windows=8, n_replicates=3,
                      max_lines=300),
}


def grid(size: NeoxSize, vocab_size: int) -> list[dict]:
    """Every config of the grid, in a fixed order.

    A head's width must be a multiple of 8: GPT-NeoX rotates a quarter of it (an even number of dims).
    """
    configs = []
    for layers, hidden, heads, ratio in itertools.product(size.layers, size.hidden_sizes, size.heads,
                                                          size.ffn_ratios):
        if hidden % heads or (hidden // heads) % 8:
            continue
        values = (layers, hidden, heads, ratio * hidden, size.seq_len, vocab_size)
        configs.append(dict(zip(CONFIG_KEYS, values)))
    return configs


def draw_architectures(size: NeoxSize, vocab_size: int, seed: int) -> dict[str, dict]:
    """`n_architectures` distinct configs of the grid drawn from `seed`, as {"n000": config, ...}."""
    configs = grid(size, vocab_size)
    rng = np.random.default_rng(seed + 30)
    picks = rng.choice(len(configs), size=min(size.n_architectures, len(configs)), replace=False)
    return {f"n{i:03d}": configs[j] for i, j in enumerate(picks.tolist())}


def train_tokenizer(data_root: Path, vocab_size: int, max_lines: int | None = None):
    """A byte-level BPE of `vocab_size` tokens trained on WikiText-2 valid's running text (its first
    `max_lines` lines), as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text_lines(data_root, "valid")[:max_lines], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT)


def publish_folder(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary folder beside `target` with `write(tmp)`, then rename it to `target`.

    The folder analogue of `atomic_write`: a half-written tokenizer is never at `target`.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _flow(config: dict) -> str:
    return "{" + ", ".join(f"{k}: {config[k]}" for k in CONFIG_KEYS) + "}"


def benchmark_yaml(architectures: dict[str, dict], ppl: dict[str, float]) -> str:
    """benchmark.yaml's text: the family, the tokenizer, and each architecture's config and perplexity."""
    lines = [f"model_type: {MODEL_TYPE}", f"tokenizer: {TOKENIZER_DIR}/", "higher_is_better: false",
             "metric: test_ppl", "architectures:"]
    for key, config in architectures.items():
        lines += [f"  - id: {key}", f"    config: {_flow(config)}", f"    metric: {round(ppl[key], 4)!r}"]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    """The versions of what the numbers depend on."""
    import tokenizers
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


@dataclass
class NeoxBuilder(StagedBuild):
    """Builds neox-mini into `out` (see the module docstring)."""

    out: Path
    data_root: Path
    size: NeoxSize
    seed: int = 0
    device: str = "cpu"
    progress: BuildProgress | None = None
    #: where the architectures train (default: this process)
    executor: Executor | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.data_root = Path(self.data_root)
        name = next((k for k, v in SIZES.items() if v == self.size), "custom")
        self.state = self.read_state({"version": BUILD_VERSION, "seed": self.seed, "size": asdict(self.size)},
                                     size_name=name, versions=versions())

    def run(self) -> dict:
        """Run the stages not yet finished, then write benchmark.yaml; returns build.json's content."""
        self.run_stages((("tokenizer", self.build_tokenizer), ("architectures", self.build_architectures),
                         ("train", self.train), ("reliability", self.reliability)))
        if not (self.out / BENCHMARK_FILE).is_file():
            self.write_benchmark()
        return self.state

    # --- stages ------------------------------------------------------------------------------------

    def build_tokenizer(self) -> dict:
        """Stage tokenizer: the byte-level BPE, in `tokenizer/`; facts: its size and the token counts."""
        target = self.out / TOKENIZER_DIR
        if not (target / "tokenizer.json").is_file():
            shutil.rmtree(target, ignore_errors=True)  # a folder left by hand without its tokenizer
            tokenizer = train_tokenizer(self.data_root, self.size.vocab_size, self.size.max_lines)
            publish_folder(target, lambda tmp: tokenizer.save_pretrained(str(tmp)))
        valid, test = streams(target, self.data_root, self.size.max_lines)
        return {"vocab_size": self._vocab_size(), "valid_tokens": len(valid), "test_tokens": len(test)}

    def _vocab_size(self) -> int:
        """The tokenizer's number of tokens (special ones included): every model's vocabulary."""
        return len(tokenizer_of(self.out / TOKENIZER_DIR))

    def build_architectures(self) -> dict:
        """Stage architectures: the drawn configs with their parameter counts, in architectures.json."""
        drawn = draw_architectures(self.size, self._vocab_size(), self.seed)
        counts = {key: _counts(config) for key, config in drawn.items()}
        atomic_write_json(self.out / ARCHITECTURES_FILE,
                          {key: {"config": config, **counts[key]} for key, config in drawn.items()})
        non_embedding = [c["non_embedding_params"] for c in counts.values()]
        return {"architectures": len(drawn), "grid": len(grid(self.size, self._vocab_size())),
                "non_embedding_params": [min(non_embedding), max(non_embedding)]}

    def architectures(self) -> dict[str, dict]:
        """The build's architectures: id -> config."""
        data = read_json_object(self.out / ARCHITECTURES_FILE)
        return {key: entry["config"] for key, entry in data.items()}

    def tasks(self) -> list[TrainTask]:
        """Every training run: each architecture with the build's seed, the first `n_replicates` with another."""
        archs = self.architectures()
        tasks = [TrainTask(key, key, config, self.seed) for key, config in archs.items()]
        tasks += [TrainTask(f"{key}.replicate", key, config, self.seed + REPLICATE_SEED)
                  for key, config in list(archs.items())[: self.size.n_replicates]]
        return tasks

    def _result_path(self, key: str) -> Path:
        return self.out / RESULTS_DIR / f"{key}.json"

    def train(self) -> dict:
        """Stage train: every run without a result file, one per executor task, largest first."""
        tasks = self.tasks()
        todo = [t for t in tasks if not self._result_path(t.key).is_file()]
        # the largest first, so no worker is left with a big one at the end (the costs differ 50-fold)
        weights = read_json_object(self.out / ARCHITECTURES_FILE)
        todo.sort(key=lambda t: -weights[t.arch_id]["params"])
        (self.out / RESULTS_DIR).mkdir(exist_ok=True)
        (self.out / RUNS_DIR).mkdir(exist_ok=True)
        executor = self.executor or LocalExecutor()
        results = executor.imap_unordered(train_architecture, todo, str(self.out), str(self.data_root),
                                          self.size.settings(), self.device)
        failed = []
        for done, (task, result) in enumerate(results):
            if isinstance(result, TaskFailure):
                failed.append(f"{task.key}: {result.error}")  # the others go on: what they finish is kept
            else:
                atomic_write_json(self._result_path(task.key), result)
            self.tick("train", done + 1, len(todo))
        if failed:
            raise BenchmarkError(f"training failed for {len(failed)} run(s): {'; '.join(failed)}")
        seconds = [self._result(t.key)["seconds"] for t in tasks]
        _, test = streams(self.out / TOKENIZER_DIR, self.data_root, self.size.max_lines)
        windows = min(self.size.eval_windows, (len(test) - 1) // self.size.seq_len)
        return {"runs": len(tasks), "reused": len(tasks) - len(todo),
                "token_budget": self.size.settings().token_budget, "eval_tokens": windows * self.size.seq_len,
                "task_seconds": round(sum(seconds), 1)}

    def _result(self, key: str) -> dict:
        return read_json_object(self._result_path(key))

    def reliability(self) -> dict:
        """Stage reliability: the Spearman rho of the replicated architectures' perplexities between seeds."""
        keys = list(self.architectures())[: self.size.n_replicates]
        first = [self._result(k)["test_ppl"] for k in keys]
        second = [self._result(f"{k}.replicate")["test_ppl"] for k in keys]
        rho = float(spearmanr(first, second).statistic) if len(keys) >= 3 else float("nan")
        ppl = [self._result(k)["test_ppl"] for k in self.architectures()]
        return {"replicates": len(keys), "seed_spearman": rho, "target": RELIABILITY_TARGET,
                "ppl_range": [min(ppl), max(ppl)],
                "replicate_ppl": {k: [a, b] for k, a, b in zip(keys, first, second)}}

    def write_benchmark(self) -> None:
        """benchmark.yaml from the results: the last file a build writes."""
        archs = self.architectures()
        ppl = {key: self._result(key)["test_ppl"] for key in archs}
        bad = [key for key, value in ppl.items() if not math.isfinite(value)]
        if bad:
            raise BenchmarkError(f"{self.out}: perplexity not finite for {', '.join(bad)}")
        atomic_write_text(self.out / BENCHMARK_FILE, benchmark_yaml(archs, ppl))


def _counts(config: dict) -> dict[str, int]:
    """Parameter counts of a config, from a model on the meta device (no memory, no initialisation)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(neox_config(config))
    return parameter_counts(model)


def build_neox_mini(out: Path, data_root: Path, smoke: bool = False, seed: int = 0, device: str = "cpu",
                    progress: BuildProgress | None = None, executor: Executor | None = None) -> dict:
    """Build (or finish building) neox-mini into `out`; returns build.json's content."""
    size = SIZES["smoke" if smoke else "mini"]
    text_lines(Path(data_root), "test")  # missing data fails now, not after training
    return NeoxBuilder(Path(out), Path(data_root), size, seed, device, progress, executor).run()


def _open_as(folder: Path) -> str:
    return "neox-mini" if folder == Path(NEOX_MINI_DIR) else f"hf:{folder / BENCHMARK_FILE}"


def _summary(state: dict) -> str:
    train, reliability = state["stages"]["train"], state["stages"]["reliability"]
    low, high = reliability["ppl_range"]
    return (f"{state['size']['n_architectures']} architectures, held-out perplexity {low:.1f} to {high:.1f} on "
            f"{train['eval_tokens']:,} tokens, seed-to-seed "
            f"Spearman {reliability['seed_spearman']:.3f} ({reliability['replicates']} architectures)")


#: `lpzero build neox-mini` (registered in `lpzero.benchmarks.BUILDS`)
NEOX_MINI = BuildRecipe(NEOX_MINI_DIR, "neox_mini_smoke", build_neox_mini, _open_as, _summary)


__all__ = ["BENCHMARK_FILE", "BUILD_FILE", "NEOX_MINI", "NeoxBuilder", "NeoxSize", "SIZES", "benchmark_yaml", "build_neox_mini",
           "draw_architectures", "grid", "train_tokenizer"]
