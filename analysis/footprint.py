"""Embedding memory footprint: table bytes, rows touched, hot sets, working sets and memory-budget placement.

Bytes per row of ``D`` values (:func:`row_bytes`), stated precisely:

- ``fp32``: ``4 * D`` bytes;
- ``fp16``: ``2 * D`` bytes;
- ``int8``: ``D + 8`` bytes -- ``D`` one-byte codes plus a per-row fp32 scale and fp32 bias (the FBGEMM
  row-wise quantized layout).

A table's size is ``cardinality * row_bytes`` (every row allocated, touched or not).

**Raw keys.** Cache traces (oracle-general, lcs-csv, txt, npy, ...) hold raw 64-bit keys (block addresses,
hashed object ids), read with ``cardinality = max id + 1``: that is an id range, not a number of rows. A
table's ids are taken as raw keys (:func:`is_raw_keys`) when its cardinality is at least
:data:`tracegen.tracemodel.SPARSE_KEYS` (2**40, the rule ``tracegen fit`` uses), or when the cardinality is
only the id range (``max id + 1``) and exceeds :data:`RAW_KEY_RATIO` times the distinct ids (under 1/64 of
the range is ever used: a declared table would not be that empty *and* end exactly on a touched id).
:func:`densify_raw_keys` relabels such tables ``0..U-1`` by first appearance, so the table holds only its
``U`` distinct ids; every footprint, locality and placement figure is invariant under that relabelling
except the table size, which then counts the distinct ids.

Vocabulary: **rows touched** are the distinct rows accessed; the **hot set** for a share ``f`` is the smallest
number of rows that together receive at least ``f`` of the accesses (rows ranked by access count); the
**working set** W(t, T) is the number of distinct rows in a window of ``T`` accesses (here non-overlapping
windows; the report prints the exact mean over all sliding windows,
:func:`tracegen.locality.average_working_set`); rows per batch are the distinct rows one batch of ``B``
samples touches, their mean and max taken over the full batches when there is at least one (a short last
batch would pull the mean down; the same batches as :func:`analysis.bandwidth.model_traffic`, so
``scatter_read`` is this mean times the row bytes).

**Placement** (:func:`place`) answers "given a budget (GPU HBM, say), what do I keep there and what hit ratio
does it buy?" with a documented greedy by accesses per byte over the trace's own access counts (a static,
in-sample oracle placement: the hit ratio is measured on the same trace it was chosen from):

- ``granularity="rows"``: rank every touched row of every table by ``accesses / row_bytes`` and keep the
  longest prefix that fits. With one ``D`` for all tables this is the optimal static row placement.
- ``granularity="tables"``: rank whole tables by ``accesses / table_bytes``; keep each table that still fits
  (skipping those that do not), the classic greedy for the 0/1 knapsack.

Notation: ``B`` batch, ``T`` tables, ``D`` embedding dim, ``N`` accesses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace

DTYPES: dict[str, tuple[int, int]] = {"fp32": (4, 0), "fp16": (2, 0), "int8": (1, 8)}
"""dtype -> (bytes per element, extra bytes per row)."""

FRACTIONS = (0.5, 0.9, 0.99)
RAW_KEY_RATIO = 64
"""An id range (``max id + 1``) over this many times the distinct ids is taken as raw keys, not rows."""


def row_bytes(dim: int, dtype: str = "fp32") -> int:
    """Bytes of one row of ``dim`` values: fp32 ``4D``, fp16 ``2D``, int8 ``D + 8`` (scale + bias)."""
    if dtype not in DTYPES:
        raise TracegenError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if int(dim) <= 0:
        raise TracegenError(f"embedding dim must be positive, got {dim}")
    per, extra = DTYPES[dtype]
    return int(dim) * per + extra


def table_bytes(cardinality: int, dim: int, dtype: str = "fp32") -> int:
    """Bytes of a whole table: ``cardinality * row_bytes(dim, dtype)``."""
    return int(cardinality) * row_bytes(dim, dtype)


def dims_for(trace: Trace, dim: int | Sequence[int]) -> list[int]:
    """One embedding dim per table from an int (shared) or a sequence (one per table)."""
    if isinstance(dim, (int, np.integer)):
        dims = [int(dim)] * trace.n_tables
    else:
        dims = [int(d) for d in dim]
        if len(dims) != trace.n_tables:
            raise TracegenError(f"{len(dims)} embedding dims given for {trace.n_tables} tables")
    for d in dims:
        if d <= 0:
            raise TracegenError(f"embedding dim must be positive, got {d}")
    return dims


def _raw_key_labels(table: Table):
    """``(keys, U)``, the table's ids relabelled ``0..U-1`` by first appearance, when they are raw keys
    (:func:`is_raw_keys`); else None."""
    from tracegen.locality import dense_keys
    from tracegen.tracemodel import SPARSE_KEYS

    card = int(table.cardinality)
    v = np.asarray(table.values)
    if card < SPARSE_KEYS and (v.size == 0 or card != int(v.max()) + 1 or card <= RAW_KEY_RATIO):
        return None
    keys, u = dense_keys(v)
    return (keys, u) if card >= SPARSE_KEYS or card > RAW_KEY_RATIO * u else None


def is_raw_keys(table: Table) -> bool:
    """Whether ``table``'s ids are raw keys rather than row numbers (rule in the module docstring)."""
    return _raw_key_labels(table) is not None


def densify_raw_keys(trace: Trace) -> tuple[Trace, list[str]]:
    """``trace`` with every raw-key table (:func:`is_raw_keys`) relabelled ``0..U-1`` by first appearance
    and its cardinality set to ``U``; also the names of the tables relabelled (``trace`` itself if none)."""
    tables, names = [], []
    for t in trace.tables:
        relabelled = _raw_key_labels(t)
        if relabelled is not None:
            keys, u = relabelled
            tables.append(Table(t.name, max(int(u), 1), keys, np.asarray(t.offsets, dtype=np.int64)))
            names.append(t.name)
        else:
            tables.append(t)
    if not names:
        return trace, []
    return Trace(tables, dense=trace.dense, labels=trace.labels), names


# ---- per-stream primitives ----------------------------------------------------------------------------

def _keys(values: np.ndarray, cardinality: int | None = None) -> tuple[np.ndarray, int]:
    """Ids as non-negative keys below a bound: the ids themselves when the range is small, else dense keys."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    if v.size == 0:
        return v, 0
    if cardinality is None:
        cardinality = int(v.max()) + 1
    if int(v.min()) >= 0 and cardinality <= 4 * v.size + 4096:
        return v, int(cardinality)
    from tracegen.locality import dense_keys

    return dense_keys(v)


def access_counts(values: np.ndarray, cardinality: int | None = None) -> np.ndarray:
    """Access count of every touched row (zeros dropped; order unspecified), int64."""
    keys, n_keys = _keys(values, cardinality)
    if keys.size == 0:
        return np.zeros(0, np.int64)
    c = np.bincount(keys, minlength=n_keys)
    return c[c > 0].astype(np.int64)


def hot_set_rows(counts: np.ndarray, fractions: Sequence[float] = FRACTIONS) -> dict[float, int]:
    """Smallest number of rows serving at least each share ``f`` of accesses (rows ranked by count)."""
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    cum = np.cumsum(c)
    n = int(cum[-1]) if cum.size else 0
    out = {}
    for f in fractions:
        if not 0 < f <= 1:
            raise TracegenError(f"hot-set share must be in (0, 1], got {f}")
        need = math.ceil(round(f * n, 9))
        out[float(f)] = int(np.searchsorted(cum, need, side="left")) + 1 if n else 0
    return out


def distinct_per_group(values: np.ndarray, starts: np.ndarray, cardinality: int | None = None) -> np.ndarray:
    """Distinct ids in each group ``values[starts[g]:starts[g + 1]]`` (``starts`` ascending, ends at N)."""
    from tracegen import _kernels

    keys, n_keys = _keys(values, cardinality)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if starts.size < 2:
        return np.zeros(0, np.int64)
    return _kernels._distinct_per_group(keys, starts, max(n_keys, 1))


def working_set(ids: np.ndarray, window: int) -> np.ndarray:
    """W(t, T): distinct ids in each non-overlapping window of ``window`` accesses (last may be short)."""
    window = int(window)
    if window <= 0:
        raise TracegenError(f"window must be a positive number of accesses, got {window}")
    ids = np.asarray(ids)
    starts = np.append(np.arange(0, ids.shape[0], window, dtype=np.int64), ids.shape[0])
    return distinct_per_group(ids, starts)


def rows_per_batch(table: Table, batch_size: int) -> np.ndarray:
    """Distinct rows each batch of ``batch_size`` samples touches (last may be short)."""
    batch_size = int(batch_size)
    if batch_size <= 0:
        raise TracegenError(f"batch size must be positive, got {batch_size}")
    off = np.asarray(table.offsets, dtype=np.int64)
    b = table.n_samples
    idx = np.append(np.arange(0, b, batch_size, dtype=np.int64), b)
    return distinct_per_group(table.values, off[idx], table.cardinality)


def footprint_curve(ids: np.ndarray, points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(n_accesses, distinct)``: distinct ids seen after the first ``n`` accesses."""
    from tracegen.locality import dense_keys

    keys, _ = dense_keys(ids)
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.unique(np.linspace(1, n, max(int(points), 2)).round().astype(np.int64))
    # dense keys number ids in order of first appearance, so distinct(n) = max(keys[:n]) + 1
    distinct = np.maximum.accumulate(keys)[pos - 1] + 1
    return pos, distinct.astype(np.int64)


# ---- per-trace summary --------------------------------------------------------------------------------

@dataclasses.dataclass
class TableFootprint:
    """Footprint figures of one table (bytes keyed by dtype)."""

    name: str
    cardinality: int
    dim: int
    accesses: int
    rows_touched: int
    table_bytes: dict[str, int]  # all rows allocated
    touched_bytes: dict[str, int]  # rows the trace touches
    rows_per_batch_mean: float
    rows_per_batch_max: int
    hot_rows: dict[str, int]  # "0.5" -> rows serving half the accesses


@dataclasses.dataclass
class Footprint:
    """Per-table footprints and totals; ``total_hot_rows`` ranks rows of all tables together."""

    batch_size: int
    tables: list[TableFootprint]
    total_table_bytes: dict[str, int]
    total_touched_bytes: dict[str, int]
    total_rows: int
    total_rows_touched: int
    total_accesses: int
    total_rows_per_batch_mean: float
    total_hot_rows: dict[str, int]
    total_hot_bytes: dict[str, dict[str, int]]  # share -> dtype -> bytes of those hottest rows

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def footprint(trace: Trace, dim: int | Sequence[int] = 64, batch_size: int = 2048,
              fractions: Sequence[float] = FRACTIONS, dtypes: Sequence[str] = tuple(DTYPES)) -> Footprint:
    """Bytes, rows touched (whole trace, per full batch of ``batch_size`` samples), hot sets; per table, total."""
    dims = dims_for(trace, dim)
    for dt in dtypes:
        row_bytes(1, dt)
    tables, all_counts, per_batch_sum = [], [], 0.0
    for t, d in zip(trace.tables, dims):
        counts = access_counts(t.values, t.cardinality)
        all_counts.append(counts)
        rpb = rows_per_batch(t, batch_size)
        if t.n_samples >= batch_size:  # full batches only (see the module docstring)
            rpb = rpb[:t.n_samples // batch_size]
        hot = hot_set_rows(counts, fractions)
        tables.append(TableFootprint(
            name=t.name, cardinality=int(t.cardinality), dim=d, accesses=t.n_accesses,
            rows_touched=int(counts.size),
            table_bytes={dt: table_bytes(t.cardinality, d, dt) for dt in dtypes},
            touched_bytes={dt: int(counts.size) * row_bytes(d, dt) for dt in dtypes},
            rows_per_batch_mean=float(rpb.mean()) if rpb.size else 0.0,
            rows_per_batch_max=int(rpb.max()) if rpb.size else 0,
            hot_rows={str(f): v for f, v in hot.items()}))
        per_batch_sum += tables[-1].rows_per_batch_mean
    cat = np.concatenate(all_counts) if all_counts else np.zeros(0, np.int64)
    total_hot = hot_set_rows(cat, fractions)
    # bytes of the hottest rows: rows ranked by count across tables (ties in table order), each its own size
    order = np.argsort(-cat, kind="stable")
    dim_of_row = np.concatenate([np.full(c.size, d, np.int64) for c, d in zip(all_counts, dims)]) \
        if all_counts else np.zeros(0, np.int64)
    hot_bytes = {}
    for f, k in total_hot.items():
        top = dim_of_row[order[:k]]
        hot_bytes[str(f)] = {dt: int(sum(row_bytes(int(d), dt) * int(n)
                                         for d, n in zip(*np.unique(top, return_counts=True))))
                             for dt in dtypes}
    return Footprint(
        batch_size=int(batch_size), tables=tables,
        total_table_bytes={dt: sum(tf.table_bytes[dt] for tf in tables) for dt in dtypes},
        total_touched_bytes={dt: sum(tf.touched_bytes[dt] for tf in tables) for dt in dtypes},
        total_rows=sum(tf.cardinality for tf in tables),
        total_rows_touched=sum(tf.rows_touched for tf in tables),
        total_accesses=sum(tf.accesses for tf in tables),
        total_rows_per_batch_mean=per_batch_sum,
        total_hot_rows={str(f): v for f, v in total_hot.items()}, total_hot_bytes=hot_bytes)


# ---- placement under a memory budget ------------------------------------------------------------------

@dataclasses.dataclass
class Placement:
    """What to keep in a memory budget and the hit ratio (share of accesses served from it) that buys."""

    budget_bytes: int
    dtype: str
    granularity: str  # "rows" or "tables"
    bytes_used: int
    accesses: int
    accesses_kept: int
    hit_ratio: float
    rows_kept: dict[str, int]  # table name -> rows kept (a whole table counts all its rows)
    tables_kept: list[str]  # tables kept whole ("tables" granularity) or with every touched row kept

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def place(trace: Trace, budget_bytes: int, dim: int | Sequence[int] = 64, dtype: str = "fp32",
          granularity: str = "rows") -> Placement:
    """Greedy placement by accesses per byte within ``budget_bytes`` (see the module docstring)."""
    dims = dims_for(trace, dim)
    budget = int(budget_bytes)
    if budget < 0:
        raise TracegenError(f"memory budget must be non-negative, got {budget_bytes}")
    total = trace.n_accesses
    rows_kept: dict[str, int] = {t.name: 0 for t in trace.tables}
    tables_kept: list[str] = []
    if granularity == "tables":
        acc = np.array([t.n_accesses for t in trace.tables], dtype=np.float64)
        # Python ints: a raw-key "cardinality" (up to 2**64) times the row bytes overflows int64
        size = [table_bytes(t.cardinality, d, dtype) for t, d in zip(trace.tables, dims)]
        order = np.argsort(-acc / np.maximum(np.array(size, dtype=np.float64), 1.0), kind="stable")
        used = kept = 0
        for j in order:
            if used + size[j] <= budget:
                used += size[j]
                kept += int(acc[j])
                t = trace.tables[j]
                rows_kept[t.name] = int(t.cardinality)
                tables_kept.append(t.name)
    elif granularity == "rows":
        counts = [np.sort(access_counts(t.values, t.cardinality))[::-1] for t in trace.tables]
        rb = np.concatenate([np.full(c.size, row_bytes(d, dtype), np.int64) for c, d in zip(counts, dims)])
        cnt = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        owner = np.concatenate([np.full(c.size, j, np.int64) for j, c in enumerate(counts)])
        order = np.lexsort((owner, -cnt / rb))  # by accesses per byte, ties by table order
        n_fit = int(np.searchsorted(np.cumsum(rb[order]), budget, side="right"))
        take = order[:n_fit]
        used = int(rb[take].sum())
        kept = int(cnt[take].sum())
        per_table = np.bincount(owner[take], minlength=len(counts))
        for j, t in enumerate(trace.tables):
            rows_kept[t.name] = int(per_table[j])
            if per_table[j] == counts[j].size:
                tables_kept.append(t.name)
    else:
        raise TracegenError(f"placement granularity must be 'rows' or 'tables', got {granularity!r}")
    return Placement(budget_bytes=budget, dtype=dtype, granularity=granularity, bytes_used=used,
                     accesses=total, accesses_kept=kept,
                     hit_ratio=kept / total if total else 0.0, rows_kept=rows_kept,
                     tables_kept=tables_kept)
