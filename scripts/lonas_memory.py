"""Peak memory of the six proxy inputs of one LLaMA-7B-shaped LoNAS layer, and what 32 layers need.

    python scripts/lonas_memory.py --batch 1 --seq-len 128 --weights both

Builds a LlamaForCausalLM with the shapes of LLaMA-7B (hidden 4096, FFN 11008, 32 heads,
vocabulary 32000, float32, eager attention, random weights) but ONE decoder layer, makes
it a LoNAS super-network (`make_supernetwork`, the space `lonas_space(1, 11008)`: the 7B
preset's choices for one layer), and for the max, heuristic and min sub-networks runs
`extract_inputs` on the sub-network that LoNASBenchmark's own `build_subnetwork` extracts,
with its own `zc_sites` and `loss` (its `weights` family is `--weights`). Each sub-network
is measured in a fresh subprocess: peak resident memory (ru_maxrss, reset just before
`extract_inputs` through /proc/self/clear_refs) against the resident memory before the call.

The peak is explained by bytes counted from the tensors: the resident super-network's
parameters (embedding, lm_head, the layer's base weights and LoRA), the gradients the
backward pass allocates (every sub-network parameter that requires grad: the decoder
layers' parameters of the `--weights` family; the embedding, final norm and lm_head
require none), and the returned A/H/S/J. G is the gradient itself (extract_inputs takes
it over from the parameter), and W are views of the parameters: the script checks, by
storage, that neither adds bytes. Peak minus the non-layer part (interpreter and
libraries, embedding/lm_head/norm parameters, logits, J) is the per-layer figure; what
the tensors do not explain is shown as "rest". The estimate for the 32-layer 7B model
counts the non-layer part once and the per-layer part, rest included, 32 times:
extract_inputs returns every layer's W and G at once, and `--layers 2` or `--layers 3`
shows that the rest, too, grows with depth.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import click
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lpzero.benchmarks.base import Batch
from lpzero.benchmarks.inputs import SYMBOLS, extract_inputs
from lpzero.benchmarks.lonas import LoNASBenchmark, lonas_space, make_supernetwork
from lpzero.files import atomic_write_json

GIB, MIB = 2 ** 30, 2 ** 20
SUBNETS = ("max", "heuristic", "min")
#: LLaMA-7B's shapes (one decoder layer here; the real model has 32)
SHAPE = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
             vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-6)
FULL_LAYERS = 32


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _nbytes(t) -> int:
    return t.numel() * t.element_size()


class Layer7B(LoNASBenchmark):
    """LoNASBenchmark over an in-memory super-network: its own build_subnetwork, zc_sites and loss."""

    def __init__(self, supernet, space, weights: str) -> None:  # no directory to read
        self.name, self.space, self.weights, self._supernet = "lonas-7b-layer", space, weights, supernet


def measure(subnet: str, weights: str, batch_size: int, seq_len: int, threads: int, layers: int = 1) -> dict:
    """One sub-network, in this (fresh) process; returns the figures as a dict of bytes."""
    torch.set_num_threads(threads)
    gc.collect()
    libraries = proc_status()["VmRSS"]
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE, num_hidden_layers=layers, attn_implementation="eager", dtype="float32")
    base = LlamaForCausalLM(config).float()
    space = lonas_space(layers, SHAPE["intermediate_size"])
    supernet = make_supernetwork(base, space).eval()
    bench = Layer7B(supernet, space, weights)
    choice = space.pick(subnet)
    sub = bench.build_subnetwork(choice)
    batch = Batch(torch.randint(0, SHAPE["vocab_size"], (batch_size, seq_len),
                                generator=torch.Generator().manual_seed(0)))

    # bytes of the resident super-network, by part; the sub-network's parameters are views of it
    parts = {"embedding": 0, "lm_head": 0, "layer_base": 0, "layer_lora": 0, "other": 0}

    def part(name: str) -> str:
        if "embed_tokens" in name:
            return "embedding"
        if "lm_head" in name:
            return "lm_head"
        if ".layers." in name:
            return "layer_lora" if ".lora_" in name else "layer_base"
        return "other"  # the final norm

    for name, p in supernet.named_parameters():
        parts[part(name)] += _nbytes(p)
    # gradients the backward pass allocates: every sub-network parameter that requires grad (sliced shape)
    grads = {k: 0 for k in parts}
    for name, p in sub.named_parameters():
        if p.requires_grad:
            grads[part(name)] += _nbytes(p)
    param_ptrs = {p.untyped_storage().data_ptr() for p in supernet.parameters()}
    # storages of the gradients backward allocates (read as each is accumulated: extract_inputs
    # takes the weight-site gradients over and sets .grad to None before it returns)
    grad_ptrs: set[int] = set()
    for p in sub.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda q: grad_ptrs.add(q.grad.untyped_storage().data_ptr()))

    gc.collect()
    before = proc_status()["VmRSS"]
    reset = _reset_peak()
    peak_before = _maxrss()
    start = time.perf_counter()
    inputs = extract_inputs(bench, sub, batch)
    seconds = time.perf_counter() - start
    peak_after = _maxrss()
    status = proc_status()
    after = status["VmRSS"]

    per_symbol = {s: sum(_nbytes(lt.tensor) for lt in inputs[s]) for s in SYMBOLS}
    # bytes the returned inputs add beyond the parameters and the gradients (W are views of
    # the parameters, G is the gradient taken over: neither should add any)
    shared = param_ptrs | grad_ptrs
    owned = {s: sum(_nbytes(lt.tensor) for lt in inputs[s]
                    if lt.tensor.untyped_storage().data_ptr() not in shared) for s in SYMBOLS}
    logits = batch_size * seq_len * SHAPE["vocab_size"] * 4
    return {
        "subnet": subnet, "layers": layers, "weights": weights, "batch": batch_size, "seq_len": seq_len,
        "threads": threads,
        "choice": choice, "seconds": seconds, "peak_reset": reset,
        "libraries": libraries, "rss_before": before, "peak_before": peak_before, "peak": peak_after,
        "vm_hwm": status["VmHWM"],
        "rss_after": after, "params": parts, "grads": grads, "inputs": per_symbol, "inputs_owned": owned,
        "logits": logits, "counts": {s: len(inputs[s]) for s in SYMBOLS},
        "sub_layer_base": sum(_nbytes(p) for n, p in sub.named_parameters()
                              if part(n) == "layer_base"),
        "sub_layer_lora": sum(_nbytes(p) for n, p in sub.named_parameters()
                              if part(n) == "layer_lora"),
    }


def explain(r: dict) -> dict:
    """The peak split into its non-layer part and, per decoder layer, the rest (bytes).

    Non-layer: the interpreter and libraries, the embedding, lm_head and final norm (and
    their gradients, were any to require grad), the logits [B, T, V] (logits, the
    log-softmax saved for backward, its gradient) and J. Per layer (the layer part / the
    number of layers): the layer's super-network parameters, the gradients backward
    allocates (G is the weight sites' share of them), any bytes G adds beyond them, and
    A/H/S returned; "rest" is what the counted tensors do not explain (activations saved
    for backward, autograd temporaries, allocator slack), measured, not modelled.
    """
    n = r["layers"]
    p, g, owned = r["params"], r["grads"], r["inputs_owned"]
    non_layer_params = p["embedding"] + p["lm_head"] + p["other"]
    non_layer_grads = g["embedding"] + g["lm_head"] + g["other"]
    non_layer = r["libraries"] + non_layer_params + non_layer_grads + 3 * r["logits"] + owned["J"]
    layer_params = (p["layer_base"] + p["layer_lora"]) / n
    layer_grads = (g["layer_base"] + g["layer_lora"]) / n
    g_extra = owned["G"] / n
    ahs = (owned["A"] + owned["H"] + owned["S"]) / n
    per_layer = (r["peak"] - non_layer) / n
    return {"non_layer": non_layer, "non_layer_params": non_layer_params, "non_layer_grads": non_layer_grads,
            "layer_params": layer_params, "layer_grads": layer_grads, "g_extra": g_extra, "ahs": ahs,
            "counted": layer_params + layer_grads + g_extra + ahs, "per_layer": per_layer,
            "rest": per_layer - (layer_params + layer_grads + g_extra + ahs),
            "extraction": r["peak"] - r["rss_before"]}


def estimate(r: dict, e: dict, layers: int = FULL_LAYERS) -> dict:
    """Peak of extract_inputs on a `layers`-layer model: the non-layer part once, the per-layer
    part (counted tensors and the measured rest) `layers` times."""
    params = e["non_layer_params"] + layers * e["layer_params"]
    grads = e["non_layer_grads"] + layers * e["layer_grads"]
    g_extra = layers * e["g_extra"]
    small = layers * e["ahs"] + r["inputs_owned"]["J"]
    rest = layers * e["rest"]
    peak = r["libraries"] + params + grads + g_extra + small + 3 * r["logits"] + rest
    g, w = (layers * r["inputs"][s] / r["layers"] for s in ("G", "W"))
    return {"params": params, "grads": grads, "g_extra": g_extra, "g": g, "w": w,
            "small": small, "rest": rest, "peak": peak}


def _run_child(subnet: str, weights: str, batch: int, seq_len: int, threads: int, layers: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", subnet, "--weights", weights, "--batch", str(batch),
           "--seq-len", str(seq_len), "--threads", str(threads), "--layers", str(layers)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise click.ClickException(f"measuring {subnet} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _g(b: float) -> str:
    return f"{b / GIB:.2f}"


def _m(b: float) -> str:
    return f"{b / MIB:.1f}"


def _table(rows: list[tuple]) -> None:
    width = max(len(row[0]) for row in rows)
    cols = [max(len(str(row[i])) for row in rows) for i in range(1, len(rows[0]))]

    def line(row: tuple) -> str:
        return "| " + " | ".join([row[0].ljust(width)] + [str(c).rjust(w) for c, w in zip(row[1:], cols)])

    click.echo(line(rows[0]) + " |")
    click.echo("|" + "|".join(["-" * (width + 2)] + ["-" * (w + 1) + ":" for w in cols]) + "|")
    for row in rows[1:]:
        click.echo(line(row) + " |")


def report(results: list[dict]) -> None:
    r0 = results[0]
    n = r0["layers"]
    click.echo(f"\nLLaMA-7B shapes, {n} decoder layer(s), float32, eager attention; batch {r0['batch']} x seq "
          f"{r0['seq_len']}; weights={r0['weights']}; torch threads {r0['threads']}; peak reset before "
          f"extract_inputs: {r0['peak_reset']}\n")
    ex = [explain(r) for r in results]
    rows = [("measured (one process per sub-network)", *(r["subnet"] for r in results))]
    add = rows.append
    add(("FFN width / qkv rank / gate-up rank (L0)", *(
        f"{r['choice']['L0.ffn_width']} / {r['choice']['L0.qkv_rank']} / {r['choice']['L0.gate_up_rank']}"
        for r in results)))
    add(("interpreter + libraries, RSS (GiB)", *(_g(r["libraries"]) for r in results)))
    add(("RSS before extract_inputs (GiB)", *(_g(r["rss_before"]) for r in results)))
    add(("PEAK RSS during extract_inputs (GiB)", *(_g(r["peak"]) for r in results)))
    add(("  increment, peak - before (GiB)", *(_g(e["extraction"]) for e in ex)))
    add(("RSS after, inputs still held (GiB)", *(_g(r["rss_after"]) for r in results)))
    add(("extract_inputs wall time (s)", *(f"{r['seconds']:.1f}" for r in results)))
    add(("non-layer part (GiB)", *(_g(e["non_layer"]) for e in ex)))
    add(("  embedding + lm_head + norm params (GiB)", *(_g(e["non_layer_params"]) for e in ex)))
    add(("  their gradients (GiB; none require grad)", *(_g(e["non_layer_grads"]) for e in ex)))
    add(("  logits, log-softmax, grad; J (MiB)", *(_m(3 * r["logits"] + r["inputs_owned"]["J"]) for r in results)))
    add(("PER-LAYER part = (peak - non-layer) / layers (GiB)", *(_g(e["per_layer"]) for e in ex)))
    add(("  super-network params: base / LoRA (MiB)", *(
        f"{_m(r['params']['layer_base'] / n)} / {_m(r['params']['layer_lora'] / n)}" for r in results)))
    add(("  sub-network's slice: base / LoRA (MiB)", *(
        f"{_m(r['sub_layer_base'] / n)} / {_m(r['sub_layer_lora'] / n)}" for r in results)))
    add(("  gradients from backward = G returned (MiB)", *(_m(e["layer_grads"]) for e in ex)))
    add(("  G bytes beyond the gradients (MiB)", *(_m(e["g_extra"]) for e in ex)))
    add(("  A + H + S returned (MiB)", *(_m(e["ahs"]) for e in ex)))
    add(("  rest: not explained by tensors (MiB)", *(_m(e["rest"]) for e in ex)))
    add(("inputs returned, all layers (MiB)", *("" for _ in results)))
    for s in ("A", "J", "G", "H", "W", "S"):
        add((f"  {s} ({r0['counts'][s]} tensors)", *(
            _m(r["inputs"][s]) + ("" if r["inputs_owned"][s] == r["inputs"][s]
                                  else " (views)" if s == "W" else " (gradients)")
            for r in results)))
    _table(rows)

    click.echo(f"\nEstimate for the {FULL_LAYERS}-layer LLaMA-7B (non-layer part once, per-layer part, rest "
          f"included, x {FULL_LAYERS}). Backward allocates every layer's gradient before any is read, and "
          "extract_inputs returns every layer's W and G at once, so memory grows with depth:\n")
    est = [estimate(r, e) for r, e in zip(results, ex)]
    rows = [(f"{FULL_LAYERS} layers, float32", *(r["subnet"] for r in results))]
    add = rows.append
    add(("resident parameters (GiB)", *(_g(t["params"]) for t in est)))
    add(("gradients from backward (GiB)", *(_g(t["grads"]) for t in est)))
    add(("  of which G returned (GiB)", *(_g(t["g"]) for t in est)))
    add(("G bytes beyond the gradients (GiB)", *(_g(t["g_extra"]) for t in est)))
    add(("W returned: views, no new bytes (GiB)", *(_g(t["w"]) for t in est)))
    add(("A + H + S + J returned (GiB)", *(_g(t["small"]) for t in est)))
    add(("rest x layers (GiB)", *(_g(t["rest"]) for t in est)))
    add(("ESTIMATED PEAK (GiB)", *(_g(t["peak"]) for t in est)))
    add(("per layer: params + grads + A/H/S + rest (MiB)", *(_m(e["per_layer"]) for e in ex)))
    _table(rows)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--weights", type=click.Choice(["base", "lora", "both"]), default="both", show_default=True,
              help="LoNASBenchmark's weights family: whose W and G are inputs (and require grad).")
@click.option("--subnets", default=",".join(SUBNETS), show_default=True, help="Comma-separated: max, heuristic, min.")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Decoder layers (2 checks the per-layer scaling).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Torch threads (1 or 2 on a shared 2-core CPU).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the raw figures (bytes) to this file.")
@click.option("--child", default=None, hidden=True)
def main(batch: int, seq_len: int, weights: str, subnets: str, layers: int, threads: int, json_path: str | None,
         child: str | None) -> None:
    if child:
        click.echo(json.dumps(measure(child, weights, batch, seq_len, threads, layers)))
        return
    results = []
    for subnet in subnets.split(","):
        if subnet not in SUBNETS:
            raise click.BadParameter(f"unknown sub-network {subnet!r} ({', '.join(SUBNETS)})", param_hint="--subnets")
        click.echo(f"measuring {subnet} in a fresh process ...", err=True)
        results.append(_run_child(subnet, weights, batch, seq_len, threads, layers))
    report(results)
    if json_path:
        atomic_write_json(Path(json_path), results)


if __name__ == "__main__":
    main()
