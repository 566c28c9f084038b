"""``tracegen fit`` and ``tracegen sample`` end to end (CLI), including the DLRM npz drop-in check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_tracemodel import planted_trace
from tracegen import formats
from tracegen.cli import main
from tracegen.trace import Trace


@pytest.fixture
def dlrm_npz(tmp_path):
    rng = np.random.default_rng(0)
    b = 3_000
    x_cat = np.column_stack(
        [planted_trace(b, u=400, seed=1) % 400, rng.integers(0, 50, b), rng.integers(0, 7, b)]
    )
    dense = rng.integers(0, 100, (b, 13)).astype(np.float32)
    labels = (rng.random(b) < 0.3).astype(np.int32)
    tr = Trace.from_dense_ids(x_cat, [400, 50, 7], dense=dense, labels=labels)
    p = tmp_path / "real.npz"
    formats.write(tr, p, "dlrm-npz")
    return p


def test_fit_then_sample_dlrm_npz_is_a_drop_in(tmp_path, dlrm_npz, capsys):
    dist = tmp_path / "dist.json"
    assert main(["fit", str(dlrm_npz), "--from", "dlrm-npz", "-o", str(dist), "--quiet"]) == 0
    out = tmp_path / "syn.npz"
    assert main(["sample", str(dist), "-o", str(out), "--to", "dlrm-npz", "--seed", "3", "--quiet"]) == 0
    with np.load(dlrm_npz) as a, np.load(out) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert a[k].dtype == b[k].dtype, k
            assert a[k].shape == b[k].shape, k
    doc = json.loads(dist.read_text())
    assert doc["format"] == "tracegen-dist" and len(doc["tables"]) == 3


def test_workers_do_not_change_the_output(tmp_path):
    tr = Trace.from_dense_ids(np.column_stack([planted_trace(2_000, u=300, seed=s) for s in range(3)]))
    src = tmp_path / "t.npz"
    formats.write(tr, src, "npz")
    dist, dist2 = tmp_path / "d.json", tmp_path / "d2.json"
    assert main(["fit", str(src), "-o", str(dist), "-q"]) == 0
    assert main(["fit", str(src), "-o", str(dist2), "-q", "--workers", "2"]) == 0
    assert json.loads(dist.read_text())["tables"] == json.loads(dist2.read_text())["tables"]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["sample", str(dist), "-o", str(a), "-n", "5000", "--seed", "9", "--chunk", "777", "-q"]) == 0
    assert main(["sample", str(dist), "-o", str(b), "-n", "5000", "--seed", "9", "--workers", "2", "-q"]) == 0
    ta, tb = formats.read(a), formats.read(b)
    assert ta.n_samples == 5000 and ta.equals(tb)


def test_fit_tables_and_min_count(tmp_path, dlrm_npz):
    dist = tmp_path / "d.json"
    assert (
        main(
            [
                "fit",
                str(dlrm_npz),
                "--from",
                "dlrm-npz",
                "-o",
                str(dist),
                "--tables",
                "C1",
                "2",
                "--min-count",
                "20",
                "-q",
            ]
        )
        == 0
    )
    doc = json.loads(dist.read_text())
    assert [t["name"] for t in doc["tables"]] == ["C1", "C3"] and doc["privacy"]["min_count"] == 20


def test_fit_dp_from_cli(tmp_path, dlrm_npz):
    dist = tmp_path / "d.json"
    assert (
        main(
            [
                "fit",
                str(dlrm_npz),
                "--from",
                "dlrm-npz",
                "-o",
                str(dist),
                "--epsilon",
                "2",
                "--delta",
                "1e-6",
                "-q",
            ]
        )
        == 0
    )
    assert json.loads(dist.read_text())["privacy"]["dp"]["epsilon_spent"] == 2.0


def test_errors_are_one_line(tmp_path, dlrm_npz, capsys):
    dist = tmp_path / "d.json"
    assert main(["fit", str(tmp_path / "missing.npz"), "-o", str(dist)]) == 2
    assert "no such file" in capsys.readouterr().err
    dist.write_text("{}")
    assert main(["fit", str(dlrm_npz), "-o", str(dist)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert dist.read_text() == "{}"  # nothing overwritten
    assert main(["sample", str(dist), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "format: missing field" in err and err.count("\n") == 1
    bad = {"format": "tracegen-dist", "schema_version": 7, "tables": []}
    dist.write_text(json.dumps(bad))
    assert main(["sample", str(dist), "-o", str(tmp_path / "o.npz")]) == 2
    assert "newer tracegen" in capsys.readouterr().err
    assert main(["fit", str(dlrm_npz), "-o", str(tmp_path / "x.json"), "--delta", "0.1"]) == 2
    assert "--delta needs --epsilon" in capsys.readouterr().err
    assert main(["fit", str(dlrm_npz), "-o", str(tmp_path / "x.json"), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    assert not (tmp_path / "o.npz").exists()


def test_fit_and_sample_messages_use_separators_and_notes(tmp_path, dlrm_npz, capsys):
    dist = tmp_path / "dist.json"
    assert main(["fit", str(dlrm_npz), "--from", "dlrm-npz", "-o", str(dist), "--tables", "C1"]) == 0
    err = capsys.readouterr().err
    assert "fitted 1 table (3,000 samples, 3,000 accesses, " in err, err
    out = tmp_path / "syn.npy"
    assert main(["sample", str(dist), "-o", str(out), "-n", "12000", "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "sampled 12,000 samples x 1 table in " in err, err
    assert "note: npy keeps ids only: dense features and labels are not written" in err, err
    assert np.load(out).shape == (12000,)
    assert main(["sample", str(dist), "-o", str(tmp_path / "q.npy"), "-n", "10", "-q"]) == 0
    assert capsys.readouterr().err == ""
