"""Conformance with the original implementations' released per-architecture scores.

For each proxy the originals released (`../shared/data/reference`), prints the
Spearman correlation between our scores and theirs over the same architectures,
and both implementations' ρ / τ against ground truth, side by side. Our scores come
from a `lpzero rank` output directory (its `scores.json`).

    lpzero rank gpt2 --proxies all --out runs/rank_gpt2
    python scripts/conformance.py gpt2 runs/rank_gpt2

    lpzero rank flexibert --hidden-size-compat --proxies all --out runs/rank_flexibert_compat
    python scripts/conformance.py flexibert runs/rank_flexibert_compat
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import numpy as np
import yaml
from scipy import stats

from lpzero.benchmarks import default_data_root

#: GPT-2: reference file stem -> our proxy name
GPT2_NAMES = {
    "activation_distance": "activation_distance", "attention_confidence": "attention_confidence",
    "eznas": "eznas", "fisher": "fisher", "grad_norm": "grad_norm", "grasp": "grasp",
    "head_confidence": "attention_confidence", "head_importance": "head_importance",
    "jacobian_cosine": "jacobian_cosine", "logsynflow": "logsynflow", "lpzero": "lpzero_gpt2",
    "num_parameters": "num_params", "snip": "snip", "synaptic_diversity": "synaptic_diversity",
    "synaptic_saliency": "synaptic_saliency", "synflow": "synflow",
}
#: FlexiBERT: reference CSV column -> our proxy name
FLEXIBERT_NAMES = {
    "Synaptic Diversity": "synaptic_diversity", "Synaptic Saliency": "synaptic_saliency",
    "Activation Distance": "activation_distance", "Jacobian Score": "jacobian_cosine",
    "Number of Parameters": "num_params", "Head Importance": "head_importance",
    "Head Confidence": "attention_confidence", "Head Softmax Confidence": "softmax_confidence",
    "lpzero": "lpzero_flexibert",
}
FIELDS = ("reference", "ours", "n", "spearman_ours_vs_reference", "ours_rho", "ours_tau", "reference_rho",
          "reference_tau", "flag")


def reference_scores(benchmark: str, root: Path) -> dict[str, dict[str, float]]:
    """reference proxy name -> {architecture id: score}."""
    if benchmark == "gpt2":
        folder = root / "reference" / "lts_gpt2_wt103"
        return {stem: {k: float(v) for k, v in yaml.safe_load((folder / f"{stem}_scores_seed_1111.yaml").open()).items()}
                for stem in GPT2_NAMES if (folder / f"{stem}_scores_seed_1111.yaml").is_file()}
    rows = list(csv.DictReader((root / "reference" / "flexibert" / "BERT_results_activation_lpzero.csv").open()))
    return {col: {r["ID"]: float(r[col]) for r in rows} for col in FLEXIBERT_NAMES}


def _corr(x, y) -> tuple[float, float]:
    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


@click.command()
@click.argument("benchmark", type=click.Choice(["gpt2", "flexibert"]))
@click.argument("rank_dir", type=click.Path(exists=True))
@click.option("--data", type=click.Path(), default=None)
@click.option("--out", type=click.Path(), default=None, help="CSV output (default: RANK_DIR/conformance.csv).")
def main(benchmark, rank_dir, data, out):
    root = Path(data) if data else default_data_root()
    ours = json.loads((Path(rank_dir) / "scores.json").read_text())
    ids, truth = ours["ids"], dict(zip(ours["ids"], ours["ground_truth"]))
    names = GPT2_NAMES if benchmark == "gpt2" else FLEXIBERT_NAMES
    rows = []
    for ref_name, ref in reference_scores(benchmark, root).items():
        mine = names[ref_name]
        if mine not in ours["scores"]:
            continue
        common = [a for a in ids if a in ref]
        x = np.array([ours["scores"][mine][ids.index(a)] for a in common])
        y = np.array([ref[a] for a in common])
        t = np.array([truth[a] for a in common])
        agree, _ = _corr(x, y)
        o_rho, o_tau = _corr(x, t)
        r_rho, r_tau = _corr(y, t)
        rows.append({"reference": ref_name, "ours": mine, "n": len(common), "spearman_ours_vs_reference": agree,
                     "ours_rho": o_rho, "ours_tau": o_tau, "reference_rho": r_rho, "reference_tau": r_tau,
                     "flag": "differs by more than 0.05 in rho" if abs(abs(o_rho) - abs(r_rho)) > 0.05 else ""})
    path = Path(out) if out else Path(rank_dir) / "conformance.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    click.echo("| reference | ours | n | ρ(ours, ref) | ours ρ / τ | reference ρ / τ | |")
    click.echo("|---|---|---|---|---|---|---|")
    for r in rows:
        click.echo(f"| {r['reference']} | {r['ours']} | {r['n']} | {r['spearman_ours_vs_reference']:+.3f} | "
                   f"{r['ours_rho']:+.3f} / {r['ours_tau']:+.3f} | {r['reference_rho']:+.3f} / "
                   f"{r['reference_tau']:+.3f} | {r['flag']} |")
    click.echo(f"(ρ, τ against ground truth oriented higher = better; written {path})")


if __name__ == "__main__":
    main()
