"""How well the simplest architecture descriptors rank each benchmark: no model, no proxy.

A found proxy is worth what it adds over these. Prints ρ / τ on all architectures and
on the held-out part of `lpzero evolve --seed SEED` (the part its found proxy is
reported on), and writes the table as CSV.

    python scripts/descriptors.py                       # GPT-2 and FlexiBERT, split of seed 42
    python scripts/descriptors.py --benchmarks gpt2 --out runs/descriptors.csv
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import click

from lpzero.benchmarks import Architecture, get_benchmark
from lpzero.search import SearchSetup, correlation, split_architectures


def _gpt2_layers(config: dict) -> int:
    return int(config["n_layer"])


def _flexibert_layers(config: dict) -> int:
    return len(config["nas_config"]["encoder_layers"])


#: benchmark -> descriptor name -> value of one architecture (from the benchmark's own config)
DESCRIPTORS: dict[str, dict[str, Callable[[Architecture], float]]] = {
    "gpt2": {
        "n_layer · d_model²": lambda a: _gpt2_layers(a.config) * a.config["d_model"] ** 2,
        "d_model": lambda a: a.config["d_model"],
        "n_layer": lambda a: _gpt2_layers(a.config),
    },
    # the Transformer-XL configs have GPT-2's keys
    "transxl": {
        "n_layer · d_model²": lambda a: _gpt2_layers(a.config) * a.config["d_model"] ** 2,
        "d_model": lambda a: a.config["d_model"],
        "n_layer": lambda a: _gpt2_layers(a.config),
    },
    "neox-mini": {
        "hidden size": lambda a: a.config["hidden_size"],
        "layers × hidden size²": lambda a: a.config["num_hidden_layers"] * a.config["hidden_size"] ** 2,
        "number of layers": lambda a: a.config["num_hidden_layers"],
    },
    "flexibert": {
        "hidden size × number of layers": lambda a: a.config["hidden_size"] * _flexibert_layers(a.config),
        "number of layers": lambda a: _flexibert_layers(a.config),
        "hidden size": lambda a: a.config["hidden_size"],
    },
}
FIELDS = ("benchmark", "descriptor", "part", "n", "spearman", "kendall")
#: what any other benchmark is described by (no config key is the same across families)
FALLBACK = "non-embedding parameters"


def simplest_descriptor(bench, ids: list[str]) -> tuple[str, list[float]]:
    """(name, values on `ids`) of `bench`'s simplest descriptor: its first in `DESCRIPTORS`, else its models'
    non-embedding (else total) parameter count."""
    known = DESCRIPTORS.get(bench.name)
    if known:
        label, describe = next(iter(known.items()))
        return label, [describe(bench.architecture(a)) for a in ids]
    counts = [bench.count_params(a) for a in ids]
    key = "nonembedding" if all("nonembedding" in c for c in counts) else "total"
    return FALLBACK if key == "nonembedding" else "parameters", [c[key] for c in counts]



@click.command()
@click.option("--benchmarks", default="gpt2,flexibert", show_default=True)
@click.option("--seed", type=int, default=SearchSetup().evolve.seed, show_default=True,
              help="Seed of the evolve split whose held-out part is reported.")
@click.option("--holdout", type=float, default=SearchSetup().holdout, show_default=True)
@click.option("--data", type=click.Path(), default=None)
@click.option("--out", type=click.Path(dir_okay=False), default="runs/descriptors.csv", show_default=True)
def main(benchmarks: str, seed: int, holdout: float, data: str | None, out: str) -> None:
    rows = []
    for name in benchmarks.split(","):
        bench = get_benchmark(name, data)
        archs = {a.id: a for a in bench.architectures()}
        _, held = split_architectures(list(archs), holdout, seed)
        for label, describe in DESCRIPTORS[name].items():
            for part, ids in (("all", list(archs)), ("heldout", held)):
                m = correlation([describe(archs[a]) for a in ids], [archs[a].ground_truth for a in ids])
                rows.append({"benchmark": name, "descriptor": label, "part": part, "n": m["n"],
                             "spearman": m["spearman"], "kendall": m["kendall"]})
                click.echo(f"{name:<10} {label:<32} {part:<8} n={m['n']:<4} ρ {m['spearman']:+.3f}  "
                           f"τ {m['kendall']:+.3f}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    click.echo(f"written: {out}")


if __name__ == "__main__":
    main()
