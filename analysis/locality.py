"""Cache locality of embedding lookups: stack-distance histograms and CDFs, LRU miss-ratio curves, errors.

Built on :mod:`tracegen.locality` (stack distance = distinct *other* rows since the previous access to the
same row, ``-1`` cold; an LRU cache of ``C`` rows hits iff ``0 <= sd < C``).

Streams: one per table (one cache per table) and one **shared** stream, all tables' lookups in DLRM issue
order (for each batch, table 0's bags, then table 1's, ...) with disjoint row ids per table, i.e. one cache
serving every table.

Units: a cache of ``C`` rows holds ``C * row_bytes`` bytes, and, counting **64-byte cache lines**, a row of
``D`` fp32 values spans ``ceil(4 * D / 64)`` lines (rows are line-aligned), so ``C`` rows are
``C * ceil(row_bytes / 64)`` lines. Miss ratios are the same in every unit; only the cache-size axis scales.
When the tables' ``D`` differ, the shared cache is measured exactly in bytes and lines by LRU depths
weighted by row size (:class:`SizedStreamLocality`).

**SHARDS sampling** (Waldspurger et al., FAST 2015, fixed rate with the SHARDS_adj correction, from
:func:`tracegen.locality.shards_histogram`): above :data:`SHARDS_THRESHOLD` accesses a stream is sampled
spatially at rate ``R = threshold / N`` -- an access is kept iff its id hashes below ``R`` -- and the sample's
stack distances are scaled by ``1/R``. A stream with few distinct rows ``U`` is sampled at
``max(R, 1024 / U)`` instead, i.e. exactly when ``U <= 1024`` (:func:`tracegen.locality.shards_rate`): a
smaller sample says nothing reliable about reuse (a 3-row table sampled at 1% holds one row or none). Every
result says its ``sample_rate`` (``1.0`` = exact). Distinct rows, the cold share and footprint curves stay
exact.

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
    estimates from :func:`tracegen.locality.shards_histogram` (fixed rate, SHARDS_adj, the exact distinct count
    pinning the cold share; the rate raised by :func:`tracegen.locality.shards_rate` for streams with few
    distinct rows, so those with at most 1,024 are exact). ``windows`` (in
    accesses) adds the exact average working set W(T) over all sliding windows of each length ``T``
    (:func:`tracegen.locality.average_working_set`).
    """
    from tracegen.locality import StreamingProfiler, average_working_set, dense_keys, shards_histogram, shards_rate

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
        sample_rate = shards_rate(sample_rate, distinct)
    if sample_rate < 1:
        counts, cold, sample_rate = shards_histogram(keys, rate=sample_rate, seed=seed, distinct=distinct)
    else:
        counts, cold = StreamingProfiler().update(keys).stack_distance_histogram()
    return StreamLocality(name=name, n_accesses=n, counts=counts, cold=cold, sample_rate=float(sample_rate),
                          distinct=int(distinct), curve=curve, working_set=ws)


@dataclasses.dataclass
class SizedStreamLocality:
    """LRU depths of a stream of rows of different sizes (tables with different ``D``), in ``unit``.

    The depth of an access is the size of its row plus the sizes of the distinct other rows accessed since
    its previous access: an LRU cache of ``C`` bytes (or lines) holding whole rows hits iff ``depth <= C``
    (``tests/naive.py::lru_size_miss_ratio`` simulates exactly that cache).
    """

    name: str
    unit: str  # "bytes" or "lines"
    n_accesses: int
    depths: np.ndarray  # sorted depths of the warm (sampled) accesses, scaled when sampled
    cold: int  # cold (sampled) accesses
    sample_rate: float = 1.0

    def miss_ratio(self, sizes) -> np.ndarray:
        """LRU miss ratio at cache sizes in ``unit`` (estimated when ``sample_rate < 1``)."""
        sizes = np.asarray(sizes, dtype=np.float64)
        n = self.depths.shape[0] + self.cold
        if n == 0:
            return np.zeros(sizes.shape)
        hits = np.searchsorted(self.depths, sizes, side="right")
        return (n - hits) / n


def _hash24(keys: np.ndarray) -> np.ndarray:
    """A 24-bit multiplicative (Fibonacci) hash of non-negative int64 keys."""
    z = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((z ^ (z >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9) >> np.uint64(40)).astype(np.int64)


def sized_stream_locality(ids: np.ndarray, sizes: np.ndarray, name: str = "stream", unit: str = "bytes",
                          sample_rate: float | None = None,
                          threshold: int = SHARDS_THRESHOLD) -> SizedStreamLocality:
    """Depths of ``ids`` whose rows take ``sizes`` (one per access, the same for every access to a row).

    SHARDS as in :func:`stream_locality` (hash of the row, rate ``threshold / N`` above ``threshold``, raised
    by :func:`tracegen.locality.shards_rate` for streams with few distinct rows); a sampled depth ``d`` of a
    row of size ``w`` is scaled to ``w + (d - w) / R``. A sample without reuse from a stream with some is
    replaced by the exact depths.
    """
    from analysis import _kernels
    from tracegen.locality import dense_keys, shards_rate

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.shape != ids.shape:
        raise TracegenError(f"{ids.shape[0]} ids but {sizes.shape[0]} sizes")
    n = int(ids.shape[0])
    rate = float(sample_rate) if sample_rate is not None else (1.0 if n <= threshold else threshold / n)
    if not 0 < rate <= 1:
        raise TracegenError(f"sample rate must be in (0, 1], got {rate}")
    keys, u = dense_keys(ids)
    w = np.zeros(max(u, 1), np.int64)
    w[keys] = sizes
    if rate < 1:
        rate = shards_rate(rate, u)
    d = np.zeros(0, np.int64)
    if rate < 1:
        sample = keys[_hash24(keys) < int(round(rate * (1 << 24)))]
        d = _kernels._weighted_depths(sample, w) if sample.size else d
        if not sample.size or (n > u and not np.any(d >= 0)):  # no sample, or no reuse in it: go exact
            rate = 1.0
        else:
            keys = sample
    if rate >= 1:
        d = _kernels._weighted_depths(keys, w) if keys.size else d
    warm = d >= 0
    own = w[keys[warm]].astype(np.float64)
    depths = own + (d[warm] - own) / rate
    return SizedStreamLocality(name, unit, n, np.sort(depths), int(np.count_nonzero(~warm)), rate)


def shared_sized_locality(trace: Trace, dims: Sequence[int], dtype: str = "fp32", unit: str = "bytes",
                          batch_size: int = 1, sample_rate: float | None = None,
                          threshold: int = SHARDS_THRESHOLD) -> SizedStreamLocality:
    """One cache shared by all tables whose rows differ in size (one ``D`` per table), in bytes or lines."""
    if len(dims) != trace.n_tables:
        raise TracegenError(f"{len(dims)} embedding dims given for {trace.n_tables} tables")
    if unit == "bytes":
        per_table = np.array([row_bytes(d, dtype) for d in dims], np.int64)
    elif unit == "lines":
        per_table = np.array([lines_per_row(d, dtype) for d in dims], np.int64)
    else:
        raise TracegenError(f"unit must be bytes or lines, got {unit!r}")
    ids, tab = interleave(trace, batch_size)
    return sized_stream_locality(ids, per_table[tab], "shared", unit, sample_rate, threshold)


@dataclasses.dataclass
class TraceLocality:
    """Per-table streams and the shared stream of one trace, with the row sizes they are measured in.

    ``shared`` counts rows. With one ``D`` for all tables a shared cache of ``C`` rows is ``C * row_bytes``
    bytes and ``C * lines_per_row`` lines; when the tables' ``D`` differ, ``shared_bytes`` and
    ``shared_lines`` hold the exact LRU depths in bytes and 64-byte lines (:class:`SizedStreamLocality`).
    :meth:`shared_miss_ratio` answers in any unit either way.
    """

    tables: list[StreamLocality]
    shared: StreamLocality
    dims: list[int]  # D of each table
    dtype: str = "fp32"
    shared_bytes: SizedStreamLocality | None = None  # only when the tables' D differ
    shared_lines: SizedStreamLocality | None = None

    @property
    def uniform(self) -> bool:
        """Whether every table has the same ``D``."""
        return len(set(self.dims)) <= 1

    def _one(self) -> int:
        if not self.uniform:
            raise TracegenError("tables have different embedding dims; use shared_miss_ratio(sizes, unit)")
        return self.dims[0] if self.dims else 1

    @property
    def dim(self) -> int:
        return self._one()

    @property
    def row_bytes(self) -> int:
        return row_bytes(self._one(), self.dtype)

    @property
    def lines_per_row(self) -> int:
        return lines_per_row(self._one(), self.dtype)

    def table_row_bytes(self, j: int) -> int:
        return row_bytes(self.dims[j], self.dtype)

    def table_lines_per_row(self, j: int) -> int:
        return lines_per_row(self.dims[j], self.dtype)

    def shared_miss_ratio(self, sizes, unit: str = "rows") -> np.ndarray:
        """Miss ratio of one LRU cache shared by all tables at ``sizes`` in rows, bytes or 64-byte lines."""
        if unit == "rows":
            return self.shared.miss_ratio(sizes)
        if unit not in ("bytes", "lines"):
            raise TracegenError(f"unit must be rows, bytes or lines, got {unit!r}")
        if self.uniform:
            per = self.row_bytes if unit == "bytes" else self.lines_per_row
            return self.shared.miss_ratio(np.floor(np.asarray(sizes, dtype=np.float64) / per))
        return (self.shared_bytes if unit == "bytes" else self.shared_lines).miss_ratio(sizes)

    @property
    def sampled(self) -> bool:
        return any(s.sample_rate < 1 for s in [*self.tables, self.shared])


def trace_locality(trace: Trace, dim: int | Sequence[int] = 64, dtype: str = "fp32",
                   sample_rate: float | None = None, threshold: int = SHARDS_THRESHOLD, batch_size: int = 1,
                   curve_points: int = 64, progress: bool | None = None) -> TraceLocality:
    """Stack-distance histograms of every table and of the shared stream (see the module docstring).

    ``dim`` is one ``D`` for all tables or one per table; when they differ the shared cache is also measured
    exactly in bytes and lines (see :class:`TraceLocality`).
    """
    from analysis.footprint import dims_for
    from tracegen._util import progress as bar

    dims = dims_for(trace, dim)
    streams = []
    for t in bar(trace.tables, total=trace.n_tables, desc="stack distances", unit="table", enabled=progress):
        streams.append(stream_locality(t.values, t.name, sample_rate, threshold))
    ids, _ = interleave(trace, batch_size)
    # working sets over windows of 1, 10 and 100 batches' lookups (all tables)
    per_batch = max(len(ids) * batch_size // max(trace.n_samples, 1), 1)
    shared = stream_locality(ids, "shared", sample_rate, threshold, curve_points,
                             windows=[per_batch, 10 * per_batch, 100 * per_batch])
    del ids
    out = TraceLocality(streams, shared, dims, dtype)
    if not out.uniform:
        kw = dict(batch_size=batch_size, sample_rate=sample_rate, threshold=threshold)
        out.shared_bytes = shared_sized_locality(trace, dims, dtype, "bytes", **kw)
        out.shared_lines = shared_sized_locality(trace, dims, dtype, "lines", **kw)
    return out


def cache_sizes(max_rows: int, points: int = 48) -> np.ndarray:
    """Log-spaced cache sizes in rows, ``1 .. max_rows`` (distinct integers)."""
    max_rows = max(int(max_rows), 1)
    return np.unique(np.geomspace(1, max_rows, max(int(points), 2)).round().astype(np.int64))


# ---- real against synthetic ---------------------------------------------------------------------------

def sd_cdf_ks(real: StreamLocality, synth: StreamLocality) -> float:
    """Kolmogorov-Smirnov distance of two stack-distance CDFs: ``max over every d >= 0 of |F_a(d) - F_b(d)|``
    (``F`` as :meth:`StreamLocality.sd_cdf`; equal to the largest LRU miss-ratio difference at any cache
    size of one row or more)."""
    m = max(int(real.counts.shape[0]), int(synth.counts.shape[0]), 1)
    d = np.arange(m)
    return float(np.max(np.abs(real.sd_cdf(d) - synth.sd_cdf(d))))


def compare_streams(real: StreamLocality, synth: StreamLocality, sizes=None) -> dict:
    """Error figures of ``synth`` against ``real``: miss-ratio-curve errors over log-spaced cache sizes
    (mean and max absolute, in miss-ratio points, at those sizes only), the stack-distance CDF distance
    (KS: the largest absolute difference at *any* distance, :func:`sd_cdf_ks`) and relative errors of
    distinct rows and cold share."""
    if sizes is None:
        sizes = cache_sizes(max(real.max_distance(), synth.max_distance()) + 1)
    a, b = real.miss_ratio(sizes), synth.miss_ratio(sizes)
    err = np.abs(a - b)
    ra, rb = real.summary(), synth.summary()
    out = {"name": real.name, "mrc_mae": float(err.mean()), "mrc_max_abs_err": float(err.max()),
           "mrc_max_err_at_rows": int(np.asarray(sizes)[int(err.argmax())]),
           "sd_cdf_ks": sd_cdf_ks(real, synth),
           "distinct_rel_err": (synth.distinct - real.distinct) / real.distinct if real.distinct else 0.0,
           "cold_share_real": ra["cold_share"], "cold_share_synthetic": rb["cold_share"]}
    if synth.name != real.name:
        out["name_synthetic"] = synth.name
    return out


def paired_tables(real_names: Sequence[str], synth_names: Sequence[str]) -> list[tuple[int, int]]:
    """Which tables :func:`compare` pairs, as ``(index in real, index in synth)``: by name when both
    traces name the same tables (in any order), else by position when they have as many tables
    (``tracegen report --vs`` says so when names differ), else the tables whose names match."""
    where = {n: k for k, n in enumerate(synth_names)}
    same = len(set(real_names)) == len(real_names) == len(where) and set(real_names) == set(where)
    if not same and len(real_names) == len(synth_names):
        return [(j, j) for j in range(len(real_names))]
    return [(j, where[n]) for j, n in enumerate(real_names) if n in where]


def compare(real: TraceLocality, synth: TraceLocality) -> dict:
    """Per-table and shared error figures (see :func:`compare_streams`), plus the mean over tables.
    Tables are paired by name, or by position when the names differ (:func:`paired_tables`)."""
    pairs = paired_tables([s.name for s in real.tables], [s.name for s in synth.tables])
    rows = [compare_streams(real.tables[j], synth.tables[k]) for j, k in pairs]
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
                          "paired_tables", "sd_cdf_ks", "stream_locality", "trace_locality"]
