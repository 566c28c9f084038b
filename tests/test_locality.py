"""The locality engine against tests/naive.py: stack distances, MRCs, footprint, popularity, SHARDS,
streaming, reuse-factor histograms, the shared-cache interleave, libcachesim and the profile CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import naive
from tracegen import _kernels
from tracegen import locality as L
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace

SMALL = [[], [7], [3, 3, 3, 3], list(range(20)), [1, 2, 3, 1, 2, 3, 3, 2, 1, 9], [5, 5, 6, 5, 6, 6, 7]]


# ---- exact stack distances -------------------------------------------------------------------
@pytest.mark.parametrize("ids", SMALL)
@pytest.mark.parametrize("shift", [0, 10**15, -(10**6)])
def test_stack_distances_small(ids, shift):
    a = np.array(ids, dtype=np.int64) + shift
    np.testing.assert_array_equal(L.stack_distances(a), naive.stack_distances(a.tolist()))


@pytest.mark.parametrize("n,u,sparse", [(3000, 40, False), (3000, 400, True), (5000, 2500, False),
                                        (4000, 4000, True)])
def test_stack_distances_random(rng, n, u, sparse):
    ids = rng.integers(0, u, n)
    if sparse:
        ids = ids * 1_000_003 + 2**40
    np.testing.assert_array_equal(L.stack_distances(ids), naive.stack_distances(ids.tolist()))


@pytest.mark.parametrize("u", [1, 3, 64, 65, 200])
def test_stack_distances_many_compactions(rng, u):
    """Long traces over few ids: the time counter wraps the O(U) tree hundreds of times."""
    ids = rng.integers(0, u, 60_000) + 5
    np.testing.assert_array_equal(L.stack_distances(ids), naive.stack_distances(ids.tolist()))
    hashed = ids * 7919 + 10**12  # same trace through the hashed id table
    np.testing.assert_array_equal(L.stack_distances(hashed), naive.stack_distances(ids.tolist()))


def test_stack_distances_growth_paths(rng):
    """Key store and tables grow mid-trace: a trace whose distinct ids keep arriving."""
    ids = np.concatenate([rng.integers(0, 50, 2000), np.arange(5000) * 3 + 10**9,
                          rng.integers(0, 3000, 3000)])
    np.testing.assert_array_equal(L.stack_distances(ids), naive.stack_distances(ids.tolist()))


def test_first_cut_kernel_still_exact(rng):
    ids = rng.integers(0, 70, 3000)
    keys, u = L.dense_keys(ids)
    np.testing.assert_array_equal(_kernels._stack_distances(keys, u), naive.stack_distances(ids.tolist()))


def test_dense_keys_first_appearance(rng):
    ids = rng.integers(-5, 100, 500) * 1_000_000_007
    keys, u = L.dense_keys(ids)
    np.testing.assert_array_equal(keys, naive.first_appearance(ids))
    assert u == len(set(ids.tolist()))


def test_bad_ids():
    with pytest.raises(TracegenError, match="1-D"):
        L.stack_distances(np.zeros((2, 2), np.int64))
    with pytest.raises(TracegenError, match="integers"):
        L.stack_distances(np.array([0.5, 1.0]))


# ---- reuse times, MRC -------------------------------------------------------------------------
@pytest.mark.parametrize("ids", SMALL + [[4, 1, 4, 4, 2, 1, 9, 4]])
def test_reuse_times(ids):
    np.testing.assert_array_equal(L.reuse_times(np.array(ids, dtype=np.int64)), naive.reuse_times(ids))


def test_mrc_properties(rng):
    ids = rng.zipf(1.3, 5000) % 300
    counts, cold = L.sd_histogram(L.stack_distances(ids))
    sizes, mr = L.miss_ratio_curve(counts, cold)
    assert mr[0] == 1.0
    assert np.all(np.diff(mr) <= 0)
    assert mr[-1] == cold / ids.size == len(set(ids.tolist())) / ids.size
    _, far = L.miss_ratio_curve(counts, cold, [10**9])
    assert far[0] == cold / ids.size
    picks = [0, 1, 2, 7, 50, 299, 300, 301]
    want = [naive.lru_miss_ratio(ids, c) for c in picks]
    assert L.miss_ratio_curve(counts, cold, picks)[1].tolist() == want


def test_mrc_empty():
    counts, cold = L.sd_histogram(L.stack_distances(np.array([], np.int64)))
    assert L.miss_ratio_curve(counts, cold, [0, 5])[1].tolist() == [0.0, 0.0]


# ---- footprint and popularity -----------------------------------------------------------------
def test_footprint_and_working_set(rng):
    ids = rng.integers(0, 80, 700)
    pts = [0, 1, 2, 5, 99, 100, 699, 700, 900]
    n, d = L.footprint_curve(ids, pts)
    assert n.tolist() == pts
    np.testing.assert_array_equal(d, naive.footprint(ids, pts))
    n, d = L.footprint_curve(ids)
    assert n[0] == 1 and n[-1] == 700 and n.size <= 200 and np.all(np.diff(n) > 0)
    np.testing.assert_array_equal(d, naive.footprint(ids, n))
    for w in (1, 7, 64, 700, 701):
        np.testing.assert_array_equal(L.working_set(ids, w), naive.distinct_per_window(ids, w))
    windows = [1, 2, 3, 10, 333, 700, 701]
    got = L.average_working_set(ids, windows)
    want = [naive.average_working_set(ids, w) for w in windows]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(TracegenError):
        L.working_set(ids, 0)


def test_access_counts_and_top_share():
    ids = [5, 5, 5, 5, 9, 9, 1, 2, 2, 3]
    c = L.access_counts(np.array(ids))
    assert c.tolist() == [4, 2, 2, 1, 1]
    # top 20% of 5 ids = 1 id = 4/10; top 40% = 2 ids = 6/10; top 50% = ceil(2.5) = 3 ids = 8/10
    assert L.top_share(c, [0, 0.2, 0.4, 0.5, 1.0]).tolist() == [0.0, 0.4, 0.6, 0.8, 1.0]


# ---- reuse factor histograms ------------------------------------------------------------------
def test_reuse_factor_histogram_hand_example():
    # batch 0 (4 accesses): ids 1 x3, 2 x1 -> rows (0,1]: 1/2, (2,4]: 1/2; accesses 1/4 and 3/4
    # batch 1 (4 accesses): 7 x2, 8 x1, 9 x1 -> rows (0,1]: 2/3, (1,2]: 1/3; accesses 2/4, 2/4
    # the trailing partial batch [4] is dropped
    ids = np.array([1, 1, 2, 1, 7, 8, 7, 9, 4])
    r = L.reuse_factor_histogram(ids, 4)
    assert r["batches"] == 2 and r["batch_size"] == 4
    assert r["avg_indices"] == 4.0 and r["avg_unique"] == 2.5 and r["avg_col_size"] == 1.6
    assert r["col_size_hist"][:3] == pytest.approx([(0.5 + 2 / 3) / 2, (0 + 1 / 3) / 2, (0.5 + 0) / 2])
    assert r["index_share"][:3] == pytest.approx([(0.25 + 0.5) / 2, (0 + 0.5) / 2, (0.75 + 0) / 2])
    assert sum(r["col_size_hist"][3:]) == 0 and len(r["col_size_hist"]) == 17


def test_reuse_factor_histogram_vs_naive(rng):
    ids = np.concatenate([rng.zipf(1.1, 3000) % 50000, np.full(40000, 3)])
    r = L.reuse_factor_histogram(ids, 21500)
    want = naive.reuse_factor_histogram([ids[:21500].tolist(), ids[21500:43000].tolist()])
    assert r["batches"] == 2
    assert r["col_size_hist"] == pytest.approx(want["col_size_hist"], abs=1e-12)
    assert r["index_share"] == pytest.approx(want["index_share"], abs=1e-12)
    assert r["index_share"][15] > 0  # the id seen 21500 - ... times lands in (16384, 32768]


def test_reuse_factor_histogram_table_batches_by_samples():
    t = Table.from_lengths("t", np.array([1, 1, 2, 3, 3, 3, 1]), np.array([2, 1, 3, 1]), 5)
    r = L.reuse_factor_histogram(t, 2)  # samples {0,1}: [1,1,2]; {2,3}: [3,3,3,1]
    want = naive.reuse_factor_histogram([[1, 1, 2], [3, 3, 3, 1]])
    assert r["col_size_hist"] == pytest.approx(want["col_size_hist"])
    assert r["index_share"] == pytest.approx(want["index_share"])


def test_read_locality_stats(tmp_path, shared_data):
    stats = L.read_locality_stats(shared_data / "dlrm_datasets_stats" / "2021_locality_stats.txt")
    first = stats["fbgemm_t856_bs65536.pt"]
    assert first["batches"] == 1 and first["batch_size"] == 65536
    assert first["avg_indices"] == 887017990 and first["avg_unique"] == 128435723
    assert first["avg_col_size"] == 6.9 and first["edges"] == L.REUSE_EDGES
    assert first["col_size_hist"][:3] == [0.473, 0.152, 0.139] and first["index_share"][-1] == 0.019
    assert len(stats) == 17
    bad = tmp_path / "bad.txt"
    bad.write_text("fbgemm_x.pt\nLocality stats after processing x batches\n")
    with pytest.raises(TracegenError, match="bad.txt: line 2"):
        L.read_locality_stats(bad)


def test_read_locality_stats_synthetic(tmp_path):
    lines = ["set_a.pt", "Locality stats after processing 2 batches of size 8", "Avg # of indices: 16",
             "Avg # of unique cols: 10", "Avg col size: 1.6", "Histogram of col sizes:"]
    pairs = list(zip(L.REUSE_EDGES[:-1], L.REUSE_EDGES[1:]))
    lines += [f"({a}, {b}]: 0.{k:03d}" for k, (a, b) in enumerate(pairs)]
    lines += ["(32768+: 0.500", str(L.REUSE_EDGES), "['0.000']", "Ratio of index distribution at sizes:"]
    lines += [f"({a}, {b}]: 0.010" for a, b in pairs] + ["(32768+: 0.840", ""]
    p = tmp_path / "s.txt"
    p.write_text("\n".join(lines))
    s = L.read_locality_stats(p)["set_a.pt"]
    assert s["batches"] == 2 and s["batch_size"] == 8 and s["avg_unique"] == 10.0
    assert s["col_size_hist"][2] == 0.002 and s["col_size_hist"][-1] == 0.5 and s["index_share"][-1] == 0.84


# ---- shared cache ------------------------------------------------------------------------------
def test_interleave_multi_hot(rng):
    lens = [rng.integers(0, 4, 30) for _ in range(3)]
    tables = [Table.from_lengths(f"t{j}", rng.integers(0, 10 + j, int(lens[j].sum())), lens[j], 10 + j)
              for j in range(3)]
    tr = Trace(tables)
    ids, tix = L.interleave(tr)
    want_ids, want_tix = naive.interleave([t.values for t in tables], [t.offsets for t in tables],
                                          [0, 10, 21])
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(tix, want_tix)


def test_interleave_one_hot():
    tr = Trace.from_dense_ids(np.array([[0, 1], [2, 0], [1, 1]]), [3, 2])
    ids, tix = L.interleave(tr)
    assert ids.tolist() == [0, 4, 2, 3, 1, 4] and tix.tolist() == [0, 1, 0, 1, 0, 1]


# ---- SHARDS -------------------------------------------------------------------------------------
def _zipf(rng, n, u, a):
    p = np.arange(1, u + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(p) / p.sum()
    return rng.permutation(u)[np.minimum(np.searchsorted(cdf, rng.random(n)), u - 1)]


def test_shards_rate_001_mae(rng):
    """MAE over 101 evenly spaced cache sizes (as in the SHARDS paper) on a 1M-access Zipf(0.9) trace.

    The error of one hash seed varies with which hot ids fall in the sample (0.003 to 0.014 over
    seeds here), so the median over five seeds is held to 0.01 and every seed to 0.02.
    """
    ids = _zipf(rng, 1_000_000, 200_000, 0.9)
    counts, cold = L.sd_histogram(L.stack_distances(ids))
    sizes = np.linspace(0, cold, 101).astype(np.int64)
    _, exact = L.miss_ratio_curve(counts, cold, sizes)
    maes = []
    for seed in range(5):
        est = L.shards(ids, rate=0.01, sizes=sizes, seed=seed)
        assert est.rate == 0.01 and est.miss_ratios[0] == 1.0 and np.all(np.diff(est.miss_ratios) <= 1e-12)
        maes.append(np.mean(np.abs(est.miss_ratios - exact)))
    assert np.median(maes) < 0.01 and max(maes) < 0.02, maes
    fixed = L.shards(ids, size=4000, sizes=sizes)
    assert 0.005 < fixed.rate < 0.05 and np.mean(np.abs(fixed.miss_ratios - exact)) < 0.02


def test_shards_rate_one_is_exact(rng):
    ids = rng.integers(0, 100, 3000)
    counts, cold = L.sd_histogram(L.stack_distances(ids))
    est = L.shards(ids, rate=1.0, sizes=[0, 1, 10, 50, 100])
    assert est.miss_ratios.tolist() == L.miss_ratio_curve(counts, cold, [0, 1, 10, 50, 100])[1].tolist()
    big = L.shards(ids, size=1000, sizes=[0, 1, 10, 50, 100])  # never evicts
    assert big.rate == 1.0 and np.allclose(big.miss_ratios, est.miss_ratios)


def test_shards_bad_args():
    with pytest.raises(TracegenError, match="exactly one"):
        L.shards([1, 2], rate=0.1, size=10)
    with pytest.raises(TracegenError, match="rate"):
        L.shards([1, 2], rate=0.0)


def test_fixed_size_shards_kernel_matches_filtered_exact(rng):
    """With no eviction the fixed-size kernel's distances are the exact ones of the sampled sub-trace."""
    ids = rng.integers(0, 1500, 6000)
    h = _kernels._hash_ids(ids, 0)
    thr = np.int64(1 << 59)  # rate 1/8
    sel = ids[h < thr]
    d, m = _kernels._shards_fixed_rate(ids, thr, 0)
    np.testing.assert_array_equal(d[:m], naive.stack_distances(sel.tolist()))
    d2, thrs, final = _kernels._shards_fixed_size(ids, 10**6, 0)
    np.testing.assert_array_equal(d2, naive.stack_distances(ids.tolist()))


def test_fixed_size_shards_eviction_exact(rng):
    """Against a slow model: track the s lowest hashes; distances among tracked ids only."""
    ids = rng.integers(0, 400, 3000)
    s = 25
    h = dict(zip(ids.tolist(), _kernels._hash_ids(ids, 3).tolist()))
    thr = 1 << 62
    tracked: list = []  # LRU stack of tracked ids
    want_d, want_t = [], []
    for x in ids.tolist():
        if h[x] >= thr:
            continue
        want_t.append(thr)
        if x in tracked:
            want_d.append(tracked.index(x))
            tracked.remove(x)
        else:
            want_d.append(-1)
        tracked.insert(0, x)
        while len(tracked) > s:
            top = max(h[y] for y in tracked)
            tracked = [y for y in tracked if h[y] != top]
            thr = top
    d, thrs, final = _kernels._shards_fixed_size(ids, s, 3)
    assert d.tolist() == want_d and thrs.tolist() == want_t and final == thr


# ---- streaming ----------------------------------------------------------------------------------
def test_streaming_direct_map_grows_then_hashes(rng):
    """Chunks whose ids first fit a small direct map, then need a bigger one, then go negative."""
    parts = [rng.integers(0, 300, 4000), rng.integers(0, 3_000_000, 3000), rng.integers(0, 300, 3000),
             rng.integers(-50, 50, 3000), rng.integers(0, 300, 2000)]
    ids = np.concatenate(parts)
    p = L.StreamingProfiler()
    for c in parts:
        p.update(c)
    counts, cold = p.stack_distance_histogram()
    want_counts, want_cold = L.sd_histogram(naive.stack_distances(ids.tolist()))
    assert cold == want_cold and counts.tolist() == want_counts.tolist()
    assert p.result() == L.StreamingProfiler().update(ids).result()


def test_streaming_equals_one_pass(rng):
    ids = np.concatenate([rng.zipf(1.2, 30000) % 4000, rng.integers(10**12, 10**12 + 9000, 20000)])
    one = L.StreamingProfiler().update(ids).result()
    p = L.StreamingProfiler()
    for c in np.array_split(ids, [1, 2, 500, 501, 7000, 33000, 49999]):
        p.update(c)
    assert p.result() == one
    prof = L.profile(Trace.single(ids, cardinality=10**12 + 9000), shared=False)["tables"]["t0"]
    assert prof == one
    counts, cold = p.stack_distance_histogram()
    want_counts, want_cold = L.sd_histogram(L.stack_distances(ids))
    assert cold == want_cold and counts.tolist() == want_counts.tolist()
    counts, cold = L.stack_distance_histogram(ids)
    assert cold == want_cold and counts.tolist() == want_counts.tolist()


# ---- profile --------------------------------------------------------------------------------------
def _trace(rng):
    a = Table.from_lengths("a", rng.integers(0, 50, 600), np.full(200, 3), 50)
    b = Table.one_hot("b", rng.integers(0, 8, 200), 8)
    return Trace([a, b])


def test_profile_values(rng):
    tr = _trace(rng)
    p = L.profile(tr, row_bytes=[64, 128])
    json.dumps(p)
    ta = p["tables"]["a"]
    v = tr.tables[0].values
    assert ta["accesses"] == 600 and ta["distinct"] == len(set(v.tolist()))
    sizes = ta["mrc"]["sizes_rows"]
    assert ta["mrc"]["miss_ratio"] == [naive.lru_miss_ratio(v, c) for c in sizes]
    assert ta["mrc"]["sizes_bytes"] == [64 * c for c in sizes]
    ids, _ = L.interleave(tr)
    sh = p["shared"]
    assert sh["accesses"] == 800
    assert sh["mrc"]["miss_ratio"] == [naive.lru_miss_ratio(ids, c) for c in sh["mrc"]["sizes_rows"]]
    sd = naive.stack_distances(v.tolist())
    assert ta["stack_distance"]["p50"] == int(np.percentile(sd[sd >= 0], 50, method="inverted_cdf"))
    est = L.profile(tr, sample_rate=0.5)  # too few distinct ids to sample: exact, and it says so
    ea = est["tables"]["a"]
    assert ea["method"] == "exact" and ea["sample_rate"] == 1.0 and ea["requested_sample_rate"] == 0.5
    assert ea["mrc"] == ta["mrc"] | {"sizes_bytes": None} and ea["lru_hit_ratio"] == ta["lru_hit_ratio"]


@pytest.mark.parametrize("one_hot", [True, False])
def test_interleave_dense_keeps_distances_and_order(rng, one_hot):
    """``interleave(dense=True)`` numbers each table's ids 0..U-1 by first appearance, offset by the distinct
    counts before it: the same stream up to a bijection that keeps tables apart (so the same stack
    distances), ids below the access count; ``table_index=False`` returns the ids alone."""
    if one_hot:
        tr = Trace.from_dense_ids(rng.integers(0, 10**9, (300, 3)) % np.array([7, 10**9, 40]), [7, 10**9, 40])
    else:
        tr = _trace(rng)
    ids, tix = L.interleave(tr)
    d = L.interleave(tr, table_index=False, dense=True)
    assert isinstance(d, np.ndarray) and d.shape == ids.shape
    assert np.array_equal(L.interleave(tr, table_index=False), ids)
    assert np.array_equal(naive.stack_distances(d.tolist()), naive.stack_distances(ids.tolist()))
    u = [np.unique(t.values).size for t in tr.tables]
    base = np.concatenate([[0], np.cumsum(u)])
    for j, t in enumerate(tr.tables):
        got = d[tix == j] - base[j]
        assert np.array_equal(got, L.dense_keys(t.values)[0])  # (a table keeps its own order)
        assert got.min() == 0 and got.max() == u[j] - 1
    assert d.max() == sum(u) - 1


# ---- libcachesim --------------------------------------------------------------------------------
def test_lru_equals_libcachesim_on_real_trace(shared_data):
    pytest.importorskip("libcachesim")
    from tracegen import cachesim

    path = shared_data / "arc" / "arc_OLTP_P3.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    ids = np.load(path)["OLTP"][:200_000].astype(np.int64)
    sizes = [1, 10, 100, 1000, 5000, 20000]
    counts, cold = L.sd_histogram(L.stack_distances(ids))
    ours = L.miss_ratio_curve(counts, cold, sizes)[1]
    theirs = cachesim.miss_ratios(ids, "lru", sizes)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_cachesim_policies(rng):
    pytest.importorskip("libcachesim")
    from tracegen import cachesim

    ids = rng.integers(0, 300, 5000)
    counts, cold = L.sd_histogram(L.stack_distances(ids))
    sizes = [0, 5, 50, 150, 400]
    lru = L.miss_ratio_curve(counts, cold, sizes)[1]
    np.testing.assert_allclose(cachesim.miss_ratios(ids, "LRU", sizes), lru)
    fifo = cachesim.miss_ratios(ids, "fifo", sizes)
    assert fifo[0] == 1.0 and fifo[-1] == pytest.approx(cold / ids.size, abs=1e-12)
    assert np.isnan(cachesim.miss_ratios(ids, "s3fifo", [5])[0])
    opt = cachesim.miss_ratios(ids, "belady", [50])[0]
    assert opt <= min(fifo[2], L.miss_ratio_curve(counts, cold, [50])[1][0])
    with pytest.raises(TracegenError, match="unknown cache policy"):
        cachesim.miss_ratios(ids, "nope", [1])


def test_cachesim_missing_package(monkeypatch):
    import builtins

    from tracegen import cachesim

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "libcachesim":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(TracegenError, match="libcachesim"):
        cachesim.miss_ratios([1, 2], "lru", [1])


# ---- CLI ------------------------------------------------------------------------------------------
def test_profile_cli(tmp_path, rng, capsys):
    from tracegen import formats
    from tracegen.cli import main

    tr = _trace(rng)
    src = tmp_path / "t.npz"
    formats.write(tr, src)
    out = tmp_path / "p.json"
    assert main(["profile", str(src), "-o", str(out), "--row-bytes", "256"]) == 0
    text = capsys.readouterr().out
    assert "(shared)" in text and "hit@100" in text
    p = json.loads(out.read_text())
    a = tr.tables[0].values
    assert p["tables"]["a"]["distinct"] == len(set(a.tolist()))
    assert p["tables"]["a"]["lru_hit_ratio"]["10"] == 1 - naive.lru_miss_ratio(a, 10)
    assert p["tables"]["b"]["mrc"]["sizes_bytes"][-1] == 256 * p["tables"]["b"]["mrc"]["sizes_rows"][-1]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("a "))
    assert f"{p['tables']['a']['accesses']:,}" in line
    before = out.read_text()
    assert main(["profile", str(src), "-o", str(out), "--table", "b", "-q"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
    assert main(["profile", str(src), "-o", str(out), "--table", "b", "--force", "--sample-rate", "0.5"]) == 0
    p = json.loads(out.read_text())
    assert list(p["tables"]) == ["b"] and p["shared"] is None
    assert p["tables"]["b"]["method"] == "exact" and p["tables"]["b"]["requested_sample_rate"] == 0.5  # 8 ids
    assert main(["profile", str(src), "--sample-rate", "2"]) == 2
    assert "--sample-rate" in capsys.readouterr().err
    assert main(["profile", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz: no such file" in capsys.readouterr().err
