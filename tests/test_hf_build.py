"""neox-mini's build (`lpzero.benchmarks.hf.build`): the smoke size end to end, interrupted, resumed, repeated."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import yaml

from lpzero.benchmarks import BenchmarkError, default_data_root, get_benchmark
from lpzero.benchmarks import training
from lpzero.benchmarks.hf.build import (BENCHMARK_FILE, BUILD_FILE, SIZES, benchmark_yaml, build_neox_mini,
                                        draw_architectures, grid)
from lpzero.benchmarks.hf.training import CONFIG_KEYS

SMOKE = SIZES["smoke"]
#: training runs of a smoke build: every architecture, and the replicated ones again
SMOKE_RUNS = SMOKE.n_architectures + SMOKE.n_replicates


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One uninterrupted smoke build: (its folder, its build record)."""
    out = tmp_path_factory.mktemp("neox") / "neox_mini"
    return out, build_neox_mini(out, default_data_root(), smoke=True)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A smoke build stopped twice, then finished: right after its first architecture's result was written,
    then halfway through training the next one (after its first checkpoint).

    Returns the folder and what each run left: {"first": result files with their mtimes after run 1,
    "checkpoints": checkpoint files after run 2, "results": result files after run 2, "loaded": the
    checkpoints run 3 resumed from, "ticks": run 3's progress ticks}.
    """
    out = tmp_path_factory.mktemp("neox_resumed") / "neox_mini"
    seen: dict = {}

    def stop_after_a_result(stage: str, done: int, total: int) -> None:
        if stage == "train":
            raise KeyboardInterrupt  # as Ctrl-C would

    def save_then_stop(path, *args, **kwargs) -> None:
        save(path, *args, **kwargs)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_neox_mini(out, default_data_root(), smoke=True, progress=stop_after_a_result)
    seen["first"] = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    save = training.save_training_checkpoint
    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(training, "CHECKPOINT_EVERY", 2)  # the smoke runs are 4 steps long
        patch.setattr(training, "save_training_checkpoint", save_then_stop)
        build_neox_mini(out, default_data_root(), smoke=True)
    seen["checkpoints"] = sorted(p.name for p in (out / "runs").iterdir())
    seen["results"] = sorted(p.name for p in (out / "results").iterdir())
    load = training.load_training_checkpoint
    seen["loaded"], seen["ticks"] = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "load_training_checkpoint",
                      lambda path, *args: seen["loaded"].append(path.name) or load(path, *args))
        build_neox_mini(out, default_data_root(), smoke=True, progress=lambda *tick: seen["ticks"].append(tick))
    return out, seen


@pytest.mark.data
def test_the_smoke_build_writes_a_benchmark_yaml_of_gpt_neox_configs(built):
    from transformers import AutoConfig

    out, _ = built
    data = yaml.safe_load((out / BENCHMARK_FILE).read_text())
    assert {k: data[k] for k in ("model_type", "tokenizer", "higher_is_better", "metric")} == {
        "model_type": "gpt_neox", "tokenizer": "tokenizer/", "higher_is_better": False, "metric": "test_ppl"}
    archs = data["architectures"]
    assert [a["id"] for a in archs] == [f"n{i:03d}" for i in range(SMOKE.n_architectures)]
    for arch in archs:
        assert tuple(arch["config"]) == CONFIG_KEYS
        config = AutoConfig.for_model("gpt_neox", **arch["config"])
        assert config.model_type == "gpt_neox" and config.hidden_size % config.num_attention_heads == 0
        assert config.max_position_embeddings == SMOKE.seq_len


@pytest.mark.data
def test_the_ground_truth_is_finite_perplexity(built):
    out, _ = built
    metrics = [a["metric"] for a in yaml.safe_load((out / BENCHMARK_FILE).read_text())["architectures"]]
    assert all(isinstance(m, float) and math.isfinite(m) and m > 1 for m in metrics)
    assert len(set(metrics)) == len(metrics)  # the architectures differ, so do their perplexities


@pytest.mark.data
def test_the_tokenizer_loads_with_autotokenizer_and_fits_every_config(built):
    from transformers import AutoTokenizer

    out, _ = built
    data = yaml.safe_load((out / BENCHMARK_FILE).read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(out / data["tokenizer"]), local_files_only=True)
    text = "The European lobster is blue, only becoming red on cooking."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte-level: every text round-trips
    assert {a["config"]["vocab_size"] for a in data["architectures"]} == {len(tokenizer)}


@pytest.mark.data
def test_the_build_record_holds_every_stage_and_the_seed_to_seed_spearman(built):
    out, state = built
    assert list(state["stages"]) == ["tokenizer", "architectures", "train", "reliability"]
    assert all(stage["seconds"] >= 0 for stage in state["stages"].values())
    train, reliability = state["stages"]["train"], state["stages"]["reliability"]
    assert train["runs"] == SMOKE_RUNS and train["reused"] == 0
    assert train["token_budget"] == SMOKE.steps * SMOKE.batch_size * SMOKE.seq_len
    assert reliability["replicates"] == SMOKE.n_replicates and -1 <= reliability["seed_spearman"] <= 1
    assert set(state["versions"]) == {"torch", "transformers", "tokenizers"}
    assert (out / BUILD_FILE).stat().st_mtime_ns <= (out / BENCHMARK_FILE).stat().st_mtime_ns  # yaml last


@pytest.mark.data
def test_an_interrupted_build_resumes_without_retraining_what_finished(resumed):
    out, seen = resumed
    assert len(seen["first"]) == 1  # stopped right after the first result was written
    (name, mtime), = seen["first"].items()
    assert seen["results"] == [name]  # the second run did not train it again
    trained = [t for t in seen["ticks"] if t[0] == "train"]
    assert len(trained) == SMOKE_RUNS - 1 and trained[-1][2] == SMOKE_RUNS - 1
    assert (out / "results" / name).stat().st_mtime_ns == mtime  # its result was never written again
    assert (out / BENCHMARK_FILE).is_file()


@pytest.mark.data
def test_a_half_trained_architecture_resumes_from_its_own_checkpoint(resumed):
    out, seen = resumed
    assert len(seen["checkpoints"]) == 1 and seen["loaded"] == seen["checkpoints"]
    assert not list((out / "runs").iterdir())  # removed once its run finished


@pytest.mark.data
def test_the_same_seed_gives_the_same_ground_truth(built, resumed):
    """Two builds of one seed, one of them interrupted twice (once mid-training), write the same benchmark.yaml."""
    assert (built[0] / BENCHMARK_FILE).read_text() == (resumed[0] / BENCHMARK_FILE).read_text()
    for result in (built[0] / "results").iterdir():  # to the last digit, the replicates' too
        assert json.loads(result.read_text())["test_ppl"] == \
            json.loads((resumed[0] / "results" / result.name).read_text())["test_ppl"]
    assert (built[0] / "tokenizer" / "tokenizer.json").read_bytes() == \
        (resumed[0] / "tokenizer" / "tokenizer.json").read_bytes()


@pytest.mark.data
def test_a_build_of_other_settings_is_refused_in_its_folder(built):
    with pytest.raises(BenchmarkError, match="other settings"):
        build_neox_mini(built[0], default_data_root(), smoke=True, seed=1)


def test_architectures_are_distinct_configs_of_the_grid_drawn_from_the_seed():
    size = SIZES["mini"]
    drawn = draw_architectures(size, 4096, seed=0)
    assert len(drawn) == size.n_architectures == len({tuple(c.values()) for c in drawn.values()})
    assert all(c in grid(size, 4096) for c in drawn.values())
    assert all((c["hidden_size"] // c["num_attention_heads"]) % 8 == 0 for c in drawn.values())
    assert drawn == draw_architectures(size, 4096, seed=0) != draw_architectures(size, 4096, seed=1)


def test_benchmark_yaml_is_the_documented_form():
    config = dict(zip(CONFIG_KEYS, (2, 64, 4, 256, 128, 4096)))
    text = benchmark_yaml({"n000": config}, {"n000": 412.31234567})
    assert text.endswith("  - id: n000\n    config: {num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 4, "
                         "intermediate_size: 256, max_position_embeddings: 128, vocab_size: 4096}\n"
                         "    metric: 412.3123\n")
    assert yaml.safe_load(text)["architectures"] == [{"id": "n000", "config": config, "metric": 412.3123}]


@pytest.mark.data
def test_lpzero_build_neox_mini_resumes_a_finished_build_and_names_how_to_open_it(built, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lpzero.cli import main

    out, record = built
    shutil.copytree(out, tmp_path / "neox_mini")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["build", "neox-mini", "--smoke", "--out", "neox_mini"])
    assert result.exit_code == 0, result.output
    low, high = record["stages"]["reliability"]["ppl_range"]
    assert f"held-out perplexity {low:.1f} to {high:.1f}" in result.output
    assert "open it as neox-mini" in result.output  # the default folder: its registered name
    info = CliRunner().invoke(main, ["info", "neox-mini"])
    assert info.exit_code == 0 and f"architectures  {SMOKE.n_architectures}" in info.output, info.output


def test_an_unbuilt_neox_mini_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchmarkError, match="lpzero build neox-mini"):
        get_benchmark("neox-mini", tmp_path)
