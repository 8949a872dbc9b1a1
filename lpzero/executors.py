"""Where per-architecture work runs: in this process, in a process pool, or on a Ray cluster.

One seam for every loop over architectures (building the cache, scoring found proxies
from models) and for `toolbox.map`. An executor runs `fn(item, *args)` for each item
and yields results as they finish; a task that fails for a reason of its own is
reported with its item and the others go on. Results come back to the caller (the
driver), which writes them, so where the work ran never changes what is stored.

- `LocalExecutor`: in order, in this process.
- `ProcessExecutor(jobs)`: a spawned process pool on this machine; Ctrl-C cancels what
  is queued, workers ignore SIGINT (from their start) and exit when their parent dies.
- `RayExecutor(address)`: Ray tasks (`num_cpus` / `num_gpus` each); a worker that dies
  is retried by Ray (`max_retries`). Ray is optional: `pip install "lpzero[ray]"`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context, resource_tracker
from multiprocessing.synchronize import Event
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from .errors import LPZeroError
from .registry import Registry, subclass_check

log = logging.getLogger("lpzero")

#: the built-in executor kinds (`EXECUTOR_KINDS` also finds entry points)
EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised: its item and the error, as text (exceptions may not pickle back)."""

    item: Any
    error: str


class Executor:
    """Runs `fn(item, *args)` for items (`fn` and `args` must pickle for other processes)."""

    def imap_unordered(self, fn: Callable, items: Sequence, *args: Any) -> Iterator[tuple[Any, Any]]:
        """(item, result) as tasks finish; result is a `TaskFailure` for a task that raised."""
        raise NotImplementedError

    def map(self, fn: Callable, items: Iterable) -> Iterator[Any]:
        """`fn(item)` of each item, in order, each as soon as it and those before it are done (DEAP's
        `toolbox.map`: register `executor.map` to run a toolbox's `evaluate` here); LPZeroError on the
        first task that raised, naming its item."""
        items = list(items)
        yield from _in_order(self.imap_unordered(_call_at, list(range(len(items))), fn, items), items, {}, 0)

    def close(self) -> None:
        """Release workers (a Ray session started here is shut down)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: intra-op threads of one task, wherever it runs: float reductions (matmuls, sums) round differently
#: with another thread count, so results would depend on the executor and on --jobs
TASK_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int = TASK_THREADS) -> Iterator[None]:
    """Run the body with `n` torch intra-op threads, then give the caller back its own count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _call_at(index: int, fn: Callable, items: list) -> Any:
    return fn(items[index])


def _in_order(results: Iterable[tuple[int, Any]], items: list, done: dict[int, Any], start: int) -> Iterator[Any]:
    """The results of `_call_at` tasks (index, result) as they finish, yielded in index order from `start`;
    `done` keeps those finished ahead of their turn (a caller that retries keeps them)."""
    for index, result in results:
        if isinstance(result, TaskFailure):
            raise LPZeroError(f"task {items[result.item]!r} failed: {result.error}")
        done[index] = result
        while start in done:
            yield done.pop(start)
            start += 1


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


class LocalExecutor(Executor):
    """Every task in this process, in order."""

    def imap_unordered(self, fn: Callable, items: Sequence, *args: Any) -> Iterator[tuple[Any, Any]]:
        for item in items:
            try:
                result = fn(item, *args)
            except Exception as e:  # a task's own failure is reported with its item; the rest go on
                result = TaskFailure(item, _describe(e))
            yield item, result

    def map(self, fn: Callable, items: Iterable) -> Iterator[Any]:
        return map(fn, items)  # the builtin: exceptions as they are, as DEAP's default `map`


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the parent process is gone (killed, not only interrupted)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT held back in this thread while the body starts worker processes.

    A process starts with its parent's signal mask, so a worker cannot be interrupted before its
    initializer ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and a worker
    still importing torch would die of it with a traceback. This process gets it once the body is
    done: the mask only holds this thread, and another thread (a progress bar's) may take the
    signal, so Python's handler is also deferred. Interrupted while it writes a new worker's
    start-up data, this process would leave the worker reading half of it (EOFError, a traceback).
    """
    # multiprocessing's resource tracker is started the same way, and unblocks SIGINT once it is:
    # started first, it leaves the mask alone
    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    taken: list[int] = []
    handler = None
    if threading.current_thread() is threading.main_thread():  # only the main thread sets handlers
        handler = signal.signal(signal.SIGINT, lambda signum, frame: taken.append(signum))
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        if taken and callable(handler):
            handler(signal.SIGINT, None)  # the interrupt that came meanwhile (KeyboardInterrupt by default)


#: in a pool worker: its pool's stop event (`ProcessExecutor`), set when the parent stops waiting
_stop: Event | None = None
#: in the parent: the stop events of pools it stopped waiting for, kept while it lives. A worker still
#: starting opens its pool's event by name, which fails (FileNotFoundError) once the event is freed.
_STOPPED: list[Event] = []


def _init_process_worker(parent: int, stop: Event) -> None:
    global _stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it cancels what is queued
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held since the start (`_sigint_held`)
    _exit_with_parent(parent)
    torch.set_num_threads(1)  # one CPU per task, as a Ray task asks for: jobs workers never oversubscribe
    _stop = stop


def _guarded(fn: Callable, item: Any, *args: Any) -> Any:
    """`fn(item, *args)` in a worker; its failure comes back as a value (one bad item must not end the others).
    A task taken after the pool's parent stopped waiting (Ctrl-C) is skipped: nobody would read its result."""
    if _stop is not None and _stop.is_set():
        return TaskFailure(item, "cancelled")
    try:
        return fn(item, *args)
    except Exception as e:
        return TaskFailure(item, _describe(e))


def _give_up(pool: ProcessPoolExecutor, stop: Event) -> None:
    """Stop waiting for `pool`: the tasks it has not started are cancelled, those running finish.

    `cancel_futures` reaches only the tasks the pool still holds; up to jobs + 1 more wait in its
    call queue, and the workers skip those once `stop` is set.
    """
    stop.set()
    _STOPPED.append(stop)
    pool.shutdown(wait=False, cancel_futures=True)


class ProcessExecutor(Executor):
    """A pool of `jobs` spawned processes on this machine, started on first use and kept until `close`.

    Keeping it means a caller that submits in rounds (NSGA-II: one round per generation) pays
    for starting workers, and for what they load once per process (a benchmark, a
    super-network), once. An interrupted round takes the pool down with it; the next round
    starts a new one.
    """

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise LPZeroError(f"--jobs {jobs}: at least 1")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._stop: Event | None = None  # set: the pool's workers skip the tasks they take

    def _start_pool(self) -> tuple[ProcessPoolExecutor, Event]:
        context = get_context("spawn")
        self._stop = context.Event()
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_process_worker,
                                         initargs=(os.getpid(), self._stop))
        return self._pool, self._stop

    def imap_unordered(self, fn: Callable, items: Sequence, *args: Any) -> Iterator[tuple[Any, Any]]:
        pool, stop = self._pool, self._stop
        try:
            with _sigint_held():  # `submit` starts the workers: they begin with SIGINT held
                if pool is None:
                    pool, stop = self._start_pool()
                futures = {pool.submit(_guarded, fn, item, *args): item for item in items}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            self._pool = None
            if pool is not None:
                _give_up(pool, stop)
            raise

    def map(self, fn: Callable, items: Iterable) -> Iterator[Any]:
        """`Executor.map`, surviving one killed worker: a worker killed from outside (out of memory, a signal)
        breaks the whole pool, so a fresh one runs the unfinished items again, once; a second death is an
        LPZeroError naming them (what a caller checkpointed before is kept)."""
        items = list(items)
        done: dict[int, Any] = {}
        start = 0
        for attempt in range(2):
            todo = [i for i in range(start, len(items)) if i not in done]
            try:
                for result in _in_order(self.imap_unordered(_call_at, todo, fn, items), items, done, start):
                    start += 1
                    yield result
                return
            except BrokenProcessPool as e:
                unfinished = [items[i] for i in range(start, len(items)) if i not in done]
                if attempt:
                    shown = ", ".join(map(str, unfinished[:3])) + (f" and {len(unfinished) - 3} more"
                                                                 if len(unfinished) > 3 else "")
                    raise LPZeroError(f"a worker process died twice while running {shown} ({e}); what was done "
                                      "before is kept: run again (--resume), or with fewer --jobs") from None
                log.warning("a worker process died (%s): running %d task(s) again", e, len(unfinished))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks on the cluster at `address` ("auto": the one `ray start` runs here; None: a local one)."""

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 max_retries: int = 3) -> None:
        try:
            import ray  # optional, and seconds to import: only when asked for
        except ImportError:
            raise LPZeroError('--executor ray needs Ray: pip install "lpzero[ray]"') from None
        self.ray, self.address = ray, address
        self.started_here = False
        self.task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(_guarded)

    def _connect(self) -> None:
        """Join the cluster on first use (a command with nothing to compute never starts Ray)."""
        if self.ray.is_initialized():
            return
        try:
            self.ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                          logging_level="ERROR", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LPZeroError(f"cannot connect to Ray at {self.address or 'a new local cluster'}: {e}") from None
        self.started_here = True

    def imap_unordered(self, fn: Callable, items: Sequence, *args: Any) -> Iterator[tuple[Any, Any]]:
        self._connect()
        ray = self.ray
        shared = [ray.put(a) for a in args]  # sent to the cluster once, not once per task
        fn_ref = ray.put(fn)
        pending = {self.task.remote(fn_ref, item, *shared): item for item in items}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries exhausted, or the task could not run
                        result = TaskFailure(item, _describe(e).splitlines()[0])
                    yield item, result
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False


#: executor kind -> its class (constructed from `ExecutorSettings`); `lpzero.executors` entry points add others
EXECUTOR_KINDS: Registry = Registry("executor", group="lpzero.executors", check=subclass_check(Executor))
EXECUTOR_KINDS.register("local", LocalExecutor, description="this process")
EXECUTOR_KINDS.register("process", ProcessExecutor, description="a pool of processes on this machine (--jobs)")
EXECUTOR_KINDS.register("ray", RayExecutor, description="Ray tasks (--ray-address, --gpus-per-task)")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where per-architecture work runs: `--executor`, `--jobs`, `--ray-address`, `--gpus-per-task`."""

    kind: str | None = None
    jobs: int = 1
    ray_address: str | None = None
    gpus_per_task: float = 0

    def make(self) -> Executor:
        """The executor these settings name (used as a context manager: `with settings.make() as ex`)."""
        return make_executor(self.kind, self.jobs, self.ray_address, self.gpus_per_task)


def make_executor(kind: str | None, jobs: int = 1, address: str | None = None, gpus_per_task: float = 0) -> Executor:
    """The executor `--executor KIND` names (None: local for one job, else a process pool)."""
    kind = kind or ("local" if jobs <= 1 else "process")
    cls = EXECUTOR_KINDS.get(kind)
    if cls is ProcessExecutor:
        return ProcessExecutor(jobs)
    if cls is RayExecutor:
        return RayExecutor(address, num_gpus=gpus_per_task)
    return cls()
