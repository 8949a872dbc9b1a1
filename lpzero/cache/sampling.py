"""How a cached input keeps K elements of each per-layer tensor, with weights.

Full tensors do not fit (W and G alone of the 200 GPT-2 models are tens of GB), so
each per-layer tensor is stored as `samples` (K) of its elements, each with a weight:
how many elements of the full tensor it stands for (see `lpzero.primitives.values`),
so sums stay unbiased. Two stratified schemes:

- W and G are joined element-wise (W∘G), so they are sampled at the same positions:
  the flattened tensor is cut into K equal contiguous chunks and one element is
  drawn from each, spreading the sample evenly over rows and columns.
- A, J, H and S are only ever combined with themselves, so they are stratified by
  value: the K/8 smallest and K/8 largest elements are kept exactly (weight 1) and
  one element is drawn from each of equal chunks of the sorted rest. Extremes (max,
  min, min-max scaling, the softmax shift) are then exact, and heavy tails (the
  few large entries of a causal attention map's first rows, which dominate its
  variance and norm) are no longer left to chance. The kept ranks of the sorted
  order are found without sorting the whole tensor (`order_statistics`).

The weights are then calibrated (`calibrated_weights`) so that each stored tensor
reproduces the full tensor's count, sum and sum of squares exactly. A tensor with
at most K elements is stored whole.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import torch

from lpzero.benchmarks.inputs import SYMBOLS, LayerTensor, Layout, ProxyInputs, RowShape, stream_inputs
from lpzero.primitives import INPUTS, Weighted
from lpzero.proxies import SIX_INPUTS, ProxyContext, six_inputs


def stratified_index(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """One random position in each of k equal contiguous chunks of range(n) (n > k)."""
    return stratified_positions(n, k, torch.rand(k, generator=gen, dtype=torch.float64))


def stratified_positions(n: int, k: int, uniforms: torch.Tensor) -> torch.Tensor:
    """`stratified_index` with its k float64 uniforms drawn already (n > k)."""
    starts = (torch.arange(k, dtype=torch.float64) * n / k).floor().long()
    ends = (torch.arange(1, k + 1, dtype=torch.float64) * n / k).floor().long()
    return starts + (uniforms * (ends - starts)).long()


#: share of the K slots given to the smallest and (as many) largest values, kept exactly
EXACT_TAIL_SHARE = 1 / 8


def _standardized(v: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    m, s = float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0
    return (v - m) / (s or 1.0), m, s or 1.0


def calibrated_weights(kept: list[torch.Tensor], full: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Sampling weights adjusted so the sample reproduces the full tensors' first two moments exactly.

    Linear (GREG) calibration: w' = w (1 + x λ), the weights closest to `weights` for
    which sum(w' x) equals the full tensors' totals, with x = (1, v, v²) of each
    tensor in `kept` (sampled values; `full`: the same tensors whole, in the same
    order) and, for two aligned tensors, their product. Sums, means, variances and
    norms of the stored inputs are then exact, and statistics of tensors whose mean
    is far below their spread (weights, gradients) are no longer sampling noise.
    Weights stay non-negative; if the full tensors are not finite, `weights` is returned.
    """
    w = weights.double()
    columns, totals = [torch.ones_like(w)], [float(len(full[0]))]
    scaled = []
    for k, f in zip(kept, full):
        z, m, s = _standardized(k.double())
        # in place on one float64 copy: the full tensors are large, and fresh memory is slow to touch
        zf = f.to(torch.float64, copy=True).sub_(m).div_(s)
        scaled.append((z, zf))
        columns += [z, z * z]
        totals += [float(zf.sum()), 0.0]
    if len(scaled) == 2:
        columns.append(scaled[0][0] * scaled[1][0])
        totals.append(float((scaled[0][1] * scaled[1][1]).sum()))
    for i, (_, zf) in enumerate(scaled):
        totals[2 + 2 * i] = float(zf.square_().sum())
    x, target = torch.stack(columns, 1), torch.tensor(totals, dtype=torch.float64)
    if not torch.isfinite(target).all() or not torch.isfinite(x).all():
        return weights
    gram = (x * w[:, None]).T @ x
    lam = torch.linalg.pinv(gram, hermitian=True) @ (target - w @ x)
    return (w * (1 + x @ lam)).clamp_min(0).to(weights.dtype)


#: below this many elements a full sort is as fast as selecting the order statistics
SELECT_MIN_ELEMENTS = 1 << 18
#: `order_statistics` buckets float32 values by the top 32 - BUCKET_SHIFT bits of their order keys
BUCKET_SHIFT = 12


def _bucket_of(values: np.ndarray) -> np.ndarray:
    """Each finite float32 value's bucket (int64, 0 to 2^(32 - BUCKET_SHIFT) - 1), in the values' order."""
    key = values.view(np.int32).astype(np.int64)
    # a negative float's magnitude bits grow with its magnitude: flip them so its key falls as it does
    # (-0.0 then keys just below 0.0); in place, as these arrays are as long as the tensor
    flip = key >> 31
    flip &= 0x7FFFFFFF
    key ^= flip
    key >>= BUCKET_SHIFT
    key += 1 << (31 - BUCKET_SHIFT)
    return key


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """`np.sort(values)[ranks]` (float32 `values`), without sorting the whole tensor.

    The values are counted into 2^20 buckets of consecutive order keys (one pass);
    only the buckets holding a wanted rank are gathered and sorted: the thousand
    ranks a cache entry keeps of a tensor touch a small share of it, and a full sort
    of A, J, H and S costs about a third of the model's forward and backward pass.
    Equal to the full sort's values (at most -0.0 and 0.0 trade places, as they may
    between any two sorts). Small tensors and tensors holding NaN or inf are sorted.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    if values.size < SELECT_MIN_ELEMENTS or not np.isfinite(values).all():
        return np.sort(values)[ranks]
    buckets = 1 << (32 - BUCKET_SHIFT)
    bucket = _bucket_of(values)
    counts = np.bincount(bucket, minlength=buckets)
    ends = np.cumsum(counts)
    holding = np.searchsorted(ends, ranks, side="right")  # the bucket of each rank
    wanted = np.zeros(buckets, dtype=bool)
    wanted[holding] = True
    members = np.sort(values[wanted[bucket]])  # the wanted buckets' values, one bucket after another
    wanted_ids = np.flatnonzero(wanted)
    member_starts = np.cumsum(counts[wanted_ids]) - counts[wanted_ids]
    rank_in_bucket = ranks - (ends[holding] - counts[holding])
    return members[member_starts[np.searchsorted(wanted_ids, holding)] + rank_in_bucket]


def _without_tails(values: np.ndarray, low: float, high: float, tail: int) -> np.ndarray:
    """The values less their `tail` (≥ 1) smallest and `tail` largest (`low`, `high`: the largest of
    the smallest, the smallest of the largest; copies of them may also be in the rest)."""
    middle = values.size - 2 * tail
    if low == high:
        return np.full(middle, low, dtype=values.dtype)
    inside = values[(values > low) & (values < high)]
    at_low = int(np.count_nonzero(values <= low)) - tail  # copies of `low` left after the smallest
    return np.concatenate([np.full(at_low, low, dtype=values.dtype), inside,
                           np.full(middle - at_low - inside.size, high, dtype=values.dtype)])


def _value_stratified_sample(flat: torch.Tensor, k: int,
                             draws: torch.Generator | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified by value: the extremes exactly, one value from each of equal chunks of the sorted rest
    (`draws`: the row's uniforms, `row_draws`, or the generator to draw them from)."""
    values = flat.numpy()
    n, tail = values.size, int(k * EXACT_TAIL_SHARE)
    uniforms = row_draws(n, k, False, draws) if isinstance(draws, torch.Generator) else draws
    middle_ranks = tail + stratified_positions(n - 2 * tail, k - 2 * tail, uniforms).numpy()
    ranks = np.concatenate([np.arange(tail), middle_ranks, np.arange(n - tail, n)])
    if np.isfinite(values).all():
        kept = torch.from_numpy(order_statistics(values, ranks))
        middle = torch.from_numpy(values if tail == 0 else
                                  _without_tails(values, kept[tail - 1].item(), kept[k - tail].item(), tail))
    else:  # NaN sorts last and inf at an end: both are kept, and the proxy is found invalid
        ordered = np.sort(values)
        kept, middle = torch.from_numpy(ordered[ranks]), torch.from_numpy(ordered[tail:n - tail])
    picked = kept[tail:k - tail]
    weight = calibrated_weights([picked], [middle], torch.full((k - 2 * tail,), middle.numel() / (k - 2 * tail)))
    ones = torch.ones(tail)
    return kept, torch.cat([ones, weight, ones])


def _aligned_symbols() -> set[str]:
    """Inputs that share a tensor type with another input (W and G): they are joined element-wise."""
    return {a.symbol for a in INPUTS for b in INPUTS if a is not b and a.type is b.type}


def row_draws(n: int, k: int, aligned: bool, gen: torch.Generator) -> torch.Tensor | None:
    """The uniforms `gen` gives the sampling of a row of n elements: none for a row kept whole
    (n <= k), k for aligned rows (`stratified_index`), k - 2 tail for value-stratified ones.
    They depend on n alone, so every row's draws can be made before any row exists."""
    if n <= k:
        return None
    return torch.rand(k if aligned else k - 2 * int(k * EXACT_TAIL_SHARE), generator=gen, dtype=torch.float64)


def sample_row(flats: list[torch.Tensor], k: int,
               draws: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(kept values per tensor, weights) of one row: `flats` are its tensors flattened in float32 on
    the CPU (W and G together, else one), `draws` its uniforms (`row_draws`)."""
    n = flats[0].numel()
    if draws is None:
        return [torch.cat([flat, flat.new_zeros(k - n)]) for flat in flats], torch.ones(k)
    if len(flats) > 1:
        index = stratified_positions(n, k, draws)
        weight = calibrated_weights([f[index] for f in flats], flats, torch.full((k,), n / k))
        return [flat[index] for flat in flats], weight
    values, weight = _value_stratified_sample(flats[0], k, draws)
    return [values], weight


class SampleRows:
    """The cache's reducer (`lpzero.benchmarks.inputs.RowReducer`): each row reduced to K samples as it comes.

    A row's draws depend only on its size (`row_draws`), so all of them are made in `begin`, in
    one fixed order (input after input in SYMBOLS order, W with G, row after row): each row is
    sampled at the same positions whichever order the rows arrive in (a streamed pass hands
    W and G over in backward order), and `stored()` is bitwise `sample_inputs`' of the full inputs.
    """

    def __init__(self, samples: int, seed: int) -> None:
        self.samples, self.seed = samples, seed
        self.group = sorted(_aligned_symbols())  # W and G, sampled together; the first one leads
        self.layout: Layout = {}
        self.draws: dict[tuple[str, int], torch.Tensor | None] = {}
        self.kept: dict[str, dict[int, torch.Tensor]] = {}
        self.weights: dict[str, dict[int, torch.Tensor]] = {}

    def begin(self, layout: Layout) -> None:
        self.layout, self.draws = layout, {}
        gen = torch.Generator().manual_seed(self.seed)
        self.kept = {sym: {} for sym in SYMBOLS}
        self.weights = {sym: {} for sym in SYMBOLS}
        for sym in SYMBOLS:
            if sym in self.group and sym != self.group[0]:
                continue  # sampled with the first aligned input: one draw per row serves both
            for i, row in enumerate(layout.get(sym, ())):
                self.draws[sym, i] = row_draws(row.numel, self.samples, sym in self.group, gen)

    def rows(self, index: int, tensors: dict[str, LayerTensor]) -> None:
        group = [s for s in self.group if s in tensors] or list(tensors)
        lead = group[0]
        if (lead, index) not in self.draws:
            return  # an aligned row whose leading input is not extracted: not stored (as in `sample_inputs`)
        # sampled on the CPU whatever the device: the same generator draws the same positions
        flats = [tensors[s].tensor.reshape(-1).float().cpu() for s in group]
        kept, weight = sample_row(flats, self.samples, self.draws.pop((lead, index)))
        for sym, values in zip(group, kept):
            self.kept[sym][index] = values
            self.weights[sym][index] = weight

    def stored(self) -> dict[str, torch.Tensor]:
        """The tensors to store (see `sample_inputs`)."""
        stored: dict[str, torch.Tensor] = {}
        for sym in SYMBOLS:
            empty = torch.zeros(0, self.samples)
            rows = self.layout.get(sym, [])
            kept, weights = self.kept[sym], self.weights[sym]
            stored[f"{sym}.values"] = torch.stack([kept[i] for i in sorted(kept)]) if kept else empty
            stored[f"{sym}.weights"] = torch.stack([weights[i] for i in sorted(weights)]) if weights else empty
            stored[f"{sym}.count"] = torch.tensor([min(r.numel, self.samples) for r in rows], dtype=torch.int64)
            stored[f"{sym}.layers"] = torch.tensor([r.layer for r in rows], dtype=torch.int64)
        return stored


def sample_inputs(inputs: ProxyInputs, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Reduce full inputs to K elements per tensor; returns the tensors to store.

    Per input X: `X.values` [L, K], `X.weights` [L, K] (full elements per kept
    element), `X.count` [L] (elements kept), `X.layers` [L] (block index).
    Aligned inputs (W, G) are sampled at the same positions with the same
    weights, calibrated on both tensors together. The full inputs are handed row after
    row to `SampleRows`, the reducer a streamed extraction (`sample_context`) uses.
    """
    reducer = SampleRows(samples, seed)
    reducer.begin({sym: [RowShape(lt.layer, lt.name, lt.stored.numel()) for lt in inputs[sym]] for sym in SYMBOLS})
    group = reducer.group
    for sym in SYMBOLS:
        if sym in group and sym != group[0]:
            continue
        aligned = [s for s in group if inputs[s]] if sym in group else [sym]
        for i in range(len(inputs[sym])):
            reducer.rows(i, {s: inputs[s][i] for s in aligned})
    return reducer.stored()


def sample_context(ctx: ProxyContext, samples: int, seed: int, full: bool = False) -> dict[str, torch.Tensor]:
    """`sample_inputs` of the six inputs of `ctx`'s shared model, as the cache stores them.

    Streamed (`stream_inputs`: no more than a layer's gradients held at once), unless the six
    inputs are extracted already or `full` (other proxies of `ctx` will read them whole):
    then they are extracted once, shared, and sampled, so there is still one pass.
    """
    if full or ctx.has_shared(SIX_INPUTS):
        return sample_inputs(six_inputs(ctx), samples, seed)
    reducer = SampleRows(samples, seed)
    stream_inputs(ctx.benchmark, ctx.model(), ctx.inputs(), reducer)
    return reducer.stored()


def arch_seed(arch_id: str, seed: int) -> int:
    """The sampling seed of one architecture's tensors."""
    return zlib.crc32(arch_id.encode()) ^ seed


def stack_stored(per_arch: Sequence[dict[str, torch.Tensor]], samples: int) -> dict[str, Weighted]:
    """Stored (sampled) inputs of N architectures as `Weighted` [N, L, K]; absent layers are not present."""
    out = {}
    for sym in SYMBOLS:
        n_layers = max(1, max(d[f"{sym}.values"].shape[0] for d in per_arch))
        values = torch.zeros(len(per_arch), n_layers, samples)
        weights = torch.zeros(values.shape)
        present = torch.zeros(values.shape, dtype=torch.bool)
        for i, d in enumerate(per_arch):
            n = d[f"{sym}.values"].shape[0]
            values[i, :n] = d[f"{sym}.values"]
            weights[i, :n] = d[f"{sym}.weights"]
            for l, count in enumerate(d[f"{sym}.count"].tolist()):
                present[i, l, :count] = True
        out[sym] = Weighted(values, weights, present)
    return out
