"""Synthetic traces with planted locality, for tests, demos and the bundled example trace.

Everything is vectorised numpy (no per-access Python loops) and seeded per call.

- :func:`zipf_ids`: ids with Zipf popularity (``P(rank k) ~ k**-alpha``), ids a random permutation
  of the ranks, so popularity is not the id order.
- :func:`planted_trace`: a Criteo-like trace: 26 tables with cardinalities from a few rows to ~100k,
  some multi-hot tables, and per table a mixture of global Zipf popularity and temporal locality (a
  hot working set that drifts through the id space over time), so both the LRU miss-ratio curve and
  the popularity are non-trivial; 13 dense float32 features (non-negative integer counts, like
  Criteo's, so they survive the DLRM ``X_int`` round trip) and 0/1 labels drawn from a fixed random
  logistic teacher over ``log(1 + dense)`` and per-row effects of some tables, so a DLRM can learn
  them.

Notation: ``B`` samples, ``T`` tables, ``N`` accesses of a table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace, default_names

# Criteo-Kaggle-like spread of table sizes (a few rows to ~100k), 26 tables
DEFAULT_CARDINALITIES = (
    1460,
    583,
    100000,
    60000,
    305,
    24,
    12517,
    633,
    3,
    9300,
    5683,
    80000,
    3194,
    27,
    14992,
    70000,
    10,
    5652,
    2173,
    4,
    90000,
    18,
    15,
    28000,
    105,
    14000,
)
DEFAULT_MULTI_HOT = (2, 11, 20)  # tables with bags of 1 + Poisson(mean_bag - 1) ids
TEACHER_TABLES = (0, 4, 7, 12, 18, 24)  # tables whose rows carry a label effect


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def zipf_ranks(n: int, n_ids: int, alpha: float, rng) -> np.ndarray:
    """``n`` ranks in ``0..n_ids-1`` with ``P(k) ~ (k + 1)**-alpha`` (inverse-CDF sampling), int64."""
    if n_ids < 1:
        raise TracegenError(f"n_ids must be >= 1, got {n_ids}")
    if alpha < 0:
        raise TracegenError(f"alpha must be >= 0, got {alpha}")
    w = np.arange(1, n_ids + 1, dtype=np.float64) ** -float(alpha)
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    r = np.searchsorted(cdf, _rng(rng).random(n), side="right")
    return np.minimum(r, n_ids - 1).astype(np.int64)


def zipf_ids(n: int, n_ids: int, alpha: float, seed=None) -> np.ndarray:
    """``n`` ids in ``0..n_ids-1`` with Zipf(``alpha``) popularity; ids are a random permutation of ranks."""
    rng = _rng(seed)
    perm = rng.permutation(n_ids).astype(np.int64)
    return perm[zipf_ranks(int(n), int(n_ids), alpha, rng)]


def drifting_ids(
    n: int,
    n_ids: int,
    *,
    alpha: float = 1.05,
    hot_fraction: float = 0.5,
    hot_size: int | None = None,
    drift: float = 1.0,
    seed=None,
) -> np.ndarray:
    """Zipf popularity mixed with a drifting hot working set.

    With probability ``hot_fraction`` an access goes to the hot set: ``hot_size`` ids of a random order
    of the id space starting at a window that advances ``drift * hot_size`` positions over the whole
    trace (ids inside it picked with a milder Zipf, so recency matters); otherwise it draws from the
    global Zipf(``alpha``) popularity. The LRU curve gets a knee near ``hot_size`` on top of the
    popularity tail.
    """
    rng = _rng(seed)
    n, n_ids = int(n), int(n_ids)
    if hot_size is None:
        hot_size = max(1, min(n_ids, int(round(n_ids**0.6))))
    hot_size = max(1, min(int(hot_size), n_ids))
    perm = rng.permutation(n_ids).astype(np.int64)
    order = rng.permutation(n_ids).astype(np.int64)  # the path the hot window drifts along
    out = perm[zipf_ranks(n, n_ids, alpha, rng)]
    hot = rng.random(n) < hot_fraction
    k = int(hot.sum())
    if k:
        t = np.flatnonzero(hot).astype(np.float64) / max(1, n)
        start = np.floor(t * drift * hot_size).astype(np.int64)
        within = zipf_ranks(k, hot_size, 0.6, rng)
        out[hot] = order[(start + within) % n_ids]
    return out


def _dense(b: int, rng) -> np.ndarray:
    """13 Criteo-like dense features: non-negative integer counts (float32), some often zero."""
    scales = np.array([2, 30, 20, 8, 3000, 100, 10, 15, 100, 1, 4, 3, 10], dtype=np.float64)
    zero_p = np.array([0.45, 0.0, 0.2, 0.2, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.75, 0.2])
    x = rng.lognormal(mean=0.0, sigma=1.2, size=(b, 13)) * scales
    x = np.floor(x)
    x[rng.random((b, 13)) < zero_p] = 0
    return x.astype(np.float32)


def planted_trace(
    n_samples: int,
    *,
    seed=None,
    cardinalities: Sequence[int] | None = None,
    multi_hot: Sequence[int] = DEFAULT_MULTI_HOT,
    mean_bag: float = 3.0,
    alpha: float = 1.05,
    hot_fraction: float = 0.5,
    drift: float = 2.0,
    positive_rate: float = 0.25,
    names: Sequence[str] | None = None,
) -> Trace:
    """A Criteo-like trace with planted locality, dense features and learnable labels (see module doc).

    Same ``seed``, same trace. ``multi_hot`` lists the tables whose bags hold ``1 + Poisson(mean_bag - 1)``
    ids; ``positive_rate`` is the approximate share of label 1.
    """
    b = int(n_samples)
    if b < 1:
        raise TracegenError(f"n_samples must be >= 1, got {n_samples}")
    rng = _rng(seed)
    cards = [int(c) for c in (cardinalities if cardinalities is not None else DEFAULT_CARDINALITIES)]
    if not cards or min(cards) < 1:
        raise TracegenError("cardinalities must be positive")
    t_count = len(cards)
    names = list(names) if names is not None else default_names(t_count)
    multi = {int(j) for j in multi_hot if 0 <= int(j) < t_count}
    tables = []
    for j, card in enumerate(cards):
        lengths = (1 + rng.poisson(max(0.0, mean_bag - 1.0), b)) if j in multi else np.ones(b, np.int64)
        n = int(lengths.sum())
        # small tables: plain Zipf (everything fits any cache); large ones: drifting hot set as well
        hot = hot_fraction if card > 64 else 0.0
        ids = drifting_ids(n, card, alpha=alpha, hot_fraction=hot, drift=drift, seed=rng)
        tables.append(Table.from_lengths(names[j], ids, lengths, card))
    dense = _dense(b, rng)
    # the teacher: logistic in log(1 + dense) plus per-row effects of some tables (mean over a bag)
    w = rng.normal(0.0, 0.6, 13)
    logit = (np.log1p(dense.astype(np.float64)) - 1.5) @ w / np.sqrt(13)
    for j in TEACHER_TABLES:
        if j >= t_count:
            continue
        t = tables[j]
        effect = rng.normal(0.0, 1.0, t.cardinality)
        per_id = effect[t.values]
        sums = np.add.reduceat(per_id, np.asarray(t.offsets[:-1])) if per_id.size else np.zeros(b)
        sums[t.lengths == 0] = 0.0
        logit += sums / np.maximum(t.lengths, 1) * 0.8
    # shift the bias so that the mean probability is positive_rate (bisection; the mean is monotone in it)
    lo, hi = -30.0, 30.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < positive_rate:
            lo = mid
        else:
            hi = mid
    logit += 0.5 * (lo + hi)
    p = 1.0 / (1.0 + np.exp(-logit))
    labels = (rng.random(b) < p).astype(np.float32)
    return Trace(tables, dense=dense, labels=labels)
