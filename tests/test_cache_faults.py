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


class HeldBenchmark(TinyGPT2Benchmark):
    """The fake benchmark, opened with `--data DIR`: every architecture but `tiny0` leaves a file
    `building-ID` in DIR and waits for a file `go` there before its model is built. A test can then
    interrupt a build while two architectures surely run and the rest wait in the queue."""

    def __init__(self, data_root: object = None) -> None:
        super().__init__(data_root)
        self.folder = Path(str(data_root))

    def build_model(self, arch_id: str, seed: int, device="cpu"):
        if arch_id != "tiny0":
            (self.folder / f"building-{arch_id}").touch()
            deadline = time.monotonic() + 300  # a test that died never says go
            while not (self.folder / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().build_model(arch_id, seed, device)


HELD = f"{Path(__file__).resolve()}:HeldBenchmark"


def _sigint_default() -> None:
    """In the child, before it runs: SIGINT back to its default. A test run in the background
    (`pytest &`, nohup) ignores SIGINT, a child inherits that, and the interrupt a test sends would
    do nothing: the build would finish with exit code 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_held_build(tmp_path: Path, **popen) -> tuple[subprocess.Popen, Path]:
    """`lpzero cache --jobs 2` of `HeldBenchmark` (its stderr in tmp_path/stderr); (the process, its data folder)."""
    data = tmp_path / "data"
    data.mkdir()
    cmd = [sys.executable, "-m", "lpzero.cli", "cache", HELD, "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
           "--jobs", "2", "--batch-size", "2", "--seq-len", "16", "--samples", "64", "--baselines", "none"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent), **popen.pop("env", {})}
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_sigint_default,
                                **popen)
    return proc, data


@pytest.mark.slow
def test_an_interrupt_stops_a_parallel_build_promptly_and_keeps_what_is_done(tmp_path):
    proc, data = _start_held_build(tmp_path)
    settings = CacheSettings(HELD, batch_size=2, seq_len=16, samples=64, data=str(data))
    cache = InputCache(settings, tmp_path / "cache")
    # Interrupt once tiny0 is stored and both workers are building (tiny1 and tiny2, held), tiny3-5
    # queued. Interrupting at the first stored file instead raced with the build: warm workers finish
    # the other tiny architectures within a second (exit code 0), and a worker still starting up
    # under load made the exit wait for it (over 30 s).
    deadline = time.time() + 240
    while (len(list(data.glob("building-*"))) < 2 or not cache.path("tiny0").is_file()) and time.time() < deadline:
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    interrupted = time.time()
    time.sleep(1.0)  # taken by the build before the held architectures go on
    (data / "go").touch()
    proc.wait(60)
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode != 0, stderr
    assert time.time() - interrupted < 30  # the running architectures finish; the queue does not run
    assert "Traceback" not in stderr
    # the queue did not run: neither what the pool still held nor what it had put in its call queue
    assert sorted(p.name for p in data.glob("building-*")) == ["building-tiny1", "building-tiny2"]
    done = [p.stem for p in cache.dir.glob("*.safetensors")]
    assert "tiny0" in done and all(cache.info(a)["arch_id"] == a for a in done)  # every kept file is whole


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the workers")
def test_ctrl_c_while_the_workers_start_stops_the_build_without_their_tracebacks(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: workers that are still starting (importing
    torch, before they can ignore SIGINT) must not die of it, each with a KeyboardInterrupt traceback."""
    marker = f"LPZERO_TEST_{uuid.uuid4().hex}"
    proc, data = _start_held_build(tmp_path, env={marker: "1"}, start_new_session=True)
    deadline = time.time() + 240
    while len(_processes_with(marker)) < 4 and time.time() < deadline:  # it, the resource tracker, two workers
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    (data / "go").touch()
    proc.wait(240)  # the workers finish starting, and the architectures handed to them
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode != 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


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
