"""Helpers shared by the format modules: id checks, single-table selection, densifying, text parsing.

Conventions every reader follows: ids are returned as int64; a reader that cannot prove an id is a
non-negative integer below the cardinality raises :class:`TraceFormatError` naming the file.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import numpy as np

from tracegen.errors import TraceFormatError, TracegenError
from tracegen.trace import Table, Trace

INT64_MAX = np.iinfo(np.int64).max


BOM = b"\xef\xbb\xbf"


def strip_bom(data: bytes) -> bytes:
    """Text files saved by Windows editors may start with a UTF-8 byte-order mark: drop it."""
    return data[3:] if data.startswith(BOM) else data


def fail(path, message: str) -> TraceFormatError:
    """The error every reader raises: ``path: message``."""
    return TraceFormatError(message, path)


def ids_from_any(arr: np.ndarray, path, what: str = "ids", base: int = 0, densify_hint: bool = True) -> np.ndarray:
    """Cast an array of ids of any numeric dtype to int64, rejecting NaN, fractions, negatives, overflow.

    Error messages give flat positions plus ``base`` (for arrays read in blocks); ``densify_hint`` says
    whether the reader takes ``densify`` (suggested for uint64 ids above int64)."""
    a = np.asarray(arr)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise fail(path, f"{what} must be integers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if a.size:
            bad = ~np.isfinite(a)
            if bad.any():
                i = int(np.argmax(bad))
                raise fail(path, f"{what}: non-finite value {a.flat[i]} at position {i + base}")
            frac = a != np.floor(a)
            if frac.any():
                i = int(np.argmax(frac))
                raise fail(path, f"{what}: non-integer value {a.flat[i]} at position {i + base}")
            if a.max() >= 2.0**63:
                raise fail(path, f"{what}: value {a.max()} does not fit in int64")
        out = a.astype(np.int64)
    elif a.dtype == np.uint64:
        if a.size and a.max() > INT64_MAX:
            i = int(np.argmax(a > INT64_MAX))
            raise fail(
                path,
                f"{what}: id {int(a.flat[i])} at position {i + base} does not fit in int64"
                + ("; read with densify=True (--densify) to relabel ids 0..U-1" if densify_hint else ""),
            )
        # every id is below 2**63: the same bytes read as int64 (no copy; a 100M-request trace's ids are 800 MB)
        out = a.view(np.int64) if a.flags.c_contiguous else a.astype(np.int64)
    else:
        out = a.astype(np.int64, copy=False)
    if out.size:
        lo = out.min()
        if lo < 0:
            raise fail(
                path,
                f"negative {what[:-1] if what.endswith('s') else what} {int(lo)} "
                f"at position {int(np.argmin(out)) + base}",
            )
    return out


def finish_single(
    ids: np.ndarray, path, *, name: str = "t0", densify: bool = False, cardinality: int | None = None
) -> Trace:
    """A validated one-table, one-hot trace from raw ids (uint64 or int64), optionally densified.

    Raw ids are kept as they are (cardinality ``max id + 1``) unless ``densify`` relabels them
    ``0..U-1`` in order of first appearance (cardinality ``U``).
    """
    a = np.asarray(ids)
    if a.size == 0:
        raise fail(path, "trace is empty (no accesses)")
    if densify:
        if a.dtype == np.uint64 and not (a.flags.c_contiguous and int(a.max()) <= INT64_MAX):
            # keys of the full 64-bit range: a sort (dense_keys takes int64); below 2**63 the hash relabelling
            # is linear and needs a fraction of the memory (np.unique sorts copies of all n keys)
            _, first, inv = np.unique(a, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            keys, u = rank[inv].astype(np.int64), int(order.size)
        else:
            from tracegen.locality import dense_keys

            keys, u = dense_keys(a.view(np.int64) if a.dtype == np.uint64 else ids_from_any(a, path))
        return Trace.single(keys, name=name, cardinality=u).validate(path)
    v = ids_from_any(a, path)
    card = None if cardinality is None else int(cardinality)  # None: max id + 1, derived from the data
    return Trace.single(v, name=name, cardinality=card).validate(path)


def one_nonempty_table(trace: Trace, path, table: str | int | None = None, fmt: str = "") -> Table:
    """:func:`one_table` for a writer that writes it whole: a table without a single id is an error
    (the file would be empty and unreadable)."""
    t = one_table(trace, path, table, fmt)
    if t.n_accesses == 0:
        raise TracegenError(f"table {t.name!r} has no accesses: nothing to write", path)
    return t


def one_table(trace: Trace, path, table: str | int | None = None, fmt: str = "") -> Table:
    """The table a single-table format writes.

    ``table`` picks one by name or index; ``"all"`` flattens every table into one address space
    (table ``j``'s id ``i`` becomes ``offset_j + i`` with ``offset_j`` the sum of the cardinalities
    before it; accesses in sample order, tables in order within a sample), which is what a cache
    shared by all embedding tables sees.
    """
    if table is None:
        if trace.n_tables == 1:
            return trace.tables[0]
        raise TracegenError(
            f"{fmt} holds one id sequence but the trace has {trace.n_tables} tables; "
            "pick one with --table NAME or flatten them with --table all",
            path,
        )
    if isinstance(table, str) and table == "all":
        return flatten_tables(trace, path)
    if isinstance(table, str) and table.isdigit() and table not in trace.names:
        table = int(table)
    try:
        return trace.table(table)
    except (TracegenError, IndexError):
        raise TracegenError(
            f"no table {table!r}; tables are {', '.join(trace.names[:10])}"
            + (" ..." if trace.n_tables > 10 else ""),
            path,
        ) from None


def check_flat_id_space(cardinalities, path=None) -> None:
    """Refuse ``--table all`` when the flattened id space (the sum of the cardinalities) exceeds int64:
    the global ids ``offset_j + id`` would wrap and the written file would hold wrong ids."""
    cards = [int(c) for c in cardinalities]
    total = sum(cards)  # Python ints: no wrap-around
    if len(cards) > 1 and total > INT64_MAX:
        raise TracegenError(
            f"--table all: the {len(cards)} tables' cardinalities sum to {total}, beyond the int64 id "
            "range (2**63-1), so flattened ids would overflow; read the input with --densify "
            "to relabel ids 0..U-1, or pick one table with --table NAME",
            path,
        )


def flatten_tables(trace: Trace, path=None) -> Table:
    """All tables as one table: global ids ``offset_j + id``, bags concatenated sample by sample.

    Raises :class:`TracegenError` (naming ``path``) when the flattened id space exceeds int64."""
    if trace.n_tables == 1:
        return trace.tables[0]
    check_flat_id_space(trace.cardinalities, path)
    base = np.array([0, *itertools.accumulate(trace.cardinalities)], dtype=np.int64)
    b = trace.n_samples
    lengths = np.stack([t.lengths for t in trace.tables], axis=1)  # (B, T)
    total = int(lengths.sum())
    out = np.empty(total, dtype=np.int64)
    # destination start of table j's bag in sample s: row-major cumulative sum of lengths
    starts = np.zeros(b * trace.n_tables, dtype=np.int64)
    np.cumsum(lengths.ravel()[:-1], out=starts[1:])
    starts = starts.reshape(b, trace.n_tables)
    for j, t in enumerate(trace.tables):
        v = np.asarray(t.values)
        if v.size == 0:
            continue
        lens = t.lengths
        # position of each id within its bag
        within = np.arange(v.size, dtype=np.int64) - np.repeat(np.asarray(t.offsets[:-1]), lens)
        out[np.repeat(starts[:, j], lens) + within] = v + base[j]
    offsets = np.zeros(b + 1, dtype=np.int64)
    np.cumsum(lengths.sum(axis=1), out=offsets[1:])
    return Table("all", int(base[-1]), out, offsets)


def shown(line: bytes | str, width: int = 80) -> str:
    """A file line or token for an error message: decoded, repr-quoted, cut to about ``width`` characters."""
    text = line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else str(line)
    r = repr(text.rstrip("\r\n"))
    return r if len(r) <= width else r[: width - 4] + "...'"


def parse_int_tokens(
    tokens: Sequence[bytes] | np.ndarray, path, what: str = "ids", unsigned: bool = True
) -> np.ndarray:
    """Parse byte-string tokens as integers (uint64 when ``unsigned``), naming the first bad token."""
    arr = np.asarray(tokens)
    try:
        if unsigned:
            # reject signs and fractions explicitly; numpy's parser would wrap "-1" for uint64
            return _parse_checked(arr, np.uint64)
        return _parse_checked(arr, np.int64)
    except (ValueError, OverflowError):
        pass
    for i, tok in enumerate(arr.tolist()):
        s = tok.decode("ascii", "replace").strip() if isinstance(tok, bytes) else str(tok).strip()
        try:
            v = int(s)
        except ValueError:
            hint = " (string keys? --densify)" if what == "ids" else ""
            raise fail(path, f"{what}: {shown(s)} at position {i} is not an integer{hint}") from None
        if unsigned and v < 0:
            raise fail(path, f"negative id {v} at position {i}")
        if v >= 2**64:
            raise fail(path, f"{what}: {shown(s)} at position {i} does not fit in 64 bits")
    raise fail(path, f"{what}: could not parse")


def _parse_checked(arr: np.ndarray, dtype) -> np.ndarray:
    if arr.size == 0:
        return np.empty(0, dtype)
    if arr.dtype.kind == "S":
        stripped = np.char.strip(arr)
        bad = (np.char.find(stripped, b"-") >= 0) if dtype == np.uint64 else np.zeros(arr.shape, bool)
        bad |= np.char.find(stripped, b".") >= 0
        bad |= np.char.str_len(stripped) == 0
        if bad.any():
            raise ValueError("bad token")
        return stripped.astype(dtype)
    return arr.astype(dtype)


#: bytes of a text trace scanned at a time by :func:`scan_uint_text`
TEXT_BLOCK = 1 << 24


def scan_uint_text(path, mode: int) -> np.ndarray | None:
    """The ids of a plain text trace as uint64, in two streaming passes (count, then fill), or ``None`` when
    the file holds anything the fast scan does not take (then the caller reads it the slow way, which names
    the problem or handles string keys). ``mode`` 0: one id per line (``txt``); 1: comma separated
    (``dlrm-trace``).

    Splitting the text into one Python bytes object per id took about 18x the ids' memory (2.9 GB for a
    20M-id, 400 MB file, so a 100M-request trace ran out of memory); this keeps the ids and one block."""
    from tracegen.formats import _kernels

    def scan(buf, out, count, state):
        return _kernels._scan_uints(buf, mode, out, count, state)

    def done(state) -> bool:  # a trailing comma at the end of the file is an error
        return not (mode == 1 and state[0] and not state[1])

    return two_pass_scan(path, 0, scan, cut_at=b"," if mode == 1 else None, done=done, bom=True)


def two_pass_scan(path, offset: int, scan, *, cut_at: bytes | None = None, done=None, bom: bool = False):
    """Run ``scan(block, out, count, state) -> (count, err)`` over the file from byte ``offset`` in blocks of
    :data:`TEXT_BLOCK` cut after a newline (or after ``cut_at``): a counting pass (``out`` empty), then a
    filling one into a uint64 array of the counted size. ``None`` when ``scan`` reports an error (``err >=
    0``), when nothing was found, when ``done(state)`` is false at the end, or when no separator occurs in
    ``4 * TEXT_BLOCK`` bytes."""
    total = None
    out = np.empty(0, np.uint64)
    for _ in range(2):
        count = 0
        state = np.zeros(3, np.int64)
        with open(path, "rb") as f:
            f.seek(offset)
            first, rest = True, b""
            while True:
                data = f.read(TEXT_BLOCK)
                block = rest + data
                if first:
                    block = strip_bom(block) if bom else block
                    first = False
                if data:
                    cut = max(block.rfind(b"\n"), block.rfind(cut_at) if cut_at else -1)
                    if cut < 0:
                        if len(block) > 4 * TEXT_BLOCK:
                            return None
                        rest = block
                        continue
                    rest, block = block[cut + 1 :], block[: cut + 1]
                else:
                    rest = b""
                count, err = scan(np.frombuffer(block, np.uint8), out, count, state)
                if err >= 0:
                    return None
                if not data:
                    break
        if done is not None and not done(state):
            return None
        if total is None:
            if count == 0:
                return None
            total = count
            out = np.empty(total, np.uint64)
        elif count != total:  # the file changed between the passes
            return None
    return out


def stem_and_dir(path) -> tuple[str, str]:
    p = os.fspath(path)
    d = os.path.dirname(os.path.abspath(p))
    base = os.path.basename(p)
    stem = base[: -len(os.path.splitext(base)[1])] if os.path.splitext(base)[1] else base
    return d, stem
