"""Slow, obviously-correct reference implementations. Fast kernels must equal these exactly."""

from __future__ import annotations

import numpy as np


def stack_distances(ids) -> np.ndarray:
    """List-scan LRU stack: the depth of the id in a most-recent-first list, -1 if absent."""
    stack: list = []
    out = []
    for x in list(ids):
        if x in stack:
            d = stack.index(x)
            out.append(d)
            stack.pop(d)
        else:
            out.append(-1)
        stack.insert(0, x)
    return np.array(out, dtype=np.int64)


def lru_miss_ratio(ids, capacity: int) -> float:
    """Simulate an LRU cache of ``capacity`` entries; return misses / accesses."""
    from collections import OrderedDict

    cache: OrderedDict = OrderedDict()
    misses = 0
    ids = list(ids)
    for x in ids:
        if x in cache:
            cache.move_to_end(x)
        else:
            misses += 1
            if capacity > 0:
                cache[x] = True
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return misses / len(ids) if ids else 0.0
