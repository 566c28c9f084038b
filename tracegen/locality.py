"""The locality engine: exact LRU stack distances, miss-ratio curves, footprint and popularity.

Vocabulary (pinned here and in ``traces/README.md``):

- **stack distance** of an access: the number of *distinct other* ids accessed since the
  previous access to the same id; ``0`` for an immediate repeat, ``-1`` for a first (cold)
  access. An LRU cache of ``C`` rows hits iff ``0 <= sd < C`` (libCacheSim's ``STACK_DIST``).
- **reuse time**: the number of requests since the previous access to the same id (``-1`` cold),
  so an immediate repeat has reuse time 1.
- **footprint**: distinct ids seen so far (after ``n`` accesses).
- **working set** ``W(t, T)``: distinct ids in a window of ``T`` consecutive accesses.
- **miss-ratio curve (MRC)**: LRU miss ratio as a function of cache size ``C`` in rows,
  ``miss(C) = (cold + #{sd >= C}) / N``; ``miss(0) = 1`` and ``miss(inf)`` is the cold fraction.
- **reuse factor** (Meta's dlrm_datasets "col size"): how many times a row is accessed within one
  batch.

Notation: ``N`` accesses, ``U`` distinct ids, ``B`` samples, ``T`` tables.

Everything exact runs in O(N log U) time and O(U) memory beyond the outputs (see
:mod:`tracegen._kernels`). :func:`shards` estimates an MRC from a spatially hashed sample
(Waldspurger et al., FAST 2015). :class:`StreamingProfiler` profiles a trace chunk by chunk with
exactly the result of one pass. :func:`profile` builds the JSON profile of a whole
:class:`~tracegen.trace.Trace` (per table and for one cache shared by all tables).
Public functions validate and cast, then call the compiled kernels in :mod:`tracegen._kernels`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tracegen import _kernels
from tracegen.errors import TracegenError

#: bucket edges of the dlrm_datasets reuse-factor histograms: (0,1], (1,2], (2,4], ..., (16384,32768], 32768+
REUSE_EDGES = [0] + [2**i for i in range(16)]
N_REUSE_BINS = len(REUSE_EDGES)  # 17 buckets; the last is (32768, inf)

#: fractions used for the popularity summary (share of accesses to the top x of ids)
TOP_FRACTIONS = (0.0001, 0.001, 0.01, 0.1, 0.2, 0.5)
SD_PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
#: SHARDS rate used by :func:`profile` with ``exact=False`` and no ``sample_rate``
DEFAULT_SAMPLE_RATE = 0.01
#: fewest distinct ids a SHARDS sample should hold on average: a stream of ``U`` distinct ids is sampled at
#: ``max(R, SHARDS_MIN_IDS / U)``, i.e. exactly when ``U <= SHARDS_MIN_IDS`` (see :func:`shards_rate`). At
#: about 1,000 sampled ids the MAE of fixed-rate SHARDS on 1M-access Zipf(0.8-1.0) streams is under 0.01
#: (median of 10 hash seeds, worst 0.023); at 64-128 ids it is 0.03-0.07 and a small table's sample
#: holds one id or none, which says nothing about its reuse.
SHARDS_MIN_IDS = 1024
#: cache sizes (rows) at which every profile reports the exact LRU hit ratio
HIT_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------
def _as_ids(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim != 1:
        raise TracegenError(f"ids must be a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TracegenError(f"ids must be integers, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise TracegenError("ids must fit in int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def _direct_size(a: np.ndarray) -> int:
    """Size of a direct id -> key map for ``a`` when ids are small non-negative ints, else 0.

    Used when ``max(id) < N/2 + 2**20``, so the map (8 bytes per possible id) costs at most half
    the int64 output plus 8 MiB.
    """
    if a.size == 0:
        return 0
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= a.size // 2 + (1 << 20):
        return 0
    return hi + 1


def dense_keys(ids) -> tuple[np.ndarray, int]:
    """Relabel ids as ``0..U-1`` in order of first appearance; returns ``(keys, U)``."""
    a = _as_ids(ids)
    if a.size == 0:
        return np.empty(0, np.int64), 0
    m = _direct_size(a)
    if m:
        keys, _, u = _kernels._dense_keys_run(a, _kernels._direct_map(m), 0, True)
    else:
        keys, u = _kernels._dense_keys(a)
    return keys, int(u)


# ---------------------------------------------------------------------------------------------
# the stack-distance engine (shared by stack_distances, profile and StreamingProfiler)
# ---------------------------------------------------------------------------------------------
class _Engine:
    """Exact stack-distance state carried across chunks: O(U) memory (plus O(max id) with a direct map)."""

    def __init__(self, direct_size: int = 0, key_hint: int = 1024, auto: bool = False):
        key_cap = 1024
        while key_cap < key_hint:
            key_cap *= 2
        tree = 2 * key_cap
        self.direct = direct_size > 0
        self.auto = auto  # pick a direct id map per chunk while ids stay small and non-negative
        self.idtab = _kernels._direct_map(direct_size) if self.direct else _kernels._new_table(2 * key_cap)
        self.tab = _kernels._new_state_direct(key_cap)
        self.st, self.first, self.hist, self.bits, self.tree = _kernels._new_engine(key_cap, tree, self.tab)

    def run(self, a: np.ndarray, write_out: bool) -> np.ndarray:
        out = np.empty(a.size if write_out else 0, np.int64)
        if a.size:
            if self.direct or self.auto:
                lo, hi = int(a.min()), int(a.max())
                limit = max(1 << 20, 4 * (self.n_keys + a.size))  # direct map: O(U + chunk) memory
                if lo >= 0 and hi < max(limit, self.idtab.size if self.direct else 0):
                    if not self.direct or hi >= self.idtab.size:
                        size = 1 << 16
                        while size <= hi:
                            size *= 2
                        grown = _kernels._direct_map(min(size, max(limit, hi + 1)))
                        if self.direct:
                            grown[: self.idtab.size] = self.idtab
                        self.idtab, self.direct = grown, True
                elif self.direct:
                    # a chunk left the direct map's range: move to a hash table, same keys
                    self.idtab = _kernels._table_from_direct(self.idtab)
                    self.direct = False
                self.auto = self.direct
            (self.idtab, self.tab, self.first, self.hist, self.bits, self.tree) = _kernels._engine_run_ids(
                a, out, write_out, self.direct, self.idtab, self.st, self.tab, self.first, self.hist,
                self.bits, self.tree)
        return out

    @property
    def n_keys(self) -> int:
        return int(self.st[_kernels.ST_U])

    @property
    def n_accesses(self) -> int:
        return int(self.st[_kernels.ST_N])

    def histogram(self) -> tuple[np.ndarray, int]:
        """``(counts, cold)`` of the stack distances so far (trailing zeros trimmed)."""
        u = self.n_keys
        counts = self.hist[:u].copy()
        nz = np.flatnonzero(counts)
        counts = counts[: nz[-1] + 1] if nz.size else counts[:0]
        return counts, u

    def nbytes(self) -> int:
        """Bytes held by the state (id table, per-key state, first positions, histogram, tree)."""
        return sum(
            int(a.nbytes)
            for a in (self.st, self.idtab, self.tab, self.first, self.hist, self.bits, self.tree)
        )

    def key_counts(self) -> np.ndarray:
        """Accesses per distinct id, in order of first appearance."""
        return self.tab[1: 2 * self.n_keys: 2].copy()

    def first_positions(self) -> np.ndarray:
        """Global position of each id's first access, increasing."""
        return self.first[: self.n_keys].copy()


def stack_distances(ids) -> np.ndarray:
    """Exact LRU stack distance of every access (``-1`` cold), int64, in O(N log U) time, O(U) memory."""
    a = _as_ids(ids)
    return _Engine(_direct_size(a), key_hint=min(a.size, 1 << 16)).run(a, True)


def stack_distance_histogram(ids) -> tuple[np.ndarray, int]:
    """``(counts, cold)`` of the exact stack distances without the per-access array (O(U) memory).

    Equal to ``sd_histogram(stack_distances(ids))``, faster; feed it to :func:`miss_ratio_curve`.
    """
    a = _as_ids(ids)
    eng = _Engine(_direct_size(a), key_hint=min(a.size, 1 << 16))
    eng.run(a, False)
    return eng.histogram()


def reuse_times(ids) -> np.ndarray:
    """Requests since the previous access to the same id (``-1`` for a first access), int64."""
    keys, u = dense_keys(ids)
    return _kernels._reuse_times(keys, u) if keys.size else np.empty(0, np.int64)


def sd_histogram(sd: np.ndarray) -> tuple[np.ndarray, int]:
    """``(counts, cold)``: ``counts[d]`` accesses at stack distance ``d``; ``cold`` first accesses."""
    sd = np.ascontiguousarray(sd, dtype=np.int64).ravel()
    if sd.size == 0:
        return np.zeros(0, np.int64), 0
    counts, cold = _kernels._sd_histogram(sd, max(int(sd.max()) + 1, 0))
    return counts, int(cold)


def miss_ratio_curve(counts: np.ndarray, cold: int, sizes=None) -> tuple[np.ndarray, np.ndarray]:
    """LRU miss ratio at each cache size (rows) from a stack-distance histogram.

    ``miss(C) = (cold + #{sd >= C}) / N``. ``sizes`` defaults to ``0..max_sd + 1`` (the full
    curve). ``counts`` may be fractional (sampled histograms); an empty trace has miss ratio 0.
    """
    counts = np.asarray(counts)
    counts = counts.astype(np.float64 if counts.dtype.kind == "f" else np.int64)
    n = counts.sum() + cold
    if sizes is None:
        sizes = np.arange(counts.shape[0] + 1, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if n <= 0:
        return sizes, np.zeros(sizes.shape, dtype=np.float64)
    hits_below = np.concatenate([[0], np.cumsum(counts)])  # hits_below[C] = #{0 <= sd < C}
    h = hits_below[np.clip(sizes, 0, counts.shape[0])]
    return sizes, np.clip((n - h) / n, 0.0, 1.0)


def log_sizes(max_size: int, points: int = 64) -> np.ndarray:
    """``0`` then about ``points`` log-spaced integer sizes from 1 to ``max_size`` (inclusive)."""
    max_size = int(max_size)
    if max_size <= 0:
        return np.zeros(1, np.int64)
    g = np.unique(np.round(np.logspace(0, math.log10(max_size), points)).astype(np.int64))
    return np.concatenate([[0], g[g <= max_size], [] if g[-1] == max_size else [max_size]]).astype(np.int64)


def sd_percentiles(counts: np.ndarray, cold: int, q: Sequence[float] = SD_PERCENTILES) -> dict:
    """Percentiles of the *warm* stack distances from a histogram (inverted CDF: the smallest distance whose
    CDF reaches q; numpy's method="inverted_cdf"); None if none."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return {f"p{p:g}": None for p in q}
    cdf = np.cumsum(counts) / total
    return {f"p{p:g}": int(np.searchsorted(cdf, p / 100.0 - 1e-12)) for p in q}


# ---------------------------------------------------------------------------------------------
# footprint and popularity
# ---------------------------------------------------------------------------------------------
def _first_positions(ids) -> tuple[np.ndarray, int]:
    keys, u = dense_keys(ids)
    if u == 0:
        return np.empty(0, np.int64), 0
    first = np.full(u, -1, np.int64)
    # positions of first appearance: keys increase by one exactly at first appearances
    new = np.empty(keys.size, bool)
    new[0] = True
    np.greater(keys[1:], np.maximum.accumulate(keys)[:-1], out=new[1:])
    first[:] = np.flatnonzero(new)
    return first, keys.size


def _log_points(n: int, points: int = 200) -> np.ndarray:
    if n <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.round(np.logspace(0, math.log10(n), points)).astype(np.int64))


def footprint_curve(ids, points=None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ids after each of ``points`` accesses; returns ``(n_accesses, distinct)``.

    ``points`` defaults to about 200 log-spaced counts from 1 to ``N`` (both included).
    """
    first, n = _first_positions(ids)
    return _footprint_at(first, n, points)


def _footprint_at(first: np.ndarray, n: int, points=None) -> tuple[np.ndarray, np.ndarray]:
    pts = _log_points(n) if points is None else np.asarray(points, dtype=np.int64)
    if pts.size and (pts.min() < 0):
        raise TracegenError("footprint points must be non-negative access counts")
    # distinct after p accesses = #{first position < p}
    return pts, np.searchsorted(first, np.minimum(pts, n), side="left").astype(np.int64)


def working_set(ids, window: int) -> np.ndarray:
    """Distinct ids in each consecutive, non-overlapping window of ``window`` accesses.

    Returns one count per *full* window (``N // window`` of them; a trailing partial window is
    dropped). For the exact average over all sliding windows see :func:`average_working_set`.
    """
    window = int(window)
    if window < 1:
        raise TracegenError(f"window must be >= 1, got {window}")
    keys, u = dense_keys(ids)
    if keys.size < window:
        return np.zeros(0, np.int64)
    starts = np.arange(0, (keys.size // window) * window + 1, window, dtype=np.int64)
    return _kernels._distinct_per_group(keys, starts, max(u, 1))


def average_working_set(ids, windows) -> np.ndarray:
    """Exact mean number of distinct ids over all ``N - T + 1`` sliding windows of each length ``T``.

    Denning's average working-set size, computed for all window lengths at once in O(N) from the
    gaps between accesses to each id: a window misses an id iff it fits inside one of its gaps.
    Windows longer than ``N`` give ``nan``.
    """
    keys, u = dense_keys(ids)
    n = keys.size
    w = np.asarray(windows, dtype=np.int64)
    if w.size and w.min() < 1:
        raise TracegenError("window lengths must be >= 1")
    if n == 0:
        return np.full(w.shape, np.nan)
    gh = _kernels._gap_histogram(keys, u).astype(np.float64)  # gh[g] gaps of length g
    g = np.arange(n + 1, dtype=np.float64)
    # misses(T) = sum_g gh[g] * max(0, g - T + 1) = S1(T) - (T - 1) * S0(T), suffix sums over g >= T
    s0 = np.cumsum(gh[::-1])[::-1]
    s1 = np.cumsum((gh * g)[::-1])[::-1]
    out = np.full(w.shape, np.nan)
    ok = w <= n
    t = w[ok]
    misses = s1[t] - (t - 1) * s0[t]
    out[ok] = u - misses / (n - t + 1)
    return out


def access_counts(ids) -> np.ndarray:
    """Accesses per distinct id, sorted descending (the rank-frequency curve), int64."""
    keys, u = dense_keys(ids)
    if u == 0:
        return np.zeros(0, np.int64)
    return np.sort(np.bincount(keys, minlength=u))[::-1].astype(np.int64)


def top_share(counts, fractions=TOP_FRACTIONS) -> np.ndarray:
    """Share of accesses that go to the most popular ``ceil(x * U)`` ids, for each fraction ``x``.

    ``counts`` are accesses per id (any order; see :func:`access_counts`).
    """
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    f = np.asarray(fractions, dtype=np.float64)
    if np.any((f < 0) | (f > 1)):
        raise TracegenError("fractions must lie in [0, 1]")
    total = c.sum()
    if total == 0:
        return np.zeros(f.shape)
    cum = np.concatenate([[0], np.cumsum(c)])
    k = np.minimum(np.ceil(f * c.size - 1e-9).astype(np.int64), c.size)
    return cum[k] / total


# ---------------------------------------------------------------------------------------------
# Meta dlrm_datasets reuse-factor histograms
# ---------------------------------------------------------------------------------------------
def _reuse_bins(c: np.ndarray) -> np.ndarray:
    """Bucket of an in-batch access count: (0,1] -> 0, (1,2] -> 1, (2,4] -> 2, ..., > 32768 -> 16."""
    b = np.frexp((c - 1).astype(np.float64))[1]  # bit length of c - 1 = ceil(log2 c)
    return np.minimum(b, N_REUSE_BINS - 1).astype(np.int64)


def reuse_factor_histogram(table_or_ids, batch_size: int) -> dict:
    """Meta's dlrm_datasets locality statistics for a table, a trace or a flat id stream.

    Per batch, every distinct row's *reuse factor* (accesses to it within the batch) is put in the
    buckets (0,1], (1,2], (2,4], ..., (16384,32768], 32768+. ``col_size_hist[j]`` is the fraction of
    the batch's distinct rows in bucket ``j``; ``index_share[j]`` the fraction of its accesses that
    fall on those rows; both are averaged over batches. ``avg_indices`` and ``avg_unique`` are the
    mean accesses and distinct rows per batch, ``avg_col_size`` their ratio (as in
    ``dlrm_datasets_stats/*.txt``; compare with :func:`read_locality_stats`).

    Batches: ``batch_size`` samples of a :class:`~tracegen.trace.Table`; of a
    :class:`~tracegen.trace.Trace` (all tables together, rows of different tables distinct, as Meta's
    per-file statistics); or ``batch_size`` accesses of a flat id array. Only full batches count; a
    trace shorter than one batch is one (partial) batch.
    """
    from tracegen.trace import Table, Trace

    batch_size = int(batch_size)
    if batch_size < 1:
        raise TracegenError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(table_or_ids, Trace):
        ids, _ = interleave(table_or_ids)
        offs = _sample_offsets(table_or_ids)
    elif isinstance(table_or_ids, Table):
        ids = _as_ids(table_or_ids.values)
        offs = np.asarray(table_or_ids.offsets, dtype=np.int64)
    else:
        ids = _as_ids(table_or_ids)
        offs = np.arange(ids.size + 1, dtype=np.int64)
    n_samples = offs.size - 1
    n_b = max(1, n_samples // batch_size) if n_samples else 0
    bounds = offs[np.minimum(np.arange(n_b + 1) * batch_size, n_samples)]
    keys, u = dense_keys(ids[: bounds[-1]] if n_b else ids[:0])
    if n_b == 0 or keys.size == 0:
        z = [0.0] * N_REUSE_BINS
        return {"batches": n_b, "batch_size": batch_size, "avg_indices": 0.0, "avg_unique": 0.0,
                "avg_col_size": 0.0, "edges": REUSE_EDGES, "col_size_hist": z, "index_share": list(z)}
    counts, batch_of = _kernels._batch_counts(keys, u, np.ascontiguousarray(bounds))
    bins = _reuse_bins(counts)
    idx = batch_of * N_REUSE_BINS + bins
    rows = np.bincount(idx, minlength=n_b * N_REUSE_BINS).reshape(n_b, N_REUSE_BINS).astype(np.float64)
    acc = np.bincount(idx, weights=counts, minlength=n_b * N_REUSE_BINS).reshape(n_b, N_REUSE_BINS)
    n_rows = rows.sum(1)
    n_acc = acc.sum(1)
    live = n_acc > 0
    col_hist = (rows[live] / n_rows[live, None]).mean(0) if live.any() else np.zeros(N_REUSE_BINS)
    share = (acc[live] / n_acc[live, None]).mean(0) if live.any() else np.zeros(N_REUSE_BINS)
    avg_i, avg_u = float(n_acc.mean()), float(n_rows.mean())
    return {"batches": int(n_b), "batch_size": batch_size, "avg_indices": avg_i, "avg_unique": avg_u,
            "avg_col_size": avg_i / avg_u if avg_u else 0.0, "edges": list(REUSE_EDGES),
            "col_size_hist": col_hist.tolist(), "index_share": share.tolist()}


_BIN_LINE = re.compile(r"^\((\d+)(?:, (\d+)\]|\+):\s*([0-9.]+)\s*$")


def read_locality_stats(path: str | os.PathLike) -> dict:
    """Parse a dlrm_datasets ``*_locality_stats.txt`` file into ``{dataset: stats}``.

    Each block starts with the dataset file name (e.g. ``fbgemm_t856_bs65536.pt``, one batch of all
    its tables) and becomes a dict with the keys of :func:`reuse_factor_histogram`: ``batches``,
    ``batch_size``, ``avg_indices``, ``avg_unique``, ``avg_col_size``, ``edges``,
    ``col_size_hist`` and ``index_share`` (17 fractions each, as printed with 3 decimals).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f]
    except OSError as e:
        raise TracegenError(f"cannot read locality stats: {e.strerror}", path) from None
    out: dict = {}
    cur = None
    section = None
    for no, raw in enumerate(lines, 1):
        ln = raw.strip()
        if not ln:
            continue
        try:
            if ln.startswith("Locality stats after processing"):
                m = re.match(r"Locality stats after processing (\d+) batch(?:es)? of size (\d+)", ln)
                cur["batches"], cur["batch_size"] = int(m.group(1)), int(m.group(2))
            elif ln.startswith("Avg # of indices:"):
                cur["avg_indices"] = float(ln.split(":")[1])
            elif ln.startswith("Avg # of unique cols:"):
                cur["avg_unique"] = float(ln.split(":")[1])
            elif ln.startswith("Avg col size:"):
                cur["avg_col_size"] = float(ln.split(":")[1])
            elif ln.startswith("Histogram of col sizes"):
                section = "col_size_hist"
            elif ln.startswith("Ratio of index distribution"):
                section = "index_share"
            elif ln.startswith("(") and section:
                m = _BIN_LINE.match(ln)
                cur[section].append(float(m.group(3)))
            elif ln.startswith("[") or ln.startswith("['"):
                if ln.startswith("[0"):
                    cur["edges"] = [int(x) for x in ln.strip("[]").split(",")]
                section = None
            else:
                cur = {"batches": None, "batch_size": None, "avg_indices": None, "avg_unique": None,
                       "avg_col_size": None, "edges": list(REUSE_EDGES), "col_size_hist": [],
                       "index_share": []}
                out[ln] = cur
                section = None
        except (AttributeError, TypeError, ValueError, IndexError):
            raise TracegenError(f"line {no}: cannot parse {ln[:60]!r}", path) from None
    for name, s in out.items():
        if len(s["col_size_hist"]) != N_REUSE_BINS or len(s["index_share"]) != N_REUSE_BINS:
            raise TracegenError(f"block {name!r}: expected {N_REUSE_BINS} buckets per histogram", path)
    if not out:
        raise TracegenError("no locality statistics found", path)
    return out


# ---------------------------------------------------------------------------------------------
# a cache shared by all tables
# ---------------------------------------------------------------------------------------------
def _sample_offsets(trace) -> np.ndarray:
    """Offsets (B + 1) of each sample's accesses in the interleaved stream."""
    lengths = np.zeros(trace.n_samples, np.int64)
    for t in trace.tables:
        lengths += np.diff(np.asarray(t.offsets, dtype=np.int64))
    offs = np.zeros(trace.n_samples + 1, np.int64)
    np.cumsum(lengths, out=offs[1:])
    return offs


def table_offsets(trace) -> np.ndarray:
    """Id offset of each table in the shared id space: cumulative ``max(cardinality, max id + 1)``."""
    return _offsets(_id_space_sizes(trace))


def _id_space_sizes(trace) -> list[int]:
    sizes = []
    for t in trace.tables:
        v = np.asarray(t.values)
        sizes.append(max(int(t.cardinality), int(v.max()) + 1 if v.size else 0))
    return sizes


def _offsets(sizes: list[int]) -> np.ndarray:
    total = sum(sizes)  # Python ints: raw 64-bit keys must not wrap around int64
    if total >= 1 << 63:
        raise TracegenError(f"the tables' id spaces add up to {total} rows, more than int64 holds")
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, np.int64))]).astype(np.int64)


def interleave(trace, table_index: bool = True, dense: bool = False):
    """One id stream for a cache shared by all tables, in DLRM issue order.

    Accesses are ordered sample by sample, within a sample table by table, within a bag in bag
    order; table ``t``'s ids are offset by :func:`table_offsets` so tables never share a row.
    Returns ``(ids, table_index)`` (int64, int32), or only ``ids`` when ``table_index`` is False
    (4 bytes per id less: :func:`profile` needs only each table's access count). ``dense``: number
    each table's ids ``0..U-1`` by first appearance before the offsets (the same stack distances, and ids
    below the access count, which the engine maps directly instead of hashing).
    """
    T = trace.n_tables
    if T == 0:
        return (np.empty(0, np.int64), np.empty(0, np.int32)) if table_index else np.empty(0, np.int64)
    # raw 64-bit keys are numbered apart too (no distance changes)
    relabel = dense or sum(_id_space_sizes(trace)) >= 1 << 62
    base = None if relabel else table_offsets(trace)
    at = 0

    def shifted(j):  # table j's ids in the shared id space (one table's relabelled copy at a time)
        nonlocal at
        v = np.asarray(trace.tables[j].values, dtype=np.int64)
        if not relabel:
            return v + base[j]
        k, u = dense_keys(v)
        k += at
        at += u
        return k

    if trace.is_one_hot:
        ids = np.empty((trace.n_samples, T), np.int64)
        for j in range(T):
            ids[:, j] = shifted(j)
        if not table_index:
            return ids.ravel()
        tix = np.broadcast_to(np.arange(T, dtype=np.int32), ids.shape)
        return ids.ravel(), np.ascontiguousarray(tix).ravel()
    lens = np.stack([np.diff(np.asarray(t.offsets, dtype=np.int64)) for t in trace.tables], axis=1)  # (B, T)
    flat = lens.ravel()
    start = np.zeros(flat.size + 1, np.int64)
    np.cumsum(flat, out=start[1:])
    n = int(start[-1])
    ids = np.empty(n, np.int64)
    tix = np.empty(n, np.int32) if table_index else None
    for j, t in enumerate(trace.tables):
        v = shifted(j)
        lj = lens[:, j]
        dst0 = start[:-1].reshape(lens.shape)[:, j]  # (B,) where sample b's bag of table j starts
        src0 = np.asarray(t.offsets, dtype=np.int64)[:-1]
        pos = np.repeat(dst0 - src0, lj) + np.arange(v.size, dtype=np.int64)
        ids[pos] = v
        if tix is not None:
            tix[pos] = j
    return (ids, tix) if table_index else ids


# ---------------------------------------------------------------------------------------------
# SHARDS
# ---------------------------------------------------------------------------------------------
class ShardsResult(NamedTuple):
    """An estimated LRU miss-ratio curve and the sampling rate it was computed at."""

    sizes: np.ndarray
    miss_ratios: np.ndarray
    rate: float


def _spread(d: np.ndarray, r_t, w) -> np.ndarray:
    """Histogram over integer distances of sampled distances ``d`` taken at rate ``r_t``.

    A sampled distance ``d`` stands for a true distance in ``[d / r, (d + 1) / r)``; its weight is
    spread evenly over the integers ``floor(d / r) .. floor((d + 1) / r) - 1`` (one bin at rate 1,
    so the exact histogram is recovered), which keeps the estimated MRC smooth below ``1 / r``.
    """
    lo = np.floor(d / r_t).astype(np.int64)
    hi = np.maximum(np.floor((d + 1) / r_t).astype(np.int64), lo + 1)
    if lo.size == 0:
        return np.zeros(0)
    m = int(hi.max())
    dens = np.broadcast_to(np.asarray(w, np.float64), lo.shape) / (hi - lo)
    diff = np.bincount(lo, weights=dens, minlength=m + 1) - np.bincount(hi, weights=dens, minlength=m + 1)
    return np.cumsum(diff)[:m]  # may dip below 0 where SHARDS-adj removes excess samples


def shards_rate(rate: float, distinct: int, min_ids: int = SHARDS_MIN_IDS) -> float:
    """The SHARDS rate to use for a stream of ``distinct`` ids when ``rate`` is asked for.

    ``min(1, max(rate, min_ids / distinct))``: a spatial sample should hold about ``min_ids`` distinct ids
    or more (fixed-size SHARDS' rule, Waldspurger et al. 2015), so a stream with at most ``min_ids`` distinct
    ids gets rate 1, i.e. exact stack distances (cheap: O(N log U) with small ``U``).
    """
    rate = float(rate)
    if not 0 < rate <= 1:
        raise TracegenError(f"sample rate must be in (0, 1], got {rate}")
    distinct = int(distinct)
    if distinct <= 0:
        return 1.0
    return min(1.0, max(rate, int(min_ids) / distinct))


def _exact_facts(counts: np.ndarray, n: int, distinct: int) -> np.ndarray | None:
    """Warm counts scaled so that they add up to the exact ``n - distinct`` warm accesses; None if they cannot."""
    total = float(counts.sum())
    warm = n - distinct
    if warm == 0:
        return np.zeros(0)
    return counts * (warm / total) if total > 0 else None


def shards_histogram(ids, *, rate: float | None = None, size: int | None = None, seed: int = 0,
                     adjust: bool = True, distinct: int | None = None) -> tuple[np.ndarray, float, float]:
    """The SHARDS estimate of the stack-distance histogram: ``(counts, cold, rate)`` (float counts).

    Counts are over true-scale distances, normalised to ``N`` accesses, so
    :func:`miss_ratio_curve` and :func:`sd_percentiles` apply unchanged. A sampled distance ``d``
    at rate ``r`` is spread evenly over distances ``[d / r, (d + 1) / r)``. Fixed rate: ids whose
    62-bit hash (salted by ``seed``) is below ``rate * 2**62`` are sampled; with ``adjust`` the
    difference between the expected (``N * rate``) and actual sample counts is added to the first
    sampled bucket (SHARDS-adj) -- a shortfall only when the sample holds some reuse to stand for,
    so a sample without warm accesses (an empty one included) never gains hits. Fixed size
    (``size``): at most ``size`` ids are tracked, the rate drops as the ids with the largest hashes
    are evicted, and each sampled access weighs ``final_rate / rate_then`` (SHARDS_max's rescaling;
    ``adjust`` as above at the final rate); the final rate is returned.

    ``distinct``, the exact number of distinct ids when the caller knows it, pins the facts the sample
    must not contradict: ``cold = distinct`` and the warm counts add up to ``N - distinct`` (so a
    cold-only stream has no hits and ``miss(inf)`` is exact). If the sample then holds no reuse while
    the stream has some, the exact histogram is returned instead, with rate 1.
    """
    a = _as_ids(ids)
    n = a.size
    if (rate is None) == (size is None):
        raise TracegenError("give exactly one of rate (fixed-rate SHARDS) or size (fixed-size SHARDS)")
    if distinct is not None and not 0 <= int(distinct) <= n:
        raise TracegenError(f"distinct must be in [0, {n}] for {n} accesses, got {distinct}")
    full = float(1 << 62)
    seed = int(seed) & ((1 << 63) - 1)
    if rate is not None:
        rate = float(rate)
        if not 0 < rate <= 1:
            raise TracegenError(f"sample rate must be in (0, 1], got {rate}")
        thr = min(int(rate * full), 1 << 62)
        d, m = _kernels._shards_fixed_rate(a, np.int64(thr), seed)
        r_t, r_out = rate, rate
        warm = d[d >= 0].astype(np.float64)
        w = np.ones(warm.size)
        cold = float(m - warm.size)
        expected = n * rate
    else:
        size = int(size)
        if size < 1:
            raise TracegenError(f"SHARDS sample size must be >= 1, got {size}")
        d, thrs, thr = _kernels._shards_fixed_size(a, size, seed)
        r_out = float(thr) / full if d.size else 1.0
        r_all = thrs.astype(np.float64) / full
        w_all = r_out / r_all
        ok = d >= 0
        warm, r_t, w = d[ok].astype(np.float64), r_all[ok], w_all[ok]
        cold = float(w_all[~ok].sum())
        expected = n * r_out  # SHARDS-adj at the final rate: the weighted sample should count N * final_rate
    counts = _spread(warm, r_t, w)
    if adjust and n:
        excess = expected - (float(w.sum()) + cold)
        if excess < 0 or warm.size:  # a shortfall stands for reuse only if the sample shows some
            counts = _spread(np.concatenate([[0.0], warm]), np.concatenate([[r_out], np.broadcast_to(r_t, warm.shape)]),
                             np.concatenate([[excess], w]))
    if distinct is not None:
        distinct = int(distinct)
        fixed = _exact_facts(counts, n, distinct)
        if fixed is None and adjust:  # SHARDS-adj removed all the sample's reuse: keep its shape unadjusted
            fixed = _exact_facts(_spread(warm, r_t, w), n, distinct)
        if fixed is None:  # the sample holds no reuse but the stream does: exact is the only honest answer
            counts, cold_i = stack_distance_histogram(a)
            return counts.astype(np.float64), float(cold_i), 1.0
        return fixed, float(distinct), r_out
    tot = counts.sum() + cold
    scale = n / tot if tot > 0 else 0.0
    if tot <= 0 and n:  # nothing sampled: no evidence of any reuse
        return np.zeros(0), float(n), r_out
    return counts * scale, cold * scale, r_out


def shards(ids, *, rate: float | None = None, size: int | None = None, seed: int = 0,
           sizes=None, adjust: bool = True) -> ShardsResult:
    """SHARDS estimate of the LRU miss-ratio curve (Waldspurger et al., FAST 2015).

    Give ``rate`` (fixed-rate spatial sampling: ids whose hash falls below ``rate``) or ``size``
    (fixed-size: track at most ``size`` ids, lowering the rate as needed). Returns
    ``ShardsResult(sizes, miss_ratios, rate)``; ``sizes`` default to the full curve ``0..max+1``.
    The ``seed`` salts the id hash.
    """
    counts, cold, r = shards_histogram(ids, rate=rate, size=size, seed=seed, adjust=adjust)
    s, mr = miss_ratio_curve(counts, cold, sizes)
    return ShardsResult(s, mr, float(r))


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------
class StreamingProfiler:
    """Exact profile of one id stream fed in chunks; memory O(distinct ids).

    ``update(ids_chunk)`` any number of times, then ``result()``: the same dict as one pass over
    the concatenated chunks (state, including the stack-distance structure, is carried across
    chunks). ``result()`` may be called at any time and does not end the stream.
    """

    def __init__(self, *, row_bytes: int | None = None, sizes=None, footprint_points=None):
        self.row_bytes = row_bytes
        self.sizes = sizes
        self.footprint_points = footprint_points
        self._eng = _Engine(0, auto=True)

    def update(self, ids_chunk) -> StreamingProfiler:
        self._eng.run(_as_ids(ids_chunk), False)
        return self

    def stack_distance_histogram(self) -> tuple[np.ndarray, int]:
        """``(counts, cold)`` so far."""
        return self._eng.histogram()

    def state_bytes(self) -> int:
        """Memory held between chunks (O(distinct ids))."""
        return self._eng.nbytes()

    def result(self) -> dict:
        counts, cold = self._eng.histogram()
        return _summary(self._eng.n_accesses, cold, counts, cold, self._eng.key_counts(),
                        self._eng.first_positions(), self.row_bytes, self.sizes, self.footprint_points,
                        method="exact", rate=1.0)


def _summary(n: int, distinct: int, counts, cold, key_counts, first, row_bytes, sizes, fp_points,
             method: str, rate: float) -> dict:
    """JSON-ready summary of one stream (per table or shared)."""
    counts = np.asarray(counts)
    if sizes is None:
        sizes = log_sizes(max(distinct, 1), 48)
    sizes = np.asarray(sizes, dtype=np.int64)
    _, mr = miss_ratio_curve(counts, cold, sizes)
    _, hit_mr = miss_ratio_curve(counts, cold, HIT_SIZES)
    pts, fp = _footprint_at(first, n, fp_points)
    kc = np.sort(np.asarray(key_counts, dtype=np.int64))[::-1]
    ranks = np.unique(np.round(np.logspace(0, math.log10(max(kc.size, 1)), 64)).astype(np.int64))
    ranks = ranks[ranks <= kc.size]
    return {
        "accesses": int(n),
        "distinct": int(distinct),
        "cold_fraction": float(distinct / n) if n else 0.0,
        "method": method,
        "sample_rate": float(rate),
        "stack_distance": {
            **sd_percentiles(counts, cold),
            "mean": (float(np.dot(np.arange(counts.size), counts) / counts.sum()) if counts.sum() > 0
                     else None),
        },
        "lru_hit_ratio": {str(c): (float(1.0 - m) if n else 0.0) for c, m in zip(HIT_SIZES, hit_mr)},
        "mrc": {
            "sizes_rows": sizes.tolist(),
            "sizes_bytes": (sizes * int(row_bytes)).tolist() if row_bytes else None,
            "miss_ratio": [float(x) for x in mr],
        },
        "footprint": {"accesses": pts.tolist(), "distinct": fp.tolist()},
        "popularity": {
            "top_fractions": list(TOP_FRACTIONS),
            "top_share": ([float(x) for x in top_share(kc, TOP_FRACTIONS)] if kc.size
                          else [0.0] * len(TOP_FRACTIONS)),
            "rank": ranks.tolist(),
            "count_at_rank": kc[ranks - 1].tolist() if kc.size else [],
        },
    }


def profile_ids(ids, *, sample_rate: float | None = None, exact: bool = True, sizes=None,
                row_bytes: int | None = None, seed: int = 0) -> dict:
    """Profile of one id stream (see :func:`profile`)."""
    a = _as_ids(ids)
    if sample_rate is None and not exact:
        sample_rate = DEFAULT_SAMPLE_RATE
    if sample_rate is not None:
        # footprint, popularity and the cold count stay exact (cheap); stack distances come from the sample
        # unless the stream has too few distinct ids for one (shards_rate), when they are exact as well
        keys, u = dense_keys(a)
        first, _ = _first_positions(a) if a.size else (np.empty(0, np.int64), 0)
        kc = np.bincount(keys, minlength=u) if u else np.zeros(0, np.int64)
        rate = shards_rate(sample_rate, u)
        if rate < 1:
            counts, cold, rate = shards_histogram(keys, rate=rate, seed=seed, distinct=u)
        if rate >= 1:
            eng = _Engine(u, key_hint=min(keys.size, 1 << 16))
            eng.run(keys, False)
            counts, cold = eng.histogram()
        out = _summary(a.size, u, counts, cold, kc, first, row_bytes, sizes, None,
                       "exact" if rate >= 1 else "shards", 1.0 if rate >= 1 else rate)
        out["requested_sample_rate"] = float(sample_rate)
        return out
    eng = _Engine(_direct_size(a), key_hint=min(a.size, 1 << 16))
    eng.run(a, False)
    counts, cold = eng.histogram()
    return _summary(eng.n_accesses, cold, counts, cold, eng.key_counts(), eng.first_positions(), row_bytes,
                    sizes, None, "exact", 1.0)


def profile(trace, *, sample_rate: float | None = None, exact: bool = True, sizes=None,
            row_bytes: int | Sequence[int] | None = None, shared: bool = True, seed: int = 0,
            progress: bool | None = False) -> dict:
    """The locality profile of a :class:`~tracegen.trace.Trace` (or a flat id array), JSON-serialisable.

    ``{"version": 1, "tables": {name: summary}, "shared": summary or None}``; each summary has
    ``accesses``, ``distinct``, ``cold_fraction``, ``stack_distance`` percentiles (warm accesses),
    the LRU ``mrc`` at log-spaced sizes in rows (and bytes when ``row_bytes`` is given: one size
    for all tables or one per table), the ``footprint`` curve and ``popularity`` (share of
    accesses to the top ids, rank-frequency samples). ``shared`` is one cache for all tables with
    the accesses interleaved as DLRM issues them (:func:`interleave`). ``sample_rate`` switches the
    stack distances to SHARDS at that rate (the rest stays exact); ``exact=False`` without a rate
    uses :data:`DEFAULT_SAMPLE_RATE`; the default is the exact profile. A stream too small for the
    rate (fewer than :data:`SHARDS_MIN_IDS` ids expected in the sample) is sampled at a higher rate
    or, with at most :data:`SHARDS_MIN_IDS` distinct ids, profiled exactly (:func:`shards_rate`);
    each summary says its ``method`` (``"exact"`` or ``"shards"``), the ``sample_rate`` used (1.0
    when exact) and the ``requested_sample_rate``. Sampled summaries keep ``cold_fraction`` and the
    hit ratio of an unbounded cache exact. ``progress``: a bar over the accesses profiled (stderr; None:
    only on a terminal).
    """
    from tracegen._util import progress as _progress
    from tracegen.trace import Trace

    if sample_rate is not None and not 0 < float(sample_rate) <= 1:
        raise TracegenError(f"sample rate must be in (0, 1], got {sample_rate}")
    if not isinstance(trace, Trace):
        trace = Trace.single(_as_ids(trace))
    T = trace.n_tables
    if row_bytes is None or isinstance(row_bytes, (int, np.integer)):
        rb = [row_bytes] * T
    else:
        rb = list(row_bytes)
        if len(rb) != T:
            raise TracegenError(f"row_bytes has {len(rb)} entries for {T} tables")
    kw = dict(sample_rate=sample_rate, exact=exact, sizes=sizes, seed=seed)
    both = shared and T > 1
    bar = _progress(total=trace.n_accesses * (2 if both else 1), desc="profile", unit="access", unit_scale=True,
                    enabled=progress)
    tables = {}
    for j, t in enumerate(trace.tables):
        tables[t.name] = profile_ids(t.values, row_bytes=rb[j], **kw)
        bar.update(t.n_accesses)
    out = {"version": 1, "tables": tables, "shared": None}
    if both:
        from tracegen._util import trim_memory

        trim_memory()  # (the per-table engines' freed state, before the shared stream is built)
        ids = interleave(trace, table_index=False, dense=True)
        s = profile_ids(ids, **kw)
        del ids
        bar.update(trace.n_accesses)
        if all(b is not None for b in rb) and T:
            # bytes for a shared cache of mixed row sizes: rows times the access-weighted mean row size
            w = np.asarray([t.n_accesses for t in trace.tables], np.float64)
            mean_b = float(np.dot(w, rb) / w.sum()) if w.sum() else 0.0
            s["mrc"]["sizes_bytes"] = [int(round(c * mean_b)) for c in s["mrc"]["sizes_rows"]]
            s["mrc"]["mean_row_bytes"] = mean_b
        out["shared"] = s
    bar.close()
    return out
