"""Edge cases of the specified path: huge cardinalities, bad ``tracegen spec`` options, numerics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tracegen import spec
from tracegen.cli import main
from tracegen.errors import TracegenError

BIG = (1 << 62) - 1
ZIPF1 = {"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": 1.0}}}
LOGN = {"kind": "parametric", "stack_distance": {"family": "lognormal", "params": {"mu": 2.0, "sigma": 1.0}},
        "cold": {"rate": 0.1}}
POW = {"kind": "parametric", "stack_distance": {"family": "powerlaw", "params": {"alpha": 0.5, "scale": 1.0}},
       "cold": {"rate": 0.1}}
MIX = {**POW, "popularity": {"family": "zipfian", "params": {"a": 1.0}}, "irm_share": 0.5}

EDGES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
COL = [0.473, 0.152, 0.139, 0.112, 0.072, 0.032, 0.011, 0.005, 0.002, 0.001, 0.001] + [0.0] * 6
IDX = [0.069, 0.044, 0.068, 0.101, 0.121, 0.104, 0.073, 0.058, 0.052, 0.05, 0.049, 0.048, 0.048, 0.043,
       0.022, 0.0, 0.0]


def _stats_file(tmp_path):
    """A one-record dlrm_datasets locality-stats file (the published layout, small numbers)."""
    def hist(vals):
        rows = [f"({lo}, {hi}]: {v:.3f}" for lo, hi, v in zip(EDGES[:-1], EDGES[1:], vals)]
        return rows + [f"({EDGES[-1]}+: {vals[-1]:.3f}"]

    lines = ["fbgemm_t4_bs64.pt", "Locality stats after processing 1 batches of size 64",
             "Avg # of indices: 2560", "Avg # of unique cols: 400", "Avg col size: 6.4",
             "Histogram of col sizes:", *hist(COL), str(EDGES),
             "Ratio of index distribution at different column sizes:", *hist(IDX), str(EDGES)]
    p = tmp_path / "tiny_locality_stats.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


# ---- bug: huge cardinality (no materialised permutation) -----------------------------------------
@pytest.mark.parametrize("node", [ZIPF1, LOGN, POW, MIX], ids=["zipf", "lognormal", "powerlaw", "mixture"])
def test_huge_cardinality_samples_in_bounded_memory(node):
    s = spec.make_sampler(node, BIG, 7)
    ids = np.concatenate([s.next(600), s.next(400)])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < BIG
    assert np.array_equal(ids, spec.sample_ids(node, 1000, BIG, 7))  # same seed, same output
    if hasattr(s, "lab2pos"):  # stack state follows the rows touched, not the table
        assert not s.dense and s.lab2pos.size <= 4096 and s.hkeys.size <= 1 << 13
        assert int(s.state[3]) == np.unique(ids).size


def test_huge_cardinality_bijection():
    """Distinct ranks -> distinct ids, all in range; the hottest id is rank 0's."""
    s = spec.make_sampler(ZIPF1, BIG, 3)
    ranks = np.concatenate([np.arange(500), np.random.default_rng(0).integers(500, BIG, 500)])
    ranks = np.unique(ranks)
    ids = s.ids_of(ranks)
    assert np.unique(ids).size == ranks.size and ids.min() >= 0 and ids.max() < BIG
    assert np.array_equal(s.ids_of(ranks), ids)
    drawn = s.next(20_000)
    vals, counts = np.unique(drawn, return_counts=True)
    assert vals[np.argmax(counts)] == ids[0]  # popularity by rank through the bijection


def test_small_cardinality_is_a_permutation():
    for card in (1, 2, 3, 257):
        s = spec.make_sampler(LOGN, card, 1)
        assert np.array_equal(np.sort(s.ids_of(np.arange(card))), np.arange(card))


def test_cli_huge_cardinality(tmp_path):
    d, out = tmp_path / "z.json", tmp_path / "z.npy"
    assert main(["spec", "--family", "zipf", "--a", "1", "--cardinality", str(BIG), "-o", str(d)]) == 0
    assert json.loads(d.read_text())["tables"][0]["cardinality"] == BIG
    assert main(["sample", str(d), "-n", "10", "-q", "-o", str(out)]) == 0
    assert out.exists()


def test_persistent_carry_refuses_huge_cardinality():
    node = {"kind": "batch-reuse", "batch_accesses": 64, "edges": [0, 1], "unique_probs": [0.5, 0.5],
            "access_probs": [0.2, 0.8], "mean_count": 2.5, "carry": "persistent"}
    with pytest.raises(TracegenError, match="persistent.*too large"):
        spec.make_sampler(node, BIG, 0)
    assert spec.sample_ids({**node, "carry": "independent"}, 200, BIG, 0).max() < BIG


# ---- bug: powerlaw / lognormal numerics --------------------------------------------------------
@pytest.mark.parametrize("params,fam", [({"alpha": 1e-9, "scale": 1.0}, "powerlaw"),
                                        ({"alpha": 1e-300, "scale": 1e300}, "powerlaw"),
                                        ({"mu": 1e308, "sigma": 1e308}, "lognormal")])
def test_extreme_sd_params_sample_without_warnings(params, fam):
    node = {"kind": "parametric", "stack_distance": {"family": fam, "params": params}, "cold": {"rate": 0.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd = spec._SdLaw(node["stack_distance"])(np.random.default_rng(0).random(10_000))
        ids = spec.sample_ids(node, 2000, 1000, 0)
    assert sd.min() >= 0 and sd.max() <= 1 << 62
    assert ids.min() >= 0 and ids.max() < 1000


def test_powerlaw_tiny_alpha_law():
    """alpha -> 0: P(sd >= x) = (1 + x) ** -alpha ~ 1, so all but the tiniest u land at the 2**62 cap."""
    u = np.array([0.0, 1e-12, 1e-6, 0.5, 1 - 2**-53])
    sd = spec._SdLaw({"family": "powerlaw", "params": {"alpha": 1e-9}})(u)
    assert sd[0] == 0 and sd[1] == 0  # expm1(1e-3) < 1
    assert np.all(sd[2:] == 1 << 62)


def test_cli_tiny_alpha_no_warning(tmp_path, capfd):
    d = tmp_path / "p.json"
    assert main(["spec", "--family", "powerlaw", "--alpha", "1e-9", "--cardinality", "1000", "-o", str(d)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pytest would otherwise capture the warning, not print it
        assert main(["sample", str(d), "-n", "500", "-q", "-o", str(tmp_path / "p.npy")]) == 0
    assert capfd.readouterr().err == ""


# ---- bug: unknown kind lists class-stack -------------------------------------------------------
def test_unknown_kind_lists_class_stack(tmp_path, capsys):
    with pytest.raises(TracegenError, match="class-stack"):
        spec.validate_node({"kind": "bogus"}, "tables[0].ids")
    doc = spec.spec_document([{"name": "t0", "cardinality": 10, "bag_length": {"kind": "constant", "value": 1},
                               "ids": {"kind": "bogus"}}])
    d = tmp_path / "d.json"
    d.write_text(json.dumps(doc))
    assert main(["sample", str(d), "-n", "5", "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bogus" in err and "class-stack" in err and "batch-reuse" in err
    assert not (tmp_path / "o.npy").exists()


# ---- bugs: CLI options (0 is not a default, negatives, options of another family) -----------------
def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("opts,msg", [
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--batch-size", "-5"], "argument --batch-size: must be >= 1, got -5"),
    (["--pooling", "-3"], "argument --pooling: must be >= 1, got -3"),
    (["--pooling", "0"], "argument --pooling: must be >= 1, got 0"),
    (["--cardinality", "0"], "argument --cardinality: must be >= 1, got 0"),
    (["--batch-size", "x"], "argument --batch-size: not an integer"),
    (["--mu", "1"], "--mu does not apply to --from-locality-stats"),
    (["--a", "1"], "--a does not apply to --from-locality-stats"),
])
def test_cli_locality_stats_bad_numbers(tmp_path, capsys, opts, msg):
    stats, out = _stats_file(tmp_path), tmp_path / "o.json"
    assert main(["spec", "--from-locality-stats", str(stats), "--table", "0", *opts, "-o", str(out)]) == 2
    assert msg in _err(capsys)
    assert not out.exists()


def test_cli_locality_stats_explicit_values_are_kept(tmp_path):
    stats, out = _stats_file(tmp_path), tmp_path / "o.json"
    assert main(["spec", "--from-locality-stats", str(stats), "--table", "0", "-o", str(out)]) == 0
    t = json.loads(out.read_text())["tables"][0]
    assert t["bag_length"]["value"] == 10 and t["ids"]["batch_accesses"] == 640  # 2560 / (64 x 4)
    out2 = tmp_path / "o2.json"
    assert main(["spec", "--from-locality-stats", str(stats), "--table", "0", "--batch-size", "3",
                 "--pooling", "1", "--cardinality", "1", "--carry", "persistent", "-o", str(out2)]) == 0
    doc = json.loads(out2.read_text())
    t = doc["tables"][0]
    assert doc["source"]["n_samples"] == 3 and t["cardinality"] == 1 and t["ids"]["batch_accesses"] == 3
    assert t["ids"]["carry"] == "persistent"


def test_from_locality_stats_rejects_zero(tmp_path):
    stats = _stats_file(tmp_path)
    for kw in ("batch_size", "pooling", "cardinality"):
        with pytest.raises(TracegenError, match=kw.replace("_", " ") + " must be an integer >= 1, got 0"):
            spec.from_locality_stats(stats, 0, **{kw: 0})


@pytest.mark.parametrize("opts,msg", [
    (["--family", "zipf", "--a", "0"], "argument --a: must be > 0, got 0"),
    (["--family", "zipf", "--a", "-1"], "argument --a: must be > 0, got -1"),
    (["--family", "zipf", "--a", "inf"], "argument --a: must be finite"),
    (["--family", "lognormal", "--mu", "nan", "--sigma", "1"], "argument --mu: must be finite"),
    (["--family", "lognormal", "--mu", "1", "--sigma", "0"], "argument --sigma: must be > 0, got 0"),
    (["--family", "powerlaw", "--alpha", "-2"], "argument --alpha: must be > 0, got -2"),
    (["--family", "powerlaw", "--alpha", "1", "--scale", "0"], "argument --scale: must be > 0, got 0"),
    (["--family", "powerlaw", "--alpha", "1", "--cold-rate", "1.5"], "argument --cold-rate: must be in [0, 1]"),
    (["--family", "powerlaw", "--alpha", "1", "--a", "1", "--irm-share", "-0.1"],
     "argument --irm-share: must be in [0, 1]"),
    (["--family", "zipf", "--a", "1", "--cardinality", str(1 << 62)], "argument --cardinality: must be < 2**62"),
    (["--family", "zipf", "--a", "1", "--cardinality", "-4"], "argument --cardinality: must be >= 1"),
])
def test_cli_family_bad_numbers(tmp_path, capsys, opts, msg):
    out = tmp_path / "o.json"
    card = [] if "--cardinality" in opts else ["--cardinality", "10"]
    assert main(["spec", *opts, *card, "-o", str(out)]) == 2
    assert msg in _err(capsys)
    assert not out.exists()


@pytest.mark.parametrize("opts,msg", [
    (["--family", "uniform", "--a", "1", "--mu", "3", "--cold-rate", "0.5", "--irm-share", "0.3"],
     "--a does not apply to --family uniform"),
    (["--family", "uniform", "--cold-rate", "0.5"], "--cold-rate does not apply to --family uniform"),
    (["--family", "zipf", "--a", "1", "--cold-rate", "0.5"], "--cold-rate does not apply to --family zipf"),
    (["--family", "zipf", "--a", "1", "--irm-share", "0.3"], "--irm-share does not apply to --family zipf"),
    (["--family", "zipf", "--a", "1", "--scale", "2"], "--scale does not apply to --family zipf"),
    (["--family", "lognormal", "--mu", "1", "--sigma", "1", "--alpha", "2"],
     "--alpha does not apply to --family lognormal"),
    (["--family", "powerlaw", "--alpha", "1", "--sigma", "2"], "--sigma does not apply to --family powerlaw"),
    (["--family", "powerlaw", "--alpha", "1", "--irm-share", "0.3"], "--irm-share needs --a"),
    (["--family", "zipf", "--a", "1", "--table", "0"], "--table does not apply to --family zipf"),
    (["--family", "zipf", "--a", "1", "--carry", "persistent"], "--carry does not apply to --family zipf"),
    (["--family", "zipf", "--a", "1", "--batch-size", "4"], "--batch-size does not apply to --family zipf"),
])
def test_cli_option_of_another_family(tmp_path, capsys, opts, msg):
    out = tmp_path / "o.json"
    assert main(["spec", *opts, "--cardinality", "10", "-o", str(out)]) == 2
    assert msg in _err(capsys)
    assert not out.exists()


def test_cli_dlrm_dist_refuses_parametric_options(tmp_path, capsys):
    log = tmp_path / "dist_emb_0.log"
    log.write_text("5, 6, 7\n0, 1, 2\n0.25, 0.5, 1.0\n")
    out = tmp_path / "o.json"
    assert main(["spec", "--from-dlrm-dist", str(log), "--cardinality", "99", "-o", str(out)]) == 2
    assert "--cardinality does not apply to --from-dlrm-dist" in _err(capsys)
    assert main(["spec", "--from-dlrm-dist", str(log), "-o", str(out)]) == 0


def test_cli_family_defaults_when_options_omitted(tmp_path):
    out = tmp_path / "o.json"
    assert main(["spec", "--family", "powerlaw", "--alpha", "0.7", "--cardinality", "50", "-o", str(out)]) == 0
    node = json.loads(out.read_text())["tables"][0]["ids"]
    assert node["stack_distance"]["params"] == {"alpha": 0.7, "scale": 1.0} and node["cold"]["rate"] == 0.0
    assert "popularity" not in node and "irm_share" not in node
