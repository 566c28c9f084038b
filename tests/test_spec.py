"""Specified distributions (tracegen.spec): validation, samplers, importers, example specs, the CLI."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from tests import naive
from tracegen import spec
from tracegen.cli import main
from tracegen.errors import TracegenError

ROOT = pathlib.Path(__file__).resolve().parents[1]

ZIPF = {"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": 0.9}}}
LOGN = {"kind": "parametric", "stack_distance": {"family": "lognormal", "params": {"mu": 3.0, "sigma": 1.5}},
        "cold": {"rate": 0.05}}
POW = {"kind": "parametric", "stack_distance": {"family": "powerlaw", "params": {"alpha": 0.7, "scale": 2.0}},
       "cold": {"rate": 0.02}}
MIX = {**LOGN, "popularity": {"family": "zipfian", "params": {"a": 1.1}}, "irm_share": 0.4}
EMP = {"kind": "stack-empirical",
       "sd": {"kind": "empirical", "values": [0, 1, 3, 9, 40], "probs": [.3, .2, .2, .2, .1]},
       "cold": {"rate": 0.1}}
BINNED = {"kind": "stack-empirical", "sd": {"kind": "empirical-binned", "edges": [0, 1, 4, 16, 64],
                                            "probs": [.4, .3, .2, .1]}}
GAUSS = {"kind": "gaussian", "params": {"mean": 300.0, "std": 40.0}}
UNIF = {"kind": "uniform"}
REUSE = {"kind": "batch-reuse", "batch_accesses": 4096, "edges": [0, 1, 2, 4, 8, 16],
         "unique_probs": [0.5, 0.2, 0.15, 0.1, 0.04, 0.01], "access_probs": [0.12, 0.1, 0.14, 0.2, 0.2, 0.24],
         "mean_count": 4.2}
ALL = {"zipf": ZIPF, "lognormal": LOGN, "powerlaw": POW, "mixture": MIX, "empirical": EMP, "binned": BINNED,
       "gaussian": GAUSS, "uniform": UNIF, "batch-reuse": REUSE,
       "batch-reuse-persistent": {**REUSE, "carry": "persistent"}}


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("node,where,msg", [
    ({"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": -1}}},
     "tables[0].ids.popularity.params.a", "must be > 0"),
    ({"kind": "parametric", "popularity": {"family": "zipf2", "params": {"a": 1}}},
     "tables[0].ids.popularity.family", "unknown family"),
    ({"kind": "parametric"}, "tables[0].ids", "needs 'popularity'"),
    ({"kind": "nope"}, "tables[0].ids.kind", "unknown kind"),
    ({}, "tables[0].ids.kind", "missing field"),
    ({"kind": "class-stack"}, "tables[0].ids.kind", "fitted"),
    ({"kind": "parametric", "stack_distance": {"family": "lognormal", "params": {"mu": 1}}},
     "tables[0].ids.stack_distance.params.sigma", "missing field"),
    ({"kind": "parametric", "stack_distance": {"family": "powerlaw", "params": {"alpha": 1}},
      "cold": {"rate": 2}},
     "tables[0].ids.cold.rate", "must be <= 1"),
    ({**MIX, "irm_share": -0.1}, "tables[0].ids.irm_share", "must be >= 0"),
    ({"kind": "stack-empirical", "sd": {"kind": "empirical", "values": [0, 1], "probs": [0.5, 0.6]}},
     "tables[0].ids.sd.probs", "sum to 1"),
    ({"kind": "stack-empirical", "sd": {"kind": "empirical", "values": [0, 1], "probs": [1.5, -0.5]}},
     "tables[0].ids.sd.probs", ">= 0"),
    ({"kind": "stack-empirical", "sd": {"kind": "empirical", "values": [0, 1, 2], "probs": [0.5, 0.5]}},
     "tables[0].ids.sd.probs", "expected 3"),
    ({"kind": "stack-empirical", "sd": {"kind": "empirical-binned", "edges": [0, 4, 2], "probs": [0.5, 0.5]}},
     "tables[0].ids.sd.edges", "increasing"),
    ({"kind": "gaussian", "params": {"std": 0}}, "tables[0].ids.params.std", "must be > 0"),
    ({**REUSE, "carry": "sticky"}, "tables[0].ids.carry", "unknown carry"),
    ({**REUSE, "access_probs": [1.0]}, "tables[0].ids.access_probs", "expected 6"),
    ({**REUSE, "batch_accesses": 10.5}, "tables[0].ids.batch_accesses", "integer"),
])
def test_validate_names_the_field(node, where, msg):
    with pytest.raises(TracegenError) as e:
        spec.validate_node(node, "tables[0].ids")
    s = str(e.value)
    assert s.startswith(where + ":"), s
    assert msg in s and "\n" not in s


@pytest.mark.parametrize("name", sorted(ALL))
def test_valid_nodes_validate(name):
    spec.validate_node(ALL[name], "ids")


# ---- samplers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_chunked_equals_one_shot_and_seeded(name):
    node, card = ALL[name], 700
    one = spec.sample_ids(node, 12000, card, 5)
    s = spec.make_sampler(node, card, 5)
    chunks = np.concatenate([s.next(k) for k in (1, 0, 999, 4000, 3, 6997)])
    assert one.dtype == np.int64 and one.shape == (12000,)
    assert np.array_equal(one, chunks)
    assert one.min() >= 0 and one.max() < card
    assert np.array_equal(one, spec.sample_ids(node, 12000, card, np.random.SeedSequence(5)))
    assert not np.array_equal(one, spec.sample_ids(node, 12000, card, 6))


@pytest.mark.parametrize("name", ["lognormal", "powerlaw", "mixture", "empirical", "binned"])
def test_stack_kernel_equals_naive(name):
    """The Fenwick replay (many compactions: card 40 -> a time axis of 144 slots) equals a list-scan LRU."""
    node, card, n = ALL[name], 40, 3000
    a = spec.make_sampler(node, card, 11)
    ops, vals = a._decisions(n)
    got = spec.make_sampler(node, card, 11).next(n)
    ranks = naive.spec_stack_replay(ops, vals, np.arange(card))  # the stack works on ranks
    assert np.array_equal(got, a.ids_of(ranks))


@pytest.mark.parametrize("name", ["lognormal", "powerlaw", "mixture", "empirical"])
def test_sparse_stack_state_equals_dense(name, monkeypatch):
    """Labels handed out on first access (large tables) replay exactly like rank-indexed state."""
    node, card = ALL[name], 300
    dense = spec.make_sampler(node, card, 4)
    assert dense.dense
    want = np.concatenate([dense.next(k) for k in (1700, 3300)])
    monkeypatch.setattr(spec, "_DENSE_STACK", 10)
    sparse = spec.make_sampler(node, card, 4)
    assert not sparse.dense
    got = np.concatenate([sparse.next(k) for k in (1700, 3300)])
    assert np.array_equal(got, want)
    labels = int(sparse.state[3])  # one label per distinct rank touched
    assert labels == np.unique(got).size and sparse.lab2rank.size <= max(card, 1024)


def test_stack_model_reproduces_its_sd_law():
    """Warm accesses land exactly at their drawn depth while unseen ids remain (big table, no overflow)."""
    from tracegen.locality import stack_distances

    node = {"kind": "stack-empirical",
            "sd": {"kind": "empirical", "values": [0, 2, 5, 17], "probs": [.1, .2, .3, .4]},
            "cold": {"rate": 0.2}}
    n = 20000
    ids = spec.sample_ids(node, n, 10**6, 3)
    sd = stack_distances(ids)
    s = spec.make_sampler(node, 10**6, 3)
    ops, vals = s._decisions(n)
    depth = ops == 2
    ok = depth & (sd >= 0)
    assert np.array_equal(sd[ok], vals[ok])
    assert np.all(sd[ops == 1] == -1)
    assert abs(np.mean(sd < 0) - 0.2) < 0.02  # cold rate (plus the few draws deeper than the young stack)


def test_zipf_matches_scipy_pmf():
    from scipy.stats import zipfian

    card, n = 50, 400_000
    ids = spec.sample_ids(ZIPF, n, card, 1)
    freq = np.sort(np.bincount(ids, minlength=card))[::-1] / n
    pmf = zipfian.pmf(np.arange(1, card + 1), 0.9, card)
    assert np.abs(freq - pmf).max() < 0.004  # ~4 sigma of the largest binomial std (0.0008)


def test_zipf_tail_approximation(monkeypatch):
    """Beyond the tabulated head, ranks come from the inverted continuous law: close to the exact pmf."""
    from scipy.stats import zipfian

    monkeypatch.setattr(spec, "_ZIPF_EXACT", 32)
    card, n = 2000, 400_000
    z = spec._Zipf(0.8, card)
    ranks = z.ranks(np.random.default_rng(0).random(n))
    assert ranks.min() >= 0 and ranks.max() < card
    emp = np.bincount(ranks, minlength=card) / n
    pmf = zipfian.pmf(np.arange(1, card + 1), 0.8, card)
    # compare cumulative shares (the tail is approximated by a midpoint integral)
    assert np.abs(np.cumsum(emp) - np.cumsum(pmf)).max() < 0.01


def test_irm_ids_are_a_permutation_of_ranks():
    card = 500
    s = spec.make_sampler(ZIPF, card, 2)
    perm = s.ids_of(np.arange(card))
    assert np.array_equal(np.sort(perm), np.arange(card))
    ids = s.next(100_000)
    counts = np.bincount(ids, minlength=card)
    assert np.argmax(counts) == perm[0]
    # popularity follows rank: the counts read through the bijection fall with rank
    by_rank = counts[perm]
    assert np.all(by_rank[:5] > by_rank[5:].max())


def test_gaussian_and_uniform():
    g = spec.sample_ids(GAUSS, 100_000, 1000, 0)
    assert abs(g.mean() - 300) < 1 and abs(g.std() - 40) < 1
    clipped = spec.sample_ids({"kind": "gaussian", "params": {"std": 1e6}}, 10_000, 100, 0)
    assert clipped.min() == 0 and clipped.max() == 99
    u = spec.sample_ids(UNIF, 200_000, 10, 0)
    assert np.abs(np.bincount(u, minlength=10) / 200_000 - 0.1).max() < 0.005


def test_mixture_keeps_the_head():
    """IRM share w: the hottest id gets about w * pmf(1) of the accesses from the IRM part alone."""
    from scipy.stats import zipfian

    card, n = 10_000, 200_000
    ids = spec.sample_ids(MIX, n, card, 4)
    top = np.sort(np.bincount(ids, minlength=card))[::-1][0] / n
    assert top >= 0.4 * zipfian.pmf(1, 1.1, card) * 0.9


def test_bad_arguments():
    with pytest.raises(TracegenError, match="cardinality"):
        spec.make_sampler(ZIPF, 0, 1)
    with pytest.raises(TracegenError, match="non-negative"):
        spec.sample_ids(ZIPF, -1, 10, 1)


# ---- batch reuse --------------------------------------------------------------------------------
def _measure(ids, batch_accesses):
    from tracegen.locality import reuse_factor_histogram

    return reuse_factor_histogram(ids, batch_accesses)


def test_batch_reuse_batches_are_exact_size_and_shuffled():
    s = spec.make_sampler(REUSE, 5000, 3)
    for _ in range(3):
        b = s.next(4096)
        c = np.bincount(b)
        assert c.sum() == 4096 and c.max() <= 4096
    assert not np.all(np.diff(b) == 0)


def test_batch_reuse_reproduces_histograms_without_shared_data():
    edges = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
    q = [0.5, 0.2, 0.12, 0.09, 0.05, 0.025, 0.01, 0.004, 0.001, 0, 0, 0, 0, 0, 0, 0, 0]
    s = [0.08, 0.06, 0.08, 0.12, 0.13, 0.12, 0.1, 0.09, 0.08, 0.06, 0.04, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0]
    rec = {"name": "x", "edges": edges, "unique_share": q, "access_share": s, "avg_indices": 6.1e6,
           "avg_unique": 1e6}
    node = spec.batch_reuse_from_stats(rec, batch_accesses=200_000)
    spec.validate_node(node, "ids")
    ids = spec.sample_ids(node, 8 * 200_000, 400_000, 9)
    h = _measure(ids, 200_000)
    assert h["batches"] == 8
    qs = np.asarray(q) / np.sum(q)
    resolved = qs >= 0.005
    assert np.abs(np.asarray(h["col_size_hist"])[resolved] - qs[resolved]).max() < 0.003
    assert np.abs(np.asarray(h["index_share"]) - np.asarray(s) / np.sum(s)).max() < 0.015


def test_batch_reuse_edge_cases():
    """A law with no small counts still fills every batch exactly; more distinct rows than the table has."""
    node = {"kind": "batch-reuse", "batch_accesses": 1001, "edges": [0, 1, 2, 4],
            "unique_probs": [0, 0, 1, 0], "access_probs": [0, 0, 1, 0], "mean_count": 3.5}
    s = spec.make_sampler(node, 100, 0)
    for _ in range(3):
        b = s.next(1001)
        assert b.size == 1001 and b.min() >= 0 and b.max() < 100
    assert spec.sample_ids({**REUSE, "carry": "persistent"}, 10_000, 50, 0).max() < 50


def _law_mean(lo, hi, r):
    """Exact mean of the truncated geometric on lo+1..hi (hi = -1: unbounded) with ratio r."""
    if hi < 0:
        return lo + 1 + (r / (1 - r) if r < 1 else np.inf)
    g = np.arange(hi - lo, dtype=np.float64)
    w = np.exp(g * np.log(r)) if r > 0 else (g == 0).astype(float)
    return lo + 1 + float((g * w).sum() / w.sum())


@pytest.mark.parametrize("fname,record,n_batches", [("2021_locality_stats.txt", 0, 6),
                                                    ("2021_locality_stats.txt", 5, 6),
                                                    ("2022_locality_stats.txt", 3, 3)])
def test_batch_reuse_reproduces_meta_stats(shared_data, fname, record, n_batches):
    """A trace sampled from Meta's published statistics, measured the same way, reproduces them.

    (1) The count law itself: the expected access share of every bucket (unique share x exact mean
    count of its truncated geometric) equals the published share within 0.002 (3-decimal rounding).
    (2) The sample, measured with ``reuse_factor_histogram``: the unique-row share of every resolved
    bucket (>= 0.005) within 0.003; the access share of bucket k within 0.005 + 6 s_k / sqrt(R_k),
    R_k the expected rows of bucket k in the sample: the published batch held all 856 tables, a
    table's share of it holds only a handful of rows reused > 4096 times per batch, whose shares are
    Poisson-noisy (measured over 8 seeds the worst error is 0.86 of this bound); mean reuse within 10%.
    """
    path = shared_data / "dlrm_datasets_stats" / fname
    table = spec.from_locality_stats(path, record)
    node = table["ids"]
    ba = node["batch_accesses"]
    assert ba == table["batch_size"] * table["bag_length"]["value"]
    rec = spec.read_locality_records(path)[record]
    q, s = np.asarray(rec["unique_share"]), np.asarray(rec["access_share"])

    smp = spec.make_sampler(node, table["cardinality"], 0)
    means = np.array([_law_mean(int(lo), int(hi), r) for lo, hi, r in zip(smp.lo, smp.hi, smp.ratio)])
    expected = smp.q * means / float(smp.q @ means)
    assert np.abs(expected - s / s.sum()).max() < 0.002

    ids = smp.next(n_batches * ba)
    h = _measure(ids, ba)
    assert h["batches"] == n_batches and h["avg_indices"] == ba
    resolved = q >= 0.005
    assert np.abs(np.asarray(h["col_size_hist"])[resolved] - q[resolved]).max() < 0.003
    rows = np.asarray(node["unique_probs"]) * ba / node["mean_count"] * n_batches
    tol = 0.005 + 6 * s / np.sqrt(np.maximum(rows, 1))
    assert np.all(np.abs(np.asarray(h["index_share"]) - s) <= tol)
    assert abs(h["avg_col_size"] - rec["avg_indices"] / rec["avg_unique"]) / h["avg_col_size"] < 0.1


def test_persistent_carry_keeps_hot_rows():
    a = spec.make_sampler({**REUSE, "carry": "persistent"}, 20_000, 1)
    b = spec.make_sampler(REUSE, 20_000, 1)
    ov = []
    for s in (a, b):
        x, y = s.next(4096), s.next(4096)
        ov.append(len(np.intersect1d(x, y)) / len(np.unique(y)))
    assert ov[0] > 2 * ov[1]


# ---- importers ----------------------------------------------------------------------------------
def _write_dist(tmp_path):
    p = tmp_path / "dist_emb_0.log"
    p.write_text("987654321, 123456789, 555555555, 444444444\n0, 1, 2, 5\n0.25, 0.5, 0.75, 1.0\n")
    return p


def test_from_dlrm_dist_converts_and_keeps_no_raw_ids(tmp_path):
    t = spec.from_dlrm_dist(_write_dist(tmp_path))
    assert t["cardinality"] == 4
    ids = t["ids"]
    assert ids["cold"]["rate"] == pytest.approx(0.25)
    assert ids["sd"]["values"] == [0, 1, 4]  # depth 1, 2, 5 -> sd 0, 1, 4
    assert np.allclose(ids["sd"]["probs"], [1 / 3] * 3)
    text = json.dumps(t)
    for raw in ("987654321", "123456789", "555555555", "444444444"):
        assert raw not in text
    spec.validate_node(ids, "ids")
    assert spec.sample_ids(ids, 100, 4, 0).max() < 4


def test_cli_spec_imports(tmp_path, shared_data):
    out = tmp_path / "d.json"
    assert main(["spec", "--from-dlrm-dist", str(_write_dist(tmp_path)), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "tracegen-dist" and doc["tables"][0]["ids"]["kind"] == "stack-empirical"
    out2 = tmp_path / "m.json"
    stats = shared_data / "dlrm_datasets_stats" / "2021_locality_stats.txt"
    assert main(["spec", "--from-locality-stats", str(stats), "--table", "2", "-o", str(out2)]) == 0
    doc2 = json.loads(out2.read_text())
    assert doc2["tables"][0]["ids"]["kind"] == "batch-reuse"
    assert doc2["source"]["n_samples"] == 65536


def test_cli_spec_bad_input(tmp_path, capsys):
    out = tmp_path / "d.json"
    out.write_text("keep")
    assert main(["spec", "--family", "zipf", "--a", "1", "--cardinality", "10", "-o", str(out)]) == 2
    assert out.read_text() == "keep"
    assert "already exists" in capsys.readouterr().err
    assert main(["spec", "--family", "zipf", "--a", "-1", "--cardinality", "10",
                 "-o", str(tmp_path / "x")]) == 2
    assert "argument --a: must be > 0" in capsys.readouterr().err
    bad = tmp_path / "bad.log"
    bad.write_text("1, 2\n0, 1\n")
    assert main(["spec", "--from-dlrm-dist", str(bad), "-o", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "3 lines" in err and err.count("\n") == 1
    assert main(["spec", "-o", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_spec_family(tmp_path):
    out = tmp_path / "f.json"
    assert main(["spec", "--family", "lognormal", "--mu", "2", "--sigma", "1", "--a", "0.8",
                 "--cold-rate", "0.1", "--cardinality", "1000", "-o", str(out)]) == 0
    node = json.loads(out.read_text())["tables"][0]["ids"]
    assert node["popularity"]["params"]["a"] == 0.8 and node["irm_share"] == 0.5
    assert spec.sample_ids(node, 1000, 1000, 0).shape == (1000,)


# ---- example specs ------------------------------------------------------------------------------
@pytest.mark.parametrize("fname", ["zipf.json", "criteo-like.json", "meta-2021-batch-reuse.json"])
def test_example_specs_sample(fname):
    doc = json.loads((ROOT / "traces" / fname).read_text())
    assert doc["format"] == "tracegen-dist" and doc["schema_version"] == 1
    for j, t in enumerate(doc["tables"]):
        spec.validate_node(t["ids"], f"tables[{j}].ids")
        if t["cardinality"] <= 300_000:
            ids = spec.sample_ids(t["ids"], 2000, t["cardinality"], j)
            assert ids.min() >= 0 and ids.max() < t["cardinality"]


@pytest.mark.parametrize("fname", ["zipf.json", "criteo-like.json", "meta-2021-batch-reuse.json"])
def test_example_specs_through_trace_model(fname):
    tracemodel = pytest.importorskip("tracegen.tracemodel")
    m = tracemodel.TraceModel.load(ROOT / "traces" / fname)
    tr = m.sample(500, seed=1)
    tr.validate()
    assert tr.n_samples == 500 and tr.n_tables == len(m.names)


@pytest.mark.parametrize("fname", ["zipf.json", "meta-2021-batch-reuse.json"])
def test_example_spec_through_cli_sample(tmp_path, fname):
    """`tracegen sample` on an example spec; chunked, 2-worker output equals the one-chunk output."""
    from tracegen import formats
    from tracegen.cli import build_parser

    sub = [a for a in build_parser()._actions if a.dest == "command"]
    if not sub or "sample" not in sub[0].choices:
        pytest.skip("tracegen sample is not there yet")
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    src = str(ROOT / "traces" / fname)
    assert main(["sample", src, "-n", "3000", "--seed", "3", "-q", "-o", str(a)]) == 0
    assert main(["sample", src, "-n", "3000", "--seed", "3", "-q", "--chunk", "700", "--workers", "2",
                 "-o", str(b)]) == 0
    ta, tb = formats.read(a), formats.read(b)
    assert ta.n_samples == 3000 and ta.equals(tb)
