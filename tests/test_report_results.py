"""lpzero.report.results: best.json is checked before anything uses it."""
import json

import pytest

from lpzero.errors import ResultError
from lpzero.report.results import PRIMITIVE_SET_VERSION, check_benchmark, load_best, split_ids

GOOD = {"tree": "layer_sum__Lw(l1__Tw(W))", "primitive_set_version": PRIMITIVE_SET_VERSION, "benchmark": "gpt2",
        "split": {"search_ids": ["a", "b"], "heldout_ids": ["c"]}}


def write(tmp_path, content):
    path = tmp_path / "best.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_good_file_loads_and_a_folder_means_its_best_json(tmp_path):
    write(tmp_path, GOOD)
    assert load_best(tmp_path) == GOOD


@pytest.mark.parametrize("content, message", [
    ("not json", "malformed JSON \\(line 1\\)"),
    ([GOOD], "a JSON list, not an object"),
    ({"tree": "x"}, "no 'primitive_set_version'"),
    ({**GOOD, "primitive_set_version": "0"}, "primitive set version 0"),
    ({**GOOD, "lpzero_best_version": 2}, "layout version 2"),
    ({**GOOD, "orientation": 0}, "orientation must be 1 or -1"),
])
def test_load_best_names_what_is_wrong(tmp_path, content, message):
    with pytest.raises(ResultError, match=message):
        load_best(write(tmp_path, content))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ResultError, match="nope.json: file not found"):
        load_best(tmp_path / "nope.json")


def test_a_proxy_is_checked_against_the_benchmark_it_was_found_on():
    check_benchmark(GOOD, "gpt2", "best.json")
    with pytest.raises(ResultError, match="found on 'gpt2', not 'flexibert'"):
        check_benchmark(GOOD, "flexibert", "best.json")


def test_split_ids_keeps_the_selection_order_and_refuses_strangers():
    assert split_ids(GOOD, "search", ["b", "c", "a"]) == ["b", "a"]
    assert split_ids(GOOD, "all", ["b", "c"]) == ["b", "c"]
    with pytest.raises(ResultError, match="outside the selection: c"):
        split_ids(GOOD, "heldout", ["a", "b"])
