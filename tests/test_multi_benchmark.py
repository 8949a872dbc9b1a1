"""One formula searched on several benchmarks at once (`lpzero evolve --benchmark a,b`, docs/concepts.md, "Several benchmarks at once")."""
import json
import statistics

import pytest
from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.cli import main
from lpzero.primitives import OPS, Weighted, build_primitive_set, parse_tree
from lpzero.proxies import FoundProxy
from lpzero.report.results import check_benchmark, split_ids
from lpzero.search import CombinedEvaluator, FitnessEvaluator, Invalid
from synthetic import planted_truth, synthetic_inputs

#: a second fake benchmark: the same tiny models with another ground truth and a shorter batch
OTHER_SOURCE = '''
from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.base import Architecture

OTHER_PPL = [40.0, 61.0, 33.75, 52.25, 45.5, 48.5]


class OtherTinyBenchmark(TinyGPT2Benchmark):
    default_seq_len = 8

    def architecture(self, arch_id):
        arch = super().architecture(arch_id)
        ppl = OTHER_PPL[self.ids().index(arch_id)]
        return Architecture(id=arch.id, config=arch.config, ground_truth=-ppl, raw=ppl)
'''
SEARCH = ["--samples", "12288", "--population", "8", "--iterations", "12", "--sample", "3", "--runs", "2",
          "--baselines", "num_params"]
TREE = "frobenius__Lh(l1__Th(abslog__Th(square__Th(H))))"


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """The second fake benchmark's name (a class in a file)."""
    path = tmp_path_factory.mktemp("other") / "other_benchmark.py"
    path.write_text(OTHER_SOURCE)
    return f"{path}:OtherTinyBenchmark"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("multi_cache")


def evolve(out, benchmarks, cache, *more, ok=True):
    result = CliRunner().invoke(main, ["evolve", "--benchmark", ",".join(benchmarks), "--cache-dir", str(cache),
                                       "--out", str(out), *SEARCH, *more])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def searched(tmp_path_factory, other, cache):
    """A finished search on both fake benchmarks: (output folder, best.json)."""
    out = tmp_path_factory.mktemp("multi") / "run"
    evolve(out, [FAKE_BENCHMARK, other], cache)
    return out, json.loads((out / "best.json").read_text())


def test_best_json_names_both_benchmarks(searched, other):
    _, best = searched
    assert [e["benchmark"] for e in best["benchmarks"]] == [FAKE_BENCHMARK, other]
    assert best["benchmark"] == FAKE_BENCHMARK and best["combine"] == "min"
    assert best["benchmarks"][0]["split"] == best["split"]  # the top level is the first benchmark's view


def test_each_benchmark_has_its_own_cache(searched):
    _, best = searched
    assert [e["cache"]["seq_len"] for e in best["benchmarks"]] == [16, 8]


def test_the_found_proxy_reads_back_and_belongs_to_both_benchmarks(searched, other):
    out, best = searched
    found = FoundProxy.load(out / "best.json")
    assert found.tree == best["tree"] and found.orientation == best["benchmarks"][0]["orientation"]
    check_benchmark(found, other, "best.json")  # no error: it was found on the other one too
    ids = [f"tiny{i}" for i in range(6)]
    assert split_ids(found, "heldout", ids, other) == best["benchmarks"][1]["split"]["heldout_ids"]


def test_the_report_lists_every_benchmarks_held_out_rho(searched, other):
    out, best = searched
    report = (out / "report.md").read_text()
    assert "## Benchmarks" in report
    for e in best["benchmarks"]:
        row = next(line for line in report.splitlines() if line.startswith(f"| {e['benchmark']} |"))
        assert f"| {e['heldout']['n']} | {e['heldout']['spearman']:+.3f} |" in row
        assert f"({e['baseline_heldout']['proxy']})" in row


def test_fitness_is_the_min_of_the_benchmarks_by_default(searched):
    _, best = searched
    assert best["search"]["fitness"] == min(e["search"]["fitness"] for e in best["benchmarks"])


def test_combine_mean_takes_the_mean(tmp_path, other, cache):
    evolve(tmp_path / "run", [FAKE_BENCHMARK, other], cache, "--combine", "mean")
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["combine"] == "mean"
    assert best["search"]["fitness"] == pytest.approx(statistics.fmean(e["search"]["fitness"]
                                                                        for e in best["benchmarks"]))


def test_a_seeded_search_repeats_exactly(searched, tmp_path, other, cache):
    out, best = searched
    evolve(tmp_path / "again", [FAKE_BENCHMARK, other], cache)
    again = json.loads((tmp_path / "again" / "best.json").read_text())
    strip = ("seconds", "runs")
    assert {k: v for k, v in again.items() if k not in strip} == {k: v for k, v in best.items() if k not in strip}
    assert [r["best_tree"] for r in again["runs"]] == [r["best_tree"] for r in best["runs"]]
    assert (tmp_path / "again" / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()


def test_an_unknown_benchmark_in_the_list_is_one_line_before_any_work(tmp_path):
    r = evolve(tmp_path / "run", [FAKE_BENCHMARK, "no-such-bench"], tmp_path / "c", ok=False)
    assert r.exit_code == 2 and "no-such-bench" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists() and not (tmp_path / "run").exists()


def test_a_benchmark_named_twice_is_refused_before_any_work(tmp_path):
    r = evolve(tmp_path / "run", [FAKE_BENCHMARK, FAKE_BENCHMARK], tmp_path / "c", ok=False)
    assert r.exit_code == 2 and "names a benchmark twice" in r.stderr
    assert not (tmp_path / "c").exists()


def test_resume_with_another_combine_is_refused(searched, tmp_path, other, cache):
    import shutil

    out, _ = searched
    shutil.copytree(out, tmp_path / "run")
    r = evolve(tmp_path / "run", [FAKE_BENCHMARK, other], cache, "--combine", "mean", "--resume", ok=False)
    assert r.exit_code == 2 and "combine" in r.stderr


# --- the combined fitness ------------------------------------------------------------------

def _two(pset, flat_h: bool = False) -> CombinedEvaluator:
    """Fitness on two synthetic benchmarks; with `flat_h` the second's H is the same for every architecture."""
    a, b = synthetic_inputs(seed=0), synthetic_inputs(seed=1)
    truth_b = -planted_truth(b)  # the other benchmark ranks in reverse
    if flat_h:
        h = b["H"]
        b = {**b, "H": Weighted.from_weights(h.values[1:2].expand_as(h.values).clone(),
                                             h.weights[1:2].expand_as(h.weights).clone())}
    return CombinedEvaluator({"a": FitnessEvaluator(pset, a, planted_truth(a)),
                              "b": FitnessEvaluator(pset, b, truth_b)})


def test_combined_fitness_is_min_or_mean_of_the_benchmarks():
    pset = build_primitive_set(OPS)
    tree = parse_tree(TREE, pset)
    ev = _two(pset)(tree)
    parts = [p.fitness for p in ev.parts.values()]
    assert ev.fitness == min(parts) and parts[0] != parts[1]
    mean = _two(pset)
    mean.combine = "mean"
    assert mean(tree).fitness == pytest.approx(statistics.fmean(parts)) != ev.fitness


def test_a_tree_invalid_on_one_benchmark_is_invalid_naming_it():
    pset = build_primitive_set(OPS)
    ev = _two(pset, flat_h=True)(parse_tree(TREE, pset))
    assert not ev.valid and ev.reason is Invalid.CONSTANT and "on b" in ev.describe()


def test_the_proxy_takes_each_benchmarks_own_orientation(searched, other, tmp_path):
    out, best = searched
    # the two benchmarks oriented oppositely, whatever the search found, so the test can fail
    best["benchmarks"][1]["orientation"] = -best["benchmarks"][0]["orientation"]
    (tmp_path / "best.json").write_text(json.dumps(best))
    found = FoundProxy.load(tmp_path / "best.json")
    for entry in best["benchmarks"]:
        on = found.on_benchmark(entry["benchmark"])
        assert on.orientation == entry["orientation"] and on.found_on == entry["benchmark"]
    assert found.on_benchmark("another") is found


def test_normalized_fitness_divides_each_benchmarks_rho_by_its_scale():
    pset = build_primitive_set(OPS)
    tree = parse_tree(TREE, pset)
    plain = _two(pset)(tree)
    scaled = _two(pset)
    scaled.scales = {"a": 0.5, "b": 0.8}
    parts = {name: p.fitness for name, p in plain.parts.items()}
    assert scaled(tree).fitness == pytest.approx(min(parts["a"] / 0.5, parts["b"] / 0.8))


def test_normalize_hand_designed_records_each_benchmarks_scale(tmp_path, other, cache):
    evolve(tmp_path / "run", [FAKE_BENCHMARK, other], cache, "--normalize", "hand-designed")
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["normalize"] == "hand-designed"
    scales = [abs(e["scale"]["spearman"]) for e in best["benchmarks"]]
    assert all(e["scale"]["proxy"] == "num_params" for e in best["benchmarks"]) and all(s > 0 for s in scales)
    assert best["search"]["fitness"] == pytest.approx(min(e["search"]["fitness"] / s
                                                          for e, s in zip(best["benchmarks"], scales)))
    assert "--normalize hand-designed" in (tmp_path / "run" / "report.md").read_text()


def test_normalize_without_hand_designed_proxies_in_the_cache_is_one_line(tmp_path, other):
    r = evolve(tmp_path / "run", [FAKE_BENCHMARK, other], tmp_path / "empty_cache", "--normalize", "hand-designed",
               "--baselines", "none", ok=False)
    assert r.exit_code == 2 and "--baselines" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "empty_cache").exists()
