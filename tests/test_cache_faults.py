"""Fault injection on the cache (fake benchmark): torn, foreign and stale files, racing writers, a killed build."""
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import FAKE_BENCHMARK
from fake_benchmark import TinyGPT2Benchmark
from lpzero.cache import CacheSettings, InputCache
from lpzero.errors import CacheError

IDS = ["tiny1", "tiny4"]


def cache_at(root, benchmark=FAKE_BENCHMARK):
    return InputCache(CacheSettings(benchmark, batch_size=2, seq_len=16, samples=64), root)


def built(tmp_path):
    cache = cache_at(tmp_path)
    cache.compute(IDS, baselines=["num_params"])
    # copies: safetensors maps the file, and the tests damage it in place
    return cache, {a: {k: v.clone() for k, v in load_file(str(cache.path(a))).items()} for a in IDS}


def same_as(cache, reference):
    for a, tensors in reference.items():
        now = load_file(str(cache.path(a)))
        assert now.keys() == tensors.keys()
        assert [k for k in now if not torch.equal(now[k], tensors[k])] == [], a


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_file_is_named_on_load_and_rebuilt_by_compute(tmp_path, damage, caplog):
    cache, reference = built(tmp_path)
    path = cache.path(IDS[1])
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00" * 100, "empty": b""}[damage])
    with pytest.raises(CacheError, match=f"{IDS[1]}.safetensors: unreadable.*lpzero cache"):
        cache.load(IDS)
    assert cache.missing(IDS, ["num_params"]) == [IDS[1]]
    assert cache.compute(IDS, baselines=["num_params"]) == [IDS[1]]
    assert "rebuilding it" in caplog.text
    same_as(cache, reference)


def test_a_file_of_another_architecture_is_not_read_as_this_one(tmp_path):
    cache, reference = built(tmp_path)
    cache.path(IDS[0]).write_bytes(cache.path(IDS[1]).read_bytes())
    with pytest.raises(CacheError, match=f"holds architecture '{IDS[1]}', not '{IDS[0]}'"):
        cache.info(IDS[0])
    cache.compute(IDS, baselines=["num_params"])
    same_as(cache, reference)


def test_a_changed_architecture_config_makes_its_file_stale(tmp_path, monkeypatch):
    cache = cache_at(tmp_path, "fake_benchmark:TinyGPT2Benchmark")
    cache.compute(IDS, baselines=["num_params"])
    before = cache.info(IDS[0])["baselines"]["num_params"]
    original = TinyGPT2Benchmark.architecture

    def wider(self, arch_id):
        arch = original(self, arch_id)
        return arch if arch_id != IDS[0] else type(arch)(arch.id, {**arch.config, "n_embd": 64}, arch.ground_truth,
                                                           arch.raw)

    monkeypatch.setattr(TinyGPT2Benchmark, "architecture", wider)
    monkeypatch.setattr(TinyGPT2Benchmark, "gpt2_config",
                        lambda self, a, _f=TinyGPT2Benchmark.gpt2_config: _f(self, a).__class__(
                            **{**_f(self, a).to_dict(), "n_embd": wider(self, a).config["n_embd"]}))
    fresh = cache_at(tmp_path, "fake_benchmark:TinyGPT2Benchmark")
    with pytest.raises(CacheError, match="another config of tiny1"):
        fresh.info(IDS[0])
    assert fresh.missing(IDS) == [IDS[0]]
    fresh.compute(IDS, baselines=["num_params"])
    assert fresh.info(IDS[0])["baselines"]["num_params"] > before  # rebuilt at the new width


def _compute(root: str, baselines: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    cache_at(Path(root)).compute(IDS, baselines=baselines)


def test_two_writers_with_other_baselines_keep_each_others_values(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_compute, args=(str(tmp_path), [b])) for b in ("num_params", "grad_norm")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = cache_at(tmp_path)
    assert all(set(cache.info(a)["baselines"]) == {"num_params", "grad_norm"} for a in IDS)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the workers")
def test_a_killed_build_leaves_no_workers_and_resumes_to_the_same_cache(tmp_path):
    marker = f"LPZERO_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, marker: "1", "PYTHONPATH": str(Path(__file__).resolve().parent)}
    cmd = [sys.executable, "-m", "lpzero.cli", "cache", FAKE_BENCHMARK, "--cache-dir", str(tmp_path / "killed"),
           "--jobs", "2", "--batch-size", "2", "--seq-len", "16", "--samples", "64", "--baselines", "all"]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(_processes_with(marker)) < 3 and time.time() < deadline:  # the parent and its two workers
        time.sleep(0.2)
    time.sleep(2.0)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert _processes_with(marker) == []
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serial = cache_at(tmp_path / "serial")
    serial.compute(TinyGPT2Benchmark().ids())
    killed = cache_at(tmp_path / "killed")
    for a in TinyGPT2Benchmark().ids():
        x, y = load_file(str(serial.path(a))), load_file(str(killed.path(a)))
        assert all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.slow
def test_an_interrupt_stops_a_parallel_build_promptly_and_keeps_what_is_done(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    cmd = [sys.executable, "-m", "lpzero.cli", "cache", FAKE_BENCHMARK, "--cache-dir", str(tmp_path), "--jobs", "2",
           "--batch-size", "8", "--seq-len", "64", "--samples", "64", "--baselines", "all"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(tmp_path.rglob("*.safetensors")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    interrupted = time.time()
    proc.wait(60)
    assert proc.returncode != 0
    assert time.time() - interrupted < 30  # the running architectures finish; the queue does not run
    cache = InputCache(CacheSettings(FAKE_BENCHMARK, batch_size=8, seq_len=64, samples=64), tmp_path)
    done = [p.stem for p in cache.dir.glob("*.safetensors")]
    assert done and all(cache.info(a)["arch_id"] == a for a in done)  # every kept file is whole


def breaks_on_tiny4(ctx) -> float:
    """A user's proxy (file.py:ATTR) that fails on one architecture."""
    if ctx.arch_id == "tiny4":
        raise RuntimeError("no layer to read")
    return 1.0


def test_a_proxy_that_raises_fails_its_architecture_and_the_others_are_stored(tmp_path):
    broken = f"{Path(__file__).resolve()}:breaks_on_tiny4"
    cache = cache_at(tmp_path)
    with pytest.raises(CacheError, match="1 of 2 architecture.*tiny4: .*no layer to read"):
        cache.compute(IDS, baselines=["num_params", broken])
    assert cache.info("tiny1")["baselines"][broken] == 1.0
    assert cache.missing(IDS, [broken]) == ["tiny4"]
