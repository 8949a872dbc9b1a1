import pytest
from deap import gp

from lpzero.search.rps import RPSLog, rps_guard, violations
from lpzero.primitives import default_pset

PSET = default_pset()


def tree(text):
    return gp.PrimitiveTree.from_string(text, PSET)


@pytest.mark.parametrize("text, kind", [
    ("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(exp__Tw(log__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(sqrt__Tw(square__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(square__Tw(sqrt__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(softmax__Tw(log_softmax__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(abs__Tw(square__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(neg__Tw(neg__Tw(W))))", "redundant"),
    ("layer_sum__Lw(mean__Tw(log__Tw(neg__Tw(W))))", "undefined"),
    ("layer_sum__Lw(mean__Tw(sqrt__Tw(neg__Tw(W))))", "undefined"),
    ("layer_sum__Lw(mean__Tw(reciprocal__Tw(relu__Tw(W))))", "undefined"),
    ("div__s(layer_sum__Lw(l1__Tw(W)), std__Lw(l1__Tw(G)))", "undefined"),
    ("sub__s(layer_sum__Lw(l1__Tw(W)), layer_sum__Lw(l1__Tw(W)))", "redundant"),
])
def test_rps_rejects_table_11_pairs(text, kind):
    found = violations(tree(text))
    assert found and any(v.kind == kind for v in found), found
    assert all(str(v).startswith(v.kind) and v.key.startswith(v.kind) for v in found)


def test_rps_accepts_a_clean_proxy():
    assert violations(tree("add__s(layer_sum__Lw(l1__Tw(mul__Tw(W, G))), layer_sum__La(std__Ta(A)))")) == []


def test_the_log_counts_rules_by_pair():
    log = RPSLog()
    log.record(violations(tree("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))")))
    log.record(violations(tree("layer_sum__Lw(mean__Tw(log__Tw(neg__Tw(W))))")))
    assert log.to_dict() == {"rejected": 2, "gave_up": 0, "reasons": {"redundant: log∘exp (cancels)": 1,
                                                                      "undefined: log∘neg (domain)": 1}}
    restored = RPSLog()
    restored.restore(log.to_dict())
    assert restored == log


def test_guard_regenerates_until_accepted():
    bad, good = tree("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))"), tree("layer_sum__Lw(l1__Tw(W))")
    outputs = iter([(bad,), (bad,), (good,)])
    log = RPSLog()
    guarded = rps_guard(log)(lambda ind: next(outputs))
    (child,) = guarded(good)
    assert str(child) == str(good) and log.rejected == 2 and log.gave_up == 0


def test_guard_gives_up_with_parents_unchanged():
    bad, parent = tree("layer_sum__Lw(mean__Tw(log__Tw(exp__Tw(W))))"), tree("layer_sum__Lw(l1__Tw(W))")
    log = RPSLog()
    (child,) = rps_guard(log, max_tries=3)(lambda ind: (bad,))(parent)
    assert child is parent and log.rejected == 3 and log.gave_up == 1
