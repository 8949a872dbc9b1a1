"""The FlexiBERT family (NAS-Bench-BERT, Serianni & Kalita 2023): 500 heterogeneous encoders and their GLUE scores.

- `benchmark`: `FlexiBERTBenchmark`, `flexibert/BERT_benchmark.json` as a benchmark ("flexibert");
- `model`: the heterogeneous ELECTRA-style encoder (self-attention, linear transforms, dynamic
  span convolutions per layer) and its parameter count.

Importing this package registers the name and imports neither module (the model imports
transformers, which takes seconds). The family has no open search space: `--space
tabular:flexibert` searches its architectures.
"""
from __future__ import annotations

from .. import BENCHMARKS

BENCHMARKS.register("flexibert", f"{__name__}.benchmark:FlexiBERTBenchmark",
                    description="FlexiBERT / NAS-Bench-BERT, 500 architectures, GLUE score (flexibert/)")
