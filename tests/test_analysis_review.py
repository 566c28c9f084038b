"""Correctness review of the analysis figures (round 8): every printed or saved number against a slow,
obvious reference on small hand-made traces (multi-hot bags, repeated ids in a bag, empty bags, a table
never accessed, mixed row sizes, caches of 0 and 1 row, windows longer than the trace)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import bandwidth as bw
from analysis import footprint as fp
from analysis import locality as loc
from analysis import report as rp
from tests import naive
from tracegen.trace import Table, Trace


def _hand_trace(seed: int = 0, b: int = 37, names=("a", "b", "never", "c")) -> Trace:
    """Four tables: Zipf-ish multi-hot with repeats and empty bags (50 rows); 1-2 ids per bag from 7 rows;
    a table never accessed (1000 rows); 0-3 ids per bag from 300 rows."""
    rng = np.random.default_rng(seed)
    lens0 = rng.integers(0, 5, b)
    lens0[3] = 0
    lens1 = rng.integers(1, 3, b)
    lens3 = rng.integers(0, 4, b)
    return Trace([
        Table.from_lengths(names[0], rng.zipf(1.5, lens0.sum()) % 50, lens0, 50),
        Table.from_lengths(names[1], rng.integers(0, 7, lens1.sum()), lens1, 7),
        Table.from_lengths(names[2], np.zeros(0, np.int64), np.zeros(b, np.int64), 1000),
        Table.from_lengths(names[3], rng.integers(0, 300, lens3.sum()), lens3, 300),
    ])


def _pairs(trace: Trace) -> list:
    return [(t.values, t.offsets) for t in trace.tables]


# ---- defects found in this round ------------------------------------------------------------------------

def test_compare_pairs_tables_by_position_when_names_differ():
    """`tracegen report --vs` says "tables compared by position" when names differ; the comparison used to
    pair by name, so every per-table figure vanished (per-table mean printed as nan)."""
    real, synth = _hand_trace(0), _hand_trace(1)
    renamed = Trace([Table("x" + t.name, t.cardinality, t.values, t.offsets) for t in synth.tables])
    a = loc.trace_locality(real, 8, batch_size=4, progress=False)
    same = loc.compare(a, loc.trace_locality(synth, 8, batch_size=4, progress=False))
    other = loc.compare(a, loc.trace_locality(renamed, 8, batch_size=4, progress=False))
    assert len(other["tables"]) == 4 and [r["name"] for r in other["tables"]] == real.names
    assert other["tables"][0]["name_synthetic"] == "xa"
    for x, y in zip(same["tables"], other["tables"]):
        assert x["mrc_mae"] == y["mrc_mae"] and x["sd_cdf_ks"] == y["sd_cdf_ks"]
    assert other["mean_table_mrc_mae"] == same["mean_table_mrc_mae"] > 0
    # different table counts: still by name
    assert loc.paired_tables(["a", "b", "c"], ["c", "a"]) == [(0, 1), (2, 0)]


def test_report_figures_pair_tables_by_position(tmp_path, monkeypatch):
    """With names differing, the per-table footprint bars of the second trace were all 0 ("no accesses") and
    its per-table MRCs were missing from the figure."""
    from analysis import plots

    seen = {}
    real_bars, real_mrc = plots.table_bars, plots.mrc

    def bars(path, names, series, *a, **k):
        seen["bars"] = (list(names), {lab: list(v) for lab, v in series.items()})
        return real_bars(path, names, series, *a, **k)

    def mrc(path, curves, lines_per_byte, table_curves=None, **k):
        seen["mrc"] = {t: sorted(c) for t, c in (table_curves or {}).items()}
        return real_mrc(path, curves, lines_per_byte, table_curves, **k)

    monkeypatch.setattr(plots, "table_bars", bars)
    monkeypatch.setattr(plots, "mrc", mrc)
    real, synth = _hand_trace(0, b=40), _hand_trace(1, b=40, names=("A", "B", "NEVER", "C"))
    rp.write_report(real, tmp_path / "r", vs=synth, dim=8, batch_size=4, measure=False, progress=False)
    names, series = seen["bars"]
    assert names == real.names
    assert series["touched (synthetic)"] == [len(set(t.values.tolist())) * 32 for t in synth.tables]
    assert all(labels == ["real", "synthetic"] for labels in seen["mrc"].values()) and len(seen["mrc"]) == 4


def test_sd_cdf_ks_is_the_sup_over_every_distance():
    """The KS distance was the largest difference at ~48 log-spaced distances only; a loop of 33 rows
    (every warm sd 32) against one of 34 (sd 33) differ by the whole warm share at d = 32, off that grid."""
    ra, rb = np.tile(np.arange(33), 6), np.tile(np.arange(34), 6)
    a, b = loc.stream_locality(ra), loc.stream_locality(rb)
    ref = naive.sd_cdf_ks(naive.stack_distances(ra), naive.stack_distances(rb))
    assert ref == pytest.approx(1 - 33 / ra.size)
    assert loc.compare_streams(a, b)["sd_cdf_ks"] == pytest.approx(ref, abs=1e-12)
    assert loc.sd_cdf_ks(a, b) == pytest.approx(ref, abs=1e-12)
    assert loc.sd_cdf_ks(a, a) == 0.0
    # empty streams and a stream with no reuse
    e = loc.stream_locality(np.zeros(0, np.int64))
    assert loc.sd_cdf_ks(e, e) == 0.0
    assert loc.sd_cdf_ks(loc.stream_locality(np.arange(5)), a) == pytest.approx(1 - 33 / ra.size)


def test_rows_per_batch_mean_uses_the_same_full_batches_as_traffic():
    """A short last batch pulled the footprint's rows-per-batch mean down while the traffic model (and its
    scatter bytes) used full batches only, so the report's "rows / batch" disagreed with its scatter bytes."""
    t = Table.from_lengths("t", np.array([0, 1, 2, 2, 3, 4, 5, 6, 0]), np.array([2, 2, 2, 2, 1]), 8)
    tr = Trace([t])  # batches of 2 samples: {0,1,2} {2,3,4,5} and a short one {0}
    f = fp.footprint(tr, dim=4, batch_size=2)
    assert f.tables[0].rows_per_batch_mean == pytest.approx((3 + 4) / 2)
    assert f.tables[0].rows_per_batch_max == 4 and f.total_rows_per_batch_mean == pytest.approx(3.5)
    traffic = bw.model_traffic(tr, 4, 2)
    assert traffic.tables["t"]["scatter_read"] == pytest.approx(f.tables[0].rows_per_batch_mean * 16)
    # fewer samples than one batch: that one short batch
    assert fp.footprint(tr, dim=4, batch_size=100).tables[0].rows_per_batch_mean == 7


def test_measured_bandwidth_counts_the_bytes_of_the_batches_timed():
    """The measured GB/s divided the mean bytes of the *full* timed batches by the mean time of *all* of them
    (a short last batch included), overstating it; samples/s assumed full batches too."""
    pytest.importorskip("torch")
    tr = _hand_trace(2, b=37)  # batches of 4: 9 full and one of 1 sample
    m = bw.measure_embedding_bag(tr, dim=[4, 8, 4, 2], batch_size=4, device="cpu", max_batches=8, warmup=2,
                                 min_seconds=0.0)
    assert m["batches"] == 8  # batches 2..9, each once
    per = []
    for i in range(2, 10):
        one = tr.slice(4 * i, 4 * i + 4)
        per.append(sum(bw.batch_traffic(t.n_accesses, len(set(t.values.tolist())), one.n_samples, d)["total"]
                       for t, d in zip(one.tables, [4, 8, 4, 2])))
    assert m["bytes_per_batch"] == pytest.approx(np.mean(per), rel=1e-12)
    assert m["achieved_bytes_per_s"] == pytest.approx(m["bytes_per_batch"] / m["seconds_per_batch"], rel=1e-9)
    assert m["samples_per_s"] * m["seconds_per_batch"] == pytest.approx(29 / 8, rel=1e-9)


def test_sizes_and_rates_never_print_in_e_notation():
    assert rp._size(999.7 * 1024) == "1,000 KiB"  # was "1e+03 KiB"
    assert rp._size(1023.7 * 1024) == "1 MiB"  # was "1024 KiB"
    assert rp._size(100.7) == "101 B" and rp._size(0) == "0 B" and rp._size(1023) == "1023 B"
    assert rp._size(164608) == "161 KiB" and rp._size(17926144) == "17.1 MiB"
    assert rp._num(1234.6) == "1,235" and rp._num(23.65) == "23.6" and rp._num(0.7757) == "0.776"


def test_bandwidth_needed_divides_by_the_samples_modelled(tmp_path):
    """A trace shorter than one batch is modelled as one batch of all its samples; the GB/s needed at S
    samples/s divided those bytes by ``batch_size`` (2048) instead of the 37 samples they move."""
    tr = _hand_trace(0, b=37)
    s = rp.write_report(tr, tmp_path / "r", dim=8, measure=False, progress=False)
    t = s["traces"]["trace"]
    per_sample = t["traffic"]["sgd"]["total"]["total"] / 37
    assert t["required_bytes_per_s"]["sgd"] == pytest.approx(per_sample * 1e6, rel=1e-12)
    assert t["traffic"]["sgd"]["samples_per_batch"] == 37
    assert t["required_bytes_per_s"]["adagrad"] == pytest.approx(
        t["traffic"]["adagrad"]["total"]["total"] / 37 * 1e6, rel=1e-12)
    for a in t["after_cache"]:
        assert a["sgd_bytes_per_s_needed"] == pytest.approx(a["sgd_bytes_per_batch"] / 37 * 1e6, rel=1e-12)
    assert "per batch of 37 samples (the whole trace" in rp.text_summary(s)
    # full batches: bytes per batch of batch_size samples
    full = bw.model_traffic(tr, 8, 4)
    assert full.samples_per_batch == 4 and full.n_batches == 9


# ---- figures checked against slow references --------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_shared_lru_in_rows_bytes_lines_against_a_simulated_cache(batch_size):
    tr = _hand_trace(0)
    keys = naive.batch_interleave(_pairs(tr), batch_size)
    tl = loc.trace_locality(tr, 8, batch_size=batch_size, progress=False)  # 32-byte rows, one line each
    for c in (0, 1, 2, 5, 17, 80, 400, 10_000):
        ref = naive.lru_miss_ratio(keys, c)
        assert tl.shared_miss_ratio([c], "rows")[0] == pytest.approx(ref, abs=1e-12)
        assert tl.shared_miss_ratio([c * 32 + 31], "bytes")[0] == pytest.approx(ref, abs=1e-12)
        assert tl.shared_miss_ratio([c], "lines")[0] == pytest.approx(ref, abs=1e-12)
    for s, t in zip(tl.tables, tr.tables):
        for c in (0, 1, 40, 1000):
            assert s.miss_ratio([c])[0] == pytest.approx(naive.lru_miss_ratio(t.values.tolist(), c), abs=1e-12)
    for w, v in (tl.shared.working_set or {}).items():
        assert v == pytest.approx(naive.average_working_set(keys, w), abs=1e-9)
    assert tl.shared.working_set == ({} if batch_size == 100 else tl.shared.working_set)  # window > trace: none


def test_shared_cache_of_mixed_row_sizes_against_a_byte_capacity_lru():
    tr = _hand_trace(0)
    dims = [8, 3, 5, 16]
    keys = naive.batch_interleave(_pairs(tr), 4)
    tl = loc.trace_locality(tr, dims, batch_size=4, progress=False)
    nbytes = {k: 4 * dims[k[0]] for k in keys}
    lines = {k: -(-4 * dims[k[0]] // 64) for k in keys}
    for c in (0, 1, 12, 32, 64, 100, 1000, 5000, 100_000):
        assert tl.shared_miss_ratio([c], "bytes")[0] == pytest.approx(naive.lru_size_miss_ratio(keys, nbytes, c),
                                                                       abs=1e-12)
        assert tl.shared_miss_ratio([c], "lines")[0] == pytest.approx(naive.lru_size_miss_ratio(keys, lines, c),
                                                                       abs=1e-12)


def test_footprint_hot_sets_and_placement_against_counting():
    tr = _hand_trace(0)
    dims = [8, 3, 5, 16]
    f = fp.footprint(tr, dims, 4)
    for t, tf, d in zip(tr.tables, f.tables, dims):
        distinct = len(set(t.values.tolist()))
        assert tf.rows_touched == distinct and tf.touched_bytes["int8"] == distinct * (d + 8)
        assert tf.table_bytes["fp16"] == t.cardinality * 2 * d
        for share in ("0.5", "0.9", "0.99"):
            assert tf.hot_rows[share] == naive.hot_set_size(t.values.tolist(), float(share))
    keys = naive.batch_interleave(_pairs(tr), 1)
    for share in ("0.5", "0.9", "0.99"):
        assert f.total_hot_rows[share] == naive.hot_set_size(keys, float(share))
    from collections import Counter

    rows = sorted(((c / (4 * dims[j]), j, c, 4 * dims[j]) for j, t in enumerate(tr.tables)
                   for c in Counter(t.values.tolist()).values()), key=lambda r: (-r[0], r[1]))
    for budget in (0, 31, 32, 100, 1000, 10**6):
        used = kept = 0
        for _, _, c, size in rows:
            if used + size > budget:
                break
            used, kept = used + size, kept + c
        p = fp.place(tr, budget, dims, "fp32", "rows")
        assert (p.bytes_used, p.accesses_kept) == (used, kept)
        assert p.hit_ratio == pytest.approx(kept / tr.n_accesses)


def test_report_text_equals_its_json_and_its_definitions(tmp_path):
    real, synth = _hand_trace(0, b=60), _hand_trace(1, b=60, names=("A", "B", "NEVER", "C"))
    s = rp.write_report(real, tmp_path / "r", vs=synth, dim=8, batch_size=4, measure=False, progress=False)
    printed = rp.text_summary(s).splitlines()
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert rp.text_summary(saved).splitlines() == printed[1:]  # all but the "report: PATH" line
    c = saved["comparison"]
    assert len(c["tables"]) == 4 and np.isfinite(c["mean_table_mrc_mae"])
    assert "per-table mean nan" not in "\n".join(printed)
    for lab, tr in (("real", real), ("synthetic", synth)):
        t = saved["traces"][lab]
        keys = naive.batch_interleave(_pairs(tr), 4)
        for a in t["after_cache"]:  # 32-byte rows
            assert a["miss_ratio"] == pytest.approx(naive.lru_miss_ratio(keys, a["cache_bytes"] // 32), abs=1e-12)
        m = t["locality"]["shared"]["mrc"]
        assert m["sizes_bytes"] == [r * 32 for r in m["sizes_rows"]]
        assert m["miss_ratio"] == pytest.approx([naive.lru_miss_ratio(keys, r) for r in m["sizes_rows"]], abs=1e-12)
        sd_a = naive.stack_distances([hash(k) for k in keys])
        assert t["locality"]["shared"]["cold_share"] == pytest.approx(np.mean(sd_a < 0))
    ka = naive.stack_distances([hash(k) for k in naive.batch_interleave(_pairs(real), 4)])
    kb = naive.stack_distances([hash(k) for k in naive.batch_interleave(_pairs(synth), 4)])
    assert c["shared"]["sd_cdf_ks"] == pytest.approx(naive.sd_cdf_ks(ka, kb), abs=1e-12)


def test_profile_command_figures_against_references(tmp_path, capsys):
    from tracegen import formats
    from tracegen.cli import main

    tr = _hand_trace(0, b=60)
    path = tmp_path / "t.npz"
    formats.write(tr, path)
    assert main(["profile", str(path), "-o", str(tmp_path / "p.json"), "--row-bytes", "32"]) == 0
    printed = capsys.readouterr().out
    prof = json.loads((tmp_path / "p.json").read_text())
    ids, _ = naive.interleave([t.values for t in tr.tables], [t.offsets for t in tr.tables],
                              np.concatenate([[0], np.cumsum(tr.cardinalities)]))
    streams = [(t.name, prof["tables"][t.name], t.values.tolist()) for t in tr.tables]
    for name, s, v in [*streams, ("(shared)", prof["shared"], ids.tolist())]:
        sd = naive.stack_distances(v) if v else np.zeros(0, np.int64)
        warm = sd[sd >= 0]
        assert s["distinct"] == len(set(v)) and s["cold_fraction"] == pytest.approx(len(set(v)) / max(len(v), 1))
        for q in (50, 90):
            ref = int(np.percentile(warm, q, method="inverted_cdf")) if warm.size else None
            assert s["stack_distance"][f"p{q}"] == ref
        for c, h in s["lru_hit_ratio"].items():
            assert h == pytest.approx(1 - naive.lru_miss_ratio(v, int(c)) if v else 0.0, abs=1e-12)
        assert s["mrc"]["sizes_bytes"] == [r * 32 for r in s["mrc"]["sizes_rows"]]
        line = next(x for x in printed.splitlines() if x.split() and x.split()[0] == name)
        assert f"{s['lru_hit_ratio']['100']:.4f}" in line and f"{len(v):,}" in line


def test_tables_named_alike_in_another_order_pair_by_name():
    from analysis import locality as loc

    assert loc.paired_tables(["a", "b", "c"], ["c", "a", "b"]) == [(0, 1), (1, 2), (2, 0)]
    assert loc.paired_tables(["a", "b"], ["x", "y"]) == [(0, 0), (1, 1)]  # no shared names: by position
    assert loc.paired_tables(["a", "b"], ["b", "x"]) == [(0, 0), (1, 1)]  # names differ: by position
