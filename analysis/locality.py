"""Cache locality of embedding lookups: stack-distance histograms and CDFs, LRU miss-ratio curves, errors.

Built on :mod:`tracegen.locality` (stack distance = distinct *other* rows since the previous access to the
same row, ``-1`` cold; an LRU cache of ``C`` rows hits iff ``0 <= sd < C``).

Streams: one per table (one cache per table) and one **shared** stream, all tables' lookups in DLRM issue
order (for each batch, table 0's bags, then table 1's, ...) with disjoint row ids per table, i.e. one cache
serving every table.

Units: a cache of ``C`` rows holds ``C * row_bytes`` bytes, and, counting **64-byte cache lines**, a row of
``D`` fp32 values spans ``ceil(4 * D / 64)`` lines (rows are line-aligned), so ``C`` rows are
``C * ceil(row_bytes / 64)`` lines. Miss ratios are the same in every unit; only the cache-size axis scales.
(The shared cache assumes one ``D`` for all tables.)

**SHARDS sampling** (Waldspurger et al., FAST 2015, fixed rate with the SHARDS_adj correction, from
:func:`tracegen.locality.shards_histogram`): above :data:`SHARDS_THRESHOLD` accesses a stream is sampled
spatially at rate ``R = threshold / N`` -- an access is kept iff its id hashes below ``R`` -- and the sample's
stack distances are scaled by ``1/R``. Every result says its ``sample_rate`` (``1.0`` = exact). Distinct rows
and footprint curves stay exact.

Notation: ``N`` accesses, ``D`` embedding dim, ``R`` SHARDS rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from analysis.footprint import row_bytes
from tracegen.errors import TracegenError
from tracegen.trace import Trace

SHARDS_THRESHOLD = 4_000_000
"""Streams longer than this are SHARDS-sampled down to about this many accesses (rate ``threshold / N``)."""

LINE_BYTES = 64


def lines_per_row(dim: int, dtype: str = "fp32", line_bytes: int = LINE_BYTES) -> int:
    """64-byte cache lines one row spans: ``ceil(row_bytes / 64)`` (``ceil(4D / 64)`` for fp32)."""
    return -(-row_bytes(dim, dtype) // int(line_bytes))


# ---- streams ------------------------------------------------------------------------------------------

def interleave(trace: Trace, batch_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, table_index)``: all lookups in DLRM issue order with disjoint ids (table ``j`` offset by the
    sum of the cardinalities before it). In each batch of ``batch_size`` samples table 0's bags come first."""
    b = trace.n_samples
    base = np.concatenate([[0], np.cumsum([int(t.cardinality) for t in trace.tables])])
    bs = max(int(batch_size), 1)
    if trace.is_one_hot and trace.n_tables:
        x = np.empty((b, trace.n_tables), np.int64)  # (B, T)
        for j, t in enumerate(trace.tables):
            x[:, j] = np.asarray(t.values) + base[j]
        n_full = b // bs
        head = x[:n_full * bs].reshape(n_full, bs, trace.n_tables).transpose(0, 2, 1)  # (n_b, T, bs)
        tail = x[n_full * bs:].T  # (T, rest)
        tix = np.arange(trace.n_tables, dtype=np.int32)
        ids = np.concatenate([head.ravel(), tail.ravel()])
        tab = np.concatenate([np.broadcast_to(tix[None, :, None], head.shape).ravel(),
                              np.repeat(tix, tail.shape[1])])
        return ids, tab
    return _interleave_bags(trace, bs, base)


def _interleave_bags(trace: Trace, bs: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The general (multi-hot) path of :func:`interleave`."""
    b = trace.n_samples
    edges = np.append(np.arange(0, b, bs, dtype=np.int64), b)
    n_b = edges.size - 1
    # segment (batch g, table j) holds values[off_j[edges[g]]:off_j[edges[g+1]]]
    seg_start = np.stack([np.asarray(t.offsets, np.int64)[edges[:-1]] for t in trace.tables], axis=1)
    seg_end = np.stack([np.asarray(t.offsets, np.int64)[edges[1:]] for t in trace.tables], axis=1)
    seg_len = (seg_end - seg_start).ravel()
    n = int(seg_len.sum())
    dest = np.zeros(n_b * trace.n_tables + 1, np.int64)
    np.cumsum(seg_len, out=dest[1:])
    ids = np.empty(n, np.int64)
    tab = np.empty(n, np.int32)
    dest = dest[:-1].reshape(n_b, trace.n_tables)
    for j, t in enumerate(trace.tables):
        v = np.asarray(t.values, np.int64)
        # position of every value of table j in the interleaved stream
        seg_of = np.repeat(np.arange(n_b), seg_end[:, j] - seg_start[:, j])
        pos = dest[seg_of, j] + (np.arange(v.size) - seg_start[seg_of, j])
        ids[pos] = v + base[j]
        tab[pos] = j
    return ids, tab


@dataclasses.dataclass
class StreamLocality:
    """Stack-distance histogram of one stream: exact, or the SHARDS estimate at ``sample_rate``.

    ``counts[d]`` accesses at stack distance ``d`` and ``cold`` first accesses, normalised to the whole
    stream (SHARDS estimates are fractional, over distances already scaled by ``1 / sample_rate``).
    """

    name: str
    n_accesses: int  # accesses of the whole stream
    counts: np.ndarray  # counts[d]: accesses at stack distance d (float when estimated)
    cold: float  # cold (first) accesses
    sample_rate: float = 1.0
    distinct: int = 0  # distinct ids of the whole stream (exact)
    curve: tuple[np.ndarray, np.ndarray] | None = None  # footprint over time: (accesses so far, distinct ids)
    working_set: dict[int, float] | None = None  # window (accesses) -> mean distinct ids over sliding windows

    def miss_ratio(self, sizes) -> np.ndarray:
        """LRU miss ratio at cache sizes in rows (estimated when ``sample_rate < 1``)."""
        from tracegen.locality import miss_ratio_curve

        sizes = np.floor(np.asarray(sizes, dtype=np.float64) + 1e-9).astype(np.int64)
        return miss_ratio_curve(self.counts, self.cold, np.maximum(sizes, 0))[1]

    def sd_cdf(self, distances) -> np.ndarray:
        """Share of all accesses with ``0 <= sd <= d`` (cold accesses never count; tops out at 1 - cold/N)."""
        return 1.0 - self.miss_ratio(np.asarray(distances, dtype=np.int64) + 1)

    def max_distance(self) -> int:
        """Largest stack distance in the histogram, at least 1."""
        return max(int(self.counts.shape[0]), 1)

    def log2_histogram(self) -> dict:
        """Stack-distance histogram in power-of-two buckets: ``counts[k]`` accesses with ``sd`` in
        ``[2**k - 1, 2**(k+1) - 1)`` (bucket 0 is ``sd = 0``, bucket 1 is ``1..2``, ...), plus ``cold``."""
        c = np.asarray(self.counts, dtype=np.float64)
        if c.size == 0:
            return {"lower_edges": [], "counts": [], "cold": float(self.cold)}
        k = np.floor(np.log2(np.arange(c.size) + 1.0)).astype(np.int64)
        binned = np.bincount(k, weights=c)
        return {"lower_edges": [(1 << j) - 1 for j in range(binned.size)], "counts": binned.tolist(),
                "cold": float(self.cold)}

    def summary(self) -> dict:
        from tracegen.locality import sd_percentiles

        warm = float(np.sum(self.counts))
        total = warm + float(self.cold)
        mean = float(np.dot(np.arange(self.counts.shape[0]), self.counts) / warm) if warm > 0 else None
        return {"name": self.name, "accesses": self.n_accesses, "distinct": self.distinct,
                "working_set": ({str(k): v for k, v in self.working_set.items()}
                                if self.working_set is not None else None),
                "sample_rate": self.sample_rate, "cold_share": float(self.cold) / total if total else 0.0,
                "warm_stack_distance": {**sd_percentiles(self.counts, self.cold), "mean": mean},
                "sd_histogram_log2": self.log2_histogram()}


def stream_locality(ids: np.ndarray, name: str = "stream", sample_rate: float | None = None,
                    threshold: int = SHARDS_THRESHOLD, curve_points: int = 0,
                    seed: int = 0, windows: Sequence[int] | None = None) -> StreamLocality:
    """Stack-distance histogram of ``ids``; SHARDS at ``sample_rate`` (default: automatic above threshold).

    Exact histograms come from :class:`tracegen.locality.StreamingProfiler` (no per-access output), SHARDS
    estimates from :func:`tracegen.locality.shards_histogram` (fixed rate, SHARDS_adj). ``windows`` (in
    accesses) adds the exact average working set W(T) over all sliding windows of each length ``T``
    (:func:`tracegen.locality.average_working_set`).
    """
    from tracegen.locality import StreamingProfiler, average_working_set, dense_keys, shards_histogram

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = int(ids.shape[0])
    if sample_rate is None:
        sample_rate = 1.0 if n <= threshold else threshold / n
    sample_rate = float(sample_rate)
    if not 0 < sample_rate <= 1:
        raise TracegenError(f"sample rate must be in (0, 1], got {sample_rate}")
    keys, distinct = dense_keys(ids)
    curve = None
    if curve_points and n:
        # dense keys number ids in order of first appearance, so distinct(n) = max(keys[:n]) + 1
        pos = np.unique(np.linspace(1, n, max(int(curve_points), 2)).round().astype(np.int64))
        curve = (pos, np.maximum.accumulate(keys)[pos - 1] + 1)
    ws = None
    if windows is not None and n:
        w = [int(x) for x in windows if 0 < int(x) <= n]
        ws = dict(zip(w, (float(x) for x in average_working_set(keys, w)))) if w else {}
    if sample_rate < 1:
        counts, cold, sample_rate = shards_histogram(keys, rate=sample_rate, seed=seed)
    else:
        counts, cold = StreamingProfiler().update(keys).stack_distance_histogram()
    return StreamLocality(name=name, n_accesses=n, counts=counts, cold=cold, sample_rate=float(sample_rate),
                          distinct=int(distinct), curve=curve, working_set=ws)


@dataclasses.dataclass
class TraceLocality:
    """Per-table streams and the shared stream of one trace, with the row size they are measured in."""

    tables: list[StreamLocality]
    shared: StreamLocality
    dim: int
    dtype: str = "fp32"

    @property
    def row_bytes(self) -> int:
        return row_bytes(self.dim, self.dtype)

    @property
    def lines_per_row(self) -> int:
        return lines_per_row(self.dim, self.dtype)

    @property
    def sampled(self) -> bool:
        return any(s.sample_rate < 1 for s in [*self.tables, self.shared])


def trace_locality(trace: Trace, dim: int = 64, dtype: str = "fp32", sample_rate: float | None = None,
                   threshold: int = SHARDS_THRESHOLD, batch_size: int = 1, curve_points: int = 64,
                   progress: bool | None = None) -> TraceLocality:
    """Stack-distance histograms of every table and of the shared stream (see the module docstring)."""
    from tracegen._util import progress as bar

    streams = []
    for t in bar(trace.tables, total=trace.n_tables, desc="stack distances", unit="table", enabled=progress):
        streams.append(stream_locality(t.values, t.name, sample_rate, threshold))
    ids, _ = interleave(trace, batch_size)
    # working sets over windows of 1, 10 and 100 batches' lookups (all tables)
    per_batch = max(len(ids) * batch_size // max(trace.n_samples, 1), 1)
    shared = stream_locality(ids, "shared", sample_rate, threshold, curve_points,
                             windows=[per_batch, 10 * per_batch, 100 * per_batch])
    return TraceLocality(streams, shared, int(dim), dtype)


def cache_sizes(max_rows: int, points: int = 48) -> np.ndarray:
    """Log-spaced cache sizes in rows, ``1 .. max_rows`` (distinct integers)."""
    max_rows = max(int(max_rows), 1)
    return np.unique(np.geomspace(1, max_rows, max(int(points), 2)).round().astype(np.int64))


# ---- real against synthetic ---------------------------------------------------------------------------

def compare_streams(real: StreamLocality, synth: StreamLocality, sizes=None) -> dict:
    """Error figures of ``synth`` against ``real``: miss-ratio-curve errors over log-spaced cache sizes
    (mean and max absolute, in miss-ratio points), the stack-distance CDF distance (KS: max absolute
    difference over the same sizes) and relative errors of distinct rows and cold share."""
    if sizes is None:
        sizes = cache_sizes(max(real.max_distance(), synth.max_distance()) + 1)
    a, b = real.miss_ratio(sizes), synth.miss_ratio(sizes)
    d = np.asarray(sizes) - 1
    err = np.abs(a - b)
    ra, rb = real.summary(), synth.summary()
    return {"name": real.name, "mrc_mae": float(err.mean()), "mrc_max_abs_err": float(err.max()),
            "mrc_max_err_at_rows": int(np.asarray(sizes)[int(err.argmax())]),
            "sd_cdf_ks": float(np.abs(real.sd_cdf(d) - synth.sd_cdf(d)).max()),
            "distinct_rel_err": (synth.distinct - real.distinct) / real.distinct if real.distinct else 0.0,
            "cold_share_real": ra["cold_share"], "cold_share_synthetic": rb["cold_share"]}


def compare(real: TraceLocality, synth: TraceLocality) -> dict:
    """Per-table and shared error figures (see :func:`compare_streams`), plus the mean over tables."""
    by_name = {s.name: s for s in synth.tables}
    rows = [compare_streams(r, by_name[r.name]) for r in real.tables if r.name in by_name]
    out = {"tables": rows, "shared": compare_streams(real.shared, synth.shared)}
    if rows:
        out["mean_table_mrc_mae"] = float(np.mean([r["mrc_mae"] for r in rows]))
        out["max_table_mrc_max_abs_err"] = float(np.max([r["mrc_max_abs_err"] for r in rows]))
    return out


def sd_cdf_points(stream: StreamLocality, points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(d, F(d))`` at log-spaced distances for plotting."""
    d = cache_sizes(stream.max_distance() + 1, points) - 1
    return d, stream.sd_cdf(d)


def mrc_points(stream: StreamLocality, max_rows: int | None = None,
               points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes in rows, miss ratio)`` at log-spaced sizes for plotting."""
    sizes = cache_sizes(max_rows or (stream.max_distance() + 1), points)
    return sizes, stream.miss_ratio(sizes)


def mrc_in_units(sizes_rows: np.ndarray, dim: int, unit: str, dtype: str = "fp32") -> np.ndarray:
    """Convert cache sizes in rows to ``"rows"``, ``"bytes"`` or ``"lines"`` (64-byte cache lines)."""
    s = np.asarray(sizes_rows, dtype=np.int64)
    if unit == "rows":
        return s
    if unit == "bytes":
        return s * row_bytes(dim, dtype)
    if unit == "lines":
        return s * lines_per_row(dim, dtype)
    raise TracegenError(f"unit must be rows, bytes or lines, got {unit!r}")


def miss_ratio_at(stream: StreamLocality, size: float, unit: str, dim: int, dtype: str = "fp32") -> float:
    """Miss ratio of an LRU cache of ``size`` rows/bytes/lines (partial rows do not count)."""
    per = {"rows": 1, "bytes": row_bytes(dim, dtype), "lines": lines_per_row(dim, dtype)}.get(unit)
    if per is None:
        raise TracegenError(f"unit must be rows, bytes or lines, got {unit!r}")
    return float(stream.miss_ratio([int(size) // per])[0])


__all__: Sequence[str] = ["SHARDS_THRESHOLD", "StreamLocality", "TraceLocality", "cache_sizes", "compare",
                          "compare_streams", "interleave", "lines_per_row", "miss_ratio_at", "mrc_in_units",
                          "stream_locality", "trace_locality"]
