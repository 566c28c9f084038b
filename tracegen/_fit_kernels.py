"""Numba kernels used only while fitting a trace model (mode choice); see :mod:`tracegen.tracemodel`.

:func:`_lfu_misses` replays dense keys in an in-cache LFU cache (libCacheSim's ``LFU``: a miss
inserts the key with frequency 1, evicting the key of least frequency, ties broken by least recent
access) and :func:`_fifo_misses` in a FIFO cache, so the fit can compare a twin's miss ratios with
the real ones without writing trace files. Kernels take arrays and return numbers; the callers validate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracegen._sample_kernels import _edge_lut


@njit(cache=True, nogil=True)
def _lfu_misses(keys, n_keys, cap, max_count):
    """Misses of an in-cache LFU cache of ``cap`` >= 1 rows replaying ``keys`` (dense, < ``n_keys``;
    no key occurs more than ``max_count`` times).

    O(1) per access: one doubly linked list per frequency, most recent first (a key enters the
    list of frequency ``f`` at the access that gives it ``f``, so list order is last-access order),
    and the least frequency present; a miss evicts the tail of that list.
    """
    n = keys.shape[0]
    freq = np.zeros(n_keys, np.int64)  # 0: not cached
    nxt = np.full(n_keys, -1, np.int64)
    prv = np.full(n_keys, -1, np.int64)
    head = np.full(max_count + 2, -1, np.int64)
    tail = np.full(max_count + 2, -1, np.int64)
    size = 0
    fmin = 1
    misses = 0
    for i in range(n):
        k = keys[i]
        f = freq[k]
        if f > 0:  # hit: unlink from list f
            a, b = prv[k], nxt[k]
            if a >= 0:
                nxt[a] = b
            else:
                head[f] = b
            if b >= 0:
                prv[b] = a
            else:
                tail[f] = a
            if head[f] < 0 and fmin == f:
                fmin = f + 1
            f += 1
        else:
            misses += 1
            if size >= cap:  # evict the least recent key of the least frequency
                v = tail[fmin]
                a = prv[v]
                tail[fmin] = a
                if a >= 0:
                    nxt[a] = -1
                else:
                    head[fmin] = -1
                freq[v] = 0
                size -= 1
            size += 1
            f = 1
            fmin = 1
        freq[k] = f  # link at the head of list f
        b = head[f]
        prv[k] = -1
        nxt[k] = b
        if b >= 0:
            prv[b] = k
        else:
            tail[f] = k
        head[f] = k
    return misses


@njit(cache=True, nogil=True)
def _fifo_misses(keys, n_keys, cap):
    """Misses of a FIFO cache of ``cap`` >= 1 rows replaying dense ``keys`` (< ``n_keys``): a miss
    inserts the key, first evicting the key inserted longest ago; a hit changes nothing.
    O(1) per access: a ring of the cached keys in insertion order."""
    ring = np.empty(cap, np.int64)
    cached = np.zeros(n_keys, np.bool_)
    head = 0  # oldest slot once the ring is full
    size = 0
    misses = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if cached[k]:
            continue
        misses += 1
        if size < cap:
            ring[size] = k
            size += 1
        else:
            cached[ring[head]] = False
            ring[head] = k
            head += 1
            if head == cap:
                head = 0
        cached[k] = True
    return misses


@njit(cache=True, inline="always")
def _grid_bin(grid, lut, v):
    """``np.searchsorted(grid, v, side="right") - 1`` for ``v >= grid[0]``: the lookup of
    ``_edge_lut(grid, len(grid) - 1)``, then a forward scan (any number of edges per cell, so refined
    grids work)."""
    if v < 128:
        key = v
    else:
        m = 0
        while (np.int64(256) << m) <= v:
            m += 1
        key = 128 + 128 * m + ((v >> m) & 127)
    a = lut[key] if key < lut.shape[0] else lut[lut.shape[0] - 1]
    while a + 1 < grid.shape[0] and grid[a + 1] <= v:
        a += 1
    return a


@njit(cache=True, nogil=True)
def _grid_bins(values, grid):
    """:func:`_grid_bin` of every value (about 4x a binary search over 10M stack distances)."""
    lut = _edge_lut(grid, grid.shape[0] - 1)
    out = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        out[i] = _grid_bin(grid, lut, values[i])
    return out


@njit(cache=True, nogil=True)
def _node_counts(acls, sd, tb, n_cls, nt, rep_on, grid, n_phases):
    """The counts of a ``class-stack`` node in one pass over the accesses (see ``_class_stack_node``).

    Per (time bin, class): accesses, cold (first) accesses, and immediate repeats of classes whose
    repeats are drawn apart (``rep_on``); per (phase, class, grid bin): the warm, non-repeat
    accesses (phase ``tb * n_phases // nt``; summed over phases, the class's histogram).
    """
    nb = grid.shape[0] - 1
    lut = _edge_lut(grid, grid.shape[0] - 1)
    acc = np.zeros((nt, n_cls), np.int64)
    cold = np.zeros((nt, n_cls), np.int64)
    rep = np.zeros((nt, n_cls), np.int64)
    jp = np.zeros((n_phases, n_cls, nb), np.int64)
    for i in range(acls.shape[0]):
        c = acls[i]
        t = tb[i]
        d = sd[i]
        acc[t, c] += 1
        if d < 0:
            cold[t, c] += 1
        elif d == 0 and rep_on[c]:
            rep[t, c] += 1
        else:
            jp[(t * n_phases) // nt, c, _grid_bin(grid, lut, d)] += 1
    return acc, cold, rep, jp
