"""LoNAS sub-networks: the space as data, slicing, loading from disk, the six inputs, the smoke build."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from lpzero.benchmarks import BenchmarkError, default_data_root, get_benchmark
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.benchmarks.lonas import (SPACE_PRESETS, SUBNETWORK_FILE, VOCAB_FILE, LoNASBenchmark, LoNASSpace,
                                     Vocabulary, choice_id, count_subnetwork_params, export_subnetwork,
                                     extract_subnetwork, lonas_space, make_supernetwork, mask_ffn, run_subnetwork,
                                     sliced_tensors)
from lpzero.benchmarks.lonas.build import SIZES, Builder
from lpzero.cli import main
from lpzero.proxies import HAND_DESIGNED, ProxyContext
from lpzero.benchmarks.lonas.spread import explained_spread

LAYERS, HIDDEN, FFN, VOCAB, RANK = 2, 32, 64, 99, 8


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         attn_implementation="eager")
    return LlamaForCausalLM(config)


def tiny_space() -> LoNASSpace:
    return lonas_space(LAYERS, FFN, RANK, 2 * RANK)


def trained_supernet(seed: int = 0, base: LlamaForCausalLM | None = None):
    """A super-network whose LoRA B is non-zero (freshly made LoRA is a no-op, and so is every rank choice)."""
    model = make_supernetwork(base if base is not None else tiny_llama(seed), tiny_space()).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


# --- the space ---------------------------------------------------------------------------------


def test_llama_7b_preset_is_lonas_space():
    space = SPACE_PRESETS["llama-7b"]
    assert len(space.groups) == 96
    assert space.size == 2 ** 64 * 5 ** 32
    widths = {g.choices for g in space.groups if g.kind == "width"}
    assert widths == {(11008, 9632, 8256, 6880, 5504)}
    assert {g.choices for g in space.groups if g.kind == "rank"} == {(32, 28)}
    heuristic = space.pick("heuristic")
    assert set(heuristic.values()) == {32, 8256}


def test_genome_round_trip_and_checks():
    space = tiny_space()
    choice = space.sample(np.random.default_rng(3))
    assert space.decode(space.encode(choice)) == choice
    assert LoNASSpace.from_json(json.loads(json.dumps(space.to_json()))) == space
    with pytest.raises(BenchmarkError, match="L0.ffn_width=65 is not one of"):
        space.check({**choice, "L0.ffn_width": 65})
    with pytest.raises(BenchmarkError, match="no value for group L1.qkv_rank"):
        space.check({k: v for k, v in choice.items() if k != "L1.qkv_rank"})
    with pytest.raises(BenchmarkError, match="malformed LoNAS space"):
        LoNASSpace.from_json({"name": "x"}, "space.json")
    assert choice_id(space, space.pick("max")) == "s000000"


# --- slicing -----------------------------------------------------------------------------------


def test_max_subnetwork_is_the_supernetwork():
    model = trained_supernet()
    with torch.no_grad():
        full = model(input_ids=tokens()).logits
        as_max = run_subnetwork(model, tiny_space(), tiny_space().pick("max"), input_ids=tokens()).logits
        copied = extract_subnetwork(model, tiny_space(), tiny_space().pick("max"))(input_ids=tokens()).logits
    assert torch.equal(full, as_max)
    assert torch.equal(full, copied)


def test_every_group_changes_the_output():
    # LoNAS bug report: an activation that silently does nothing. Each group alone must matter.
    model, space = trained_supernet(), tiny_space()
    with torch.no_grad():
        full = model(input_ids=tokens()).logits
        for g in space.groups:
            choice = {**space.pick("max"), g.name: g.choices[-1]}
            out = run_subnetwork(model, space, choice, input_ids=tokens()).logits
            assert not torch.allclose(out, full), g.name


def test_sliced_copy_equals_functional_call_and_shares_storage():
    model, space = trained_supernet(), tiny_space()
    choice = space.sample(np.random.default_rng(0))
    sub = extract_subnetwork(model, space, choice)
    with torch.no_grad():
        assert torch.allclose(sub(input_ids=tokens()).logits,
                              run_subnetwork(model, space, choice, input_ids=tokens()).logits, atol=1e-6)
    params, sub_params = dict(model.named_parameters()), dict(sub.named_parameters())
    width, rank = choice["L1.ffn_width"], choice["L1.gate_up_rank"]
    prefix = "base_model.model.model.layers.1.mlp."
    down = sub_params[prefix + "down_proj.base_layer.weight"]
    assert torch.equal(down, params[prefix + "down_proj.base_layer.weight"][:, :width])
    assert down.data_ptr() == params[prefix + "down_proj.base_layer.weight"].data_ptr()
    gate_b = sub_params[prefix + "gate_proj.lora_B.default.weight"]
    assert gate_b.shape == (width, rank)
    assert torch.equal(gate_b, params[prefix + "gate_proj.lora_B.default.weight"][:width, :rank])
    assert sub.get_base_model().model.layers[1].mlp.down_proj.base_layer.in_features == width


def test_subnetwork_gradients_stay_off_the_supernetwork():
    model, space = trained_supernet(), tiny_space()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sub = extract_subnetwork(model, space, space.pick("min"))
    sub(input_ids=tokens(), labels=tokens()).loss.backward()
    grads = {n: p.grad for n, p in sub.named_parameters() if p.dim() == 2}
    assert all(g is not None for n, g in grads.items() if ".layers." in n)
    # no proxy reads the embedding table's or the LM head's gradient (a gigabyte each at 7B)
    assert grads["base_model.model.model.embed_tokens.weight"] is None and grads["base_model.model.lm_head.weight"] is None
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_parameter_counts_follow_the_choice():
    model, space = trained_supernet(), tiny_space()
    big = count_subnetwork_params(model, space, space.pick("max"))
    small = count_subnetwork_params(model, space, space.pick("min"))
    assert big["total"] == sum(p.numel() for p in model.parameters())
    # min: each layer drops half the FFN (3 matrices) and a few LoRA rows/columns
    assert big["base"] - small["base"] == LAYERS * 3 * HIDDEN * (FFN // 2)
    assert small["lora"] < big["lora"]
    sliced = sliced_tensors(model, space, space.pick("min"))
    assert sum(t.numel() for t in sliced.values()) < sum(dict(model.named_parameters())[n].numel() for n in sliced)


def test_explained_spread_finds_the_group_that_matters():
    space, rng = tiny_space(), np.random.default_rng(0)
    truth = {}
    for i in range(60):
        choice = space.sample(rng)
        truth[f"s{i}"] = (choice, math.exp(1 + (FFN - choice["L0.ffn_width"]) / FFN))
    spread = explained_spread(space, truth)
    assert spread["groups"]["L0.ffn_width"] == pytest.approx(1.0)
    assert spread["families"]["qkv_rank"] < 0.2


# --- a local checkpoint and adapter --------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny LLaMA and a LoNAS adapter written with save_pretrained, and a GPT-2 -> model vocabulary map."""
    root = tmp_path_factory.mktemp("lonas_checkpoint")
    base = tiny_llama(seed=1)
    base.save_pretrained(str(root / "base"))  # before peft wraps it in place
    model = trained_supernet(seed=1, base=base)
    model.save_pretrained(str(root / "adapter"))
    (root / "base" / VOCAB_FILE).write_text(json.dumps(Vocabulary(tuple(range(VOCAB - 1))).to_json()))
    return root, model


def test_checkpoint_and_adapter_load_through_their_own_loaders(checkpoint):
    root, model = checkpoint
    bench = get_benchmark(f"lonas:{root / 'base'}", adapter=str(root / "adapter"))
    assert bench.ids() == ["max", "heuristic", "min"]
    assert math.isnan(bench.architecture("max").ground_truth)
    assert bench.space.groups == tiny_space().groups  # derived from the checkpoint and the adapter's rank
    choice = bench.choice("heuristic")
    with torch.no_grad():
        ours = bench.build_model("heuristic")(input_ids=tokens()).logits
        theirs = run_subnetwork(model, tiny_space(), choice, input_ids=tokens()).logits
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_adapter_of_another_rank_is_refused(checkpoint, tmp_path):
    root, _ = checkpoint
    other = make_supernetwork(tiny_llama(), lonas_space(LAYERS, FFN, 4, 8))
    other.save_pretrained(str(tmp_path / "adapter4"))
    with pytest.raises(BenchmarkError, match="adapter has r=4"):  # when opened, before any work
        get_benchmark(f"lonas:{root / 'base'}", adapter=str(tmp_path / "adapter4"), space=str(_space_file(tmp_path)))


def _space_file(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(tiny_space().to_json()))
    return path


def test_missing_checkpoint_and_unbuilt_mini_are_named(tmp_path):
    with pytest.raises(BenchmarkError, match="LoNAS directory not found"):
        get_benchmark(f"lonas:{tmp_path / 'nothing'}")
    with pytest.raises(BenchmarkError, match="config.json: file not found"):
        get_benchmark(f"lonas:{tmp_path}")
    with pytest.raises(BenchmarkError, match="lpzero build lonas-mini"):
        get_benchmark("lonas-mini", data=tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 99}))
    with pytest.raises(BenchmarkError, match="not a LLaMA config"):
        get_benchmark(f"lonas:{tmp_path}")


@pytest.mark.data
def test_six_inputs_of_a_subnetwork(checkpoint):
    root, _ = checkpoint
    bench = LoNASBenchmark(root / "base", data_root=default_data_root(), adapter=root / "adapter")
    choice = bench.choice("min")
    inputs = extract_inputs(bench, bench.build_model("min"), bench.make_batch(0, 2, 16))
    assert [t.tensor.shape[-1] for t in inputs["A"]] == [choice[f"L{i}.ffn_width"] for i in range(LAYERS)]
    assert [t.tensor.shape for t in inputs["H"]] == [(2, 16, HIDDEN)] * LAYERS
    probs = inputs["S"][0].tensor
    assert probs.shape == (2, 4, 16, 16)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 4, 16))
    assert inputs["J"][0].tensor.shape == (2, 16, HIDDEN)
    # base (q, k, v, o, gate, up, down) and LoRA (A, B of six modules) per layer, each with its own gradient
    assert len(inputs["W"]) == len(inputs["G"]) == LAYERS * (7 + 12)
    assert all(w.tensor.shape == g.tensor.shape for w, g in zip(inputs["W"], inputs["G"]))
    assert all(g.tensor.abs().sum() > 0 for g in inputs["G"])
    lora_only = LoNASBenchmark(root / "base", data_root=default_data_root(), adapter=root / "adapter", weights="lora")
    assert len(extract_inputs(lora_only, lora_only.build_model("min"), lora_only.make_batch(0, 2, 16))["W"]) == LAYERS * 12


@pytest.mark.data
def test_baselines_leave_the_supernetwork_untouched(checkpoint):
    root, _ = checkpoint
    bench = LoNASBenchmark(root / "base", data_root=default_data_root(), adapter=root / "adapter")
    before = {n: p.detach().clone() for n, p in bench.supernetwork().named_parameters()}
    ctx = ProxyContext(bench, "min", 0, bench.make_batch(0, 2, 16))
    values = {name: b(ctx) for name, b in HAND_DESIGNED.items()}
    assert all(math.isfinite(v) for v in values.values())
    assert all(torch.equal(p, before[n]) for n, p in bench.supernetwork().named_parameters())


# --- the smoke build -----------------------------------------------------------------------------


@pytest.fixture
def smoke_build(lonas_smoke):
    return lonas_smoke


@pytest.mark.data
@pytest.mark.slow
def test_smoke_build_writes_a_benchmark(smoke_build):
    out, result = smoke_build
    assert result.exit_code == 0, result.output
    assert "split-half Spearman" in result.output
    for name in ("base/config.json", "base/model.safetensors", "adapter/adapter_config.json", "space.json",
                 "ground_truth.json", "build.json"):
        assert (out / name).is_file(), name
    bench = get_benchmark(f"lonas:{out}")
    assert bench.ids()[:3] == ["max", "heuristic", "min"] and len(bench.ids()) == 3 + 8
    truth = json.loads((out / "ground_truth.json").read_text())
    assert set(truth["spread"]["families"]) == {"qkv_rank", "ffn_width", "gate_up_rank"}
    assert all(a.raw >= 1 for a in bench.architectures())


@pytest.mark.data
@pytest.mark.slow
def test_ground_truth_from_two_workers_equals_the_serial_one(smoke_build, tmp_path):
    out, _ = smoke_build
    parallel = tmp_path / "lonas_mini"
    result = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--jobs", "2", "--out", str(parallel)])
    assert result.exit_code == 0, result.output
    serial = json.loads((out / "ground_truth.json").read_text())["subnetworks"]
    assert json.loads((parallel / "ground_truth.json").read_text())["subnetworks"] == serial


@pytest.mark.data
@pytest.mark.slow
def test_smoke_build_resumes_and_refuses_other_settings(smoke_build):
    out, _ = smoke_build
    stamp = (out / "ground_truth.json").stat().st_mtime_ns
    again = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "ground_truth.json").stat().st_mtime_ns == stamp  # every stage was already done
    other = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--seed", "1", "--out", str(out)])
    assert other.exit_code == 2
    assert "a build with other settings" in other.output


@pytest.mark.data
@pytest.mark.slow
def test_a_smoke_build_never_takes_the_real_builds_folder(smoke_build, tmp_path, monkeypatch):
    out, _ = smoke_build
    shutil.copytree(out, tmp_path / "lonas_mini_smoke")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke"])  # resumes the copy: nothing to do
    assert result.exit_code == 0, result.output
    assert "built in lonas_mini_smoke" in result.output and "open it as lonas:lonas_mini_smoke" in result.output
    assert not (tmp_path / "lonas_mini").exists()


class Interrupt(Exception):
    pass


@pytest.mark.data
def test_training_interrupted_after_a_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path):
    size = replace(SIZES["smoke"], pretrain_steps=130)  # one checkpoint, at step 100

    def stop_at(step: int):
        def progress(stage: str, done: int, total: int) -> None:
            if done == step:
                raise Interrupt

        return progress

    whole = Builder(tmp_path / "whole", default_data_root(), size)
    whole.build_vocab()
    whole.pretrain()
    cut = Builder(tmp_path / "cut", default_data_root(), size, progress=stop_at(115))
    cut.build_vocab()
    with pytest.raises(Interrupt):
        cut.pretrain()
    assert (tmp_path / "cut" / "pretrain.checkpoint.pt").is_file()
    steps: list[int] = []
    Builder(tmp_path / "cut", default_data_root(), size, progress=lambda stage, done, total: steps.append(done)).pretrain()
    assert steps[0] == 101 and steps[-1] == 130  # from the checkpoint, not from the start
    assert not (tmp_path / "cut" / "pretrain.checkpoint.pt").exists()
    a = load_file(str(tmp_path / "whole" / "base" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "base" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.data
@pytest.mark.slow
def test_rank_runs_on_the_smoke_build(smoke_build, tmp_path):
    out, _ = smoke_build
    result = CliRunner().invoke(main, ["rank", f"lonas:{out}", "--proxies", "num_params,lpzero_llama,grad_norm",
                                       "--out", str(tmp_path / "rank"), "--cache-dir", str(tmp_path / "c"),
                                       "--no-plots"])
    assert result.exit_code == 0, result.output
    rows = {r["proxy"]: r for r in json.loads((tmp_path / "rank" / "rank.json").read_text())}
    assert set(rows) == {"num_params", "lpzero_llama", "grad_norm"}
    assert rows["num_params"]["n"] == 11


def test_exported_subnetwork_loads_with_standard_peft(checkpoint, tmp_path):
    from peft import PeftModel

    root, model = checkpoint
    space = tiny_space()
    choice = {**space.pick("min"), "L0.qkv_rank": RANK, "L1.ffn_width": FFN}
    export_subnetwork(model, space, choice, tmp_path / "sub")
    record = json.loads((tmp_path / "sub" / SUBNETWORK_FILE).read_text())
    assert record["choice"] == choice and record["ffn_widths"] == {"0": FFN // 2, "1": FFN}
    base = mask_ffn(LlamaForCausalLM.from_pretrained(str(root / "base")), space, choice)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "sub")).eval()
    q0 = loaded.get_base_model().model.layers[0].self_attn.q_proj
    assert q0.r["default"] == RANK and loaded.get_base_model().model.layers[1].self_attn.q_proj.r["default"] == 7
    with torch.no_grad():
        ours = run_subnetwork(model, space, choice, input_ids=tokens()).logits
        theirs = loaded(input_ids=tokens()).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
