"""lpzero.primitives: the op table refuses bad declarations, and trees read back from their text."""
import pytest
import sympy
import torch

from lpzero.primitives import (OPS, Kind, Level, OpRegistry, PrimitiveError, UnknownOpError, default_pset, parse_tree,
                               tree_inputs)
from lpzero.primitives.registry import Op, probe


def test_kinds_and_levels_are_values_not_strings_to_compare():
    assert OPS["mean"].kind is Kind.REDUCE and OPS["log"].levels == (Level.TENSORS, Level.LAYERS, Level.SCALAR)
    with pytest.raises(PrimitiveError, match="'sideways' is not a valid Kind"):
        Op("bad", "f97", "sideways", ("scalar",), torch.neg, lambda a: -a, "test")


def test_an_unknown_op_names_the_known_ones():
    with pytest.raises(UnknownOpError, match="unknown op 'nosuch' \\(known: log, abslog"):
        OPS["nosuch"]


@pytest.mark.parametrize("fn, message", [
    (lambda x: torch.log(x), "non-finite values on zeros"),
    (lambda x: x.mul_(2), "modifies its argument"),
    (lambda x: torch.exp(x), "non-finite values on large values"),
])
def test_an_op_is_probed_when_registered(fn, message):
    r = OpRegistry()
    with pytest.raises(PrimitiveError, match=message):
        r.add(Op("raw", "f99", "elementwise", ("tensors", "scalar"), fn, sympy.log, "unprotected"))
    assert "raw" not in r


@pytest.mark.parametrize("op", list(OPS), ids=lambda op: op.name)
def test_every_op_of_the_table_passes_its_probe(op):
    probe(op)  # finite on zeros, negatives, large and tiny values at every level, input untouched


@pytest.mark.parametrize("text, message", [
    ("", "empty proxy tree"),
    ("layer_sum__Lw(l1__Tw(W)", "unbalanced parentheses"),
    ("layer_sum__Lw(l1__Tw(W, W))", "wrong number of arguments"),
    ("layer_sum__Lw(nosuch__Tw(W))", "cannot parse proxy tree"),
    ("layer_sum__Lw(l1__Tw(A))", "cannot parse proxy tree"),  # A is not a weight tensor
    ("l1__Tw(W)", "returns WeightLayers, not one score per architecture"),
])
def test_a_malformed_tree_is_refused_with_the_reason(text, message):
    with pytest.raises(PrimitiveError, match=message):
        parse_tree(text, default_pset())


def test_a_tree_reads_back_from_its_text():
    text = "add__s(layer_sum__Lw(l1__Tw(mul__Tw(W, G))), layer_sum__La(std__Ta(A)))"
    tree = parse_tree(text, default_pset())
    assert str(tree) == text and tree_inputs(tree) == {"W", "G", "A"}
