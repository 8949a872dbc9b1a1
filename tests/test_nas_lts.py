"""The LTS GPT-2 open space (reads ../shared/data): choices, genome <-> config, model_config.yaml round trip."""
from __future__ import annotations

import random

import pytest
import yaml

from fake_benchmark import TinyGPT2Benchmark
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.benchmarks.lts.benchmark import LTSBenchmark
from lpzero.nas import NASError, get_space
from lpzero.benchmarks.lts.space import LTSSpace
from lpzero.primitives import default_pset, parse_tree, tree_inputs
from lpzero.proxies import score_tree

pytestmark = pytest.mark.data

#: a forward-only proxy (H): the shape of the found GPT-2 proxy
H_TREE = "frobenius__Lh(l1__Th(abslog__Th(square__Th(H))))"


@pytest.fixture(scope="module")
def space() -> LTSSpace:
    return get_space("lts")


def _random_genomes(space, n, seed=0):
    rng = random.Random(seed)
    return [[rng.randrange(c) for c in space.choices()] for _ in range(n)]


def test_the_choices_cover_every_benchmark_architecture(space):
    v = space.values
    for arch in space.bench.architectures():
        c = arch.config
        assert c["n_layer"] in v["n_layer"] and c["d_model"] in v["d_model"]
        assert c["d_embed"] in v["d_embed"] and c["div_val"] in v["div_val"]
        assert set(c["n_head"]) <= set(v["n_head"])
        assert min(v["d_inner"]) <= min(c["d_inner"]) and max(c["d_inner"]) <= max(v["d_inner"])
    assert v["n_layer"] == list(range(2, 17)) and len(space.choices()) == 4 + 2 * 16


def test_genome_config_round_trip(space):
    for genome in _random_genomes(space, 50):
        config = space.decode(genome)
        assert len(config["n_head"]) == len(config["d_inner"]) == config["n_layer"]
        assert space.decode(space.encode(config)) == config


def test_genes_beyond_n_layer_do_not_change_the_key(space):
    genome = _random_genomes(space, 1)[0]
    genome[0] = 0  # n_layer 2: layers 2..15 do not matter
    other = genome[:8] + [(g + 1) % n for g, n in zip(genome[8:], space.choices()[8:])]
    assert space.key(space.decode(genome)) == space.key(space.decode(other))
    assert space.canonical(other) == space.canonical(genome) == space.encode(space.decode(genome))


def test_a_config_outside_the_space_is_refused(space):
    config = space.decode(_random_genomes(space, 1)[0])
    with pytest.raises(NASError, match="d_inner 1071 is not one of its choices"):
        space.encode({**config, "d_inner": [1071] * config["n_layer"]})


def test_written_model_configs_read_back_through_the_benchmark_loader(space, tmp_path):
    configs = [space.decode(g) for g in _random_genomes(space, 3, seed=5)]
    space.write(configs, tmp_path)
    # the loader needs a ground truth file; the written directory is otherwise complete
    (tmp_path / "ppl_summary.yaml").write_text(yaml.safe_dump({f"config_{k}_j0": {"valid_ppl": 30.0}
                                                               for k in range(3)}))
    bench = LTSBenchmark(tmp_path, data_root=space.bench.data_root, name="lts:written")
    for k, config in enumerate(configs):
        arch = bench.architecture(f"config_{k}_j0")
        assert arch.config == space.model_config(config)
        assert bench.count_params(arch.id) == space.count_params(config) == arch.reference_params


def test_a_benchmark_config_builds_the_benchmark_model(space):
    arch = space.bench.architecture("config_3_j7")
    config = {k: arch.config[k] for k in ("n_layer", "d_model", "d_embed", "div_val", "n_head", "d_inner")}
    a, b = space.build_model(config, 0), space.bench.build_model(arch.id, 0)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))


def test_the_smallest_architecture_has_the_fewest_parameters(space):
    least = space.count_params(space.smallest())["total"]
    assert all(space.count_params(space.decode(g))["total"] >= least for g in _random_genomes(space, 30))


@pytest.mark.parametrize("where", ["tiny", "lts"])
def test_forward_only_inputs_score_as_the_full_pass(space, where):
    pset = default_pset()
    tree = parse_tree(H_TREE, pset)
    if where == "tiny":
        bench = TinyGPT2Benchmark()
        model = bench.build_model("tiny4", 0)
    else:
        bench = space.proxy_benchmark()
        genome = _random_genomes(space, 1, seed=2)[0]
        genome[:2] = [1, 0]  # 3 layers of width 64: small and quick
        model = space.build_model(space.decode(genome), 0)
    batch = bench.make_batch(0, 2, 16)
    assert score_tree(tree, extract_inputs(bench, model, batch, tree_inputs(tree))) == \
        score_tree(tree, extract_inputs(bench, model, batch))


def test_gpt2_names_the_same_space(space):
    gpt2 = get_space("gpt2")
    assert isinstance(gpt2, LTSSpace) and gpt2.choices() == space.choices()
