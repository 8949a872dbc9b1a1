"""The search's figures (what they show, checked without reading pixels), and what `lpzero ops` and
`lpzero export` import: neither matplotlib nor scipy.stats, while `from lpzero.report import X` and
`from lpzero.search import X` keep working for every name."""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import pytest
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from test_cli_loading import modules_after
from lpzero.report.plots import LABEL_CHARS, evolution_figure, pareto_figure, plot_evolution, plot_pareto, shorten

LONG = "frobenius_l(mean(theta_A)*std(theta_A)/frobenius(theta_A))"


def entry(complexity: int, rho: float, formula: str) -> dict:
    """A `pareto_front.json` entry (the keys the figure reads)."""
    return {"complexity": complexity, "search_part": {"spearman": rho}, "formula": formula, "tree": f"tree:{formula}"}


#: a small front: its points crowd at the top right, one formula is longer than a label
FRONT = [entry(3, 0.50, "frobenius_l(mean(theta_A))"), entry(4, 0.970, "Abs(log(l1_l(frobenius(theta_W))))"),
         entry(5, 0.971, "layer_sum_l(l1(sqrt(Max(0, theta_W))))"), entry(6, 0.972, LONG),
         entry(9, 0.975, "std_l(std(theta_S))")]


def drawn(fig):
    """`fig` drawn (layout done, every artist placed), and its renderer."""
    fig.canvas.draw()
    return fig, fig.canvas.get_renderer()


def label_boxes(ax, renderer) -> dict[str, Bbox]:
    """Each label's text box (without its leader line), by its text."""
    return {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}


# --- the complexity front --------------------------------------------------------------------

def test_each_point_of_the_front_is_labelled_with_its_shortened_formula():
    fig = pareto_figure(FRONT, FRONT[2]["tree"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == sorted(shorten(e["formula"]) for e in FRONT)
    cut = shorten(LONG)
    assert len(cut) == LABEL_CHARS and cut.endswith("…") and LONG.startswith(cut[:-1])
    assert shorten("std_l(std(theta_S))") == "std_l(std(theta_S))"  # short ones whole


@pytest.mark.parametrize("front", [FRONT, [entry(3, 0.9, "frobenius_l(l1(theta_G))")],
                                   [entry(c, 0.5 + c / 100, f"op{c}") for c in (2, 17, 41)]],
                         ids=["five", "one", "wide"])
def test_complexity_ticks_are_whole_numbers(front):
    fig, _ = drawn(pareto_figure(front, front[0]["tree"]))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_the_legend_is_outside_the_axes_and_labels_cover_no_point_nor_each_other():
    fig, renderer = drawn(pareto_figure(FRONT, FRONT[2]["tree"]))
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.y1 <= frame.y0  # below the axes, not over a point
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"best tree at its complexity", "found proxy"}
    boxes = label_boxes(ax, renderer)
    points = ax.transData.transform([(e["complexity"], e["search_part"]["spearman"]) for e in FRONT])
    for text, box in boxes.items():
        assert frame.containsx(box.x0) and frame.containsx(box.x1), text
        assert frame.containsy(box.y0) and frame.containsy(box.y1), text
        assert not any(box.contains(x, y) for x, y in points), text
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)


def test_the_found_proxy_is_circled_and_an_empty_front_is_an_empty_plot(tmp_path):
    ax = pareto_figure(FRONT, FRONT[2]["tree"]).axes[0]
    circled = [c for c in ax.collections if c.get_label() == "found proxy"]
    assert len(circled) == 1 and tuple(circled[0].get_offsets()[0]) == (5, 0.971)
    empty = pareto_figure([], "none")
    assert len(empty.axes[0].texts) == 0 and empty.legends == []
    plot_pareto(FRONT, FRONT[0]["tree"], tmp_path / "front.png")
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- evolution.png ---------------------------------------------------------------------------

def logs() -> list[list[dict]]:
    """Two runs: best |ρ| climbs by hundredths near 1 while the median climbs from 0.3 (at first -inf:
    most of the population invalid)."""
    runs = []
    for run in range(2):
        runs.append([{"iteration": i, "best": 0.95 + 0.0002 * i + 0.003 * run,
                      "median": -math.inf if i < 3 else 0.3 + 0.006 * i} for i in range(1, 101)])
    return runs


def test_the_best_fitness_has_a_panel_whose_range_shows_its_movement(tmp_path):
    fig = evolution_figure(logs())
    best_ax, median_ax = fig.axes
    best = [r["best"] for log in logs() for r in log]
    lo, hi = best_ax.get_ylim()
    assert lo <= min(best) and max(best) <= hi
    assert (max(best) - min(best)) / (hi - lo) > 0.7  # the lines use most of the panel's height
    assert median_ax.get_ylim()[0] < 0.35 < lo  # the median has its own range below
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert "2 runs" in fig.get_suptitle()
    plot_evolution(logs(), tmp_path / "evolution.png")
    assert (tmp_path / "evolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_flat_best_line_gets_a_range_and_an_all_invalid_median_a_note():
    flat = [[{"iteration": i, "best": 1.0, "median": -math.inf} for i in range(1, 5)]]
    fig = evolution_figure(flat)
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 1.0 < hi and hi - lo == pytest.approx(0.01)
    assert [t.get_text() for t in fig.axes[1].texts] == ["no finite median: most of the population was invalid "
                                                         "throughout"]
    assert len(evolution_figure(logs()).axes[1].texts) == 0


# --- what `lpzero ops` and `lpzero export` import -------------------------------------------

HEAVY = ["matplotlib", "scipy.stats"]


@pytest.mark.parametrize("command", ["ops", "export text", "export latex", "export front"])
def test_ops_and_export_import_neither_matplotlib_nor_scipy_stats(command, found):
    front = found.parent / "pareto_front.json"
    front.write_text(json.dumps(FRONT))
    args = {"ops": ["ops"], "export text": ["export", str(found), "--format", "text"],
            "export latex": ["export", str(found)], "export front": ["export", str(found.parent)]}[command]
    loaded = modules_after(*args, succeed=True)
    assert [m for m in HEAVY if m in loaded] == []


#: every name `lpzero.report` and `lpzero.search` exported when they imported all their modules eagerly
REPORT_NAMES = ["BEST_FILE", "FORMATS", "GuardActivity", "OUTPUTS", "PRIMITIVE_SET_VERSION", "RankRow", "SPLIT_PARTS",
                "active_nodes", "best_baseline", "check_benchmark", "default_out", "evaluate_expression",
                "format_expression", "format_table", "found_formula", "guard_activity", "load_best", "proxy_formula",
                "rank_row", "report_text", "search_records", "simplify", "split_ids", "tree_to_sympy", "write_rank",
                "write_search"]
SEARCH_NAMES = ["COMBINE", "CombinedEvaluator", "EvolutionState", "EvolveSettings", "Evaluation", "FINAL_SELECTIONS",
                "FitnessEvaluator", "GenomeError", "INVALID_FITNESS", "Invalid", "LoopCheckpoint", "LoopStatistics",
                "PaperGenes", "ProxySearch", "RPSLog", "Scored", "SearchPart", "SearchResult", "SearchRuns",
                "SearchSetup", "TOOLBOXES", "TOOLBOX_KINDS", "Violation", "build_toolbox", "correlation",
                "ensure_creator", "evaluate_all", "evolve_on", "identity_function", "is_valid_fitness",
                "register_operator", "rps_guard", "run_evolution", "run_seed", "search_sample", "select_final",
                "split_architectures", "spearman_fitness", "violations"]


@pytest.mark.parametrize("package, names", [("lpzero.report", REPORT_NAMES), ("lpzero.search", SEARCH_NAMES)])
def test_every_name_the_packages_exported_still_imports_from_them(package, names):
    code = (f"from {package} import *\nimport {package} as p\n"
            f"from {package} import {', '.join(names)}\n"
            f"assert set({names!r}) <= set(p.__all__) <= set(dir(p))\n"
            f"assert all(name in globals() for name in p.__all__)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
