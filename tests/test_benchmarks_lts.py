"""The LiteTransformerSearch GPT-2 benchmark: results layout, model builder, proxy sites."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lpzero.benchmarks import BenchmarkError, get_benchmark
from lpzero.benchmarks.base import default_data_root
from lpzero.benchmarks.lts.gpt2_flex import FlexConfig, build_gpt2_flex, clean_cutoffs
from lpzero.benchmarks.lts.benchmark import PARAM_KEYS, LTSBenchmark

pytestmark = pytest.mark.data

DATA = default_data_root()
LTS_DIR = DATA / "lts_gpt2_wt103"



@pytest.fixture(scope="module")
def bench() -> LTSBenchmark:
    if not LTS_DIR.is_dir():
        pytest.skip(f"{LTS_DIR} not present")
    return LTSBenchmark(LTS_DIR, data_root=DATA)


@pytest.fixture(scope="module")
def smallest(bench: LTSBenchmark) -> list[str]:
    """The three architectures with the fewest parameters (cheap to run)."""
    return sorted(bench.ids(), key=lambda i: bench.architecture(i).reference_params["total"])[:3]


@pytest.fixture(scope="module")
def small_batch(bench: LTSBenchmark):
    return bench.make_batch(seed=0, batch_size=2, seq_len=32)


# --- the results directory ---------------------------------------------------------------


def test_ids_in_natural_order(bench: LTSBenchmark) -> None:
    ids = bench.ids()
    assert len(ids) == 200
    assert ids[:11] == [f"config_0_j{k}" for k in range(10)] + ["config_1_j0"]
    numbers = [tuple(int(x) for x in i[len("config_") :].split("_j")) for i in ids]
    assert numbers == sorted(numbers)


def test_architecture_fields(bench: LTSBenchmark) -> None:
    arch = bench.architecture("config_0_j0")
    assert arch.raw == pytest.approx(45.022968707221274)
    assert arch.ground_truth == -arch.raw
    assert arch.config["n_layer"] == 5
    assert set(arch.reference_params) == set(PARAM_KEYS)
    assert all(isinstance(v, int) for v in arch.reference_params.values())
    assert (bench.name, bench.raw_metric, bench.paper_batch_size, bench.paper_seq_len) == (
        "gpt2",
        "valid_ppl",
        16,
        192,
    )


@pytest.mark.slow
def test_param_counts_equal_archai_for_all_architectures(bench: LTSBenchmark) -> None:
    mismatched = {}
    for arch_id in bench.ids():
        ours, theirs = bench.count_params(arch_id), bench.architecture(arch_id).reference_params
        if ours != theirs:
            mismatched[arch_id] = (ours, theirs)
    assert not mismatched, f"{len(mismatched)} architectures differ, e.g. {next(iter(mismatched.items()))}"


# --- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_forward_backward_gives_finite_loss_and_block_gradients(
    bench, smallest, small_batch, rank
) -> None:
    model = bench.build_model(smallest[rank], seed=0)
    loss = bench.loss(model, small_batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for site in bench.zc_sites(model).weights:
        grad = site.param.grad
        assert grad is not None, site.name
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, site.name


def test_same_seed_same_weights_and_global_rng_untouched(bench, smallest) -> None:
    rng_before = torch.get_rng_state()
    a = bench.build_model(smallest[0], seed=3).state_dict()
    b = bench.build_model(smallest[0], seed=3).state_dict()
    c = bench.build_model(smallest[0], seed=4).state_dict()
    assert torch.equal(rng_before, torch.get_rng_state())
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Every randomly drawn tensor changes with the seed (constant ones: biases, LayerNorms).
    random_keys = [k for k in a if a[k].std() > 0]
    assert random_keys and all(not torch.equal(a[k], c[k]) for k in random_keys)


def test_zc_sites_capture_documented_shapes(bench, smallest, small_batch) -> None:
    model = bench.build_model(smallest[1], seed=0)
    cfg = model.cfg
    sites = bench.zc_sites(model)
    batch_size, seq_len = small_batch.shape
    captured: dict[str, torch.Tensor] = {}

    def hook(key: str, where: str):
        def grab(module, inputs, output):
            captured[key] = inputs[0] if where == "input" else output

        return grab

    handles = [sites.embedding.register_forward_hook(hook("embedding", "output"))]
    for kind in ("activations", "heads", "softmax"):
        for site in getattr(sites, kind):
            handles.append(site.module.register_forward_hook(hook(f"{kind}{site.layer}", site.where)))
    bench.loss(model, small_batch).backward()
    for h in handles:
        h.remove()

    d = cfg.d_model
    assert captured["embedding"].shape == (batch_size, seq_len, d)
    for kind in ("activations", "heads", "softmax"):
        assert [s.layer for s in getattr(sites, kind)] == list(range(cfg.n_layer))
    for i in range(cfg.n_layer):
        assert captured[f"activations{i}"].shape == (batch_size, seq_len, cfg.d_inner[i])
        assert captured[f"heads{i}"].shape == (batch_size, seq_len, d)
        probs = captured[f"softmax{i}"]
        assert probs.shape == (batch_size, cfg.n_head[i], seq_len, seq_len)
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
        assert probs.triu(1).abs().max() == 0  # causal
    expected = {}
    for i in range(cfg.n_layer):
        f = cfg.d_inner[i]
        expected.update({f"h.{i}.attn.c_attn": (d, 3 * d), f"h.{i}.attn.c_proj": (d, d),
                         f"h.{i}.mlp.c_fc": (d, f), f"h.{i}.mlp.c_proj": (f, d)})
    assert {w.name: tuple(w.param.shape) for w in sites.weights} == expected
    assert all(w.layer == int(w.name.split(".")[1]) for w in sites.weights)


def test_cutoffs_trimmed_to_vocabulary() -> None:
    assert clean_cutoffs([19997, 39997, 199997, 50264], 50264) == [19997, 39997, 50264]
    assert clean_cutoffs([], 100) == [100]
    with pytest.raises(BenchmarkError):
        clean_cutoffs([30, 20], 100)


@pytest.mark.parametrize(
    "div_val, d_embed, tie_weight",
    [(1, 32, True), (1, 16, True), (2, 32, True), (4, 64, True), (2, 32, False)],
)
def test_adaptive_softmax_is_a_distribution(div_val: int, d_embed: int, tie_weight: bool) -> None:
    """exp(-nll) summed over the whole (small) vocabulary is 1 for any hidden state."""
    vocab = 100
    cfg = {"n_token": vocab, "n_layer": 1, "d_model": 32, "n_head": 2, "d_inner": 48, "d_embed": d_embed,
           "div_val": div_val, "cutoffs": [20, 40, 199997, vocab], "tie_weight": tie_weight,
           "tie_projs": [False, True, True, True], "tgt_len": 16}
    model = build_gpt2_flex(cfg, seed=0)
    hidden = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(vocab).repeat(3)
    nll = model.lm_head(hidden.repeat_interleave(vocab, 0), targets).view(3, vocab)
    assert torch.allclose(torch.logsumexp(-nll, dim=1), torch.zeros(3), atol=1e-5)
    ids = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(model.loss(ids))


# --- other results directories and bad input ---------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tmp_lts(tmp_path: Path) -> Path:
    """A two-architecture results directory (config_10 and config_2) without params_summary."""
    source = LTS_DIR / "config_0" / "j0" / "model_config.yaml"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    for sub in ("config_10/j2", "config_2/j0"):
        (tmp_path / sub).mkdir(parents=True)
        shutil.copy(source, tmp_path / sub / "model_config.yaml")
    ppl = "config_10_j2:\n  valid_ppl: 30.5\nconfig_2_j0:\n  valid_ppl: 41.0\n"
    _write(tmp_path / "ppl_summary.yaml", ppl)
    return tmp_path


def test_lts_directory_anywhere_loads(tmp_lts: Path) -> None:
    bench = get_benchmark(f"lts:{tmp_lts}", data=DATA)
    assert bench.name == f"lts:{tmp_lts}"
    assert bench.ids() == ["config_2_j0", "config_10_j2"]
    arch = bench.architecture("config_10_j2")
    assert (arch.raw, arch.ground_truth, arch.reference_params) == (30.5, -30.5, {})
    assert bench.count_params("config_2_j0")["total"] == 8505006  # config_0_j0's Archai count


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="results directory not found"):
        LTSBenchmark(tmp_path / "nowhere", data_root=DATA)


def test_missing_ppl_summary(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="ppl_summary.yaml: file not found"):
        LTSBenchmark(tmp_path, data_root=DATA)


def test_malformed_yaml_names_the_file(tmp_lts: Path) -> None:
    _write(tmp_lts / "ppl_summary.yaml", "config_2_j0: {valid_ppl: [1, 2\n")
    with pytest.raises(BenchmarkError, match=r"ppl_summary\.yaml: malformed YAML") as err:
        LTSBenchmark(tmp_lts, data_root=DATA)
    assert "\n" not in str(err.value)


def test_malformed_model_config_names_the_file(tmp_lts: Path) -> None:
    config = _write(tmp_lts / "config_2" / "j0" / "model_config.yaml", "n_layer: [3\n")
    bench = LTSBenchmark(tmp_lts, data_root=DATA)
    with pytest.raises(BenchmarkError, match="malformed YAML") as err:
        bench.architecture("config_2_j0")
    assert str(config) in str(err.value)


def test_inconsistent_model_config_names_the_file_and_key(tmp_lts: Path) -> None:
    config = tmp_lts / "config_2" / "j0" / "model_config.yaml"
    config.write_text(config.read_text().replace("n_layer: 5", "n_layer: 4"))
    bench = LTSBenchmark(tmp_lts, data_root=DATA)
    with pytest.raises(BenchmarkError, match="n_head has 5 entries for n_layer 4") as err:
        bench.count_params("config_2_j0")
    assert str(config) in str(err.value)


def test_ppl_entry_without_valid_ppl(tmp_lts: Path) -> None:
    _write(tmp_lts / "ppl_summary.yaml", "config_2_j0:\n  test_ppl: 3.0\n")
    with pytest.raises(BenchmarkError, match="config_2_j0 has no numeric valid_ppl"):
        LTSBenchmark(tmp_lts, data_root=DATA)


def test_ppl_id_without_model_config(tmp_lts: Path) -> None:
    _write(tmp_lts / "ppl_summary.yaml", "config_7_j1:\n  valid_ppl: 3.0\n")
    with pytest.raises(BenchmarkError, match=r"config_7.j1.model_config\.yaml: file not found"):
        LTSBenchmark(tmp_lts, data_root=DATA)


def test_unknown_id(tmp_lts: Path) -> None:
    bench = LTSBenchmark(tmp_lts, data_root=DATA)
    for call in (bench.architecture, bench.count_params, lambda i: bench.build_model(i, 0)):
        with pytest.raises(BenchmarkError, match="unknown architecture id 'config_3_j0'"):
            call("config_3_j0")


def test_flex_config_rejects_unsupported_div_val() -> None:
    with pytest.raises(BenchmarkError, match="div_val 0"):
        FlexConfig.from_dict({"n_token": 10, "n_layer": 1, "d_model": 8, "n_head": 2, "d_inner": 8,
                              "d_embed": 8, "div_val": 0, "cutoffs": []})


@pytest.mark.slow
def test_parameter_count_proxies_reproduce_paper_table_3(bench: LTSBenchmark) -> None:
    """Decoder (non-embedding) params: rho .967 / tau .847; all params: .737 / .582 (the LPZero paper's Table 3)."""
    from lpzero.search.fitness import spearman_fitness

    truth = [bench.architecture(a).ground_truth for a in bench.ids()]
    for key, rho, tau in (("nonembedding", 0.967, 0.847), ("total", 0.737, 0.582)):
        ev = spearman_fitness([bench.count_params(a)[key] for a in bench.ids()], truth, with_kendall=True)
        assert (round(ev.spearman, 3), round(ev.kendall, 3)) == (rho, tau)


def _edit_config(lts: Path, arch: str, **changes) -> None:
    import yaml

    i, k = arch.removeprefix("config_").split("_j")
    path = lts / f"config_{i}" / f"j{k}" / "model_config.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **changes}))


def test_the_default_sequence_follows_the_models_tgt_len(tmp_lts: Path) -> None:
    from lpzero.cache import CacheSettings

    _edit_config(tmp_lts, "config_2_j0", tgt_len=32)
    bench = get_benchmark(f"lts:{tmp_lts}", data=DATA)
    assert bench.max_seq_len() == 32 and bench.default_seq_len == 32
    assert CacheSettings.for_benchmark(bench).seq_len == 32
    with pytest.raises(BenchmarkError, match="sequence length 64 exceeds the 32 positions"):
        CacheSettings.for_benchmark(bench, seq_len=64)


@pytest.mark.parametrize("changes, message", [
    ({"n_layer": 2.7}, "n_layer must be an integer, got 2.7"),
    ({"d_model": "wide"}, "d_model must be an integer"),
    ({"tgt_len": 0}, "tgt_len must be at least 1"),
])
def test_a_malformed_model_config_names_the_file(tmp_lts: Path, changes: dict, message: str) -> None:
    _edit_config(tmp_lts, "config_2_j0", **changes)
    with pytest.raises(BenchmarkError, match=f"config_2/j0/model_config.yaml: {message}"):
        get_benchmark(f"lts:{tmp_lts}", data=DATA).count_params("config_2_j0")


@pytest.mark.parametrize("ppl", [".nan", "-3.0", ".inf", "0.5"])
def test_a_perplexity_that_is_not_one_is_refused(tmp_lts: Path, ppl: str) -> None:
    _write(tmp_lts / "ppl_summary.yaml", f"config_10_j2:\n  valid_ppl: {ppl}\nconfig_2_j0:\n  valid_ppl: 41.0\n")
    with pytest.raises(BenchmarkError, match="config_10_j2 has valid_ppl"):
        get_benchmark(f"lts:{tmp_lts}", data=DATA)


def test_a_vocabulary_smaller_than_the_tokenizer_is_one_error(tmp_lts: Path) -> None:
    _edit_config(tmp_lts, "config_2_j0", n_token=1000, cutoffs=[])
    with pytest.raises(BenchmarkError, match="n_token 1000 is smaller than the GPT-2 tokenizer's"):
        get_benchmark(f"lts:{tmp_lts}", data=DATA).build_model("config_2_j0", 0)


def test_a_malformed_tokenizer_file_is_one_error(tmp_path: Path) -> None:
    from lpzero.benchmarks.text import gpt2_tokenizer

    folder = tmp_path / "tokenizers" / "gpt2"
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text("{not json")
    shutil.copy(DATA / "tokenizers" / "gpt2" / "merges.txt", folder / "merges.txt")
    with pytest.raises(BenchmarkError, match="not a GPT-2 tokenizer"):
        gpt2_tokenizer(tmp_path)


# --- another model family in the same layout --------------------------------------------


def _with_own_counts(lts: Path) -> Path:
    """`lts` with a params_summary.yaml of our builder's counts (as the GPT-2 directory's are), then every
    config's vocabulary changed, as a Transformer-XL run's word vocabulary differs from GPT-2's."""
    import yaml

    bench = LTSBenchmark(lts, data_root=DATA)
    counts = {a: bench.count_params(a) for a in bench.ids()}
    _write(lts / "params_summary.yaml", yaml.safe_dump(counts))
    for arch in counts:
        _edit_config(lts, arch, n_token=267736, cutoffs=[19997, 39997, 199997])
    return lts


def _info(*args: str):
    from click.testing import CliRunner

    from lpzero.cli import main

    return CliRunner().invoke(main, ["info", *args, "--data", str(DATA)])


def test_a_directory_our_builder_does_not_reproduce_is_refused_naming_how_many_match(tmp_lts: Path) -> None:
    result = _info(f"lts:{_with_own_counts(tmp_lts)}")
    assert result.exit_code == 2, result.output
    assert "reproduces the parameter counts of 0 of 2 architectures checked" in result.output
    assert "params_summary.yaml" in result.output and "--allow-param-mismatch" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_allow_param_mismatch_goes_on_with_another_family(tmp_lts: Path) -> None:
    result = _info(f"lts:{_with_own_counts(tmp_lts)}", "--allow-param-mismatch")
    assert result.exit_code == 0, result.output
    assert "reference      0/2 architectures match the benchmark's own parameter counts" in result.output


def test_nas_refuses_an_lts_space_of_another_family_before_work(tmp_lts: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lpzero.cli import main

    out = tmp_path / "nas"
    result = CliRunner().invoke(main, ["nas", "--space", f"lts:{_with_own_counts(tmp_lts)}", "--proxy", "num_params",
                                       "--data", str(DATA), "--out", str(out)])
    assert result.exit_code == 2 and "reproduces the parameter counts of 0 of 2" in result.output, result.output
    assert not out.exists()
