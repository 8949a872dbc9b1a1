"""The files `lpzero nas` writes, from what its search decided (`lpzero.nas.pareto.Pick`).

`write_nas(out, ...)` writes `candidates.csv` (every scored candidate), `pareto.csv` (the
front), `pareto.png`, `chosen/` and `front/` (the architectures in the space's own format),
`report.md` and `summary.json`; with nothing chosen, only the two tables' first and the summary.
Figures use matplotlib's object-oriented API (`matplotlib.figure.Figure`), as
`lpzero.report.plots` does: no display, no pyplot state.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from lpzero.benchmarks import SearchSpace
from lpzero.files import atomic_write, atomic_write_json, atomic_write_text
from lpzero.nas import COST_LABELS, INVALID, Candidate, EvalSettings, Pick, tabular_figures
from lpzero.proxies import Proxy

SUMMARY_FILE = "summary.json"
#: what a search writes into its folder besides its checkpoint
OUTPUTS = ("pareto.csv", "candidates.csv", "pareto.png", "chosen", "front", "report.md", SUMMARY_FILE)

#: columns of candidates.csv and pareto.csv before the costs
LEAD = ("key", "architecture", "score")
TAIL = ("feasible", "on_front", "chosen", "ground_truth", "error", "seconds")


def rows_csv(candidates: Sequence[Candidate], costs: Sequence[str]) -> str:
    """CSV text of candidates, a row each."""
    fields = [*LEAD, *costs, *TAIL]
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for c in candidates:
        row = c.row()
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    return text.getvalue()


def write_csv(path: Path, candidates: Sequence[Candidate], costs: Sequence[str]) -> None:
    atomic_write_text(path, rows_csv(candidates, costs))


def plot_pareto(candidates: Sequence[Candidate], costs: Sequence[str], path: Path, title: str) -> None:
    """Proxy score against each cost: every scored candidate, the front highlighted, the chosen one starred."""
    fig = Figure(figsize=(4.5 * len(costs), 3.8))
    axes = fig.subplots(1, len(costs), squeeze=False)[0]
    rows = [c.row() for c in candidates]
    valid = [r for r in rows if r["feasible"] and r["score"] is not None]
    front = sorted((r for r in valid if r["on_front"]), key=lambda r: r[costs[0]])
    chosen = [r for r in valid if r["chosen"]]
    for ax, cost in zip(axes, costs):
        x = np.array([r[cost] for r in valid], dtype=float)
        ax.scatter(x, [r["score"] for r in valid], s=8, color="0.6", label=f"scored ({len(valid)})")
        fx = [r[cost] for r in front]
        ax.scatter(fx, [r["score"] for r in front], s=18, color="C3", label=f"Pareto front ({len(front)})", zorder=3)
        if len(costs) == 1:  # a 2-D front is a staircase; over more costs its projection is not
            ax.step(fx, [r["score"] for r in front], where="post", color="C3", lw=1)
        for r in chosen:
            ax.scatter([r[cost]], [r["score"]], marker="*", s=160, color="C1", edgecolor="k", zorder=4, label="chosen")
        if len(x) and x.min() > 0 and x.max() / x.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(COST_LABELS.get(cost, cost))
        ax.set_ylabel("proxy score (higher = better)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def report_markdown(summary: dict, front: Sequence[dict], costs: Sequence[str], max_rows: int = 20) -> str:
    """report.md: settings, counts, the chosen architecture and the front."""
    s = summary
    lines = [f"# lpzero nas: {s['space']}", ""]
    proxy = s["proxy"]
    lines.append(f"- proxy: `{proxy['name']}`" + (f" ({proxy['source']}, tree `{proxy['tree']}`)" if proxy["tree"]
                                                  else " (hand-designed baseline)")
                 + ("" if proxy["orientation"] == 1 else ", negated"))
    lines.append(f"- scores: {s['scores']}")
    if s.get("options"):  # the benchmark options a score depends on: a bfloat16 and a float32 run differ here
        lines.append("- benchmark options: " + ", ".join(f"{k} `{v}`" for k, v in s["options"].items()))
    lines.append(f"- objectives: maximise the proxy score, minimise {', '.join(costs)}")
    limits = s["settings"]["limits"]
    lines.append("- limits: " + (", ".join(f"{k} <= {_fmt(v)}" for k, v in limits.items()) if limits else "none"))
    lines.append(f"- search: {s['search']}")
    lines.append(f"- candidates: {s['evaluated']} ({s['feasible']} within the limits, {s['failed']} failed); this run "
                 f"scored {s['scored_now']} in {s['seconds']:.1f} s ({s['candidates_per_second']:.2f} candidates/s)")
    for reason, count in (s.get("dropped") or {}).items():
        lines.append(f"- dropped {count} the space cannot build: {reason}")
    lines.append("")
    c = s.get("chosen")
    if c:
        lines += ["## Chosen architecture (highest proxy score within the limits)", "",
                  f"`{c['architecture']}`", "",
                  "| score | " + " | ".join(costs) + (" | ground truth |" if c.get("ground_truth") is not None else " |"),
                  "|---|" + "---|" * len(costs) + ("---|" if c.get("ground_truth") is not None else "")]
        row = f"| {_fmt(c['score'])} | " + " | ".join(_fmt(c[k]) for k in costs) + " |"
        if c.get("ground_truth") is not None:
            row += f" {_fmt(c['ground_truth'])} |"
        lines += [row, "", f"Written in the space's own format: {', '.join(s['chosen_files'])}", ""]
    t = s.get("tabular")
    if t:
        lines += ["## Against the ground truth (tabular)", "",
                  f"- the pick's ground truth {_fmt(t['pick_truth'])}; the best within the limits "
                  f"{_fmt(t['best_truth'])} ({t['best']}); regret {_fmt(t['regret'])}",
                  f"- the pick ranks {t['pick_rank']} of {t['feasible']} architectures within the limits by ground truth",
                  f"- hypervolume over (ground truth, {costs[0]}) of the proxy's front: "
                  f"{_fmt(t['hypervolume_ratio'])} of the true front's", ""]
    lines += [f"## Pareto front ({len(front)} architectures{', first ' + str(max_rows) if len(front) > max_rows else ''})",
              "", "| architecture | score | " + " | ".join(costs) + " |", "|---|---|" + "---|" * len(costs)]
    for r in list(front)[:max_rows]:
        lines.append(f"| `{r['architecture']}` | {_fmt(r['score'])} | " + " | ".join(_fmt(r[k]) for k in costs) + " |")
    lines += ["", "Files: pareto.csv (the front), candidates.csv (every scored candidate), pareto.png, "
              "chosen/ and front/ (configs), summary.json, checkpoint.json.", ""]
    return "\n".join(lines)


def _dropped(rows: Sequence[dict]) -> dict[str, int]:
    """reason -> how many candidates the space cannot build (`SearchSpace.invalid`): not failures, not scored."""
    reasons = [r["error"][len(INVALID):] for r in rows if r["error"] and r["error"].startswith(INVALID)]
    return {reason: reasons.count(reason) for reason in sorted(set(reasons), key=reasons.index)}


def nas_summary(space: SearchSpace, proxy: Proxy, settings: EvalSettings, picked: Pick, search: str,
                scores_note: str, new: int, seconds: float) -> dict:
    """summary.json's record of a search: settings, counts, the front's keys, the chosen candidate (and, where
    the space knows its ground truth, the pick against it)."""
    costs = list(settings.costs)
    rows = [c.row() for c in picked.candidates]
    summary = {
        "space": space.name, "options": space_options(space), "proxy": proxy.record(), "scores": scores_note,
        "settings": settings.record(),
        "search": search, "evaluated": len(rows), "feasible": sum(1 for r in rows if r["feasible"]),
        "failed": sum(1 for r in rows if r["error"] and r["feasible"] and not r["error"].startswith(INVALID)),
        "dropped": _dropped(rows), "scored_now": new, "seconds": seconds,
        "candidates_per_second": new / seconds if seconds > 0 else 0.0,
        "front": [c.key for c in picked.front], "chosen": None, "chosen_files": [], "tabular": None,
    }
    if picked.chosen is not None:
        chosen = picked.chosen.row()
        summary["chosen"] = {k: chosen[k] for k in ("key", "architecture", "config", "score", *costs, "ground_truth")}
        if chosen["ground_truth"] is not None:
            summary["tabular"] = tabular_figures(picked, costs[0])
    return summary


def space_options(space: SearchSpace) -> dict:
    """Every benchmark option a candidate's score depends on besides the batch: those the space was opened
    with (`options`: a LoNAS space's adapter, dtype, text and space file, a tabular space's), and what its
    benchmark says they resolved to (`score_settings`: e.g. the dtype a checkpoint loads in by default)."""
    options = {k: v if isinstance(v, (bool, int, float)) or v is None else str(v)
               for k, v in getattr(space, "options", {}).items()}
    resolved = space.base_benchmark().score_settings()
    return dict(sorted({**options, **resolved}.items()))  # one order in every run


def write_nas(out: Path, space: SearchSpace, proxy: Proxy, settings: EvalSettings, picked: Pick, summary: dict) -> None:
    """Every output of a search into `out` (see the module docstring); summary.json last."""
    costs = list(settings.costs)
    write_csv(out / "candidates.csv", picked.candidates, costs)
    write_csv(out / "pareto.csv", picked.front, costs)
    if picked.chosen is not None:
        summary["chosen_files"] = [str(p.relative_to(out)) for p in space.write([picked.chosen.config], out / "chosen")]
        space.write([c.config for c in picked.front], out / "front")
        plot_pareto(picked.candidates, costs, out / "pareto.png",
                    f"{space.name}: {proxy.name} ({len(picked.valid)} scored within limits)")
        atomic_write_text(out / "report.md", report_markdown(summary, [c.row() for c in picked.front], costs))
    atomic_write_json(out / SUMMARY_FILE, summary)
