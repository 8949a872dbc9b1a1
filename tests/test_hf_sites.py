"""The per-model_type site table (`lpzero.benchmarks.sites`): the six inputs of every built-in family."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lpzero.benchmarks.base import Batch, Benchmark, ZCSites
from lpzero.benchmarks.sites import (
    BUILTIN_SITE_MAPS,
    HFSiteError,
    SITE_MAPS,
    UnknownModelTypeError,
    build_tiny,
    hf_loss,
    hf_sites,
    mlm_labels,
    site_map,
    tiny_config,
)
from lpzero.benchmarks.inputs import extract_inputs

BATCH, TOKENS, HIDDEN, HEADS, FFN = 2, 16, 32, 4, 37


class HFStub(Benchmark):
    """Just enough of a benchmark for `extract_inputs`: the sites and loss of `lpzero.benchmarks.sites`."""

    name = "hf-stub"

    def __init__(self, sites=None) -> None:
        self.sites = sites

    def zc_sites(self, model: nn.Module) -> ZCSites:
        return hf_sites(model, self.sites)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return hf_loss(model, batch, self.sites)

    def ids(self):
        raise NotImplementedError

    def architecture(self, arch_id):
        raise NotImplementedError

    def build_model(self, arch_id, seed, device="cpu"):
        raise NotImplementedError

    def count_params(self, arch_id):
        raise NotImplementedError

    def make_batch(self, seed, batch_size=None, seq_len=None):
        raise NotImplementedError


def random_batch(seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    # ids from 3: no family's special tokens (RoBERTa's padding id is 1)
    return Batch(torch.randint(3, 99, (BATCH, TOKENS), generator=generator))


@pytest.mark.parametrize("model_type", sorted(BUILTIN_SITE_MAPS))
def test_six_inputs_of_each_family(model_type):
    model = build_tiny(model_type, seed=0)
    inputs = extract_inputs(HFStub(), model, random_batch())
    layers = [0, 1]
    for sym in "AHS":
        assert [lt.layer for lt in inputs[sym]] == layers, sym
    assert sorted({lt.layer for lt in inputs["W"]}) == layers
    assert len(inputs["W"]) == len(inputs["G"]) > 2 * len(layers)
    (j,) = inputs["J"]
    assert j.stored.shape == (BATCH, TOKENS, HIDDEN)
    for a in inputs["A"]:
        assert a.stored.shape[-1] == FFN
        assert a.stored.numel() == BATCH * TOKENS * FFN  # OPT flattens tokens: [B*T, FFN]
    for h in inputs["H"]:
        assert h.stored.shape == (BATCH, TOKENS, HEADS * HIDDEN // HEADS)
    for s in inputs["S"]:
        probs = s.tensor
        assert probs.shape == (BATCH, HEADS, TOKENS, TOKENS)
        assert torch.allclose(probs.sum(-1), torch.ones(BATCH, HEADS, TOKENS), atol=1e-5)
        above = torch.triu(torch.ones(TOKENS, TOKENS, dtype=torch.bool), diagonal=1)
        if site_map(model_type).encoder:
            assert (probs[..., above] > 0).all()
        else:
            assert (probs[..., above] == 0).all()
    for w, g in zip(inputs["W"], inputs["G"]):
        assert w.name == g.name and w.name.startswith(f"L{w.layer}.")
        assert w.stored.shape == g.stored.shape and w.stored.dim() == 2
        assert g.stored.abs().sum() > 0, g.name


def test_every_builtin_has_a_tiny_config():
    for model_type in BUILTIN_SITE_MAPS:
        config = tiny_config(model_type)
        assert config.model_type == model_type and config._attn_implementation == "eager"


def test_unknown_model_type_is_one_line_naming_the_supported_ones():
    with pytest.raises(UnknownModelTypeError) as info:
        site_map("mamba")
    message = str(info.value)
    assert "\n" not in message and "'mamba'" in message
    assert all(name in message for name in BUILTIN_SITE_MAPS)
    assert "SITE_MAPS.register" in message and "file.py:ATTR" in message
    assert isinstance(info.value, HFSiteError)


def test_sdpa_attention_is_refused_with_the_hint():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(tiny_config("llama"), attn_implementation="sdpa")
    with pytest.raises(HFSiteError, match='attn_implementation="eager"'):
        hf_sites(model)


def test_a_missing_module_is_named():
    model = build_tiny("llama")
    del model.model.layers[1].mlp.down_proj
    with pytest.raises(HFSiteError, match=r"'llama': layer 1 has no module 'mlp.down_proj' \(SiteMap.ffn_down\)"):
        hf_sites(model)


def test_a_user_site_map_as_file_path(tmp_path):
    # GPT-2 read differently: A at the activation's output, W only the two MLP weights
    (tmp_path / "my_map.py").write_text(
        "from lpzero.benchmarks.sites import SiteMap\n"
        "MAP = SiteMap('transformer.h', 'attn', 'attn.c_proj', 'mlp.c_proj', weights=('mlp.c_fc', 'mlp.c_proj'))\n")
    spec = f"{tmp_path / 'my_map.py'}:MAP"
    assert site_map(spec).weights == ("mlp.c_fc", "mlp.c_proj")
    inputs = extract_inputs(HFStub(spec), build_tiny("gpt2"), random_batch())
    assert [w.name for w in inputs["W"]] == ["L0.mlp.c_fc.weight", "L0.mlp.c_proj.weight",
                                             "L1.mlp.c_fc.weight", "L1.mlp.c_proj.weight"]
    assert all(g.stored.abs().sum() > 0 for g in inputs["G"])
    assert "my_map" not in " ".join(SITE_MAPS.names())


def test_a_registry_entry_that_is_not_a_site_map_is_refused(tmp_path):
    (tmp_path / "bad.py").write_text("MAP = {'layers': 'model.layers'}\n")
    with pytest.raises(HFSiteError, match="is not a lpzero.benchmarks.sites.SiteMap"):
        site_map(f"{tmp_path / 'bad.py'}:MAP")


def test_the_masked_lm_loss_is_fixed_per_batch():
    model = build_tiny("bert")
    batch = random_batch()
    assert hf_loss(model, batch).item() == hf_loss(model, batch).item()
    labels = mlm_labels(batch.input_ids)
    assert ((labels != -100).sum(dim=1) == 2).all()  # round(0.15 * 16) per row
    mask = torch.ones(BATCH, TOKENS, dtype=torch.long)
    mask[:, 12:] = 0
    assert (mlm_labels(batch.input_ids, mask)[:, 12:] == -100).all()


def test_a_bare_base_model_finds_its_layers():
    from transformers import AutoModel

    sites = hf_sites(AutoModel.from_config(tiny_config("opt")))
    assert len(sites.heads) == 2 and len(sites.weights) == 12
