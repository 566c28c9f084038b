"""Compiled numba kernels for the specified (non-fitted) stack models (private; see :mod:`tracegen.spec`).

An LRU stack of ids is kept as marks on a Fenwick tree over access times: an id's mark sits at the
time of its last access, so the id at stack depth ``d`` (0 = most recent) is the ``(marked - d)``-th
mark from the left, found by a Fenwick descent in O(log cap). The stack works on popularity ranks /
creation ordinals (the caller maps them to ids by a keyed bijection); for a large table ranks get
dense labels on first access through an open-addressing hash table (:func:`_hash_slot`), so memory
follows the distinct rows touched, not the cardinality. When the time axis is full the live
marks are compacted to the front (:func:`_compact`). Kernels take arrays, return arrays, never
validate, print or hold RNG state: every random decision is drawn outside and replayed here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# op codes of the replayed decisions
OP_ID = 0  # access the given id (an independent-reference draw)
OP_COLD = 1  # access a never-seen id (next in creation order), else the LRU bottom
OP_DEPTH = 2  # access the id at the given stack depth, or a cold id when the stack is shallower


@njit(cache=True)
def _hash_slot(hkeys, x):
    """Slot of key ``x`` in the open-addressing table ``hkeys`` (-1 = empty): its own or the empty one."""
    mask = np.uint64(hkeys.shape[0] - 1)
    z = np.uint64(x) * np.uint64(0x9E3779B97F4A7C15)
    j = np.int64((z ^ (z >> np.uint64(29))) & mask)
    while hkeys[j] != x and hkeys[j] != -1:
        j = np.int64((np.uint64(j) + np.uint64(1)) & mask)
    return j


@njit(cache=True)
def _hash_rebuild(lab2rank, n_labels, hkeys, hvals):
    """Insert labels ``0..n_labels-1`` (key: their rank) into the empty table ``hkeys``/``hvals``."""
    for lab in range(n_labels):
        j = _hash_slot(hkeys, lab2rank[lab])
        hkeys[j] = lab2rank[lab]
        hvals[j] = lab


@njit(cache=True)
def _stack_replay(ops, vals, card, state, tree, pos2lab, lab2pos, lab2rank, hkeys, hvals, out, start):
    """Replay decisions ``ops[start:]``/``vals[start:]`` into ``out`` (ranks); return where it stopped.

    The stack holds *labels*. Dense mode (``hkeys`` empty): label == rank, ``lab2pos`` has ``card``
    entries. Sparse mode: a rank gets the next label on its first access (``lab2rank``, and the
    rank -> label table ``hkeys``/``hvals``), so memory follows the distinct ranks touched, not
    ``card``; the caller keeps ``lab2pos``/``lab2rank`` at least ``labels + len(ops) - start`` long and
    the table at most half full after that many insertions. ``OP_ID`` values and the output are
    ranks; cold accesses take ranks ``0, 1, ...`` skipping ranks already accessed.

    ``state`` is int64 ``[t, marked, next_new, labels]``: next free time slot, number of labels on the
    stack, the next rank to try for a cold access and the labels given out (sparse mode). The kernel
    stops early (returns ``i < len(ops)``) when the time axis (``tree`` has ``cap + 1`` slots) is full;
    the caller compacts and calls again from ``i``.
    """
    n = ops.shape[0]
    cap = tree.shape[0] - 1
    dense = hkeys.shape[0] == 0
    t = state[0]
    marked = state[1]
    nxt = state[2]
    nlab = state[3]
    top = 1
    while top * 2 <= cap:
        top *= 2
    i = start
    while i < n:
        if t >= cap:
            break
        op = ops[i]
        r = np.int64(-1)  # rank to access, when known
        x = np.int64(-1)  # its label
        if op == 0:
            r = vals[i]
        else:
            want_cold = op == 1
            d = np.int64(0)
            if not want_cold:
                d = vals[i]
                if d >= marked:
                    want_cold = True
            if want_cold:
                while nxt < card:
                    if dense:
                        if lab2pos[nxt] < 0:
                            break
                    elif hkeys[_hash_slot(hkeys, nxt)] == -1:
                        break
                    nxt += 1
                if nxt < card:
                    r = nxt
                    nxt += 1
                else:
                    d = marked - 1  # no unseen rank left: the LRU bottom
            if r < 0:
                # the (marked - d)-th mark from the left (1-based): Fenwick descent
                k = marked - d
                pos = 0
                step = top
                while step > 0:
                    q = pos + step
                    if q <= cap and tree[q] < k:
                        pos = q
                        k -= tree[q]
                    step //= 2
                x = np.int64(pos2lab[pos])  # slot pos + 1 in the tree is time pos
                r = x if dense else lab2rank[x]
        if x < 0:
            if dense:
                x = r
            else:
                j = _hash_slot(hkeys, r)
                if hkeys[j] == -1:  # first access of this rank: a new label
                    hkeys[j] = r
                    hvals[j] = nlab
                    lab2rank[nlab] = r
                    lab2pos[nlab] = -1
                    nlab += 1
                x = hvals[j]
        p = lab2pos[x]
        if p >= 0:
            j = p + 1
            while j <= cap:
                tree[j] -= 1
                j += j & (-j)
            marked -= 1
        j = t + 1
        while j <= cap:
            tree[j] += 1
            j += j & (-j)
        pos2lab[t] = x
        lab2pos[x] = t
        t += 1
        marked += 1
        out[i] = r
        i += 1
    state[0] = t
    state[1] = marked
    state[2] = nxt
    state[3] = nlab
    return i


@njit(cache=True)
def _compact(t_old, pos2id_old, id2pos, tree_new, pos2id_new):
    """Move the live marks (times ``< t_old`` still holding their id) to ``0..m-1``; return ``m``.

    ``tree_new`` must be zeros; it is rebuilt in O(cap) and ``id2pos`` is updated in place.
    """
    m = 0
    for p in range(t_old):
        x = pos2id_old[p]
        if x >= 0 and id2pos[x] == p:
            pos2id_new[m] = x
            id2pos[x] = m
            m += 1
    cap = tree_new.shape[0] - 1
    for p in range(m):
        tree_new[p + 1] = 1
    for i in range(1, cap + 1):
        j = i + (i & (-i))
        if j <= cap:
            tree_new[j] += tree_new[i]
    return m


@njit(cache=True)
def _guide_table(cdf, m):
    """``g[k]`` = first index with ``cdf[i] > k / m`` (``k = 0..m``), for :func:`_guided_search`."""
    n = cdf.shape[0]
    g = np.empty(m + 1, np.int64)
    i = 0
    for k in range(m + 1):
        x = k / m
        while i < n and cdf[i] <= x:
            i += 1
        g[k] = i
    return g


@njit(cache=True)
def _guided_search(cdf, g, u):
    """``min(searchsorted(cdf, u, 'right'), len(cdf) - 1)`` in expected O(1) per draw (cut-point method)."""
    n = cdf.shape[0]
    m = g.shape[0] - 1
    out = np.empty(u.shape[0], np.int64)
    for j in range(u.shape[0]):
        x = u[j]
        k = int(x * m)
        if k > m:
            k = m
        i = g[k]
        while i > 0 and cdf[i - 1] > x:  # float rounding of x * m: never start past the answer
            i -= 1
        while i < n and cdf[i] <= x:
            i += 1
        out[j] = i if i < n else n - 1
    return out


@njit(cache=True)
def _mul64(a, b):
    """Full 128-bit product of two uint64: ``(high, low)`` words (32-bit halves, no overflow)."""
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a0 = a & m32
    a1 = a >> s32
    b0 = b & m32
    b1 = b >> s32
    t = a0 * b0
    w0 = t & m32
    t = a1 * b0 + (t >> s32)
    w1 = t & m32
    w2 = t >> s32
    t = a0 * b1 + w1
    hi = a1 * b1 + w2 + (t >> s32)
    lo = (t << s32) + w0
    return hi, lo


@njit(cache=True)
def _scale_u128(hi, lo, card):
    """``floor((hi * 2**64 + lo) * card / 2**128)`` per entry (uint64 words, ``0 < card < 2**63``).

    Maps two uniform 64-bit words to an integer uniform on ``[0, card)`` with relative bias below
    ``card / 2**128``: every integer of a table beyond 2**53 rows is reachable, as a float ``u * card``
    cannot do.
    """
    n = hi.shape[0]
    out = np.empty(n, np.int64)
    c = np.uint64(card)
    for i in range(n):
        p1h, p1l = _mul64(hi[i], c)
        p2h, p2l = _mul64(lo[i], c)
        s = p1l + p2h  # wraps modulo 2**64: a carry into the high word when s < p1l
        r = p1h
        if s < p1l:
            r += np.uint64(1)
        out[i] = np.int64(r)
    return out
