"""Do proxies rank the same sub-networks the same way in bfloat16 as in float32?

    lpzero rank lonas-mini --proxies all --proxy FOUND --dtype float32  --out runs/rank_lonas_fp32 --jobs 2
    lpzero rank lonas-mini --proxies all --proxy FOUND --dtype bfloat16 --out runs/rank_lonas_bf16 --jobs 2
    python scripts/compare_dtypes.py runs/rank_lonas_fp32 runs/rank_lonas_bf16

Reads the two runs' `scores.json` (the same architectures in the same order) and prints, per proxy,
the Spearman correlation between its float32 and its bfloat16 score vectors, beside each one's
Spearman against the ground truth. A proxy with an invalid score in either run is compared on the
architectures valid in both, and the count is shown.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
from scipy import stats

#: the agreement the issue asks of every valid proxy
AGREEMENT = 0.98


def _scores(run: Path) -> dict:
    path = run / "scores.json"
    if not path.is_file():
        raise click.ClickException(f"{path}: no such file (a `lpzero rank ... --out {run}` writes it)")
    return json.loads(path.read_text())


def _valid(values: list) -> np.ndarray:
    return np.array([v is not None and math.isfinite(v) for v in values])


@click.command()
@click.argument("float32_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("half_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
def main(float32_run: Path, half_run: Path) -> None:
    full, half = _scores(float32_run), _scores(half_run)
    if full["ids"] != half["ids"]:
        raise click.ClickException("the two runs scored different architectures")
    truth = np.asarray(full["ground_truth"], dtype=float)
    click.echo("| proxy | ρ float32 vs bfloat16 | ρ vs ground truth, float32 | bfloat16 | architectures |")
    click.echo("|---|---:|---:|---:|---:|")
    for proxy, a in full["scores"].items():
        b = half["scores"].get(proxy)
        if b is None:
            continue
        both = _valid(a) & _valid(b)
        if both.sum() < 3:
            click.echo(f"| {proxy} | invalid | | | {int(both.sum())} |")
            continue
        x = np.array([v for v, k in zip(a, both) if k], dtype=float)
        y = np.array([v for v, k in zip(b, both) if k], dtype=float)
        t = truth[both]
        if np.ptp(x) == 0 or np.ptp(y) == 0:  # a proxy that cannot rank these architectures at all
            click.echo(f"| {proxy} | constant scores | | | {int(both.sum())} |")
            continue
        agree = stats.spearmanr(x, y).statistic
        flag = "" if agree >= AGREEMENT else " (below)"
        click.echo(f"| {proxy} | {agree:.3f}{flag} | {stats.spearmanr(x, t).statistic:+.3f} | "
                   f"{stats.spearmanr(y, t).statistic:+.3f} | {int(both.sum())} |")


if __name__ == "__main__":
    main()
