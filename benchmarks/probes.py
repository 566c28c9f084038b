"""Probe traces for the fidelity benchmark: access patterns unlike the shared real traces.

The model is judged on traces we do not have, so ``benchmarks/fidelity.py`` also fits and scores
these generated families (rows ``probe-*``, each with a ``same-gen`` noise floor: the generator with
another seed). Each is a pattern known from the caching literature that the real traces here show
little of:

- ``loop``: a cyclic scan over 5,000 ids with 10% random ids from a 4x larger range (the pattern
  that breaks LRU at cache sizes below the loop);
- ``storage``: a block trace: sequential runs of fresh blocks (8-255 long, 30% of the runs) between
  short bursts of Zipf(1.1) hot blocks, and a re-read of the first quarter after the first half;
- ``bursty``: ids born at random times and read at exponentially distributed ages (mean 2,000
  accesses): popularity that lives and dies (what an in-cache LFU handles worst);
- ``switch``: a workload switch half way: Zipf(1.0) over one id set, then Zipf(0.7) over another;
- ``rotate``: eight periods, each a fresh Zipf(1.0) over one of three id blocks in turn (a block comes
  back with other ids hot: daily cycles over one catalogue);
- ``skew``: independent references with Zipf(1.5) popularity over 1M ids: the top id takes 38% of
  the accesses and the top five 67% (a categorical column dominated by its missing-value id);
- ``multihot``: three multi-hot tables shaped like Meta's embedding lookups (Poisson pooling
  factors 40, 3 and 8 over 200k, 3k and 50 Zipf(1.05) rows, 5,000 samples).

Every generator is vectorised numpy except the storage run layout, and takes ``seed``.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tracegen import synth  # noqa: E402
from tracegen.trace import Table, Trace  # noqa: E402


def loop(seed: int, n: int = 200_000, u: int = 5_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = (np.arange(n) + int(rng.integers(u))) % u
    noise = rng.random(n) < 0.1
    ids[noise] = u + rng.integers(0, 4 * u, int(noise.sum()))
    return ids.astype(np.int64)


def storage(seed: int, n: int = 300_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hot = synth.zipf_ids(n, 20_000, 1.1, seed=seed)  # hot block numbers below 20,000
    parts, pos, used, fresh = [], 0, 0, 1 << 20
    while pos < n:
        if rng.random() < 0.3:  # a sequential run of fresh blocks
            k = int(rng.integers(8, 256))
            parts.append(np.arange(fresh, fresh + k))
            fresh += k
        else:  # a short burst of hot blocks
            k = int(rng.integers(1, 20))
            parts.append(hot[used : used + k])
            used += k
        pos += k
    ids = np.concatenate(parts)[:n]
    return np.concatenate([ids[: n // 2], ids[: n // 4], ids[n // 2 :]]).astype(np.int64)


def bursty(seed: int, n: int = 200_000, mean_age: float = 2_000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    births = np.sort(rng.integers(0, n, n // 20))
    age = rng.exponential(mean_age, n).astype(np.int64)
    born = np.searchsorted(births, np.maximum(np.arange(n) - age, 0))
    return np.minimum(born, births.shape[0] - 1).astype(np.int64)


def switch(seed: int, n: int = 200_000) -> np.ndarray:
    a = synth.zipf_ids(n // 2, 30_000, 1.0, seed=seed)
    b = synth.zipf_ids(n - n // 2, 30_000, 0.7, seed=seed + 1) + 30_000
    return np.concatenate([a, b]).astype(np.int64)


def rotate(seed: int, n: int = 300_000, periods: int = 8, u: int = 20_000) -> np.ndarray:
    parts = [synth.zipf_ids(n // periods, u, 1.0, seed=seed * 10 + i) + (i % 3) * u for i in range(periods)]
    return np.concatenate(parts).astype(np.int64)


def skew(seed: int, n: int = 300_000) -> np.ndarray:
    return synth.zipf_ids(n, 1_000_000, 1.5, seed=seed).astype(np.int64)


def multihot(seed: int, n_samples: int = 5_000) -> Trace:
    rng = np.random.default_rng(seed)
    tabs = []
    for j, (rows, pool) in enumerate(((200_000, 40), (3_000, 3), (50, 8))):
        lengths = rng.poisson(pool, n_samples).astype(np.int64)
        ids = synth.zipf_ids(int(lengths.sum()), rows, 1.05, seed=seed * 7 + j)
        tabs.append(Table.from_lengths(f"T{j}", ids.astype(np.int64), lengths, rows))
    return Trace(tabs)


def probes() -> dict:
    """name -> (seed -> Trace)."""

    def one(gen):
        return lambda seed: Trace.single(gen(seed), name="t0")

    return {
        "probe-loop": one(loop),
        "probe-storage": one(storage),
        "probe-bursty": one(bursty),
        "probe-switch": one(switch),
        "probe-rotate": one(rotate),
        "probe-skew": one(skew),
        "probe-multihot": multihot,
    }
