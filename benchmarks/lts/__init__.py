"""The LiteTransformerSearch (Archai) family: GPT-2 results directories, their models and search space.

- `benchmark`: `LTSBenchmark`, a results directory (`config_<i>/j<k>/model_config.yaml`,
  `ppl_summary.yaml`, `params_summary.yaml`) as a benchmark: "gpt2" (the shipped one) or "lts:PATH";
- `gpt2_flex`: the GPT-2 flex model (per-layer heads and widths, adaptive embedding and softmax)
  whose parameter counts reproduce Archai's;
- `space`: `LTSSpace`, Archai's GPT-2 space with choices read from a results directory
  (`--space lts`, `gpt2`, `lts:PATH`).

Importing this package registers those names and imports none of the modules (they import
transformers, which takes seconds): each loads when a benchmark or space of it is opened.
"""
from __future__ import annotations

from .. import BENCHMARKS, SPACES

BENCHMARKS.register("gpt2", f"{__name__}.benchmark:LTSBenchmark",
                    description="LiteTransformerSearch GPT-2 on WikiText-103, 200 architectures (lts_gpt2_wt103/)")
BENCHMARKS.register("lts", f"{__name__}.benchmark:LTSBenchmark", prefix=True,
                    description="any results directory in the Archai/LTS layout (lts:PATH)")
SPACES.register("lts", f"{__name__}.space:LTSSpace", prefix=True,
                description="Archai's GPT-2 space, choices read from an LTS results directory")
SPACES.register("gpt2", f"{__name__}.space:LTSSpace", description="the space of the gpt2 benchmark")
