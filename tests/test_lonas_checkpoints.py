"""A user's own LLaMA-family checkpoint: its own tokenizer and text, its stored dtype, and the
families of `DECODERS` (LLaMA, Mistral, Qwen2, Qwen3), from tiny configs (no downloads)."""
from __future__ import annotations

import csv
import json

import pytest
import torch
import transformers
from click.testing import CliRunner
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from lpzero.benchmarks import BenchmarkError, get_benchmark
from lpzero.benchmarks.inputs import as_weighted, extract_inputs
from lpzero.benchmarks.lonas import (DECODERS, LoNASBenchmark, export_subnetwork, extract_subnetwork, lonas_space,
                                     make_supernetwork, mask_ffn, run_subnetwork)
from lpzero.cli import main

LAYERS, HIDDEN, FFN, VOCAB, RANK, HEADS = 2, 32, 64, 99, 8, 4
#: the words of the tiny tokenizers (plus [UNK]): fewer than the models' 99 rows
WORDS = [f"w{i}" for i in range(80)]
#: the families this transformers has, by model_type -> config class name
FAMILIES = {t: c for t, c in (("llama", "LlamaConfig"), ("mistral", "MistralConfig"), ("qwen2", "Qwen2Config"),
                              ("qwen3", "Qwen3Config")) if hasattr(transformers, c)}


def tiny_model(model_type: str, seed: int = 0, vocab: int = VOCAB) -> torch.nn.Module:
    torch.manual_seed(seed)
    extra = {"head_dim": HIDDEN // HEADS} if model_type == "qwen3" else {}  # Qwen3's default head_dim is 128
    config = getattr(transformers, FAMILIES[model_type])(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=64, tie_word_embeddings=False,
        attn_implementation="eager", **extra)
    return AutoModelForCausalLM.from_config(config)


def save_tokenizer(folder, words=WORDS) -> None:
    """A WordLevel tokenizer over `words` (and [UNK]), saved as tokenizer.json the way transformers saves one."""
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(folder))


def write_text(path, n_words: int = 2000, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    path.write_text(" ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (n_words,), generator=gen).tolist()))
    return path


def write_checkpoint(root, model_type: str = "llama", dtype: torch.dtype = torch.float32, seed: int = 0):
    """root/base (a save_pretrained checkpoint in `dtype` with its own tokenizer), root/adapter (peft, LoRA B
    non-zero so that every rank matters), root/text.txt; returns the super-network it saved."""
    base = tiny_model(model_type, seed).to(dtype)
    base.save_pretrained(str(root / "base"))  # before peft wraps it in place
    save_tokenizer(root / "base")
    model = make_supernetwork(base, lonas_space(LAYERS, FFN, RANK, 2 * RANK)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    model.save_pretrained(str(root / "adapter"))
    write_text(root / "text.txt")
    return model


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


# --- the decoder families ----------------------------------------------------------------------


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_each_family_slices_gives_six_inputs_and_exports(model_type, tmp_path):
    assert model_type in DECODERS
    model = write_checkpoint(tmp_path, model_type)
    space = lonas_space(LAYERS, FFN, RANK, 2 * RANK)
    choice = {**space.pick("min"), "L1.ffn_width": FFN}
    with torch.no_grad():
        full = model(input_ids=tokens()).logits
        assert torch.equal(full, run_subnetwork(model, space, space.pick("max"), input_ids=tokens()).logits)
        sliced = run_subnetwork(model, space, choice, input_ids=tokens()).logits
        copied = extract_subnetwork(model, space, choice)(input_ids=tokens()).logits
    assert not torch.allclose(sliced, full) and torch.allclose(sliced, copied, atol=1e-6)

    bench = LoNASBenchmark(tmp_path / "base", adapter=tmp_path / "adapter", text=tmp_path / "text.txt")
    assert bench.space.groups == space.groups
    inputs = extract_inputs(bench, bench.build_model("min"), bench.make_batch(0, 2, 16))
    mins = bench.choice("min")
    assert [t.tensor.shape[-1] for t in inputs["A"]] == [mins[f"L{i}.ffn_width"] for i in range(LAYERS)]
    assert [t.tensor.shape for t in inputs["H"]] == [(2, 16, HIDDEN)] * LAYERS
    assert inputs["S"][0].tensor.shape == (2, HEADS, 16, 16)
    assert inputs["J"][0].tensor.shape == (2, 16, HIDDEN)
    assert len(inputs["W"]) == len(inputs["G"]) == LAYERS * (7 + 12)
    assert all(g.tensor.abs().sum() > 0 for g in inputs["G"])

    from peft import PeftModel

    export_subnetwork(model, space, choice, tmp_path / "sub")
    base = mask_ffn(AutoModelForCausalLM.from_pretrained(str(tmp_path / "base")), space, choice)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "sub")).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=tokens()).logits, sliced, atol=1e-5)


def test_other_decoders_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "vocab_size": 99,
                                                      "num_hidden_layers": 2, "intermediate_size": 64}))
    with pytest.raises(BenchmarkError, match="not a LLaMA config.*llama, mistral, qwen2"):
        LoNASBenchmark(tmp_path)


# --- the stored dtype --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bf16(tmp_path_factory):
    root = tmp_path_factory.mktemp("bf16")
    write_checkpoint(root, "llama", torch.bfloat16, seed=1)
    return root


def test_a_bfloat16_checkpoint_loads_and_is_read_in_bfloat16(bf16):
    bench = LoNASBenchmark(bf16 / "base", adapter=bf16 / "adapter", text=bf16 / "text.txt")
    assert bench.dtype == torch.bfloat16
    assert {p.dtype for n, p in bench.supernetwork().named_parameters() if ".lora_" not in n} == {torch.bfloat16}
    inputs = extract_inputs(bench, bench.build_model("max"), bench.make_batch(0, 2, 16))
    base_w = [w for w in inputs["W"] if ".lora_" not in w.name]
    # W are the parameters themselves and G the gradients backward made: nothing copied to float32 ...
    assert base_w and all(w.stored.dtype == torch.bfloat16 for w in base_w)
    assert all(g.stored.dtype == w.stored.dtype for w, g in zip(inputs["W"], inputs["G"]))
    # ... until a value is read, one tensor at a time
    assert all(w.tensor.dtype == torch.float32 and torch.equal(w.tensor, w.stored.float()) for w in inputs["W"])
    weighted = as_weighted(inputs, symbols="WG")
    assert weighted["W"].values.dtype == torch.float32
    assert torch.equal(weighted["G"].values[0, 0, : inputs["G"][0].stored.numel()], inputs["G"][0].tensor.reshape(-1))
    as_float = LoNASBenchmark(bf16 / "base", adapter=bf16 / "adapter", text=bf16 / "text.txt", dtype="float32")
    assert {p.dtype for p in as_float.supernetwork().parameters()} == {torch.float32}
    half = LoNASBenchmark(bf16 / "base", adapter=bf16 / "adapter", text=bf16 / "text.txt", dtype="float16")
    g = extract_inputs(half, half.build_model("min"), half.make_batch(0, 2, 16), symbols="G")["G"]
    assert g[0].stored.dtype == torch.float16 and torch.isfinite(g[0].tensor).all()
    with pytest.raises(BenchmarkError, match="dtype='float8'"):
        LoNASBenchmark(bf16 / "base", text=bf16 / "text.txt", dtype="float8")


def test_dtype_and_text_are_benchmark_options(bf16):
    bench = get_benchmark(f"lonas:{bf16 / 'base'}", adapter=str(bf16 / "adapter"), dtype="float32",
                          text=str(bf16 / "text.txt"))
    assert bench.dtype == torch.float32 and bench.text_path == bf16 / "text.txt"


# --- the checkpoint's own tokenizer and text ------------------------------------------------------


def test_text_is_tokenized_with_the_checkpoints_tokenizer(bf16):
    bench = LoNASBenchmark(bf16 / "base", text=bf16 / "text.txt")
    stream = bench.batch_stream()
    assert len(stream) == 2000 and 1 <= int(stream.min()) and int(stream.max()) <= len(WORDS)  # no [UNK]
    batch = bench.make_batch(3, 4, 32).input_ids
    assert batch.shape == (4, 32) and torch.equal(batch, bench.make_batch(3, 4, 32).input_ids)


def test_bad_tokenizers_and_texts_fail_when_opened(bf16, tmp_path):
    bare = tmp_path / "bare"
    tiny_model("llama").save_pretrained(str(bare))
    with pytest.raises(BenchmarkError, match="no tokenizer .*and no lpzero_vocab.json"):
        LoNASBenchmark(bare, text=bf16 / "text.txt")
    big = tmp_path / "big"
    tiny_model("llama", vocab=50).save_pretrained(str(big))
    save_tokenizer(big)  # 81 tokens for 50 rows
    with pytest.raises(BenchmarkError, match="81 tokens, more than the model's vocabulary of 50"):
        LoNASBenchmark(big, text=bf16 / "text.txt")
    with pytest.raises(BenchmarkError, match="fewer than one window"):
        LoNASBenchmark(bf16 / "base", text=write_text(tmp_path / "short.txt", n_words=20))
    with pytest.raises(BenchmarkError, match="missing.txt: file not found"):
        LoNASBenchmark(bf16 / "base", text=tmp_path / "missing.txt")


@pytest.mark.data
def test_default_text_is_wikitext_in_the_checkpoints_tokens(bf16):
    from lpzero.benchmarks import default_data_root

    bench = LoNASBenchmark(bf16 / "base", default_data_root())
    assert bench.make_batch(0, 2, 16).input_ids.max() < VOCAB  # WordLevel: mostly [UNK], every id in range


@pytest.mark.data
@pytest.mark.slow
def test_nas_scores_every_candidate_of_a_bfloat16_checkpoint_with_its_own_tokenizer(bf16, tmp_path):
    out = tmp_path / "nas"
    result = CliRunner().invoke(main, ["nas", "--space", f"lonas:{bf16 / 'base'}", "--adapter", str(bf16 / "adapter"),
                                       "--proxy", "grad_norm", "--population", "2", "--generations", "0",
                                       "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    with open(out / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["score"] not in ("", "None", "nan") for r in rows), rows
