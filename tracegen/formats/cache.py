"""libCacheSim traces: ``oracle-general`` binary and ``lcs-csv``, so any libCacheSim policy can replay ours.

``oracle-general``: packed 24-byte little-endian records ``(u32 clock_time, u64 obj_id, u32 obj_size,
i64 next_access_vtime)``. ``next_access_vtime`` is the 1-based position (virtual time counts requests
from 1) of the next request to the same object, ``-1`` if there is none; the writer computes it
(checked against libCacheSim's own ``cloudPhysicsIO.oracleGeneral.bin``). Written from a trace:
``clock_time`` is the sample index (all ids of one sample share it), ``obj_size`` is ``obj_size``
(default 1, so libCacheSim cache sizes count rows). Reading drops records of ``obj_size`` 0, as libCacheSim's
readers do by default (``ignore_size_zero_req``), unless every record has size 0 (a file that records no
sizes), which is read whole.

``lcs-csv``: comma separated (or TAB separated when the first line has tabs and no comma, libCacheSim's
``delimiter=\t``), usually with a header naming the columns (e.g. ``version,time,op,size,lbn``); a first
row holding any number is data, not a header (Twitter's traces have none). The id column is ``id_col``
(name or 0-based index) or, by default, the first of ``obj_id, obj-id, id, key, lbn, block, addr``.
Standard CSV double quotes (``"obj_id"``, ``"5"``) are removed from the header and the fields (files
without a ``"`` take a faster split). Our writer writes ``time,obj_id,obj_size``
(libCacheSim: ``-t "time-col=1, obj-id-col=2, obj-size-col=3, has-header=true"``).

libCacheSim's lcs traces (``*.lcs``: an 8 KiB header, then v1 oracleGeneral records or the longer v2-v8
ones) are read as ``oracle-general`` too, told by the header's magic; writing always gives oracleGeneral.

Both hold raw 64-bit keys: reading keeps them (cardinality ``max id + 1``) unless ``densify=True``
relabels them ``0..U-1`` by first appearance. Keep raw ids for cache analysis and to write the keys
back out; densify before training a model whose embedding table would otherwise have ``max id + 1``
rows.
"""

from __future__ import annotations

import os

import numpy as np

from tracegen._util import atomic_output
from tracegen.errors import TraceFormatError, TracegenError
from tracegen.formats._common import (
    finish_single,
    ids_from_any,
    one_nonempty_table,
    one_table,
    parse_int_tokens,
    strip_bom,
)
from tracegen.formats.dlrm import _IdStreamWriter
from tracegen.trace import Table, Trace

OG_DTYPE = np.dtype([("time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"), ("next_access_vtime", "<i8")])
# libCacheSim's lcs traces: an 8 KiB header (start magic, version, statistics, end magic), then records whose
# size depends on the version; every version starts u32 clock_time, u64 obj_id, then the size (u32 in v1/v2,
# i64 from v3); v1 records are oracleGeneral's
LCS_MAGIC = (0x123456789ABCDEF0).to_bytes(8, "little")
LCS_HEADER = 8192
_LCS_RECORD = {1: 24, 2: 28, 3: 36, 4: 40, 5: 44, 6: 52, 7: 68, 8: 100}
ID_COLUMNS = ("obj_id", "obj-id", "objid", "id", "key", "lbn", "block", "addr", "address")


class _NextAccess:
    """``next_access_vtime`` block by block from the end of a trace; memory ~32 bytes per distinct id."""

    def __init__(self):
        self.bits = 12
        self.keys = np.zeros(1 << self.bits, np.uint64)
        self.vals = np.zeros(1 << self.bits, np.int64)
        self.count = 0

    def block(self, ids: np.ndarray, base: int) -> np.ndarray:
        """``next_access_vtime`` of ``ids`` at positions ``base..`` (0-based); feed blocks last to first."""
        from tracegen.formats import _kernels

        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        out = np.empty(ids.shape[0], np.int64)
        stop = ids.shape[0]
        while stop > 0:
            part, self.count, resume = _kernels._next_rev(
                ids, base, self.keys, self.vals, self.count, 64 - self.bits, stop
            )
            out[resume:stop] = part[resume:stop]
            stop = resume
            if stop > 0:
                self.bits += 1
                nk = np.zeros(1 << self.bits, np.uint64)
                nv = np.zeros(1 << self.bits, np.int64)
                self.keys, self.vals = _kernels._rehash_next(self.keys, self.vals, nk, nv, 64 - self.bits)
        return out


def next_access_vtime(ids: np.ndarray) -> np.ndarray:
    """1-based position of the next request to the same id, ``-1`` if none (libCacheSim's oracle field)."""
    ids = np.asarray(ids)
    if ids.shape[0] == 0:
        return np.empty(0, np.int64)
    return _NextAccess().block(ids.astype(np.uint64, copy=False), 0)


def plausible_oracle_general(path, probe: int = 4096) -> bool:
    """True if ``path`` looks like oracleGeneral: size % 24 == 0 and the first records' next-access
    fields are -1 or later positions within the file."""
    size = os.path.getsize(path)
    if size == 0 or size % OG_DTYPE.itemsize:
        return False
    n = size // OG_DTYPE.itemsize
    rec = np.fromfile(path, dtype=OG_DTYPE, count=min(n, probe))
    nxt = rec["next_access_vtime"]
    pos = np.arange(1, rec.shape[0] + 1)
    # libCacheSim writes -1 or INT64_MAX for "never again" (its readers accept both)
    ok = (nxt == -1) | (nxt == np.iinfo(np.int64).max) | ((nxt > pos) & (nxt <= n))
    return bool(ok.all())


def is_lcs(path) -> bool:
    """True if ``path`` starts with the magic of libCacheSim's lcs trace header."""
    with open(path, "rb") as f:
        return f.read(8) == LCS_MAGIC


#: records read at a time: only the ids (8 bytes per request) are kept, not the whole records (24-100 bytes)
RECORD_BLOCK = 1 << 22


def _ids_of_records(path, dtype: np.dtype, offset: int, n: int, drop_zero: bool = True) -> np.ndarray:
    """The ``obj_id`` of ``n`` records of ``dtype`` from byte ``offset``, read a block at a time; records of
    ``obj_size`` 0 are dropped unless every record has size 0 (libCacheSim's ``ignore_size_zero_req``).

    Reading the records whole took 3x the memory of the ids for oracleGeneral (24-byte records), more for
    lcs v2-v8, on top of the ids: 4.7 GB to inspect a 99M-request (2.4 GB) trace."""
    ids = np.empty(n, np.uint64)
    kept = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, n, RECORD_BLOCK):
            rec = np.fromfile(f, dtype=dtype, count=min(RECORD_BLOCK, n - start))
            if rec.shape[0] != min(RECORD_BLOCK, n - start):
                raise TraceFormatError("file ended early: truncated while reading?", path)
            keep = rec["obj_size"] != 0 if drop_zero else np.ones(rec.shape[0], bool)
            k = int(np.count_nonzero(keep))
            ids[kept : kept + k] = rec["obj_id"] if k == rec.shape[0] else rec["obj_id"][keep]
            kept += k
    if kept == 0 and drop_zero:  # a file that records no sizes: every request counts
        return _ids_of_records(path, dtype, offset, n, drop_zero=False)
    return ids[:kept]


def _lcs_layout(path) -> tuple[np.dtype, int]:
    """The record dtype (``obj_id`` and ``obj_size`` fields, any version 1-8) of an lcs trace and its count."""
    with open(path, "rb") as f:
        head = f.read(LCS_HEADER)
    if len(head) < LCS_HEADER or head[-8:] != LCS_MAGIC:
        raise TraceFormatError(f"a libCacheSim lcs header is {LCS_HEADER} bytes ending in its magic: truncated?", path)
    ver = int.from_bytes(head[8:16], "little")
    if ver not in _LCS_RECORD:
        raise TraceFormatError(f"lcs version {ver} is not one of libCacheSim's 1-8", path)
    rec = _LCS_RECORD[ver]
    size = os.path.getsize(path) - LCS_HEADER
    if size % rec:
        raise TraceFormatError(f"{size} bytes of records are not a multiple of the {rec}-byte lcs v{ver} record", path)
    fields = {"names": ["obj_id", "obj_size"], "formats": ["<u8", "<u4" if ver <= 2 else "<i8"], "offsets": [4, 12]}
    return np.dtype({**fields, "itemsize": rec}), size // rec


def read_oracle_general(path, *, densify: bool = False, name: str = "t0") -> Trace:
    """Read oracleGeneral records (or an lcs trace, told by its header); size-0 requests are skipped."""
    size = os.path.getsize(path)
    if size == 0:
        raise TraceFormatError("trace is empty (0 bytes)", path)
    if is_lcs(path):
        dt, n = _lcs_layout(path)
        offset = LCS_HEADER
    elif size % OG_DTYPE.itemsize:
        raise TraceFormatError(
            f"size {size} is not a multiple of the 24-byte oracleGeneral record: truncated?", path
        )
    else:
        dt, n, offset = OG_DTYPE, size // OG_DTYPE.itemsize, 0
    return finish_single(_ids_of_records(path, dt, offset, n), path, name=name, densify=densify)


def _check_obj_size(obj_size, path) -> int:
    """``obj_size`` as written per access: an integer in [1, 2**32) (a u32 field in oracleGeneral)."""
    if isinstance(obj_size, bool) or not isinstance(obj_size, (int, np.integer)) or not 1 <= obj_size < 2**32:
        raise TracegenError(f"--obj-size must be an integer in [1, 2**32), got {obj_size!r}", path)
    return int(obj_size)


def _records(t: Table, obj_size: int, time_base: int = 0) -> np.ndarray:
    rec = np.empty(t.n_accesses, OG_DTYPE)
    rec["time"] = (np.repeat(np.arange(t.n_samples, dtype=np.int64), t.lengths) + time_base).astype("<u4")
    rec["obj_id"] = np.asarray(t.values, np.int64).astype("<u8")
    rec["obj_size"] = obj_size
    rec["next_access_vtime"] = -1
    return rec


def write_oracle_general(trace: Trace, path, *, force: bool = False, table=None, obj_size: int = 1) -> None:
    obj_size = _check_obj_size(obj_size, path)
    t = one_nonempty_table(trace.validate(), path, table, "oracle-general")
    rec = _records(t, obj_size)
    rec["next_access_vtime"] = next_access_vtime(rec["obj_id"])
    with atomic_output(path, force, suffix=".bin") as tmp:
        rec.tofile(tmp)


class _RequestStreamWriter(_IdStreamWriter):
    """A single-table writer of cache requests: each carries its sample index as its time and ``obj_size``;
    :meth:`write_table` writes one table's requests after the ``self.samples`` written before."""

    def __init__(self, path, *, obj_size: int = 1, **kw):
        obj_size = _check_obj_size(obj_size, path)
        super().__init__(path, **kw)
        self.obj_size = obj_size
        self.samples = 0

    def write(self, chunk: Trace) -> None:
        if self.table is None and chunk.n_tables > 1:
            super().write(chunk)  # raises the one-table error
        t = one_table(chunk, self.path, self.table, self.fmt)
        self.write_table(t)
        self.samples += t.n_samples

    def write_table(self, t: Table) -> None:
        raise NotImplementedError


class OracleGeneralStreamWriter(_RequestStreamWriter):
    """Streams records with ``next_access_vtime = -1``, then fills it in at close with a backward pass over
    the file (memory: a hash table of the distinct ids)."""

    fmt = "oracle-general"

    def write_table(self, t: Table) -> None:
        if t.n_accesses:
            _records(t, self.obj_size, self.samples).tofile(self.f)
            self.n += t.n_accesses

    def _finish(self) -> None:
        self.f.flush()
        if self.n == 0:
            return
        # a backward pass over the written records, block by block: memory ~ distinct ids, not accesses
        rec = np.memmap(self.tmp, dtype=OG_DTYPE, mode="r+", shape=(self.n,))
        scan = _NextAccess()
        step = 1 << 22
        for start in range(((self.n - 1) // step) * step, -1, -step):
            stop = min(self.n, start + step)
            rec["next_access_vtime"][start:stop] = scan.block(np.asarray(rec["obj_id"][start:stop]), start)
        rec.flush()
        del rec


def _quoted_rows(data: bytes, delimiter: bytes = b",") -> list[list[bytes]]:
    """Rows of a CSV that uses standard double quotes (``"obj_id"``, ``"5"``, ``"a,b"``, ``""`` for a
    quote), quotes removed; blank rows dropped. The slow path: files without quotes are split directly."""
    import csv
    import io

    text = data.decode("utf-8", "surrogateescape")
    rows = []
    lines = io.StringIO(text, newline="")
    for row in csv.reader(lines, delimiter=delimiter.decode(), skipinitialspace=True, strict=False):
        if any(c.strip() for c in row):
            rows.append([c.encode("utf-8", "surrogateescape") for c in row])
    return rows


def _is_number(c: bytes) -> bool:
    return c.lstrip(b"+-").replace(b".", b"", 1).isdigit()


def _is_header(first: list[bytes]) -> bool:
    """A header names columns: no field is a number. A row with numbers beside string keys is data
    (Twitter's cache traces, ``0,q:abc,10,100,1,get,0``, have no header)."""
    cells = [c for c in first if c]
    if not cells or any(_is_number(c) for c in cells):
        return False
    return any(c.lower().decode("ascii", "replace") in ID_COLUMNS or c[:1].isalpha() for c in cells)


def _id_column(header: list[bytes] | None, ncol: int, id_col, path) -> int:
    """The 0-based column holding the ids: ``id_col`` (a name or an index), else found by the header's names."""
    if id_col is None:
        if header is not None:
            lower = [h.lower().decode("ascii", "replace") for h in header]
            found = [c for c in ID_COLUMNS if c in lower]
            if not found:
                raise TraceFormatError(
                    f"no id column among {', '.join(x.decode() for x in header)}; name it with --id-col", path
                )
            return lower.index(found[0])
        if ncol == 1:
            return 0
        raise TraceFormatError(f"{ncol} columns and no header; say which holds the ids with --id-col", path)
    if isinstance(id_col, str) and not id_col.isdigit():
        if header is None or id_col.encode() not in header:
            raise TraceFormatError(f"no column named {id_col!r}", path)
        return header.index(id_col.encode())
    return int(id_col)


CSV_BLOCK = 1 << 22  # bytes of an unquoted CSV split into rows at a time (the rows' lists cost ~15x the text)


def _csv_id_tokens(path, id_col) -> np.ndarray:
    """The id column of a libCacheSim CSV as an array of byte strings (header and blank lines dropped).

    An unquoted file is split a block of lines at a time, keeping only the id column: holding every row's
    fields at once took about 19x the file's size (1.8 GB for a 93 MB trace). Quoted files go through
    Python's csv module (:func:`_quoted_rows`).
    """
    with open(path, "rb") as f:
        data = strip_bom(f.read())
    quoted = b'"' in data
    first_line = next((ln for ln in data[:65536].splitlines() if ln.strip()), b"")
    sep = b"\t" if b"\t" in first_line and b"," not in first_line else b","  # libCacheSim's delimiter=\t
    header, col, n_rows, parts = None, None, 0, []
    a = 0
    while a < len(data):
        if quoted:
            b = len(data)
        else:
            b = data.find(b"\n", min(a + CSV_BLOCK, len(data)))
            b = len(data) if b < 0 else b + 1
        block = data[a:b]
        rows = _quoted_rows(block, sep) if quoted else [ln.split(sep) for ln in block.splitlines() if ln.strip()]
        a = b
        if col is None:
            if not rows:
                continue
            first = [c.strip() for c in rows[0]]
            if _is_header(first):
                header, rows = first, rows[1:]
            col = _id_column(header, len(first), id_col, path)
        bad = next((i for i, r in enumerate(rows) if len(r) <= col), None)
        if bad is not None:
            raise TraceFormatError(
                f"line {n_rows + bad + 1 + (header is not None)} has {len(rows[bad])} fields, needs column {col}",
                path,
            )
        n_rows += len(rows)
        parts.append(np.array([r[col].strip() for r in rows], dtype=np.bytes_))
    if col is None:
        raise TraceFormatError("trace is empty (no lines)", path)
    if n_rows == 0:
        raise TraceFormatError("trace is empty (header only)", path)
    width = max(p.dtype.itemsize for p in parts)
    return np.concatenate([p.astype(f"S{width}") for p in parts])


def _scan_csv_ids(path, id_col) -> np.ndarray | None:
    """The id column of an unquoted, all-numeric-id CSV as uint64, scanned in blocks by a kernel (header and
    blank lines skipped as :func:`_csv_id_tokens` does), or ``None`` for anything else (quotes, string keys,
    short lines, an id column the header does not name...), which the caller reads the slow way.

    The row-splitting path took 1.8 GB and 27 s for a 20M-line (600 MB) trace."""
    from tracegen.formats import _kernels
    from tracegen.formats._common import BOM, two_pass_scan

    with open(path, "rb") as f:
        head = f.read(1 << 16)
    start = 3 if head.startswith(BOM) else 0
    pos, first_line = start, None
    for ln in head[start:].splitlines(keepends=True):
        if not ln.endswith(b"\n"):
            return None  # the first line does not end in the first 64 KiB (or a bare CR): the slow way
        if ln.strip():
            first_line = ln
            break
        pos += len(ln)
    if first_line is None or b'"' in first_line:
        return None
    sep = b"\t" if b"\t" in first_line and b"," not in first_line else b","
    first = [c.strip() for c in first_line.split(sep)]
    try:
        header = first if _is_header(first) else None
        col = _id_column(header, len(first), id_col, path)
    except TracegenError:
        return None  # the slow way raises it, naming the file
    if col < 0:
        return None
    offset = pos + (len(first_line) if header is not None else 0)

    def scan(buf, out, count, state):
        return _kernels._scan_csv_col(buf, sep[0], col, out, count)

    return two_pass_scan(path, offset, scan)


def read_lcs_csv(path, *, id_col=None, densify: bool = False, name: str = "t0") -> Trace:
    ids = _scan_csv_ids(path, id_col)  # the usual file: numeric ids, no quotes
    if ids is not None:
        return finish_single(ids, path, name=name, densify=densify)
    tokens = _csv_id_tokens(path, id_col)
    if densify:
        try:
            ids = parse_int_tokens(tokens, path)
        except TraceFormatError:
            # non-numeric keys (e.g. hashes as text): relabel by first appearance
            _, first, inv = np.unique(tokens, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            return Trace.single(rank[inv].astype(np.int64), name=name, cardinality=int(order.size)).validate(
                path
            )
        return finish_single(ids, path, name=name, densify=True)
    return finish_single(parse_int_tokens(tokens, path), path, name=name)


def write_lcs_csv(trace: Trace, path, *, force: bool = False, table=None, obj_size: int = 1) -> None:
    obj_size = _check_obj_size(obj_size, path)
    t = one_nonempty_table(trace.validate(), path, table, "lcs-csv")
    with LcsCsvStreamWriter(path, force=force, obj_size=obj_size) as w:
        w.write_table(t)


class LcsCsvStreamWriter(_RequestStreamWriter):
    """Streams ``time,obj_id,obj_size`` rows chunk by chunk (``time``: the sample index); nothing is kept in
    memory (buffering the chunks held the whole trace, twice, before the first row was written)."""

    fmt = "lcs-csv"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self.f.write(b"time,obj_id,obj_size\n")

    def write_table(self, t: Table) -> None:
        ids = ids_from_any(t.values, self.path)
        times = np.repeat(np.arange(t.n_samples, dtype=np.int64), t.lengths) + self.samples
        step = 1 << 20
        for i in range(0, ids.size, step):
            self.f.write(
                "".join(
                    f"{a},{b},{self.obj_size}\n"
                    for a, b in zip(times[i : i + step].tolist(), ids[i : i + step].tolist())
                ).encode()
            )
        self.n += int(ids.size)
