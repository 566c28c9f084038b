"""Compiled numba kernels for the specified (non-fitted) stack models (private; see :mod:`tracegen.spec`).

An LRU stack of ids is kept as marks on a Fenwick tree over access times: an id's mark sits at the
time of its last access, so the id at stack depth ``d`` (0 = most recent) is the ``(marked - d)``-th
mark from the left, found by a Fenwick descent in O(log cap). When the time axis is full the live
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
def _stack_replay(ops, vals, order, state, tree, pos2id, id2pos, out, start):
    """Replay decisions ``ops[start:]``/``vals[start:]`` into ``out``; return the index where it stopped.

    ``state`` is int64 ``[t, marked, next_new]``: next free time slot, number of ids on the stack and
    the next position in the creation ``order`` to try for a cold access. The kernel stops early
    (returns ``i < len(ops)``) when the time axis (``tree`` has ``cap + 1`` slots) is full; the
    caller compacts and calls again from ``i``.
    """
    n = ops.shape[0]
    cap = tree.shape[0] - 1
    card = order.shape[0]
    t = state[0]
    marked = state[1]
    nxt = state[2]
    top = 1
    while top * 2 <= cap:
        top *= 2
    i = start
    while i < n:
        if t >= cap:
            break
        op = ops[i]
        x = np.int64(-1)
        if op == 0:
            x = vals[i]
        else:
            want_cold = op == 1
            d = np.int64(0)
            if not want_cold:
                d = vals[i]
                if d >= marked:
                    want_cold = True
            if want_cold:
                while nxt < card and id2pos[order[nxt]] >= 0:
                    nxt += 1
                if nxt < card:
                    x = order[nxt]
                    nxt += 1
                else:
                    d = marked - 1  # no unseen id left: the LRU bottom
            if x < 0:
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
                x = pos2id[pos]  # slot pos + 1 in the tree is time pos
        p = id2pos[x]
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
        pos2id[t] = x
        id2pos[x] = t
        t += 1
        marked += 1
        out[i] = x
        i += 1
    state[0] = t
    state[1] = marked
    state[2] = nxt
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
