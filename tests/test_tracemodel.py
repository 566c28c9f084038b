"""TraceModel: the class-stack kernel against tests/naive.py, fit/sample/save/load, determinism, fidelity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import naive
from tracegen import _sample_kernels as K
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace
from tracegen.tracemodel import (
    ALWAYS,
    ClassStackSampler,
    TraceModel,
    fidelity,
    fit_class_stack,
    permute_ids,
    validate_dist,
)


def planted_trace(n: int = 40_000, u: int = 3_000, seed: int = 0) -> np.ndarray:
    """Zipf popularity with temporal locality: half the accesses repeat a recent id."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.3, n) - 1, u - 1)
    perm = rng.permutation(u)
    ids = perm[ranks]
    recent = rng.random(n) < 0.5
    back = np.minimum(rng.geometric(0.05, n), np.arange(n))
    for i in np.nonzero(recent)[0]:
        if back[i] > 0:
            ids[i] = ids[i - back[i]]
    return ids.astype(np.int64)


def _run_kernel(args: dict, n_slots: int = 4096):
    """Run the compiled kernel on pre-drawn inputs, compacting into fresh arrays when the slots fill."""
    c = int(args["cls_cap"].shape[0])
    n = args["cls"].shape[0]
    made = np.zeros(c, np.int64)
    qcnt = np.zeros((args["ptab"].shape[0], c + 2))
    state = np.zeros(3, np.int64)

    def fresh():
        slots = np.zeros((n_slots, 3), np.int64)
        slots[:, 0] = -1
        return (np.zeros((n_slots >> 6) + 1, np.int32), np.zeros(n_slots >> 6, np.uint64), slots,
                np.zeros((c, n_slots >> 6), np.uint64), np.zeros((c, max(1, n_slots >> 12)), np.uint64),
                np.zeros((c, 1), np.uint64))

    tree, live0, slots, b0, b1, b2 = fresh()
    out = np.empty(n, np.int64)
    out_cls = np.empty(n, np.int32)
    a = args
    i = 0
    while i < n:
        i = K._class_stack_run(
            a["cls"], a["cold"], a["dd"], a["gbin"], a["upick"], a["ucpl"], i, out, out_cls, state,
            tree, live0, slots, b0, b1, b2, a["max_ids"], made, a["cls_cap"], a["bud_lo"], a["bud_hi"],
            a["bud_a"], a["bud_off"], a["slack"], a["ptab"], qcnt, a["couple_below"])
        if i < n:  # compact into fresh arrays of the same size (live stays small here)
            old = slots
            tree, live0, slots, b0, b1, b2 = fresh()
            live = K._compact(old, int(state[0]), tree, live0, slots, b0, b1, b2)
            assert live == state[1]
            state[0] = live
    return out, out_cls


@pytest.mark.parametrize(
    "max_ids, couple_below", [(10_000, 0), (150, 0), (10_000, 1 << 62), (150, 1 << 62), (10_000, 20), (150, 20)]
)
def test_kernel_matches_naive(rng, max_ids, couple_below):
    n, c, nb = 6_000, 5, 12
    ptab = rng.random((nb, c))
    ptab /= ptab.sum(1, keepdims=True)
    dd = np.minimum(rng.geometric(0.02, n) - 1, 5_000).astype(np.int64)
    args = {
        "cls": rng.integers(0, c, n).astype(np.int32),
        "cold": rng.random(n) < 0.05,
        "dd": dd,
        # -1 marks an immediate repeat (never coupled)
        "gbin": np.where(rng.random(n) < 0.1, -1, np.minimum(np.log2(dd + 1).astype(np.int64), nb - 1)),
        "upick": rng.random(n),
        "ucpl": rng.random(n),
        "bud_off": rng.random(c),
        "max_ids": max_ids,
        "cls_cap": np.array([10_000, 50, 10_000, 3, 1], np.int64),
        # exponent 0 (uniform) and one-wide ranges keep the budget arithmetic exact in both versions
        "bud_lo": np.array([1.0, 2.0, 5.0, 20.0, 100.0]),
        "bud_hi": np.array([2.0, 4.0, 9.0, 41.0, 1e12]),
        "bud_a": np.zeros(c),
        "slack": 1.0,
        "ptab": ptab,
        "couple_below": couple_below,
    }
    got, got_cls = _run_kernel(args)  # 4096 slots: compacts at least once
    want, want_cls = naive.class_stack_run(**{k: v for k, v in args.items()})
    assert np.array_equal(got, want)
    assert np.array_equal(got_cls, want_cls)


def test_bitset_succ_pred_against_sorted_sets(rng):
    n_slots, c = 1 << 19, 3  # three levels in use
    b0 = np.zeros((c, n_slots >> 6), np.uint64)
    b1 = np.zeros((c, n_slots >> 12), np.uint64)
    b2 = np.zeros((c, 2), np.uint64)
    sets = [set() for _ in range(c)]
    for _ in range(3000):
        k, s = int(rng.integers(c)), int(rng.integers(n_slots))
        if s in sets[k] and rng.random() < 0.5:
            K._bs_clear(b0, b1, b2, k, s)
            sets[k].discard(s)
        else:
            K._bs_set(b0, b1, b2, k, s)
            sets[k].add(s)
        q = int(rng.integers(n_slots))
        succ = min((x for x in sets[k] if x >= q), default=-1)
        pred = max((x for x in sets[k] if x <= q), default=-1)
        assert K._bs_succ(b0, b1, b2, k, q) == succ
        assert K._bs_pred(b0, b1, b2, k, q) == pred


@pytest.mark.parametrize("m", [1, 2, 3, 17, 1000, 65_537])
def test_permutation_is_a_bijection(m):
    ss = np.random.SeedSequence(3)
    p = permute_ids(np.arange(m), m, ss)
    assert np.array_equal(np.sort(p), np.arange(m))
    if m > 100:
        assert not np.array_equal(p, np.arange(m))


def test_sample_before_fit_says_what_to_call():
    with pytest.raises(TracegenError, match=r"call fit\(trace\) or TraceModel.load"):
        TraceModel().sample(10)


@pytest.mark.parametrize("kw", [{"seed": -1}, {"seed": 1.5}, {"seed": True}, {"n_samples": True},
                                {"n_samples": 0}, {"n_samples": 2.0}])
def test_sample_rejects_bad_seeds_and_counts_in_one_line(kw):
    m = TraceModel().fit(Trace.single(planted_trace(2_000), name="t0"))
    with pytest.raises(TracegenError, match=r"^(seed|n_samples) must be"):
        m.sample(**{"n_samples": 10, **kw})


def test_time_bins_without_accesses_take_the_nearest_bins_rates():
    """A feature absent from the first samples: the twin's bags there are not empty (bag lengths do not
    depend on time), so those bins need class mixes and cold rates; with cold rate 0 the twin could only
    repeat its first id (LRU MRC error 0.11)."""
    rng = np.random.default_rng(0)
    b = 4_000
    lens = rng.integers(0, 4, b)
    lens[:500] = 0
    real = Trace([Table.from_lengths("mh", rng.integers(0, 50, int(lens.sum())), lens, cardinality=50)])
    m = TraceModel().fit(real)
    node = m.model_["tables"][0]["ids"]
    nt = node["n_time_bins"]
    first = (500 * nt) // b  # the first bin with accesses
    assert all(node["cold"][t] == node["cold"][first] for t in range(first))
    assert all(node["mix"][t] == node["mix"][first] for t in range(first))
    f = fidelity(real, m.sample(b, seed=0))["mh"]
    assert f["mrc_mean"] < 0.02 and f["footprint"] < 0.3  # 0.11 and 0.88 before


def test_fit_and_sample_planted_fidelity():
    ids = planted_trace()
    real = Trace.single(ids, cardinality=int(ids.max()) + 1)
    model = TraceModel().fit(real)
    syn = model.sample(seed=1)
    syn.validate()
    assert syn.n_samples == real.n_samples and syn.tables[0].cardinality == real.tables[0].cardinality
    f = fidelity(real, syn)["t0"]
    assert f["mrc_mean"] <= 0.01 and f["mrc_max"] <= 0.03
    # top-1% over the real table's 30 hottest ids on both sides: 0.020-0.032 over six twins of this
    # 40k-access table (the 0.02 is met on the benchmark's longer traces, not here)
    assert f["top1"] <= 0.035 and f["top10"] <= 0.03
    assert 0.9 <= f["distinct_ratio"] <= 1.1


def test_same_seed_same_trace_and_chunking_does_not_matter():
    ids = planted_trace(20_000)
    model = TraceModel().fit(Trace.single(ids))
    a = model.sample(20_000, seed=7)
    assert a.equals(model.sample(20_000, seed=7))
    assert not np.array_equal(a.tables[0].values, model.sample(20_000, seed=8).tables[0].values)
    chunks = list(model.sample_iter(20_000, seed=7, chunk_samples=3_001))
    assert np.array_equal(np.concatenate([c.tables[0].values for c in chunks]), a.tables[0].values)


def test_class_stack_reproduces_class_counts():
    ids = planted_trace(30_000)
    lengths = np.ones(ids.shape[0], np.int64)
    node = fit_class_stack(ids, lengths, min_count=10)
    shares = np.array([c["share"] for c in node["classes"]])
    assert abs(shares.sum() - 1) < 1e-9
    # min-count rule: every class is supported by >= K samples (one-hot: its accesses)
    assert all(round(c["share"] * 30_000) >= 10 for c in node["classes"])
    assert node["classes"][0]["count_range"] == [1, 1] and node["classes"][0]["n_ids"] >= 10
    s = ClassStackSampler(node, int(ids.max()) + 1, np.random.SeedSequence(0))
    out = s.next(30_000, np.zeros(30_000, np.int64))
    assert out.min() >= 0 and out.max() <= ids.max()
    # the most popular class's share of accesses is kept
    top = node["classes"][-1]
    cnt = np.sort(np.unique(out, return_counts=True)[1])[::-1]
    assert abs(cnt[: top["n_ids"]].sum() / 30_000 - top["share"]) < 0.03


def multi_hot_trace(b: int = 3_000, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 4, b)
    t1 = Table.from_lengths("A", rng.integers(0, 500, int(lens.sum())), lens, 500)
    t2 = Table.one_hot("B", np.minimum(rng.zipf(1.5, b) - 1, 99), 100)
    dense = np.column_stack([rng.integers(0, 50, b), rng.normal(0, 1, b)]).astype(np.float32)
    labels = (rng.random(b) < 0.25).astype(np.float32)
    return Trace([t1, t2], dense=dense, labels=labels)


def test_multi_hot_dense_labels_drop_in():
    real = multi_hot_trace()
    syn = TraceModel().fit(real).sample(seed=0)
    syn.validate()
    assert syn.names == real.names and syn.cardinalities == real.cardinalities
    assert syn.dense.shape == real.dense.shape and syn.dense.dtype == real.dense.dtype
    assert syn.labels.shape == real.labels.shape and syn.labels.dtype == real.labels.dtype
    assert syn.tables[1].is_one_hot
    assert abs(syn.tables[0].lengths.mean() - real.tables[0].lengths.mean()) < 0.1
    assert abs(syn.labels.mean() - 0.25) < 0.04
    assert np.all(syn.dense[:, 0] == np.round(syn.dense[:, 0]))  # integer column stays integer
    assert abs(np.median(syn.dense[:, 1]) - np.median(real.dense[:, 1])) < 0.15


def test_save_load_round_trip(tmp_path):
    real = multi_hot_trace(1_000)
    m = TraceModel().fit(real)
    p = tmp_path / "dist.json"
    m.save(p)
    with pytest.raises(TracegenError, match="already exists"):
        m.save(p)
    m2 = TraceModel.load(p)
    assert m2.model_ == json.loads(p.read_text())
    assert m.sample(500, seed=3).equals(m2.sample(500, seed=3))
    doc = json.loads(p.read_text())
    assert doc["format"] == "tracegen-dist" and doc["schema_version"] == 1
    assert doc["privacy"]["raw_ids"] is False and doc["privacy"]["min_count"] == 10


def _doc():
    return TraceModel().fit(Trace.single(planted_trace(5_000))).model_


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="something"), "format: is 'something'"),
        (lambda d: d.update(schema_version=2), "schema_version: is 2, but this tracegen reads up to 1"),
        (lambda d: d["tables"][0].pop("cardinality"), r"tables\[0\].cardinality: missing field"),
        (
            lambda d: d["tables"][0]["ids"].update(kind="nonsense"),
            r"tables\[0\].ids.kind: unknown kind 'nonsense'",
        ),
        (
            lambda d: d["tables"][0]["ids"]["classes"][1]["sd"]["probs"].__setitem__(0, -0.5),
            r"tables\[0\].ids.classes\[1\].sd.probs\[0\]: negative probability",
        ),
        (
            lambda d: d["tables"][0]["ids"]["classes"][1]["sd"]["probs"].__setitem__(
                0, d["tables"][0]["ids"]["classes"][1]["sd"]["probs"][0] + 0.07
            ),
            r"tables\[0\].ids.classes\[1\].sd.probs: sums to 1.07, not 1",
        ),
        (lambda d: d["tables"][0]["ids"]["mix"][0].__setitem__(0, 5.0), r"tables\[0\].ids.mix\[0\]: sums to"),
        (lambda d: d["tables"][0]["ids"]["cold"][0].__setitem__(0, 1.5), r"tables\[0\].ids.cold\[0\]: rates"),
        (
            lambda d: d["tables"][0].update(bag_length={"kind": "constant"}),
            r"tables\[0\].bag_length.value: missing",
        ),
        (lambda d: d.update(labels={"kind": "bernoulli", "rate": 2}), "labels.rate: must be in"),
        (
            lambda d: d["tables"][0]["ids"].update(repeat=[1.0] * len(d["tables"][0]["ids"]["classes"])),
            r"tables\[0\].ids.repeat: must be a list of \d+ rates in \[0, 1\)",
        ),
        (lambda d: d["tables"][0]["ids"].update(repeat=[0.1]), r"tables\[0\].ids.repeat: must be a list of"),
        (
            lambda d: d["tables"][0]["ids"].update(coupling_below=-3),
            r"tables\[0\].ids.coupling_below: must be >= 0",
        ),
        (lambda d: d["tables"][0]["ids"].update(n_phases=0), r"tables\[0\].ids.n_phases: must be in \[1,"),
        (
            lambda d: (
                d["tables"][0]["ids"].update(n_phases=4),
                d["tables"][0]["ids"]["classes"][1].update(sd_phases=[None]),
            ),
            r"tables\[0\].ids.classes\[1\].sd_phases: has 1 entries, expected n_phases = 4",
        ),
        (
            lambda d: (
                d["tables"][0]["ids"].update(n_phases=4),
                d["tables"][0]["ids"]["classes"][1].update(sd_phases=[None, None, {"kind": "empirical-binned"}, None]),
            ),
            r"tables\[0\].ids.classes\[1\].sd_phases\[2\].edges: missing",
        ),
    ],
)
def test_bad_dist_json_names_the_field(tmp_path, edit, message):
    d = _doc()
    edit(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TracegenError, match=message) as e:
        TraceModel.load(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_load_not_json_and_missing(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(TracegenError, match="not valid JSON"):
        TraceModel.load(p)
    with pytest.raises(TracegenError, match="no such file"):
        TraceModel.load(tmp_path / "absent.json")


def test_from_spec_validates():
    with pytest.raises(TracegenError, match="tables: missing field"):
        TraceModel.from_spec({"format": "tracegen-dist", "schema_version": 1})
    validate_dist(_doc())


@pytest.mark.parametrize("kw, name", [
    ({"min_count": 1}, "min_count"), ({"min_count": 2.7}, "min_count"), ({"min_count": "10"}, "min_count"),
    ({"n_time_bins": 0}, "n_time_bins"), ({"n_time_bins": 1.5}, "n_time_bins"), ({"calibrate": -1}, "calibrate"),
    ({"calibrate": True}, "calibrate"), ({"epsilon": float("inf")}, "epsilon"), ({"epsilon": 0.0}, "epsilon"),
    ({"epsilon": 1.0, "max_bag": 0}, "max_bag"), ({"sd_bins_per_octave": 0}, "sd_bins_per_octave"),
])
def test_fit_rejects_bad_parameters_in_one_line(kw, name):
    with pytest.raises(TracegenError, match=rf"^{name} must be an? (integer|finite number)"):
        TraceModel(**kw).fit(Trace.single(np.arange(10)))


def test_get_params_round_trips_the_constructor():
    m = TraceModel(min_count=5, tables=["a"], calibrate=0)
    assert TraceModel(**m.get_params()).get_params() == m.get_params() and m.get_params()["tables"] == ["a"]


def test_fit_rejects_bad_input():
    with pytest.raises(TracegenError, match="min_count must be an integer >= 2"):
        TraceModel(min_count=1).fit(Trace.single(np.arange(10)))
    with pytest.raises(TracegenError, match="empty"):
        TraceModel().fit(Trace([Table.one_hot("a", np.zeros(0, np.int64), 5)]))
    with pytest.raises(TracegenError, match="needs a tracegen Trace"):
        TraceModel().fit(np.arange(10))


def test_fidelity_of_a_trace_with_itself_is_zero():
    tr = Trace.single(planted_trace(5_000))
    f = fidelity(tr, tr)["t0"]
    assert f["mrc_max"] == 0 and f["top1"] == 0 and f["footprint"] == 0 and f["bag_tv"] == 0


def test_shared_data_oltp_fidelity(shared_data):
    ids = np.load(shared_data / "arc" / "arc_OLTP_P3.npz")["OLTP"][:200_000].astype(np.int64)
    real = Trace.single(ids)
    f = fidelity(real, TraceModel().fit(real).sample(seed=0))["t0"]
    assert f["mrc_mean"] <= 0.01 and f["top1"] <= 0.02


def test_alias_tables_imply_the_probabilities(rng):
    from tracegen.tracemodel import _alias_tables

    dists = [rng.random(7), np.array([0.0, 1.0, 0.0]), np.array([1.0]), rng.random(50) ** 4]
    off, size, aprob, alias = _alias_tables(dists)
    for g, d in enumerate(dists):
        n, o = int(size[g]), int(off[g])
        implied = aprob[o : o + n].copy()
        for j in range(n):
            implied[alias[o + j]] += 1.0 - aprob[o + j]
        assert np.allclose(implied / n, d / d.sum(), atol=1e-12)
    u = (np.arange(10_000) + 0.5) / 10_000
    draws = K._alias_draw(np.zeros(10_000, np.int64), u, off, size, aprob, alias)
    assert np.abs(np.bincount(draws, minlength=7) / 10_000 - dists[0] / dists[0].sum()).max() < 2e-3


def test_sparse_64bit_keys_use_the_distinct_count():
    ids = planted_trace(5_000) * 2_654_435_761 + (1 << 60)  # hashed keys
    tr = Trace.single(ids, cardinality=(1 << 62) - 1)
    m = TraceModel().fit(tr)
    u = np.unique(ids).shape[0]
    assert m.cardinalities == [u]
    syn = m.sample(seed=0)
    assert syn.tables[0].values.max() < u


def test_table_with_only_empty_bags():
    empty = Table.from_lengths("e", np.zeros(0, np.int64), np.zeros(100, np.int64), 10)
    tr = Trace([empty, Table.one_hot("a", np.arange(100) % 13, 13)])
    syn = TraceModel().fit(tr).sample(seed=0)
    syn.validate()
    assert syn.tables[0].n_accesses == 0 and syn.tables[1].n_accesses == 100


def _pre_draw_inputs(rng, n=5_000, c=4, nt=3):
    from tracegen.tracemodel import _alias_tables

    mix = rng.random((nt, c)) + 0.05
    mix /= mix.sum(1, keepdims=True)
    sd_probs = [rng.random(int(rng.integers(1, 9))) + 0.01 for _ in range(c)]
    lo = np.concatenate([np.sort(rng.choice(200, len(p), replace=False)) for p in sd_probs]).astype(np.int64)
    width = rng.integers(1, 50, lo.shape[0]).astype(np.int64)
    return {
        "tbin": np.sort(rng.integers(0, nt, n)).astype(np.int64),
        "u": [rng.random(n) for _ in range(3)],
        "mix": _alias_tables(list(mix)),
        "qcold": rng.random((nt, c)) * 0.3,
        "sd": _alias_tables(sd_probs),
        "lo": lo,
        "width": width,
        "grid": np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 1 << 20], np.int64),
    }


def _draw(a, rep, block):
    n, c = a["tbin"].shape[0], a["qcold"].shape[1]
    acc = np.full(c, 0.5)
    prev = np.array([-1], np.int64)
    out = [np.empty(n, np.int32), np.empty(n, np.bool_), np.empty(n, np.int64), np.empty(n, np.int64)]
    for s in range(0, n, block):  # pieces: the carried state (prev, acc) makes them one stream
        e = min(n, s + block)
        K._draw_accesses(
            a["tbin"][s:e], *(u[s:e] for u in a["u"]), *a["mix"], a["qcold"], acc, *a["sd"], a["lo"],
            a["width"], a["grid"], True, rep, prev, *(o[s:e] for o in out))
    return out


def test_fused_pre_draws_equal_the_separate_kernels(rng):
    a = _pre_draw_inputs(rng)
    c = a["qcold"].shape[1]
    cls, cold, dd, gb = _draw(a, np.zeros(c), 777)
    want_cls = K._alias_draw(a["tbin"], a["u"][0], *a["mix"])
    want_cold = K._cold_schedule(want_cls, a["qcold"][a["tbin"], want_cls], np.full(c, 0.5))
    want_dd, want_gb = K._draw_sd(want_cls, a["u"][1], a["u"][2], *a["sd"], a["lo"], a["width"], a["grid"], True)
    assert np.array_equal(cls, want_cls) and np.array_equal(cold, want_cold)
    assert np.array_equal(dd, want_dd) and np.array_equal(gb, want_gb)


def test_immediate_repeats_follow_the_previous_class(rng):
    a = _pre_draw_inputs(rng, n=20_000)
    rep = np.array([0.0, 0.5, 0.2, 0.9])
    cls, cold, dd, gb = _draw(a, rep, 20_000)
    assert np.array_equal([x for x in _draw(a, rep, 333)[0]], cls)  # block size does not matter
    is_rep = gb == -1
    assert not is_rep[0] and np.all(cls[1:][is_rep[1:]] == cls[:-1][is_rep[1:]])
    assert np.all(dd[is_rep] == 0) and not cold[is_rep].any()
    for c in range(4):  # P(repeat | previous access of class c) = rep[c]
        after = np.nonzero(cls[:-1] == c)[0] + 1
        assert abs(is_rep[after].mean() - rep[c]) < 4 * np.sqrt(0.25 / max(after.shape[0], 1)) + 1e-9


def test_immediate_repeats_are_fitted_and_reproduced(rng):
    """Ids read twice in a row (write after read): the repeat rate is fitted and the twin keeps it."""
    ids = planted_trace(20_000)
    twice = rng.random(ids.shape[0]) < 0.3
    ids = np.repeat(ids, np.where(twice, 2, 1))
    real = Trace.single(ids)
    model = TraceModel().fit(real)
    d = model.model_
    node = d["tables"][0]["ids"]
    assert max(node["repeat"]) > 0.1
    without = TraceModel.from_spec(
        {**d, "tables": [{**d["tables"][0], "ids": {**node, "repeat": [0.0] * len(node["classes"])}}]}
    )
    r0 = (naive.stack_distances(ids) == 0).mean()  # about 0.33
    got = []
    for m in (model, without):
        syn = m.sample(seed=2)
        got.append(((naive.stack_distances(syn.tables[0].values) == 0).mean(), fidelity(real, syn)["t0"]))
    assert abs(got[0][0] - r0) < 0.04 and abs(got[1][0] - r0) > 0.15  # without: about 0.10
    assert got[0][1]["mrc_mean"] < 0.5 * got[1][1]["mrc_mean"] and got[0][1]["top1"] <= 0.03


def test_repeat_calibration_solves_for_ids_alone_in_their_class():
    """Zipf(1.5): the top id takes ~38% of accesses and is a class of its own, so drawing its class
    again re-reads it; the calibrated repeat rate must leave room for that (one round suffices)."""
    from tracegen import synth
    from tracegen.tracemodel import _time_bins, _without_phases, calibrate_class_stack

    ids = synth.zipf_ids(100_000, 100_000, 1.5, seed=3).astype(np.int64)
    lengths = np.ones(ids.shape[0], np.int64)
    node = _without_phases(fit_class_stack(ids, lengths))
    top = int(np.argmax([cl["share"] for cl in node["classes"]]))
    assert node["classes"][top]["n_ids"] == 1 and node["repeat"][top] > 0.3
    real = (naive.stack_distances(ids) == 0).mean()  # about 0.175
    got = []
    for it in (0, 1):
        cal = calibrate_class_stack(node, lengths, 100_000, iters=it) if it else node
        smp = ClassStackSampler(cal, 100_000, np.random.SeedSequence([1]))
        out = smp.next(ids.shape[0], _time_bins(lengths, int(cal["n_time_bins"])))
        got.append((naive.stack_distances(out) == 0).mean())
    assert got[0] - real > 0.05  # the fitted rate counts those re-reads twice (about 0.27)
    assert abs(got[1] - real) < 0.01  # the ratio update of before was 0.07 off after one round
    assert cal["repeat"][top] < 0.05  # the class draw alone makes the repeats of an independent reference


def test_repeat_solve_is_joint_over_classes_on_a_table_of_few_ids():
    """Four ids, one class each: the class draws alone make every repeat (drawn rates 0 are exact). The
    solve took each class's share of the non-repeat draws as fixed, but zeroing the other rates moves
    it: after two rounds the top id kept 0.146 of drawn repeats and the twin 0.363 of its accesses at
    distance 0 against 0.336 (LRU MRC mean error 0.008 on 4M accesses)."""
    from tracegen import synth
    from tracegen.tracemodel import _time_bins, _without_phases, calibrate_class_stack

    ids = synth.zipf_ids(300_000, 4, 1.05, seed=5).astype(np.int64)
    lengths = np.ones(ids.shape[0], np.int64)
    node = {**_without_phases(fit_class_stack(ids, lengths)), "coupling": False}
    assert len(node["classes"]) == 4 and max(node["repeat"]) > 0.45
    real = float((naive.stack_distances(ids) == 0).mean())  # sum of squared shares, about 0.336
    cal = calibrate_class_stack(node, lengths, 4, iters=2)
    assert max(cal["repeat"]) < 0.02
    smp = ClassStackSampler(cal, 4, np.random.SeedSequence([1]))
    out = smp.next(ids.shape[0], _time_bins(lengths, int(cal["n_time_bins"])))
    assert abs(float((naive.stack_distances(out) == 0).mean()) - real) < 0.005


def test_block_size_does_not_change_the_sample():
    ids = planted_trace(20_000)
    model = TraceModel(calibrate=0).fit(Trace.single(ids))
    a = model.sample(20_000, seed=3)
    old = ClassStackSampler.BLOCK
    try:
        ClassStackSampler.BLOCK = 1_000
        b = model.sample(20_000, seed=3)
    finally:
        ClassStackSampler.BLOCK = old
    assert a.equals(b)


# ---- fit-time mode choice: in-cache LFU kernel, age-profile split of popularity classes ----------


@pytest.mark.parametrize("cap", [1, 2, 5, 17, 60])
def test_lfu_kernel_matches_naive(rng, cap):
    from tracegen._fit_kernels import _lfu_misses

    hot = np.minimum(rng.zipf(1.4, 3_000) - 1, 79)
    keys = np.where(rng.random(3_000) < 0.2, rng.integers(0, 80, 3_000), hot).astype(np.int64)
    got = _lfu_misses(keys, 80, cap, int(np.bincount(keys).max()))
    assert got == naive.lfu_misses(keys, cap)


@pytest.mark.parametrize("cap", [1, 2, 5, 17, 60, 80])
def test_fifo_kernel_matches_naive(rng, cap):
    from tracegen._fit_kernels import _fifo_misses

    hot = np.minimum(rng.zipf(1.4, 3_000) - 1, 79)
    keys = np.where(rng.random(3_000) < 0.2, rng.integers(0, 80, 3_000), hot).astype(np.int64)
    assert _fifo_misses(keys, 80, cap) == naive.fifo_misses(keys, cap)


def test_policy_miss_ratios_match_libcachesim(rng):
    from tracegen import cachesim
    from tracegen.tracemodel import _lfu_sizes, _policy_miss_ratios

    if not cachesim.available():
        pytest.skip("libcachesim not installed")
    ids = planted_trace(20_000)
    keys = np.unique(ids, return_inverse=True)[1].astype(np.int64)
    u = int(keys.max()) + 1
    sizes = _lfu_sizes(u)
    want = np.concatenate([cachesim.miss_ratios(ids, "LFU", sizes), cachesim.miss_ratios(ids, "FIFO", sizes)])
    assert np.allclose(_policy_miss_ratios(keys, u, u), want)


def test_lfu_miss_ratios_match_libcachesim(rng):
    from tracegen import cachesim
    from tracegen.tracemodel import _lfu_miss_ratios

    if not cachesim.available():
        pytest.skip("libcachesim not installed")
    ids = planted_trace(20_000)
    keys = np.unique(ids, return_inverse=True)[1].astype(np.int64)
    sizes = [1, 30, 300, 1_000]
    assert np.allclose(_lfu_miss_ratios(keys, int(keys.max()) + 1, sizes), cachesim.miss_ratios(ids, "LFU", sizes))


def _aging_trace(n_ids: int = 400, per_id: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids of equal counts: even ids read in a burst right after they appear, odd ids evenly until the end."""
    rng = np.random.default_rng(seed)
    n = n_ids * per_id
    pos, key = [], []
    births = np.sort(rng.integers(0, n // 2, n_ids))
    for k, b in enumerate(births):
        if k % 2 == 0:
            p = b + rng.integers(0, 2_000, per_id)
        else:
            p = b + rng.integers(0, n - b, per_id)
        p[0] = b
        pos.append(p)
        key.append(np.full(per_id, k))
    order = np.argsort(np.concatenate(pos), kind="stable")
    return np.concatenate(key)[order].astype(np.int64), np.arange(n_ids)


def test_age_split_separates_bursty_from_steady_ids_under_the_min_count_rule():
    from tracegen.tracemodel import SPLIT_MIN_IDS, _age_split, _popularity_classes

    keys, _ = _aging_trace()
    counts = np.bincount(keys)
    cls, ranges = _popularity_classes(counts, 4, 10)
    new, new_ranges = _age_split(cls, counts, keys, None, 10, 1, 2)
    assert len(new_ranges) == 2 * len(ranges)  # one class of 400 ids: split in two
    for c in range(len(new_ranges)):
        ids = np.nonzero(new == c)[0]
        assert ids.shape[0] >= SPLIT_MIN_IDS and counts[ids].sum() >= 10
        assert np.unique(cls[ids]).shape[0] == 1  # a sub-class lies inside one popularity class
        assert new_ranges[c] == (int(counts[ids].min()), int(counts[ids].max()))
    # the front-loaded part holds the bursty (even) ids
    assert (np.nonzero(new == 0)[0] % 2 == 0).mean() > 0.9
    # too few ids to split: the class stays whole
    few = np.isin(keys, np.arange(2 * SPLIT_MIN_IDS - 2))
    k2 = np.unique(keys[few], return_inverse=True)[1]
    c2 = np.bincount(k2)
    cl2, r2 = _popularity_classes(c2, 4, 10)
    assert len(_age_split(cl2, c2, k2, None, 10, 1, 2)[1]) == len(r2)


def test_split_node_validates_loads_and_samples(tmp_path):
    from tracegen.tracemodel import FORMAT, LFU_MIN_ACCESSES, SCHEMA_VERSION

    keys, _ = _aging_trace(1_300)  # 52,000 accesses: long enough for the LFU profile
    assert keys.shape[0] >= LFU_MIN_ACCESSES
    lengths = np.ones(keys.shape[0], np.int64)
    node, stats = fit_class_stack(keys, lengths, return_stats=True)
    split = stats["split_node"]
    assert len(split["classes"]) > len(node["classes"])
    assert abs(sum(c["share"] for c in split["classes"]) - 1) < 1e-9
    assert sum(c["n_ids"] for c in split["classes"]) == sum(c["n_ids"] for c in node["classes"])
    pol = stats["policy"]  # LFU then FIFO miss ratios at 1%, 10%, 30% of the distinct ids
    assert pol.shape == (6,) and np.all((pol > 0) & (pol <= 1))
    assert np.all(np.diff(pol[:3]) <= 0) and np.all(np.diff(pol[3:]) <= 0)  # larger caches miss less
    doc = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "tables": [{"name": "t0", "cardinality": 1_300, "bag_length": {"kind": "constant", "value": 1}, "ids": split}],
        "dense": None,
        "labels": None,
        "source": {"n_samples": int(keys.shape[0])},
    }
    validate_dist(doc)
    p = tmp_path / "split.json"
    p.write_text(json.dumps(doc))
    m = TraceModel.load(p)
    a = m.sample(seed=3)
    assert a.equals(m.sample(seed=3))
    assert np.unique(a.tables[0].values).shape[0] <= 1_300
    short = fit_class_stack(keys[:20_000], lengths[:20_000], return_stats=True)[1]
    assert "policy" not in short  # short tables are scored without LFU / FIFO


def test_choose_mode_returns_one_of_the_candidate_designs():
    from tracegen.tracemodel import ALWAYS, HYBRID_CHOICES, choose_mode, coupling_below

    keys, _ = _aging_trace(200, 30)
    lengths = np.ones(keys.shape[0], np.int64)
    node, stats = fit_class_stack(keys, lengths, return_stats=True)
    got = choose_mode(node, lengths, 200, stats, calibrate=1)
    assert coupling_below(got) in (0, *HYBRID_CHOICES, ALWAYS)
    assert len(got["classes"]) in (len(node["classes"]), len(stats["split_node"]["classes"]))
    validate_dist(
        {
            "format": "tracegen-dist",
            "schema_version": 1,
            "tables": [{"name": "t0", "cardinality": 200, "bag_length": {"kind": "constant", "value": 1}, "ids": got}],
            "dense": None,
            "labels": None,
            "source": {"n_samples": int(keys.shape[0])},
        }
    )


@pytest.mark.parametrize(
    "uncoupled_score, coupled_score, want_cb, want_tried",
    [(1.0, 2.0, 0, [64, 0]), (1.2, 2.0, 64, [64]), (1.0, 1.03, ALWAYS, [64, 0, ALWAYS])],
)
def test_a_tie_between_modes_tries_the_phases_in_each(monkeypatch, uncoupled_score, coupled_score, want_cb, want_tried):
    """Modes within TIE_MARGIN of the winner's: the per-phase histograms are tried in each of them, and the
    best wins; otherwise only in the winner's mode. (The loop probe: all three modes tied at about 5.5,
    and only the coupled mode with phases met the FIFO target.)"""
    import tracegen.tracemodel as tm

    keys, _ = _aging_trace(200, 30)
    lengths = np.ones(keys.shape[0], np.int64)
    node, stats = fit_class_stack(keys, lengths, return_stats=True)
    assert node["n_phases"] > 1
    built = []

    def fake_score(c, *args, **kwargs):  # uncoupled ~ hybrid; phases help, most in the coupled mode
        cb, phases = tm.coupling_below(c), int(c.get("n_phases", 1)) > 1
        built.append((cb, phases))
        if phases:
            return {0: 0.5, 64: 0.9}.get(cb, 0.2)
        split = len(c["classes"]) != len(node["classes"])
        if c.get("budget_slack") != tm.DEFAULT_BUDGET_SLACK or split:
            return 2.0  # the looser budget and the split classes lose
        return {0: uncoupled_score, 64: 0.99}.get(cb, coupled_score)

    monkeypatch.setattr(tm, "_twin_score", fake_score)
    monkeypatch.setattr(tm, "GLOBAL_ROUNDS", 0)  # (the last candidate refines the winner: not scored here)
    got = tm.choose_mode(node, lengths, 200, stats, calibrate=1)
    assert int(got["n_phases"]) > 1 and tm.coupling_below(got) == want_cb
    tried = list(dict.fromkeys(cb for cb, phases in built if phases))  # (short tables: 3 twins each)
    assert tried == want_tried


def test_small_tables_get_a_fine_class_candidate():
    """A table of <= FINE_MAX_IDS ids also gets classes FINE_BINS_PER_OCTAVE per octave (about one id each
    here); a larger one does not; the policy terms need >= LFU_MIN_IDS ids."""
    import tracegen.tracemodel as tm
    from tracegen import synth

    ids = synth.zipf_ids(60_000, 40, 1.0, seed=0).astype(np.int64)
    lengths = np.ones(ids.shape[0], np.int64)
    node, stats = fit_class_stack(ids, lengths, return_stats=True)
    fine = stats["fine_node"]
    counts = np.bincount(np.unique(ids, return_inverse=True)[1])
    assert len(fine["classes"]) > len(node["classes"])
    assert sum(c["n_ids"] for c in fine["classes"]) == counts.shape[0] == 40
    # each fine class spans at most one 64th of an octave of counts (or holds one id)
    for c in fine["classes"]:
        lo, hi = c["count_range"]
        assert c["n_ids"] == 1 or np.log2(hi / lo) < 2.0 / tm.FINE_BINS_PER_OCTAVE
    assert stats["policy"] is not None
    big = synth.zipf_ids(60_000, 20_000, 0.6, seed=0).astype(np.int64)
    assert np.unique(big).shape[0] > tm.FINE_MAX_IDS
    assert "fine_node" not in fit_class_stack(big, lengths, return_stats=True)[1]
    few = np.tile(np.arange(12), 6_000)  # long, but 12 ids: LFU/FIFO at 1% of them is a one-row cache
    _, st = fit_class_stack(few, np.ones(few.shape[0], np.int64), return_stats=True)
    assert st.get("policy") is None


@pytest.mark.parametrize("fine_score, want_fine", [(0.3, True), (1.5, False)])
def test_the_fine_candidate_is_tried_in_both_calibrated_modes(monkeypatch, fine_score, want_fine):
    """The fine classes are tried uncoupled and in the hybrid mode, the better calibrated mode of the plain
    classes first. (Only in that one, an i.i.d. Zipf table of 1,460 ids and 4M accesses took the fine
    classes in the hybrid mode, LRU MRC mean 0.0108: its plain classes' scores were both dominated by their
    LFU error; uncoupled, the fine classes give 0.0027.)"""
    import tracegen.tracemodel as tm
    from tracegen import synth

    ids = synth.zipf_ids(20_000, 40, 1.0, seed=1).astype(np.int64)
    lengths = np.ones(ids.shape[0], np.int64)
    node, stats = fit_class_stack(ids, lengths, return_stats=True)
    n_fine = len(stats["fine_node"]["classes"])
    built = []

    def fake_score(c, *args, **kwargs):  # hybrid is the better calibrated mode; fine classes score fine_score
        cb, is_fine = tm.coupling_below(c), len(c["classes"]) == n_fine
        built.append((cb, is_fine))
        if is_fine:
            return fine_score
        return {0: 1.2, 64: 1.0}.get(cb, 0.9)  # the coupled mode wins the base modes

    monkeypatch.setattr(tm, "_twin_score", fake_score)
    monkeypatch.setattr(tm, "GLOBAL_ROUNDS", 0)  # (the last candidate refines the winner: not scored here)
    got = tm.choose_mode(node, lengths, 40, stats, calibrate=1)
    assert (len(got["classes"]) == n_fine) == want_fine
    tried = list(dict.fromkeys(b for b in built if b[1]))  # (short tables: 3 twins each)
    # the better calibrated mode first, then the other; (a winning fine design then goes on to the
    # looser budget and the phases, in the coupled mode too when its score ties)
    assert tried[:2] == [(64, True), (0, True)]


def test_twin_window_is_the_shortest_prefix_of_samples_reaching_the_cap():
    from tracegen.tracemodel import _twin_window

    lengths = np.array([3, 0, 4, 2, 5], np.int64)  # ends 3 3 7 9 14
    assert _twin_window(lengths, 100) == (5, 14)
    assert _twin_window(lengths, 7) == (3, 7)
    assert _twin_window(lengths, 8) == (4, 9)
    assert _twin_window(lengths, 1) == (1, 3)
    assert _twin_window(np.zeros(0, np.int64), 5) == (0, 0)


def test_long_tables_are_scored_on_a_window_of_their_first_samples():
    ids = planted_trace(30_000, u=2_000, seed=4)
    lengths = np.ones(ids.shape[0], np.int64)
    node, full = fit_class_stack(ids, lengths, return_stats=True)
    same, win = fit_class_stack(ids, lengths, return_stats=True, twin_max=10_000)
    assert same == node and "window" not in full  # the released node does not depend on the window
    wl, n_samples = win["window"]
    assert wl.shape[0] == 10_000 and n_samples == 30_000 and win["distinct"] == full["distinct"]
    # the window's profile is the real prefix's: stack distances of a prefix are a prefix
    from tracegen.locality import dense_keys, sd_histogram, stack_distances

    h, c0 = sd_histogram(stack_distances(ids[:10_000]))
    assert np.array_equal(win["sd_counts"], h) and win["cold"] == c0
    assert np.array_equal(win["id_counts"], np.bincount(dense_keys(ids[:10_000])[0]))
    # a window twin follows the table's time schedule: its time bins are the first ones only
    from tracegen.tracemodel import _time_bins

    tb = _time_bins(wl, 64, n_samples=n_samples)
    assert tb.max() == (9_999 * 64) // 30_000 and np.array_equal(tb, _time_bins(lengths, 64)[:10_000])


def test_phase_histograms_follow_the_time_schedule():
    """Ids of one popularity class (10 accesses each) reused in bursts in the first half and spread
    out in the second: per-phase histograms keep the deep reuses late; one whole-trace histogram
    (measured: 3,362 of the twin's 7,485 deep reuses fell in the first half) cannot."""
    from tracegen.locality import stack_distances

    rng = np.random.default_rng(5)
    first = np.concatenate([rng.permutation(r) for r in np.repeat(np.arange(1000), 10).reshape(-1, 50)])
    second = rng.permutation(np.repeat(np.arange(1000, 2000), 10))
    ids = np.concatenate([first, second]).astype(np.int64)
    model = TraceModel(calibrate=0).fit(Trace.single(ids))
    node = model.model_["tables"][0]["ids"]
    assert node["n_phases"] == 4 and all(len(cl["sd_phases"]) == 4 for cl in node["classes"])
    sd_real = stack_distances(ids)
    sd_syn = stack_distances(model.sample(seed=2).tables[0].values)
    half = ids.shape[0] // 2
    assert (sd_real[:half] >= 100).sum() == 0
    assert (sd_syn[:half] >= 100).sum() <= 50
    late_real, late_syn = (sd_real[half:] >= 100).sum(), (sd_syn[half:] >= 100).sum()
    assert abs(late_syn - late_real) <= 0.15 * late_real


def test_twin_threads_do_not_change_the_fit(monkeypatch):
    """The mode choice runs candidate twins in threads; one thread gives the same dist.json."""
    import concurrent.futures as cf

    import tracegen.tracemodel as tm

    tr = Trace.single(planted_trace(60_000, u=3_000, seed=6))  # long enough for the LFU twins
    threaded = TraceModel().fit(tr).model_
    monkeypatch.setattr(tm, "_twin_threads", lambda n: cf.ThreadPoolExecutor(max_workers=1))
    assert TraceModel().fit(tr).model_["tables"] == threaded["tables"]


# ---- finer stack-distance bins where the reuses pile up (a loop) -----------------------------------


def test_refine_grid_cuts_only_heavy_bins():
    from tracegen.tracemodel import _refine_grid, _sd_grid

    grid = _sd_grid(10_000, 16)
    rng = np.random.default_rng(0)
    sd = np.concatenate([np.full(5_000, 4_990), rng.integers(0, 10_000, 5_000), np.full(300, -1)])
    fine = _refine_grid(grid, sd, 0.1)
    assert set(grid.tolist()) <= set(fine.tolist())  # the base edges stay
    assert 4_990 in fine and 4_991 in fine  # the heavy depth ends up in a bin of its own
    b = np.searchsorted(grid, 4_990, side="right") - 1
    outside = (fine < grid[b]) | (fine > grid[b + 1])
    assert np.array_equal(fine[outside], grid[(grid < grid[b]) | (grid > grid[b + 1])])  # light bins untouched
    assert np.array_equal(_refine_grid(grid, sd, 0.0), grid)
    assert np.array_equal(_refine_grid(grid, sd[sd != 4_990], 0.1), grid)  # no bin over 10%: unchanged


def _loop(n: int = 60_000, u: int = 1_500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % u
    noise = rng.random(n) < 0.1
    ids[noise] = u + rng.integers(0, 4 * u, int(noise.sum()))
    return ids.astype(np.int64)


@pytest.mark.parametrize("share", [0.1, 0.0])
def test_loop_twin_keeps_the_step_of_its_miss_ratio_curve(monkeypatch, share):
    import tracegen.tracemodel as tm
    from tracegen.locality import miss_ratio_curve, sd_histogram, stack_distances

    monkeypatch.setattr(tm, "REFINE_SHARE", share)
    ids = _loop()
    lengths = np.ones(ids.shape[0], np.int64)
    node = {**fit_class_stack(ids, lengths), "coupling": True}  # coupled: drawn depths are taken exactly
    smp = ClassStackSampler(node, 10_000, np.random.SeedSequence(1))
    out = smp.next(ids.shape[0], tm._time_bins(lengths, int(node["n_time_bins"])))
    sizes = np.arange(1_300, 1_700, 10)  # around the loop (1,500 ids)
    _, a = miss_ratio_curve(*sd_histogram(stack_distances(ids)), sizes)
    _, b = miss_ratio_curve(*sd_histogram(stack_distances(out)), sizes)
    err = float(np.abs(a - b).max())
    if share > 0:  # measured 0.06, right at the step (1,490 rows)
        assert err < 0.1
    else:  # one 1/16-octave bin spreads the step over ~60 rows: measured 0.53
        assert err > 0.3


def test_grid_bins_equal_binary_search(rng):
    from tracegen._fit_kernels import _grid_bins
    from tracegen.tracemodel import _refine_grid, _sd_grid

    heavy = np.concatenate([np.full(5_000, 4_990), rng.integers(0, 10_000, 5_000)])
    grids = (_sd_grid(10**6, 16), _sd_grid(50, 2), np.array([0, 1, 5, 6, 7, 300, 301, 302, 100_000, 1 << 40]),
             _refine_grid(_sd_grid(10_000, 16), heavy, 0.1))
    for grid in grids:
        grid = grid.astype(np.int64)
        top = int(min(grid[-1], 1 << 41))
        v = np.concatenate([np.arange(min(3_000, top)), grid, grid[1:] - 1, rng.integers(0, 2 * top, 20_000)])
        assert np.array_equal(_grid_bins(v.astype(np.int64), grid), np.searchsorted(grid, v, side="right") - 1)


def test_node_counts_equal_a_plain_loop(rng):
    from tracegen._fit_kernels import _node_counts
    from tracegen.tracemodel import _sd_grid

    n, n_cls, nt, n_ph = 3_000, 4, 8, 4
    acls = rng.integers(0, n_cls, n)
    sd = rng.integers(-1, 300, n)
    sd[rng.random(n) < 0.2] = 0
    tb = np.sort(rng.integers(0, nt, n))
    rep_on = np.array([True, False, True, False])
    grid = _sd_grid(300, 4).astype(np.int64)
    acc, cold, rep, jp = _node_counts(acls, sd, tb, n_cls, nt, rep_on, grid, n_ph)
    want = [np.zeros((nt, n_cls), np.int64) for _ in range(3)] + [np.zeros((n_ph, n_cls, grid.shape[0] - 1), np.int64)]
    for c, d, t in zip(acls.tolist(), sd.tolist(), tb.tolist()):
        want[0][t, c] += 1
        if d < 0:
            want[1][t, c] += 1
        elif d == 0 and rep_on[c]:
            want[2][t, c] += 1
        else:
            want[3][t * n_ph // nt, c, int(np.searchsorted(grid, d, side="right")) - 1] += 1
    for got, w in zip((acc, cold, rep, jp), want):
        assert np.array_equal(got, w)


def test_auto_workers_bounds():
    from tracegen.tracemodel import AUTO_MIN_ACCESSES, FIT_BYTES_PER_ACCESS, auto_workers

    def trace(n_tables, per_table):
        ids = np.zeros(per_table, np.int64)
        return Trace([Table.one_hot(f"T{j}", ids, 10) for j in range(n_tables)])

    big = AUTO_MIN_ACCESSES // 2
    assert auto_workers(trace(8, 100), memory=1 << 40, cpus=16) == 1  # small trace: no processes
    assert auto_workers(trace(1, 2 * big), memory=1 << 40, cpus=16) == 1  # one table
    assert auto_workers(trace(3, big), memory=1 << 40, cpus=16) == 3  # one per table
    assert auto_workers(trace(8, big), memory=1 << 40, cpus=4) == 4  # the CPUs
    mem = int(2.5 * FIT_BYTES_PER_ACCESS * big / 0.8)
    assert auto_workers(trace(8, big), memory=mem, cpus=16) == 2  # what memory holds
    assert auto_workers(trace(8, big), memory=1, cpus=16) == 1  # never fewer than one


def test_the_mode_choice_samples_lfu_twins_only_for_candidates_that_can_win(monkeypatch):
    """Branch and bound: a candidate whose first twin's terms already score above the best exact score
    gets no LFU/FIFO twins, and the chosen node is the one that scoring every candidate in full gives."""
    import tracegen.tracemodel as tm

    ids = planted_trace(60_000, u=2_000, seed=3)
    lengths = np.ones(ids.shape[0], np.int64)
    node, stats = fit_class_stack(ids, lengths, return_stats=True)
    assert stats.get("policy") is not None  # the LFU/FIFO terms are scored
    real, twins = tm._twin_score, []

    def counted(real_sampler_init=tm.ClassStackSampler.__init__):
        def init(self, *args, **kwargs):
            twins.append(1)
            real_sampler_init(self, *args, **kwargs)

        return init

    monkeypatch.setattr(tm.ClassStackSampler, "__init__", counted())
    lazy = tm.choose_mode(node, lengths, 2_000, stats, calibrate=1)
    n_lazy = len(twins)
    twins.clear()
    monkeypatch.setattr(tm, "_twin_score", lambda *a, bound=None, **k: real(*a, **k))  # every score in full
    full = tm.choose_mode(node, lengths, 2_000, stats, calibrate=1)
    assert lazy == full
    assert n_lazy < len(twins)


def test_top_shares_count_as_many_ids_on_both_sides():
    """A twin with fewer distinct ids is measured on the real table's number of ids: the 1% hottest of
    1,000 real ids is 10 ids on both sides (the twin's own 1% of 505 ids, 5, gave an error of 0.251)."""
    from tracegen.tracemodel import _top_share

    hot = np.repeat(np.arange(10), 100)
    real = np.r_[hot, np.arange(10, 1000)]  # 10 ids x 100 + 990 read once
    twin = np.r_[hot, np.repeat(np.arange(10, 505), 2)]  # the same 10 ids x 100 + 495 read twice
    f = fidelity(Trace.single(real), Trace.single(twin))["t0"]
    assert f["top1"] == 0.0
    assert f["top10"] == pytest.approx(abs((1000 + 90) / 1990 - (1000 + 180) / 1990))
    assert _top_share(np.bincount(twin), 0.01) == pytest.approx(500 / 1990)  # its own 1%: 5 ids
    assert _top_share(np.bincount(twin), 0.01, 1000) == pytest.approx(1000 / 1990)


def test_table_profile_of_a_stream_shorter_than_its_points():
    from tracegen.tracemodel import table_profile

    p = table_profile(np.array([1, 2, 1, 3, 2, 1]))
    assert list(p["fp"]) == [1, 2, 2, 3, 3, 3]  # distinct ids after 1..6 accesses
    assert list(p["fp_frac"]) == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])


def _rotating(n: int = 100_000, periods: int = 8, u: int = 6_000, seed: int = 3) -> np.ndarray:
    """Three id blocks taking turns: each period a fresh Zipf(1) over one block (daily cycles over one catalogue)."""
    rng = np.random.default_rng(seed)
    blocks = np.array_split(rng.permutation(u), 3)
    out = []
    for p in range(periods):
        b = blocks[p % 3]
        w = 1.0 / np.arange(1, b.size + 1)
        out.append(b[rng.permutation(b.size)[rng.choice(b.size, n // periods, p=w / w.sum())]])
    return np.concatenate(out).astype(np.int64)


def test_calibrate_global_per_phase_moves_each_phase_onto_its_own_law():
    """A node drawing per-phase histograms is calibrated phase by phase against the real law of each phase
    (``global_phases``): every phase's realised law of depths >= 1 moves closer; whole-trace histograms stay."""
    from tracegen.locality import stack_distances
    from tracegen.tracemodel import ClassStackSampler, _time_bins, calibrate_global, fit_class_stack

    ids = _rotating()
    n = ids.shape[0]
    lengths = np.ones(n, np.int64)
    node, stats = fit_class_stack(ids, lengths, return_stats=True)
    grid, targets = stats["global_phases"]
    n_ph, nt = int(node["n_phases"]), int(node["n_time_bins"])
    assert n_ph == targets.shape[0] > 1
    ph = (np.minimum(_time_bins(lengths, nt), nt - 1) * n_ph) // nt

    def errs(nd):
        s = stack_distances(ClassStackSampler(nd, 6_000, np.random.SeedSequence(4)).next(n, _time_bins(lengths, nt)))
        out = []
        for q in range(n_ph):
            w = np.sort(s[(ph == q) & (s >= 1)])
            out.append(np.abs(np.searchsorted(w, grid, side="left") / w.shape[0] - targets[q]).mean())
        return np.asarray(out)

    before = errs(node)
    cal = calibrate_global(node, lengths, 6_000, grid, targets, iters=2)
    after = errs(cal)
    assert np.all(after < before) and after.mean() < 0.6 * before.mean()
    for a, b in zip(cal["classes"], node["classes"]):
        assert a["sd"] == b["sd"] and a["count_range"] == b["count_range"]
    assert any(a["sd_phases"] != b["sd_phases"] for a, b in zip(cal["classes"], node["classes"]))


def test_fit_takes_the_globally_calibrated_winner_on_rotating_hot_sets(monkeypatch):
    """Rotating hot sets: the per-class calibrated winner misses the LRU curve (classes compete for the same
    top of the stack); its globally calibrated refinement is kept and lands much closer (0.0099 -> 0.0025)."""
    import tracegen.tracemodel as tm

    tr = Trace.single(_rotating())
    got = {}
    for rounds in (0, tm.GLOBAL_ROUNDS):
        monkeypatch.setattr(tm, "GLOBAL_ROUNDS", rounds)
        m = TraceModel().fit(tr)
        got[rounds] = np.mean([fidelity(tr, m.sample(seed=s))["t0"]["mrc_mean"] for s in (0, 1)])
    assert tm.GLOBAL_ROUNDS > 0 and got[tm.GLOBAL_ROUNDS] < 0.5 * got[0]
