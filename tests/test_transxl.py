"""The LiteTransformerSearch Transformer-XL: config parsing, model, proxy sites, word batches, Archai's counts."""
from __future__ import annotations

import pytest
import torch
import yaml

from lpzero.benchmarks import default_data_root
from lpzero.benchmarks.base import BenchmarkError, ConfigError
from lpzero.benchmarks.hooks import recording
from lpzero.benchmarks.lts.transxl import (
    TransXLConfig,
    build_transxl,
    count_transxl_params,
    is_transxl_config,
    transxl_sites,
)
from lpzero.benchmarks.lts.words import word_batch, word_vocabulary

PARAM_KEYS = ("AdaEmb", "Attn", "FFN", "nonembedding", "total")

#: a tiny relative-attention model: two layers of different widths, three clusters, div_val 2
TINY = {
    "n_token": 60, "n_layer": 2, "d_model": 32, "n_head": [4, 2], "d_inner": [48, 24],
    "d_embed": 32, "div_val": 2, "cutoffs": [10, 30, 100], "tie_projs": [False, True, True],
    "d_head": -1, "attn_type": 0, "tgt_len": 16, "mem_len": 16, "dropout": 0.1, "dropatt": 0.0,
}


def tiny(**overrides) -> dict:
    return {**TINY, **overrides}


def ids(batch: int = 2, seq_len: int = 9, n_token: int = 60, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, n_token, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


# --- config --------------------------------------------------------------------------------


def test_config_expands_per_layer_fields() -> None:
    cfg = TransXLConfig.from_dict(tiny(n_head=2, d_inner=40))
    assert (cfg.n_head, cfg.d_head, cfg.d_inner) == ((2, 2), (16, 16), (40, 40))
    cfg = TransXLConfig.from_dict(TINY)
    assert cfg.d_head == (8, 16)
    assert cfg.cutoffs == (10, 30, 60)  # trimmed to the vocabulary
    assert cfg.tie_projs == (False, True, True)
    assert cfg.n_positions == 16


@pytest.mark.parametrize("key, value", [
    ("n_layer", 2.5), ("n_head", [4]), ("d_inner", [48, 0]), ("d_model", "32"),
    ("div_val", 0), ("attn_type", 2), ("tie_projs", [False]), ("cutoffs", "10,30"),
    ("weight_init_type", "xavier"), ("d_head", [8]), ("dropout", -0.1), ("sample_softmax", 100),
])
def test_config_errors_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        TransXLConfig.from_dict(tiny(**{key: value}))


def test_config_missing_key_is_named() -> None:
    raw = dict(TINY)
    del raw["d_embed"]
    with pytest.raises(ConfigError, match="d_embed"):
        TransXLConfig.from_dict(raw)


def test_family_rule() -> None:
    assert is_transxl_config({**TINY, "vocab": "word"})
    assert is_transxl_config({**TINY, "model_type": "mem_transformer"})
    assert not is_transxl_config({**TINY, "model_type": "hf_gpt2_flex", "vocab": "word"})
    assert not is_transxl_config(TINY)  # architecture keys alone: the GPT-2 directory's format


# --- the model -----------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"div_val": 1}, {"div_val": 1, "d_embed": 16},
                                       {"pre_lnorm": True}, {"tie_weight": False, "tie_projs": None}])
def test_builds_and_gives_finite_loss(overrides: dict) -> None:
    model = build_transxl(tiny(**overrides), seed=0)
    assert not model.training
    loss = model.loss(ids())
    assert loss.ndim == 0 and torch.isfinite(loss)
    # a random model is near the uniform guess over 60 tokens
    assert 2.0 < loss.item() < 6.0


def test_same_seed_same_weights() -> None:
    a, b, c = build_transxl(TINY, 3), build_transxl(TINY, 3), build_transxl(TINY, 4)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, r) for p, r in zip(a.parameters(), c.parameters()))


def test_build_leaves_global_rng_alone() -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    build_transxl(TINY, 0)
    assert torch.equal(torch.rand(3), expected)


def test_init_follows_archai() -> None:
    model = build_transxl(TINY, 0)
    norm = model.layers[0].dec_attn.layer_norm
    assert not torch.equal(norm.weight, torch.ones_like(norm.weight))  # Normal(1, 0.02), not 1
    assert (norm.weight - 1).abs().max() < 0.2 and torch.all(norm.bias == 0)
    assert torch.all(model.layers[1].pos_ff.CoreNet[0].bias == 0)
    assert model.layers[0].r_w_bias.std() > 0
    assert all(torch.all(b == 0) for b in model.crit.biases)
    # tied: the softmax reads the embedding's tables and all but the head projection
    assert model.crit.weights[1] is model.word_emb.layers[1].weight
    assert model.crit.projs["1"] is model.word_emb.projs[1]
    assert model.crit.projs["0"] is not model.word_emb.projs[0]


def test_float64_works() -> None:
    model = build_transxl(TINY, 0).double()
    loss = model.loss(ids())
    assert loss.dtype == torch.float64 and torch.isfinite(loss)
    loss32 = build_transxl(TINY, 0).loss(ids())
    assert loss.item() == pytest.approx(loss32.item(), rel=1e-5)


def test_runs_up_to_tgt_len_and_is_causal() -> None:
    model = build_transxl(TINY, 0).double()
    x = ids(seq_len=16)
    hidden = model(x)
    assert hidden.shape == (2, 16, 32)
    changed = x.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 60
    # tokens before the change see the same context, so the same hidden states
    torch.testing.assert_close(model(changed)[:, :10], hidden[:, :10])
    assert not torch.allclose(model(changed)[:, 10:], hidden[:, 10:])


def test_attention_scores_follow_the_relative_formula() -> None:
    """S of layer 0, against (q_i + u).k_j + (q_i + v).R_(i-j) written out pair by pair."""
    model = build_transxl(TINY, 0).double()
    sites = transxl_sites(model)
    x = ids(batch=1, seq_len=5)
    with recording([(sites.softmax[0].module, "input"), (model.layers[0].dec_attn.qkv_net, "input")]) as rec:
        model(x)
    probs, inp = rec.per_target[0][0][0], rec.per_target[1][0][0]  # [H, T, T], [T, D]
    attn, layer = model.layers[0].dec_attn, model.layers[0]
    q, k, _ = attn.qkv_net(inp).view(5, 3, 4, 8).unbind(1)  # each [T, H, d]
    inv_freq = 10000 ** -(torch.arange(0, 32, 2, dtype=torch.float64) / 32)
    angles = torch.arange(5, dtype=torch.float64)[:, None] * inv_freq
    r = attn.r_net(torch.cat([angles.sin(), angles.cos()], -1)).view(5, 4, 8)  # R_d for d = 0..4
    expected = torch.zeros(4, 5, 5, dtype=torch.float64)
    for i in range(5):
        scores = torch.stack([((q[i] + layer.r_w_bias) * k[j]).sum(-1) + ((q[i] + layer.r_r_bias) * r[i - j]).sum(-1)
                              for j in range(i + 1)], dim=-1) / 8**0.5
        expected[:, i, : i + 1] = torch.softmax(scores, dim=-1)
    torch.testing.assert_close(probs, expected)


def test_same_length_and_clamp_len() -> None:
    x = ids(batch=1, seq_len=8)
    model = build_transxl(tiny(same_length=True, mem_len=3), 0)
    sites = transxl_sites(model)
    *_, probs, _ = _record(model, sites, x)
    offset = torch.arange(8)[:, None] - torch.arange(8)[None, :]
    assert torch.all(probs[0][..., offset > 3] == 0)  # at most mem_len earlier tokens
    assert torch.all(probs[0][..., (offset >= 0) & (offset <= 3)] > 0)
    plain, clamped = build_transxl(TINY, 0).double(), build_transxl(tiny(clamp_len=4), 0).double()
    # distances up to 4 are the same embeddings; beyond, the clamped model reads R_4
    torch.testing.assert_close(clamped(x[:, :5]), plain(x[:, :5]))
    assert not torch.allclose(clamped(x), plain(x))


def test_counts_on_meta_device_match_the_built_model() -> None:
    counts = count_transxl_params(TINY)
    model = build_transxl(TINY, 0)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    d, layers = 32, [(4 * 8, 48), (2 * 16, 24)]  # (n_head * d_head, d_inner)
    assert counts["Attn"] == sum(5 * d * hd + 2 * d for hd, _ in layers)  # qkv, r, o + attention LayerNorm
    assert counts["FFN"] == sum(2 * d * f + f + d for _, f in layers)
    assert counts["nonembedding"] == counts["Attn"] + counts["FFN"] + 2 * len(layers) * 2 * d
    tables = 10 * 32 + 20 * 16 + 30 * 8
    assert counts["AdaEmb"] == tables + d * (32 + 16 + 8)


# --- proxy sites ---------------------------------------------------------------------------


def _record(model, sites, x):
    targets = ([(s.module, s.where) for s in sites.activations] + [(s.module, s.where) for s in sites.heads]
               + [(s.module, s.where) for s in sites.softmax] + [(sites.embedding, "output")])
    with recording(targets) as rec:
        loss = model.loss(x)
    n = len(sites.activations)
    rows = [r[0] for r in rec.per_target]
    return loss, rows[:n], rows[n : 2 * n], rows[2 * n : 3 * n], rows[3 * n]


def test_sites_shapes_softmax_and_heads() -> None:
    model = build_transxl(TINY, 0)
    sites = transxl_sites(model)
    assert sites.position_embedding is None
    x = ids(batch=2, seq_len=9)
    loss, acts, heads, probs, emb = _record(model, sites, x)
    assert emb.shape == (2, 9, 32)
    assert [a.shape for a in acts] == [(2, 9, 48), (2, 9, 24)]
    assert all(torch.all(a >= 0) for a in acts)  # ReLU outputs
    assert [h.shape for h in heads] == [(2, 9, 32), (2, 9, 32)]
    assert [p.shape for p in probs] == [(2, 4, 9, 9), (2, 2, 9, 9)]
    for p in probs:
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
        assert torch.all(p.triu(1) == 0)  # causal: nothing above the diagonal
        assert torch.all(p[..., 0, 0] == 1)  # the first token sees only itself
    # H is exactly what o_net multiplies
    layer = model.layers[1].dec_attn
    assert sites.heads[1].module is layer.o_net and sites.heads[1].where == "input"
    assert sites.softmax[0].module is model.layers[0].dec_attn.dropatt


def test_weight_sites_pair_with_gradients() -> None:
    model = build_transxl(TINY, 0)
    sites = transxl_sites(model)
    names = [w.name for w in sites.weights]
    assert names[:5] == ["layers.0.dec_attn.qkv_net", "layers.0.dec_attn.r_net", "layers.0.dec_attn.o_net",
                         "layers.0.pos_ff.CoreNet.0", "layers.0.pos_ff.CoreNet.3"]
    assert len(names) == 10 and [w.layer for w in sites.weights] == [0] * 5 + [1] * 5
    assert sites.weights[0].param.shape == (3 * 32, 32)
    assert sites.weights[4].param.shape == (32, 48)
    model.loss(ids()).backward()
    for w in sites.weights:
        assert w.param.grad is not None and w.param.grad.shape == w.param.shape, w.name
        assert w.param.grad.abs().sum() > 0, w.name


def test_embedding_gradient_is_per_token() -> None:
    model = build_transxl(TINY, 0)
    sites = transxl_sites(model)
    x = ids(batch=2, seq_len=6)
    loss, *_, emb = _record(model, sites, x)
    (grad,) = torch.autograd.grad(loss, emb)
    assert grad.shape == (2, 6, 32) and torch.isfinite(grad).all()


# --- word batches --------------------------------------------------------------------------


@pytest.mark.data
def test_word_batches_are_seeded_and_fit_the_vocabulary() -> None:
    root = default_data_root()
    vocab = word_vocabulary(root)
    assert vocab["<eos>"] == 0 and 15_000 < len(vocab) < 19_997
    a, b = word_batch(root, 1, 3, 20, 267_736), word_batch(root, 1, 3, 20, 267_736)
    assert a.shape == (3, 20) and torch.equal(a.input_ids, b.input_ids)
    assert not torch.equal(a.input_ids, word_batch(root, 2, 3, 20, 267_736).input_ids)
    small = word_batch(root, 1, 3, 20, 60).input_ids
    assert small.max() < 60
    kept = a.input_ids < 60
    assert torch.equal(small[kept], a.input_ids[kept])
    assert torch.all(small[~kept] == vocab["<unk>"])
    with pytest.raises(BenchmarkError, match="seq_len"):
        word_batch(root, 0, 1, 10**7, 100)


@pytest.mark.data
def test_word_batch_runs_a_tiny_model() -> None:
    batch = word_batch(default_data_root(), 0, 2, 16, 60)
    assert torch.isfinite(build_transxl(TINY, 0).loss(batch.input_ids))


# --- Archai's own counts -------------------------------------------------------------------


def _yaml(path) -> dict:
    # libyaml's loader when there is one: 400 configs of ~100 keys take seconds in pure Python
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.mark.data
@pytest.mark.slow
def test_param_counts_equal_archai_for_all_200() -> None:
    root = default_data_root() / "lts_transxl_wt103"
    reference = _yaml(root / "params_summary.yaml")
    configs = sorted(root.glob("config_*/j*/model_config.yaml"))
    assert len(configs) == 200
    mismatched = {}
    for path in configs:
        arch_id = f"{path.parent.parent.name}_{path.parent.name}"
        raw = _yaml(path)
        assert is_transxl_config(raw), arch_id
        ours, theirs = count_transxl_params(raw), {k: int(reference[arch_id][k]) for k in PARAM_KEYS}
        if ours != theirs:
            mismatched[arch_id] = (ours, theirs)
    assert not mismatched, f"{len(mismatched)} differ, e.g. {next(iter(mismatched.items()))}"

    gpt2 = sorted((default_data_root() / "lts_gpt2_wt103").glob("config_*/j*/model_config.yaml"))
    assert len(gpt2) == 200
    assert not any(is_transxl_config(_yaml(p)) for p in gpt2)
