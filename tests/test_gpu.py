"""The GPU path (`--device cuda`): the same numbers and rankings as on the CPU. Skipped without CUDA.

Run them where a GPU is lent: `python -m pytest tests -m gpu`.
"""
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from deap import gp
from scipy import stats

from conftest import FAKE_BENCHMARK
from lpzero.benchmarks import Batch
from lpzero.benchmarks.inputs import extract_inputs
from lpzero.benchmarks.lonas import LoNASBenchmark
from lpzero.cli import main
from lpzero.cache import CacheSettings, InputCache
from lpzero.primitives import OPS, Weighted, default_pset, generate_typed
from lpzero.primitives.op import PROBES, _probe_value
from lpzero.search import EvolveSettings, FitnessEvaluator, SearchSetup, evolve_on, violations
from synthetic import planted_truth, synthetic_inputs
from test_benchmarks_lonas import _space_file, tiny_llama, tokens, trained_supernet

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")]
ROOT = Path(__file__).resolve().parent.parent
IDS = ["tiny0", "tiny1", "tiny2", "tiny3", "tiny4", "tiny5"]


def _to(value, device):
    return value.to(device)


@pytest.mark.parametrize("op", [op for op in OPS if op.torch_fn is not None], ids=lambda op: op.name)
def test_every_primitive_gives_the_cpu_result_on_cuda(op):
    for raw in PROBES.values():
        for level in op.levels:
            args = [_probe_value(raw, level) for _ in range(op.arity)]
            cpu = op.runtime(level)(*args)
            cuda = op.runtime(level)(*[_to(a, "cuda") for a in args])
            cuda_values = cuda.values if isinstance(cuda, Weighted) else cuda
            cpu_values = cpu.values if isinstance(cpu, Weighted) else cpu
            assert cuda_values.device.type == "cuda"  # the result stays on the device
            torch.testing.assert_close(cuda_values.cpu(), cpu_values, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    built = {}
    for device in ("cpu", "cuda"):
        cache = InputCache(CacheSettings(FAKE_BENCHMARK, batch_size=4, seq_len=16, samples=256), root / device)
        cache.compute(IDS, ["grad_norm", "snip", "num_params"], device=device)
        built[device] = cache
    return built


def test_the_cache_built_on_cuda_ranks_proxies_as_the_cpu_one(caches):
    cpu, cuda = caches["cpu"].load(IDS), caches["cuda"].load(IDS)
    truth = [0.0] * len(IDS)
    pset = default_pset()
    rng = random.Random(0)
    agreements = []
    while len(agreements) < 50:
        tree = gp.PrimitiveTree(generate_typed(pset, 2, 5, rng=rng))
        if violations(tree):
            continue
        a = FitnessEvaluator(pset, cpu, truth).scores(tree)
        b = FitnessEvaluator(pset, {s: w.to("cuda") for s, w in cuda.items()}, truth).scores(tree)
        if len(set(a)) > 2:
            agreements.append(stats.spearmanr(a, b).statistic)
    assert min(agreements) >= 0.999
    for name in ("grad_norm", "snip"):
        a = [caches["cpu"].info(i)["baselines"][name] for i in IDS]
        b = [caches["cuda"].info(i)["baselines"][name] for i in IDS]
        assert stats.spearmanr(a, b).statistic >= 0.999, name


def test_the_same_cache_finds_the_same_proxy_on_cuda():
    inputs = synthetic_inputs()
    truth = planted_truth(inputs)
    setup = SearchSetup(runs=1, evolve=EvolveSettings(population=20, iterations=100))
    on_cpu = evolve_on(inputs, truth, setup)
    on_cuda = evolve_on({s: w.to("cuda") for s, w in inputs.items()}, truth, setup)
    assert str(on_cuda.states[0].population[0]) == str(on_cpu.states[0].population[0])


def test_a_lonas_subnetwork_gives_the_cpu_inputs_on_cuda(tmp_path):
    base = tiny_llama(seed=2)
    base.save_pretrained(str(tmp_path / "base"))
    trained_supernet(seed=2, base=base).save_pretrained(str(tmp_path / "adapter"))
    bench = LoNASBenchmark(tmp_path / "base", adapter=tmp_path / "adapter", space=str(_space_file(tmp_path)))
    choice = bench.space.pick("heuristic")
    batch = Batch(tokens())
    cpu = extract_inputs(bench, bench.build_subnetwork(choice), batch)
    cuda = extract_inputs(bench, bench.build_subnetwork(choice, "cuda"), batch.to("cuda"))
    for symbol in cpu:
        assert len(cpu[symbol]) == len(cuda[symbol]) > 0, symbol
        for a, b in zip(cpu[symbol], cuda[symbol]):
            assert b.tensor.device.type == "cuda"  # the inputs stay on the device
            torch.testing.assert_close(b.tensor.cpu(), a.tensor, rtol=1e-3, atol=1e-5)


@pytest.mark.data
def test_nas_on_cuda_picks_what_it_picks_on_the_cpu(lonas_smoke, tmp_path):
    out, _ = lonas_smoke
    picks = {}
    for device in ("cpu", "cuda"):
        result = CliRunner().invoke(main, ["nas", "--space", f"lonas:{out}", "--proxy", "lpzero_llama", "--population",
                                           "4", "--generations", "1", "--seq-len", "32", "--device", device,
                                           "--out", str(tmp_path / device), "--cache-dir", str(tmp_path / "c")])
        assert result.exit_code == 0, result.output
        picks[device] = json.loads((tmp_path / device / "summary.json").read_text())["chosen"]["key"]
    assert picks["cuda"] == picks["cpu"]


@pytest.mark.data
def test_the_7b_script_measures_a_llama_7b_shaped_layer_on_cuda(tmp_path):
    # one layer of LLaMA-7B's shapes (about 0.9 GB), so the test is minutes, not the 13.5 GB checkpoint
    script = [sys.executable, str(ROOT / "scripts" / "lonas_7b.py")]
    subprocess.run([*script, "write", "--out", str(tmp_path), "--layers", "1"], check=True)
    done = subprocess.run([*script, "measure", "--out", str(tmp_path), "--device", "cuda", "--subnets", "max",
                           "--proxies", "lonas-mini,gradient", "--skip-nas"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "measure_cuda.json").read_text())["scores"]
    assert [r.get("error") for r in rows] == [None, None]
    assert all(r["peak_gpu_gib"] > 0 and math.isfinite(r["value"]) for r in rows)
