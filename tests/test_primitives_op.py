"""lpzero.primitives: the op table refuses bad declarations, trees read back from their text, and op
tables are named plugins (`op_table`), each with its primitive set (`pset_of`)."""
from importlib.metadata import EntryPoint

import pytest
import sympy
import torch

import lpzero.registry
from lpzero.errors import LPZeroError
from lpzero.primitives import (OP_TABLES, OPS, Kind, Level, OpTable, PrimitiveError, UnknownOpError, default_pset,
                               op_table, op_table_path, parse_tree, pset_of, tree_inputs)
from lpzero.primitives.op import Op, probe


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
    r = OpTable()
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


# --- op tables as named plugins ------------------------------------------------------------

#: a table of this module, as another package's entry point would name it
EXTRA = OPS.copy()
EXTRA.add(Op("cube", "x02", "elementwise", ("tensors", "layers", "scalar"), lambda x: x * x * x, lambda x: x**3,
             "x^3"))


def test_the_built_in_table_is_default_and_reads_as_no_path():
    assert op_table() is OPS and op_table("default") is OPS and OP_TABLES.get("default") is OPS
    assert "default" in OP_TABLES.names() and OP_TABLES.group == "lpzero.ops"
    assert op_table_path(OPS) is None


def test_each_table_has_its_own_primitive_set_built_once():
    assert pset_of(OPS) is default_pset() is pset_of(OPS)
    assert pset_of(EXTRA) is pset_of(EXTRA) and pset_of(EXTRA) is not default_pset()
    assert str(parse_tree("layer_sum__Lw(cube__Lw(l1__Tw(W)))", pset_of(EXTRA))) == "layer_sum__Lw(cube__Lw(l1__Tw(W)))"
    with pytest.raises(PrimitiveError):
        parse_tree("layer_sum__Lw(cube__Lw(l1__Tw(W)))", default_pset())


def test_a_copy_leaves_the_original_and_a_table_remembers_where_it_was_loaded_from(monkeypatch):
    assert "cube" in EXTRA and "cube" not in OPS and len(EXTRA) == len(OPS) + 1
    ep = EntryPoint("extra", f"{__name__}:EXTRA", "lpzero.ops")
    monkeypatch.setattr(lpzero.registry, "entry_points", lambda group: [ep] if group == ep.group else [])
    assert op_table("extra") is EXTRA and op_table_path(EXTRA) == "extra"
    assert op_table(f"{__name__}:EXTRA") is EXTRA


def test_a_table_no_new_process_could_import_is_refused():
    with pytest.raises(PrimitiveError, match="no path a new process can import it from"):
        op_table_path(OPS.copy())
    assert op_table_path(OPS.copy(path="mymod:TABLE")) == "mymod:TABLE"


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "unknown op table 'nosuch' \\(known: default"),
    ("nosuch_module_q:OPS", "module 'nosuch_module_q' cannot be imported"),
    ("lpzero.primitives:INPUTS", "is not an op table"),
])
def test_an_unknown_table_is_one_line(spec, message):
    with pytest.raises(LPZeroError, match=message):
        op_table(spec)
