"""SHARDS at its edges: streams with few or no sampled ids must never show invented reuse.

A spatial sample at rate R of a table with U distinct ids holds about ``U * R`` ids; below
``SHARDS_MIN_IDS`` the rate is raised (exact when ``U <= SHARDS_MIN_IDS``), SHARDS-adj adds no hits a
sample without reuse cannot support, and a known distinct count pins the cold share exactly.
"""

import numpy as np
import pytest

from analysis import locality as loc
from analysis import report
from tracegen import _kernels
from tracegen import locality as L
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace


def _zipf(rng, n, u, a):
    p = np.arange(1, u + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(p) / p.sum()
    return rng.permutation(u)[np.minimum(np.searchsorted(cdf, rng.random(n)), u - 1)]


def _c9(rng, n=20000):
    """Criteo C9-like: 3 values with 70/20/10% of the accesses."""
    return rng.choice(3, n, p=[0.7, 0.2, 0.1])


def test_shards_rate_floor():
    assert L.shards_rate(0.01, 3) == 1.0
    assert L.shards_rate(0.01, L.SHARDS_MIN_IDS) == 1.0
    assert L.shards_rate(0.01, 5000) == pytest.approx(L.SHARDS_MIN_IDS / 5000)
    assert L.shards_rate(0.01, 10**7) == 0.01
    assert L.shards_rate(0.5, 0) == 1.0
    with pytest.raises(TracegenError):
        L.shards_rate(0.0, 10)


@pytest.mark.parametrize("ids", [np.array([5]), np.arange(7), np.random.default_rng(3).permutation(200_000)])
def test_cold_only_stream_has_no_hits(ids):
    """Every access is a first access: hit ratio exactly 0 at every size, sampled or not."""
    p = L.profile_ids(ids, sample_rate=0.01)
    assert p["cold_fraction"] == 1.0
    assert all(h == 0.0 for h in p["lru_hit_ratio"].values()), p["lru_hit_ratio"]
    assert all(m == 1.0 for m in p["mrc"]["miss_ratio"])
    assert all(v is None for k, v in p["stack_distance"].items())
    # 200,000 ids at 1% is 2,000 sampled ids: still sampled; the small ones are exact
    assert p["method"] == ("shards" if ids.size > L.SHARDS_MIN_IDS / 0.01 else "exact")
    # the bare estimators too: no distinct count given, SHARDS-adj must not turn the shortfall into hits
    for kw in ({"rate": 0.01}, {"size": 64}):
        est = L.shards(ids, sizes=[0, 1, 10, 10**6], **kw)
        assert est.miss_ratios.tolist() == [1.0] * 4, kw


def test_empty_sample_is_all_misses():
    # one access, almost surely not sampled at 1e-6: no evidence of any reuse
    counts, cold, rate = L.shards_histogram([12345], rate=1e-6)
    assert counts.sum() == 0 and cold == 1.0 and rate == 1e-6


def test_three_value_stream_with_sampling_is_exact(rng):
    """The bug report's reproducer: 3 distinct ids, SHARDS asked at 1%: the exact profile."""
    ids = _c9(rng)
    exact = L.profile_ids(ids)
    est = L.profile_ids(ids, sample_rate=0.01)
    assert est["method"] == "exact" and est["sample_rate"] == 1.0 and est["requested_sample_rate"] == 0.01
    for key in ("stack_distance", "lru_hit_ratio", "mrc", "cold_fraction", "distinct"):
        assert est[key] == exact[key], key
    assert est["stack_distance"]["p50"] == 0 and est["stack_distance"]["p90"] <= 2
    # the analysis path (report) likewise
    s = loc.stream_locality(ids, sample_rate=0.01)
    assert s.sample_rate == 1.0
    assert np.array_equal(s.miss_ratio([0, 1, 2, 3]), loc.stream_locality(ids).miss_ratio([0, 1, 2, 3]))
    sized = loc.sized_stream_locality(ids, np.full(ids.size, 256), sample_rate=0.01)
    assert sized.sample_rate == 1.0 and sized.miss_ratio([256 * 10])[0] == pytest.approx(3 / ids.size)


def test_medium_cardinality_rate_is_raised(rng):
    ids = _zipf(rng, 100_000, 5000, 0.9)
    u = np.unique(ids).size
    p = L.profile_ids(ids, sample_rate=0.01)
    assert p["method"] == "shards" and p["sample_rate"] == pytest.approx(L.SHARDS_MIN_IDS / u)


def test_large_cardinality_still_sampled_within_bound(rng):
    """300k-access Zipf(0.9) over 100k ids at rate 0.02 (~1,500 sampled ids): sampled, and the MRC over
    101 even sizes stays within 0.02 MAE of exact for each of 3 seeds; the cold share and the unbounded
    cache's hit ratio are exact."""
    ids = _zipf(rng, 300_000, 100_000, 0.9)
    u = np.unique(ids).size
    counts, cold = L.stack_distance_histogram(ids)
    sizes = np.linspace(0, u, 101).astype(np.int64)
    _, exact = L.miss_ratio_curve(counts, cold, sizes)
    for seed in range(3):
        p = L.profile_ids(ids, sample_rate=0.02, sizes=sizes, seed=seed)
        assert p["method"] == "shards" and p["sample_rate"] == 0.02
        assert p["cold_fraction"] == u / ids.size
        assert p["mrc"]["miss_ratio"][-1] == pytest.approx(u / ids.size, abs=1e-12)
        assert p["lru_hit_ratio"]["1000000"] == pytest.approx(1 - u / ids.size, abs=1e-12)
        mae = np.mean(np.abs(np.array(p["mrc"]["miss_ratio"]) - exact))
        assert mae < 0.02, (seed, mae)


def test_sample_without_reuse_falls_back_to_exact():
    """One hot id outside the sample and singletons inside: the sample shows no reuse, the stream has
    plenty, so the histogram is exact rather than all-cold or invented."""
    rate = 0.1
    thr = int(rate * float(1 << 62))
    cand = np.arange(10**6, 10**6 + 1000, dtype=np.int64)
    hot = int(cand[_kernels._hash_ids(cand, 0) >= thr][0])
    ids = np.concatenate([np.full(5000, hot), np.arange(20000)])
    ids = ids[np.random.default_rng(0).permutation(ids.size)]
    u = 20001
    counts, cold, r = L.shards_histogram(ids, rate=rate, distinct=u)
    ec, ecold = L.stack_distance_histogram(ids)
    assert r == 1.0 and cold == ecold and np.array_equal(counts, ec)
    with pytest.raises(TracegenError):
        L.shards_histogram(ids, rate=rate, distinct=ids.size + 1)


def test_report_samples_only_large_streams(tmp_path, rng):
    """`report` above its threshold samples the large table and the shared stream, keeps the 3-row table
    exact, and says so."""
    n = 30000
    big = Table.one_hot("big", rng.integers(0, 20000, n), 20000)
    small = Table.one_hot("C9", _c9(rng, n), 3)
    s = report.write_report(Trace([big, small]), tmp_path / "r", threshold=10000, measure=False, progress=False)
    rates = s["sampling"]["rates"]["trace"]
    assert set(rates) == {"big", "shared"}
    assert rates["big"] == pytest.approx(1 / 3) and rates["shared"] == pytest.approx(1 / 6)
    assert s["sampling"]["used"] and "SHARDS" in s["sampling"]["note"]
    tables = {t["name"]: t for t in s["traces"]["trace"]["locality"]["tables"]}
    assert tables["C9"]["sample_rate"] == 1.0


def test_report_on_three_value_table_is_exact(tmp_path, rng):
    tr = Trace([Table.one_hot("C9", _c9(rng, 5000), 3)])
    s = report.write_report(tr, tmp_path / "r", threshold=1000, measure=False, progress=False)
    assert s["sampling"]["used"] is False
    ex = report.write_report(tr, tmp_path / "e", measure=False, progress=False)
    assert s["traces"]["trace"]["locality"] == ex["traces"]["trace"]["locality"]
