"""Plain id sequences: ``txt`` (one integer id per line) and ``npy`` (a NumPy array).

``txt`` and 1-D ``npy`` hold one table of raw 64-bit keys: kept as they are (cardinality ``max id +
1``) unless ``densify=True`` relabels them ``0..U-1`` by first appearance (in ``txt`` also keys that are
not numbers, as libCacheSim's plain-text traces may hold). A 2-D ``npy`` of shape
``(B, T)`` is read as ``T`` one-hot tables (the DLRM ``X_cat`` layout); the writer writes a 2-D
array for a one-hot multi-table trace and a 1-D array for one table (``table=`` picks one, ``"all"``
flattens). ``npy`` is memory-mapped when it is int64 and not densified.
"""

from __future__ import annotations

import os
import re

import numpy as np

from tracegen._util import atomic_output
from tracegen.errors import TraceFormatError, TracegenError
from tracegen.formats._common import (
    finish_single,
    ids_from_any,
    one_nonempty_table,
    one_table,
    parse_int_tokens,
    scan_uint_text,
    shown,
    strip_bom,
)
from tracegen.formats._npzio import RawSink, _npy_header
from tracegen.formats.dlrm import _IdStreamWriter
from tracegen.trace import Trace


def read_txt(path, *, densify: bool = False, name: str = "t0") -> Trace:
    ids = scan_uint_text(path, 0)  # the usual file, numbers only: no Python object per line
    if ids is not None:
        return finish_single(ids, path, name=name, densify=densify)
    with open(path, "rb") as f:
        data = strip_bom(f.read())
    lines = data.split(b"\n")
    tokens = [ln.strip() for ln in lines]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise TraceFormatError("trace is empty (no ids)", path)
    if any(len(t.split()) > 1 for t in tokens[:100]):
        raise _bad_txt_line(lines, path) or TraceFormatError("expected one id per line, found several", path)
    try:
        ids = parse_int_tokens(tokens, path)
    except TraceFormatError as e:
        if densify:  # string keys, as libCacheSim's txt traces may hold: relabelled by first appearance
            return _densify_keys(np.array(tokens, dtype=np.bytes_), path, name)
        # name the line of the file, not the position among non-empty lines
        raise _bad_txt_line(lines, path) or TraceFormatError(
            str(e).split(": ", 1)[1].replace("position", "id number"), path
        ) from None
    return finish_single(ids, path, name=name, densify=densify)


def _densify_keys(keys: np.ndarray, path, name: str) -> Trace:
    """Keys of any kind (byte strings) as ids ``0..U-1`` in order of first appearance."""
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return Trace.single(rank[inv].astype(np.int64), name=name, cardinality=int(order.size)).validate(path)


_INT_LINE = re.compile(rb"\s*\d+\s*")


def _is_float(tok: bytes) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _bad_txt_line(lines: list[bytes], path) -> TraceFormatError | None:
    """The error for the first line that is not one non-negative integer id (``None`` if every line is)."""
    for i, ln in enumerate(lines, 1):
        if not ln.strip() or _INT_LINE.fullmatch(ln):
            continue
        parts = ln.split()
        if len(parts) > 1 and all(_INT_LINE.fullmatch(t) for t in parts):
            return TraceFormatError(
                f"line {i} holds {len(parts)} ids, expected one id per line: {shown(ln)} "
                "(columns? read them with --from lcs-csv --id-col N)",
                path,
            )
        if parts and re.fullmatch(rb"-\d+", parts[0]) and len(parts) == 1:
            return TraceFormatError(f"negative id {ln.strip().decode()} on line {i}", path)
        if len(parts) == 1 and _is_float(parts[0]):
            return TraceFormatError(f"line {i}: {shown(parts[0])} is not an integer", path)
        if i == 1 and ln.lstrip()[:1] in (b"{", b"["):  # JSON: a dist.json, most likely
            text = b"".join(lines[:50])
            if b"tracegen-dist" in text:
                return TraceFormatError(
                    "is a dist.json (a trace model), not a trace: sample a trace from it first "
                    "(tracegen sample FILE -o trace.npz)", path
                )
            return TraceFormatError("is JSON, not a trace (formats: see tracegen convert --help)", path)
        hint = " (string keys, one per line? --densify relabels them)" if len(parts) == 1 else ""
        return TraceFormatError(f"not a trace: line {i} is not an integer id: {shown(ln)}{hint}", path)
    return None


def write_txt(trace: Trace, path, *, force: bool = False, table=None) -> None:
    t = one_nonempty_table(trace.validate(), path, table, "txt")
    with TxtStreamWriter(path, force=force) as w:
        w.write_ids(t.values)


class TxtStreamWriter(_IdStreamWriter):
    fmt = "txt"

    def write_ids(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        step = 1 << 20
        for i in range(0, ids.size, step):
            self.f.write(("\n".join(map(str, ids[i : i + step].tolist())) + "\n").encode())
        self.n += int(ids.size)


def read_npy(path, *, densify: bool = False, name: str = "t0", names=None) -> Trace:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise TraceFormatError(
            "is an npz/zip archive, not a .npy array; drop --from npy to detect its format "
            "(or say --from npz, dlrm-npz or tbe-pt)",
            path,
        )
    if magic != b"\x93NUMPY":
        raise TraceFormatError("not a .npy file (no NumPy header)", path)
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        msg = str(e)
        if "pickle" in msg or "object" in msg.lower():
            msg = "it holds Python objects, not an integer array"
        raise TraceFormatError(f"not a readable .npy file ({msg})", path) from None
    if not isinstance(a, np.ndarray):
        raise TraceFormatError("not a .npy array", path)
    if a.ndim == 2:
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise TraceFormatError(f"trace is empty (shape {a.shape})", path)
        ids = ids_from_any(np.asarray(a), path)
        if densify:
            from tracegen.locality import dense_keys

            cols = [dense_keys(ids[:, j]) for j in range(ids.shape[1])]
            ids = np.stack([c[0] for c in cols], axis=1)
            cards = [c[1] for c in cols]
        else:
            cards = None
        return Trace.from_dense_ids(ids, cards, names).validate(path)
    if a.ndim != 1:
        raise TraceFormatError(
            f"expected a 1-D id sequence or a (samples, tables) matrix, got shape {a.shape}", path
        )
    if a.dtype == np.int64 and not densify and a.size:
        if a.min() < 0:
            raise TraceFormatError(f"negative id {int(a.min())} at position {int(np.argmin(a))}", path)
        return Trace.single(a, name=name).validate(path)  # cardinality max id + 1, derived from the data
    return finish_single(np.asarray(a), path, name=name, densify=densify)


_MULTI_HOT_NPY = (
    "npy holds one id sequence or a one-hot (samples x tables) matrix; this trace is "
    "multi-hot: pick a table with --table NAME or flatten with --table all"
)


def write_npy(trace: Trace, path, *, force: bool = False, table=None) -> None:
    trace.validate()
    if table is None and trace.n_tables > 1:
        if not trace.is_one_hot:
            raise TracegenError(_MULTI_HOT_NPY, path)
        arr = trace.to_dense_ids()
    else:
        arr = np.asarray(one_nonempty_table(trace, path, table, "npy").values, np.int64)
    with atomic_output(path, force, suffix=".npy") as tmp:
        np.save(tmp, arr)


class NpyStreamWriter:
    """Streams one table's ids (or a one-hot ``(B, T)`` matrix) to a raw part; .npy at close."""

    def __init__(self, path, *, names=None, cardinalities=None, force: bool = False, table=None, **_):
        self.path, self.force, self.table = os.fspath(path), force, table
        from tracegen._util import check_output

        check_output(self.path, force)
        self.folder = os.path.dirname(os.path.abspath(self.path))
        self.sink: RawSink | None = None
        self._closed = False

    def write(self, chunk: Trace) -> None:
        if self.table is None and chunk.n_tables > 1:
            if not chunk.is_one_hot:
                raise TracegenError(_MULTI_HOT_NPY, self.path)
            arr = chunk.to_dense_ids()
        else:
            arr = np.asarray(one_table(chunk, self.path, self.table, "npy").values, np.int64)
        if self.sink is None:
            self.sink = RawSink(self.folder, np.int64, arr.shape[1:])
        self.sink.append(arr)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.sink is None or self.sink.rows == 0:
                raise TracegenError("trace is empty (no accesses)", self.path)
            self.sink.finish()
            with atomic_output(self.path, self.force, suffix=".npy") as tmp, open(tmp, "wb") as f:
                f.write(_npy_header(self.sink.dtype, self.sink.shape))
                with open(self.sink.path, "rb") as r:
                    while block := r.read(1 << 24):
                        f.write(block)
        finally:
            self.abort()

    def abort(self) -> None:
        self._closed = True
        if self.sink is not None:
            self.sink.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()
