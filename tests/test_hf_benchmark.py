"""`hf:FILE` benchmarks, `hf:SPACE.yaml` spaces and `lpzero score`: any transformers family from a file, no code.

Every test writes its tiny tokenizer, table, space or checkpoint itself (tests/hf_fixtures.py); the
tokenizers are trained on WikiText-2, so these tests read the data.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import yaml
from click.testing import CliRunner

from hf_fixtures import ROWS, VOCAB, llama, tiny_tokenizer, write_table
from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.sites import BUILTIN_SITE_MAPS, build_tiny
from lpzero.cli import main
from lpzero.workflows.score import score_model

pytestmark = pytest.mark.data

TINY_BATCH = ["--batch-size", "2", "--seq-len", "16"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *words) -> None:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert len(text.splitlines()) == 1 and text.startswith("lpzero: error:"), text
    for word in words:
        assert word in text, text


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("hf") / "t", ROWS)


# --- the table -------------------------------------------------------------------------------

def test_a_table_is_a_benchmark_of_its_architectures(table):
    bench = get_benchmark(f"hf:{table}")
    assert bench.ids() == [r[0] for r in ROWS] and bench.raw_metric == "valid_ppl"
    arch = bench.architecture("a3")
    assert arch.raw == 60.0 and arch.ground_truth == -60.0  # lower perplexity is better
    model = bench.build_model("a3", seed=1)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 2
    same = bench.build_model("a3", seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    assert bench.count_params("a3")["total"] == sum(p.numel() for p in model.parameters())
    batch = bench.make_batch(0, 2, 16)
    assert batch.input_ids.shape == (2, 16) and int(batch.input_ids.max()) < VOCAB


def test_info_rank_and_evolve_run_on_a_table(table, tmp_path):
    info = invoke("info", f"hf:{table}")
    assert info.exit_code == 0 and "architectures  5" in info.output, info.output
    cache = ["--cache-dir", tmp_path / "cache", *TINY_BATCH]
    ranked = invoke("rank", f"hf:{table}", "--proxies", "grad_norm,num_params,softmax_confidence", "--no-plots",
                    "--out", tmp_path / "rank", *cache)
    assert ranked.exit_code == 0, ranked.output
    assert [r["n"] for r in json.loads((tmp_path / "rank" / "rank.json").read_text())] == [5, 5, 5]
    evolved = invoke("evolve", "--benchmark", f"hf:{table}", "--sample", "3", "--holdout", "0.4", "--population", "6",
                     "--iterations", "5", "--runs", "1", "--baselines", "none", "--out", tmp_path / "run", *cache)
    assert evolved.exit_code == 0, evolved.output
    assert json.loads((tmp_path / "run" / "best.json").read_text())["benchmark"] == f"hf:{table.resolve()}"


def test_a_table_can_list_its_architectures_in_a_csv_file(tmp_path):
    folder = tmp_path / "t"
    write_table(folder, ROWS[:1])
    keys = list(llama(1, 16, 32))
    rows = [",".join(["id", "metric", *keys])] + [",".join([i, str(m), *(str(c[k]) for k in keys)]) for i, c, m in ROWS]
    (folder / "archs.csv").write_text("\n".join(rows) + "\n")
    spec = yaml.safe_load((folder / "table.yaml").read_text())
    (folder / "table.yaml").write_text(yaml.safe_dump({**spec, "architectures": "archs.csv"}))
    bench = get_benchmark(f"hf:{folder / 'table.yaml'}")
    assert bench.ids() == [r[0] for r in ROWS] and bench.architecture("a4").config["num_hidden_layers"] == 3


@pytest.mark.parametrize("change, words", [
    ({"architectures": [{"id": "x", "config": {"num_hidden_layer": 2}, "metric": 1.0}]},
     ["'num_hidden_layer'", "llama"]),
    ({"architectures": [{"id": "x", "config": llama(1, 30, 32, heads=4), "metric": 1.0}]},
     ["architecture x", "transformers"]),
    ({"colour": "red"}, ["unknown key 'colour'"]),
    ({"higher_is_better": "yes"}, ["higher_is_better must be true or false"]),
    ({"model_type": "nosuch"}, ["'nosuch'"]),
    ({"architectures": [{"id": "a b", "config": {}, "metric": 1.0}]}, ["id must be a name"]),
    ({"architectures": [{"id": "x", "config": {}, "metric": "low"}]}, ["metric must be a finite number"]),
])
def test_a_malformed_table_is_one_line_before_any_work(table, tmp_path, change, words):
    folder = tmp_path / "bad"
    shutil.copytree(table.parent, folder)
    spec = yaml.safe_load((folder / "table.yaml").read_text())
    (folder / "table.yaml").write_text(yaml.safe_dump({**spec, **change}))
    result = invoke("cache", f"hf:{folder / 'table.yaml'}", "--cache-dir", tmp_path / "cache", *TINY_BATCH)
    one_line_error(result, *words)
    assert not (tmp_path / "cache").exists()


def test_a_tokenizer_larger_than_the_vocabulary_is_one_line(tmp_path):
    folder = tmp_path / "t"
    write_table(folder, [("a", {**llama(1, 16, 32), "vocab_size": 60}, 1.0)])
    one_line_error(invoke("info", f"hf:{folder / 'table.yaml'}"), "tok", "60")


def test_a_family_without_a_site_map_is_one_line_naming_the_supported_ones(tmp_path):
    folder = tmp_path / "t"
    write_table(folder, [("a", {"vocab_size": VOCAB}, 1.0)], model_type="t5")
    one_line_error(invoke("info", f"hf:{folder / 'table.yaml'}"), "'t5'", "llama", "SITE_MAPS.register")


# --- the space -------------------------------------------------------------------------------

def _space(folder, choices: dict):
    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tok")
    spec = {"model_type": "llama", "tokenizer": "tok/", "choices": choices,
            "fixed": {"vocab_size": VOCAB, "max_position_embeddings": 64, "num_key_value_heads": 1}}
    (folder / "space.yaml").write_text(yaml.safe_dump(spec))
    return folder / "space.yaml"


def test_nas_searches_a_space_of_choices_and_writes_loadable_configs(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    space = _space(tmp_path / "s", {"num_hidden_layers": [1, 2], "hidden_size": [16, 24, 32],
                                    "intermediate_size": [32, 64], "num_attention_heads": [2, 3]})
    out = tmp_path / "nas"
    result = invoke("nas", "--space", f"hf:{space}", "--proxy", "grad_norm", "--population", "6", "--generations",
                    "2", "--out", out, *TINY_BATCH)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] and all("not a multiple" in reason or "divisible" in reason
                                      for reason in summary["dropped"])  # hidden 16 or 32 with 3 heads
    config = AutoConfig.from_pretrained(out / "chosen" / "candidate_0")
    assert config.model_type == "llama" and config.hidden_size == summary["chosen"]["config"]["hidden_size"]
    model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == summary["chosen"]["params"]


def test_a_space_key_the_family_does_not_know_is_one_line(tmp_path):
    space = _space(tmp_path / "s", {"num_hidden_layer": [1, 2]})
    one_line_error(invoke("nas", "--space", f"hf:{space}", "--proxy", "grad_norm", "--out", tmp_path / "nas"),
                   "'num_hidden_layer'")
    assert not (tmp_path / "nas").exists()


def test_a_table_is_a_tabular_space_too(table, tmp_path):
    result = invoke("nas", "--space", f"tabular:hf:{table}", "--proxy", "num_params", "--out", tmp_path / "nas",
                    "--cache-dir", tmp_path / "cache", *TINY_BATCH)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "nas" / "summary.json").read_text())["evaluated"] == len(ROWS)


# --- lpzero score ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ck") / "llama"
    build_tiny("llama", seed=3).save_pretrained(folder)
    tiny_tokenizer(folder)
    return folder


@pytest.mark.parametrize("proxy", ["grad_norm", "softmax_confidence", "-num_params"])
def test_score_prints_one_model_s_score(checkpoint, proxy):
    result = invoke("score", checkpoint, "--proxy", proxy, "--json", *TINY_BATCH)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["model"]["model_type"] == "llama" and record["batch"] == [2, 16]
    assert (record["score"] < 0) == proxy.startswith("-")


def test_score_of_a_found_proxy_reading_h_and_of_a_config_with_seeded_weights(checkpoint, found):
    by_tree = invoke("score", checkpoint, "--proxy", found, "--json", *TINY_BATCH)
    assert by_tree.exit_code == 0, by_tree.output
    first = invoke("score", checkpoint / "config.json", "--proxy", "grad_norm", "--json", "--model-seed", "3",
                   *TINY_BATCH)
    again = invoke("score", checkpoint / "config.json", "--proxy", "grad_norm", "--json", "--model-seed", "3",
                   *TINY_BATCH)
    checkpoint_score = invoke("score", checkpoint, "--proxy", "grad_norm", "--json", *TINY_BATCH)
    values = [json.loads(r.output.strip().splitlines()[-1])["score"] for r in (first, again, checkpoint_score)]
    assert values[0] == values[1] == values[2]  # the checkpoint was saved from seed 3's random weights


def test_score_model_in_python_equals_the_command(checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    command = json.loads(invoke("score", checkpoint, "--proxy", "grad_norm", "--json", *TINY_BATCH)
                         .output.strip().splitlines()[-1])["score"]
    assert score_model(model, tokenizer, "grad_norm", batch_size=2, seq_len=16) == pytest.approx(command, rel=1e-6)
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    assert score_model(model, ids, "grad_norm") > 0  # a batch given as token ids


def test_score_of_a_family_without_a_site_map_is_one_line(tmp_path):
    from transformers import T5Config

    T5Config(vocab_size=VOCAB, d_model=16, num_layers=1).save_pretrained(tmp_path)
    one_line_error(invoke("score", tmp_path / "config.json", "--proxy", "grad_norm"), "'t5'", "SITE_MAPS")


def test_a_sentencepiece_only_checkpoint_is_scored_with_its_tokenizer_model(tmp_path, checkpoint):
    sentencepiece = pytest.importorskip("sentencepiece", reason="the optional extra lpzero[sentencepiece]")
    from lpzero.benchmarks import default_data_root

    text = (default_data_root() / "text" / "wikitext-2" / "valid.txt").read_text().splitlines()[:400]
    (tmp_path / "text.txt").write_text("\n".join(text))
    sentencepiece.SentencePieceTrainer.train(input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "sp"),
                                             vocab_size=VOCAB - 4, model_type="bpe", character_coverage=1.0,
                                             minloglevel=2)
    folder = tmp_path / "ck"
    # only the sentencepiece model and a config naming its class: what LLaMA-2's original checkpoints ship
    shutil.copytree(checkpoint, folder, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens*"))
    shutil.copy(tmp_path / "sp.model", folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    assert (folder / "tokenizer.model").is_file()
    result = invoke("score", folder, "--proxy", "grad_norm", "--json", *TINY_BATCH)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("model_type", sorted(BUILTIN_SITE_MAPS))
def test_score_model_runs_on_every_built_in_family(model_type, found):
    """A gradient proxy, an S-reading one and a found proxy reading H, on each family's tiny model."""
    model = build_tiny(model_type, seed=0)
    ids = torch.randint(3, 99, (2, 16), generator=torch.Generator().manual_seed(0))
    for proxy in ("grad_norm", "softmax_confidence", str(found)):
        value = score_model(model, ids, proxy)
        assert math.isfinite(value) and value != 0, (model_type, proxy)


def test_lpzero_score_is_score_model():
    import lpzero

    assert lpzero.score is score_model
