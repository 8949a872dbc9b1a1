"""LoNAS training checkpoints go through lpzero.checkpoint: versioned, and a damaged one is one error."""
from __future__ import annotations

import pytest
import torch

from lpzero.benchmarks.training import TRAINING_CHECKPOINT, load_training_checkpoint
from lpzero.checkpoint import VERSION_KEY
from lpzero.errors import ResultError


def test_a_truncated_training_checkpoint_is_named_before_anything_is_restored(tmp_path):
    path = tmp_path / "pretrain.checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(64, 64)}, "step": 3}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ResultError, match=r"pretrain\.checkpoint\.pt: damaged training checkpoint .*delete it"):
        load_training_checkpoint(path, state=None, device="cpu")  # fails before touching the state


def test_a_training_checkpoint_of_another_version_is_refused_naming_both(tmp_path):
    path = tmp_path / "lora.checkpoint.pt"
    torch.save({VERSION_KEY: 2, **{k: 0 for k in TRAINING_CHECKPOINT.keys}}, path)
    with pytest.raises(ResultError, match="checkpoint of version 2; this lpzero reads version 1"):
        load_training_checkpoint(path, state=None, device="cpu")
