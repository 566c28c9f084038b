"""Raw Criteo text: ``criteo-tsv`` (TAB separated, no header: Kaggle ``train.txt``, Terabyte ``day_N``) and
``criteo-csv`` (comma separated with a ``label,I1..I13,C1..C26`` header).

Each line is ``label``, 13 integer features, 26 hex categorical features. Parsed the way the DLRM
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

import os
from collections.abc import Iterator

import numpy as np
from numba import njit

from tracegen.errors import TraceFormatError
from tracegen.trace import Table, Trace, default_names

N_INT = 13
N_CAT = 26
N_FIELDS = 1 + N_INT + N_CAT
BLOCK_BYTES = 16 << 20

# error codes of the parse kernel
_E_FIELDS, _E_INT, _E_HEX = 1, 2, 3
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True)
def _parse_block(buf, n_lines, sep):
    """Parse ``n_lines`` complete lines of ``buf`` (uint8) in one pass over the bytes.

    Returns ``(y, x_int, x_cat, rows, err_line, err_field, err_code)``; parsing stops at the first
    malformed line (``err_code`` 1: wrong field count, 2: bad number, 3: bad hex). Empty fields are 0;
    integers may carry a sign and a fractional part (truncated); spaces and a CR are ignored.
    """
    y = np.zeros(n_lines, np.int64)
    x_int = np.zeros((n_lines, 13), np.int64)
    x_cat = np.zeros((n_lines, 26), np.uint64)
    n = buf.shape[0]
    pos = 0
    row = 0
    while row < n_lines and pos < n:
        field = 0
        while True:
            i = pos
            if field < 14:
                v = 0
                neg = False
                digits = 0
                frac = False
                signed = False
                bad = False
                while i < n:
                    c = buf[i]
                    if c == sep or c == 10:
                        break
                    if 48 <= c <= 57:
                        if not frac:
                            v = v * 10 + (c - 48)
                            digits += 1
                    elif c == 46 and digits > 0 and not frac:
                        frac = True
                    elif (c == 45 or c == 43) and digits == 0 and not signed:
                        signed = True
                        neg = c == 45
                    elif c != 32 and c != 13:
                        bad = True
                    i += 1
                if bad or (signed and digits == 0) or digits > 18:
                    return y, x_int, x_cat, row, row, field, 2
                if field == 0:
                    y[row] = -v if neg else v
                elif field < 14:
                    x_int[row, field - 1] = -v if neg else v
            else:
                h = np.uint64(0)
                nd = 0
                while i < n:
                    c = buf[i]
                    if c == sep or c == 10:
                        break
                    if 48 <= c <= 57:
                        d = c - 48
                    elif 97 <= c <= 102:
                        d = c - 87
                    elif 65 <= c <= 70:
                        d = c - 55
                    elif c == 32 or c == 13:
                        i += 1
                        continue
                    else:
                        return y, x_int, x_cat, row, row, field, 3
                    h = (h << np.uint64(4)) | np.uint64(d)
                    nd += 1
                    i += 1
                if nd > 16:
                    return y, x_int, x_cat, row, row, field, 3
                if field < 40:
                    x_cat[row, field - 14] = h
            field += 1
            if field > 40:
                return y, x_int, x_cat, row, row, field, 1
            pos = i + 1
            if i >= n or buf[i] == 10:
                break
        if field != 40:
            return y, x_int, x_cat, row, row, field, 1
        row += 1
    return y, x_int, x_cat, row, -1, -1, 0


@njit(cache=True)
def _densify(col, keys, vals, count, shift, start):
    """Map ``col[start:]`` to first-appearance ids with an open-addressing table (``vals == -1`` empty).

    Stops before the table passes half full; returns ``(out, count, stopped_at)``."""
    n = col.shape[0]
    out = np.empty(n, np.int64)
    mask = keys.shape[0] - 1
    limit = keys.shape[0] // 2
    for i in range(start, n):
        k = col[i]
        h = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift)) & mask
        while True:
            v = vals[h]
            if v == -1:
                if count >= limit:
                    return out, count, i
                keys[h] = k
                vals[h] = count
                out[i] = count
                count += 1
                break
            if keys[h] == k:
                out[i] = v
                break
            h = (h + 1) & mask
    return out, count, n


@njit(cache=True)
def _rehash(keys, vals, new_keys, new_vals, shift):
    mask = new_keys.shape[0] - 1
    for j in range(keys.shape[0]):
        if vals[j] != -1:
            k = keys[j]
            h = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift)) & mask
            while new_vals[h] != -1:
                h = (h + 1) & mask
            new_keys[h] = k
            new_vals[h] = vals[j]
    return new_keys, new_vals


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
            part, self.count, stop = _densify(col, self.keys, self.vals, self.count, 64 - self.bits, start)
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
        self.keys, self.vals = _rehash(self.keys, self.vals, nk, nv, 64 - self.bits)


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

    @property
    def counts(self) -> list[int]:
        return [c.count for c in self.columns]

    def _lines(self) -> Iterator[tuple[np.ndarray, int, int]]:
        """Yield (block of complete lines, n_lines, first line number)."""
        line_no = 1
        with open(self.path, "rb") as f:
            first = True
            rest = b""
            while True:
                data = f.read(self.block_bytes)
                self.bytes_read += len(data)
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
                    nl = block.find(b"\n")
                    head = block[: nl if nl >= 0 else len(block)]
                    if head[:1].isalpha() or head.lower().startswith(b"label"):
                        block = block[nl + 1 :] if nl >= 0 else b""
                        line_no += 1
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
        for arr, n_lines, line_no in self._lines():
            y, x_int, x_cat, rows, eline, efield, code = _parse_block(arr, n_lines, self.sep)
            if code:
                ln = line_no + eline
                if code == _E_FIELDS:
                    msg = f"line {ln}: expected {N_FIELDS} fields (label, 13 integers, 26 hex categories)"
                    if efield < N_FIELDS:
                        msg += f", found {efield}"
                    else:
                        msg += ", found more"
                    msg += " (truncated or not Criteo text?)"
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


def chunk_trace(y: np.ndarray, x_int: np.ndarray, ids: np.ndarray, counts, names=None) -> Trace:
    """A trace of one parsed chunk (cardinalities: the counts so far)."""
    names = names or default_names(ids.shape[1])
    b = ids.shape[0]
    offs = np.arange(b + 1, dtype=np.int64)
    tables = [
        Table(names[j], int(counts[j]), np.ascontiguousarray(ids[:, j]), offs) for j in range(ids.shape[1])
    ]
    return Trace(tables, dense=x_int.astype(np.float32), labels=y.astype(np.float32))


def read_criteo(
    path, fmt: str = "criteo-tsv", *, max_ind_range: int = -1, progress: bool | None = None
) -> Trace:
    """Read a whole Criteo text file into a one-hot trace (26 tables, 13 dense features, labels)."""
    from tracegen._util import progress as bar

    parser = CriteoParser(path, fmt, max_ind_range=max_ind_range)
    ys, xs, idss = [], [], []
    with bar(total=parser.size, desc="parse", unit="B", unit_scale=True, enabled=progress) as pb:
        last = 0
        for y, x_int, ids in parser.chunks():
            ys.append(y)
            xs.append(x_int)
            idss.append(ids)
            pb.update(parser.bytes_read - last)
            last = parser.bytes_read
    if not ys:
        raise TraceFormatError("trace is empty (no data lines)", path)
    ids = np.concatenate(idss)
    return Trace.from_dense_ids(
        ids,
        parser.counts,
        default_names(N_CAT),
        dense=np.concatenate(xs).astype(np.float32),
        labels=np.concatenate(ys).astype(np.float32),
    ).validate(path)
