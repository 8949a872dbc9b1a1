"""The `lpzero` command line: info, cache, rank, evolve, export, ops, build.

Bad input (missing data, malformed files, unknown benchmark or id, a value out of
range) is reported as one line on stderr with exit code 2, never a traceback:
every `LPZeroError` becomes a `UserError`. Option defaults are read from the
settings dataclasses (`CacheSettings`, `SearchSetup`, `EvolveSettings`), so they
are written in one place.
"""
from __future__ import annotations

import errno
import json
import logging
import random
import sys
from dataclasses import fields
from pathlib import Path

import click
import torch
from click.core import ParameterSource
from tqdm import tqdm

from .benchmarks import LONAS_MINI_DIR, Benchmark, get_benchmark, resolve_data_root
from .benchmarks.lonas_build import build_lonas_mini
from .cache import CacheSettings, InputCache
from .errors import LPZeroError, UnknownNameError
from .executors import EXECUTORS, Executor, make_executor
from .nas import COSTS as NAS_COSTS
from .nas import EvalSettings, NSGASettings, get_space, run_nas
from .nas import cached_scores as nas_cached_scores
from .nas import proxy_spec as nas_proxy_spec
from .primitives import OPS, default_pset, parse_tree
from .primitives.registry import markdown_table
from .proxies import BASELINES
from .report import (FORMATS, SPLIT_PARTS, active_nodes, check_benchmark, check_resume, format_table, load_best,
                     proxy_formula, rank_pass_free, rank_row, run_search, score_found_exactly, split_ids,
                     write_rank)
from .search import TOOLBOXES, EvolveSettings, SearchSetup
from .search.loop import DISTINCT
from .search.runs import FINAL_SELECTIONS

#: seconds between progress-bar redraws (a redirected log gets a line per redraw)
PROGRESS_INTERVAL = 2.0
#: settings of `lpzero evolve --quick`
QUICK = {"batch_size": 2, "seq_len": 64, "iterations": 300, "baselines": "num_params,decoder_params,grad_norm"}
#: seed of the `--limit N` subset, the same for every command, so `rank --limit N` meets `evolve --limit N`
LIMIT_SEED = 0


class UserError(click.ClickException):
    """A user's mistake, printed as `lpzero: error: ...` with exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"lpzero: error: {self.format_message()}", err=True)


#: OS errors that are the user's to fix (a full disk, a read-only or misplaced output path)
USER_OS_ERRORS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                  errno.EDQUOT}


class LPZeroGroup(click.Group):
    """Turns every `LPZeroError` (and a full disk, a read-only folder) into a one-line `UserError`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LPZeroError as e:
            raise UserError(str(e)) from e
        except OSError as e:
            if e.errno not in USER_OS_ERRORS:
                raise
            raise UserError(f"{e.filename or ''}: {e.strerror}".lstrip(": ")) from e


class _WarningLines(logging.Handler):
    """lpzero's warnings (a damaged cache file being rebuilt, ...) as `lpzero: warning: ...` on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"lpzero: warning: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("lpzero")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.setLevel(logging.WARNING)


def _default(dataclass_type: type, name: str):
    """The default of field `name` of a settings dataclass (the one place it is written)."""
    for f in fields(dataclass_type):
        if f.name == name:
            return f.default
    raise KeyError(name)


def _benchmark_options(fn):
    fn = click.option("--data", type=click.Path(), default=None,
                      help="Data root (default: $LPZERO_DATA, else ../shared/data).")(fn)
    fn = click.option("--hidden-size-compat", is_flag=True,
                      help="FlexiBERT: build every model at hidden size 256, as the original proxy code did.")(fn)
    fn = click.option("--adapter", type=click.Path(exists=True, file_okay=False), default=None, expose_value=False,
                      callback=_keep_adapter,
                      help="lonas:CHECKPOINT: a local peft adapter directory of the super-network.")(fn)
    return fn


def _keep_adapter(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # kept aside so every command's signature need not carry an option of one benchmark family
    ctx.meta["lpzero.adapter"] = None if value is None else str(Path(value).resolve())


def _cache_options(fn):
    positive = click.IntRange(min=1)
    for opt in reversed([
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Cache root (default: $LPZERO_CACHE or .lpzero_cache)."),
        click.option("--batch-size", type=positive, default=None, help="Mini-batch size (default: the benchmark's CPU default)."),
        click.option("--seq-len", type=positive, default=None, help="Sequence length (default: the benchmark's CPU default)."),
        click.option("--paper-batch", is_flag=True, help="Use the paper's mini-batch shape (GPT-2 16x192, BERT 128 seqs)."),
        click.option("--batch-seed", type=int, default=_default(CacheSettings, "batch_seed"), show_default=True,
                     help="Seed of the mini-batch."),
        click.option("--model-seed", type=int, default=_default(CacheSettings, "model_seed"), show_default=True,
                     help="Seed of the random weights."),
        click.option("--samples", type=positive, default=_default(CacheSettings, "samples"), show_default=True,
                     help="Elements kept per cached tensor."),
        click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N)."),
        click.option("--jobs", type=positive, default=1, show_default=True,
                     help="Architectures computed in parallel (processes on this machine)."),
        click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                     help="Where per-architecture work runs (default: local for --jobs 1, else process)."),
        click.option("--ray-address", default=None, help="Ray cluster for --executor ray ('auto': the one `ray start` "
                                                         "runs; default: a new local one)."),
        click.option("--gpus-per-task", type=click.FloatRange(min=0), default=0, show_default=True,
                     help="GPUs each Ray task asks for."),
        click.option("--limit", type=positive, default=None, help="Only N architectures (a seeded subset, the same "
                                                                  "for every command)."),
        click.option("--ids", default=None, help="Comma-separated architecture ids."),
    ]):
        fn = opt(fn)
    return fn


def _open(benchmark: str, data, hidden_size_compat: bool) -> tuple[Benchmark, dict]:
    options = {"hidden_size_compat": True} if hidden_size_compat else {}
    if hidden_size_compat and benchmark != "flexibert":
        raise LPZeroError("--hidden-size-compat applies to the flexibert benchmark only")
    adapter = click.get_current_context().meta.get("lpzero.adapter")
    if adapter is not None:
        if not benchmark.startswith("lonas:"):
            raise LPZeroError("--adapter applies to lonas:CHECKPOINT benchmarks only")
        options["adapter"] = adapter
    return get_benchmark(benchmark, data, **options), options


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise LPZeroError(f"--device {device!r} is not a device (cpu, cuda or cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise LPZeroError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    if kind not in ("cpu", "cuda"):
        raise LPZeroError(f"--device {device!r}: lpzero runs on cpu or cuda")


def _select_ids(bench: Benchmark, limit: int | None, ids: str | None) -> list[str]:
    all_ids = bench.ids()
    if ids is not None:
        chosen = [i.strip() for i in ids.split(",") if i.strip()]
        if not chosen:
            raise LPZeroError(f"--ids {ids!r} names no architecture")
        for i in chosen:
            bench.check_id(i)
        return list(dict.fromkeys(chosen))
    if limit is not None and limit < len(all_ids):
        keep = set(random.Random(LIMIT_SEED).sample(all_ids, limit))
        return [a for a in all_ids if a in keep]
    return all_ids


def _make_cache(bench: Benchmark, options: dict, data, kw: dict) -> InputCache:
    _check_device(kw["device"])
    settings = CacheSettings.for_benchmark(
        bench, kw["batch_size"], kw["seq_len"], kw["paper_batch"], options=options, data=data,
        batch_seed=kw["batch_seed"], model_seed=kw["model_seed"], samples=kw["samples"])
    return InputCache(settings, Path(kw["cache_dir"]) if kw["cache_dir"] else None)


def _quick(ctx: click.Context, quick: dict, kw: dict, values: dict, longest: int | None = None) -> dict:
    """`--quick`: its batch into `kw` and its `values`, wherever the user gave none (explicit options win).

    The batch's sequence length stays within the benchmark's positions (`longest`).
    """
    kw["batch_size"] = kw["batch_size"] or quick["batch_size"]
    kw["seq_len"] = kw["seq_len"] or min(quick["seq_len"], longest or quick["seq_len"])
    return {name: quick[name] if ctx.get_parameter_source(name) == ParameterSource.DEFAULT else value
            for name, value in values.items()}


def _parse_baselines(spec: str) -> list[str]:
    if spec == "all":
        return list(BASELINES)
    if spec == "none":
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise LPZeroError(f"no proxy named in {spec!r} (all, none, or a comma-separated list)")
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise UnknownNameError("proxy", ", ".join(unknown), list(BASELINES))
    return list(dict.fromkeys(names))


def _executor(kw: dict) -> Executor:
    return make_executor(kw["executor"], kw["jobs"], kw["ray_address"], kw["gpus_per_task"])


def _fill_cache(cache: InputCache, ids: list[str], baselines: list[str], kw: dict) -> None:
    bars = []

    def start(total: int) -> None:
        bars.append(tqdm(total=total, desc=f"caching {cache.settings.benchmark}", unit="arch",
                         mininterval=PROGRESS_INTERVAL))

    with _executor(kw) as executor:
        cache.compute(ids, baselines, device=kw["device"], executor=executor, on_start=start,
                      progress=lambda a, info: bars[0].update(1))
    for bar in bars:
        bar.close()


@click.group(cls=LPZeroGroup)
@click.version_option(package_name="lpzero")
def main() -> None:
    """Find and use zero-cost proxies for language-model architecture search."""
    _show_warnings()


@main.command()
@click.argument("benchmark")
@click.option("--json", "as_json", is_flag=True, help="Print every architecture as JSON.")
@_benchmark_options
def info(benchmark, as_json, data, hidden_size_compat):
    """Summarise BENCHMARK: count, ground-truth range, parameter range."""
    bench, _ = _open(benchmark, data, hidden_size_compat)
    archs = bench.architectures()
    rows = [{"id": a.id, "ground_truth": a.ground_truth, "raw": a.raw, "params": bench.count_params(a.id),
             "reference_params": a.reference_params} for a in archs]
    if as_json:
        click.echo(json.dumps({"benchmark": bench.name, "architectures": rows}))
        return
    raw = [a.raw for a in archs]
    totals = [r["params"]["total"] for r in rows]
    matching = sum(1 for r in rows if r["reference_params"] and
                   all(r["params"].get(k) == v for k, v in r["reference_params"].items()))
    click.echo(f"benchmark      {bench.name}")
    click.echo(f"architectures  {len(archs)}")
    known = [r for r in raw if r == r]  # NaN: an architecture without ground truth
    click.echo(f"ground truth   {bench.raw_metric} from {min(known):.4g} to {max(known):.4g}" if known else
               "ground truth   none (rank and evolve need it; nas does not)")
    click.echo(f"parameters     {min(totals):,} to {max(totals):,} (total, our builder)")
    if any(r["reference_params"] for r in rows):
        click.echo(f"reference      {matching}/{len(archs)} architectures match the benchmark's own parameter counts")
    click.echo(f"mini-batch     {bench.default_batch_size} x {bench.default_seq_len} (default), "
               f"{bench.paper_batch_size} x {bench.paper_seq_len} (paper, --paper-batch)")


@main.command()
@click.argument("benchmark")
@_benchmark_options
@_cache_options
@click.option("--baselines", default="all", show_default=True, help="Baseline proxies to store: all, none or a list.")
def cache(benchmark, data, hidden_size_compat, baselines, **kw):
    """Compute and store the six inputs (and baseline proxies) of every architecture."""
    bench, options = _open(benchmark, data, hidden_size_compat)
    store = _make_cache(bench, options, data, kw)
    ids = _select_ids(bench, kw["limit"], kw["ids"])
    names = _parse_baselines(baselines)
    _fill_cache(store, ids, names, kw)
    size = store.size_bytes()
    click.echo(f"{len(ids)} architectures cached in {store.dir} ({size / 2**20:.1f} MiB, "
               f"{store.settings.samples} samples per tensor)")


@main.command()
@click.argument("benchmark")
@_benchmark_options
@_cache_options
@click.option("--proxies", default="all", show_default=True, help="all, none, or comma-separated baseline names.")
@click.option("--proxy", "best_files", multiple=True, type=click.Path(), help="A found proxy (best.json); repeatable.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/rank", show_default=True)
@click.option("--no-plots", is_flag=True, help="Skip the rank-vs-rank PNGs.")
@click.option("--split", "split_part", type=click.Choice(SPLIT_PARTS), default="all", show_default=True,
              help="Score only this part of the --proxy run's search/held-out split.")
def rank(benchmark, data, hidden_size_compat, proxies, best_files, out, no_plots, split_part, **kw):
    """Score every architecture with each proxy; print and write the ρ/τ table."""
    bench, options = _open(benchmark, data, hidden_size_compat)
    store = _make_cache(bench, options, data, kw)
    ids = _select_ids(bench, kw["limit"], kw["ids"])
    found = {path: load_best(Path(path)) for path in best_files}  # every file checked before any work
    if split_part != "all":
        if len(found) != 1:
            raise LPZeroError("--split needs exactly one --proxy (the run whose split it is)")
        (path, best), = found.items()
        check_benchmark(best, bench.name, path)
        ids = split_ids(best, split_part, ids)
    for path, best in found.items():
        if best.get("benchmark") not in (None, bench.name):
            logging.getLogger("lpzero").warning("%s was found on %r, ranked here on %r", path, best["benchmark"],
                                                bench.name)
    names = _parse_baselines(proxies)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # before any work: an unwritable --out fails now
    truth = [bench.architecture(a).ground_truth for a in ids]
    rows = []
    # parameter counts need no forward pass: computed directly, without building the cache
    free = [n for n in names if BASELINES[n].pass_free]
    cached = [n for n in names if not BASELINES[n].pass_free]
    if cached:
        _fill_cache(store, ids, cached, kw)
        infos = [store.info(a) for a in ids]
    if free:
        with _executor(kw) as executor:
            values, seconds = rank_pass_free(free, store.settings, ids, kw["device"], executor)
    for n in names:
        if n in free:
            k = free.index(n)
            rows.append(rank_row(n, values[k], truth, seconds[k]))
        else:
            rows.append(rank_row(n, [info["baselines"][n] for info in infos], truth,
                                 [info["seconds"][n] for info in infos]))
    if found:  # one forward/backward pass per architecture for all found proxies
        bar = tqdm(total=len(ids), desc=f"scoring {len(found)} found prox{'y' if len(found) == 1 else 'ies'}",
                   unit="arch", mininterval=PROGRESS_INTERVAL)
        with _executor(kw) as executor:
            scores, secs = score_found_exactly(list(found.values()), store.settings, ids, kw["device"], executor,
                                               lambda a: bar.update(1))
        bar.close()
        for path, proxy_scores in zip(found, scores):
            rows.append(rank_row(Path(path).parent.name or "best", proxy_scores, truth, secs))
    write_rank(rows, ids, truth, out, plots=not no_plots)
    click.echo(format_table(rows, bench.raw_metric))
    click.echo(f"written: {out / 'rank.csv'}, rank.json" + ("" if no_plots else ", rank_*.png"))


def _evolve_defaults(name: str):
    return _default(EvolveSettings, name)


def _setup_default(name: str):
    return _default(SearchSetup, name)


@main.command()
@click.option("--benchmark", default="gpt2", show_default=True)
@click.option("--toolbox", "toolbox_kind", type=click.Choice(TOOLBOXES), default=_setup_default("toolbox"),
              show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: runs/<benchmark>).")
@click.option("--population", type=click.IntRange(min=2), default=_evolve_defaults("population"), show_default=True)
@click.option("--iterations", type=click.IntRange(min=0), default=_evolve_defaults("iterations"), show_default=True)
@click.option("--crossover", type=click.FloatRange(0, 1), default=_evolve_defaults("crossover"), show_default=True)
@click.option("--mutation", type=click.FloatRange(0, 1), default=_evolve_defaults("mutation"), show_default=True)
@click.option("--top", "top_fraction", type=click.FloatRange(0, 1, min_open=True),
              default=_evolve_defaults("top_fraction"), show_default=True, help="Parent pool: top fraction.")
@click.option("--sample", type=click.IntRange(min=2), default=_setup_default("sample"), show_default=True,
              help="Architectures fitness is computed on.")
@click.option("--holdout", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=_setup_default("holdout"), show_default=True, help="Fraction held out from the search.")
@click.option("--seed", type=int, default=_evolve_defaults("seed"), show_default=True)
@click.option("--runs", "n_runs", type=click.IntRange(min=1), default=_setup_default("runs"), show_default=True,
              help="Independent runs of the loop (seeded from --seed; 1 = the paper's single run); the final "
                   "selection picks among the hall-of-fame trees of all runs.")
@click.option("--unary", "n_unary", type=click.IntRange(min=1), default=_setup_default("n_unary"), show_default=True,
              help="Unary ops per branch (paper toolbox).")
@click.option("--max-height", type=click.IntRange(min=2), default=_setup_default("max_height"), show_default=True,
              help="Tree height limit (typed toolbox).")
@click.option("--no-rps", is_flag=True, help="Switch the rule-based pruning strategy off (ablation).")
@click.option("--distinct", type=click.Choice(DISTINCT), default=_evolve_defaults("distinct"), show_default=True,
              help="Population members differ in how they rank the sample (ranking) or only as trees (text).")
@click.option("--final-selection", type=click.Choice(FINAL_SELECTIONS), default=_setup_default("final_selection"),
              show_default=True,
              help="Found proxy: the hall-of-fame tree with the best ρ on the whole search part, or the fittest.")
@click.option("--random-search", is_flag=True, help="Random search instead of evolution (baseline).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoints in --out.")
@click.option("--baselines", default="all", show_default=True, help="Hand-designed proxies to compare against.")
@click.option("--quick", is_flag=True,
              help=f"A first run in minutes: {QUICK['batch_size']} x {QUICK['seq_len']} batch, {QUICK['iterations']} "
                   f"iterations, baselines {QUICK['baselines']} (explicit options still win).")
@_benchmark_options
@_cache_options
@click.pass_context
def evolve(ctx, benchmark, toolbox_kind, out, population, iterations, crossover, mutation, top_fraction, sample,
           holdout, seed, n_runs, n_unary, max_height, no_rps, distinct, final_selection, random_search, resume,
           baselines, quick, data, hidden_size_compat, **kw):
    """Search for a proxy with genetic programming (paper Algorithm 1)."""
    bench, options = _open(benchmark, data, hidden_size_compat)
    if quick:
        quick_values = _quick(ctx, QUICK, kw, {"iterations": iterations, "baselines": baselines}, bench.max_seq_len())
        iterations, baselines = quick_values["iterations"], quick_values["baselines"]

    setup = SearchSetup(
        toolbox=toolbox_kind, sample=sample, holdout=holdout, rps=not no_rps, n_unary=n_unary, max_height=max_height,
        final_selection=final_selection, runs=n_runs,
        evolve=EvolveSettings(population=population, iterations=iterations, crossover=crossover, mutation=mutation,
                              top_fraction=top_fraction, seed=seed, random_search=random_search, distinct=distinct),
    )
    store = _make_cache(bench, options, data, kw)
    ids = _select_ids(bench, kw["limit"], kw["ids"])
    names = _parse_baselines(baselines)
    out_dir = Path(out) if out else Path("runs") / bench.name.replace(":", "_").replace("/", "_")
    out_dir.mkdir(parents=True, exist_ok=True)  # before any work: an unwritable --out fails now
    if resume:
        check_resume(store, ids, setup, out_dir)  # before the cache is filled
    _fill_cache(store, ids, names, kw)
    bar = tqdm(total=iterations * n_runs, desc=f"evolving ({n_runs} runs)" if n_runs > 1 else "evolving", unit="it",
               mininterval=PROGRESS_INTERVAL)
    run_search(bench, store, ids, setup, out_dir, resume=resume, device=kw["device"],
               progress=lambda it, b: (bar.update(it - bar.n), bar.set_postfix(best=f"{b:.3f}", refresh=False)))
    bar.close()
    click.echo((out_dir / "report.md").read_text())
    click.echo(f"written: {out_dir}/best.json, hall_of_fame.json, log.csv, evolution.png, report.md")


@main.command()
@click.argument("name", type=click.Choice(["lonas-mini"]))
@click.option("--out", type=click.Path(file_okay=False), default=LONAS_MINI_DIR, show_default=True,
              help="Where to build (a finished stage there is reused: an interrupted build resumes).")
@click.option("--smoke", is_flag=True, help="A seconds-long toy size, for tests.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N).")
@click.option("--data", type=click.Path(), default=None, help="Data root (default: $LPZERO_DATA, else ../shared/data).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sub-networks evaluated in parallel for the ground truth (processes on this machine).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="Where the ground truth's evaluations run (default: local for --jobs 1, else process).")
@click.option("--ray-address", default=None, help="Ray cluster for --executor ray.")
@click.option("--gpus-per-task", type=click.FloatRange(min=0), default=0, show_default=True)
def build(name, out, smoke, seed, device, data, **kw):
    """Build a benchmark with its ground truth: lonas-mini (a LoNAS super-network and its sub-networks)."""
    _check_device(device)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for bar in bars.values():  # one stage at a time: the finished one's bar is done
                bar.close()
            bars[stage] = tqdm(total=total, desc=stage, unit="it", mininterval=PROGRESS_INTERVAL)
        bars[stage].update(done - bars[stage].n)

    try:
        with _executor(kw) as executor:
            state = build_lonas_mini(Path(out), resolve_data_root(data), smoke, seed, device, progress, executor)
    finally:
        for bar in bars.values():
            bar.close()
    stages = state["stages"]
    truth = stages["ground_truth"]
    click.echo(f"{name} built in {out}: {truth['subnetworks']} sub-networks, held-out perplexity on "
               f"{truth['tokens']:,} tokens, split-half Spearman {truth['split_half_spearman']:.3f}")
    click.echo("seconds per stage: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in stages.items()))
    where = "lonas-mini" if Path(out) == Path(LONAS_MINI_DIR) else f"lonas:{out}"
    click.echo(f"open it as {where} (e.g. `lpzero rank {where}`)")


@main.command()
def ops():
    """Print the primitive op table (Markdown)."""
    click.echo(markdown_table(OPS))


@main.command()
@click.argument("best_json", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="latex", show_default=True)
def export(best_json, fmt):
    """Print the simplified formula of a found proxy (best.json)."""
    best = load_best(Path(best_json))
    tree = parse_tree(best["tree"], default_pset())
    # guards that were active on the search sample are written out, as evolve's report does
    click.echo(proxy_formula(tree, best.get("orientation", 1), fmt, guarded=active_nodes(best.get("protection", []))))


# --- nas: use a proxy to pick architectures under a budget ---------------------------------------------------------

#: settings of `lpzero nas --quick` (explicit options still win)
NAS_QUICK = {"batch_size": 2, "seq_len": 64, "population": 16, "generations": 5}


def _nas_default(name: str):
    return _default(NSGASettings, name)


@main.command()
@click.option("--space", "space_name", required=True,
              help="lts or gpt2 (Archai's GPT-2 space, choices read from the gpt2 benchmark), lts:PATH (from another results "
                   "directory), lonas (the sub-networks of lonas-mini), lonas:DIR (of a built LoNAS directory or a "
                   "local LLaMA checkpoint, with --adapter), tabular:BENCHMARK (a benchmark's own architectures, "
                   "scored exhaustively) or module:Class.")
@click.option("--proxy", "proxy_text", required=True,
              help="A found proxy (best.json or its folder), or a baseline name (-NAME negates it).")
@click.option("--cost", "cost_text", default="params", show_default=True,
              help=f"Costs to minimise beside maximising the proxy: comma-separated {', '.join(NAS_COSTS)}.")
@click.option("--max-params", type=click.FloatRange(min=0), default=None, help="Limit on the parameter count.")
@click.option("--max-flops", type=click.FloatRange(min=0), default=None,
              help="Limit on the FLOPs of one forward pass on one sequence.")
@click.option("--max-latency", type=click.FloatRange(min=0), default=None,
              help="Limit on the latency (ms) of one forward pass on one sequence, measured on --device.")
@click.option("--cost-seq-len", type=click.IntRange(min=1), default=None,
              help="Sequence length of the FLOPs and latency pass (default: the benchmark's default).")
@click.option("--population", type=click.IntRange(min=2), default=_nas_default("population"), show_default=True)
@click.option("--generations", type=click.IntRange(min=0), default=_nas_default("generations"), show_default=True)
@click.option("--crossover", type=click.FloatRange(0, 1), default=_nas_default("crossover"), show_default=True)
@click.option("--mutation", type=click.FloatRange(0, 1), default=_nas_default("mutation"), show_default=True)
@click.option("--seed", type=int, default=_nas_default("seed"), show_default=True)
@click.option("--cached-scores", is_flag=True,
              help="Tabular: score a found proxy on the cache's samples instead of building every model.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory (default: runs/nas/<space>).")
@click.option("--resume", is_flag=True, help="Continue from checkpoint.json in --out.")
@click.option("--quick", is_flag=True,
              help=f"{NAS_QUICK['batch_size']} x {NAS_QUICK['seq_len']} batch, population {NAS_QUICK['population']}, "
                   f"{NAS_QUICK['generations']} generations (explicit options still win).")
@_benchmark_options
@_cache_options
@click.pass_context
def nas(ctx, space_name, proxy_text, cost_text, max_params, max_flops, max_latency, cost_seq_len, population,
        generations, crossover, mutation, seed, cached_scores, out, resume, quick, data, hidden_size_compat, **kw):
    """Pick architectures with a proxy: NSGA-II over (proxy score, costs) under limits."""
    if quick:
        quick_values = _quick(ctx, NAS_QUICK, kw, {"population": population, "generations": generations})
        population, generations = quick_values["population"], quick_values["generations"]
    nsga = NSGASettings(population, generations, crossover, mutation, seed)
    proxy = nas_proxy_spec(proxy_text)  # a malformed best.json fails before any work
    costs = tuple(c.strip() for c in cost_text.split(",") if c.strip())
    limits = {k: v for k, v in (("params", max_params), ("flops", max_flops), ("latency", max_latency))
              if v is not None}
    tabular = space_name.startswith("tabular:")
    options: dict = {}
    ids = None
    if tabular:
        bench, options = _open(space_name[len("tabular:"):], data, hidden_size_compat)
        if kw["limit"] is not None or kw["ids"] is not None:
            ids = _select_ids(bench, kw["limit"], kw["ids"])
    elif hidden_size_compat:
        raise LPZeroError("--hidden-size-compat applies to a tabular:flexibert space only")
    elif kw["limit"] is not None or kw["ids"] is not None:
        raise LPZeroError("--limit and --ids select architectures of a tabular space only")
    elif cached_scores:
        raise LPZeroError("--cached-scores applies to a tabular space only (an open space's candidates are not cached)")
    elif ctx.meta.get("lpzero.adapter") is not None:
        if not space_name.startswith("lonas:"):
            raise LPZeroError("--adapter applies to lonas:CHECKPOINT spaces only")
        options = {"adapter": ctx.meta["lpzero.adapter"]}
    space = get_space(space_name, data, options, ids)
    base = space.base_benchmark()
    if proxy.found_on not in (None, base.name):
        logging.getLogger("lpzero").warning("%s was found on %r, used here on %r", proxy.source, proxy.found_on,
                                            base.name)
    store = _make_cache(base, options, data, kw)
    settings = EvalSettings(store.settings.batch_size, store.settings.seq_len, store.settings.batch_seed,
                            store.settings.model_seed, kw["device"], costs, limits,
                            cost_seq_len or base.default_seq_len)
    out_dir = Path(out) if out else Path("runs") / "nas" / space.name.replace(":", "_").replace("/", "_")
    out_dir.mkdir(parents=True, exist_ok=True)  # before any work: an unwritable --out fails now
    given, note = None, f"exact ({settings.batch_size} x {settings.seq_len} batch, model seed {settings.model_seed})"
    if tabular and (proxy.is_baseline or cached_scores):
        arch_ids = space.ids
        if proxy.is_baseline and BASELINES[proxy.name].pass_free:
            with _executor(kw) as executor:
                values, _ = rank_pass_free([proxy.name], store.settings, arch_ids, kw["device"], executor)
            given = {a: proxy.orientation * v for a, v in zip(arch_ids, values[0])}
            note = "exact (a parameter count)"
        else:
            _fill_cache(store, arch_ids, [proxy.name] if proxy.is_baseline else [], kw)
            given = nas_cached_scores(store, arch_ids, proxy)
            note = (f"from the cache {store.dir}" if proxy.is_baseline else
                    f"on the cache's samples ({store.settings.samples} per tensor, {store.dir})")
    total = len(space.all_genomes() or []) or population * (generations + 1)
    with tqdm(total=total, desc=f"nas {space.name}", unit="arch", mininterval=PROGRESS_INTERVAL) as bar, \
            _executor(kw) as executor:
        run_nas(space, proxy, settings, nsga, out_dir, executor, resume=resume, given=given, scores_note=note,
                progress=lambda n: bar.update(n - bar.n))
    click.echo((out_dir / "report.md").read_text())
    click.echo(f"written: {out_dir}/pareto.csv, candidates.csv, pareto.png, chosen/, front/, report.md, summary.json")


if __name__ == "__main__":
    sys.exit(main())
