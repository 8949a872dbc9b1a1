"""The Markdown report of a search (`report.md`), from its `best.json` record and hall of fame."""
from __future__ import annotations

from .protection import describe as describe_protection


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def report_text(best: dict, hof: list[dict], front: list[dict] | None = None) -> str:
    """`report.md`: the found proxy's figures, the hall of fame and (if given) the Pareto front."""
    h, w, b = best["heldout"], best["whole"], best["baseline_heldout"]
    n_runs = len(best["runs"])
    several = best.get("benchmarks")
    # a search on several benchmarks: fitness and search part are combined, held-out figures the first one's
    combined = f"{best['combine']} over benchmarks" if several else ""
    own = f" ({best['benchmark']})" if several else ""
    title = ", ".join(e["benchmark"] for e in several) if several else best["benchmark"]
    lines = [
        f"# lpzero evolve — {title} ({best['toolbox']} toolbox)",
        "",
        f"Found proxy: `{best['formula']}`",
        "",
        f"$$ {best['latex']} $$",
        "",
        "| set | n | Spearman ρ | Kendall τ |",
        "|---|---|---|---|",
        f"| search sample (fitness{', ' + combined if several else ''}) | {best['search']['n']} | {_fmt(best['search']['spearman'])} | |",
        f"| search part{f' ({combined})' if several else ''} | {best['search_part']['n']} | "
        f"{_fmt(best['search_part']['spearman'])} | {_fmt(best['search_part']['kendall'])} |",
        f"| held-out{own} | {h['n']} | {_fmt(h['spearman'])} | {_fmt(h['kendall'])} |",
        f"| whole benchmark{own} | {w['n']} | {_fmt(w['spearman'])} | {_fmt(w['kendall'])} |",
    ]
    if b:
        lines.append(f"| best hand-designed ({b['proxy']}), held-out{own} | {b['n']} | {_fmt(b['spearman'])} | "
                     f"{_fmt(b['kendall'])} |")
    if several:
        lines += _benchmark_lines(best)
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


def _benchmark_lines(best: dict) -> list[str]:
    """A search on several benchmarks: each benchmark's figures of the found proxy, and its best hand-designed
    proxy held out (where its cache has them)."""
    lines = [
        "",
        "## Benchmarks",
        "",
        f"One formula searched on {len(best['benchmarks'])} benchmarks; fitness is the {best['combine']} of its |ρ| "
        "on each benchmark's own search sample"
        + (", each divided by that of the benchmark's best hand-designed proxy on the sample (--normalize "
           "hand-designed: " + ", ".join(f"{e['benchmark']} {abs(e['scale']['spearman']):.3f}, {e['scale']['proxy']}"
                                         for e in best["benchmarks"]) + ")"
           if best.get("normalize", "none") != "none" else "")
        + ". Each benchmark keeps its own split and orientation (the formula "
        f"above is oriented for {best['benchmark']}).",
        "",
        "| benchmark | orientation | sample ρ | search-part ρ | held-out n | held-out ρ | held-out τ | "
        "best hand-designed, held-out ρ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in best["benchmarks"]:
        h, b = e["heldout"], e.get("baseline_heldout")
        baseline = f"{_fmt(b['spearman'])} ({b['proxy']})" if b else "n/a"
        lines.append(f"| {e['benchmark']} | {e['orientation']:+d} | {_fmt(e['search']['spearman'])} | "
                     f"{_fmt(e['search_part']['spearman'])} | {h['n']} | {_fmt(h['spearman'])} | "
                     f"{_fmt(h['kendall'])} | {baseline} |")
    return lines


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
