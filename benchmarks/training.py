"""The training loop of lpzero's builds (lonas-mini, neox-mini): AdamW, cosine schedule, random windows of
a token stream, resumable.

A run is checkpointed every `CHECKPOINT_EVERY` steps; a run that finds a checkpoint
continues from it (weights, optimizer, schedule and both random generators), so an
interrupted run ends with the weights an uninterrupted one has. The checkpoint format
lives in `save_training_checkpoint` / `load_training_checkpoint` only.
"""
from __future__ import annotations

import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from lpzero.checkpoint import CheckpointFormat, check_record, versioned
from lpzero.errors import ResultError
from lpzero.files import atomic_write

from .base import BenchmarkError

#: steps between two checkpoints
CHECKPOINT_EVERY = 100
#: a training stage's checkpoint (`<stage>.checkpoint.pt`, torch-saved: it holds tensors); files of
#: lpzero versions before the format was versioned are version 1
TRAINING_CHECKPOINT = CheckpointFormat("lpzero LoNAS training", 1,
                                       ("model", "optimizer", "schedule", "batches", "rng", "step", "loss"),
                                       unversioned=1)

#: the loss of one step: (a batch of token windows [B, T], the run's own generator) -> scalar
LossOf = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainingPlan:
    """What a run does: `steps` of `batch_size` windows of `seq_len` tokens, peak learning rate `lr`.

    Batches are drawn from `seed + 10`, the loss's generator (e.g. random sub-networks)
    from `seed + 20`. `name` names the run in errors.
    """

    name: str
    steps: int
    lr: float
    seq_len: int
    batch_size: int
    seed: int
    device: str = "cpu"


@dataclass
class TrainingState:
    """Everything a resumed run needs back; `saved(name)` picks the model entries a checkpoint keeps."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    batches: torch.Generator
    rng: np.random.Generator
    saved: Callable[[str], bool]


@dataclass(frozen=True)
class TrainingResult:
    """The last step's loss, and the seconds spent before the run was resumed (0 if it was not)."""

    loss: float
    earlier_seconds: float


def train(model: nn.Module, params: list[nn.Parameter], loss_of: LossOf, stream: torch.Tensor, plan: TrainingPlan,
          checkpoint: Path, saved: Callable[[str], bool] = lambda name: True,
          on_step: Callable[[int], None] | None = None, keep_checkpoint: bool = False) -> TrainingResult:
    """Train `params` of `model` by `plan` on random windows of `stream`; the model is left in eval mode.

    `checkpoint` is the run's checkpoint file (resumed from if present, removed at the
    end unless `keep_checkpoint`: a caller that still has to save the model removes it
    once it has); `saved` picks the `state_dict` entries it keeps (the trained ones);
    `on_step` gets the number of finished steps after each.
    """
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.01)
    steps = plan.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    state = TrainingState(model, optimizer, schedule, torch.Generator().manual_seed(plan.seed + 10),
                          np.random.default_rng(plan.seed + 20), saved)
    start, loss, earlier = 0, float("nan"), 0.0
    started = time.perf_counter()
    if checkpoint.is_file():
        start, loss, earlier = load_training_checkpoint(checkpoint, state, plan.device)
    model.train()
    for i in range(start, steps):
        starts = torch.randint(0, len(stream) - plan.seq_len - 1, (plan.batch_size,), generator=state.batches)
        batch = torch.stack([stream[j: j + plan.seq_len] for j in starts.tolist()]).to(plan.device)
        value = loss_of(batch, state.rng)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        loss = value.item()
        if not math.isfinite(loss):
            raise BenchmarkError(f"{plan.name}: the training loss became {loss} at step {i}")
        if on_step is not None:
            on_step(i + 1)
        if (i + 1) % CHECKPOINT_EVERY == 0 and i + 1 < steps:
            save_training_checkpoint(checkpoint, state, i + 1, loss, earlier + time.perf_counter() - started)
    model.eval()
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    return TrainingResult(loss, earlier)


def save_training_checkpoint(path: Path, state: TrainingState, step: int, loss: float, seconds: float) -> None:
    """Write the run's state after `step` finished steps (atomically: an interruption keeps the last one)."""
    data = {"model": {k: v for k, v in state.model.state_dict().items() if state.saved(k)},
            "optimizer": state.optimizer.state_dict(), "schedule": state.schedule.state_dict(),
            "batches": state.batches.get_state(), "rng": state.rng.bit_generator.state, "step": step, "loss": loss,
            "seconds": seconds}
    record = versioned(TRAINING_CHECKPOINT, data)
    atomic_write(path, lambda tmp: torch.save(record, tmp))


def load_training_checkpoint(path: Path, state: TrainingState, device: str) -> tuple[int, float, float]:
    """Restore `state` from `path`; returns (finished steps, last loss, seconds spent so far).

    A damaged or foreign file is one error naming it (delete it and the stage starts afresh).
    """
    try:
        data = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as e:
        raise ResultError(f"{path}: damaged training checkpoint ({type(e).__name__}: {e}); delete it to train "
                          "the stage afresh") from None
    saved = check_record(path, TRAINING_CHECKPOINT, data)
    saved.read("model", _loading(lambda v: state.model.load_state_dict(v, strict=False)))
    saved.read("optimizer", _loading(state.optimizer.load_state_dict))
    saved.read("schedule", _loading(state.schedule.load_state_dict))
    saved.read("batches", _loading(state.batches.set_state))
    saved.read("rng", _loading(lambda v: setattr(state.rng.bit_generator, "state", v)))
    return saved.read("step", _count), saved.read("loss", float), saved.read("seconds", float) if "seconds" in saved \
        else 0.0


def _count(value: object) -> int:
    """A number of finished steps: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a number of steps")
    return value


def _loading(load: Callable[[object], object]) -> Callable[[object], None]:
    """`load` whose RuntimeError (torch's word for a tensor of another shape or type) is a one-line ValueError,
    so `Checkpoint.read` names the file and key of the value that did not fit."""
    def convert(value: object) -> None:
        try:
            load(value)
        except RuntimeError as e:
            raise ValueError(" ".join(str(e).split())) from None
    return convert
