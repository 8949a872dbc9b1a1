"""lpzero.report.results: best.json is checked before anything uses it."""
import json

import pytest

from lpzero.errors import ResultError
from lpzero.report.results import PRIMITIVE_SET_VERSION, check_benchmark, load_best, split_ids

GOOD = {"tree": "layer_sum__Lw(l1__Tw(W))", "primitive_set_version": PRIMITIVE_SET_VERSION, "benchmark": "gpt2",
        "split": {"search_ids": ["a", "b"], "heldout_ids": ["c"]}}


def write(tmp_path, content):
    path = tmp_path / "best.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_good_file_loads_and_a_folder_means_its_best_json(tmp_path):
    write(tmp_path, GOOD)
    assert load_best(tmp_path) == GOOD


@pytest.mark.parametrize("content, message", [
    ("not json", "malformed JSON \\(line 1\\)"),
    ([GOOD], "a JSON list, not an object"),
    ({"tree": "x"}, "no 'primitive_set_version'"),
    ({**GOOD, "primitive_set_version": "0"}, "primitive set version 0"),
    ({**GOOD, "lpzero_best_version": 2}, "layout version 2"),
    ({**GOOD, "orientation": 0}, "orientation must be 1 or -1"),
])
def test_load_best_names_what_is_wrong(tmp_path, content, message):
    with pytest.raises(ResultError, match=message):
        load_best(write(tmp_path, content))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ResultError, match="nope.json: file not found"):
        load_best(tmp_path / "nope.json")


def test_a_proxy_is_checked_against_the_benchmark_it_was_found_on():
    check_benchmark(GOOD, "gpt2", "best.json")
    with pytest.raises(ResultError, match="found on 'gpt2', not 'flexibert'"):
        check_benchmark(GOOD, "flexibert", "best.json")


def test_split_ids_keeps_the_selection_order_and_refuses_strangers():
    assert split_ids(GOOD, "search", ["b", "c", "a"]) == ["b", "a"]
    assert split_ids(GOOD, "all", ["b", "c"]) == ["b", "c"]
    with pytest.raises(ResultError, match="outside the selection: c"):
        split_ids(GOOD, "heldout", ["a", "b"])


# --- lpzero.report.rank: scoring exactly, one model per architecture ----------------------

RANK_IDS = ["tiny0", "tiny3", "tiny4"]


def rank_settings():
    from lpzero.cache import CacheSettings

    # by module, so that monkeypatching fake_benchmark.TinyGPT2Benchmark reaches it
    return CacheSettings("fake_benchmark:TinyGPT2Benchmark", batch_size=2, seq_len=16, samples=64)


def test_score_exactly_builds_one_model_per_architecture_for_all_its_proxies(monkeypatch):
    from fake_benchmark import TinyGPT2Benchmark
    from lpzero.proxies import HAND_DESIGNED, ProxyContext
    from lpzero.proxies.found_proxy import FoundProxy
    from lpzero.workflows.exact import score_exactly

    builds = []
    build = TinyGPT2Benchmark.build_model
    monkeypatch.setattr(TinyGPT2Benchmark, "build_model",
                        lambda self, *a, **k: builds.append(a) or build(self, *a, **k))
    found = FoundProxy.from_best({**GOOD, "tree": "layer_sum__Lw(frobenius__Tw(G))", "orientation": -1}, name="found")
    proxies = [HAND_DESIGNED["num_params"], HAND_DESIGNED["grad_norm"], found]
    s = rank_settings()
    results = score_exactly(proxies, s, RANK_IDS, "cpu")
    assert list(results) == ["num_params", "grad_norm", "found"] and len(builds) == len(RANK_IDS)
    bench = s.open_benchmark()
    for i, a in enumerate(RANK_IDS):  # each as it scores alone, bitwise
        batch = bench.make_batch(s.batch_seed, s.batch_size, s.seq_len)
        assert [results[p.name][i].value for p in proxies] == [p.score(ProxyContext(bench, a, s.model_seed, batch))
                                                               for p in proxies]
    assert results["found"][0].value < 0  # oriented


def test_pass_free_and_found_proxies_keep_their_rank_functions():
    from lpzero.proxies import HAND_DESIGNED, ProxyContext
    from lpzero.proxies.found_proxy import FoundProxy
    from lpzero.workflows.exact import rank_pass_free, score_exactly, score_found_exactly

    s = rank_settings()
    values, seconds = rank_pass_free(["num_params", "decoder_params"], s, RANK_IDS, "cpu")
    exact = score_exactly([HAND_DESIGNED["num_params"], HAND_DESIGNED["decoder_params"]], s, RANK_IDS, "cpu")
    assert values == [[r.value for r in exact[n]] for n in ("num_params", "decoder_params")]
    assert len(seconds) == 2 and all(len(x) == len(RANK_IDS) for x in seconds)
    best = [GOOD, {**GOOD, "tree": "layer_sum__Lw(frobenius__Tw(G))"}]
    scores, per_arch = score_found_exactly(best, s, RANK_IDS, "cpu")
    bench = s.open_benchmark()
    batch = bench.make_batch(s.batch_seed, s.batch_size, s.seq_len)
    assert scores == [[FoundProxy.from_best(b).score(ProxyContext(bench, a, s.model_seed, batch)) for a in RANK_IDS]
                      for b in best]
    assert len(per_arch) == len(RANK_IDS) and all(t > 0 for t in per_arch)


def test_score_exactly_refuses_two_proxies_of_one_name():
    from lpzero.errors import LPZeroError
    from lpzero.proxies import HAND_DESIGNED
    from lpzero.workflows.exact import score_exactly

    with pytest.raises(LPZeroError, match="distinct names"):
        score_exactly([HAND_DESIGNED["snip"], HAND_DESIGNED["snip"]], rank_settings(), RANK_IDS, "cpu")


def test_an_invalid_rank_row_says_why():
    from lpzero.report.rank import format_table, rank_row

    row = rank_row("flat", [1.0, 1.0, 1.0], [0.1, 0.2, 0.3], [0.0] * 3)
    line = format_table([row], "ppl").splitlines()[1]
    assert row.spearman is None and "invalid" in line and f"({row.invalid_reason})" in line
    assert row.invalid_reason  # e.g. "constant scores"
