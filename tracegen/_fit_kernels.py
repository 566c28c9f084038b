"""Numba kernels used only while fitting a trace model (mode choice); see :mod:`tracegen.tracemodel`.

:func:`_lfu_misses` replays dense keys in an in-cache LFU cache (libCacheSim's ``LFU``: a miss
inserts the key with frequency 1, evicting the key of least frequency, ties broken by least recent
access) and :func:`_fifo_misses` in a FIFO cache, so the fit can compare a twin's miss ratios with
the real ones without writing trace files. Kernels take arrays and return numbers; the callers validate.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
