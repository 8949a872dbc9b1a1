"""The LiteTransformerSearch (Archai) family: results directories, their models and search space.

- `benchmark`: `LTSBenchmark`, a results directory (`config_<i>/j<k>/model_config.yaml`,
  `ppl_summary.yaml`, `params_summary.yaml`) as a benchmark: "gpt2" and "transxl" (the shipped
  ones) or "lts:PATH";
- `families`: the two model families LTS trained, recognised from a directory's configs:
  `gpt2_flex` (GPT-2 flex) and `transxl` (Archai's memory Transformer-XL, relative attention,
  word-level: `words`), both with `adaptive`'s embedding and softmax; each builder's parameter
  counts reproduce Archai's;
- `space`: `LTSSpace`, Archai's space with choices read from a results directory
  (`--space lts`, `gpt2`, `transxl`, `lts:PATH`).

Importing this package registers those names and imports none of the modules (they import
transformers, which takes seconds): each loads when a benchmark or space of it is opened.
"""
from __future__ import annotations

from .. import BENCHMARKS, SPACES

BENCHMARKS.register("gpt2", f"{__name__}.benchmark:LTSBenchmark",
                    description="LiteTransformerSearch GPT-2 on WikiText-103, 200 architectures (lts_gpt2_wt103/)")
BENCHMARKS.register("transxl", f"{__name__}.benchmark:LTSBenchmark",
                    description="LiteTransformerSearch Transformer-XL on WikiText-103, 200 architectures "
                                "(lts_transxl_wt103/)")
BENCHMARKS.register("lts", f"{__name__}.benchmark:LTSBenchmark", prefix=True,
                    description="any results directory in the Archai/LTS layout (lts:PATH)")
SPACES.register("lts", f"{__name__}.space:LTSSpace", prefix=True,
                description="Archai's GPT-2 space, choices read from an LTS results directory")
SPACES.register("gpt2", f"{__name__}.space:LTSSpace", description="the space of the gpt2 benchmark")
SPACES.register("transxl", f"{__name__}.space:TransXLSpace", description="the space of the transxl benchmark")
