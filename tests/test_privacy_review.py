"""DP audit (review round): every release's L1 change under a neighbouring trace stays within the
documented sensitivity, the whole dist.json is a function of the noisy releases and the public schema
only, and the edge cases (empty table, declared one-hot schema, tiny epsilon, bag-length noise)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tracegen.privacy as privacy
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace
from tracegen.tracemodel import TraceModel

CARD = 40


def _fit(tr: Trace, laplace, one_hot=None, public_cardinality=None, **kw) -> dict:
    """A DP fit with ``privacy._laplace`` replaced by ``laplace`` (restored afterwards)."""
    orig = privacy._laplace
    privacy._laplace = laplace
    try:
        m = TraceModel(calibrate=kw.pop("calibrate", 0), **kw)
        if one_hot is not None:
            m.one_hot = one_hot  # the declared public schema (read by privacy.fit_dp)
        if public_cardinality is not None:
            m.public_cardinality = public_cardinality
        m.fit(tr)
    finally:
        privacy._laplace = orig
    return json.loads(json.dumps(m.model_))


def releases(tr: Trace, **kw) -> tuple[list, dict]:
    """Every vector handed to the Laplace mechanism (noise off), with its scale, and the dist.json."""
    calls = []

    def rec(rng, x, scale):
        calls.append((np.atleast_1d(np.asarray(x, np.float64)).ravel().copy(), float(scale)))
        return np.asarray(x, np.float64) + 0.0

    return calls, _fit(tr, rec, **kw)


def blind(tr: Trace, **kw) -> dict:
    """The dist.json when every noisy release is replaced by a value that ignores its input (the i-th
    release by a fixed draw): what still differs between neighbours came from the raw data unnoised."""
    n = [0]

    def fake(rng, x, scale):
        n[0] += 1
        return np.abs(np.random.default_rng(n[0]).normal(0.0, 1.0, np.shape(x))) * 40.0 + 1.0

    return _fit(tr, fake, **kw)


def make(rng, b: int, maxlen: int, card: int = CARD, dense: bool = True, labels: bool = True, few: bool = False):
    """Parts of a trace: multi-hot table A (bags 0..maxlen, ids repeat when ``few``), one-hot table B."""
    lens = rng.integers(0, maxlen + 1, b)
    lens[0] = 2  # A is multi-hot in every trial
    av = rng.integers(0, 4 if few else card, int(lens.sum()))
    bb = rng.integers(0, card // 3, b)
    d = rng.normal(0.0, 5.0, (b, 2)).astype(np.float32) if dense else None
    y = (rng.random(b) < 0.3).astype(np.float32) if labels else None
    return [av, lens, bb, d, y]


def build(parts, card: int = CARD) -> Trace:
    av, lens, bb, d, y = parts
    return Trace([Table.from_lengths("A", av, lens, card), Table.one_hot("B", bb, card)], dense=d, labels=y)


def replace(rng, parts, s: int, maxlen: int, card: int = CARD):
    """The neighbour: sample ``s`` replaced (new bag, possibly empty, with repeats and ids of the old bag;
    new one-hot id, dense values including extremes, flipped label)."""
    av, lens, bb, d, y = parts
    offs = np.concatenate([[0], np.cumsum(lens)])
    nl = 2 if s == 0 else int(rng.integers(0, maxlen + 3))
    new = rng.integers(0, card, nl)
    old = av[offs[s] : offs[s + 1]]
    if old.size and nl and rng.random() < 0.5:
        new[: (nl + 1) // 2] = rng.choice(old, (nl + 1) // 2)  # overlap with the old bag
    if nl > 1 and rng.random() < 0.3:
        new[:] = new[0]  # one id repeated through the whole bag
    av2 = np.concatenate([av[: offs[s]], new, av[offs[s + 1] :]])
    lens2 = lens.copy()
    lens2[s] = nl
    bb2 = bb.copy()
    bb2[s] = rng.integers(0, card)
    d2 = None
    if d is not None:
        d2 = d.copy()
        d2[s] = rng.choice(np.array([0.0, 1e20, -1e20, 3e38, 7.5], np.float32), 2)
    y2 = None if y is None else 1 - y
    if y2 is not None:
        y2[:s] = y[:s]
        y2[s + 1 :] = y[s + 1 :]
    return [av2, lens2, bb2, d2, y2]


SHAPES = {
    # name: (max bag length drawn, max_bag, dense+labels, few ids => many repeats)
    "mixed": (5, 3, True, False),
    "clipped long bags": (12, 2, True, False),
    "repeated ids": (6, 4, False, True),
    "default clip": (4, None, False, False),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_neighbour_release_l1_within_each_documented_sensitivity(shape):
    """docs/privacy.md's table, row by row: per table bag lengths 2, reuse times + cold 6L, (count bin x
    first-access bin) 4L, largest count L; per dense column 2; labels 1; and per mechanism the sum."""
    maxlen, max_bag, extra, few = SHAPES[shape]
    rng = np.random.default_rng(len(shape))
    cap_a = 32 if max_bag is None else max_bag
    moved = 0.0
    for _ in range(25):
        b = int(rng.integers(2, 30))
        p = make(rng, b, maxlen, dense=extra, labels=extra, few=few)
        q = replace(rng, p, int(rng.integers(0, b)), maxlen)
        c1, d1 = releases(build(p), epsilon=1.0, max_bag=max_bag)
        c2, _ = releases(build(q), epsilon=1.0, max_bag=max_bag)
        assert [(x.shape, s) for x, s in c1] == [(x.shape, s) for x, s in c2]  # same releases, same scales
        l1 = [float(np.abs(x1 - x2).sum()) for (x1, _), (x2, _) in zip(c1, c2)]
        # call order in fit_dp: per table (bag lengths, reuse-time hist, cold, popularity hist, max count),
        # then one per dense column, then the label count
        per_table = []
        for cap in (cap_a, 1):
            per_table += [2, None, None, 4 * cap, cap]
        bounds = per_table + [2] * (2 if extra else 0) + [1] * (1 if extra else 0)
        assert len(l1) == len(bounds)
        for i, (v, bnd) in enumerate(zip(l1, bounds)):
            if bnd is not None:
                assert v <= bnd, (shape, i, v, bnd)
        for t, cap in enumerate((cap_a, 1)):  # reuse-time histogram and cold count together: 6 L
            assert l1[5 * t + 1] + l1[5 * t + 2] <= 6 * cap
        pop, rt = d1["privacy"]["dp"]["mechanisms"]
        assert sum(v for v, (_, s) in zip(l1, c1) if s == pop["noise_scale"]) <= pop["sensitivity"]
        assert sum(v for v, (_, s) in zip(l1, c1) if s == rt["noise_scale"]) <= rt["sensitivity"]
        assert pop["noise_scale"] == pytest.approx(pop["sensitivity"] / pop["epsilon"])
        moved = max(moved, sum(l1))
    assert moved >= 4  # the replacements do move the releases


def test_dist_json_is_a_function_of_the_noisy_releases_and_the_schema():
    """With every release replaced by an input-independent value, neighbouring traces (same schema) give
    the identical dist.json: no count, max, edge, class number, mode choice or size leaks unnoised."""
    rng = np.random.default_rng(7)
    for trial in range(16):
        b = int(rng.integers(2, 40))
        p = make(rng, b, 5, few=trial % 2 == 1)
        q = replace(rng, p, int(rng.integers(0, b)), 5)
        cal = 1 if trial < 3 else 0  # calibration and the twin-scored mode choice are post-processing too
        assert blind(build(p), epsilon=1.0, max_bag=3, calibrate=cal) == blind(
            build(q), epsilon=1.0, max_bag=3, calibrate=cal
        )


def test_hashed_ids_synthetic_cardinality_comes_from_noise_only():
    b = 30
    ids = np.arange(b, dtype=np.int64) * 10**9 + 12345
    ids2 = ids.copy()
    ids2[4] = ids[9]  # one sample now repeats another's id: one distinct fewer
    a = blind(Trace.single(ids, cardinality=2**62), epsilon=1.0)
    assert a == blind(Trace.single(ids2, cardinality=2**62), epsilon=1.0)
    assert privacy.raw_ids_in(a, ids) == []


def test_empty_table_largest_count_is_released_with_noise():
    """An empty table's largest count (0) goes through the mechanism like any other: skipping the draw
    made 'top count bin 0 with certainty' tell it from its neighbour holding one id."""
    b = 20
    one_hot_b = Table.one_hot("B", np.arange(b) % 5, 50)
    empty = Table.from_lengths("A", np.zeros(0, np.int64), np.zeros(b, np.int64), 50)
    lens = np.zeros(b, np.int64)
    lens[3] = 1
    one = Table.from_lengths("A", np.array([7]), lens, 50)
    c1, _ = releases(Trace([empty, one_hot_b]), epsilon=1.0, max_bag=1, one_hot=["B"])
    c2, _ = releases(Trace([one, one_hot_b]), epsilon=1.0, max_bag=1, one_hot=["B"])
    assert [(x.shape, s) for x, s in c1] == [(x.shape, s) for x, s in c2]
    assert blind(Trace([empty, one_hot_b]), epsilon=1.0, max_bag=1, one_hot=["B"]) == blind(
        Trace([one, one_hot_b]), epsilon=1.0, max_bag=1, one_hot=["B"]
    )


def _one_hot_pair(b: int = 24):
    """Table A one-hot except, in the neighbour, sample 3 holds two ids."""
    a = Table.one_hot("A", np.arange(b) % 7, 50)
    lens = np.ones(b, np.int64)
    lens[3] = 2
    a2 = Table.from_lengths("A", np.concatenate([np.arange(4) % 7, [9], np.arange(4, b) % 7]), lens, 50)
    bt = Table.one_hot("B", np.arange(b) % 5, 50)
    return Trace([a, bt]), Trace([a2, bt])


@pytest.mark.parametrize("declared, max_bag", [(["A", "B"], None), (["B"], 1), (["B"], 3)])
def test_declared_one_hot_schema_hides_the_sample_that_would_make_a_table_multi_hot(declared, max_bag):
    """Inferred from the data, one-hot-ness flips when one sample holds two ids (the sensitivity, noise
    scale, max_bag and bag-length node all showed it). Declared, it is public: the neighbours agree."""
    tr, tr2 = _one_hot_pair()
    d1 = blind(tr, epsilon=1.0, max_bag=max_bag, one_hot=declared)
    assert d1 == blind(tr2, epsilon=1.0, max_bag=max_bag, one_hot=declared)
    dp = d1["privacy"]["dp"]
    assert dp["one_hot"] == declared and dp["one_hot_source"] == "declared"
    kinds = {t["name"]: t["bag_length"]["kind"] for t in d1["tables"]}
    assert kinds == {"A": "constant" if "A" in declared else "empirical", "B": "constant"}
    if "A" in declared:  # the declared one-hot table is clipped to one id per bag: the twin stays one-hot
        m = TraceModel(epsilon=4.0, calibrate=0)
        m.one_hot = declared
        assert m.fit(tr2).sample(seed=0).tables[0].is_one_hot


def test_inferred_one_hot_is_recorded_as_a_schema_assumption():
    tr, _ = _one_hot_pair()
    dp = _fit(tr, lambda rng, x, s: np.asarray(x, np.float64), epsilon=1.0)["privacy"]["dp"]
    assert dp["one_hot"] == ["A", "B"] and dp["one_hot_source"].startswith("inferred")
    assert "one-hot" in dp["adjacency"] and "n_samples" in dp["adjacency"]
    with pytest.raises(TracegenError, match="one-hot tables not in the trace: Z"):
        m = TraceModel(epsilon=1.0, calibrate=0)
        m.one_hot = ["Z"]
        m.fit(tr)


def test_all_empty_table_is_not_treated_as_one_hot():
    """A table whose bags are all empty was inferred one-hot and released as 'one id per sample'."""
    b = 3_000
    empty = Table.from_lengths("A", np.zeros(0, np.int64), np.zeros(b, np.int64), 50)
    bt = Table.one_hot("B", np.arange(b) % 5, 50)
    doc = _fit(Trace([empty, bt]), lambda rng, x, s: np.asarray(x, np.float64), epsilon=1.0)
    assert doc["privacy"]["dp"]["one_hot"] == ["B"]
    bag = doc["tables"][0]["bag_length"]
    assert bag["kind"] == "empirical" and bag["probs"][0] == pytest.approx(1.0)


@pytest.mark.parametrize("eps", [1e-308, 1e-310, 5e-324])
def test_epsilon_so_small_the_noise_scale_overflows_is_a_one_line_error(eps):
    with pytest.raises(TracegenError, match="too small"):
        TraceModel(epsilon=eps, calibrate=0).fit(Trace.single(np.arange(100) % 7))


@pytest.mark.parametrize("calibrate", [0, 1])
def test_tiny_and_huge_epsilon_give_valid_json(calibrate):
    """At epsilon 1e-30 the noisy id totals reach 1e30: int64 depth grids overflowed (a negative edge, a
    validation error) in about half the fits; now the totals are capped by the public B * L."""
    tr = Trace.single(np.arange(200) % 13)
    for eps in (1e-300, 1e-100, 1e-30, 1e-30, 1e-30, 1e-6, 1e6, 1e300):
        m = TraceModel(epsilon=eps, calibrate=calibrate).fit(tr)
        text = json.dumps(m.model_, allow_nan=False)  # no NaN / Infinity in the file
        assert json.loads(text)["privacy"]["dp"]["epsilon_spent"] == eps
        classes = m.model_["tables"][0]["ids"]["classes"]
        assert sum(c["n_ids"] for c in classes) <= 200 + len(classes)  # B * L (public)
        assert m.sample(50, seed=0).tables[0].n_accesses == 50


def test_bag_length_noise_does_not_inflate_the_mean_bag():
    """Noise clipped at 0 left ~scale/2 on each of the L + 1 lengths: mean bag 1.5 came out ~3 (30,000
    samples, epsilon 1, L = 32). Thresholding keeps the released pmf's mean near the data's, and when no
    length clears the threshold the release is one id per bag (not the noise)."""
    rng = np.random.default_rng(0)
    b = 30_000
    lens = rng.integers(0, 4, b)
    tr = Trace([Table.from_lengths("A", rng.integers(0, 500, int(lens.sum())), lens, 500)])
    means = []
    for seed in range(4):
        r = np.random.default_rng(seed)

        def noise(rng, x, s, r=r):
            return np.asarray(x, np.float64) + r.laplace(0, s, np.shape(x))

        doc = _fit(tr, noise, epsilon=1.0)
        bag = doc["tables"][0]["bag_length"]
        means.append(float(np.dot(bag["values"], bag["probs"])))
    small = Trace([Table.from_lengths("A", rng.integers(0, 50, 60), np.full(30, 2), 50)])
    bag = _fit(small, lambda rng, x, s: np.asarray(x, np.float64) + 0.3 * s, epsilon=1.0)["tables"][0]["bag_length"]
    assert bag["probs"][1] == 1.0  # 30 samples: no length clears scale * ln(20 * 33); data-independent fallback
    assert abs(np.median(means) - lens.mean()) < 0.15, means  # real 1.50; clipping alone gave 2.9-3.1


def test_delta_is_recorded_but_never_spent():
    """--delta is accepted and recorded; the release is pure Laplace, (epsilon, 0)-DP."""
    tr = Trace.single(np.arange(300) % 11)
    noise_calls = []
    dp = _fit(
        tr,
        lambda rng, x, s: noise_calls.append(s) or np.asarray(x, np.float64),
        epsilon=2.0,
        delta=0.3,
    )["privacy"]["dp"]
    assert dp["delta"] == 0.3 and dp["delta_spent"] == 0.0 and dp["mechanism"] == "laplace"
    dp0 = _fit(tr, lambda rng, x, s: np.asarray(x, np.float64), epsilon=2.0)["privacy"]["dp"]
    assert {k: v for k, v in dp.items() if k != "delta"} == {k: v for k, v in dp0.items() if k != "delta"}
    assert dp0["delta"] == 0.0


def test_laplace_releases_integers_around_the_count():
    """The noisy counts are rounded (no float64 low-bit side channel, Mironov 2012) and unbiased."""
    rng = np.random.default_rng(0)
    out = privacy._laplace(rng, np.full(20_000, 7.0), 3.0)
    assert np.all(out == np.round(out)) and abs(out.mean() - 7.0) < 0.1
    assert abs(np.mean(np.abs(out - 7.0)) - 3.0) < 0.1  # E|Laplace(3)| = 3, rounding keeps it
    assert privacy._noise_rng().bit_generator.seed_seq.entropy != privacy._noise_rng().bit_generator.seed_seq.entropy


def _outlier_pair(b: int = 400):
    """Raw-id traces as a txt/csv/cache reader makes them (cardinality max id + 1); in the first, one
    sample's id is an outlier, in its neighbour that sample holds an ordinary id."""
    rng = np.random.default_rng(2)
    ids = rng.integers(10**6, 10**6 + 60, b)
    ids2 = ids.copy()
    ids[17] = 987_654_321
    return Trace.single(ids), Trace.single(ids2)


def test_reader_derived_cardinality_does_not_give_away_the_largest_raw_id():
    """Released as it was, ``cardinality`` = 987654322 told the outlier sample's id exactly."""
    tr, tr2 = _outlier_pair()
    assert tr.cardinalities == [987_654_322]
    ident = lambda rng, x, s: np.asarray(x, np.float64)  # noqa: E731
    doc = _fit(tr, ident, epsilon=1.0)
    assert doc["tables"][0]["cardinality"] != 987_654_322 and doc["privacy"]["dp"]["public_cardinality"] == []
    assert not any(v in (987_654_321, 987_654_322) for v in privacy._numbers(doc))
    assert doc["tables"][0]["cardinality"] <= 400  # the distinct-count estimate, bounded by B * L
    assert blind(tr, epsilon=1.0) == blind(tr2, epsilon=1.0)
    syn = TraceModel(epsilon=1.0, calibrate=0).fit(tr).sample(seed=0)
    syn.validate()
    assert syn.tables[0].values.max() < 400


@pytest.mark.parametrize("declared", [True, ["t0"]])
def test_declared_public_cardinality_is_released(declared):
    tr, _ = _outlier_pair()
    doc = _fit(tr, lambda rng, x, s: np.asarray(x, np.float64), epsilon=1.0, public_cardinality=declared)
    assert doc["tables"][0]["cardinality"] == 987_654_322 and doc["privacy"]["dp"]["public_cardinality"] == ["t0"]
    with pytest.raises(TracegenError, match="public-cardinality tables not in the trace: Z"):
        _fit(tr, lambda rng, x, s: np.asarray(x, np.float64), epsilon=1.0, public_cardinality=["Z"])


def test_schema_options_reach_the_fit_through_the_model_and_the_cli(tmp_path, capsys):
    """``TraceModel(one_hot=, public_cardinality=)`` and ``fit --one-hot/--public-cardinality`` declare the
    schema; without ``--epsilon`` the DP-only ones (one_hot, delta, max_bag) are refused instead of being
    recorded in params. ``public_cardinality`` also applies to the non-private fit
    (``tests/test_cardinality_source.py``)."""
    from tracegen import formats
    from tracegen.cli import main

    rng = np.random.default_rng(3)
    tr = Trace([Table.one_hot(f"C{j}", rng.integers(0, 50, 400), 1000) for j in range(3)])
    path = tmp_path / "t.npz"
    formats.write(tr, path)
    for kw in ({"delta": 0.1}, {"max_bag": 4}, {"one_hot": ["C0"]}):
        with pytest.raises(TracegenError, match="apply only with epsilon"):
            TraceModel(**kw).fit(tr)
    with pytest.raises(TracegenError, match="list of table names"):
        TraceModel(epsilon=1.0, one_hot="C0").fit(tr)
    assert main(["fit", str(path), "-o", str(tmp_path / "x.json"), "--one-hot", "C0"]) == 2
    assert "--one-hot needs --epsilon" in capsys.readouterr().err
    out = tmp_path / "d.json"
    assert main(["fit", str(path), "-o", str(out), "--epsilon", "2", "--calibrate", "0", "-q",
                 "--public-cardinality", "C0", "C2", "--one-hot", "C1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["privacy"]["dp"]["public_cardinality"] == ["C0", "C2"]
    assert [t["cardinality"] for t in doc["tables"]][0::2] == [1000, 1000]
    assert doc["params"]["one_hot"] == ["C1"] and doc["params"]["public_cardinality"] == ["C0", "C2"]
    m = TraceModel.load(out)
    assert m.get_params()["public_cardinality"] == ["C0", "C2"]
    out_all = tmp_path / "all.json"
    assert main(["fit", str(path), "-o", str(out_all), "--epsilon", "2", "--calibrate", "0", "-q",
                 "--public-cardinality"]) == 0
    assert [t["cardinality"] for t in json.loads(out_all.read_text())["tables"]] == [1000, 1000, 1000]
