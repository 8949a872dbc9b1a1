"""LoNAS at LLaMA-7B size on this machine: write a 7B-shaped checkpoint, score sub-networks, run `nas`.

    python scripts/lonas_7b.py write --out /work/runs/llama7b              # 13.5 GB, a few minutes
    python scripts/lonas_7b.py measure --out /work/runs/llama7b            # peak RSS and seconds
    python scripts/lonas_7b.py measure --out /work/runs/llama7b --device cuda
    python scripts/lonas_7b.py write --out /work/runs/llama7b_2l --layers 2   # the 2-layer target

`write` saves, with transformers' and peft's own `save_pretrained`, a LlamaForCausalLM with
LLaMA-7B's shapes (hidden 4096, FFN 11008, 32 heads, 32 layers unless `--layers`, vocabulary 32,000)
and random weights in bfloat16 to OUT/base, its own byte-level BPE tokenizer (trained on WikiText-2,
at most 32,000 tokens) beside it, and a LoNAS adapter (LoRA r 32, alpha 64 on q, k, v, up, gate,
down, random A and B) to OUT/adapter. A finished part is reused.

`measure` runs each measurement in a fresh process and reports its peak resident memory (VmHWM;
with `--device cuda` also torch's peak GPU allocation) and wall time:

- `score`: one sub-network (`--subnets`: max, heuristic, min) scored through lpzero's one scoring
  path (`ProxyContext` + `score_proxies`) with each of `--proxies`: `gradient`, a found-proxy tree
  that reads every weight's gradient (GradNorm's tree, `layer_sum(frobenius(G))`, streamed),
  `lonas-mini`, lonas-mini's found proxy (it reads S: one forward pass), or a hand-designed name
  (e.g. `grad_norm`, whose shared pass holds every gradient: run it on the 2-layer checkpoint only);
- `nas` (unless `--skip-nas`): `lpzero nas --space lonas:OUT/base --adapter OUT/adapter --proxy
  NAS_PROXY --population 4 --generations 1` (`--nas-proxy`, `--population`, `--generations`), then
  the pick's adapter loaded back with peft.

Results go to OUT/measure_<device>.json (and are printed, one JSON line each).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
# this script's folder is on sys.path when it runs: the one-layer script's shapes and /proc reader
from lonas_memory import SHAPE, proc_status

GIB = 2 ** 30
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "gate_proj", "down_proj"]
#: GradNorm as a tree (`grad_norm`'s `expressible` form): reads every weight's gradient
GRADIENT_TREE = "layer_sum__Lw(frobenius__Tw(G))"
#: the proxy an earlier `lpzero evolve --benchmark lonas-mini` found (docs/lonas.md): the spread of the
#: attention maps, read in one forward pass
LONAS_MINI_TREE = "std__Ls(sub__Ls(add__Ls(l1__Ts(S), mean__Ts(S)), std__Ts(S)))"


def _peak() -> dict[str, float]:
    """This process's peak and current resident memory (GiB)."""
    return {key: value / GIB for key, value in proc_status().items()}


def _write_best(path: Path, tree: str, name: str) -> Path:
    """A best.json holding `tree` (what `lpzero nas --proxy` and `FoundProxy.load` read)."""
    from lpzero.files import atomic_write_json
    from lpzero.proxies.found_proxy import BEST_VERSION, PRIMITIVE_SET_VERSION

    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "best.json", {"tree": tree, "orientation": 1, "benchmark": name,
                                           "primitive_set_version": PRIMITIVE_SET_VERSION,
                                           "lpzero_best_version": BEST_VERSION})
    return path / "best.json"


# --- write ------------------------------------------------------------------------------------------

def write_tokenizer(folder: Path, data_root: Path) -> int:
    """A byte-level BPE tokenizer of at most 32,000 tokens trained on WikiText-2, saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=SHAPE["vocab_size"], special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = data_root / "text" / "wikitext-2"
    tok.train([str(text / "valid.txt"), str(text / "test.txt")], trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(str(folder))
    return tok.get_vocab_size()


def write_checkpoint(out: Path, layers: int, seed: int, data_root: Path) -> dict:
    """OUT/base (bfloat16 LLaMA-7B shapes, its tokenizer) and OUT/adapter (LoNAS LoRA); reused when there."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    base, adapter = out / "base", out / "adapter"
    facts: dict = {"layers": layers}
    if not (base / "config.json").is_file():
        torch.manual_seed(seed)
        config = LlamaConfig(num_hidden_layers=layers, tie_word_embeddings=False, **SHAPE)
        t0 = time.perf_counter()
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        # materialise one tensor at a time in bfloat16 (LLaMA's init: normal, std 0.02; norms 1)
        gen = torch.Generator().manual_seed(seed)
        for name, p in list(model.named_parameters()):
            value = torch.empty(p.shape, dtype=torch.bfloat16)
            value.fill_(1.0) if "norm" in name else value.normal_(0.0, config.initializer_range, generator=gen)
            module_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(module_name), attr, torch.nn.Parameter(value, requires_grad=False))
        model.config.dtype = torch.bfloat16
        model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # real buffers, not meta
        model.save_pretrained(str(base), max_shard_size="2GB")
        facts["write_base_s"] = round(time.perf_counter() - t0, 1)
        facts["tokenizer_tokens"] = write_tokenizer(base, data_root)
        if not (adapter / "adapter_config.json").is_file():
            lora = LoraConfig(r=32, lora_alpha=64, target_modules=LORA_TARGETS, lora_dropout=0.0,
                              init_lora_weights=False)  # random A and B: a trained adapter is not zero
            get_peft_model(model, lora).save_pretrained(str(adapter))
        del model
    facts["base_gb"] = round(sum(f.stat().st_size for f in base.glob("*.safetensors")) / 1e9, 2)
    facts["adapter_mb"] = round(sum(f.stat().st_size for f in adapter.glob("*.safetensors")) / 1e6, 1)
    return facts


# --- measure (children) ----------------------------------------------------------------------------

def child_score(out: Path, subnet: str, proxy: str, device: str, batch_size: int, seq_len: int) -> dict:
    """Open the benchmark, build one sub-network, score it with one proxy; peak memory and seconds."""
    import torch

    from lpzero.benchmarks import get_benchmark
    from lpzero.proxies import HAND_DESIGNED, ProxyContext, score_proxies
    from lpzero.proxies.found_proxy import FoundProxy

    t0 = time.perf_counter()
    bench = get_benchmark(f"lonas:{out / 'base'}", adapter=str(out / "adapter"))
    bench.supernetwork()
    loaded = time.perf_counter()
    after_load = _peak()
    choice = bench.space.pick(subnet)
    batch = bench.make_batch(0, batch_size, seq_len).to(device)
    spec = proxy_spec(out, proxy)
    chosen = FoundProxy.load(spec) if spec != proxy else HAND_DESIGNED.get(proxy)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    model = bench.build_subnetwork(choice, device)
    ctx = ProxyContext(bench, subnet, 0, batch, device)
    ctx.shared("model", lambda: model)  # the sub-network just built, as `lpzero nas` scores a candidate
    t1 = time.perf_counter()
    result = score_proxies([chosen], ctx)[chosen.name]
    scored = time.perf_counter()
    row = {"subnet": subnet, "proxy": proxy, "value": result.value, "load_s": round(loaded - t0, 1),
           "score_s": round(scored - t1, 1), "rss_after_load_gib": round(after_load["VmRSS"], 2),
           "peak_rss_gib": round(_peak()["VmHWM"], 2), "dtype": str(bench.dtype),
           "params": bench.search_space().count_params(choice)}
    if device != "cpu":
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
    return row


def run_child(args: list[str]) -> dict:
    """Run this script's hidden `child` command in a fresh process; its JSON result."""
    done = subprocess.run([sys.executable, __file__, "child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        return {"args": args, "error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def proxy_spec(out: Path, proxy: str) -> str:
    """What `--proxy` gets for `proxy`: a best.json written for a found-proxy tree, else the name."""
    found = {"gradient": GRADIENT_TREE, "lonas-mini": LONAS_MINI_TREE}
    return str(_write_best(out / "proxies" / proxy, found[proxy], proxy)) if proxy in found else proxy


def run_nas(out: Path, device: str, batch_size: int, seq_len: int, proxy: str, population: int,
            generations: int) -> dict:
    """`lpzero nas` on the checkpoint under /usr/bin/time; then the pick's adapter loaded with peft."""
    nas_out = out / f"nas_{proxy}"
    cmd = ["/usr/bin/time", "-f", "%M %e", "lpzero", "nas", "--space", f"lonas:{out / 'base'}",
           "--adapter", str(out / "adapter"), "--proxy", proxy_spec(out, proxy), "--population", str(population),
           "--generations", str(generations),
           "--batch-size", str(batch_size), "--seq-len", str(seq_len), "--device", device,
           "--out", str(nas_out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    row: dict = {"command": " ".join(cmd[3:]), "proxy": proxy, "exit": done.returncode}
    try:
        kib, seconds = done.stderr.strip().splitlines()[-1].split()
        row.update(peak_rss_gib=round(int(kib) * 1024 / GIB, 2), wall_s=float(seconds))
    except ValueError:
        row["stderr"] = done.stderr[-2000:]
    summary = nas_out / "summary.json"
    if done.returncode == 0 and summary.is_file():
        row["summary"] = json.loads(summary.read_text())
        row["candidates"] = sum(1 for _ in (nas_out / "candidates.csv").open()) - 1
        chosen = sorted(p for p in (nas_out / "chosen").iterdir() if (p / "adapter_config.json").is_file())
        if chosen:
            row["peft_loads_pick"] = run_child(["load-adapter", str(out), str(chosen[0])])
    return row


def child_load_adapter(out: Path, adapter: Path) -> dict:
    """The pick's adapter loaded by peft onto the base, as a user would."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(out / "base"), dtype=torch.bfloat16, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(adapter))
    ranks = sorted({m.r["default"] for m in model.modules() if hasattr(m, "r") and isinstance(m.r, dict)})
    return {"adapter": str(adapter), "loaded": True, "ranks": ranks, "peak_rss_gib": round(_peak()["VmHWM"], 2)}


# --- CLI --------------------------------------------------------------------------------------------

@click.group(help=__doc__.split("\n\n")[0])
def main() -> None:
    pass


@main.command("write")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--layers", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Data root (default: $LPZERO_DATA, else ../shared/data).")
def write(out: Path, layers: int, seed: int, data: Path | None) -> None:
    """Write the bfloat16 checkpoint, its tokenizer and a LoNAS adapter."""
    from lpzero.benchmarks import default_data_root

    facts = write_checkpoint(out, layers, seed, data or default_data_root())
    click.echo(json.dumps(facts))


@main.command("measure")
@click.option("--out", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--subnets", default="max,heuristic", show_default=True)
@click.option("--proxies", default="lonas-mini,gradient", show_default=True,
              help="Comma-separated: lonas-mini, gradient (found-proxy trees) or hand-designed names.")
@click.option("--skip-nas", is_flag=True)
@click.option("--nas-proxy", default="gradient", show_default=True,
              help="The proxy `lpzero nas` searches with: lonas-mini, gradient or a hand-designed name.")
@click.option("--population", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--generations", type=click.IntRange(min=0), default=1, show_default=True)
def measure(out: Path, device: str, batch_size: int, seq_len: int, subnets: str, proxies: str,
            skip_nas: bool, nas_proxy: str, population: int, generations: int) -> None:
    """Score sub-networks and run `lpzero nas`, each in a fresh process; write OUT/measure.json."""
    rows = []
    for subnet in subnets.split(","):
        for proxy in proxies.split(","):
            row = run_child(["score", str(out), subnet, proxy, device, str(batch_size), str(seq_len)])
            click.echo(json.dumps(row), nl=True)
            sys.stdout.flush()
            rows.append(row)
    result = {"device": device, "batch": [batch_size, seq_len], "threads": os.cpu_count(), "scores": rows}
    if not skip_nas:
        result["nas"] = run_nas(out, device, batch_size, seq_len, nas_proxy, population, generations)
        click.echo(json.dumps(result["nas"]))
    (out / f"measure_{device.replace(':', '')}.json").write_text(json.dumps(result, indent=1))


@main.command("speed")
@click.option("--tokens", type=click.IntRange(min=1), default=32, show_default=True)
def speed(tokens: int) -> None:
    """Seconds of one Linear(4096, 11008) forward and backward on TOKENS tokens: bfloat16 with the native
    kernels, bfloat16 with lpzero's float32 backward products (`fast_half_backward`), and float32."""
    import torch

    from lpzero.benchmarks.half_cpu import fast_half_backward, native_half

    click.echo(f"this CPU multiplies bfloat16 natively: {native_half(torch.bfloat16)}")
    for name, dtype, fast in (("bfloat16", torch.bfloat16, False), ("bfloat16, fast_half_backward", torch.bfloat16, True),
                              ("float32", torch.float32, False)):
        layer = torch.nn.Linear(SHAPE["hidden_size"], SHAPE["intermediate_size"], bias=False).to(dtype)
        if fast:
            fast_half_backward(layer)
        x = torch.randn(1, tokens, SHAPE["hidden_size"], dtype=dtype, requires_grad=True)
        t0 = time.perf_counter()
        y = layer(x)
        t1 = time.perf_counter()
        y.float().sum().backward()
        click.echo(f"{name:29} forward {t1 - t0:.2f} s  backward {time.perf_counter() - t1:.2f} s")


@main.command("child", hidden=True)
@click.argument("args", nargs=-1)
def child(args: tuple[str, ...]) -> None:
    if args[0] == "score":
        _, out, subnet, proxy, device, batch_size, seq_len = args
        row = child_score(Path(out), subnet, proxy, device, int(batch_size), int(seq_len))
    else:
        row = child_load_adapter(Path(args[1]), Path(args[2]))
    click.echo(json.dumps(row))


if __name__ == "__main__":
    main()
