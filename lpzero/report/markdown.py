"""The Markdown report of a search (`report.md`), from its `best.json` record and hall of fame."""
from __future__ import annotations

from .protection import describe as describe_protection


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def report_text(best: dict, hof: list[dict], front: list[dict] | None = None) -> str:
    """`report.md`: the found proxy's figures, the hall of fame and (if given) the Pareto front."""
    h, w, b = best["heldout"], best["whole"], best["baseline_heldout"]
    n_runs = len(best["runs"])
    lines = [
        f"# lpzero evolve — {best['benchmark']} ({best['toolbox']} toolbox)",
        "",
        f"Found proxy: `{best['formula']}`",
        "",
        f"$$ {best['latex']} $$",
        "",
        "| set | n | Spearman ρ | Kendall τ |",
        "|---|---|---|---|",
        f"| search sample (fitness) | {best['search']['n']} | {_fmt(best['search']['spearman'])} | |",
        f"| search part | {best['search_part']['n']} | {_fmt(best['search_part']['spearman'])} | "
        f"{_fmt(best['search_part']['kendall'])} |",
        f"| held-out | {h['n']} | {_fmt(h['spearman'])} | {_fmt(h['kendall'])} |",
        f"| whole benchmark | {w['n']} | {_fmt(w['spearman'])} | {_fmt(w['kendall'])} |",
    ]
    if b:
        lines.append(f"| best hand-designed ({b['proxy']}), held-out | {b['n']} | {_fmt(b['spearman'])} | "
                     f"{_fmt(b['kendall'])} |")
    lines += [
        "",
        f"ρ is oriented with ground truth higher = better ({best.get('ground_truth', 'the benchmark metric')}).",
        describe_protection(best.get("protection", [])),
        "",
        f"RPS rejected {best['rps']['rejected']} offspring; invalid proxies by reason: {best['invalid']}.",
        f"Search time: {best['seconds']:.1f} s ({n_runs} run{'s' if n_runs > 1 else ''} of "
        f"{best['setup']['evolve']['iterations']} iterations).",
        "",
        "## Hall of fame",
        "",
        f"The first {len(hof)} of {best['candidates']} candidates (the {best['setup']['hall_of_fame']} fittest valid "
        f"proxies of each run) in the order of the final selection ({best['setup']['final_selection']}).",
        "",
        "| # | run | sample ρ | search-part ρ | held-out ρ | formula |",
        "|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(hof, 1):
        lines.append(f"| {i} | {e['run']} | {_fmt(e['search']['spearman'])} | {_fmt(e['search_part']['spearman'])} | "
                     f"{_fmt(e['heldout']['spearman'])} | `{e['formula']}` |")
    if front is not None:
        lines += _front_lines(best, front)
    return "\n".join(lines) + "\n"


def _front_lines(best: dict, front: list[dict]) -> list[str]:
    """The Pareto front of complexity vs search-part ρ as a table, the found proxy marked."""
    lines = [
        "",
        "## Pareto front",
        "",
        f"The best tree at each complexity that beats every simpler one, over all runs' final populations "
        f"(`pareto_front.json`, `pareto_formulas.png`). Found proxy chosen by `--select {best.get('select', 'best')}` "
        "on search-part ρ; held-out ρ is for the report only.",
        "",
        "| complexity | sample ρ | search-part ρ | held-out ρ | formula |",
        "|---|---|---|---|---|",
    ]
    for e in front:
        mark = " **(found)**" if e["tree"] == best["tree"] else ""
        lines.append(f"| {e['complexity']} | {_fmt(e['search']['spearman'])} | {_fmt(e['search_part']['spearman'])} | "
                     f"{_fmt(e['heldout']['spearman'])} | `{e['formula']}`{mark} |")
    return lines
