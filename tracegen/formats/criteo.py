"""Raw Criteo text: ``criteo-tsv`` (TAB separated, no header: Kaggle ``train.txt``, Terabyte ``day_N``) and
``criteo-csv`` (comma separated with a ``label,I1..I13,C1..C26`` header; leading index columns, as pandas'
``to_csv`` writes them, or the ``Id`` of the Kaggle competition's ``train.csv``/``test.csv``, are skipped).

Each line is ``label``, 13 integer features, 26 hex categorical features; Kaggle's ``test.txt`` has no
label (39 fields, told apart by the first line's field count), and gives a trace without labels.
Gzip-compressed files (``day_0.gz``) are read as they are. Parsed the way the DLRM
reference's ``data_utils.getCriteoAdData`` preprocesses it, in one streaming pass with bounded memory:

- a missing field is ``0`` (the reference turns ``''`` into ``'0'``): a missing category is hex ``0``
  and gets an id like any other value;
- categories are parsed as hex; with ``max_ind_range > 0`` they are first reduced ``% max_ind_range``
  (the reference's ``--max-ind-range``); then each column's values are relabelled ``0..U-1`` in order
  of first appearance in the file (the reference's ``convertDicts``), and ``counts`` are the U's;
- integer features are clipped at 0 (the reference's ``X_int[X_int < 0] = 0``); ``"260.0"`` (as in
  CSVs written by pandas) is read as 260.

Parsing and relabelling are numba kernels over blocks of bytes (one open-addressing hash table per
column), so memory is one block plus the tables. :class:`CriteoParser` yields chunks;
:func:`read_criteo` builds a whole :class:`Trace`; ``tracegen convert`` streams chunks to a writer.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator

import numpy as np

from tracegen.errors import TraceFormatError
from tracegen.trace import Table, Trace, default_names

N_INT = 13
N_CAT = 26
N_FIELDS = 1 + N_INT + N_CAT
BLOCK_BYTES = 16 << 20

# leading columns before the label: pandas' to_csv index (unnamed, or the index's name) and the Id of the
# Kaggle competition's own train.csv (Id,Label,I1,...) and test.csv (Id,I1,...)
_INDEX_NAMES = (b"", b"unnamed: 0", b"index", b"id")

# error codes of the parse kernel
_E_FIELDS, _E_INT, _E_HEX = 1, 2, 3


def _kernels():
    from tracegen.formats import _kernels as k

    return k


class _Column:
    """One column's hash table: raw value -> dense id by first appearance."""

    def __init__(self, bits: int = 10):
        self.bits = bits
        self.keys = np.zeros(1 << bits, np.uint64)
        self.vals = np.full(1 << bits, -1, np.int64)
        self.count = 0

    def map(self, col: np.ndarray) -> np.ndarray:
        start = 0
        out = None
        while True:
            part, self.count, stop = _kernels()._densify(
                col, self.keys, self.vals, self.count, 64 - self.bits, start
            )
            if out is None:
                out = part
            else:
                out[start:stop] = part[start:stop]
            if stop == col.shape[0]:
                return out
            start = stop
            self._grow()

    def _grow(self) -> None:
        self.bits += 1
        nk = np.zeros(1 << self.bits, np.uint64)
        nv = np.full(1 << self.bits, -1, np.int64)
        self.keys, self.vals = _kernels()._rehash(self.keys, self.vals, nk, nv, 64 - self.bits)


class CriteoParser:
    """Streams a Criteo text file as chunks ``(y, x_int, ids)``; ``counts`` grows with each chunk."""

    def __init__(
        self, path, fmt: str = "criteo-tsv", *, max_ind_range: int = -1, block_bytes: int = BLOCK_BYTES
    ):
        self.path = os.fspath(path)
        if fmt not in ("criteo-tsv", "criteo-csv"):
            raise ValueError(fmt)
        self.sep = 9 if fmt == "criteo-tsv" else 44
        self.max_ind_range = int(max_ind_range) if max_ind_range is not None else -1
        self.block_bytes = int(block_bytes)
        self.columns = [_Column() for _ in range(N_CAT)]
        self.size = os.path.getsize(self.path)
        self.bytes_read = 0
        self.rows = 0
        self.labelled: bool | None = None  # False for Kaggle's test.txt (39 fields); known after the first block
        self.skip = 0  # leading columns before the label (or I1) in a header: a pandas index

    @property
    def counts(self) -> list[int]:
        return [c.count for c in self.columns]

    def _lines(self) -> Iterator[tuple[np.ndarray, int, int]]:
        """Yield (block of complete lines, n_lines, first line number)."""
        line_no = 1
        with open(self.path, "rb") as raw:
            magic = raw.read(4)
            if magic == b"\x28\xb5\x2f\xfd":
                raise TraceFormatError("zstd-compressed: decompress it first (zstd -d FILE)", self.path)
            gz = magic[:2] == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            first = True
            rest = b""
            while True:
                try:
                    data = f.read(self.block_bytes)
                except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt .gz
                    raise TraceFormatError(f"cannot decompress ({e})", self.path) from None
                self.bytes_read = raw.tell()
                if not data and not rest:
                    return
                block = rest + data
                if data:
                    cut = block.rfind(b"\n")
                    if cut < 0:
                        rest = block
                        continue
                    rest = block[cut + 1 :]
                    block = block[: cut + 1]
                else:
                    rest = b""
                if first:
                    first = False
                    if block.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors)
                        block = block[3:]
                    nl = block.find(b"\n")
                    head = block[: nl if nl >= 0 else len(block)]
                    cells = [c.strip().strip(b'"').strip().lower() for c in head.split(bytes([self.sep]))]
                    if head[:1].isalpha() or head.lower().startswith(b"label") or b"i1" in cells:
                        block = block[nl + 1 :] if nl >= 0 else b""
                        line_no += 1
                        if b"i1" in cells:  # a header counts the columns: index columns first (pandas)?
                            while self.skip < len(cells) and cells[self.skip] in _INDEX_NAMES:
                                self.skip += 1
                            self.labelled = len(cells) - self.skip != N_FIELDS - 1
                arr = np.frombuffer(block, dtype=np.uint8)
                n_lines = int(np.count_nonzero(arr == 10))
                if arr.size and arr[-1] != 10:
                    n_lines += 1
                if n_lines:
                    yield arr, n_lines, line_no
                line_no += n_lines
                if not data:
                    return

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(y int32 (b,), x_int int32 (b, 13) clipped at 0, ids int64 (b, 26))`` per block."""
        blank_at = None  # line number of a blank line, fatal only if data lines follow it
        for arr, n_lines, line_no in self._lines():
            if self.labelled is None:
                self.labelled = _field_count(arr, 0, self.sep) - self.skip != N_FIELDS - 1
            first = 0 if self.labelled else 1
            y, x_int, x_cat, rows, eline, efield, code = _kernels()._parse_block(
                arr, n_lines, self.sep, _kernels().DIGITS, first, self.skip
            )
            if blank_at is not None and (rows or code):
                raise TraceFormatError(f"line {blank_at}: blank line between data lines", self.path)
            if code == _E_FIELDS and efield == first + 1 and _blank_from(arr, eline):
                blank_at, code = line_no + eline, 0  # blank lines at the end of the file are fine
            if code:
                ln = line_no + eline
                if code == _E_FIELDS:
                    if self.labelled:
                        msg = f"line {ln}: expected {N_FIELDS} fields (label, 13 integers, 26 hex categories)"
                    else:
                        msg = f"line {ln}: expected {N_FIELDS - 1} fields (13 integers, 26 hex categories, no label"
                        msg += " as line 1 and Kaggle's test.txt)"
                    if self.skip:
                        msg += f" after {self.skip} index column{'s' if self.skip > 1 else ''}"
                    found = _field_count(arr, eline, self.sep) - self.skip
                    msg += f", found {found} (truncated or not Criteo text?)"
                elif code == _E_INT:
                    what = "label" if efield == 0 else f"integer feature I{efield}"
                    msg = f"line {ln}: {what} is not a number"
                else:
                    msg = f"line {ln}: category C{efield - N_INT} is not hexadecimal"
                raise TraceFormatError(msg, self.path)
            if rows == 0:
                continue
            y, x_int, x_cat = y[:rows], x_int[:rows], x_cat[:rows]
            if self.max_ind_range > 0:
                x_cat = x_cat % np.uint64(self.max_ind_range)
            ids = np.empty((rows, N_CAT), np.int64)
            for j, col in enumerate(self.columns):
                ids[:, j] = col.map(np.ascontiguousarray(x_cat[:, j]))
            self.rows += rows
            yield (y.astype(np.int32), np.clip(x_int, 0, np.iinfo(np.int32).max).astype(np.int32), ids)


def _field_count(arr: np.ndarray, line: int, sep: int) -> int:
    """Fields on line ``line`` (0-based) of the block."""
    starts = np.flatnonzero(arr == 10)
    start = 0 if line == 0 else int(starts[line - 1]) + 1
    stop = int(starts[line]) if line < starts.size else arr.size
    return int(np.count_nonzero(arr[start:stop] == sep)) + 1


def _blank_from(arr: np.ndarray, line: int) -> bool:
    """True if lines ``line..`` (0-based) of the block hold only whitespace."""
    starts = np.flatnonzero(arr == 10)
    start = 0 if line == 0 else int(starts[line - 1]) + 1
    return not bytes(arr[start:]).strip()


def chunk_trace(
    y: np.ndarray, x_int: np.ndarray, ids: np.ndarray, counts, names=None, labelled: bool | None = True
) -> Trace:
    """A trace of one parsed chunk (cardinalities: the counts so far; no labels unless ``labelled``)."""
    names = names or default_names(ids.shape[1])
    b = ids.shape[0]
    offs = np.arange(b + 1, dtype=np.int64)
    tables = [
        Table(names[j], int(counts[j]), np.ascontiguousarray(ids[:, j]), offs) for j in range(ids.shape[1])
    ]
    labels = y.astype(np.float32) if labelled is not False else None
    return Trace(tables, dense=x_int.astype(np.float32), labels=labels)


def read_criteo(
    path, fmt: str = "criteo-tsv", *, max_ind_range: int = -1, progress: bool | None = None
) -> Trace:
    """Read a whole Criteo text file into a one-hot trace (26 tables, 13 dense features, labels).

    Memory: the trace (8 bytes per id, one shared read-only ``offsets``) plus the parsed ids kept as int32
    until the end. For files larger than memory, stream them with ``tracegen convert`` instead.
    """
    from tracegen._util import progress as bar

    parser = CriteoParser(path, fmt, max_ind_range=max_ind_range)
    ys, xs, idss = [], [], []
    with bar(total=parser.size, desc="parse", unit="B", unit_scale=True, enabled=progress) as pb:
        last = 0
        for y, x_int, ids in parser.chunks():
            ys.append(y)
            xs.append(x_int.astype(np.float32))
            idss.append(ids.astype(np.int32) if ids.size and ids.max() < 2**31 else ids)
            pb.update(parser.bytes_read - last)
            last = parser.bytes_read
    if not ys:
        raise TraceFormatError("trace is empty (no data lines)", path)
    b = sum(y.shape[0] for y in ys)
    cols = [np.empty(b, np.int64) for _ in range(N_CAT)]
    start = 0
    while idss:
        ids = idss.pop(0)
        for j in range(N_CAT):
            cols[j][start : start + ids.shape[0]] = ids[:, j]
        start += ids.shape[0]
    offsets = np.arange(b + 1, dtype=np.int64)
    offsets.flags.writeable = False
    names = default_names(N_CAT)
    tables = [Table(names[j], int(parser.counts[j]), cols[j], offsets) for j in range(N_CAT)]
    labels = np.concatenate(ys).astype(np.float32) if parser.labelled else None
    return Trace(tables, dense=np.concatenate(xs), labels=labels).validate(path)
