"""Compiled numba kernels for :mod:`analysis` (private).

Kernels take contiguous int64 arrays and return arrays; they never validate or print. Each has a slow
twin in ``tests/naive.py``: for ``_weighted_depths``, ``lru_size_miss_ratio``
(an LRU cache of byte capacity simulated object by object).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _weighted_depths(keys, weights):
    """LRU depth of every access in weight units (bytes, lines): the weight of the key itself plus the weights
    of the distinct other keys accessed since its previous access; -1 for a first access. Fenwick tree over
    access times holding each key's weight at its latest access."""
    n = keys.shape[0]
    out = np.empty(n, np.int64)
    last = np.full(weights.shape[0], -1, np.int64)
    tree = np.zeros(n + 1, np.int64)
    total = 0
    for i in range(n):
        k = keys[i]
        w = weights[k]
        p = last[k]
        if p < 0:
            out[i] = -1
        else:
            s = 0  # weight at times <= p
            j = p + 1
            while j > 0:
                s += tree[j]
                j -= j & (-j)
            out[i] = total - s + w
            j = p + 1
            while j <= n:
                tree[j] -= w
                j += j & (-j)
            total -= w
        j = i + 1
        while j <= n:
            tree[j] += w
            j += j & (-j)
        total += w
        last[k] = i
    return out
