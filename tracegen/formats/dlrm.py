"""Formats of the DLRM reference (facebookresearch/dlrm): processed npz, MLPerf binary, trace and dist logs.

- ``dlrm-npz``: what ``data_utils.getCriteoAdData`` writes as ``--processed-data-file``: ``X_cat``
  (B x 26 dense ids; float64 in the reference's own output, any integer-valued dtype accepted),
  ``X_int`` (B x 13 int32, negatives already 0; ``log(x + 1)`` is applied at batch time),
  ``y`` (B int32) and ``counts`` (26 int32 table sizes). Per-day ``*_day_{i}_processed.npz`` files
  lack ``counts``; it is then read from the ``*_fea_count.npz`` beside them. The reference's
  ``CriteoDataset`` also opens ``<raw stem>_day_count.npz`` (``total_per_file``, samples per day), so
  the writer adds ``<out stem>_day_count.npz`` (``days=7`` by default, ``days=0`` for none): run the
  reference with ``--raw-data-file=DIR/<out stem>.txt --processed-data-file=DIR/<out stem>.npz``.
- ``mlperf-bin``: records of ``1 + 13 + T`` int32 (``y``, 13 ``X_int``, ``T`` ``X_cat`` ids), as read by
  ``--mlperf-bin-loader``: 40 int32 (160 bytes) per sample for the 26 Criteo tables, the only ``T`` the
  reference's loader reads (it hard-codes 26). The writer writes zeros for absent dense features and
  labels, and the table sizes to ``<stem>_fea_count.npz`` beside the file; the reader takes ``T`` from
  that file's ``counts`` (26 without it), so reading back a file with ``T != 26`` needs it.
- ``dlrm-trace``: one line of ids separated by ``", "`` (``--data-trace-file``); ``dlrm-trace-bin``
  the same ids as raw little-endian uint64.
- ``dlrm-dist`` (``dist_emb_j.log``): not a trace. Three lines: unique ids, stack distances
  (1-based LRU depth, 0 = cold) and cumulative probabilities. :func:`read_dist` converts the
  distances to this project's convention at this boundary: ``sd = depth - 1`` (so ``-1`` = cold).
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from tracegen._util import atomic_output, check_output
from tracegen.errors import TraceFormatError, TracegenError
from tracegen.formats._common import (
    fail,
    finish_single,
    ids_from_any,
    one_nonempty_table,
    one_table,
    parse_int_tokens,
    scan_uint_text,
    stem_and_dir,
    strip_bom,
)
from tracegen.formats._npzio import NpzArchive, assemble_npz, iter_rows
from tracegen.trace import Table, Trace, default_names

N_DENSE = 13
BLOCK_ROWS = 1 << 18  # rows of X_cat / X_int converted at a time
MLPERF_FIELDS = 40
# the reference writes its lists with ``str(list(trace))``: under NumPy >= 2 a list of ``np.uint64`` prints as
# ``np.uint64(5), np.uint64(3)`` (``trace_generate_lru`` and ``trace_profile`` build such lists)
_NP_REPR = re.compile(
    rb"\b(?:np|numpy)\.(?:u?int(?:8|16|32|64)|float(?:16|32|64)|longlong|ulonglong)\(\s*([^()]*?)\s*\)"
)


def _unwrap_numpy_reprs(data: bytes) -> bytes:
    """``np.uint64(5)`` -> ``5`` (scalars as NumPy >= 2 prints them inside a list)."""
    return _NP_REPR.sub(rb"\1", data) if b"np." in data or b"numpy." in data else data


# ---- dlrm-npz ------------------------------------------------------------------------------------


def _find_fea_count(path) -> str | None:
    """The ``*_fea_count.npz`` that belongs to ``path``: ``<stem>_fea_count.npz``, or the reference's
    naming for its splits (``<base>_day_3[_processed].npz`` and ``<base>_train|test|val.bin`` use
    ``<base>_fea_count.npz``; its 2019 version ``<base>_counts.npz``; MLPerf splits ``day_fea_count.npz``).
    Never another stem's file: it would give the wrong table sizes."""
    d, stem = stem_and_dir(path)
    candidates = [os.path.join(d, stem + "_fea_count.npz")]
    m = re.match(r"^(.*?)(_day)?_\d+(_processed|_reordered)?$", stem)
    if m:
        candidates.append(os.path.join(d, m.group(1) + "_fea_count.npz"))
        if os.fspath(path).endswith(".npz"):  # the 2019 reference's kaggle_day_1_processed.npz: kaggle_counts.npz
            candidates.append(os.path.join(d, m.group(1) + "_counts.npz"))
    m = re.match(r"^(.+?)_(train|test|val)$", stem)
    if m:
        candidates.append(os.path.join(d, m.group(1) + "_fea_count.npz"))
    if os.fspath(path).endswith(".bin") and re.match(r"^(.+_(train|test|val)|(train|test|val)_data)$", stem):
        # the reference's MLPerf splits (<processed>_train.bin; train_data.bin from data_loader_terabyte) read
        # their sizes from <raw data file>_fea_count.npz, and the Terabyte raw files are day_0..day_23
        candidates.append(os.path.join(d, "day_fea_count.npz"))
    for c in candidates:
        if os.path.isfile(c):
            return c
    return None


def _load_counts(path, n_tables: int) -> np.ndarray | None:
    cf = _find_fea_count(path)
    if cf is None:
        return None
    with NpzArchive(cf) as ar:
        counts = ar.get("counts", mmap=False)
    counts = ids_from_any(np.asarray(counts).reshape(-1), cf, "counts", densify_hint=False)
    if counts.shape[0] != n_tables:
        raise TraceFormatError(f"counts has {counts.shape[0]} entries but {path} has {n_tables} tables", cf)
    return counts


def intermediate_day_error(path) -> TraceFormatError:
    """The reference's ``<base>_day_{i}.npz`` (``X_cat_t``: raw hashed categories, transposed; in its 2019
    version ``X_cat`` of hex strings) is an intermediate of ``getCriteoAdData``; its ``_processed`` twin holds
    the relabelled ids."""
    _, stem = stem_and_dir(path)
    return TraceFormatError(
        "the DLRM reference's intermediate day file (X_cat_t or string X_cat: raw categories, not ids): "
        f"read {stem}_processed.npz beside it, or the raw Criteo text",
        path,
    )


def read_dlrm_npz(path, *, names=None) -> Trace:
    """Read a DLRM processed npz (whole file or one day) as a one-hot trace with dense features and labels.

    ``X_cat`` and ``X_int`` are read in blocks of rows (memory-mapped, or streamed through the decompressor
    for the reference's compressed files), so memory is the resulting trace plus one block; the tables
    share one read-only ``offsets`` array.
    """
    with NpzArchive(path) as ar:
        if not ar.has("X_cat") and ar.has("X_cat_t"):
            raise intermediate_day_error(path)
        for key in ("X_cat", "X_int", "y"):
            if not ar.has(key):
                raise TraceFormatError(
                    f"missing key {key!r} (a DLRM processed npz has X_cat, X_int, y, counts)", path
                )
        y = ar.get("y", mmap=False).reshape(-1)
        counts = ar.get("counts", mmap=False) if ar.has("counts") else None
        from_data = _read_from_data(ar, np.asarray(counts).size, path) if counts is not None else None
        shape, cdtype, blocks = iter_rows(ar, "X_cat", BLOCK_ROWS)
        if cdtype.kind in "SU":  # the 2019 reference's kaggle_day_{i}.npz: hex strings, not yet relabelled
            raise intermediate_day_error(path)
        if len(shape) != 2:
            raise TraceFormatError(f"X_cat must be 2-D (samples x tables), got shape {shape}", path)
        b, t = shape
        ishape, idtype, iblocks = iter_rows(ar, "X_int", BLOCK_ROWS)
        if len(ishape) != 2 or ishape[0] != b:
            raise TraceFormatError(f"X_int has shape {ishape}, expected ({b}, 13)", path)
        if not (np.issubdtype(idtype, np.integer) or np.issubdtype(idtype, np.floating)):
            raise TraceFormatError(f"X_int must be numeric, got dtype {idtype}", path)
        if y.shape[0] != b:
            raise TraceFormatError(f"y has {y.size} entries but X_cat has {b} rows", path)
        if counts is None:
            counts = _load_counts(path, t)
        if counts is not None:
            counts = ids_from_any(np.asarray(counts).reshape(-1), path, "counts", densify_hint=False)
            if counts.shape[0] != t:
                raise TraceFormatError(
                    f"counts has {counts.shape[0]} entries but X_cat has {t} columns (table-count mismatch)",
                    path,
                )
        if b == 0:
            raise TraceFormatError("trace is empty (no samples)", path)
        cols = [np.empty(b, np.int64) for _ in range(t)]
        start = 0
        for blk in blocks:
            ids = ids_from_any(blk, path, "X_cat ids", base=start * t, densify_hint=False)
            for j in range(t):
                cols[j][start : start + ids.shape[0]] = ids[:, j]
            start += ids.shape[0]
        dense = np.empty(ishape, np.float32)
        start = 0
        for blk in iblocks:
            if np.issubdtype(blk.dtype, np.floating) and not np.isfinite(blk).all():
                raise TraceFormatError("X_int holds NaN or infinite values", path)
            dense[start : start + blk.shape[0]] = np.maximum(blk, 0)
            start += blk.shape[0]
    derived = [True] * t if counts is None else (from_data or [False] * t)
    if counts is None:  # no counts in the file: max id + 1 (fit releases the distinct count)
        counts = [int(c.max()) + 1 for c in cols]
    names = list(names) if names is not None else default_names(t)
    if len(names) != t:
        raise TracegenError(f"{len(names)} names for {t} tables", path)
    offsets = np.arange(b + 1, dtype=np.int64)
    offsets.flags.writeable = False
    tables = [Table(names[j], int(counts[j]), cols[j], offsets, derived[j]) for j in range(t)]
    return Trace(tables, dense=dense, labels=y.astype(np.float32)).validate(path)


#: member of a dlrm-npz (or ``*_fea_count.npz``) that we add where a table's size in ``counts`` is ``max id + 1``,
#: derived from the ids by the reader of the source file (``Table.cardinality_from_data``): without it the
#: fit of a converted file would take that raw id for a declared size. Files of declared sizes do not have it.
FROM_DATA = "counts_from_data"


def _from_data_member(flags) -> list[tuple[str, np.ndarray]]:
    flags = [bool(f) for f in flags]
    return [(FROM_DATA, np.asarray(flags, np.uint8))] if any(flags) else []


def _read_from_data(ar, n_tables: int, path) -> list[bool]:
    if not ar.has(FROM_DATA):
        return [False] * n_tables
    flags = np.asarray(ar.get(FROM_DATA, mmap=False)).reshape(-1)
    if flags.shape[0] != n_tables:
        raise TraceFormatError(f"{FROM_DATA} has {flags.shape[0]} entries but counts has {n_tables}", path)
    return [bool(f) for f in flags]


def _one_hot_only(trace: Trace, path, fmt: str) -> None:
    if not trace.is_one_hot:
        raise TracegenError(
            f"{fmt} holds one id per sample per table but {trace.not_one_hot()}; write npz or tbe-pt, "
            "or pick one-hot tables",
            path,
        )


def _x_int(trace: Trace, path) -> np.ndarray:
    b = trace.n_samples
    if trace.dense is None:
        return np.zeros((b, N_DENSE), np.int32)
    d = np.asarray(trace.dense)
    if not np.isfinite(d).all():
        raise TracegenError("dense features hold NaN or infinite values; X_int needs integers", path)
    # in float64: float32 rounds 2**31 - 1 up to 2**31, which would wrap to -2**31 in the cast
    return np.clip(np.rint(d.astype(np.float64)), 0, np.iinfo(np.int32).max).astype(np.int32)


def _x_cat_dtype(cards) -> np.dtype:
    return np.dtype(np.int32) if max(cards, default=0) <= np.iinfo(np.int32).max else np.dtype(np.int64)


def _labels_i32(trace: Trace) -> np.ndarray:
    if trace.labels is None:
        return np.zeros(trace.n_samples, np.int32)
    return np.rint(np.asarray(trace.labels)).astype(np.int32)


def day_counts(n: int, days: int) -> np.ndarray:
    """Samples per day as the reference splits a Kaggle file: ``divmod``, extras to the first days."""
    per, extra = divmod(n, days)
    out = np.full(days, per, dtype=np.int64)
    out[:extra] += 1
    return out


def write_dlrm_npz(trace: Trace, path, *, force: bool = False, days: int = 7, compress: bool = False) -> None:
    """Write a one-hot trace as a DLRM processed npz (plus ``<stem>_day_count.npz`` when ``days`` > 0).

    ``X_cat`` is int32 (int64 if a table has more than 2**31 rows); dense features are rounded to
    integers and clipped at 0 into ``X_int`` (int32); labels are rounded into ``y`` (int32).
    """
    trace.validate()
    _one_hot_only(trace, path, "dlrm-npz")
    x_cat = trace.to_dense_ids().astype(_x_cat_dtype(trace.cardinalities))
    members = [
        ("X_cat", x_cat),
        ("X_int", _x_int(trace, path)),
        ("y", _labels_i32(trace)),
        ("counts", np.asarray(trace.cardinalities, np.int32 if x_cat.dtype == np.int32 else np.int64)),
        *_from_data_member(t.cardinality_from_data for t in trace.tables),
    ]
    _write_with_day_count(path, members, trace.n_samples, force, days, compress)


def _check_days(days, path) -> int:
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 0:
        raise TracegenError(f"--days must be a non-negative integer (0 = no day-count file), got {days!r}", path)
    return int(days)


def _write_with_day_count(path, members, n: int, force: bool, days: int, compress: bool) -> None:
    days = _check_days(days, path)
    day_path = None
    if days and days > 0:
        d, stem = stem_and_dir(path)
        day_path = os.path.join(d, stem + "_day_count.npz")
        check_output(day_path, force)
    with atomic_output(path, force, suffix=".npz") as tmp:
        assemble_npz(tmp, members, compress=compress)
        if day_path is not None:
            with atomic_output(day_path, force, suffix=".npz") as tmp2:
                assemble_npz(tmp2, [("total_per_file", day_counts(n, days))])


class DlrmNpzStreamWriter:
    """Streams X_cat/X_int/y to raw parts; the npz (with ``counts``) is assembled at close."""

    def __init__(
        self,
        path,
        *,
        names,
        cardinalities,
        force: bool = False,
        days: int = 7,
        compress: bool = False,
        x_cat_dtype=None,
    ):
        from tracegen.formats._npzio import make_sinks

        self.path, self.force, self.compress = os.fspath(path), force, compress
        self.days = _check_days(days, self.path)
        check_output(self.path, force)
        self.names = list(names)
        self.cardinalities = [int(c) for c in cardinalities]
        folder = os.path.dirname(os.path.abspath(self.path))
        self.x_cat, self.y = make_sinks(
            folder, [(x_cat_dtype or _x_cat_dtype(self.cardinalities), (len(self.names),)), (np.int32, ())]
        )
        self.folder = folder
        self.x_int = None  # a RawSink once the first rows give X_int's width
        self.from_data = [False] * len(self.names)  # Table.cardinality_from_data of any chunk
        self.max_id = -1
        self._closed = False

    def write(self, chunk: Trace) -> None:
        if chunk.n_tables != len(self.names):
            raise TracegenError(
                f"chunk has {chunk.n_tables} tables, writer expects {len(self.names)}", self.path
            )
        _one_hot_only(chunk, self.path, "dlrm-npz")
        self.from_data = [f or t.cardinality_from_data for f, t in zip(self.from_data, chunk.tables)]
        self.write_columns(_labels_i32(chunk), _x_int(chunk, self.path), chunk.to_dense_ids())

    def write_columns(self, y: np.ndarray, x_int: np.ndarray, x_cat: np.ndarray) -> None:
        """Append rows as arrays: ``y`` (b,), ``x_int`` (b, 13) non-negative ints, ``x_cat`` (b, T) ids."""
        if x_cat.size:
            self.max_id = max(self.max_id, int(x_cat.max()))
            if self.max_id > np.iinfo(self.x_cat.dtype).max:
                raise TracegenError(f"id {self.max_id} does not fit X_cat's {self.x_cat.dtype}", self.path)
        self.x_cat.append(x_cat)
        if self.x_int is None:
            from tracegen.formats._npzio import RawSink

            self.x_int = RawSink(self.folder, np.int32, (x_int.shape[1],))
        self.x_int.append(x_int)
        self.y.append(y)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.y.rows == 0:
                raise TracegenError("trace is empty (no samples)", self.path)
            cdt = np.int32 if self.x_cat.dtype == np.int32 else np.int64
            members = [
                ("X_cat", self.x_cat),
                ("X_int", self.x_int),
                ("y", self.y),
                ("counts", np.asarray(self.cardinalities, cdt)),
                *_from_data_member(self.from_data),
            ]
            _write_with_day_count(self.path, members, self.y.rows, self.force, self.days, self.compress)
        finally:
            self.abort()

    def abort(self) -> None:
        self._closed = True
        for s in (self.x_cat, self.x_int, self.y):
            if s is not None:
                s.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()


# ---- mlperf-bin ----------------------------------------------------------------------------------


def read_mlperf_bin(path, *, names=None, n_tables: int | None = None) -> Trace:
    """Read the MLPerf binary layout: int32 records of ``1 + 13 + T`` fields (``T`` = 26, or the length of
    ``counts`` in the ``*_fea_count.npz`` beside the file)."""
    counts = None
    cf = _find_fea_count(path)
    if cf is not None:
        with NpzArchive(cf) as ar:
            raw = np.asarray(ar.get("counts", mmap=False)).reshape(-1)
            from_data = _read_from_data(ar, raw.shape[0], cf)
        counts = ids_from_any(raw, cf, "counts", densify_hint=False)
        if n_tables is not None and counts.shape[0] != n_tables:
            raise TraceFormatError(f"counts has {counts.shape[0]} entries, expected {n_tables} tables", cf)
    n_tables = n_tables or (counts.shape[0] if counts is not None else 26)
    fields = 1 + N_DENSE + n_tables
    size = os.path.getsize(path)
    rec = 4 * fields
    if size == 0:
        raise TraceFormatError("trace is empty (0 bytes)", path)
    if size % rec:
        raise TraceFormatError(
            f"size {size} is not a multiple of the {rec}-byte record "
            f"({fields} int32 per sample): truncated or not mlperf-bin",
            path,
        )
    names = list(names) if names is not None else default_names(n_tables)
    if len(names) != n_tables:
        raise TracegenError(f"X_cat has {n_tables} columns but {len(names)} names were given", path)
    # records a block at a time into per-table columns sharing one offsets array: reading the file whole and
    # copying its ids twice (int64, then per column) with an offsets array per table took 5x the file
    raw = np.memmap(path, dtype="<i4", mode="r", shape=(size // rec, fields))
    b = raw.shape[0]
    cols = [np.empty(b, np.int64) for _ in range(n_tables)]
    dense = np.empty((b, N_DENSE), np.float32)
    labels = np.empty(b, np.float32)
    for start in range(0, b, BLOCK_ROWS):
        blk = np.asarray(raw[start : start + BLOCK_ROWS])
        ids = ids_from_any(blk[:, 1 + N_DENSE :], path, "X_cat ids", base=start * n_tables, densify_hint=False)
        for j in range(n_tables):
            cols[j][start : start + blk.shape[0]] = ids[:, j]
        dense[start : start + blk.shape[0]] = np.maximum(blk[:, 1 : 1 + N_DENSE], 0)
        labels[start : start + blk.shape[0]] = blk[:, 0]
    del raw
    derived = counts is None  # no fea_count beside the file: max id + 1, derived from the data
    cards = [int(c.max()) + 1 for c in cols] if derived else [int(c) for c in counts]
    flags = [True] * n_tables if derived else from_data
    offsets = np.arange(b + 1, dtype=np.int64)
    offsets.flags.writeable = False
    tables = [Table(names[j], cards[j], cols[j], offsets, flags[j]) for j in range(n_tables)]
    return Trace(tables, dense=dense, labels=labels).validate(path)


def write_mlperf_bin(trace: Trace, path, *, force: bool = False, fea_count: bool = True) -> None:
    """Write the MLPerf binary records (plus ``<stem>_fea_count.npz`` with ``counts`` unless disabled)."""
    trace.validate()
    _one_hot_only(trace, path, "mlperf-bin")
    if max(trace.cardinalities) > np.iinfo(np.int32).max:
        raise TracegenError("a table has more than 2**31 rows; mlperf-bin stores int32 ids", path)
    x_int = _x_int(trace, path)
    if x_int.shape[1] != N_DENSE:
        raise TracegenError(
            f"mlperf-bin needs {N_DENSE} dense features, the trace has {x_int.shape[1]}", path
        )
    rec = np.empty((trace.n_samples, 1 + N_DENSE + trace.n_tables), dtype="<i4")
    rec[:, 0] = _labels_i32(trace)
    rec[:, 1 : 1 + N_DENSE] = x_int
    rec[:, 1 + N_DENSE :] = trace.to_dense_ids()
    count_path = None
    if fea_count:
        d, stem = stem_and_dir(path)
        count_path = os.path.join(d, stem + "_fea_count.npz")
        check_output(count_path, force)
    with atomic_output(path, force) as tmp:
        rec.tofile(tmp)
        if count_path is not None:
            with atomic_output(count_path, force, suffix=".npz") as tmp2:
                assemble_npz(
                    tmp2,
                    [
                        ("counts", np.asarray(trace.cardinalities, np.int32)),
                        *_from_data_member(t.cardinality_from_data for t in trace.tables),
                    ],
                )


class _TempFileStream:
    """A stream writer into one temporary file beside ``self.path``: :meth:`close` runs :meth:`_finish` (write
    the tail, check, write side files) and renames the file into place; :meth:`abort` (or an exception in a
    ``with`` block) discards it and leaves the destination untouched."""

    empty = "trace is empty (no accesses)"

    def _open(self, force: bool, suffix: str = "") -> None:
        self._ctx = atomic_output(self.path, force, suffix=suffix)
        self.tmp = self._ctx.__enter__()
        try:
            self.f = open(self.tmp, "wb")
        except BaseException as e:
            self._ctx.__exit__(type(e), e, None)
            raise
        self.n = 0
        self._closed = False

    def _finish(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._finish()
            self.f.close()
            if self.n == 0:
                raise TracegenError(self.empty, self.path)
            self._after()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._ctx.__exit__(None, None, None)  # renames the finished file into place

    def _after(self) -> None:
        """Work after the file is complete and before it is renamed (side files)."""

    def abort(self) -> None:
        """Discard the temporary file; the destination is untouched."""
        if self._closed:
            return
        self._closed = True
        if not self.f.closed:
            self.f.close()
        err = TracegenError("aborted", self.path)
        try:
            self._ctx.__exit__(TracegenError, err, None)
        except TracegenError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()


class MlperfBinStreamWriter(_TempFileStream):
    """Streams MLPerf records chunk by chunk (the format is sample-major, so nothing is kept in memory);
    ``<stem>_fea_count.npz`` is written at :meth:`close` from ``cardinalities`` (which may be updated before).

    Buffering the chunks held ~1.2 KB per sample (2.4 GB for 2M Criteo lines), so converting a Kaggle
    ``train.txt`` (45M lines) to mlperf-bin needed ~55 GB."""

    def __init__(self, path, *, names, cardinalities, force: bool = False, fea_count: bool = True):
        self.path, self.force = os.fspath(path), force
        self.names = list(names)
        self.cardinalities = [int(c) for c in cardinalities]
        self.count_path = None
        if fea_count:
            d, stem = stem_and_dir(self.path)
            self.count_path = os.path.join(d, stem + "_fea_count.npz")
            check_output(self.count_path, force)
        self.from_data = [False] * len(self.names)  # Table.cardinality_from_data of any chunk
        self._open(force)

    def write(self, chunk: Trace) -> None:
        if chunk.n_tables != len(self.names):
            raise TracegenError(f"chunk has {chunk.n_tables} tables, writer expects {len(self.names)}", self.path)
        _one_hot_only(chunk, self.path, "mlperf-bin")
        self.from_data = [f or t.cardinality_from_data for f, t in zip(self.from_data, chunk.tables)]
        ids = chunk.to_dense_ids()
        if ids.size and int(ids.max()) > np.iinfo(np.int32).max:
            raise TracegenError("a table has more than 2**31 rows; mlperf-bin stores int32 ids", self.path)
        x_int = _x_int(chunk, self.path)
        if x_int.shape[1] != N_DENSE:
            raise TracegenError(
                f"mlperf-bin needs {N_DENSE} dense features, the trace has {x_int.shape[1]}", self.path
            )
        rec = np.empty((chunk.n_samples, 1 + N_DENSE + len(self.names)), dtype="<i4")
        rec[:, 0] = _labels_i32(chunk)
        rec[:, 1 : 1 + N_DENSE] = x_int
        rec[:, 1 + N_DENSE :] = ids
        rec.tofile(self.f)
        self.n += chunk.n_samples

    empty = "trace is empty (no samples)"

    def _after(self) -> None:
        if max(self.cardinalities, default=0) > np.iinfo(np.int32).max:
            raise TracegenError("a table has more than 2**31 rows; mlperf-bin stores int32 ids", self.path)
        if self.count_path is not None:
            with atomic_output(self.count_path, self.force, suffix=".npz") as tmp2:
                counts = [("counts", np.asarray(self.cardinalities, np.int32)), *_from_data_member(self.from_data)]
                assemble_npz(tmp2, counts)


# ---- dlrm-trace ----------------------------------------------------------------------------------


def read_dlrm_trace(path, *, densify: bool = False, name: str = "t0") -> Trace:
    """Read the reference's text trace: ids separated by ``", "`` (newlines tolerated; blank lines skipped).

    An empty field (``1, , 3`` or a trailing comma) is an error naming its position, as in the reference
    (its ``int("")`` fails); the reference writer never produces one."""
    ids = scan_uint_text(path, 1)  # the usual file, numbers only: no Python object per id
    if ids is not None:
        return finish_single(ids, path, name=name, densify=densify)
    with open(path, "rb") as f:
        data = _unwrap_numpy_reprs(strip_bom(f.read()))
    tokens: list[bytes] = []
    for line_no, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        toks = line.split(b",")
        for i, t in enumerate(toks):
            if not t.strip():
                what = "a trailing comma" if i == len(toks) - 1 else "two commas with nothing between"
                raise TraceFormatError(
                    f"empty id at position {len(tokens) + i} (line {line_no}, field {i + 1}): {what}", path
                )
        tokens += toks
    if not tokens:
        raise TraceFormatError("trace is empty (no ids)", path)
    ids = parse_int_tokens(tokens, path)
    return finish_single(ids, path, name=name, densify=densify)


def read_dlrm_trace_bin(path, *, densify: bool = False, name: str = "t0") -> Trace:
    """Read raw little-endian uint64 ids (the reference's ``--trace-file-binary-type``)."""
    size = os.path.getsize(path)
    if size % 8:
        raise TraceFormatError(f"size {size} is not a multiple of 8 (uint64 ids): truncated?", path)
    return finish_single(np.fromfile(path, dtype="<u8"), path, name=name, densify=densify)


def _ids_text(ids: np.ndarray) -> str:
    return ", ".join(map(str, np.asarray(ids).tolist()))


def write_dlrm_trace(trace: Trace, path, *, force: bool = False, table=None) -> None:
    """Write one table's ids as one ``", "``-separated line (``table``: name, index or ``"all"``)."""
    t = one_nonempty_table(trace.validate(), path, table, "dlrm-trace")
    with DlrmTraceStreamWriter(path, force=force, binary=False) as w:
        w.write_ids(t.values)


def write_dlrm_trace_bin(trace: Trace, path, *, force: bool = False, table=None) -> None:
    t = one_nonempty_table(trace.validate(), path, table, "dlrm-trace-bin")
    with DlrmTraceStreamWriter(path, force=force, binary=True) as w:
        w.write_ids(t.values)


class _IdStreamWriter(_TempFileStream):
    """Base of single-id-sequence stream writers: ``write(chunk)`` picks a table, ``write_ids``."""

    fmt = ""

    def __init__(self, path, *, names=None, cardinalities=None, force: bool = False, table=None, **_):
        self.path = os.fspath(path)
        self.table = table
        self.names = list(names) if names is not None else None
        self._open(force, suffix=os.path.splitext(self.path)[1])

    def write(self, chunk: Trace) -> None:
        if self.table is None and chunk.n_tables > 1:
            raise TracegenError(
                f"{self.fmt} holds one id sequence but the trace has {chunk.n_tables} tables; "
                "pick one with --table NAME or flatten them with --table all",
                self.path,
            )
        self.write_ids(one_table(chunk, self.path, self.table, self.fmt).values)

    def write_ids(self, ids: np.ndarray) -> None:
        raise NotImplementedError


class DlrmTraceStreamWriter(_IdStreamWriter):
    def __init__(self, path, *, binary: bool = False, **kw):
        super().__init__(path, **kw)
        self.binary = binary
        self.fmt = "dlrm-trace-bin" if binary else "dlrm-trace"

    def write_ids(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not ids.size:
            return
        if self.binary:
            ids.astype("<u8").tofile(self.f)
        else:
            step = 1 << 20
            for i in range(0, ids.size, step):
                s = _ids_text(ids[i : i + step])
                self.f.write(((", " if self.n or i else "") + s).encode())
        self.n += int(ids.size)

    def _finish(self) -> None:
        if not self.binary and self.n:
            self.f.write(b"\n")


# ---- dlrm-dist -----------------------------------------------------------------------------------


@dataclasses.dataclass
class DlrmDist:
    """The reference's per-table distribution log, in this project's stack-distance convention.

    ``unique_ids``: the ids of the real trace (first line). ``sd``: stack distances (``-1`` cold,
    ``0`` immediate repeat; the file's 1-based depth minus one). ``cdf``: cumulative probability of
    each ``sd`` entry (non-decreasing, ending at 1).
    """

    unique_ids: np.ndarray  # (U,) int64
    sd: np.ndarray  # (K,) int64
    cdf: np.ndarray  # (K,) float64

    @property
    def probabilities(self) -> np.ndarray:
        """Probability mass of each ``sd`` entry."""
        return np.diff(self.cdf, prepend=0.0)


def _dist_line(line: bytes, path, what: str, kind) -> np.ndarray:
    toks = [t for t in line.split(b",") if t.strip()]
    if not toks:
        raise TraceFormatError(f"dist line for {what} is empty", path)
    if kind is float:
        try:
            arr = np.array([float(t) for t in toks], dtype=np.float64)
        except ValueError:
            raise TraceFormatError(f"{what}: not a list of numbers", path) from None
        return arr
    return parse_int_tokens(toks, path, what, unsigned=False)


def read_dist(path) -> DlrmDist:
    """Read and validate a DLRM ``dist_emb_j.log``; distances are converted to ``sd = depth - 1``."""
    with open(path, "rb") as f:
        lines = [ln for ln in _unwrap_numpy_reprs(strip_bom(f.read())).splitlines() if ln.strip()]
    if len(lines) != 3:
        raise TraceFormatError(
            f"a dist log has 3 lines (unique ids, stack distances, cumulative "
            f"probabilities), found {len(lines)}",
            path,
        )
    uniq = _dist_line(lines[0], path, "unique ids", int)
    depth = _dist_line(lines[1], path, "stack distances", int)
    cdf = _dist_line(lines[2], path, "cumulative probabilities", float)
    if uniq.min() < 0:
        raise TraceFormatError(f"negative id {int(uniq.min())} in the unique ids", path)
    if depth.min() < 0:
        raise TraceFormatError(
            f"negative stack distance {int(depth.min())} (the file is 1-based, 0 = cold)", path
        )
    if depth.shape != cdf.shape:
        raise TraceFormatError(f"{depth.size} stack distances but {cdf.size} cumulative probabilities", path)
    if not np.isfinite(cdf).all() or cdf.min() < 0 or cdf.max() > 1 + 1e-9:
        raise TraceFormatError("cumulative probabilities must lie in [0, 1]", path)
    if np.any(np.diff(cdf) < 0):
        i = int(np.argmax(np.diff(cdf) < 0))
        raise TraceFormatError(
            f"cumulative probabilities decrease at entry {i + 1} ({cdf[i]} -> {cdf[i + 1]})", path
        )
    if abs(cdf[-1] - 1.0) > 1e-6:
        raise TraceFormatError(f"cumulative probabilities end at {cdf[-1]}, not 1", path)
    return DlrmDist(unique_ids=uniq.astype(np.int64), sd=depth.astype(np.int64) - 1, cdf=cdf)


def write_dist(dist: DlrmDist, path, *, force: bool = False) -> None:
    """Write a dist log the reference reads (depth = sd + 1, 0 = cold)."""
    sd = np.asarray(dist.sd, dtype=np.int64)
    cdf = np.asarray(dist.cdf, dtype=np.float64)
    if sd.shape != cdf.shape or sd.ndim != 1 or sd.size == 0:
        raise TracegenError(
            f"sd and cdf must be 1-D of equal non-zero length, got {sd.shape} and {cdf.shape}", path
        )
    if sd.min() < -1:
        raise TracegenError(f"stack distance {int(sd.min())} < -1", path)
    if np.any(np.diff(cdf) < 0) or abs(cdf[-1] - 1.0) > 1e-6:
        raise TracegenError("cdf must be non-decreasing and end at 1", path)
    lines = [
        _ids_text(np.asarray(dist.unique_ids, np.int64)),
        _ids_text(sd + 1),
        ", ".join(repr(float(c)) for c in cdf),
    ]
    with atomic_output(path, force) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_dist_as_error(path) -> Trace:
    raise fail(
        path,
        "a dlrm-dist log is a distribution, not a trace; read it with "
        "tracegen.formats.dlrm.read_dist (or `tracegen inspect`)",
    )
