"""Synthetic generators: determinism, Zipf popularity, planted temporal locality, learnable labels."""

from __future__ import annotations

import numpy as np
import pytest

from tests import naive
from tracegen import TracegenError, synth
from tracegen.locality import miss_ratio_curve, sd_histogram, stack_distances


def test_zipf_ids_popularity_and_permutation():
    n_ids, alpha = 500, 1.1
    ids = synth.zipf_ids(200_000, n_ids, alpha, seed=3)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < n_ids
    np.testing.assert_array_equal(ids, synth.zipf_ids(200_000, n_ids, alpha, seed=3))
    assert not np.array_equal(ids, synth.zipf_ids(200_000, n_ids, alpha, seed=4))
    counts = np.bincount(ids, minlength=n_ids)
    by_rank = np.sort(counts)[::-1]
    # log-log slope of the top ranks is -alpha
    k = np.arange(1, 51)
    slope = np.polyfit(np.log(k), np.log(by_rank[:50]), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.1)
    # the expected share of the most popular id
    share = 1 / np.sum(np.arange(1, n_ids + 1, dtype=float) ** -alpha)
    assert by_rank[0] / ids.size == pytest.approx(share, rel=0.05)
    # popularity is not the id order
    assert np.argmax(counts) != 0 or np.argsort(counts)[::-1][:5].tolist() != [0, 1, 2, 3, 4]


def test_zipf_rejects_bad_parameters():
    with pytest.raises(TracegenError):
        synth.zipf_ids(10, 0, 1.0, seed=0)
    with pytest.raises(TracegenError):
        synth.zipf_ids(10, 5, -1.0, seed=0)


@pytest.fixture(scope="module")
def planted():
    return synth.planted_trace(12_000, seed=7)


def test_planted_trace_shape(planted):
    tr = planted.validate()
    assert tr.n_tables == 26 and tr.n_samples == 12_000
    cards = tr.cardinalities
    assert min(cards) <= 5 and 50_000 <= max(cards) <= 150_000
    multi = [t.name for t in tr.tables if not t.is_one_hot]
    assert len(multi) >= 2
    assert tr.dense.dtype == np.float32 and tr.dense.shape == (12_000, 13)
    assert (tr.dense >= 0).all() and (tr.dense == np.floor(tr.dense)).all()
    assert set(np.unique(tr.labels).tolist()) == {0.0, 1.0}
    assert tr.labels.mean() == pytest.approx(0.25, abs=0.03)


def test_planted_trace_is_deterministic():
    a = synth.planted_trace(500, seed=11)
    assert a.equals(synth.planted_trace(500, seed=11))
    assert not a.equals(synth.planted_trace(500, seed=12))


def test_planted_trace_has_temporal_locality(planted):
    """The same ids in shuffled order (same popularity) miss more in an LRU cache: recency was planted."""
    t = planted.table("C4")  # 60k rows, one-hot
    ids = np.asarray(t.values)
    shuffled = np.random.default_rng(0).permutation(ids)
    sizes = [100, 1000]
    miss = miss_ratio_curve(*sd_histogram(stack_distances(ids)), sizes)[1]
    miss_shuffled = miss_ratio_curve(*sd_histogram(stack_distances(shuffled)), sizes)[1]
    assert (miss < miss_shuffled - 0.03).all(), (miss, miss_shuffled)
    # and the popularity is skewed: the top 1% of rows seen take a large share of accesses
    counts = np.sort(np.bincount(ids))[::-1]
    counts = counts[counts > 0]
    assert counts[: max(1, counts.size // 100)].sum() / ids.size > 0.1
    # the curve is non-trivial: well below 1 at 1000 rows, above the cold share
    cold = np.unique(ids).size / ids.size
    assert cold < miss[1] < 0.9
    assert naive.lru_miss_ratio(ids[:3000], 100) == pytest.approx(
        miss_ratio_curve(*sd_histogram(stack_distances(ids[:3000])), [100])[1][0]
    )


def test_planted_labels_are_learnable(planted):
    """A linear score on log(1 + dense) already ranks the labels better than chance (the teacher uses it)."""
    x = np.log1p(planted.dense.astype(np.float64))
    x = np.hstack([x, np.ones((x.shape[0], 1))])
    y = planted.labels.astype(np.float64)
    train, test = slice(0, 10_000), slice(10_000, 10_800)
    w = np.linalg.lstsq(x[train], y[train], rcond=None)[0]
    auc = naive.pairwise_auc(y[test].tolist(), (x[test] @ w).tolist())
    assert auc > 0.6
    # and some tables carry signal: the mean label per row of C1 varies more than chance
    t = planted.table("C1")
    ids = np.asarray(t.values)
    sums = np.bincount(ids, weights=y, minlength=t.cardinality)
    cnt = np.bincount(ids, minlength=t.cardinality)
    seen = cnt >= 20
    rate = sums[seen] / cnt[seen]
    p = y.mean()
    chance_sd = np.sqrt(p * (1 - p) / cnt[seen]).mean()
    assert rate.std() > 1.5 * chance_sd


def test_drifting_ids_vectorised_and_in_range():
    ids = synth.drifting_ids(50_000, 1000, seed=1)
    assert ids.min() >= 0 and ids.max() < 1000 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, synth.drifting_ids(50_000, 1000, seed=1))
