"""Privacy: no raw id in dist.json, no copied runs, min-count suppression, the DP fit and its budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_tracemodel import multi_hot_trace, planted_trace
from tracegen.errors import TracegenError
from tracegen.privacy import frequency_ranks, longest_common_run, raw_ids_in
from tracegen.trace import Table, Trace
from tracegen.tracemodel import TraceModel


def big_id_trace(n: int = 20_000) -> Trace:
    """A planted trace whose ids are 10**12 + k, so an accidental match with a statistic is impossible."""
    ids = planted_trace(n, u=2_000) + 10**12
    return Trace.single(ids, cardinality=10**12 + 5_000)


def test_no_raw_id_in_dist_json(tmp_path):
    tr = big_id_trace()
    m = TraceModel().fit(tr)
    p = tmp_path / "d.json"
    m.save(p)
    doc = json.loads(p.read_text())
    assert raw_ids_in(doc, tr.tables[0].values) == []
    from tracegen.privacy import _numbers

    big = [v for v in _numbers(doc) if v >= 10**12]
    assert big == [10**12 + 5_000]  # only the table's cardinality is id-sized
    # the helper does find planted ids
    assert raw_ids_in({"x": [int(tr.tables[0].values[5])]}, tr.tables[0].values) == [
        int(tr.tables[0].values[5])
    ]


def test_synthetic_ids_are_a_permutation_range():
    tr = big_id_trace()
    syn = TraceModel().fit(tr).sample(seed=0)
    v = syn.tables[0].values
    assert v.min() >= 0 and v.max() < 10**12 + 5_000
    assert np.unique(v).size == pytest.approx(np.unique(tr.tables[0].values).size, rel=0.1)


def test_longest_common_run_no_longer_than_between_two_synthetic_draws():
    tr = Trace.single(planted_trace(8_000, u=1_500))
    m = TraceModel().fit(tr)
    real = frequency_ranks(tr.tables[0].values)
    s1 = frequency_ranks(m.sample(seed=1).tables[0].values)
    s2 = frequency_ranks(m.sample(seed=2).tables[0].values)
    s3 = frequency_ranks(m.sample(seed=3).tables[0].values)
    real_vs_syn = max(longest_common_run(real, s1), longest_common_run(real, s2))
    syn_vs_syn = max(longest_common_run(s1, s2), longest_common_run(s1, s3), longest_common_run(s2, s3))
    assert real_vs_syn <= syn_vs_syn + 1


def test_longest_common_run_reference():
    assert longest_common_run(np.array([1, 2, 3, 4, 5]), np.array([9, 2, 3, 4, 8])) == 3
    assert longest_common_run(np.array([1, 1]), np.array([2, 2])) == 0
    assert longest_common_run(np.arange(50), np.arange(50)) == 50
    assert list(frequency_ranks(np.array([7, 3, 3, 9, 3, 7]))) == [1, 0, 0, 2, 0, 1]


def test_min_count_suppresses_rare_statistics():
    tr = big_id_trace()
    k = 25
    doc = TraceModel(min_count=k, calibrate=0).fit(tr).model_
    node = doc["tables"][0]["ids"]
    n = tr.n_accesses
    for cl in node["classes"]:
        assert round(cl["share"] * n) >= k  # one-hot: accesses = supporting samples
        if cl["sd"] is not None:
            warm = cl["share"] * n * np.asarray(cl["sd"]["probs"])
            assert np.all((warm == 0) | (warm >= k - 1e-6))
    assert doc["privacy"] == {"raw_ids": False, "first_appearance_order": False, "min_count": k, "dp": None}


def test_bag_lengths_rare_values_merged():
    rng = np.random.default_rng(0)
    lens = np.where(rng.random(2_000) < 0.002, 40, rng.integers(1, 4, 2_000))
    t = Table.from_lengths("A", rng.integers(0, 300, int(lens.sum())), lens, 300)
    bag = TraceModel(calibrate=0).fit(Trace([t])).model_["tables"][0]["bag_length"]
    assert 40 not in bag["values"] and bag["values"] == [1, 2, 3]


def test_dp_fit_records_budget_and_releases_no_stack_distances(tmp_path):
    tr = multi_hot_trace(4_000)
    m = TraceModel(epsilon=1.0, delta=1e-6, calibrate=0).fit(tr)
    dp = m.model_["privacy"]["dp"]
    assert dp["epsilon"] == 1.0 and dp["epsilon_spent"] == 1.0 and dp["delta_spent"] == 0.0
    assert dp["unit"] == "sample" and dp["mechanism"] == "laplace" and dp["max_bag"] == {"A": 32, "B": 1}
    # sensitivity: 5 * max_bag + 2 per table, + 1 for labels + 2 per dense column
    assert dp["sensitivity"] == (5 * 32 + 2) + (5 * 1 + 2) + 1 + 2 * 2
    assert "Che" in dp["locality"]
    syn = m.sample(seed=0)
    syn.validate()
    assert syn.dense.shape == tr.dense.shape and syn.labels.shape == tr.labels.shape
    p = tmp_path / "dp.json"
    m.save(p)
    assert TraceModel.load(p).model_["privacy"]["dp"]["epsilon_spent"] == 1.0


def test_dp_noise_is_not_seeded():
    tr = Trace.single(planted_trace(10_000))
    a = TraceModel(epsilon=1.0, calibrate=0).fit(tr).model_["tables"][0]["ids"]["classes"]
    b = TraceModel(epsilon=1.0, calibrate=0).fit(tr).model_["tables"][0]["ids"]["classes"]
    assert a != b


def test_dp_large_epsilon_keeps_popularity():
    from tracegen.tracemodel import fidelity

    tr = Trace.single(planted_trace(40_000))
    syn = TraceModel(epsilon=1000.0, calibrate=0).fit(tr).sample(seed=0)
    f = fidelity(tr, syn)["t0"]
    assert f["top10"] < 0.05 and 0.8 < f["distinct_ratio"] < 1.2


@pytest.mark.parametrize(
    "eps, delta, msg", [(0.0, None, "epsilon must be > 0"), (1.0, 1.5, "delta must be in")]
)
def test_bad_dp_parameters(eps, delta, msg):
    with pytest.raises(TracegenError, match=msg):
        TraceModel(epsilon=eps, delta=delta).fit(Trace.single(np.arange(100) % 7))
