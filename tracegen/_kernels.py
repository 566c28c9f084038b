"""Compiled numba kernels for the locality engine (private; see :mod:`tracegen.locality`).

Kernels take contiguous arrays and return arrays; they never validate, print or hold RNG state.
Each has an obviously-correct slow twin in ``tests/naive.py`` and is tested for exact equality.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _dense_keys(ids):
    """Map arbitrary int64 ids to dense keys 0..U-1 in order of first appearance; returns (keys, U)."""
    n = ids.shape[0]
    d = dict()
    d[np.int64(0)] = np.int64(0)
    del d[np.int64(0)]
    keys = np.empty(n, np.int64)
    u = 0
    for i in range(n):
        x = ids[i]
        k = d.get(x, -1)
        if k < 0:
            k = u
            d[x] = k
            u += 1
        keys[i] = k
    return keys, u


@njit(cache=True)
def _stack_distances(keys, n_keys):
    """Exact LRU stack distances of dense keys (0..n_keys-1): Fenwick tree over access times."""
    n = keys.shape[0]
    out = np.empty(n, np.int64)
    last = np.full(n_keys, -1, np.int64)
    tree = np.zeros(n + 1, np.int32)
    marked = 0
    for i in range(n):
        k = keys[i]
        p = last[k]
        if p < 0:
            out[i] = -1
        else:
            s = 0
            j = p + 1
            while j > 0:
                s += tree[j]
                j -= j & (-j)
            out[i] = marked - s
            j = p + 1
            while j <= n:
                tree[j] -= 1
                j += j & (-j)
            marked -= 1
        j = i + 1
        while j <= n:
            tree[j] += 1
            j += j & (-j)
        marked += 1
        last[k] = i
    return out
