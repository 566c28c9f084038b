"""Review round on specified distributions: defects found by sampling the documented laws and measuring them.

- uniform ids over a table of more than 2**53 rows were drawn as ``floor(u * card)`` with a 53-bit
  float ``u``: every id was a multiple of ``card / 2**53`` rounded (no odd id at all for 2**62 - 1 rows).
- Gaussian ids over such a table were ``rint(m + s Z)`` in float64: on a grid of the float spacing at ``m``.
- a parametric node's ``cold`` without ``stack_distance``, or ``irm_share`` without both laws, was
  silently ignored; the node is now refused naming the field.
- ``tracegen spec --family`` had no ``gaussian`` (the reference's ``--rand-data-dist gaussian``).

And one claim checked against the source it imports: a ``dist_emb_j.log`` sampled by us and by the DLRM
reference's generator (written here from its description) touch the same ids; the depth law is the file's.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracegen import spec
from tracegen.errors import TracegenError

BIG = (1 << 62) - 1


def _mulhi_ref(hi: int, lo: int, card: int) -> int:
    """floor((hi * 2**64 + lo) * card / 2**128) with Python integers."""
    return ((hi << 64) + lo) * card >> 128


@pytest.mark.parametrize("card", [BIG, (1 << 55) + 3, 10**17, (1 << 53) + 1])
def test_uniform_big_cardinality_reaches_every_residue(card):
    x = spec.sample_ids({"kind": "uniform"}, 40_000, card, 0)
    assert x.min() >= 0 and x.max() < card
    assert np.unique(x % 64).size == 64  # was 1 residue (all ids multiples of 512) for 2**62 - 1
    assert abs((x % 2).mean() - 0.5) < 0.02
    assert abs(x.astype(np.float64).mean() / card - 0.5) < 0.01


def test_uniform_big_cardinality_scaling_is_exact():
    from tracegen import _spec_kernels as K

    r = np.random.default_rng(5)
    hi = r.integers(0, 1 << 64, 2000, dtype=np.uint64, endpoint=False)
    lo = r.integers(0, 1 << 64, 2000, dtype=np.uint64, endpoint=False)
    hi[:3] = [0, (1 << 64) - 1, 1 << 63]
    lo[:3] = [0, (1 << 64) - 1, 12345]
    for card in (BIG, (1 << 53) + 1, 3):
        got = K._scale_u128(hi, lo, card)
        want = [_mulhi_ref(int(a), int(b), card) for a, b in zip(hi, lo)]
        assert got.tolist() == want


def test_uniform_big_cardinality_chunking_and_small_card_unchanged():
    s1, s2 = spec.make_sampler({"kind": "uniform"}, BIG, 3), spec.make_sampler({"kind": "uniform"}, BIG, 3)
    a = s1.next(1000)
    b = np.concatenate([s2.next(333), s2.next(1), s2.next(666)])
    assert np.array_equal(a, b)
    # tables up to 2**53 rows keep their exact former stream: floor(u * card)
    card = 1_000_003
    (g,) = spec._streams(11, 1)
    want = np.floor(g.random(5000) * card).astype(np.int64)
    assert np.array_equal(spec.sample_ids({"kind": "uniform"}, 5000, card, 11), want)


def test_gaussian_big_cardinality_not_on_a_float_grid():
    node = {"kind": "gaussian", "params": {"std": 1e6}}
    x = spec.sample_ids(node, 40_000, BIG, 0)
    mid = (BIG - 1) // 2
    d = x - mid
    assert np.unique(x % 64).size == 64  # was 1: rint(2**61 + s Z) is a multiple of 512
    assert abs(d.mean()) < 3 * 1e6 / np.sqrt(x.size) + 1
    assert abs(d.std() / 1e6 - 1) < 0.03
    # an explicit mean and clipping at both ends
    y = spec.sample_ids({"kind": "gaussian", "params": {"mean": 10.0, "std": 1e3}}, 20_000, BIG, 1)
    assert y.min() == 0 and (y == 0).mean() > 0.4 and y.max() < 5000
    z = spec.sample_ids({"kind": "gaussian", "params": {"mean": 1e30, "std": 1.0}}, 100, BIG, 1)
    assert np.all(z == BIG - 1)
    w = spec.sample_ids({"kind": "gaussian", "params": {"mean": -1e30, "std": 1.0}}, 100, BIG, 1)
    assert np.all(w == 0)


def test_gaussian_small_cardinality_unchanged():
    from scipy.special import ndtri

    node = {"kind": "gaussian", "params": {"mean": 300.0, "std": 40.0}}
    (g,) = spec._streams(4, 1)
    want = np.clip(np.rint(300.0 + 40.0 * ndtri(g.random(3000))), 0, 999).astype(np.int64)
    assert np.array_equal(spec.sample_ids(node, 3000, 1000, 4), want)


@pytest.mark.parametrize("node,field", [
    ({"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": 0.9}}, "cold": {"rate": 0.3}},
     "ids.cold"),
    ({"kind": "parametric", "stack_distance": {"family": "lognormal", "params": {"mu": 2.0, "sigma": 1.0}},
      "irm_share": 0.3}, "ids.irm_share"),
    ({"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": 0.9}}, "irm_share": 0.3},
     "ids.irm_share"),
])
def test_parametric_field_that_does_not_apply_is_refused(node, field):
    with pytest.raises(TracegenError, match=field.replace(".", r"\.") + ": .*only"):
        spec.validate_node(node, "ids")


def test_parametric_fields_that_apply_still_accepted():
    ok = {"kind": "parametric", "stack_distance": {"family": "lognormal", "params": {"mu": 2.0, "sigma": 1.0}},
          "cold": {"rate": 0.1}, "popularity": {"family": "zipfian", "params": {"a": 0.9}}, "irm_share": 0.3}
    spec.validate_node(ok, "ids")
    spec.validate_node({k: v for k, v in ok.items() if k not in ("popularity", "irm_share")}, "ids")


def _reference_lru(unique_ids, depths, cdf, u):
    """The DLRM reference's i.i.d. LRU generator, written from its description (not its code): every
    unique id starts on a list, oldest first; a draw is the first depth whose CDF reaches ``u``, where
    ``u`` is first scaled by the CDF of the largest depth <= ``i`` while ``i`` (cold draws so far) is
    below the largest depth; depth 0 takes the list's first (least recent) entry, depth ``d`` the
    ``d``-th most recent; the taken id moves to the end."""
    stack = list(unique_ids)
    out, i, dmax = [], 0, depths[-1]
    for x in u:
        if i < dmax:
            x *= cdf[np.searchsorted(depths, i, side="right") - 1]
        d = depths[min(np.searchsorted(cdf, x, side="left"), len(depths) - 1)]
        if d == 0:
            r = stack.pop(0)
            i += 1
        else:
            r = stack.pop(len(stack) - d)
        stack.append(r)
        out.append(r)
    return np.asarray(out, np.int64)


def test_dlrm_dist_import_against_the_reference_generator(tmp_path):
    """The imported ``stack-empirical`` spec and the reference's own generator on the same dist log: the
    same set of distinct ids (all of the file's), the same cold share; our warm stack distances follow
    the file's law (the reference's early restriction to depths <= ids seen makes its deep reuses rarer)."""
    from tracegen.formats import dlrm
    from tracegen.locality import stack_distances

    r = np.random.default_rng(0)
    real = r.zipf(1.3, 20_000) % 5000
    sd = stack_distances(real)
    vals, cnt = np.unique(sd + 1, return_counts=True)  # the reference's depth: 1-based, 0 = cold
    path = tmp_path / "dist_emb_0.log"
    dlrm.write_dist(dlrm.DlrmDist(real[sd < 0], vals - 1, np.cumsum(cnt) / real.size), path)
    table = spec.from_dlrm_dist(path)
    n_unique = int((sd < 0).sum())
    assert table["cardinality"] == n_unique
    ours = spec.sample_ids(table["ids"], real.size, table["cardinality"], 1)
    ref = _reference_lru(real[sd < 0].tolist(), vals, np.cumsum(cnt) / real.size, r.random(real.size))
    for x in (ours, ref):
        assert np.unique(x).size == n_unique
    s_ours, s_ref = stack_distances(ours), stack_distances(ref)
    assert (s_ours < 0).sum() == (s_ref < 0).sum() == n_unique
    want = np.quantile(sd[sd >= 0], [0.5, 0.9])
    got = np.quantile(s_ours[s_ours >= 0], [0.5, 0.9])
    got_ref = np.quantile(s_ref[s_ref >= 0], [0.5, 0.9])
    assert np.all(np.abs(got / want - 1) < 0.2), (got, want)  # measured over 3 seeds: within 16%
    assert got_ref[1] < got[1]  # the reference's deep tail is thinner (measured 0.69-0.71x of the file's p90)


def test_cli_spec_family_gaussian(tmp_path, capsys):
    from tracegen.cli import main

    out = tmp_path / "g.json"
    assert main(["spec", "--family", "gaussian", "--std", "40", "--mean", "300", "--cardinality", "1000",
                 "-o", str(out)]) == 0
    import json

    node = json.loads(out.read_text())["tables"][0]["ids"]
    assert node == {"kind": "gaussian", "params": {"std": 40.0, "mean": 300.0}}
    x = spec.sample_ids(node, 20_000, 1000, 0)
    assert abs(x.mean() - 300) < 2 and abs(x.std() - 40) < 1.5
    out2 = tmp_path / "g2.json"
    assert main(["spec", "--family", "gaussian", "--std", "5", "--cardinality", "11", "-o", str(out2)]) == 0
    assert "mean" not in json.loads(out2.read_text())["tables"][0]["ids"]["params"]
    assert main(["spec", "--family", "gaussian", "--cardinality", "10", "-o", str(tmp_path / "x")]) == 2
    assert "--std" in capsys.readouterr().err
    assert main(["spec", "--family", "zipf", "--a", "1", "--std", "3", "--cardinality", "10",
                 "-o", str(tmp_path / "y")]) == 2
    assert "--std does not apply to --family zipf" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
