"""LoNAS probes, round 4: adapters whose targets or weights do not fit the model, tokenizers whose ids do not,
texts of unknown tokens or shorter than the default window, a full disk while `lpzero build` saves, what `nas`
records and `info` shows, a pick's base path and how the docs load it, the build's torch threads, and
docs/lonas.md's paths. Tiny checkpoints are written with `save_pretrained` (no downloads)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import SafetensorError
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lpzero.benchmarks import BenchmarkError, default_data_root, get_benchmark
from lpzero.benchmarks.lonas import LoNASBenchmark, lonas_space, run_subnetwork
from lpzero.benchmarks.lonas import build as lonas_build
from lpzero.benchmarks.checkpoints import MAX_UNKNOWN, MIN_WINDOW
from lpzero.cache.store import CacheSettings
from lpzero.cli import main
from lpzero.errors import WriteError
from test_lonas_checkpoints import FFN, LAYERS, RANK, WORDS, tiny_model, tokens, write_checkpoint, write_text
from test_lonas_checks import ckpt, refused, saved  # noqa: F401 (ckpt, saved: fixtures)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "lonas.md"


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _nas(root: Path, out: Path, *extra: str) -> object:
    """`lpzero nas --space lonas:root/base --adapter root/adapter --text root/text.txt EXTRA` on two candidates."""
    return CliRunner().invoke(main, ["nas", "--space", f"lonas:{root / 'base'}", "--adapter", str(root / "adapter"),
                                     "--text", str(root / "text.txt"), "--proxy", "grad_norm", "--population", "2",
                                     "--generations", "0", "--out", str(out), "--cache-dir", str(out / "cache"),
                                     *extra])


# --- 1, 2: the adapter's target_modules --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "nas"])
def test_an_adapter_targeting_modules_the_model_lacks_is_one_line(ckpt, command):
    _edit_json(ckpt / "adapter" / "adapter_config.json", target_modules=["c_attn", "c_fc"])
    stderr = refused(ckpt, command=command, message="adapter_config.json: target_modules names c_attn, c_fc, which "
                                                    "a llama model does not have")
    assert "q_proj" in stderr  # what the model does have


def test_an_adapter_listing_a_module_without_weights_is_one_line(ckpt):
    config = ckpt / "adapter" / "adapter_config.json"
    _edit_json(config, target_modules=json.loads(config.read_text())["target_modules"] + ["o_proj"])
    stderr = refused(ckpt, command="nas", message="adapter_model.safetensors: no LoRA weights for "
                                                  "model.layers.0.self_attn.o_proj")
    assert "target_modules" in stderr


def test_an_adapter_whose_config_does_not_target_a_module_lonas_adapts_is_one_line(ckpt):
    _edit_json(ckpt / "adapter" / "adapter_config.json", target_modules="model.layers.*(q|v)_proj")
    refused(ckpt, command="info", message="target_modules does not adapt k_proj, up_proj, gate_proj, down_proj")


# --- 3, 4, 5: the tokenizer and the text ---------------------------------------------------------------------------


def test_a_tokenizer_with_ids_beyond_the_vocabulary_is_named(ckpt):
    vocab = {"[UNK]": 0, **{w: i + 20 for i, w in enumerate(WORDS)}}  # 81 tokens for 99 rows, ids up to 99
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(ckpt / "base"))
    stderr = refused(ckpt, command="nas", message="its tokenizer's largest id is 99 ('w79'), beyond the model's "
                                                  "vocabulary (config.json vocab_size 99")
    assert str(ckpt / "base") in stderr


@pytest.mark.parametrize("text", ["\0 " * 3000, " ".join(["unknownword"] * 3000)], ids=["nul", "unknown_words"])
def test_a_text_mostly_of_unknown_tokens_is_refused(ckpt, text):
    (ckpt / "text.txt").write_text(text)
    refused(ckpt, command="nas", message=f"text.txt: 100.0% of its 3000 tokens are the unknown token '[UNK]' (id 0), "
                                         f"more than the {MAX_UNKNOWN:.0%} allowed")


def test_a_text_with_some_unknown_words_is_read(ckpt):
    words = write_text(ckpt / "text.txt").read_text().split()
    (ckpt / "text.txt").write_text(" ".join(w if i % 3 else "unknownword" for i, w in enumerate(words)))
    bench = LoNASBenchmark(ckpt / "base", adapter=ckpt / "adapter", text=ckpt / "text.txt")
    assert (bench.batch_stream() == 0).float().mean() == pytest.approx(1 / 3, abs=0.01)


@pytest.fixture
def short_text(ckpt):
    """ckpt with 256 positions (the default window is then 128) and a text of 92 words: too short for it."""
    _edit_json(ckpt / "base" / "config.json", max_position_embeddings=256)
    write_text(ckpt / "text.txt", n_words=92)
    return ckpt


def test_a_text_shorter_than_the_default_window_is_scored_with_a_shorter_seq_len(short_text, tmp_path):
    result = _nas(short_text, tmp_path / "nas", "--seq-len", "32", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "nas" / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["settings"]["seq_len"] == 32
    bench = get_benchmark(f"lonas:{short_text / 'base'}", adapter=str(short_text / "adapter"),
                          text=str(short_text / "text.txt"))  # the Python API
    assert CacheSettings.for_benchmark(bench, 2, 32).seq_len == 32
    assert bench.make_batch(0, 2, 32).input_ids.shape == (2, 32)
    with pytest.raises(BenchmarkError, match=r"text.txt: 92 tokens, fewer than one window of 128 \+ 1"):
        CacheSettings.for_benchmark(bench)  # the default window is checked where the batch is set


def test_a_text_shorter_than_the_default_window_is_still_refused_at_the_default(short_text):
    refused(short_text, command="nas", message="text.txt: 92 tokens, fewer than one window of 128 + 1 (--seq-len 128)")


def test_a_text_shorter_than_any_window_is_refused_when_opened(ckpt):
    write_text(ckpt / "text.txt", n_words=MIN_WINDOW)
    refused(ckpt, command="info", message=f"text.txt: {MIN_WINDOW} tokens, fewer than one window of {MIN_WINDOW} + 1, "
                                          "the shortest lpzero scores whatever --seq-len")


# --- 6: a full disk while the build saves ------------------------------------------------------------------------


def test_a_failed_save_names_the_file_and_leaves_no_torn_weights(tmp_path, monkeypatch):
    model = tiny_model("llama")

    def full_disk(self, folder, **kw):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(type(model), "save_pretrained", full_disk)
    (tmp_path / "base").mkdir()
    with pytest.raises(WriteError, match=rf"^{re.escape(str(tmp_path / 'base' / 'model.safetensors'))}: cannot be "
                                         r"written: .*StorageFull"):
        lonas_build.save_model(model, tmp_path / "base", "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"] and not any((tmp_path / "base").iterdir())

    def no_space(self, folder, **kw):
        raise OSError(28, "No space left on device", str(Path(folder) / "config.json"))

    monkeypatch.setattr(type(model), "save_pretrained", no_space)
    with pytest.raises(WriteError, match=r"base/config.json: cannot be written: No space left on device"):
        lonas_build.save_model(model, tmp_path / "base", "model.safetensors")
    monkeypatch.undo()
    lonas_build.save_model(model, tmp_path / "base", "model.safetensors")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "base").iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


@pytest.mark.data
@pytest.mark.slow
def test_a_full_disk_while_the_build_saves_is_one_line_and_the_build_resumes(lonas_smoke, tmp_path, monkeypatch):
    from peft import PeftModel

    def full_disk(self, folder, **kw):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(PeftModel, "save_pretrained", full_disk)
    out = tmp_path / "build"
    failed = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", str(out)])
    assert failed.exit_code == 2, failed.output
    assert "Traceback" not in failed.output
    error = [line for line in failed.stderr.splitlines() if "error" in line]
    assert error == [f"lpzero: error: {out / 'adapter' / 'adapter_model.safetensors'}: cannot be written: Error "
                     "while serializing: IoError(Os { code: 28, kind: StorageFull })"], failed.stderr
    assert set(json.loads((out / "build.json").read_text())["stages"]) == {"vocab", "pretrain"}
    assert not (out / "adapter").exists() and not (out / ".adapter.partial").exists()
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    smoke, _ = lonas_smoke  # the same seed, uninterrupted: the same build
    truth = json.loads((out / "ground_truth.json").read_text())["subnetworks"]
    assert truth == json.loads((smoke / "ground_truth.json").read_text())["subnetworks"]


# --- 7: what nas records -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bf16(tmp_path_factory):
    root = tmp_path_factory.mktemp("bf16_round4")
    write_checkpoint(root, "llama", torch.bfloat16, seed=1)
    return root


def test_nas_records_the_dtype_adapter_and_text_it_scored_with(bf16, tmp_path):
    runs = {}
    for name, extra in (("auto", ()), ("fp32", ("--dtype", "float32"))):
        result = _nas(bf16, tmp_path / name, "--seq-len", "16", *extra)
        assert result.exit_code == 0, result.output
        runs[name] = (json.loads((tmp_path / name / "summary.json").read_text()),
                      (tmp_path / name / "report.md").read_text())
    (auto, auto_report), (fp32, fp32_report) = runs["auto"], runs["fp32"]
    expected = {"adapter": str((bf16 / "adapter").resolve()), "text": str((bf16 / "text.txt").resolve())}
    assert auto["options"] == {**expected, "dtype": "bfloat16"} and fp32["options"] == {**expected, "dtype": "float32"}
    header = [line for line in auto_report.splitlines() if line.startswith("- benchmark options:")]
    assert header == [f"- benchmark options: adapter `{expected['adapter']}`, dtype `bfloat16`, "
                      f"text `{expected['text']}`"]
    assert "dtype `float32`" in fp32_report and "dtype `float32`" not in auto_report


# --- 8: info names the ids and the dtype ---------------------------------------------------------------------------


def test_info_names_the_architectures_and_the_dtype(ckpt, bf16):
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt / 'base'}", "--adapter", str(ckpt / "adapter"),
                                  "--text", str(ckpt / "text.txt")])
    assert r.exit_code == 0, r.output
    assert "dtype          float32 (the checkpoint's own)" in r.output
    assert "ids            max, heuristic, min (3, no ground truth: LoNAS's named sub-networks)" in r.output
    assert "nas ids        s + each group's choice index in base 36, 0 = its largest (max s000000, min s141141)" \
        in r.output
    r = CliRunner().invoke(main, ["info", f"lonas:{bf16 / 'base'}", "--dtype", "float32", "--text",
                                  str(bf16 / "text.txt")])
    assert r.exit_code == 0, r.output
    assert "dtype          float32 (--dtype; the checkpoint stores bfloat16)" in r.output


def test_info_lists_a_ground_truths_ids(ckpt):
    space = lonas_space(LAYERS, FFN, RANK, 2 * RANK)
    subs = {"max": space.pick("max"), "heuristic": space.pick("heuristic"), "min": space.pick("min")}
    rng = np.random.default_rng(0)
    subs.update({f"sub{k:03d}": space.sample(rng) for k in range(5)})
    (ckpt / "base" / "ground_truth.json").write_text(json.dumps(
        {"subnetworks": {k: {"choice": c, "ppl": 10.0 + i} for i, (k, c) in enumerate(subs.items())}}))
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt / 'base'}", "--adapter", str(ckpt / "adapter"),
                                  "--text", str(ckpt / "text.txt")])
    assert r.exit_code == 0, r.output
    assert "ids            max, heuristic, min, sub000, ..., sub004 (8, ground_truth.json)" in r.output


# --- 9: a pick's base, and loading it as the docs say ----------------------------------------------------------


def _docs_block(marker: str) -> str:
    """The first ```python block of docs/lonas.md after `marker`."""
    text = DOCS.read_text()
    return text[text.index(marker):].split("```python\n", 1)[1].split("```", 1)[0]


def test_a_pick_names_its_base_and_loads_with_transformers_and_peft_as_the_docs_say(ckpt, tmp_path):
    result = _nas(ckpt, tmp_path / "nas")
    assert result.exit_code == 0, result.output
    pick = tmp_path / "nas" / "chosen" / "subnetwork_0"
    assert json.loads((pick / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str((ckpt / "base").resolve())
    code = _docs_block("### Loading a pick")
    assert 'pick = "runs/nas/my_llama/chosen/subnetwork_0"' in code and "bench.space" not in code
    scope: dict = {}
    exec(code.replace("runs/nas/my_llama/chosen/subnetwork_0", str(pick)), scope)
    bench = LoNASBenchmark(ckpt / "base", adapter=ckpt / "adapter", text=ckpt / "text.txt")
    choice = json.loads((tmp_path / "nas" / "summary.json").read_text())["chosen"]["config"]
    with torch.no_grad():
        expected = run_subnetwork(bench.supernetwork(), bench.space, choice, input_ids=tokens()).logits
        assert torch.allclose(scope["model"].eval()(input_ids=tokens()).logits, expected, atol=1e-5)


# --- 10: the build's torch threads ----------------------------------------------------------------------------------


def test_build_threads_default_to_one_and_follow_lpzero_threads(monkeypatch):
    monkeypatch.delenv("LPZERO_THREADS", raising=False)
    assert lonas_build.build_threads() == lonas_build.DEFAULT_THREADS == 1
    monkeypatch.setenv("LPZERO_THREADS", "3")
    assert lonas_build.build_threads() == 3
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("LPZERO_THREADS", bad)
        with pytest.raises(BenchmarkError, match=rf"LPZERO_THREADS='{re.escape(bad)}': expected a positive integer"):
            lonas_build.build_threads()


@pytest.mark.data
def test_the_training_stages_run_on_the_build_threads(tmp_path, monkeypatch):
    seen = []
    real = lonas_build.train

    def spy(*args, **kw):
        seen.append(torch.get_num_threads())
        return real(*args, **kw)

    monkeypatch.setattr(lonas_build, "train", spy)
    size = lonas_build.SIZES["smoke"]
    before = torch.get_num_threads()
    for threads in (1, 2):
        builder = lonas_build.Builder(tmp_path / str(threads), default_data_root(), size, threads=threads)
        builder.build_vocab()
        assert builder.pretrain()["threads"] == threads
    assert seen == [1, 2] and torch.get_num_threads() == before  # the caller's count is given back


@pytest.mark.data
def test_a_bad_lpzero_threads_is_one_line_before_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv("LPZERO_THREADS", "0")
    r = CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "lpzero: error: LPZERO_THREADS='0': expected a positive integer (torch threads of the training stages; "
        "default 1)"], r.output
    assert not (tmp_path / "b").exists()


# --- 11: docs paths -------------------------------------------------------------------------------------------------


def test_the_docs_paths_are_ones_a_user_can_copy():
    assert "/work/" not in DOCS.read_text()
