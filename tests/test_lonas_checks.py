"""A `lonas:DIR` benchmark is checked when it is opened: every bad file is one line naming the file and
the key, exit code 2, before any per-candidate work (docs/promises.md); its space comes from space.json,
`--space-file` or LoNAS's rules applied to the checkpoint, and `lpzero info` shows it (docs/lonas.md)."""
from __future__ import annotations

import json
import shutil
import struct

import pytest
from click.testing import CliRunner

from lpzero.benchmarks import BenchmarkError, get_benchmark
from lpzero.benchmarks.lonas import LoNASBenchmark, lonas_space, make_supernetwork
from lpzero.benchmarks.lonas.build import BUILD_FILE, SIZES, Builder
from lpzero.benchmarks.selection import BenchmarkRequest
from lpzero.cli import main
from lpzero.errors import LPZeroError
from lpzero.files import atomic_write_json
from test_lonas_checkpoints import FFN, LAYERS, RANK, tiny_model, write_checkpoint, write_text


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny LLaMA checkpoint (base/ with its tokenizer, adapter/ of rank 8, text.txt), written once."""
    root = tmp_path_factory.mktemp("lonas_checks")
    write_checkpoint(root)
    return root


@pytest.fixture
def ckpt(saved, tmp_path):
    """A copy of `saved` that a test may damage."""
    root = tmp_path / "ckpt"
    shutil.copytree(saved, root)
    return root


def refused(root, *extra, message: str, command: str = "cache"):
    """`lpzero COMMAND lonas:root/base --adapter root/adapter --text root/text.txt EXTRA`: exit 2 with one
    line holding `message`, no traceback, and nothing written (no cache folder, no output folder)."""
    out = root.parent / "written"
    where = ["--cache-dir", str(out)] if command == "cache" else (
        ["--out", str(out), "--proxy", "grad_norm", "--generations", "0", "--population", "2",
         "--cache-dir", str(out)] if command == "nas" else [])
    space = ["--space"] if command == "nas" else []
    args = [command, *space, f"lonas:{root / 'base'}", "--adapter", str(root / "adapter"), "--text",
            str(root / "text.txt"), *where, *map(str, extra)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()  # refused before any work
    return r.stderr


def _write_json(path, data) -> None:
    path.write_text(json.dumps(data))


def _edit_json(path, **changes) -> None:
    _write_json(path, {**json.loads(path.read_text()), **changes})


def _tiny_space_json(layers: int = LAYERS, ffn: int = FFN, rank: int = RANK) -> dict:
    return lonas_space(layers, ffn, rank, 2 * rank, name="mine").to_json()


# --- the adapter --------------------------------------------------------------------------------


def test_an_adapter_folder_without_its_config_is_one_line(ckpt):
    (ckpt / "adapter" / "adapter_config.json").unlink()
    refused(ckpt, message="not a peft adapter directory (no adapter_config.json)")


@pytest.mark.parametrize("content, message", [
    (b"[1]", "adapter_config.json: expected a JSON object, got list"),
    (b'{"r": "\xff\xfe"}', "adapter_config.json: not UTF-8 JSON"),
    (b'{"r": "abc", "lora_alpha": 16}', "adapter_config.json: r is 'abc' (expected a positive integer)"),
    (b'{"r": 0, "lora_alpha": 16}', "adapter_config.json: r is 0"),
    (b'{"r": true, "lora_alpha": 16}', "adapter_config.json: r is True"),
    (b'{"r": 8, "lora_alpha": "x"}', "adapter_config.json: lora_alpha is 'x'"),
])
def test_a_malformed_adapter_config_is_one_line(ckpt, content, message):
    (ckpt / "adapter" / "adapter_config.json").write_bytes(content)
    refused(ckpt, message=message)


def test_an_adapter_whose_config_disagrees_with_its_weights_is_one_line_in_info(ckpt):
    _edit_json(ckpt / "adapter" / "adapter_config.json", r=4, lora_alpha=8)  # its weights have rank 8
    stderr = refused(ckpt, message="adapter_model.safetensors: base_model.model.model.layers.0.", command="info")
    assert "has shape [8, " in stderr and "r=4" in stderr


def test_an_adapter_of_another_rank_than_the_space_is_refused_when_opened(ckpt, tmp_path):
    other = make_supernetwork(tiny_model("llama"), lonas_space(LAYERS, FFN, 4, 8))
    other.save_pretrained(str(ckpt / "adapter"))  # rank 4, and a --space-file of rank 8
    _write_json(tmp_path / "space.json", _tiny_space_json())
    refused(ckpt, "--space-file", tmp_path / "space.json", message="adapter_config.json: adapter has r=4, alpha=8")


def test_nas_takes_a_space_file(ckpt, tmp_path):
    _write_json(tmp_path / "space.json", _tiny_space_json(rank=4))
    refused(ckpt, "--space-file", tmp_path / "space.json", message="adapter has r=8", command="nas")


def test_nas_refuses_a_damaged_adapter_before_work(ckpt):
    _truncate(ckpt / "adapter" / "adapter_model.safetensors")
    refused(ckpt, message="adapter_model.safetensors: ", command="nas")


def test_an_adapter_missing_a_module_lonas_adapts_is_one_line(ckpt):
    from safetensors.torch import load_file, save_file

    path = ckpt / "adapter" / "adapter_model.safetensors"
    tensors = {k: v for k, v in load_file(str(path)).items() if "layers.1.self_attn.k_proj" not in k}
    save_file(tensors, str(path))
    refused(ckpt, message="no lora_A of k_proj in layer 1")


# --- damaged weight files -------------------------------------------------------------------------


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _garble(path) -> None:
    path.write_bytes(struct.pack("<Q", 10 ** 12) + b"not a header")


@pytest.mark.parametrize("file", ["base/model.safetensors", "adapter/adapter_model.safetensors"])
@pytest.mark.parametrize("damage, message", [(_truncate, "(a truncated or damaged copy)"),
                                             (_garble, "not a readable safetensors file")])
def test_a_truncated_or_corrupt_weight_file_is_one_line(ckpt, file, damage, message):
    damage(ckpt / file)
    stderr = refused(ckpt, message=message)
    assert str(ckpt / file) in stderr


def test_base_weights_of_other_sizes_than_config_json_are_one_line(ckpt):
    _edit_json(ckpt / "base" / "config.json", intermediate_size=48)  # the weights are 64 wide
    stderr = refused(ckpt, message="model.safetensors: model.layers.0.mlp.")
    assert "config.json's sizes give [" in stderr and "48" in stderr


# --- config.json, ground_truth.json, build.json ---------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"[1]", "config.json: expected a JSON object, got list"),
    (b"\xff\xfe{}", "config.json: not UTF-8 JSON"),
])
def test_a_config_that_is_not_a_json_object_is_one_line(ckpt, content, message):
    (ckpt / "base" / "config.json").write_bytes(content)
    refused(ckpt, message=message)


@pytest.mark.parametrize("key, value", [("hidden_size", "32"), ("num_hidden_layers", True),
                                        ("intermediate_size", 0), ("num_attention_heads", 4.0),
                                        ("vocab_size", None), ("max_position_embeddings", -1)])
def test_config_sizes_must_be_positive_integers(ckpt, key, value):
    _edit_json(ckpt / "base" / "config.json", **{key: value})
    refused(ckpt, message=f"config.json: {key} is {value!r} (expected a positive integer)")


def _ground_truth(ckpt, **bad) -> None:
    space = lonas_space(LAYERS, FFN, RANK, 2 * RANK)
    entries = {"max": {"choice": space.pick("max"), "ppl": 10.0}, "min": {"choice": space.pick("min"), "ppl": 20.0}}
    _write_json(ckpt / "base" / "ground_truth.json", {"subnetworks": {**entries, "bad": {
        "choice": space.pick("heuristic"), "ppl": 15.0, **bad}}})


@pytest.mark.parametrize("bad, message", [
    ({"choice": 5}, "subnetworks.bad.choice is 5 (expected an object"),
    ({"choice": None}, "subnetworks.bad.choice is None"),
    ({"choice": {"L0.ffn_width": 64}}, "subnetworks.bad.choice: space 'lonas-2x64': no value for group L0.qkv_rank"),
    ({"ppl": True}, "subnetworks.bad.ppl is True"),
    ({"ppl": "12"}, "subnetworks.bad.ppl is '12'"),
])
def test_a_malformed_ground_truth_is_one_line(ckpt, bad, message):
    _ground_truth(ckpt, **bad)
    stderr = refused(ckpt, message=message)
    assert "ground_truth.json" in stderr


def _built(ckpt):
    """ckpt laid out as a built LoNAS directory (base/, adapter/, space.json), without build.json."""
    _write_json(ckpt / "space.json", _tiny_space_json())
    return ckpt


def test_a_build_json_that_is_not_an_object_is_one_line(ckpt, tmp_path):
    _write_json(_built(ckpt) / BUILD_FILE, [1])
    with pytest.raises(BenchmarkError, match=r"build.json: expected a JSON object, got list"):
        LoNASBenchmark(ckpt, text=ckpt / "text.txt")
    with pytest.raises(BenchmarkError, match=r"build.json: expected a JSON object, got list"):
        Builder(ckpt, tmp_path, SIZES["smoke"])  # `lpzero build` resuming into it


def test_info_says_a_build_is_a_smoke_build(ckpt, tmp_path):
    state = Builder(tmp_path / "fresh", tmp_path, SIZES["smoke"]).state
    assert state["size_name"] == "smoke"  # recorded in build.json by the build
    atomic_write_json(_built(ckpt) / BUILD_FILE, state)
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt}", "--text", str(ckpt / "text.txt")])
    assert r.exit_code == 0, r.output
    assert "build          smoke (a seconds-long toy size, not a benchmark)" in r.output


@pytest.mark.data
@pytest.mark.slow
def test_info_on_a_real_smoke_build_says_so(lonas_smoke):
    out, built = lonas_smoke
    assert built.exit_code == 0, built.output
    r = CliRunner().invoke(main, ["info", f"lonas:{out}"])
    assert r.exit_code == 0, r.output
    assert "build          smoke (a seconds-long toy size, not a benchmark)" in r.output
    assert f"{out / 'space.json'} (space.json)" in r.output


# --- the space ------------------------------------------------------------------------------------


def test_info_prints_the_space_derived_from_the_checkpoint_and_the_adapter(ckpt):
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt / 'base'}", "--adapter", str(ckpt / "adapter"),
                                  "--text", str(ckpt / "text.txt")])
    assert r.exit_code == 0, r.output
    assert (f"space          lonas-2x64, derived from {ckpt / 'base' / 'config.json'} and "
            f"{ckpt / 'adapter' / 'adapter_config.json'} (r=8)") in r.output
    # LoNAS's rules: FFN widths 100/87.5/75/62.5/50 % of 64, ranks r and r - r/8
    assert "ffn_width     L0-L1     64, 56, 48, 40, 32" in r.output
    assert "qkv_rank      L0-L1     8, 7" in r.output and "gate_up_rank  L0-L1     8, 7" in r.output
    assert "sub-networks   400" in r.output  # (2 * 5 * 2) ** 2


def test_a_space_file_is_the_space(ckpt, tmp_path):
    data = _tiny_space_json()
    data["groups"] = [g for g in data["groups"] if g["layer"] == 0 or g["name"].endswith("ffn_width")]
    _write_json(tmp_path / "mine.json", data)
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt / 'base'}", "--adapter", str(ckpt / "adapter"),
                                  "--text", str(ckpt / "text.txt"), "--space-file", str(tmp_path / "mine.json")])
    assert r.exit_code == 0, r.output
    assert f"space          mine, {tmp_path / 'mine.json'} (--space-file)" in r.output
    assert "qkv_rank      L0        8, 7" in r.output and "sub-networks   100" in r.output
    bench = get_benchmark(f"lonas:{ckpt / 'base'}", adapter=str(ckpt / "adapter"), space=str(tmp_path / "mine.json"),
                          text=str(ckpt / "text.txt"))
    assert tmp_path / "mine.json" in bench.data_files()  # a changed space file is another benchmark


def test_the_docs_space_file_example_is_a_space(ckpt, tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "lonas.md").read_text()
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mine.json").write_text(example)
    r = CliRunner().invoke(main, ["info", f"lonas:{ckpt / 'base'}", "--adapter", str(ckpt / "adapter"),
                                  "--text", str(ckpt / "text.txt"), "--space-file", str(tmp_path / "mine.json")])
    assert r.exit_code == 0, r.output
    assert "sub-networks   12" in r.output and "ffn_width     L0        64, 48, 32" in r.output


def _groups_edit(data: dict, **changes) -> dict:
    return {**data, "groups": [{**data["groups"][0], **changes}] + data["groups"][1:]}


@pytest.mark.parametrize("edit, message", [
    (lambda d: [d], "mine.json: expected a JSON object, got list"),
    (lambda d: {k: v for k, v in d.items() if k != "groups"},
     "mine.json: malformed LoNAS space: key 'groups' is missing"),
    (lambda d: {**d, "lora_rank": "8"}, "mine.json: malformed LoNAS space: lora_rank is '8'"),
    (lambda d: {**d, "groups": 3}, "mine.json: malformed LoNAS space: groups is 3"),
    (lambda d: _groups_edit(d, choices=[True]), "groups[0]: choices is True"),
    (lambda d: _groups_edit(d, layer=7), "groups[0]: layer is 7 (expected 0 to 1)"),
    (lambda d: _groups_edit(d, kind="depth"), "groups[0]: kind is 'depth'"),
    (lambda d: _groups_edit(d, modules="mlp.up_proj"), "groups[0]: modules is 'mlp.up_proj'"),
    (lambda d: _groups_edit(d, modules=["mlp.nothing"]), "mine.json: group L0.qkv_rank names ['mlp.nothing']"),
    (lambda d: _groups_edit(d, choices=[7, 8]), "mine.json: space 'mine': group L0.qkv_rank needs positive choices"),
])
def test_a_malformed_space_file_is_one_line(ckpt, tmp_path, edit, message):
    _write_json(tmp_path / "mine.json", edit(_tiny_space_json()))
    refused(ckpt, "--space-file", tmp_path / "mine.json", message=message, command="info")


def test_a_space_file_for_another_model_is_one_line(ckpt, tmp_path):
    _write_json(tmp_path / "deep.json", _tiny_space_json(layers=4))
    refused(ckpt, "--space-file", tmp_path / "deep.json",
            message="deep.json: space 'mine' is for 4 layers of FFN width 64")
    _write_json(tmp_path / "wide.json", _tiny_space_json(ffn=128))
    refused(ckpt, "--space-file", tmp_path / "wide.json", message="is for 2 layers of FFN width 128")


def test_space_file_applies_to_lonas_checkpoints_only(tmp_path):
    with pytest.raises(LPZeroError, match="--space-file applies to lonas:CHECKPOINT benchmarks only"):
        BenchmarkRequest("gpt2", space_file=str(tmp_path / "x.json")).options()


# --- the sequence length ---------------------------------------------------------------------------


@pytest.fixture
def long_positions(ckpt):
    """ckpt with 256 positions (rotary: no weights change) and a text of 200 words."""
    _edit_json(ckpt / "base" / "config.json", max_position_embeddings=256)
    write_text(ckpt / "text.txt", n_words=200)
    return ckpt


def test_check_batch_refuses_a_sequence_longer_than_the_text_or_the_positions(long_positions):
    root = long_positions
    bench = LoNASBenchmark(root / "base", adapter=root / "adapter", text=root / "text.txt")
    bench.check_batch(4, 128)  # the default fits
    with pytest.raises(BenchmarkError, match=r"text.txt: 200 tokens, fewer than one window of 250 \+ 1"):
        bench.check_batch(4, 250)
    with pytest.raises(BenchmarkError, match="config.json: --seq-len 300 exceeds max_position_embeddings 256"):
        bench.check_batch(4, 300)
    with pytest.raises(BenchmarkError, match="fewer than one window of 250"):
        bench.make_batch(0, 4, 250)  # make_batch checks it the same way


def test_a_seq_len_longer_than_the_text_is_refused_before_work(long_positions):
    refused(long_positions, "--seq-len", 250, message="text.txt: 200 tokens, fewer than one window of 250 + 1")
