"""lpzero.checkpoint: versioned atomic checkpoints, settings differences, random states as JSON."""
import json
import random

import numpy as np
import pytest

from lpzero.checkpoint import (CheckpointFormat, differences, numpy_state, random_state, random_state_from_json,
                               read_checkpoint, require_same, set_numpy_state, set_random_state, write_checkpoint)
from lpzero.errors import LPZeroError, ResultError

FORMAT = CheckpointFormat("lpzero test", 2, ("record", "step"))


def test_a_checkpoint_reads_back_what_was_written_with_its_version(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, FORMAT, {"record": {"seed": 1}, "step": 3})
    assert json.loads(path.read_text()) == {"version": 2, "record": {"seed": 1}, "step": 3}
    saved = read_checkpoint(path, FORMAT)
    assert saved["step"] == 3 and saved.read("record", lambda r: r["seed"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]  # no temporary file left


def test_a_checkpoint_of_another_version_is_refused_in_one_line_naming_both(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, CheckpointFormat("lpzero test", 1, FORMAT.keys), {"record": {}, "step": 0})
    with pytest.raises(ResultError) as e:
        read_checkpoint(path, FORMAT)
    assert "version 1" in str(e.value) and "reads version 2" in str(e.value) and "\n" not in str(e.value)
    assert str(path) in str(e.value)


def test_a_file_without_a_version_is_the_formats_unversioned_one(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"record": {}, "step": 0}))
    with pytest.raises(ResultError, match="no version; this lpzero reads version 2"):
        read_checkpoint(path, FORMAT)
    old = CheckpointFormat("lpzero test", 2, FORMAT.keys, unversioned=2)
    assert read_checkpoint(path, old)["step"] == 0


@pytest.mark.parametrize("text, message", [
    ('{"version": 2, "record": {', "not JSON: line 1"),
    ('[1, 2]', "not a JSON object"),
    ('{"version": 2, "record": {}}', "no key 'step'"),
])
def test_a_malformed_file_is_named(tmp_path, text, message):
    path = tmp_path / "checkpoint.json"
    path.write_text(text)
    with pytest.raises(ResultError, match=message) as e:
        read_checkpoint(path, FORMAT)
    assert str(e.value).startswith(str(path))


def test_a_value_of_the_wrong_form_names_the_file_and_key(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, FORMAT, {"record": {}, "step": "three"})
    saved = read_checkpoint(path, FORMAT)
    with pytest.raises(ResultError, match=r"checkpoint.json: damaged checkpoint \(key 'step': ValueError") as e:
        saved.read("step", int)
    assert isinstance(e.value, LPZeroError)
    with pytest.raises(ResultError, match="key 'record'"):
        saved.read("record", random_state_from_json)


def test_differences_say_what_was_then_and_what_is_now():
    saved = {"settings": {"seed": 42, "iterations": 100, "shape": [1, 2]}, "proxy": {"name": "a"}}
    now = {"settings": {"seed": 7, "iterations": 200, "shape": (1, 2)}, "proxy": {"name": "a"}, "holdout": 0.5}
    assert differences(saved, now, ["settings.iterations"]) == [
        "holdout was absent then, 0.5 now",
        "settings.seed was 42 then, 7 now",
    ]  # the tuple is the list JSON stored; the iterations may change
    assert differences(saved, now) == ["holdout was absent then, 0.5 now", "settings.iterations was 100 then, 200 now",
                                       "settings.seed was 42 then, 7 now"]
    long = differences({"ids": list(range(100))}, {"ids": list(range(99))})
    assert len(long) == 1 and long[0].startswith("ids was [0, 1, 2") and len(long[0]) < 160


def test_require_same_refuses_every_change_but_the_allowed_ones(tmp_path):
    require_same(tmp_path, {"a": 1, "n": 5}, {"a": 1, "n": 9}, ["n"])
    with pytest.raises(ResultError, match=r"written with other settings.*\(a was 1 then, 2 now\)"):
        require_same(tmp_path, {"a": 1, "n": 5}, {"a": 2, "n": 9}, ["n"])


def test_random_state_round_trips_through_json():
    random.seed(5)
    saved = json.loads(json.dumps(random_state()))
    first = [random.random() for _ in range(5)]
    set_random_state(saved)
    assert [random.random() for _ in range(5)] == first
    with pytest.raises(ValueError):
        random_state_from_json([3, [1, 2, 3], None])  # too short for Python's generator


@pytest.mark.parametrize("make", [lambda: np.random.default_rng(3), lambda: np.random.Generator(np.random.MT19937(3)),
                                  lambda: np.random.RandomState(3)])
def test_numpy_state_round_trips_through_json(make):
    rng = make()
    saved = json.loads(json.dumps(numpy_state(rng)))
    first = rng.random(4)
    set_numpy_state(rng, saved)
    assert np.array_equal(rng.random(4), first)
