"""analysis.footprint, analysis.locality and analysis.bandwidth: exact on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import bandwidth as bw
from analysis import footprint as fp
from analysis import locality as loc
from tests import naive
from tracegen import locality as tl
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace


@pytest.fixture
def small() -> Trace:
    """t0: one-hot ids 1 1 2 3 1 2 (10 rows); t1: bags [0 1] [] [2] [0] [3 3] [] (4 rows)."""
    t0 = Table.one_hot("t0", np.array([1, 1, 2, 3, 1, 2]), 10)
    t1 = Table.from_lengths("t1", np.array([0, 1, 2, 0, 3, 3]), np.array([2, 0, 1, 1, 2, 0]), 4)
    return Trace([t0, t1])


# ---- footprint ----------------------------------------------------------------------------------------

def test_row_and_table_bytes():
    assert [fp.row_bytes(64, d) for d in ("fp32", "fp16", "int8")] == [256, 128, 72]
    assert fp.row_bytes(3, "int8") == 3 + 8  # D codes + fp32 scale + fp32 bias
    assert fp.table_bytes(1000, 16, "fp16") == 32000
    with pytest.raises(TracegenError, match="unknown dtype"):
        fp.row_bytes(4, "bf8")
    with pytest.raises(TracegenError, match="positive"):
        fp.row_bytes(0)


def test_footprint_hand_computed(small):
    f = fp.footprint(small, dim=2, batch_size=2)
    t0, t1 = f.tables
    assert (t0.accesses, t0.rows_touched, t1.accesses, t1.rows_touched) == (6, 3, 6, 4)
    assert t0.table_bytes == {"fp32": 80, "fp16": 40, "int8": 100}
    assert t0.touched_bytes == {"fp32": 24, "fp16": 12, "int8": 30}
    assert t1.table_bytes == {"fp32": 32, "fp16": 16, "int8": 40}
    # batches of t0: [1 1] [2 3] [1 2]; of t1: [0 1] [2 0] [3 3]
    assert t0.rows_per_batch_mean == pytest.approx(5 / 3) and t0.rows_per_batch_max == 2
    assert t1.rows_per_batch_mean == pytest.approx(5 / 3) and t1.rows_per_batch_max == 2
    assert t0.hot_rows == {"0.5": 1, "0.9": 3, "0.99": 3}  # counts 3 2 1
    assert t1.hot_rows == {"0.5": 2, "0.9": 4, "0.99": 4}  # counts 2 2 1 1
    assert f.total_hot_rows == {"0.5": 3, "0.9": 6, "0.99": 7}  # counts 3 2 2 2 1 1 1
    assert f.total_hot_bytes["0.5"] == {"fp32": 24, "fp16": 12, "int8": 30}
    mixed = fp.footprint(small, dim=[2, 4], batch_size=2)  # t1 rows are 16 bytes in fp32
    # hottest 3: t0 row 1 (3), t0 row 2 (2), then t1 row 0 (2): 8 + 8 + 16 bytes
    assert mixed.total_hot_bytes["0.5"]["fp32"] == 32
    assert mixed.total_hot_bytes["0.99"]["fp32"] == 3 * 8 + 4 * 16
    assert (f.total_rows, f.total_rows_touched, f.total_accesses) == (14, 7, 12)
    assert f.total_table_bytes["int8"] == 140 and f.total_touched_bytes["fp32"] == 56


def test_hot_set_rows_edges():
    got = fp.hot_set_rows(np.array([5, 5, 5, 5]), [0.25, 0.5, 0.51, 1.0])
    assert got == {0.25: 1, 0.5: 2, 0.51: 3, 1.0: 4}
    assert fp.hot_set_rows(np.zeros(0, np.int64), [0.5]) == {0.5: 0}
    with pytest.raises(TracegenError):
        fp.hot_set_rows(np.array([1]), [0])


def test_working_set_and_footprint_curve():
    assert fp.working_set(np.array([1, 2, 1, 3, 3, 3, 4]), 3).tolist() == [2, 1, 1]
    n, d = fp.footprint_curve(np.array([5, 5, 6, 7, 5]), points=5)
    assert n.tolist() == [1, 2, 3, 4, 5] and d.tolist() == [1, 1, 2, 3, 3]
    with pytest.raises(TracegenError):
        fp.working_set(np.array([1]), 0)


def test_distinct_per_group_matches_naive(rng):
    v = rng.integers(0, 50, 3000) * 7919 + 10**12  # large ids take the dense-key path
    starts = np.unique(np.concatenate([[0, 3000], rng.integers(0, 3000, 40)]))
    assert fp.distinct_per_group(v, starts).tolist() == naive.distinct_per_group(v, starts).tolist()
    small = rng.integers(0, 50, 3000)  # small ids index directly
    assert fp.distinct_per_group(small, starts).tolist() == naive.distinct_per_group(small, starts).tolist()


def test_place_rows_and_tables(small):
    p = fp.place(small, 24, dim=2, granularity="rows")  # 3 rows of 8 bytes: counts 3, 2 (t0), 2 (t1)
    assert (p.bytes_used, p.accesses_kept, p.accesses) == (24, 7, 12)
    assert p.hit_ratio == pytest.approx(7 / 12)
    assert p.rows_kept == {"t0": 2, "t1": 1} and p.tables_kept == []
    p = fp.place(small, 100, dim=2, granularity="tables")  # t1 (32 B, 6 acc) fits, t0 (80 B) does not
    assert (p.tables_kept, p.bytes_used, p.hit_ratio) == (["t1"], 32, 0.5)
    p = fp.place(small, 112, dim=2, granularity="tables")
    assert p.hit_ratio == 1.0 and sorted(p.tables_kept) == ["t0", "t1"]
    p = fp.place(small, 10**6, dim=2)
    assert p.hit_ratio == 1.0 and p.bytes_used == 56 and sorted(p.tables_kept) == ["t0", "t1"]
    assert fp.place(small, 0, dim=2).hit_ratio == 0.0
    with pytest.raises(TracegenError, match="granularity"):
        fp.place(small, 10, granularity="bytes")


def test_place_hit_ratio_never_falls_with_budget(rng):
    x = rng.zipf(1.3, (400, 3)) % 40
    tr = Trace.from_dense_ids(x, [40, 40, 40])
    hits = [fp.place(tr, b, dim=4).hit_ratio for b in range(0, 2000, 80)]
    assert all(a <= b for a, b in zip(hits, hits[1:]))


# ---- locality -----------------------------------------------------------------------------------------

def test_lines_and_units():
    assert loc.lines_per_row(64) == 4 and loc.lines_per_row(3) == 1 and loc.lines_per_row(17) == 2
    assert loc.lines_per_row(64, "int8") == 2  # 72 bytes
    assert loc.mrc_in_units([1, 10], 64, "bytes").tolist() == [256, 2560]
    assert loc.mrc_in_units([1, 10], 17, "lines").tolist() == [2, 20]


def test_interleave_hand_example(small):
    ids, tab = loc.interleave(small, batch_size=2)
    # batch 0: t0 [1 1], t1 [0 1] (+10); batch 1: t0 [2 3], t1 [2 0]; batch 2: t0 [1 2], t1 [3 3]
    assert ids.tolist() == [1, 1, 10, 11, 2, 3, 12, 10, 1, 2, 13, 13]
    assert tab.tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]


@pytest.mark.parametrize("bs", [1, 3, 7, 50, 1000])
def test_interleave_one_hot_fast_path_equals_general(rng, bs):
    tr = Trace.from_dense_ids(rng.integers(0, 9, (103, 4)), [9, 10, 11, 12])
    base = np.array([0, 9, 19, 30, 42])
    fast, general = loc.interleave(tr, bs), loc._interleave_bags(tr, bs, base)
    assert np.array_equal(fast[0], general[0]) and np.array_equal(fast[1], general[1])
    if bs == 1:  # per-sample order is the locality engine's interleave
        ref = tl.interleave(tr)
        assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1])


def test_stream_mrc_equals_lru_simulation(rng):
    ids = rng.zipf(1.2, 2000) % 150
    s = loc.stream_locality(ids, "x")
    sizes = [0, 1, 2, 10, 37, 149, 500]
    assert s.miss_ratio(sizes).tolist() == [naive.lru_miss_ratio(ids, c) for c in sizes]
    assert s.distinct == len(set(ids.tolist())) and s.sample_rate == 1.0
    assert s.sd_cdf([0, 9]).tolist() == [1 - naive.lru_miss_ratio(ids, 1), 1 - naive.lru_miss_ratio(ids, 10)]


def test_shared_cache_equals_lru_on_interleaved(small):
    t = loc.trace_locality(small, dim=2, batch_size=2)
    ids, _ = loc.interleave(small, 2)
    for c in (1, 2, 3, 5, 8):
        assert t.shared.miss_ratio([c])[0] == naive.lru_miss_ratio(ids.tolist(), c)
    assert [s.name for s in t.tables] == ["t0", "t1"] and not t.sampled
    assert t.row_bytes == 8 and t.lines_per_row == 1


def test_shards_switches_above_threshold_and_estimates(rng):
    ids = rng.integers(0, 3000, 40000)  # no heavy hitters: a hashed 25% sample is representative
    exact = loc.stream_locality(ids)
    est = loc.stream_locality(ids, threshold=10000)
    # 25% of ~3000 rows is under SHARDS_MIN_IDS sampled rows: the rate goes up to 1024 / distinct
    assert est.sample_rate == pytest.approx(1024 / np.unique(ids).size) and exact.sample_rate == 1.0
    sizes = loc.cache_sizes(3000, 20)
    sizes = sizes[sizes >= 8]  # SHARDS cannot resolve caches below a few times 1 / rate rows
    err = np.abs(exact.miss_ratio(sizes) - est.miss_ratio(sizes))
    assert err.max() < 0.03
    assert est.distinct == exact.distinct  # distinct rows stay exact
    with pytest.raises(TracegenError):
        loc.stream_locality(ids, sample_rate=1.5)


def test_mrc_never_rises(rng):
    s = loc.stream_locality(rng.zipf(1.3, 5000) % 700, sample_rate=0.3)
    mr = s.miss_ratio(np.arange(0, 2000, 7))
    assert np.all(np.diff(mr) <= 1e-12) and mr[0] == 1.0


def test_compare_streams():
    a = loc.stream_locality(np.array([1, 2, 1, 2, 1, 2]), "a")
    same = loc.compare_streams(a, loc.stream_locality(np.array([5, 6, 5, 6, 5, 6]), "a"))
    assert same["mrc_mae"] == 0 and same["sd_cdf_ks"] == 0 and same["distinct_rel_err"] == 0
    b = loc.stream_locality(np.array([1, 2, 3, 1, 2, 3]), "a")
    d = loc.compare_streams(a, b, sizes=[1, 2, 3])
    # a: miss 1.0, 1/3, 1/3 at 1, 2, 3 rows; b: 1.0, 1.0, 0.5
    assert d["mrc_max_abs_err"] == pytest.approx(2 / 3) and d["mrc_max_err_at_rows"] == 2
    assert d["mrc_mae"] == pytest.approx((0 + 2 / 3 + 1 / 6) / 3)
    assert d["distinct_rel_err"] == pytest.approx(0.5)


def test_miss_ratio_at_units():
    s = loc.stream_locality(np.array([1, 2, 1, 2, 1, 2]))
    assert loc.miss_ratio_at(s, 512, "bytes", 64) == pytest.approx(1 / 3)
    assert loc.miss_ratio_at(s, 2, "rows", 64) == pytest.approx(1 / 3)
    assert loc.miss_ratio_at(s, 7, "lines", 64) == 1.0  # 7 lines hold one 4-line row


# ---- bandwidth model ----------------------------------------------------------------------------------

def test_batch_traffic_hand_computed():
    t = bw.batch_traffic(lookups=10, distinct=4, samples=5, dim=8)  # row 32 bytes
    assert t == {"indices": 128, "forward_gather": 320, "forward_output": 160, "backward_grad": 320,
                 "scatter_read": 128, "scatter_write": 128, "state_read": 0, "state_write": 0, "total": 1184}
    ada = bw.batch_traffic(10, 4, 5, 8, optimizer="adagrad")
    assert (ada["state_read"], ada["state_write"], ada["total"]) == (128, 128, 1440)
    assert bw.batch_traffic(10, 4, 5, 8, optimizer="rowwise_adagrad")["total"] == 1184 + 32
    assert bw.batch_traffic(10, 4, 5, 8, training=False)["total"] == 128 + 320 + 160
    q = bw.batch_traffic(10, 4, 5, 8, dtype="int8")  # 16-byte rows
    assert (q["forward_gather"], q["scatter_read"]) == (160, 64)
    with pytest.raises(TracegenError, match="optimizer"):
        bw.batch_traffic(1, 1, 1, 1, optimizer="adam")


def test_traffic_after_cache_and_required_bandwidth():
    t = bw.batch_traffic(10, 4, 5, 8)
    left = bw.traffic_after_cache(t, 0.25)
    assert left["forward_gather"] == 80 and left["scatter_read"] == 32 and left["indices"] == 128
    assert left["total"] == 128 + 80 + 160 + 320 + 32 + 32
    assert bw.traffic_after_cache(t, 1.0)["total"] == t["total"]
    assert bw.required_bandwidth(1184, 5, 1000) == 1184 * 200
    with pytest.raises(TracegenError):
        bw.traffic_after_cache(t, 1.5)


def test_model_traffic_hand_computed(small):
    m = bw.model_traffic(small, dim=2, batch_size=2)
    # per table and batch: L = 2, U = 5/3 on average, B = 2, rows of 8 bytes
    per_table = 16 + 24 + 16 + 16 + 16 + 2 * 8 * 5 / 3
    assert m.tables["t0"]["total"] == pytest.approx(per_table)
    assert m.tables["t1"]["total"] == pytest.approx(per_table)
    assert m.total["total"] == pytest.approx(2 * per_table)
    assert m.lookups_per_batch == 4 and m.distinct_per_batch == pytest.approx(10 / 3)


def test_uniform_like_keeps_bags(small):
    u = bw.uniform_like(small, seed=3)
    u.validate()
    assert all(np.array_equal(a.offsets, b.offsets) for a, b in zip(u.tables, small.tables))
    assert bw.uniform_like(small, seed=3).equals(u)


def test_measure_embedding_bag_runs(small):
    pytest.importorskip("torch")
    m = bw.measure_embedding_bag(small, dim=4, batch_size=2, device="cpu", max_batches=2, warmup=1,
                                min_seconds=0)
    assert m["batches"] == 2 and m["seconds_per_batch"] > 0
    assert m["bytes_per_batch"] == pytest.approx(bw.model_traffic(small.slice(2, 6), 4, 2).total["total"])
    assert bw.copy_bandwidth(1 << 16, "cpu", repeats=2) > 0
    cycled = bw.measure_embedding_bag(small, dim=4, batch_size=2, device="cpu", max_batches=2, warmup=1,
                                      min_seconds=0.05)
    assert cycled["batches"] >= 2 and cycled["bytes_per_batch"] == m["bytes_per_batch"]


def test_measure_restores_threads(small):
    import torch

    before = torch.get_num_threads()
    out = bw.measure({"a": small}, dim=4, batch_size=2, device="cpu", max_batches=1, copy_bytes=1 << 12,
                     threads=1, max_seconds=0.05)
    assert out["threads"] == 1 and torch.get_num_threads() == before
    assert 0 < out["traces"]["a"]["fraction_of_copy"]


def test_working_set_windows_exact(rng):
    ids = rng.integers(0, 20, 300)
    s = loc.stream_locality(ids, windows=[1, 7, 50, 301])
    for w in (1, 7, 50):
        want = np.mean([len(set(ids[i:i + w].tolist())) for i in range(len(ids) - w + 1)])
        assert s.working_set[w] == pytest.approx(want)
    assert 301 not in s.working_set  # longer than the stream


def test_log2_histogram():
    s = loc.stream_locality(np.array([1, 2, 3, 3, 2, 1, 9, 9]))  # sd: -1 -1 -1 0 1 2 -1 0
    h = s.log2_histogram()
    assert h["lower_edges"] == [0, 1] and h["counts"] == [2.0, 2.0] and h["cold"] == 4.0


def test_sized_stream_equals_byte_lru_simulation(rng):
    ids = rng.zipf(1.2, 1500) % 90
    size_of = {int(i): int(rng.integers(1, 9)) * 4 for i in np.unique(ids)}
    s = loc.sized_stream_locality(ids, np.array([size_of[int(i)] for i in ids]))
    caps = [0, 3, 4, 20, 77, 200, 1000]
    assert s.miss_ratio(caps).tolist() == [naive.lru_size_miss_ratio(ids.tolist(), size_of, c) for c in caps]


def test_sized_stream_with_one_size_is_the_row_mrc(rng):
    ids = rng.integers(0, 3000, 20000)
    rows = loc.stream_locality(ids)
    sized = loc.sized_stream_locality(ids, np.full(ids.size, 256))
    assert np.array_equal(sized.miss_ratio([0, 255, 256, 2560, 30000]), rows.miss_ratio([0, 0, 1, 10, 117]))
    est = loc.sized_stream_locality(ids, np.full(ids.size, 256), threshold=10000)  # asks 0.5 of 3000 rows
    assert est.sample_rate == pytest.approx(0.5)
    sizes = np.array([16, 64, 200, 1000, 2500]) * 256
    assert np.abs(est.miss_ratio(sizes) - rows.miss_ratio([16, 64, 200, 1000, 2500])).max() < 0.05
    low = loc.sized_stream_locality(ids, np.full(ids.size, 256), threshold=2000)  # 0.1 of 3000 rows: raised
    assert low.sample_rate == pytest.approx(1024 / np.unique(ids).size)


def test_shared_sized_mixed_dims(small):
    ids, tab = loc.interleave(small, 2)
    size_of = {int(i): (8 if i < 10 else 16) for i in ids}  # t0 D=2, t1 D=4 in fp32
    s = loc.shared_sized_locality(small, [2, 4], batch_size=2)
    for c in (8, 16, 24, 40, 64):
        assert s.miss_ratio([c])[0] == naive.lru_size_miss_ratio(ids.tolist(), size_of, c)
    lines = loc.shared_sized_locality(small, [2, 40], unit="lines", batch_size=2)  # 1 and 3 lines per row
    assert lines.unit == "lines" and lines.miss_ratio([10**6])[0] == pytest.approx(7 / 12)


# ---- plots: tables without accesses ---------------------------------------------------------------------

def _stream_mrc(table: Table, max_rows: int = 64):
    """``analysis.locality.mrc_points`` of one table's stream, as the report computes its per-table curves."""
    s = loc.trace_locality(Trace([table]), dim=4, batch_size=2).tables[0]
    return loc.mrc_points(s, max_rows)


@pytest.fixture
def capture_figure(monkeypatch):
    """The figure a plots function draws, instead of a PNG."""
    from analysis import plots

    figs = []

    def keep(fig, path):
        figs.append(fig)
        return str(path)

    monkeypatch.setattr(plots, "_save", keep)
    yield figs
    import matplotlib.pyplot as plt

    for f in figs:
        plt.close(f)


def test_mrc_leaves_out_tables_without_accesses(small, capture_figure):
    from analysis import plots

    empty = Table.from_lengths("t9", np.zeros(0, np.int64), np.zeros(6, np.int64), 5)
    curves = {"t0": {"real": _stream_mrc(small.tables[0])}, "t9": {"real": _stream_mrc(empty)}}
    assert not np.any(curves["t9"]["real"][1] > 0)  # what made it look like a perfect cache
    kept, notes = plots.table_curves_drawn(curves)
    assert list(kept) == ["t0"] and notes == ["t9: no accesses"]
    # with two traces, a table empty in only one keeps the other's curve
    both = {"t0": {"real": curves["t0"]["real"], "synth": curves["t9"]["real"]}}
    kept, notes = plots.table_curves_drawn(both)
    assert list(kept["t0"]) == ["real"] and notes == ["t0: no accesses in synth"]

    shared = {"real": (np.array([256.0, 512.0]), np.array([0.8, 0.5]))}
    plots.mrc("unused.png", shared, None, curves)
    ax2 = capture_figure[-1].axes[1]
    assert [ln.get_label() for ln in ax2.get_lines()] == ["t0"]
    assert "t9: no accesses" in ax2.get_title()


def test_table_bars_leave_out_tables_without_accesses(capture_figure):
    from analysis import plots

    names = ["t0", "t1", "t2"]
    series = {"allocated fp32": [4096.0, 2048.0, 1024.0], "touched (real)": [512.0, 0.0, 256.0],
              "touched (synth)": [256.0, 0.0, 0.0]}
    drawn, heights, notes = plots.bar_tables_drawn(names, series)
    assert drawn == ["t0", "t2"]
    assert notes == ["t1: no accesses", "t2: no accesses in touched (synth)"]
    assert heights["allocated fp32"] == [4096.0, 1024.0] and heights["touched (real)"] == [512.0, 256.0]
    assert heights["touched (synth)"][0] == 256.0 and np.isnan(heights["touched (synth)"][1])

    plots.table_bars("unused.png", names, series, "bytes (MiB, log)", "Per-table footprint")
    ax = capture_figure[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t0", "t2"]
    assert "t1: no accesses" in ax.get_title()
    h = sorted(p.get_height() for p in ax.patches if np.isfinite(p.get_height()))
    assert h[0] == 256.0 / 2**20  # no bar at a made-up floor
