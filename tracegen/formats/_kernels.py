"""Numba kernels of the format readers and writers, imported lazily (``import tracegen.formats`` stays light).

- :func:`_parse_block`: Criteo text lines to labels, integer features and raw hex categories.
- :func:`_densify` / :func:`_rehash`: per-column open-addressing hash tables, value -> first-appearance id.
- :func:`_next_rev` / :func:`_rehash_next`: libCacheSim's ``next_access_vtime`` by a backward scan.

Kernels take arrays and return arrays; callers in :mod:`.criteo` and :mod:`.cache` validate and grow tables.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _digit_table() -> np.ndarray:
    """Byte -> value: ``0..15`` for hex digits (``0-9a-fA-F``), ``-1`` ignorable (space, CR), ``-2`` other.

    A table lookup instead of range tests keeps the parse loop free of unpredictable branches."""
    t = np.full(256, -2, np.int64)
    for i, ch in enumerate(b"0123456789"):
        t[ch] = i
    for i, ch in enumerate(b"abcdef"):
        t[ch] = 10 + i
    for i, ch in enumerate(b"ABCDEF"):
        t[ch] = 10 + i
    t[32] = -1
    t[13] = -1
    return t


DIGITS = _digit_table()


@njit(cache=True)
def _parse_block(buf, n_lines, sep, digits, first=0, skip=0):
    """Parse ``n_lines`` complete lines of ``buf`` (uint8) in one pass over the bytes.

    ``digits`` is :data:`DIGITS`; ``first`` is 1 for lines without the label field (Kaggle's
    ``test.txt``: 39 fields; ``y`` stays 0 and field numbers still count the label); ``skip`` leading
    fields of every line are ignored (the index column of a CSV written by pandas). Returns
    ``(y, x_int, x_cat, rows, err_line, err_field, err_code)``; parsing stops at the first malformed
    line (``err_code`` 1: wrong field count, 2: bad number, 3: bad hex). Empty fields are 0; integers
    may carry a sign and a fractional part (truncated); spaces and a CR are ignored.
    """
    y = np.zeros(n_lines, np.int64)
    x_int = np.zeros((n_lines, 13), np.int64)
    x_cat = np.zeros((n_lines, 26), np.uint64)
    n = buf.shape[0]
    pos = 0
    row = 0
    while row < n_lines and pos < n:
        for _ in range(skip):
            while pos < n and buf[pos] != sep and buf[pos] != 10:
                pos += 1
            if pos < n and buf[pos] == sep:
                pos += 1
        field = first
        while True:
            i = pos
            if field < 14:
                v = 0
                neg = False
                nd = 0
                frac = False
                signed = False
                bad = False
                while i < n:
                    c = buf[i]
                    if c == sep or c == 10:
                        break
                    d = digits[c]
                    if 0 <= d <= 9:
                        if not frac:
                            v = v * 10 + d
                            nd += 1
                    elif c == 46 and nd > 0 and not frac:
                        frac = True
                    elif (c == 45 or c == 43) and nd == 0 and not signed:
                        signed = True
                        neg = c == 45
                    elif d != -1:
                        bad = True
                    i += 1
                if bad or (signed and nd == 0) or nd > 18:
                    return y, x_int, x_cat, row, row, field, 2
                if field == 0:
                    y[row] = -v if neg else v
                else:
                    x_int[row, field - 1] = -v if neg else v
            else:
                h = 0
                nd = 0
                while i < n:
                    c = buf[i]
                    if c == sep or c == 10:
                        break
                    d = digits[c]
                    if d >= 0:
                        h = (h << 4) | d
                        nd += 1
                    elif d == -2:
                        return y, x_int, x_cat, row, row, field, 3
                    i += 1
                if nd > 16:
                    return y, x_int, x_cat, row, row, field, 3
                if field < 40:
                    x_cat[row, field - 14] = np.uint64(h)
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


@njit(cache=True)
def _next_rev(ids, base, keys, vals, count, shift, stop):
    """Backward scan of ``ids[:stop]`` (positions ``base + i``) with an open-addressing table id -> next
    1-based position (``vals == 0`` empty). Stops before the table passes half full; returns
    ``(out, count, resume)`` where ``ids[resume:stop]`` are done."""
    out = np.empty(ids.shape[0], np.int64)
    mask = keys.shape[0] - 1
    limit = keys.shape[0] // 2
    for i in range(stop - 1, -1, -1):
        k = ids[i]
        h = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift)) & mask
        while True:
            v = vals[h]
            if v == 0:
                if count >= limit:
                    return out, count, i + 1
                keys[h] = k
                vals[h] = base + i + 1
                out[i] = -1
                count += 1
                break
            if keys[h] == k:
                out[i] = v
                vals[h] = base + i + 1
                break
            h = (h + 1) & mask
    return out, count, 0


@njit(cache=True)
def _rehash_next(keys, vals, new_keys, new_vals, shift):
    mask = new_keys.shape[0] - 1
    for j in range(keys.shape[0]):
        if vals[j] != 0:
            k = keys[j]
            h = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift)) & mask
            while new_vals[h] != 0:
                h = (h + 1) & mask
            new_keys[h] = k
            new_vals[h] = vals[j]
    return new_keys, new_vals


_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True)
def _parse_uint(buf, i, n):
    """The unsigned decimal number at ``buf[i:n]``: ``(value, end, overflow)``; ``end`` is the first byte
    that is not a digit, or where the number reached 2**64 (``overflow`` true)."""
    ten = np.uint64(10)
    v = np.uint64(0)
    while i < n and 48 <= buf[i] <= 57:
        d = np.uint64(buf[i] - 48)
        if v > (_U64_MAX - d) // ten:
            return v, i, True
        v = v * ten + d
        i += 1
    return v, i, False


@njit(cache=True)
def _scan_uints(buf, mode, out, count, state):
    """Unsigned decimal ids of ``buf`` (uint8): ``mode`` 0 is one id per line (``txt``), 1 is ids separated by
    commas, lines of them (``dlrm-trace``). Spaces, tabs and CRs around ids are ignored; blank lines too.

    Counts ids from ``count``, storing them in ``out`` unless it is empty (a counting pass). ``state``
    (``line_has, have_tok, tok_done``) carries the line state across blocks cut at separators. Returns
    ``(count, err)``: ``err`` is ``-1``, or the byte position of the first thing this fast path does not take
    (a sign, a letter, two ids on a line, an empty field, an id of 2**64 or more): the caller then reads the
    file the slow way, which names the problem."""
    line_has = state[0]
    have_tok = state[1]
    tok_done = state[2]
    n = buf.shape[0]
    fill = out.shape[0] > 0
    i = 0
    while i < n:
        c = buf[i]
        if 48 <= c <= 57:
            if tok_done:
                return count, i
            v, i, over = _parse_uint(buf, i, n)
            if over:
                return count, i
            if fill:
                out[count] = v
            count += 1
            have_tok = 1
            tok_done = 1
            line_has = 1
            continue
        if c == 10:
            if mode == 1 and line_has and not have_tok:
                return count, i
            line_has = 0
            have_tok = 0
            tok_done = 0
        elif c == 44 and mode == 1:
            if not have_tok:
                return count, i
            have_tok = 0
            tok_done = 0
            line_has = 1
        elif c != 32 and c != 9 and c != 13:
            return count, i
        i += 1
    state[0] = line_has
    state[1] = have_tok
    state[2] = tok_done
    return count, -1


@njit(cache=True)
def _scan_csv_col(buf, sep, col, out, count):
    """The unsigned decimal ids in field ``col`` (0-based, fields split on ``sep``) of every non-blank line of
    ``buf`` (uint8, whole lines). Spaces and tabs around the id and a CR before the newline are ignored.

    Counts from ``count``, storing in ``out`` unless it is empty. Returns ``(count, err)``: ``err`` is ``-1``
    or the byte position of the first thing this fast path does not take (a quote anywhere, a line with too
    few fields, an id field that is not one plain number below 2**64, a bare CR): the caller then reads the
    file the slow way, which names the problem or handles string keys."""
    n = buf.shape[0]
    fill = out.shape[0] > 0
    i = 0
    while i < n:
        j = i
        blank = True
        while j < n and buf[j] != 10:
            c = buf[j]
            if c == 34:
                return count, j
            if c == 13 and j + 1 < n and buf[j + 1] != 10:
                return count, j
            if c != 32 and c != 9 and c != 13 and c != 11 and c != 12:
                blank = False
            j += 1
        if not blank:
            k = i
            field = 0
            while field < col and k < j:
                if buf[k] == sep:
                    field += 1
                k += 1
            if field < col:
                return count, i
            while k < j and (buf[k] == 32 or (buf[k] == 9 and sep != 9)):
                k += 1
            k0 = k
            v, k, over = _parse_uint(buf, k, j)
            if over:
                return count, k
            nd = k - k0
            while k < j and (buf[k] == 32 or buf[k] == 13 or (buf[k] == 9 and sep != 9)):
                k += 1
            if nd == 0 or (k < j and buf[k] != sep):
                return count, k
            if fill:
                out[count] = v
            count += 1
        i = j + 1
    return count, -1
