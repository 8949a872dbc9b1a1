"""Opening a search space by name: `--space lts`, `lts:PATH`, `lonas`, `lonas:DIR`, `tabular:BENCH`, or `module:Class`.

Open spaces are registered in `OPEN_SPACES` as "module:Class" text and imported when
opened: their modules build models with transformers, which takes seconds to import, and
the `lpzero` command must not pay that for every subcommand (the benchmark registry loads
its model modules on demand for the same reason). A space class is constructed as
`Class(data=..., path=..., **options)` (`path`: the text after "NAME:", or None; options:
e.g. a LoNAS checkpoint's `adapter`).
"""
from __future__ import annotations

import os
from typing import Sequence

from lpzero.registry import Registry, subclass_check

from .space import NASError, SearchSpace
from .tabular import PREFIX as TABULAR_PREFIX
from .tabular import TabularSpace

#: open spaces by name; `NAME:PATH` passes PATH to the class. Registered as "module:Class" text,
#: imported when opened; entry points of the group `lpzero.spaces` add others.
OPEN_SPACES: Registry = Registry("space", group="lpzero.spaces", error=NASError, check=subclass_check(SearchSpace),
                                 forms=("tabular:BENCHMARK", "module:Class", "file.py:Class"))
OPEN_SPACES.register("lts", "lpzero.nas.lts_space:LTSSpace", prefix=True,
                     description="Archai's GPT-2 space, choices read from an LTS results directory")
# the space of the gpt2 benchmark, by the benchmark's name
OPEN_SPACES.register("gpt2", "lpzero.nas.lts_space:LTSSpace", description="the space of the gpt2 benchmark")
OPEN_SPACES.register("lonas", "lpzero.nas.lonas_space:LoNASSearchSpace", prefix=True,
                     description="LoNAS sub-networks of lonas-mini, or of a LoNAS directory / LLaMA checkpoint")
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
    found = OPEN_SPACES.lookup(name)
    if found.source != "registered":
        if options:
            raise NASError(f"space {name}: benchmark options ({', '.join(options)}) apply to tabular and lonas "
                           "spaces only")
        return found.obj(data=data, path=None)
    try:
        return found.obj(data=data, path=found.argument or None, **(options or {}))
    except TypeError:
        if not options:
            raise
        raise NASError(f"space {name}: takes no options ({', '.join(options)})") from None
