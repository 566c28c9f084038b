"""Compiled numba kernels for :mod:`analysis` (private).

Kernels take contiguous int64 arrays and return arrays; they never validate or print. Each has a slow
twin in ``tests/naive.py`` (``distinct_per_group``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _distinct_per_group(keys, starts, n_keys):
    """Distinct keys in each group ``keys[starts[g]:starts[g + 1]]``; keys are dense ``0..n_keys-1``."""
    n_groups = starts.shape[0] - 1
    out = np.zeros(n_groups, np.int64)
    last = np.full(n_keys, -1, np.int64)
    for g in range(n_groups):
        c = 0
        for i in range(starts[g], starts[g + 1]):
            k = keys[i]
            if last[k] != g:
                last[k] = g
                c += 1
        out[g] = c
    return out
