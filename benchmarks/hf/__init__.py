"""Any transformers family as a benchmark, a search space or one model, from files and no code.

Where the six proxy inputs live is one table of module names per `config.model_type`
(`lpzero.benchmarks.sites.SITE_MAPS`, shared with `lonas/`): supporting a family is one entry.

- `table`, `benchmark`: `hf:FILE`, a user's table of architectures (config keys and a measured metric)
  as a benchmark (`HFBenchmark`, built on `models.HFModels`: tokenizer, text, objective, sites);
- `space`: `hf:SPACE.yaml`, a search space declared as choices of config keys (`HFSpace`);
- `one`: one user's model (a checkpoint or a config.json) as a benchmark of one, for `lpzero score`;
- `build` (with `training`): `lpzero build neox-mini`, a measured GPT-NeoX benchmark in the `hf:` form.

Importing this package registers "hf:FILE" as a benchmark and a space, "neox-mini" as a benchmark
and a build, and imports none of its modules.
"""
from __future__ import annotations

from .. import BENCHMARKS, BUILDS, SPACES

BENCHMARKS.register("hf", f"{__name__}.benchmark:HFBenchmark", prefix=True,
                    description="a table of transformers architectures and their metric (hf:FILE.yaml)")
BENCHMARKS.register("neox-mini", f"{__name__}.benchmark:BuiltTable",
                    description="60 GPT-NeoX models trained here, held-out perplexity (built by `lpzero build "
                                "neox-mini`)")
BUILDS.register("neox-mini", f"{__name__}.build:NEOX_MINI",
                description="GPT-NeoX models of a grid of depth, width, heads and FFN size, trained on WikiText-2")
SPACES.register("hf", f"{__name__}.space:HFSpace", prefix=True,
                description="transformers configs declared as choices of config keys (hf:SPACE.yaml)")
