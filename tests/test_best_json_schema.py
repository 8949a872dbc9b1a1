"""best.json is checked at load: valid JSON of the wrong shape is one ResultError naming the key."""
from __future__ import annotations

import json

import pytest

from lpzero.errors import ResultError
from lpzero.proxies import FoundProxy

TREE = "layer_sum__Lw(frobenius__Tw(G))"


def _best(tmp_path, **changes):
    best = {"tree": TREE, "primitive_set_version": "1", "orientation": 1, **changes}
    path = tmp_path / "best.json"
    path.write_text(json.dumps(best))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"protection": "all"}, "'protection' must be a list of objects"),
    ({"protection": [1, 2]}, "'protection' must be a list of objects"),
    ({"orientation": True}, "orientation must be 1 or -1, not True"),
    ({"split": [1]}, "'split' must be an object"),
    ({"split": None}, "'split' must be an object"),
    ({"benchmark": 3}, "'benchmark' must be a name"),
    ({"tree": 5}, "'tree' must be a tree's text"),
    ({"primitive_set_version": 1}, "version 1, this lpzero has '1'"),
    ({"primitive_set_version": "0"}, "version 0, this lpzero has 1"),
    ({"tree": "abs__s(" * 5000 + "layer_sum__Lw(frobenius__Tw(G))" + ")" * 5000}, "'tree' must be a tree's text"),
    ({"tree": "abs__s(" * 120 + "layer_sum__Lw(frobenius__Tw(G))" + ")" * 120}, "nested deeper than"),
])
def test_wrong_shapes_are_named(tmp_path, changes, message):
    with pytest.raises(ResultError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FoundProxy.load(_best(tmp_path, **changes))


def test_a_well_formed_best_json_loads(tmp_path):
    assert FoundProxy.load(_best(tmp_path)).tree == TREE
