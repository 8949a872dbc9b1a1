"""`lpzero score PATH --proxy P`: one model's score, so any NAS framework can use a found proxy as its objective.

`ScoreRequest` is the command's settings object; `score(request)` opens what PATH is (a checkpoint
directory in its own weights and dtype, or a `config.json` with seeded random weights:
`lpzero.benchmarks.hf.one.load_one`), its tokenizer (its own, or `tokenizer`) and the text, and
scores it with the proxy the way `lpzero nas` scores a candidate (`lpzero.proxies.score_proxies`,
streaming every gradient above `lpzero.proxies.context.STREAM_ABOVE_BYTES` of parameters). In
Python, `score_model(model, tokenizer_or_batch, proxy)` scores any supported `PreTrainedModel`
already in memory.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpzero.benchmarks import Batch, resolve_data_root
from lpzero.benchmarks.hf.one import ONE, OneModel, load_one
from lpzero.cache.request import check_device
from lpzero.executors import torch_threads
from lpzero.nas import proxy_spec
from lpzero.proxies import FoundProxy, Proxy, ProxyContext, score_proxies


@dataclass(frozen=True)
class ScoreRequest:
    """Everything `lpzero score` is told: the model, the proxy, the tokenizer and text, the batch."""

    #: a checkpoint directory (`save_pretrained`) or a `config.json`
    path: str
    #: a found proxy (best.json or its folder), or a hand-designed proxy's name (-NAME negates it)
    proxy: str
    #: a local tokenizer directory (None: the checkpoint's own, or the config's folder's)
    tokenizer: str | None = None
    #: a UTF-8 text file for the mini-batch (None: WikiText-2 valid under the data root)
    text: str | None = None
    #: the data root (None: $LPZERO_DATA, else ../shared/data)
    data: str | None = None
    #: a checkpoint's dtype (None: its own), a config's (None: float32)
    dtype: str | None = None
    batch_size: int = 4
    seq_len: int = 128
    batch_seed: int = 0
    #: the seed of a config's random weights (a checkpoint's are its own)
    model_seed: int = 0
    device: str = "cpu"


@dataclass
class ScoreResult:
    """The score (oriented: higher = better), the proxy, what was scored, the batch and the seconds."""

    score: float
    proxy: dict
    model: dict
    batch: tuple[int, int]
    seconds: float

    def to_json(self) -> dict:
        return {"score": self.score, "proxy": self.proxy, "model": self.model, "batch": list(self.batch),
                "seconds": self.seconds}


def score(request: ScoreRequest) -> ScoreResult:
    """Score the model `request` names (see the module docstring); every input is checked before the pass."""
    check_device(request.device)
    proxy = proxy_spec(request.proxy)  # a malformed best.json fails before the model is loaded
    data = resolve_data_root(request.data) if request.text is None else request.data
    bench = load_one(request.path, request.tokenizer, data, request.text, request.dtype, request.model_seed)
    seq_len = min(request.seq_len, bench.max_seq_len() or request.seq_len)
    bench.check_batch(request.batch_size, seq_len)
    batch = bench.make_batch(request.batch_seed, request.batch_size, seq_len)
    t = time.perf_counter()
    value = _score(bench, proxy, batch, request.model_seed, request.device)
    model = bench.model
    return ScoreResult(value, proxy.record(), {"path": str(Path(request.path).resolve()),
                                               "model_type": model.config.model_type,
                                               "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                                               "params": bench.count_params(ONE)["total"]},
                       tuple(batch.shape), time.perf_counter() - t)


def score_model(model: nn.Module, tokenizer_or_batch: Any, proxy: str | Proxy, *, text: str | None = None,
                data: str | None = None, batch_size: int = 4, seq_len: int = 128, seed: int = 0,
                device: str | torch.device | None = None) -> float:
    """The score (oriented: higher = better) of `model`, any `PreTrainedModel` of a family lpzero knows
    (`lpzero.benchmarks.sites.SITE_MAPS`), under `proxy` (a `Proxy`, a best.json path or a hand-designed
    proxy's name) on one mini-batch: `tokenizer_or_batch` is a tokenizer (random windows of `text`, else
    WikiText-2, drawn from `seed`), or the batch itself (a `Batch` or a tensor of token ids [B, T]).
    The model is put in eval mode and scored where it is (or on `device`)."""
    proxy = proxy_spec(proxy) if isinstance(proxy, str) else proxy
    batch = tokenizer_or_batch if isinstance(tokenizer_or_batch, Batch) else (
        Batch(tokenizer_or_batch) if isinstance(tokenizer_or_batch, torch.Tensor) else None)
    tokenizer = None if batch is not None else tokenizer_or_batch
    root = None if batch is not None or text is not None else resolve_data_root(data)
    bench = OneModel(model.eval(), tokenizer, root, text, batch)
    if batch is None:
        seq_len = min(seq_len, bench.max_seq_len() or seq_len)
        bench.check_batch(batch_size, seq_len)
        batch = bench.make_batch(seed, batch_size, seq_len)
    return _score(bench, proxy, batch, seed, device or next(model.parameters()).device)


def _score(bench: OneModel, proxy: Proxy, batch: Batch, seed: int, device: str | torch.device) -> float:
    """`proxy`'s oriented score of the benchmark's one model on `batch` (one shared pass, streamed where large),
    on one torch thread as every lpzero score is (the same value whatever the machine's thread count)."""
    if isinstance(proxy, FoundProxy):
        proxy = proxy.on_benchmark(bench.name)
    with torch_threads():
        ctx = ProxyContext(bench, ONE, seed, batch.to(device), device)
        return score_proxies([proxy], ctx, strict=True)[proxy.name].value


__all__ = ["ScoreRequest", "ScoreResult", "score", "score_model"]
