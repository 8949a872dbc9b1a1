"""Opening a search space by name: `--space lts`, `lts:PATH`, `lonas`, `lonas:DIR`, `tabular:BENCH`, or `module:Class`.

Open spaces are registered in `OPEN_SPACES` as "module:Class" text and imported when
opened: their modules build models with transformers, which takes seconds to import, and
the `lpzero` command must not pay that for every subcommand (the benchmark registry loads
its model modules on demand for the same reason). A space class is constructed as
`Class(data=..., path=..., **options)` (`path`: the text after "NAME:", or None; options:
e.g. a LoNAS checkpoint's `adapter`).
"""
from __future__ import annotations

import importlib
import os
from typing import Sequence

from lpzero.errors import UnknownNameError

from .space import NASError, SearchSpace
from .tabular import PREFIX as TABULAR_PREFIX
from .tabular import TabularSpace

#: name -> "module:Class" of each open space; `NAME:PATH` passes PATH to the class
OPEN_SPACES: dict[str, str] = {
    "lts": "lpzero.nas.lts_space:LTSSpace",
    "gpt2": "lpzero.nas.lts_space:LTSSpace",  # the space of the gpt2 benchmark, by the benchmark's name
    "lonas": "lpzero.nas.lonas_space:LoNASSearchSpace",
}
#: what `--space` accepts, for help texts and errors
SPACE_FORMS = ("lts", "gpt2", "lts:PATH", "lonas", "lonas:DIR", "tabular:BENCHMARK", "module:Class")


def get_space(name: str, data: str | os.PathLike | None = None, options: dict | None = None,
              ids: Sequence[str] | None = None) -> SearchSpace:
    """The space `name` names (see the module docstring).

    `options` go to the benchmark of a tabular space (e.g. `hidden_size_compat`); `ids`
    restricts a tabular space to those architectures.
    """
    if name.startswith(TABULAR_PREFIX):
        return TabularSpace(name[len(TABULAR_PREFIX):], data, options, ids)
    if ids is not None:
        raise NASError(f"space {name}: --ids and --limit select architectures of a tabular space only")
    head, _, path = name.partition(":")
    if head in OPEN_SPACES:
        cls = _load(OPEN_SPACES[head])
        try:
            return cls(data=data, path=path or None, **(options or {}))
        except TypeError:
            if not options:
                raise
            raise NASError(f"space {name}: takes no options ({', '.join(options)})") from None
    if options:
        raise NASError(f"space {name}: benchmark options ({', '.join(options)}) apply to tabular and lonas spaces only")
    if ":" in name:
        cls = _load(name)
        return cls(data=data, path=None)
    raise UnknownNameError("space", name, SPACE_FORMS)


def _load(spec: str) -> type[SearchSpace]:
    where, _, attr = spec.rpartition(":")
    try:
        module = importlib.import_module(where)
    except ImportError as e:
        raise NASError(f"space {spec!r}: module {where!r} cannot be imported: {e}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
        raise NASError(f"space {spec!r}: {where}.{attr} is not a subclass of lpzero.nas.SearchSpace")
    return cls
