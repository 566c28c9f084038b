"""Audit of the benchmarks' baselines and metrics (benchmarks/*): each baseline is what it claims to be.

The DLRM reference's generator is checked against a line-by-line transliteration of
facebookresearch/dlrm ``dlrm_data_pytorch.py`` (``trace_profile``, the ``__main__`` distribution,
``generate_stack_distance``, ``trace_generate_lru``) driven by the same uniforms.
"""

from __future__ import annotations

import bisect
import collections
import importlib
import pathlib
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """Import a benchmark script as a module (its folder on sys.path only for this test)."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    for name in ("baselines", "sample_speed", "fidelity", "probes", "locality", "load_npz"):
        mod = sys.modules.get(name)
        if mod is not None and str(BENCH) in str(getattr(mod, "__file__", "")):
            sys.modules.pop(name)


# ---- a transliteration of the reference (plain lists, as it is written there) ---------------------
def ref_profile(trace):
    rstack, sds, line_accesses = collections.deque(), collections.deque(), collections.deque()
    for r in trace:
        try:
            i = rstack.index(r)
            sds.appendleft(len(rstack) - i)
            del rstack[i]
            rstack.append(r)
        except ValueError:
            sds.appendleft(0)
            line_accesses.appendleft(r)
            rstack.append(r)
    sds.reverse()
    line_accesses.reverse()
    n = len(sds)
    dc = sorted(collections.Counter(sds).items())
    list_sd = [k for k, _ in dc]
    cumm, acc = [], 0.0
    for _, c in dc:
        acc += c / float(n)
        cumm.append(acc)
    return list(line_accesses), list_sd, cumm


def ref_generate(line_accesses, list_sd, cumm_sd, uniforms):
    line_accesses = list(line_accesses)
    max_sd = list_sd[-1]
    n_ids = len(line_accesses)
    i = 0
    out = []
    for u in uniforms:
        if i < max_sd:
            j = bisect.bisect(list_sd, i) - 1
            u *= cumm_sd[j]
        sd = next((list_sd[j] for j, f in enumerate(cumm_sd) if u <= f), list_sd[-1])
        if sd == 0:
            ref = line_accesses[0]
            del line_accesses[0]
            line_accesses.append(ref)
            i += 1
        else:
            ref = line_accesses[n_ids - sd]
            del line_accesses[n_ids - sd]
            line_accesses.append(ref)
        out.append(ref)
    return out


def _traces():
    rng = np.random.default_rng(5)
    yield [1, 2, 3, 4, 5, 3, 4, 1, 1, 6, 3]  # the shape of the reference's input/trace.log
    w = 1.0 / np.arange(1, 61) ** 1.1
    yield (rng.choice(60, 400, p=w / w.sum()) * 7 + 3).tolist()
    yield (np.arange(500) % 37).tolist()  # a loop: deep distances only, drawn early on
    yield rng.integers(0, 200, 300).tolist()  # more ids than the output will exhaust


@pytest.mark.parametrize("k", range(4))
def test_iid_sd_profile_is_the_references(bench, k):
    bl = bench("baselines")
    trace = list(_traces())[k]
    la, ls, cs = bl.reference_profile(np.array(trace))
    la0, ls0, cs0 = ref_profile(trace)
    assert la.tolist() == la0 and ls.tolist() == ls0
    np.testing.assert_allclose(cs, cs0, rtol=1e-12)


@pytest.mark.parametrize("k", range(4))
def test_iid_sd_equals_the_reference_generator(bench, k):
    """Same profile, same uniforms: exactly the reference's ids (including the early restriction to
    depths <= ids seen, and cold draws taking the LRU bottom once every id has been seen)."""
    bl = bench("baselines")
    trace = list(_traces())[k]
    u = np.random.default_rng(k).random(3 * len(trace))
    la, ls, cs = ref_profile(trace)
    want = ref_generate(la, ls, cs, u.tolist())
    got = bl.iid_from_profile(la, ls, cs, u)
    assert got.tolist() == want


def test_iid_sd_early_draws_are_restricted_not_made_cold(bench):
    """Pairs over a loop of 50 ids (a a b b ...): depth 1 half the time, depth 50 the other half, 50
    colds in 10,000. While fewer than 50 ids are seen, the reference draws among depths <= ids seen
    (cold with probability 0.005 / 0.505 per access, so about 10 new ids in the first 1,000
    accesses); it never turns a too-deep draw into a new id (which would give all 50 within ~100)."""
    bl = bench("baselines")
    real = np.repeat(np.arange(5000) % 50, 2)
    for seed in range(3):
        out = bl.dlrm_reference_ids(real, real.size, seed=seed)
        assert np.unique(out[:1000]).size < 25
        assert np.unique(out).size <= 50


def test_iid_sd_matches_the_reference_on_its_toy_input(bench):
    """The reference's own input/dist_emb_0.log law (depths 0,1,3,4,5) over ids 1..6."""
    bl = bench("baselines")
    la, ls, cs = [1, 2, 3, 4, 5, 6], [0, 1, 3, 4, 5], [0.55, 0.64, 0.82, 0.91, 1.0]
    u = np.random.default_rng(3).random(200)
    assert bl.iid_from_profile(la, ls, cs, u).tolist() == ref_generate(la, ls, cs, u.tolist())


# ---- fidelity metrics: both sides measured the same way ------------------------------------------
def _hot_set_twins():
    """The same 10 hot ids with the same counts; the synthetic trace touches half as many cold ids."""
    hot = np.repeat(np.arange(10), 100)
    real = np.r_[hot, np.arange(10, 1000)]  # 1,000 distinct: top 1% = the 10 hot ids
    synth = np.r_[hot, np.repeat(np.arange(10, 505), 2)]  # 505 distinct, same length
    return real, synth


def test_top_share_counts_the_same_number_of_ids_on_both_sides(bench):
    fid = bench("fidelity")
    real, synth = _hot_set_twins()
    e = fid.top_share_errors(real, synth)
    assert e["top1"] == 0.0  # the hottest 10 ids take 1000/1990 of the accesses on both sides
    # top 10% = 100 ids: real 1000 + 90 singles, synthetic 1000 + 90 doubles
    assert e["top10"] == pytest.approx(abs(1090 / 1990 - 1180 / 1990), abs=1e-12)


def test_fidelity_score_uses_the_same_hot_set(bench):
    fid = bench("fidelity")
    from tracegen.trace import Trace

    real, synth = _hot_set_twins()
    s = fid.score(Trace.single(real, name="t0"), Trace.single(synth, name="t0"), with_non_lru=False)
    assert s["top1"] == 0.0
    # the other metrics are sized from the real trace too: LRU sizes 1..1000, footprint / 1000
    assert s["footprint"] == pytest.approx(1 - 505 / 1000, abs=0.01)


def test_lru_mrc_error_by_hand():
    """real 1 2 1 3 2 1: sd -1 -1 1 -1 2 2; sizes 1,2,3 (1 to the real distinct count): miss 1, 5/6,
    1/2 (LRU by hand). synthetic 1 1 1 1 1 1: miss 1/6 at every size."""
    from tracegen.trace import Trace
    from tracegen.tracemodel import fidelity

    f = fidelity(Trace.single(np.array([1, 2, 1, 3, 2, 1])), Trace.single(np.ones(6, np.int64)))["t0"]
    assert f["mrc_max"] == pytest.approx(5 / 6)
    assert f["mrc_mean"] == pytest.approx((5 / 6 + 4 / 6 + 2 / 6) / 3)


# ---- sample_speed: the timed reference is the reference ------------------------------------------
def test_sample_speed_times_the_reference_generator(bench):
    """The generator sample_speed.py times (a line-by-line port) gives the reference's ids: the same
    as baselines.iid_from_profile (checked above against the transliteration) on the same uniforms."""
    ss, bl = bench("sample_speed"), bench("baselines")
    rng = np.random.default_rng(2)
    w = 1.0 / np.arange(1, 301) ** 0.9
    real = rng.choice(300, 3000, p=w / w.sum())
    la, ls, cs = bl.reference_profile(real)
    got: list = []
    rate = ss.reference_generate_lru(2000, la.tolist(), ls.tolist(), cs.tolist(), seed=4, out=got)
    assert rate > 0
    u = np.random.RandomState(4).rand(2000)  # rand(1) per access is the same stream
    assert got == bl.iid_from_profile(la, ls, cs, u).tolist()


# ---- fidelity: a method that leaves tables out is compared on its own tables ---------------------
def test_rows_on_the_tables_fbgemm_scored(bench):
    """FBGEMM refuses some tables; its row averages the rest. Ours is then also shown on exactly those
    tables (access-weighted), so the two rows compare like with like."""
    fid = bench("fidelity")
    from tracegen.trace import Table, Trace

    rng = np.random.default_rng(0)

    def tab(name, n, u):
        return Table.from_lengths(name, rng.integers(0, u, n), np.ones(n, np.int64), u)

    real = Trace([tab("a", 400, 50), tab("b", 400, 5)])
    ours = Trace([tab("a", 400, 50), tab("b", 400, 5)])
    fb = Trace([tab("a", 400, 50)])  # table b left out
    r = {"accesses": 800, "methods": {"ours": fid.score(real, ours, False), "fbgemm": fid.score(real, fb, False)}}
    assert r["methods"]["fbgemm"]["tables_scored"] == 1
    extra = fid.same_tables_rows(r)
    assert list(extra) == ["ours (on fbgemm's 1/2 tables)"]
    only_a = fid.score(Trace([real.tables[0]]), Trace([ours.tables[0]]), False)
    for m in ("mrc_mean", "mrc_max", "top1", "top10", "footprint"):
        assert extra["ours (on fbgemm's 1/2 tables)"][m] == pytest.approx(only_a[m])
    md = fid.markdown({"t": r})
    assert "| t | 800 | fbgemm (1/2 tables) |" in md and "| t | 800 | ours (on fbgemm's 1/2 tables) |" in md


def test_load_npz_also_times_np_load_lazy_open(bench, capsys):
    """np.load on an npz is lazy too: the benchmark prints that like-for-like figure next to the
    eager read of every array."""
    ln = bench("load_npz")
    assert ln.main(["--accesses", "20000"]) == 0
    out = capsys.readouterr().out
    assert "np.load alone (lazy NpzFile): open" in out and "np.load reading every array" in out


def test_fidelity_holdout_rows(bench, monkeypatch, capsys):
    """--holdout: ours fitted on the first half, scored against the second, next to the first half
    itself scored the same way (every other row is in sample)."""
    fid = bench("fidelity")
    from tracegen.trace import Trace

    ids = np.random.default_rng(0).zipf(1.3, 4000) % 300
    monkeypatch.setattr(fid, "load_traces", lambda data, m, only: [("tiny", Trace.single(ids.astype(np.int64)))])
    assert fid.main(["--no-fbgemm", "--no-dp", "--no-non-lru", "--holdout"]) == 0
    out = capsys.readouterr().out
    for label in ("ours", "dlrm-ref", "iid-sd", "uniform", "halves", "ours, fit on 1st half, vs 2nd",
                  "1st half vs 2nd"):
        assert f"| tiny | 4,000 | {label} |" in out
