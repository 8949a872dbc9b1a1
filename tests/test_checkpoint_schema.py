"""A checkpoint whose values have the wrong form (a nas memo entry, a random state, a LoNAS training
checkpoint's tensors) is one line naming the file and the key, never a traceback halfway through a resume."""
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lpzero.benchmarks.training import TrainingState, load_training_checkpoint, save_training_checkpoint
from lpzero.checkpoint import random_state, random_state_from_json, write_checkpoint
from lpzero.cli import main
from lpzero.errors import ResultError
from lpzero.nas.nsga import NAS_CHECKPOINT, load_checkpoint

KEY = '{"n_embd":16}'
ENTRY = {"score": 1.5, "feasible": True, "violation": 0.0, "params": 100}
RECORD = {"space": "tiny", "settings": {"costs": ["params"]}}


def _nas_checkpoint(path, **changes):
    entry = {k: v for k, v in {**ENTRY, **changes}.items() if v is not ...}
    # written as JSON by hand: a damaged entry is what no CandidateResult would write
    write_checkpoint(path, NAS_CHECKPOINT, {"record": RECORD, "generation": 0, "population": [],
                                            "random_state": random_state(), "log": [], "memo": {KEY: entry}})
    return path


def test_a_nas_resume_from_a_memo_entry_without_a_score_is_one_line_naming_file_and_key(tmp_path):
    out = tmp_path / "nas"
    out.mkdir()
    _nas_checkpoint(out / "checkpoint.json", score=...)
    result = CliRunner().invoke(main, ["nas", "--space", "test_nas_search:TinySpace", "--proxy", "num_params",
                                       "--out", str(out), "--resume"])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "checkpoint.json" in message and "key 'memo'" in message and "'score'" in message


@pytest.mark.parametrize("changes, message", [
    ({"score": "high"}, "score 'high' is not a number or null"),
    ({"feasible": "yes"}, "feasible 'yes' is not true or false"),
    ({"params": ...}, "has no 'params'"),
    ({"violation": None}, "violation None is not a number"),
])
def test_a_memo_entry_of_the_wrong_form_is_named(tmp_path, changes, message):
    path = _nas_checkpoint(tmp_path / "checkpoint.json", **changes)
    with pytest.raises(ResultError, match=f"checkpoint.json: damaged checkpoint \\(key 'memo'.*{message}"):
        load_checkpoint(path)


@pytest.mark.parametrize("change", [
    lambda s: s[1].__setitem__(0, 2 ** 40),  # random.setstate would take it modulo 2**32: another state
    lambda s: s.__setitem__(2, "x"),
])
def test_a_random_state_of_the_wrong_form_is_refused(change):
    state = random_state()
    change(state)
    with pytest.raises(TypeError):
        random_state_from_json(state)
    random.random()  # the process's own state is untouched


def _training_state() -> TrainingState:
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    return TrainingState(model, optimizer, schedule, torch.Generator().manual_seed(1), np.random.default_rng(2),
                         lambda name: True)


def test_a_training_checkpoint_with_a_tensor_of_another_shape_is_named(tmp_path):
    path = tmp_path / "lora.checkpoint.pt"
    save_training_checkpoint(path, _training_state(), 100, 1.5, 3.0)
    saved = torch.load(path, weights_only=False)
    saved["model"] = {"weight": torch.zeros(3, 3)}
    torch.save(saved, path)
    with pytest.raises(ResultError, match=r"lora\.checkpoint\.pt: damaged checkpoint \(key 'model': .*size mismatch") \
            as e:
        load_training_checkpoint(path, _training_state(), "cpu")
    assert "\n" not in str(e.value)
