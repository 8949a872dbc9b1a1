"""The Transformer-XL family in the LTS benchmark: a results directory read as its own family, and every
command on it (the model itself is tested in tests/test_transxl.py)."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from lpzero.benchmarks import get_benchmark, get_space
from lpzero.benchmarks.lts.families import GPT2_FLEX, TRANSFORMER_XL
from lpzero.benchmarks.lts.transxl import TransXL, count_transxl_params
from lpzero.cli import main

pytestmark = pytest.mark.data

#: a tiny word-level Transformer-XL config, as an LTS run records it (`vocab: word` names the family)
TINY = {"n_token": 300, "n_layer": 2, "d_model": 32, "n_head": [4, 2], "d_inner": [48, 24], "d_embed": 32,
        "div_val": 2, "cutoffs": [100, 200, 300], "tie_projs": [False, True, True], "d_head": -1, "attn_type": 0,
        "tgt_len": 32, "mem_len": 32, "dropout": 0.1, "dropatt": 0.0, "vocab": "word"}


def test_the_shipped_directories_are_read_as_their_families():
    txl, gpt2 = get_benchmark("transxl"), get_benchmark("gpt2")
    assert txl.family is TRANSFORMER_XL and gpt2.family is GPT2_FLEX
    txl.check_family()  # the family's builder reproduces the directory's own counts
    model = txl.build_model(txl.ids()[0], seed=0)
    assert isinstance(model, TransXL) and txl.count_params(txl.ids()[0]) == txl.architecture(txl.ids()[0]).reference_params
    batch = txl.make_batch(0, 2, 16)
    assert batch.input_ids.shape == (2, 16) and int(batch.input_ids.max()) < 267_736


def test_info_of_the_transxl_directory_matches_200_of_200_parameter_counts():
    result = CliRunner().invoke(main, ["info", "transxl"])
    assert result.exit_code == 0, result.output
    assert "200/200 architectures match" in result.output


def _tiny_directory(root, n: int = 4):
    """A results directory of `n` tiny Transformer-XL architectures with made-up perplexities."""
    ppl, params = {}, {}
    for i in range(n):
        config = {**TINY, "d_inner": [48 + 16 * i, 24], "n_head": [4, 2 if i % 2 else 4]}
        folder = root / f"config_{i}" / "j0"
        folder.mkdir(parents=True)
        (folder / "model_config.yaml").write_text(yaml.safe_dump(config))
        ppl[f"config_{i}_j0"] = {"valid_ppl": 100.0 - 7 * i}
        params[f"config_{i}_j0"] = count_transxl_params(config)
    (root / "ppl_summary.yaml").write_text(yaml.safe_dump(ppl))
    (root / "params_summary.yaml").write_text(yaml.safe_dump(params))
    return root


def test_a_transxl_results_directory_is_cached_ranked_and_searched(tmp_path):
    folder = _tiny_directory(tmp_path / "txl")
    common = ["--batch-size", "2", "--seq-len", "16", "--cache-dir", str(tmp_path / "cache")]
    ranked = CliRunner().invoke(main, ["rank", f"lts:{folder}", "--proxies", "grad_norm,num_params", "--no-plots",
                                       "--out", str(tmp_path / "rank"), *common])
    assert ranked.exit_code == 0, ranked.output
    rows = json.loads((tmp_path / "rank" / "rank.json").read_text())
    assert [r["proxy"] for r in rows] == ["grad_norm", "num_params"] and all(r["n"] == 4 for r in rows)
    evolved = CliRunner().invoke(main, ["evolve", "--benchmark", f"lts:{folder}", "--holdout", "0.25", "--sample", "3",
                                        "--population", "6", "--iterations", "5", "--runs", "1", "--baselines",
                                        "none", "--out", str(tmp_path / "run"), *common])
    assert evolved.exit_code == 0, evolved.output
    assert json.loads((tmp_path / "run" / "best.json").read_text())["benchmark"] == f"lts:{folder}"


def test_the_transxl_space_builds_candidates_of_its_family():
    space = get_space("transxl")
    config = space.decode([0] * len(space.choices()))
    assert space.name == "transxl" and isinstance(space.build_model(config, 0), TransXL)
    assert space.count_params(config) == count_transxl_params(space.model_config(config))
