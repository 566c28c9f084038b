"""The locality engine: exact LRU stack distances, miss-ratio curves, footprint and popularity.

Vocabulary (pinned here and in ``traces/README.md``):

- **stack distance** of an access: the number of *distinct other* ids accessed since the
  previous access to the same id; ``0`` for an immediate repeat, ``-1`` for a first (cold)
  access. An LRU cache of ``C`` rows hits iff ``0 <= sd < C`` (libCacheSim's ``STACK_DIST``).
- **reuse time**: the number of requests since the previous access to the same id (``-1`` cold).
- **footprint**: distinct ids seen so far.

Public functions validate and cast, then call the compiled kernels in :mod:`tracegen._kernels`.
"""

from __future__ import annotations

import numpy as np

from tracegen import _kernels
from tracegen.errors import TracegenError


def _as_ids(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim != 1:
        raise TracegenError(f"ids must be a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TracegenError(f"ids must be integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def dense_keys(ids) -> tuple[np.ndarray, int]:
    """Relabel ids as ``0..U-1`` in order of first appearance; returns ``(keys, U)``."""
    a = _as_ids(ids)
    if a.size == 0:
        return np.empty(0, np.int64), 0
    keys, u = _kernels._dense_keys(a)
    return keys, int(u)


def stack_distances(ids) -> np.ndarray:
    """Exact LRU stack distance of every access (``-1`` cold), int64, in O(N log N)."""
    keys, u = dense_keys(ids)
    if keys.size == 0:
        return np.empty(0, np.int64)
    return _kernels._stack_distances(keys, u)


def sd_histogram(sd: np.ndarray) -> tuple[np.ndarray, int]:
    """``(counts, cold)``: ``counts[d]`` accesses at stack distance ``d``; ``cold`` first accesses."""
    sd = np.asarray(sd, dtype=np.int64)
    cold = int(np.count_nonzero(sd < 0))
    warm = sd[sd >= 0]
    counts = np.bincount(warm) if warm.size else np.zeros(0, np.int64)
    return counts.astype(np.int64), cold


def miss_ratio_curve(counts: np.ndarray, cold: int, sizes=None) -> tuple[np.ndarray, np.ndarray]:
    """LRU miss ratio at each cache size (rows) from a stack-distance histogram.

    ``miss(C) = (cold + #{sd >= C}) / N``. ``sizes`` defaults to ``0..max_sd + 1``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum()) + int(cold)
    if sizes is None:
        sizes = np.arange(counts.shape[0] + 1, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if n == 0:
        return sizes, np.zeros(sizes.shape, dtype=np.float64)
    hits_below = np.concatenate([[0], np.cumsum(counts)])  # hits_below[C] = #{0 <= sd < C}
    h = hits_below[np.minimum(sizes, counts.shape[0])]
    return sizes, (n - h) / n
