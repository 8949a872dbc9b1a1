"""From the op table to a DEAP `PrimitiveSetTyped`, and typed tree generation.

Each op is instantiated once per type it applies to; the instance is named
`<op>__<type code>` (e.g. `mean__Tw`: the mean of each weight tensor), so
`op_and_type(name)` recovers the table entry from any node of a tree.
"""
from __future__ import annotations

import functools
import random
import re
from collections import deque
from typing import Iterable

from deap import gp

from .op import Kind, Op, OpTable, PrimitiveError
from .types import ALL_TYPES, INPUTS, TYPES_BY_CODE, InputSpec, ProxyType, Scalar, reduced_type


def signature(op: Op, t: type[ProxyType]) -> tuple[list[type[ProxyType]], type[ProxyType]]:
    """(argument types, return type) of `op` applied to values of type `t`."""
    if op.kind == Kind.REDUCE:
        return [t], reduced_type(t)
    return [t] * op.arity, t


def instance_name(op: Op, t: type[ProxyType]) -> str:
    return f"{op.name}__{t.code}"


def op_and_type(name: str, ops: OpTable) -> tuple[Op, type[ProxyType]]:
    """The table entry and argument type behind a primitive instance name."""
    op_name, _, code = name.rpartition("__")
    if not op_name or code not in TYPES_BY_CODE:
        raise PrimitiveError(f"{name!r} is not a primitive instance name")
    return ops[op_name], TYPES_BY_CODE[code]


def build_primitive_set(ops: OpTable, inputs: Iterable[InputSpec] = INPUTS) -> gp.PrimitiveSetTyped:
    """A typed primitive set over `inputs` with every typed op of `ops`.

    Compiled trees are functions of the inputs in `INPUTS` order, named by their
    symbols (A, J, G, H, W, S), returning one score per architecture.
    """
    inputs = list(inputs)
    pset = gp.PrimitiveSetTyped("proxy", [spec.type for spec in inputs], Scalar)
    pset.renameArguments(**{f"ARG{i}": spec.symbol for i, spec in enumerate(inputs)})
    input_families = {spec.type.family for spec in inputs}
    for op in ops:
        if not op.typed:
            continue
        for t in ALL_TYPES:
            if t.level not in op.levels or (t.family and t.family not in input_families):
                continue
            args, ret = signature(op, t)
            pset.addPrimitive(op.runtime(t.level), args, ret, name=instance_name(op, t))
    return pset


def parse_tree(text: str, pset: gp.PrimitiveSetTyped) -> gp.PrimitiveTree:
    """The typed tree written as `text` (as `str(tree)` prints it), checked to score architectures.

    PrimitiveError names the problem: an unknown op or input, a malformed expression,
    argument types that do not fit, or a tree that does not return one score.
    """
    if not isinstance(text, str) or not text.strip():
        raise PrimitiveError(f"empty proxy tree {text!r}")
    if text.count("(") != text.count(")"):
        raise PrimitiveError(f"cannot parse proxy tree {text!r}: unbalanced parentheses")
    _check_types(text, pset)
    try:
        tree = gp.PrimitiveTree.from_string(text, pset)
    except (KeyError, TypeError, IndexError, AttributeError, SyntaxError) as e:
        raise PrimitiveError(f"cannot parse proxy tree {text!r}: {e}") from None
    # DEAP's parser checks types but ignores parentheses: a tree that does not print back as
    # `text` has arguments missing or left over
    try:
        printed = str(tree)
    except IndexError:
        printed = None
    if printed is None or printed.replace(" ", "") != text.replace(" ", ""):
        raise PrimitiveError(f"cannot parse proxy tree {text!r}: wrong number of arguments")
    if tree[0].ret is not pset.ret:
        raise PrimitiveError(f"proxy tree {text!r} returns {tree[0].ret.__name__}, not one score per "
                             f"architecture ({pset.ret.__name__})")
    return tree


def _check_types(text: str, pset: gp.PrimitiveSetTyped) -> None:
    """PrimitiveError naming the first node whose type does not fit the argument it is given as, walking
    the tokens as DEAP's parser does (its own message prints `<deap.gp.Primitive object at 0x...>`).
    Unknown tokens are left to DEAP's parser, which names them."""
    expected: deque[tuple[type, str, int]] = deque()  # (type, the op that takes it, argument position)
    for token in re.split(r"[ \t\n\r\f\v(),]", text):
        if not token:
            continue
        want = expected.popleft() if expected else None
        node = pset.mapping.get(token)
        if node is None:
            return
        if want is not None and not issubclass(node.ret, want[0]):
            raise PrimitiveError(f"cannot parse proxy tree {text!r}: argument {want[2] + 1} of {want[1]} must be "
                                 f"{want[0].__name__}, not {token} ({node.ret.__name__})")
        if isinstance(node, gp.Primitive):
            expected.extendleft(reversed([(arg, token, i) for i, arg in enumerate(node.args)]))


def tree_inputs(tree: gp.PrimitiveTree) -> set[str]:
    """The input symbols (A, J, G, H, W, S) a tree reads."""
    return {node.value for node in tree if isinstance(node, gp.Terminal) and isinstance(node.value, str)}


@functools.lru_cache(maxsize=8)
def _min_heights(pset: gp.PrimitiveSetTyped) -> dict[type, int]:
    """Smallest subtree height that yields each type (0 where a terminal exists)."""
    inf = float("inf")
    height = {t: (0 if pset.terminals.get(t) else inf) for t in set(pset.primitives) | set(pset.terminals)}
    changed = True
    while changed:
        changed = False
        for ret, prims in pset.primitives.items():
            for p in prims:
                h = 1 + max(height.get(a, inf) for a in p.args)
                if h < height.get(ret, inf):
                    height[ret] = h
                    changed = True
    return height


def can_build(pset: gp.PrimitiveSetTyped, type_: type | None = None) -> bool:
    """Whether any tree of `type_` (default: the set's return type, one score per architecture) can be built
    from `pset`: an op table without reductions reaches no score from its inputs."""
    return _min_heights(pset).get(pset.ret if type_ is None else type_, float("inf")) < float("inf")


def generate_typed(
    pset: gp.PrimitiveSetTyped,
    min_: int,
    max_: int,
    type_: type | None = None,
    terminal_prob: float = 0.5,
    rng: random.Random | None = None,
) -> list:
    """A random typed tree (as a DEAP prefix list) of height in [min_, max_].

    Unlike `gp.genGrow`, it knows that some types (per-layer values, scalars) have no
    terminals and must be reached through reductions, so it never asks for a
    terminal that does not exist. Below the drawn height it stops at a terminal
    with probability `terminal_prob` (grow); pass 0 for full-depth trees.
    """
    rng = rng or random
    type_ = pset.ret if type_ is None else type_
    need = _min_heights(pset)
    if not can_build(pset, type_):
        raise PrimitiveError(f"no tree of type {type_.__name__} can be built from this primitive set")
    height = max(rng.randint(min_, max_), need[type_])
    expr: list = []
    stack = [(0, type_)]
    while stack:
        depth, t = stack.pop()
        budget = height - depth
        terminals = pset.terminals.get(t, [])
        if terminals and (budget <= 0 or (depth >= min_ and rng.random() < terminal_prob)):
            term = rng.choice(terminals)
            expr.append(term() if isinstance(term, type) else term)
            continue
        fitting = [p for p in pset.primitives.get(t, []) if 1 + max(need[a] for a in p.args) <= max(budget, need[t])]
        if not fitting:  # a type no op yields (an input of a table without elementwise ops): the tree stops here
            term = rng.choice(terminals)
            expr.append(term() if isinstance(term, type) else term)
            continue
        prim = rng.choice(fitting)
        expr.append(prim)
        for arg in reversed(prim.args):
            stack.append((depth + 1, arg))
    return expr
