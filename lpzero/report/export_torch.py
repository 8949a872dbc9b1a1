"""A found proxy as a standalone torch module, and as a sympy `srepr` string (`lpzero export --format`).

`torch_module(proxy)` writes Python source that imports only torch and the standard library. It
holds the proxy's tree as a `lpzero.primitives.program.Program` literal and the source of what
evaluating it needs, copied from lpzero itself: the op table's own functions (`Op.torch_fn`,
guards included, and the runtime wrappers of `Op.runtime`) and the row evaluator (`RowProgram`),
so the module scores exactly as `FoundProxy.score_inputs` does and an op of any table, a custom
one included, exports with no second table to keep in step.

`_Bundle` collects that source with `inspect`: each object's source, then, recursively, whatever
global names it uses (found by `symtable`): lpzero functions and classes by their source, module-
level constants as `NAME = value`, torch and standard-library objects by import. It refuses, in
one line, what has no such source (a lambda, a closure, a callable object, a non-literal constant)
and two different objects that would take the same name.
"""
from __future__ import annotations

import builtins
import dataclasses
import functools
import inspect
import math
import symtable
import sys
import textwrap
import types

import sympy
import torch

from lpzero.errors import LPZeroError
from lpzero.primitives import OpTable
from lpzero.primitives.program import Program, Row, RowProgram, Step, compile_tree
from lpzero.proxies.found_proxy import FoundProxy

from .export import simplify, tree_to_sympy
from .protection import active_nodes

#: where a torch builtin is looked for, to be written by its public path (`torch.nn.functional.softplus`)
TORCH_NAMESPACES = ("torch", "torch.nn.functional", "torch.special", "torch.linalg", "torch.fft")
#: names the exported module defines itself
RESERVED = ("annotations", "_STAND_IN", "proxy", "proxy_rows", "PROGRAM", "ROWS", "READS", "ORIENTATION",
            "_tensor_of", "_sampled_row", "_score")

#: what the reserved names are bound to in `_Bundle.bound`
_RESERVED = object()

_HEADER = '''"""Proxy exported by `lpzero export --format torch`: {formula}

Tree: {tree}
Op table: {table}

proxy(A, J, G, H, W, S): the score of one architecture; each argument a list, one entry per layer, of
tensors or of objects with a `.tensor` (lpzero's `extract_inputs` lists); unused ones may be None.
proxy_rows(A, J, G, H, W, S): the same on sampled rows, each entry (values, weights[, present]).
Generated from lpzero's op table and evaluator; edit the tree, not this file.
"""
from __future__ import annotations

import sys
import types

# dataclasses look a class's module up in sys.modules while making the class; a module loaded with
# importlib's `exec_module` alone is not there, so a stand-in is, until the classes below exist
_STAND_IN = None if __name__ in sys.modules else sys.modules.setdefault(__name__, types.ModuleType(__name__))

'''

_ENTRY_POINTS = '''

if _STAND_IN is not None and sys.modules.get(__name__) is _STAND_IN:
    del sys.modules[__name__]

PROGRAM = {program}
ROWS = RowProgram(PROGRAM)
#: the inputs the tree reads
READS = {reads!r}
ORIENTATION = {orientation!r}


def _tensor_of(x):
    # lpzero's LayerTensor gives its tensor (in float32) as `.tensor`
    return torch.as_tensor(x.tensor if hasattr(x, "tensor") else x).detach()


def _sampled_row(row):
    # one layer as lpzero's cache keeps it: (values, weights) or (values, weights, present)
    return Row(*(torch.as_tensor(part).detach() for part in row))


def _score(given, as_row):
    rows = {{}}
    for name in READS:
        if given[name] is None:
            raise ValueError(f"proxy input {{name}} is None: this proxy reads it (an architecture without any: [])")
        rows[name] = [as_row(x) for x in given[name]]
    return float(ORIENTATION * ROWS(rows)[0])


def proxy(A, J, G, H, W, S):
    """The score of one architecture (higher = better), as lpzero computes it on full tensors."""
    return _score(dict(A=A, J=J, G=G, H=H, W=W, S=S), lambda x: Row(_tensor_of(x)))


def proxy_rows(A, J, G, H, W, S):
    """The score of one architecture from sampled rows (values, weights[, present]) per layer."""
    return _score(dict(A=A, J=J, G=G, H=H, W=W, S=S), _sampled_row)
'''


def _external(module: str | None) -> bool:
    """Whether objects of `module` are imported by the exported module rather than copied into it."""
    root = (module or "builtins").partition(".")[0]
    return root == "torch" or root in sys.stdlib_module_names


def _literal(value: object) -> str | None:
    """`value` as Python source, for a constant (None if it is not one; a subclass, such as numpy's
    float64, is not: its repr is not Python)."""
    if type(value) is float and not math.isfinite(value):
        return f"float({str(value)!r})"
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return repr(value)
    if type(value) in (tuple, frozenset):
        items = [_literal(v) for v in value]
        if None in items:
            return None
        inner = ", ".join(items) + ("," if len(items) == 1 else "")
        return f"({inner})" if type(value) is tuple else f"frozenset(({inner}))"
    return None


def _public_path(obj: object) -> tuple[str, str] | None:
    """(module, attribute) under which a torch or standard-library object can be imported: a public
    torch namespace first (torch.nn.functional.softplus, not torch._C._nn.softplus), else its module."""
    name, module = getattr(obj, "__name__", None), getattr(obj, "__module__", None)
    if not isinstance(name, str) or not _external(module):
        return None
    private = module is None or any(part.startswith("_") for part in module.split("."))
    for candidate in TORCH_NAMESPACES + (() if private else (module,)):
        if getattr(sys.modules.get(candidate), name, None) is obj:
            return candidate, name
    return None


def _global_names(source: str) -> list[str]:
    """The global names `source` (one def or class) reads, in the order they appear."""
    found: dict[str, None] = {}

    def visit(table: symtable.SymbolTable, top: bool) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (sym.is_global() if not top else not sym.is_assigned()):
                found.setdefault(sym.get_name())
        for child in table.get_children():
            visit(child, False)

    visit(symtable.symtable("from __future__ import annotations\n" + source, "<export>", "exec"), True)
    return list(found)


@functools.lru_cache(maxsize=None)
def _definition(obj: object) -> tuple[str, tuple[str, ...]]:
    """(source, global names it reads) of a module-level def or class: read once per process (`inspect`
    parses a class's whole file to find it)."""
    source = textwrap.dedent(inspect.getsource(obj))
    return source, tuple(_global_names(source))


class _Bundle:
    """The source of some module-level objects and of everything they use (see the module docstring)."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[object, str]] = {name: (_RESERVED, "the exported module") for name in RESERVED}
        self.bound.update(sys=(sys, "the exported module"), types=(types, "the exported module"))  # in its header
        self.imports: list[str] = []
        self.constants: list[str] = []
        self.defs: list[str] = []
        self.what = ""  # the op (or part) being exported, for messages

    def _refuse(self, why: str) -> LPZeroError:
        return LPZeroError(f"{self.what}: {why}" if self.what else why)

    def _bind(self, name: str, obj: object, origin: str) -> bool:
        """Claim `name` for `obj` (of module `origin`): False if it is bound to it already, LPZeroError if
        to something else."""
        if name not in self.bound:
            self.bound[name] = (obj, origin)
            return True
        bound, theirs = self.bound[name]
        if bound is obj or (_literal(obj) is not None and type(bound) is type(obj) and bound == obj):
            return False
        raise self._refuse(f"{name!r} of {origin} and {name!r} of {theirs} would share one name in the exported "
                           "module: rename one of them")

    def _import(self, name: str, obj: object, origin: str) -> None:
        if inspect.ismodule(obj):
            line = f"import {obj.__name__}" + ("" if name == obj.__name__ else f" as {name}")
        else:
            path = _public_path(obj)
            if path is None:
                raise self._refuse(f"{name!r} of {origin} (from {obj.__module__}) has no public import path")
            line = f"from {path[0]} import {path[1]}" + ("" if name == path[1] else f" as {name}")
        if self._bind(name, obj, origin):
            self.imports.append(line)

    def use(self, name: str, obj: object, origin: str) -> None:
        """Make the global `name` (bound to `obj` in module `origin`) exist in the exported module."""
        literal = _literal(obj)
        if literal is not None:
            if self._bind(name, obj, origin):
                self.constants.append(f"{name} = {literal}")
        elif inspect.ismodule(obj) and _external(obj.__name__):
            self._import(name, obj, origin)
        elif inspect.ismodule(obj):
            raise self._refuse(f"{origin} uses the module {obj.__name__}: the exported module imports only torch "
                               "and the standard library")
        elif (inspect.isfunction(obj) or inspect.isclass(obj)) and not _external(obj.__module__):
            own = self.add(obj)
            if name != own and self._bind(name, obj, origin):
                self.defs.append(f"{name} = {own}\n")
        elif _public_path(obj) is not None:
            self._import(name, obj, origin)
        else:
            raise self._refuse(f"{name!r} of {origin} (a {type(obj).__name__}) cannot be written into a module")

    def add(self, obj: object) -> str:
        """Copy a module-level def or class (and what it uses) into the module; its name there."""
        name = obj.__name__
        if name == "<lambda>" or getattr(obj, "__closure__", None) or obj.__qualname__ != name:
            raise self._refuse(f"{obj.__qualname__} of {obj.__module__} is a lambda or a closure (or not at module "
                               "level), which cannot be exported: declare it as a module-level def")
        if not self._bind(name, obj, obj.__module__):
            return name
        try:
            source, names = _definition(obj)
        except (OSError, TypeError):
            raise self._refuse(f"the source of {name} ({obj.__module__}) cannot be read") from None
        scope = sys.modules[obj.__module__].__dict__ if inspect.isclass(obj) else obj.__globals__
        for used in names:
            if used in scope and used != name and not used.startswith("__"):
                self.use(used, scope[used], obj.__module__)
            elif used not in scope and not hasattr(builtins, used):
                raise self._refuse(f"{name} ({obj.__module__}) reads {used!r}, which its module does not define")
        self.defs.append(f"# from {obj.__module__}\n{source}")
        return name

    def expression(self, obj: object) -> str:
        """Source that evaluates to `obj` (an op's runtime callable, a constant) in the exported module."""
        literal = _literal(obj)
        if literal is not None:
            return literal
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not _external(obj.__module__):
            return self.add(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and not _external(type(obj).__module__):
            fields = [f"{f.name}={self.expression(getattr(obj, f.name))}" for f in dataclasses.fields(obj) if f.init]
            return f"{self.add(type(obj))}({', '.join(fields)})"
        path = _public_path(obj) if callable(obj) else None
        if path is None and callable(obj):
            raise self._refuse(f"{obj!r:.60} cannot be exported: declare it as a module-level def")
        if path is None:
            raise self._refuse(f"the constant {obj!r:.60} cannot be written as a Python literal")
        self.use(path[0].partition(".")[0], sys.modules[path[0].partition(".")[0]], "the exported module")
        return f"{path[0]}.{path[1]}"

    def source(self) -> str:
        blocks = ["\n".join(sorted(self.imports)), "\n".join(self.constants)] + self.defs
        return "\n\n".join(b.rstrip("\n") + "\n" for b in blocks if b)


def _step_source(step: Step, bundle: _Bundle) -> str:
    parts = [repr(step.name), repr(step.arity), repr(step.level)]
    if step.fn is not None:
        parts.append(f"fn={bundle.expression(step.fn)}")
    if step.symbol is not None:
        parts.append(f"symbol={step.symbol!r}")
    elif step.fn is None:
        parts.append(f"value={bundle.expression(step.value)}")
    return f"Step({', '.join(parts)})"


def _program_source(program: Program, ops: OpTable, bundle: _Bundle) -> str:
    """`program` as a `Program(...)` expression, each op's runtime bundled (errors name the op)."""
    lines = []
    for step in program.steps:
        op = step.name.rpartition("__")[0]
        bundle.what = f"op {op!r}" if op in ops else f"terminal {step.name!r}"
        lines.append(f"        {_step_source(step, bundle)},")
    bundle.what = ""
    return "Program(\n    steps=(\n" + "\n".join(lines) + f"\n    ),\n    args={program.args!r},\n)"


def _docstring_text(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"""', r'\"\"\"')


def torch_module(proxy: FoundProxy) -> str:
    """Source of a module (imports only torch and the standard library) whose `proxy(A, J, G, H, W, S)`
    is `proxy`'s score (`FoundProxy.score_inputs`) and `proxy_rows` the same on sampled rows."""
    program = compile_tree(proxy.parsed, proxy.ops)
    bundle = _Bundle()
    for root in (Step, Program, Row, RowProgram):
        bundle.add(root)
    bundle.use("torch", torch, "the exported module")
    text = _program_source(program, proxy.ops, bundle)
    reads = tuple(s for s in program.args if any(step.symbol == s for step in program.steps))
    header = _HEADER.format(formula=_docstring_text(proxy.best.get("formula", proxy.tree)),
                            tree=_docstring_text(proxy.tree), table=_docstring_text(proxy.ops_path or "default"))
    return header + bundle.source() + _ENTRY_POINTS.format(program=text, reads=reads, orientation=proxy.orientation)


def sympy_namespace(ops: OpTable) -> dict[str, type]:
    """Names -> the opaque sympy functions of `ops`' reductions and distributions: the `locals`
    that make `sympy.sympify` of an exported `srepr` string give the exported expression back."""
    names = {}
    for op in ops:
        if op.kind in ("reduce", "distribution") and op.sympy_fn is not None:
            for level in op.levels:
                cls = type(op.sympy_fn(sympy.Symbol("x"), level))
                if isinstance(cls, type) and issubclass(cls, sympy.Function):
                    names[cls.__name__] = cls
    return names


def sympy_srepr(proxy: FoundProxy) -> str:
    """The simplified, oriented formula (guards active on the search sample written out) as
    `sympy.srepr`; `sympy.sympify(text, locals=sympy_namespace(ops))` reads it back."""
    guarded = active_nodes(list(proxy.protection))
    return sympy.srepr(simplify(proxy.orientation * tree_to_sympy(proxy.parsed, proxy.ops, guarded)))


__all__ = ["sympy_namespace", "sympy_srepr", "torch_module"]
