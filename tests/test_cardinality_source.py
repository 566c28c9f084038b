"""Where a table's cardinality came from, and what the non-private fit releases.

A file that declares its table sizes (the DLRM reference's ``counts``, a native npz, a TBE file read with
``cardinalities``) gives public schema. A raw-id file that says nothing (txt, npy, csv and cache traces,
DLRM trace logs, a TBE file or a DLRM npz without sizes) makes the reader set ``max id + 1``: the largest
raw id, one sample's. Readers flag that (``Table.cardinality_from_data``) and ``fit`` releases the distinct
count there, unless the table is declared public (``public_cardinality`` / ``--public-cardinality``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tracegen import formats
from tracegen.cli import main
from tracegen.trace import Table, Trace
from tracegen.tracemodel import TraceModel

OUTLIER = 987_654_321


def _ids(n=3000, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.3, n) % 400).astype(np.int64) + 1000
    ids[17] = OUTLIER
    return ids


def _numbers(doc) -> set:
    out = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out.add(x)

    walk(doc)
    return out


def test_constructors_flag_a_cardinality_derived_from_the_ids():
    ids = _ids()
    assert Table.one_hot("a", ids).cardinality_from_data
    assert not Table.one_hot("a", ids, 10**9).cardinality_from_data
    assert Table.from_lengths("a", ids, np.ones(ids.size, np.int64)).cardinality_from_data
    x = np.stack([ids, ids % 7], axis=1)
    assert [t.cardinality_from_data for t in Trace.from_dense_ids(x).tables] == [True, True]
    assert [t.cardinality_from_data for t in Trace.from_dense_ids(x, [10**9, 7]).tables] == [False, False]
    tr = Trace.single(ids)
    assert tr.slice(10, 100).tables[0].cardinality_from_data
    assert tr.slice(10, 100).tables[0].cardinality == OUTLIER + 1
    assert formats.concat([tr.slice(0, 50), tr.slice(50, 90)]).tables[0].cardinality_from_data
    assert not formats.concat([tr.slice(0, 50)], cardinalities=[10**9]).tables[0].cardinality_from_data


def test_non_private_fit_releases_the_distinct_count_for_a_derived_cardinality():
    ids = _ids()
    tr = Trace.single(ids)
    assert tr.cardinalities == [OUTLIER + 1]
    doc = json.loads(json.dumps(TraceModel(calibrate=0).fit(tr).model_))
    distinct = int(np.unique(ids).size)
    assert doc["tables"][0]["cardinality"] == distinct
    assert doc["privacy"]["cardinality_from_distinct"] == ["t0"]
    assert not (_numbers(doc) & {OUTLIER, OUTLIER + 1})
    syn = TraceModel.from_spec(doc).sample(seed=1)
    syn.validate()
    assert syn.tables[0].cardinality == distinct and int(syn.tables[0].values.max()) < distinct


@pytest.mark.parametrize("declared", [True, ["t0"]])
def test_a_derived_cardinality_declared_public_is_released_as_it_is(declared):
    tr = Trace.single(_ids())
    doc = TraceModel(calibrate=0, public_cardinality=declared).fit(tr).model_
    assert doc["tables"][0]["cardinality"] == OUTLIER + 1
    assert doc["privacy"]["cardinality_from_distinct"] == []


def test_a_declared_size_is_kept_even_where_the_last_rows_are_unused():
    """A 5,000-row table that reads 400 rows keeps its 5,000 rows: the drop-in table sizes."""
    rng = np.random.default_rng(1)
    tr = Trace([Table.one_hot("C0", rng.integers(0, 400, 2000), 5000),
                 Table.one_hot("C1", rng.integers(0, 30, 2000) * 3)])
    doc = TraceModel(calibrate=0).fit(tr).model_
    assert [t["cardinality"] for t in doc["tables"]] == [5000, len(np.unique(tr.tables[1].values))]
    assert doc["privacy"]["cardinality_from_distinct"] == ["C1"]


def _write_raw(kind: str, ids: np.ndarray, path):
    if kind == "txt":
        path.write_text("\n".join(str(int(i)) for i in ids) + "\n")
    elif kind == "npy":
        np.save(path, ids)
    elif kind == "npy2":
        np.save(path, np.stack([ids, ids % 13], axis=1))
    elif kind == "oracle-general":
        rec = np.zeros(ids.size, dtype=[("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
        rec["t"], rec["id"], rec["size"], rec["next"] = np.arange(ids.size), ids, 4096, -1
        rec.tofile(path)
    elif kind == "dlrm-npz":
        x = np.stack([ids, ids % 13], axis=1)
        np.savez(path, X_int=np.zeros((ids.size, 13), np.float32), X_cat=x, y=np.zeros(ids.size, np.float32))
    elif kind == "tbe-pt":
        _save_tbe(ids, path)


def _save_tbe(ids: np.ndarray, path):
    """Meta's dlrm_datasets layout: (indices, offsets, lengths as a T x B tensor), one table, one id per bag."""
    import torch

    n = ids.size
    torch.save((torch.from_numpy(ids), torch.arange(n + 1, dtype=torch.int64), torch.ones((1, n), dtype=torch.int64)),
               path)


RAW = {"txt": "t.txt", "npy": "t.npy", "npy2": "t2.npy", "oracle-general": "t.oracleGeneral",
       "dlrm-npz": "d.npz", "tbe-pt": "t.pt"}


@pytest.mark.parametrize("kind", sorted(RAW))
def test_readers_of_files_without_table_sizes_flag_max_id_plus_one(tmp_path, kind):
    if kind == "tbe-pt":
        pytest.importorskip("torch")
    ids = _ids()
    path = tmp_path / RAW[kind]
    _write_raw(kind, ids, path)
    fmt = "oracle-general" if kind == "oracle-general" else None
    tr = formats.read(path, fmt)
    t = tr.tables[0]
    assert t.cardinality == OUTLIER + 1 and t.cardinality_from_data
    out = tmp_path / "dist.json"
    argv = ["fit", str(path), "-o", str(out), "--calibrate", "0", "-q"] + (["--from", fmt] if fmt else [])
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["tables"][0]["cardinality"] == int(np.unique(ids).size)
    assert not (_numbers(doc) & {OUTLIER, OUTLIER + 1})
    # declared public on the command line: released as the file gives it
    assert main(argv[:3] + [str(tmp_path / "pub.json")] + argv[4:] + ["--public-cardinality"]) == 0
    assert json.loads((tmp_path / "pub.json").read_text())["tables"][0]["cardinality"] == OUTLIER + 1


def test_files_that_declare_their_sizes_are_not_flagged(tmp_path):
    pytest.importorskip("torch")
    ids = _ids()
    x = np.stack([ids, ids % 13], axis=1)
    p = tmp_path / "d.npz"
    np.savez(p, X_int=np.zeros((ids.size, 13), np.float32), X_cat=x, y=np.zeros(ids.size, np.float32),
             counts=np.array([OUTLIER + 5, 20]))
    tr = formats.read(p)
    assert tr.cardinalities == [OUTLIER + 5, 20] and not any(t.cardinality_from_data for t in tr.tables)
    pt = tmp_path / "t.pt"
    _save_tbe(ids, pt)
    tr = formats.read(pt, cardinalities=[OUTLIER + 5])
    assert tr.cardinalities == [OUTLIER + 5] and not tr.tables[0].cardinality_from_data


def test_native_npz_keeps_where_the_cardinality_came_from(tmp_path):
    """``convert`` to the native npz must not launder ``max id + 1`` into a declared size."""
    src = tmp_path / "t.txt"
    _write_raw("txt", _ids(), src)
    npz = tmp_path / "t.npz"
    assert main(["convert", str(src), str(npz), "-q"]) == 0
    tr = formats.read(npz)
    assert tr.tables[0].cardinality == OUTLIER + 1 and tr.tables[0].cardinality_from_data
    declared = tmp_path / "declared.npz"
    formats.write(Trace.single(_ids(), cardinality=OUTLIER + 1), declared)
    assert not formats.read(declared).tables[0].cardinality_from_data
    out = tmp_path / "dist.json"
    assert main(["fit", str(npz), "-o", str(out), "--calibrate", "0", "-q"]) == 0
    assert not (_numbers(json.loads(out.read_text())) & {OUTLIER, OUTLIER + 1})


def test_workers_give_the_same_release(tmp_path):
    rng = np.random.default_rng(4)
    tr = Trace([Table.one_hot("A", rng.integers(0, 300, 4000) * 7),
                Table.one_hot("B", rng.integers(0, 50, 4000), 60)])
    one = TraceModel(calibrate=0).fit(tr).model_
    two = TraceModel(calibrate=0).fit(tr, workers=2).model_
    assert json.dumps(one) == json.dumps(two)
    assert [t["cardinality"] for t in one["tables"]] == [len(np.unique(tr.tables[0].values)), 60]


def test_a_distinct_count_cardinality_grows_with_a_longer_sample_and_a_declared_size_does_not(tmp_path):
    """Capped at the fitted distinct count, a sample 3x longer than the fit stopped making ids once it
    had made that many (footprint flat at the end); a declared table size stays the cap."""
    rng = np.random.default_rng(5)
    n = 30_000
    derived = Table.one_hot("D", rng.integers(0, 20_000, n) * 11)  # max id + 1 = 219,989; ~15k distinct
    declared = Table.one_hot("S", rng.integers(0, 5_000, n), 6_000)
    m = TraceModel(calibrate=0).fit(Trace([derived, declared]))
    card_d, card_s = m.cardinalities
    assert card_d == len(np.unique(derived.values)) and card_s == 6_000
    assert m._sample_cardinalities(n) == [card_d, card_s] == m._sample_cardinalities(n // 2)
    long = m.sample(3 * n, seed=1)
    long.validate()
    d, s = long.tables
    assert d.cardinality == 3 * card_d and len(np.unique(d.values)) > 1.5 * card_d
    assert s.cardinality == 6_000 and int(s.values.max()) < 6_000
    out = tmp_path / "long.npz"
    m.sample_to(out, 3 * n, seed=1, workers=2)
    again = formats.read(out)
    assert again.cardinalities == [3 * card_d, 6_000]
    assert np.array_equal(again.tables[0].values, d.values) and np.array_equal(again.tables[1].values, s.values)
    out1 = tmp_path / "long1.npz"
    m.sample_to(out1, 3 * n, seed=1, workers=1, chunk_samples=7_000)
    assert formats.read(out1).cardinalities == [3 * card_d, 6_000]
    assert np.array_equal(formats.read(out1).tables[0].values, d.values)


def test_dp_noisy_cardinalities_grow_with_a_longer_sample_declared_ones_do_not():
    rng = np.random.default_rng(6)
    n = 20_000
    tr = Trace([Table.one_hot("A", rng.integers(0, 3_000, n)), Table.one_hot("B", rng.integers(0, 3_000, n), 4_000)])
    m = TraceModel(epsilon=4.0, calibrate=0, public_cardinality=["B"]).fit(tr)
    a, b = m.cardinalities
    assert b == 4_000
    assert m._sample_cardinalities(2 * n) == [2 * a, 4_000]


def test_fit_says_which_cardinalities_it_replaced(tmp_path, capsys):
    src = tmp_path / "t.txt"
    _write_raw("txt", _ids(), src)
    assert main(["fit", str(src), "-o", str(tmp_path / "a.json"), "--calibrate", "0"]) == 0
    err = capsys.readouterr().err
    assert "cardinality of t0: the distinct count, not the file's max id + 1" in err
    assert main(["fit", str(src), "-o", str(tmp_path / "b.json"), "--calibrate", "0", "--public-cardinality"]) == 0
    assert "cardinality of" not in capsys.readouterr().err
    assert main(["fit", str(src), "-o", str(tmp_path / "c.json"), "--calibrate", "0", "-q"]) == 0
    assert capsys.readouterr().err == ""
