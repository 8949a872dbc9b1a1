"""Building `lonas-mini`: a small LoNAS super-network with a real ground truth.

No sub-network accuracies of LoNAS were ever released, so the benchmark is made here,
in four stages, each resumable (a finished stage is skipped; training stages keep a
checkpoint, `training.py`; evaluation keeps every finished sub-network):

1. vocab: the most frequent GPT-2 tokens of WikiText-2 valid (the rest map to one
   unknown token), so a tiny model is not mostly embedding.
2. pretrain: a tiny LLaMA (transformers' `LlamaForCausalLM`) trained on WikiText-2 valid,
   saved with `save_pretrained` (safetensors) in `base/`.
3. supernet: the base frozen, LoRA (peft) on q, k, v, up, gate, down trained LoNAS-style,
   one random sub-network per step; saved as a peft adapter in `adapter/`.
4. ground_truth: the max, heuristic and min sub-networks and `n_subnetworks` random ones
   evaluated on WikiText-2 *test* (held out); the perplexity of each. Reliability: two
   halves of the held-out windows (alternating blocks of a few paragraphs) must rank the
   sub-networks alike (Spearman >= `min_reliability`), else more held-out text is
   evaluated (up to all of it). The first against the second half of the text is
   recorded too: it also measures how much the ranking depends on the text's topics.

Everything is drawn from one seed; the same seed and size give the same files. What the
ground truth's spread is made of is an analysis of the finished build, not a stage:
`lpzero.report.spread.record_spread` adds it to `ground_truth.json`.
"""
from __future__ import annotations

import functools
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from scipy.stats import spearmanr
from torch import nn

from lpzero.errors import WriteError
from lpzero.executors import Executor, LocalExecutor, TaskFailure, torch_threads
from lpzero.files import atomic_write_json

from ..base import BenchmarkError, read_json
from ..builds import BuildProgress, BuildRecipe, StagedBuild
from ..checkpoints import quiet_loading
from ..text import gpt2_tokenizer
from .benchmark import BUILD_FILE, GROUND_TRUTH_FILE, LONAS_MINI_DIR, SPACE_FILE
from .slicing import count_subnetwork_params, run_subnetwork
from .space import Choice, LoNASSpace, choice_id, lonas_space, positive_int
from .spread import record_spread
from .supernetwork import load_base, make_supernetwork, new_llama
from .text import VOCAB_FILE, Vocabulary, perplexity, token_stream, window_nll, windows
from ..training import TrainingPlan, train

# BUILD_FILE (build.json): the build's settings, its size's name and each finished stage's facts
#: windows per block of the split-half reliability (16 x 128 tokens: a few paragraphs)
RELIABILITY_BLOCK = 16
#: bump when a stage's recipe changes what it produces
BUILD_VERSION = 1
#: the environment variable that sets the torch threads of the training stages (`build_threads`)
THREADS_ENV = "LPZERO_THREADS"
#: the training stages' torch threads unless $LPZERO_THREADS says otherwise: one, as each ground-truth worker
#: has, because torch's default (a thread per core) thrashes as soon as anything runs beside it (lonas-mini's
#: pretraining fell from 3.8 to 0.25 steps/s with 2 threads on 2 shared cores)
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class BuildSize:
    """Model, training and evaluation sizes of a build."""

    vocab_size: int = 4096
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 352  # LLaMA's FFN/hidden ratio (11008/4096), rounded to a multiple of 16
    seq_len: int = 128
    batch_size: int = 16
    pretrain_steps: int = 1200
    pretrain_lr: float = 2e-3
    lora_rank: int = 32
    lora_alpha: int = 64
    supernet_steps: int = 800
    supernet_lr: float = 1e-3
    n_subnetworks: int = 200
    eval_windows: int = 512  # held-out windows of seq_len tokens at first; doubled until reliable
    min_reliability: float = 0.95


#: the default build (about 30-50 minutes on a 2-core CPU) and a seconds-long one for tests
SIZES = {
    "mini": BuildSize(),
    "smoke": BuildSize(vocab_size=256, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seq_len=32,
                       batch_size=4, pretrain_steps=30, lora_rank=8, lora_alpha=16, supernet_steps=20,
                       n_subnetworks=8, eval_windows=16, min_reliability=0.0),
}



@dataclass
class Builder(StagedBuild):
    """Builds a LoNAS mini benchmark into `out` (see the module docstring)."""

    out: Path
    data_root: Path
    size: BuildSize
    seed: int = 0
    device: str = "cpu"
    progress: BuildProgress | None = None
    #: where the ground truth's per-sub-network evaluations run (default: this process)
    executor: Executor | None = None
    #: torch threads of the training stages, which run in this process (the ground truth's tasks use one each)
    threads: int = DEFAULT_THREADS

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        # the size's name, so `lpzero info` can say a smoke build is a toy (not compared: a build
        # made before it was recorded resumes and gains it)
        name = next((k for k, v in SIZES.items() if v == self.size), "custom")
        self.state = self.read_state({"version": BUILD_VERSION, "seed": self.seed, "size": asdict(self.size)},
                                     size_name=name)

    def run(self) -> dict:
        """Run the stages not yet finished; returns build.json's content."""
        return self.run_stages((("vocab", self.build_vocab), ("pretrain", self.pretrain),
                                ("supernet", self.train_supernet), ("ground_truth", self.ground_truth)))

    # --- stages ------------------------------------------------------------------------------------

    def space(self) -> LoNASSpace:
        """The build's space: LoNAS's ratios at this size."""
        return lonas_space(self.size.num_layers, self.size.intermediate_size, self.size.lora_rank,
                           self.size.lora_alpha, name="lonas-mini")

    def build_vocab(self) -> dict:
        """Stage vocab: the most frequent GPT-2 tokens of WikiText-2 valid, in `base/lpzero_vocab.json`."""
        stream = token_stream(self.data_root, "valid", None)
        counts = Counter(stream.tolist())
        # ties broken by token id, so the vocabulary does not depend on dict order
        ranked = sorted(counts, key=lambda t: (-counts[t], t))[: self.size.vocab_size - 1]
        vocab = Vocabulary(tuple(ranked))
        (self.out / "base").mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / "base" / VOCAB_FILE, vocab.to_json())
        covered = sum(counts[t] for t in ranked) / len(stream)
        return {"tokens": len(stream), "coverage": round(covered, 4)}

    def _vocabulary(self) -> Vocabulary:
        return Vocabulary.read(self.out / "base" / VOCAB_FILE)

    def pretrain(self) -> dict:
        """Stage pretrain: a tiny LLaMA trained on WikiText-2 valid, saved in `base/`."""
        s = self.size
        torch.manual_seed(self.seed)
        model = new_llama(self._vocabulary().size, s.hidden_size, s.intermediate_size, s.num_layers, s.num_heads,
                          s.seq_len).to(self.device)
        params = list(model.parameters())
        loss = self._train("pretrain", model, params, s.pretrain_steps, s.pretrain_lr,
                           lambda batch, rng: model(input_ids=batch, labels=batch).loss)
        self._save("pretrain", model, self.out / "base", "model.safetensors")
        return {"params": sum(p.numel() for p in params), "final_loss": round(loss, 4), "threads": self.threads}

    def _base(self) -> nn.Module:
        return load_base(self.out / "base", self.device)

    def train_supernet(self) -> dict:
        """Stage supernet: LoRA on the frozen base, one random sub-network per step, saved in `adapter/`."""
        space = self.space()
        torch.manual_seed(self.seed + 1)
        model = make_supernetwork(self._base(), space)
        params = [p for p in model.parameters() if p.requires_grad]

        def step(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
            return run_subnetwork(model, space, space.sample(rng), input_ids=batch, labels=batch).loss

        # the base is frozen: a checkpoint keeps the LoRA weights only
        loss = self._train("supernet", model, params, self.size.supernet_steps, self.size.supernet_lr, step,
                           saved=lambda name: ".lora_" in name)
        self._save("supernet", model, self.out / "adapter", "adapter_model.safetensors")
        atomic_write_json(self.out / SPACE_FILE, space.to_json())
        return {"lora_params": sum(p.numel() for p in params), "final_loss": round(loss, 4), "threads": self.threads}

    def _save(self, stage: str, model: nn.Module, folder: Path, weights: str) -> None:
        """`save_model`, then the stage's training checkpoint is removed: a save that fails (a full disk)
        leaves it, and the rerun build trains from it again rather than from the start."""
        save_model(model, folder, weights)
        (self.out / f"{stage}.checkpoint.pt").unlink(missing_ok=True)

    def _train(self, stage: str, model: nn.Module, params: list, steps: int, lr: float,
               loss_of: Callable[[torch.Tensor, np.random.Generator], torch.Tensor],
               saved: Callable[[str], bool] = lambda name: True) -> float:
        """`training.train` on WikiText-2 valid, checkpointed in `<stage>.checkpoint.pt`; the final loss."""
        s = self.size
        plan = TrainingPlan(stage, steps, lr, s.seq_len, s.batch_size, self.seed, self.device)
        stream = token_stream(self.data_root, "valid", self._vocabulary())
        with torch_threads(self.threads):
            result = train(model, params, loss_of, stream, plan, self.out / f"{stage}.checkpoint.pt", saved,
                           on_step=lambda done: self.tick(stage, done, steps), keep_checkpoint=True)
        self.earlier_seconds = result.earlier_seconds  # a resumed stage's time before the interruption
        return result.loss

    def subnetworks(self, space: LoNASSpace) -> dict[str, dict[str, int]]:
        """max, heuristic, min, then `n_subnetworks` distinct random sub-networks (seeded)."""
        chosen = {name: space.pick(name) for name in ("max", "heuristic", "min")}
        seen = {choice_id(space, c) for c in chosen.values()}
        rng = np.random.default_rng(self.seed + 30)
        limit = min(self.size.n_subnetworks, space.size - len(seen))
        while len(chosen) < 3 + limit:
            choice = space.sample(rng)
            key = choice_id(space, choice)
            if key not in seen:
                seen.add(key)
                chosen[f"sub{len(chosen) - 3:03d}"] = choice
        return chosen

    def ground_truth(self) -> dict:
        """Stage ground_truth: held-out perplexity of every sub-network; more text until the split halves agree."""
        space = self.space()
        model = make_supernetwork(self._base(), space, self.out / "adapter").eval()
        held_out = windows(token_stream(self.data_root, "test", self._vocabulary()), self.size.seq_len)
        subs = self.subnetworks(space)
        partial_path = self.out / "ground_truth.partial.json"
        # per sub-network: the summed NLL and token count of each evaluated window
        nll: dict[str, list[float]] = read_json(partial_path)["nll"] if partial_path.is_file() else {}
        n_windows = min(self.size.eval_windows, len(held_out))
        executor = self.executor or LocalExecutor()
        while True:
            tasks = [WindowTask(k, c, len(nll.get(k, [])), n_windows) for k, c in subs.items()
                     if len(nll.get(k, [])) < n_windows]
            results = executor.imap_unordered(evaluate_windows, tasks, str(self.out), str(self.data_root),
                                              self.size.seq_len, self.device)
            for done, (task, result) in enumerate(results):
                if isinstance(result, TaskFailure):
                    raise BenchmarkError(f"ground truth of {task.key}: {result.error}")
                nll[task.key] = nll.get(task.key, [])[: task.start] + result
                self.tick(f"ground truth ({n_windows} windows)", done + 1, len(tasks))
                if done % 10 == 9 or done + 1 == len(tasks):
                    atomic_write_json(partial_path, {"n_windows": n_windows, "nll": nll}, indent=None)
            reliability = self._split_half(nll, n_windows)
            if (reliability >= self.size.min_reliability or self.size.min_reliability <= 0
                    or n_windows == len(held_out)):
                break
            n_windows = min(2 * n_windows, len(held_out))
        tokens = n_windows * self.size.seq_len
        entries = {}
        for key, choice in subs.items():
            ppl = perplexity(nll[key][:n_windows], self.size.seq_len)
            entries[key] = {"choice": choice, "ppl": ppl, "id": choice_id(space, choice),
                            "params": count_subnetwork_params(model, space, choice)}
        contiguous = self._split_half(nll, n_windows, n_windows // 2)
        result = {"metric": "held-out perplexity, WikiText-2 test", "tokens": tokens,
                  "split_half_spearman": reliability, "first_vs_second_half_spearman": contiguous,
                  "subnetworks": entries}
        atomic_write_json(self.out / GROUND_TRUTH_FILE, result)
        partial_path.unlink(missing_ok=True)
        return {"subnetworks": len(entries), "tokens": tokens, "split_half_spearman": round(reliability, 4),
                "first_vs_second_half_spearman": round(contiguous, 4)}

    def _split_half(self, nll: dict[str, list[float]], n_windows: int, block: int | None = None) -> float:
        """Spearman between the sub-networks' perplexities on two halves of the held-out windows.

        The halves alternate blocks of `block` windows (default `RELIABILITY_BLOCK`), so both
        cover the same articles and the figure measures how well the text pins the ranking
        down; `block = n_windows // 2` gives the first against the second half of the text.
        """
        block = block or min(RELIABILITY_BLOCK, n_windows // 2)
        if block < 1 or len(nll) < 3:
            return float("nan")
        first = [sum(x for i, x in enumerate(v[:n_windows]) if (i // block) % 2 == 0) for v in nll.values()]
        second = [sum(x for i, x in enumerate(v[:n_windows]) if (i // block) % 2 == 1) for v in nll.values()]
        return float(spearmanr(first, second).statistic)


def save_model(model: nn.Module, folder: Path, weights: str) -> None:
    """`model.save_pretrained` (safetensors) into a folder beside `folder`, then each file moved into it: a
    write that fails (a full disk) leaves no torn weights in `folder`, and is a WriteError naming `weights`
    there (safetensors' own error names no file)."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier save
    try:
        with quiet_loading():
            model.save_pretrained(str(partial), safe_serialization=True)
    except (SafetensorError, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        name = Path(e.filename).name if isinstance(e, OSError) and e.filename else weights
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise WriteError(f"{folder / name}: cannot be written: {reason}") from e
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(partial.iterdir()):
        path.replace(folder / path.name)
    partial.rmdir()


def build_threads() -> int:
    """The training stages' torch threads: $LPZERO_THREADS where set, else `DEFAULT_THREADS`; BenchmarkError
    naming the variable for anything but a positive integer."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise BenchmarkError(f"{THREADS_ENV}={value!r}: expected a positive integer (torch threads of the "
                             f"training stages; default {DEFAULT_THREADS})")
    return int(value)


@dataclass(frozen=True)
class WindowTask:
    """Held-out windows [start, stop) of one sub-network, to evaluate."""

    key: str
    choice: Choice
    start: int
    stop: int


@functools.lru_cache(maxsize=1)
def load_evaluation(out: str, data_root: str, seq_len: int, device: str,
                    adapter_stamp: int) -> tuple[nn.Module, LoNASSpace, torch.Tensor]:
    """A build's super-network, space and held-out windows, loaded once per process.

    `adapter_stamp` (the adapter file's mtime) is part of the cache key only: a rebuilt
    adapter is loaded again. One entry: a worker evaluates one build at a time.
    """
    folder = Path(out)
    space = LoNASSpace.from_json(read_json(folder / SPACE_FILE), str(folder / SPACE_FILE))
    model = make_supernetwork(load_base(folder / "base", device), space, folder / "adapter").eval()
    vocabulary = Vocabulary.read(folder / "base" / VOCAB_FILE)
    return model, space, windows(token_stream(Path(data_root), "test", vocabulary), seq_len)


def evaluate_windows(task: WindowTask, out: str, data_root: str, seq_len: int, device: str) -> list[float]:
    """Summed NLL of each of a sub-network's held-out windows: an executor task.

    One torch thread wherever it runs, as the cache's tasks, so the ground truth does not
    depend on the executor; each process loads the super-network once (`load_evaluation`).
    """
    stamp = (Path(out) / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    model, space, held_out = load_evaluation(out, data_root, seq_len, device, stamp)
    with torch_threads():
        return window_nll(model, space, task.choice, held_out[task.start: task.stop], device)


def build_lonas_mini(out: Path, data_root: Path, smoke: bool = False, seed: int = 0, device: str = "cpu",
                     progress: BuildProgress | None = None, executor: Executor | None = None,
                     threads: int | None = None) -> dict:
    """Build (or finish building) lonas-mini into `out`; returns build.json's content. `threads`: torch threads
    of the training stages (default: `build_threads()`, $LPZERO_THREADS or one)."""
    # a bad $LPZERO_THREADS fails now, not after the vocabulary
    threads = build_threads() if threads is None else positive_int(threads, "build_lonas_mini", "threads")
    gpt2_tokenizer(data_root)  # a missing tokenizer fails now, not after training
    size = SIZES["smoke" if smoke else "mini"]
    return Builder(Path(out), data_root, size, seed, device, progress, executor, threads).run()


def _build_and_analyse(out: Path, data_root: Path, smoke: bool, seed: int, device: str,
                       progress: BuildProgress | None, executor: Executor | None) -> dict:
    """`build_lonas_mini`, then the analysis of its ground truth's spread (`spread.record_spread`)."""
    state = build_lonas_mini(out, data_root, smoke, seed, device, progress, executor)
    record_spread(out)
    return state


def _open_as(folder: Path) -> str:
    return "lonas-mini" if folder == Path(LONAS_MINI_DIR) else f"lonas:{folder}"


def _summary(state: dict) -> str:
    truth = state["stages"]["ground_truth"]
    return (f"{truth['subnetworks']} sub-networks, held-out perplexity on {truth['tokens']:,} tokens, split-half "
            f"Spearman {truth['split_half_spearman']:.3f}")


#: `lpzero build lonas-mini` (registered in `lpzero.benchmarks.BUILDS`)
LONAS_MINI = BuildRecipe(LONAS_MINI_DIR, "lonas_mini_smoke", _build_and_analyse, _open_as, _summary)


__all__ = ["BUILD_FILE", "BuildSize", "Builder", "DEFAULT_THREADS", "LONAS_MINI", "SIZES", "THREADS_ENV", "WindowTask",
           "build_lonas_mini", "build_threads", "evaluate_windows", "load_evaluation", "save_model"]
