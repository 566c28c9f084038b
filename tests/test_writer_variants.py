"""Files as the third-party tools write them, in the variants the shared data does not cover.

Each helper writes a file the way its tool does (read from the tool's source, not copied): the DLRM
reference's ``write_trace_to_file`` / ``write_dist_to_file`` under NumPy 2 (``np.uint64(5)`` reprs), its
processed, per-day and reordered npz files and MLPerf splits, Kaggle's unlabelled ``test.txt``, FBGEMM's
request files (bare index tensors, extra weights, no lengths), libCacheSim's oracleGeneral with size-0
requests, its zstd-compressed and other oracle layouts, and Twitter-style header-less csv traces.
Every test checks the values read (ids, tables, cardinalities, labels), not only that nothing crashed.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from tests.test_format_edges import _one_line_error
from tracegen import TracegenError, formats
from tracegen.cli import main
from tracegen.formats import dlrm
from tracegen.formats.cache import OG_DTYPE, next_access_vtime

# ---- DLRM reference: trace and dist logs as str(list(...))[1:-1] writes them -----------------------------

TRACE = [1, 2, 3, 4, 5, 3, 4, 1, 1, 6, 3]  # the reference's input/trace.log


def _reference_text(values) -> str:
    """What ``write_trace_to_file`` writes: ``str(list(trace))`` without the brackets, no newline."""
    s = str(list(values))
    return s[1 : len(s) - 1]


def test_dlrm_trace_written_under_numpy2_reads_its_ids(tmp_path):
    # trace_generate_lru yields np.uint64 scalars; NumPy >= 2 prints them as np.uint64(5) inside a list
    p = tmp_path / "trace_synthetic.log"
    p.write_text(_reference_text([np.uint64(x) for x in TRACE]))
    assert p.read_text().startswith("np.uint64(1), np.uint64(2)")
    assert formats.detect(p) == "dlrm-trace"
    t = formats.read(p)
    assert t.tables[0].values.tolist() == TRACE and t.tables[0].cardinality == 7


def test_dlrm_trace_numpy1_text_without_final_newline(tmp_path):
    p = tmp_path / "trace.log"
    p.write_text(_reference_text(TRACE))
    assert not p.read_bytes().endswith(b"\n")
    assert formats.read(p).tables[0].values.tolist() == TRACE


@pytest.mark.parametrize("name", ["trace.bin", "trace_synthetic.log"])
def test_dlrm_trace_binary_as_the_reference_writes_it(tmp_path, name):
    # --trace-file-binary-type writes raw uint64 under the same default names (./input/trace_synthetic.log)
    p = tmp_path / name
    np.array([np.uint64(x) for x in TRACE]).astype(np.uint64).tofile(p)
    assert formats.detect(p) == "dlrm-trace-bin"
    assert formats.read(p).tables[0].values.tolist() == TRACE


def test_dlrm_dist_written_under_numpy2_reads(tmp_path, capsys):
    # trace_profile keeps np.uint64 line accesses; list_sd are Python ints; the cdf sums Python floats
    p = tmp_path / "dist_emb_0.log"
    uniq = [np.uint64(x) for x in (1, 2, 3, 4, 5, 6)]
    depth = [0, 1, 3, 4, 5]
    cdf, acc = [], 0.0
    for k in (6, 1, 2, 1, 1):
        acc += k / 11.0
        cdf.append(acc)
    with open(p, "w") as f:
        for row in (uniq, depth, cdf):
            f.write(_reference_text(row) + "\n")
    assert "np.uint64(6)" in p.read_text()
    d = dlrm.read_dist(p)
    assert d.unique_ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert d.sd.tolist() == [-1, 0, 2, 3, 4]
    np.testing.assert_allclose(d.cdf, np.cumsum([6, 1, 2, 1, 1]) / 11)
    assert main(["inspect", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unique_ids"] == 6
    q = tmp_path / "dist_emb_1.log"  # a cdf summed in NumPy prints np.float64(...) too
    q.write_text("\n".join(_reference_text(r) for r in (uniq, depth, [np.float64(c) for c in cdf])) + "\n")
    assert "np.float64(" in q.read_text()
    np.testing.assert_array_equal(dlrm.read_dist(q).cdf, d.cdf)


# ---- DLRM reference: processed npz files ----------------------------------------------------------------


def _criteo_arrays(b=24, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.array([3 + j % 5 for j in range(26)], np.int32)
    x_cat = np.stack([rng.integers(0, c, b) for c in counts], axis=1)
    x_int = rng.integers(0, 90, (b, 13)).astype(np.int32)
    y = rng.integers(0, 2, b).astype(np.int32)
    counts = (x_cat.max(axis=0) + 1).astype(np.int32)
    return x_cat, x_int, y, counts


def _check(t, x_cat, x_int, y, counts):
    assert t.n_tables == 26 and t.n_samples == x_cat.shape[0]
    np.testing.assert_array_equal(t.to_dense_ids(), x_cat)
    np.testing.assert_array_equal(t.dense, x_int.astype(np.float32))
    np.testing.assert_array_equal(t.labels, y.astype(np.float32))
    assert t.cardinalities == counts.tolist()


def test_dlrm_day_files_and_fea_count_as_get_criteo_ad_data_writes_them(tmp_path):
    # processCriteoAdData: float64 X_cat (from np.zeros), int32 X_int and y, savez_compressed, no counts;
    # the counts are <d_file>_fea_count.npz (train_fea_count.npz for Kaggle, day_fea_count.npz for Terabyte)
    x_cat, x_int, y, counts = _criteo_arrays()
    for base in ("train_day", "day"):
        np.savez_compressed(tmp_path / f"{base}_1_processed.npz", X_cat=x_cat.astype(np.float64), X_int=x_int, y=y)
    np.savez_compressed(tmp_path / "train_fea_count.npz", counts=counts + 5)
    np.savez_compressed(tmp_path / "day_fea_count.npz", counts=counts + 9)
    _check(formats.read(tmp_path / "train_day_1_processed.npz"), x_cat, x_int, y, counts + 5)
    _check(formats.read(tmp_path / "day_1_processed.npz"), x_cat, x_int, y, counts + 9)
    # the memory-map path's reordered files hold everything as float64 (X_int and y too)
    f = tmp_path / "day_2_reordered.npz"
    np.savez_compressed(f, X_cat=x_cat.astype(np.float64), X_int=x_int.astype(np.float64), y=y.astype(np.float64))
    _check(formats.read(f), x_cat, x_int, y, counts + 9)
    # the final concatenation: counts inside; int32 X_cat and float32 y with plain np.savez read the same
    f = tmp_path / "kaggleAdDisplayChallenge_processed.npz"
    np.savez(f, X_cat=x_cat.astype(np.int32), X_int=x_int, y=y.astype(np.float32), counts=counts)
    _check(formats.read(f), x_cat, x_int, y, counts)


def test_dlrm_intermediate_day_file_names_its_processed_twin(tmp_path, capsys):
    # getCriteoAdData's first pass: <base>_day_{i}.npz with X_cat_t (26 x B raw hashed categories)
    x_cat, x_int, y, _ = _criteo_arrays()
    p = tmp_path / "train_day_0.npz"
    np.savez_compressed(p, X_int=x_int, X_cat_t=x_cat.T.astype(np.int32), y=y)
    for call in (lambda: formats.detect(p), lambda: formats.read(p, "dlrm-npz")):
        with pytest.raises(TracegenError, match="intermediate day file.*train_day_0_processed.npz"):
            call()
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "X_cat_t", "train_day_0_processed.npz")


def test_dlrm_2019_kaggle_layout(tmp_path, capsys):
    # the 2019 getKaggleCriteoAdData: kaggle_day_{i}.npz with hex-string X_cat (U8), then
    # kaggle_day_{i}_processed.npz whose X_cat was a torch.zeros tensor (float32), counts in kaggle_counts.npz
    x_cat, x_int, y, counts = _criteo_arrays()
    raw = np.array([[f"{v * 0x1F3D5B79 % 2**32:08x}" for v in row] for row in x_cat], dtype="U8")
    np.savez_compressed(tmp_path / "kaggle_day_1.npz", X_int=x_int, X_cat=raw, y=y)
    np.savez_compressed(tmp_path / "kaggle_day_1_processed.npz", X_cat=x_cat.astype(np.float32), X_int=x_int, y=y)
    np.savez_compressed(tmp_path / "kaggle_counts.npz", counts=(counts + 2).tolist())
    _check(formats.read(tmp_path / "kaggle_day_1_processed.npz"), x_cat, x_int, y, counts + 2)
    p = tmp_path / "kaggle_day_1.npz"
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "intermediate day file", "kaggle_day_1_processed.npz")


@pytest.mark.parametrize("name", ["terabyte_processed_train.bin", "train_data.bin", "x_val.bin"])
def test_mlperf_splits_take_sizes_from_day_fea_count(tmp_path, name):
    # make_criteo_data_and_loaders: <processed>_train.bin with counts_file = <raw data file>_fea_count.npz
    # (day_fea_count.npz for Terabyte's day_0..day_23); data_loader_terabyte writes train_data.bin
    x_cat, x_int, y, counts = _criteo_arrays(b=12)
    rec = np.concatenate([y[:, None], x_int, x_cat], axis=1).astype(np.int32)
    rec.tofile(tmp_path / name)
    np.savez_compressed(tmp_path / "day_fea_count.npz", counts=counts * 10)
    assert formats.detect(tmp_path / name) == "mlperf-bin"
    _check(formats.read(tmp_path / name), x_cat, x_int, y, counts * 10)


# ---- raw Criteo text: Kaggle's test.txt has no label ----------------------------------------------------


def _criteo_rows(n=30, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ints = ["" if rng.random() < 0.2 else str(int(rng.integers(-2, 500))) for _ in range(13)]
        cats = ["" if rng.random() < 0.1 else f"{int(rng.integers(0, 6)) * 0x1F3D5B79 % 2**32:08x}" for _ in range(26)]
        rows.append((str(i % 3 == 0 and 1 or 0), ints, cats))
    return rows


def _criteo_text(rows, labelled=True, sep="\t", newline="\n") -> str:
    return "".join(sep.join(([lab] if labelled else []) + ints + cats) + newline for lab, ints, cats in rows)


def test_criteo_test_txt_without_labels(tmp_path, capsys):
    rows = _criteo_rows()
    (tmp_path / "train.txt").write_text(_criteo_text(rows))
    (tmp_path / "test.txt").write_text(_criteo_text(rows, labelled=False))
    with gzip.open(tmp_path / "test.txt.gz", "wt") as g:
        g.write(_criteo_text(rows, labelled=False, newline="\r\n") + "\n")
    ref = formats.read(tmp_path / "train.txt")
    assert ref.labels.tolist() == [float(r[0]) for r in rows]
    for name in ("test.txt", "test.txt.gz"):
        p = tmp_path / name
        assert formats.detect(p) == "criteo-tsv"
        t = formats.read(p)
        assert t.labels is None
        np.testing.assert_array_equal(t.to_dense_ids(), ref.to_dense_ids())
        np.testing.assert_array_equal(t.dense, ref.dense)
        assert t.cardinalities == ref.cardinalities
    from tracegen.formats.criteo import CriteoParser

    parser = CriteoParser(tmp_path / "test.txt", block_bytes=700)  # lines cut across many blocks
    ids = np.concatenate([c[2] for c in parser.chunks()])
    assert parser.labelled is False and np.array_equal(ids, ref.to_dense_ids())
    assert main(["inspect", str(tmp_path / "test.txt"), "--json", "-q"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["samples"] == 30 and s["labels"] is False and s["positive_rate"] is None
    # streamed conversion: no labels in npz; the reference's npz needs y, so it gets zeros
    assert main(["convert", str(tmp_path / "test.txt"), str(tmp_path / "t.npz"), "-q"]) == 0
    out = formats.read(tmp_path / "t.npz")
    assert out.labels is None and np.array_equal(out.to_dense_ids(), ref.to_dense_ids())
    assert main(["convert", str(tmp_path / "test.txt"), str(tmp_path / "d.npz"), "--to", "dlrm-npz", "-q"]) == 0
    with np.load(tmp_path / "d.npz") as z:
        assert z["y"].tolist() == [0] * 30 and z["counts"].tolist() == ref.cardinalities


def test_criteo_39_fields_under_another_name_needs_from(tmp_path, capsys):
    rows = _criteo_rows(8)
    p = tmp_path / "part_00.tsv"
    p.write_text(_criteo_text(rows, labelled=False))
    assert main(["inspect", str(p)]) == 2  # could be train lines missing a field: refuse, and say how
    _one_line_error(capsys, p, "39 fields", "--from criteo-tsv")
    t = formats.read(p, "criteo-tsv")
    assert t.labels is None and t.n_samples == 8


def test_criteo_unlabelled_then_labelled_line_is_named(tmp_path, capsys):
    rows = _criteo_rows(4)
    p = tmp_path / "test.txt"
    p.write_text(_criteo_text(rows[:2], labelled=False) + _criteo_text(rows[2:]))
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "line 3", "expected 39 fields", "found 40")


def test_criteo_csv_without_label_column(tmp_path):
    rows = _criteo_rows(10)
    header = ",".join([f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)])
    p = tmp_path / "criteo_test.csv"
    p.write_text(header + "\n" + _criteo_text(rows, labelled=False, sep=","))
    (tmp_path / "train.csv").write_text("label," + header + "\n" + _criteo_text(rows, sep=","))
    assert formats.detect(p) == "criteo-csv"
    t, ref = formats.read(p), formats.read(tmp_path / "train.csv")
    assert t.labels is None and ref.labels is not None
    np.testing.assert_array_equal(t.to_dense_ids(), ref.to_dense_ids())


def _with_index(header: list[str], text: str, start: int = 0) -> str:
    """A CSV whose every row starts with an index column: ``header`` names all columns."""
    body = "".join(f"{start + k},{line}\n" for k, line in enumerate(text.splitlines()))
    return ",".join(header) + "\n" + body


def test_criteo_csv_written_by_pandas_with_its_index_column(tmp_path):
    # DataFrame.to_csv keeps the index unless index=False: an unnamed first column
    rows = _criteo_rows(12)
    names = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    (tmp_path / "plain.csv").write_text(",".join(["label", *names]) + "\n" + _criteo_text(rows, sep=","))
    ref = formats.read(tmp_path / "plain.csv")
    p = tmp_path / "indexed.csv"
    p.write_text(_with_index(["", "label", *names], _criteo_text(rows, sep=",")))
    assert formats.detect(p) == "criteo-csv"
    t = formats.read(p)
    np.testing.assert_array_equal(t.to_dense_ids(), ref.to_dense_ids())
    np.testing.assert_array_equal(t.dense, ref.dense)
    np.testing.assert_array_equal(t.labels, ref.labels)
    q = tmp_path / "indexed_test.csv"
    q.write_text(_with_index(["Unnamed: 0", *names], _criteo_text(rows, False, sep=",")))
    u = formats.read(q)
    assert u.labels is None and np.array_equal(u.to_dense_ids(), ref.to_dense_ids())
    c = tmp_path / "clicked.csv"  # a label column under another name is still the label
    c.write_text(",".join(["clicked", *names]) + "\n" + _criteo_text(rows, sep=","))
    np.testing.assert_array_equal(formats.read(c).labels, ref.labels)


def test_criteo_kaggle_competition_csvs_with_id_column(tmp_path):
    # the Kaggle competition's train.csv is Id,Label,I1..C26 and its test.csv Id,I1..C26
    rows = _criteo_rows(9)
    names = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    tr, te = tmp_path / "train.csv", tmp_path / "test.csv"
    tr.write_text(_with_index(["Id", "Label", *names], _criteo_text(rows, sep=","), 10000000))
    te.write_text(_with_index(["Id", *names], _criteo_text(rows, False, sep=","), 60000000))
    a, b = formats.read(tr), formats.read(te)
    assert formats.detect(tr) == formats.detect(te) == "criteo-csv"
    assert a.labels.tolist() == [float(r[0]) for r in rows] and b.labels is None
    np.testing.assert_array_equal(a.to_dense_ids(), b.to_dense_ids())
    assert a.dense[:, 0].tolist() == [max(0, int(r[1][0] or 0)) for r in rows]


# ---- FBGEMM / dlrm_datasets request files ------------------------------------------------------------------


def _requests(t=3, b=4, seed=2):
    import torch

    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 4, (t, b))
    offsets = np.zeros(t * b + 1, np.int64)
    np.cumsum(lengths.ravel(), out=offsets[1:])
    indices = rng.integers(0, 40, int(offsets[-1]))
    return torch.from_numpy(indices), torch.from_numpy(offsets), torch.from_numpy(lengths)


def _same_tables(t, indices, lengths):
    assert t.n_tables == lengths.shape[0] and t.n_samples == lengths.shape[1]
    for j, tab in enumerate(t.tables):
        assert tab.lengths.tolist() == lengths[j].tolist()
    assert np.concatenate([tab.values for tab in t.tables]).tolist() == indices.tolist()


def test_tbe_bare_index_tensor_as_fbgemm_eeg_cli_saves_it(tmp_path):
    # fbgemm_gpu.tbe.bench.eeg_cli generate: torch.save(indices, output); its estimate reads it back
    import torch

    ids = torch.tensor([5, 1, 5, 9, 1, 5], dtype=torch.int32)
    p = tmp_path / "generated_indices.pt"
    torch.save(ids, p)
    t = formats.read(p)
    assert t.n_tables == 1 and t.tables[0].values.tolist() == [5, 1, 5, 9, 1, 5]
    assert t.tables[0].cardinality == 10 and t.is_one_hot


def test_tbe_extra_items_after_lengths_are_ignored(tmp_path):
    # generate_requests_from_data_file: indices, offsets, *rest = torch.load(...); weights may follow
    import torch

    i, o, ln = _requests()
    p = tmp_path / "weighted.pt"
    torch.save((i.int(), o, ln.int(), torch.rand(i.shape[0])), p)
    _same_tables(formats.read(p), i, ln)


def test_tbe_offsets_without_the_last_entry(tmp_path):
    # nn.EmbeddingBag's default include_last_offset=False: T * B bag starts, no final end
    import torch

    i, o, ln = _requests()
    p = tmp_path / "starts.pt"
    torch.save((i, o[:-1], ln), p)
    _same_tables(formats.read(p), i, ln)


def test_tbe_without_lengths_needs_the_table_count(tmp_path, capsys):
    import torch

    i, o, ln = _requests()
    for k, obj in enumerate([(i, o), (i, o, torch.rand(i.shape[0])), (i, o, ln.reshape(-1))]):
        p = tmp_path / f"r{k}.pt"
        torch.save(obj, p)
        assert main(["inspect", str(p)]) == 2
        _one_line_error(capsys, p, "lengths", "table", "cardinalities=")
        _same_tables(formats.read(p, cardinalities=[40, 40, 40]), i, ln)
        t = formats.read(p, names=["a", "b", "c"])
        assert t.names == ["a", "b", "c"] and t.n_samples == 4
    with pytest.raises(TracegenError, match="do not split into 5 tables"):
        formats.read(tmp_path / "r0.pt", cardinalities=[40] * 5)
    torch.save((i, o, ln), tmp_path / "full.pt")
    with pytest.raises(TracegenError, match="2 names or cardinalities given for the file's 3 tables"):
        formats.read(tmp_path / "full.pt", names=["a", "b"])


def test_tbe_dlrm_datasets_layout_int32_and_gzip(tmp_path):
    import torch

    i, o, ln = _requests(t=4, b=3)
    p = tmp_path / "fbgemm_t4_bs3.pt"
    torch.save((i.int(), o.int(), ln.int()), p, _use_new_zipfile_serialization=False)
    with open(p, "rb") as f, gzip.open(tmp_path / "fbgemm_t4_bs3.pt.gz", "wb") as g:
        g.write(f.read())
    for q in (p, tmp_path / "fbgemm_t4_bs3.pt.gz"):
        t = formats.read(q)
        _same_tables(t, i, ln)
        assert t.cardinalities == [int(tab.values.max()) + 1 for tab in t.tables]


# ---- libCacheSim ---------------------------------------------------------------------------------------------


def _og(path, ids, sizes, never=-1):
    ids = np.asarray(ids, np.uint64)
    rec = np.zeros(ids.shape[0], OG_DTYPE)
    rec["time"] = np.arange(ids.shape[0])
    rec["obj_id"] = ids
    rec["obj_size"] = sizes
    nxt = next_access_vtime(ids)
    rec["next_access_vtime"] = np.where(nxt < 0, never, nxt)
    rec.tofile(path)


OG_IDS = [5, 7, 5, 9, 7, 5, 2**40, 11]
OG_SIZES = [4096, 4096, 4096, 0, 4096, 4096, 512, 0]


@pytest.mark.parametrize("never", [-1, np.iinfo(np.int64).max])
def test_oracle_general_size_zero_requests_are_skipped_like_libcachesim(tmp_path, never):
    p = tmp_path / "w.oracleGeneral.bin"
    _og(p, OG_IDS, OG_SIZES, never)
    kept = [i for i, s in zip(OG_IDS, OG_SIZES) if s]
    assert formats.read(p).tables[0].values.tolist() == kept
    lcs = pytest.importorskip("libcachesim")
    reader = lcs.TraceReader(str(p), lcs.TraceType.ORACLE_GENERAL_TRACE)
    assert [req.obj_id for req in reader] == kept


def test_oracle_general_without_sizes_is_read_whole(tmp_path):
    p = tmp_path / "nosize.oracleGeneral.bin"
    _og(p, OG_IDS, 0)
    assert formats.read(p).tables[0].values.tolist() == OG_IDS


def test_zstd_compressed_trace_is_refused_not_misread(tmp_path, capsys):
    # libCacheSim ships *.oracleGeneral.zst; 48 bytes would pass the 24-byte size check
    p = tmp_path / "w.oracleGeneral.bin.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(44)))
    for call in (lambda: formats.detect(p), lambda: formats.read(p, "oracle-general")):
        with pytest.raises(TracegenError, match="zstd-compressed"):
            call()
    assert main(["inspect", str(p), "--from", "oracle-general"]) == 2
    _one_line_error(capsys, p, "zstd -d")
    q = tmp_path / "day_0.zst"  # raw Criteo text compressed the same way, streamed by inspect and convert
    q.write_bytes(p.read_bytes())
    assert main(["inspect", str(q), "--from", "criteo-tsv"]) == 2
    _one_line_error(capsys, q, "zstd-compressed")
    assert main(["convert", str(q), str(tmp_path / "o.npz"), "--from", "criteo-tsv"]) == 2
    _one_line_error(capsys, q, "zstd-compressed")
    assert not (tmp_path / "o.npz").exists()


def test_other_libcachesim_oracle_layouts_are_refused_by_name(tmp_path, capsys):
    p = tmp_path / "cluster52.oracleSysTwrNS.bin"
    p.write_bytes(bytes(34 * 12))  # 34-byte records: would pass as raw uint64 ids
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "oracleSysTwrNS", "oracleGeneral")


def test_headerless_csv_with_string_keys_keeps_its_first_row(tmp_path, capsys):
    # Twitter's cache traces: timestamp,anonymized key,key size,value size,client id,operation,TTL; no header
    p = tmp_path / "cluster52.csv"
    p.write_text("0,q:abc,10,100,1,get,0\n1,q:def,10,100,1,get,0\n2,q:abc,10,100,1,set,0\n")
    t = formats.read(p, id_col=1, densify=True)
    assert t.tables[0].values.tolist() == [0, 1, 0]
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "7 columns and no header", "--id-col")
    h = tmp_path / "trace.csv"  # libCacheSim's data/trace.csv: a header of names is still a header
    h.write_text("version,time,op,size,lbn\n1,33898,2a,512,42932745\n1,33898,2a,512,42932746\n")
    assert formats.read(h).tables[0].values.tolist() == [42932745, 42932746]


def test_tab_separated_csv_trace_with_a_header(tmp_path):
    # libCacheSim's csv reader takes delimiter=\t; quoted fields too
    p = tmp_path / "w.csv"
    p.write_text('time\t"obj_id"\tobj_size\n1\t5\t10\n2\t"6"\t10\n3\t5\t10\n')
    assert formats.detect(p) == "lcs-csv"
    assert formats.read(p).tables[0].values.tolist() == [5, 6, 5]
    q = tmp_path / "w.tsv"
    q.write_text("timestamp\tkey\tsize\n1\t50\t1\n2\t60\t1\n")
    assert formats.detect(q) == "lcs-csv"
    assert formats.read(q, id_col="key").tables[0].values.tolist() == [50, 60]


def _lcs(path, ver, ids, sizes):
    """An lcs trace laid out as libCacheSim's lcs.h says: 8 KiB header (magic, version, ..., magic), records."""
    rec = {1: 24, 2: 28, 3: 36, 8: 100}[ver]
    head = bytearray(8192)
    head[:8] = head[-8:] = (0x123456789ABCDEF0).to_bytes(8, "little")
    head[8:16] = ver.to_bytes(8, "little")
    body = bytearray()
    for k, (i, s) in enumerate(zip(ids, sizes)):
        r = bytearray(rec)
        r[:4] = k.to_bytes(4, "little")
        r[4:12] = int(i).to_bytes(8, "little")
        r[12 : 16 if ver <= 2 else 20] = int(s).to_bytes(4 if ver <= 2 else 8, "little")
        r[-8:] = (-1).to_bytes(8, "little", signed=True)
        body += r
    path.write_bytes(bytes(head) + bytes(body))


@pytest.mark.parametrize("ver", [1, 2, 3, 8])
def test_lcs_trace_layouts(tmp_path, ver):
    p = tmp_path / f"w.v{ver}.lcs"
    _lcs(p, ver, OG_IDS, OG_SIZES)
    assert formats.detect(p) == "oracle-general"
    assert formats.read(p).tables[0].values.tolist() == [i for i, s in zip(OG_IDS, OG_SIZES) if s]


def test_lcs_bad_header_and_version_are_named(tmp_path, capsys):
    p = tmp_path / "bad.lcs"
    _lcs(p, 1, OG_IDS, OG_SIZES)
    data = bytearray(p.read_bytes())
    p.write_bytes(bytes(data[:4000]))
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "lcs header", "truncated")
    data[8:16] = (9).to_bytes(8, "little")
    p.write_bytes(bytes(data))
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "lcs version 9")


@pytest.mark.parametrize("ver", [1, 2, 3, 8])
def test_libcachesim_converters_output_reads_like_libcachesim(tmp_path, ver):
    # libCacheSim's own writers (traceConv): Util.convert_to_lcs and convert_to_oracleGeneral
    lcs = pytest.importorskip("libcachesim")
    src = tmp_path / "src.oracleGeneral.bin"
    _og(src, OG_IDS, OG_SIZES)
    out = tmp_path / f"out.v{ver}.lcs"

    def reader():
        return lcs.TraceReader(str(src), lcs.TraceType.ORACLE_GENERAL_TRACE)._reader

    lcs.Util.convert_to_lcs(reader(), str(out), lcs_ver=ver)
    theirs = [r.obj_id for r in lcs.TraceReader(str(out), lcs.TraceType.LCS_TRACE)]
    assert formats.read(out).tables[0].values.tolist() == theirs == [i for i, s in zip(OG_IDS, OG_SIZES) if s]
    og = tmp_path / "out.oracleGeneral.bin"
    lcs.Util.convert_to_oracleGeneral(reader(), str(og))  # keeps the size-0 record; readers skip it
    assert formats.read(og).tables[0].values.tolist() == theirs


def test_plain_text_trace_with_string_keys(tmp_path, capsys):
    # libCacheSim's txt traces: one key per line, numeric or not (obj_id_is_num=false hashes them)
    p = tmp_path / "keys.txt"
    p.write_text("abc\ndef\nabc\n12\n")
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "line 1", "--densify")
    assert formats.read(p, densify=True).tables[0].values.tolist() == [0, 1, 0, 2]
    q = tmp_path / "trace.txt"  # libCacheSim's data/trace.txt: numeric keys kept raw
    q.write_text("42932745\n42932746\n42932745\n")
    assert formats.read(q).tables[0].values.tolist() == [42932745, 42932746, 42932745]


def test_criteo_dac_tar_archive_says_extract_it(tmp_path, capsys):
    # Criteo ships Kaggle's train.txt and test.txt as dac.tar.gz
    import io
    import tarfile

    text = _criteo_text(_criteo_rows(3)).encode()
    for name, mode in (("dac.tar.gz", "w:gz"), ("dac.tar", "w")):
        p = tmp_path / name
        with tarfile.open(p, mode) as tar:
            info = tarfile.TarInfo("train.txt")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        assert main(["inspect", str(p)]) == 2
        _one_line_error(capsys, p, "tar archive", "extract")


def test_npy_content_under_another_extension_is_detected(tmp_path):
    p = tmp_path / "ids.dat"
    with open(p, "wb") as f:
        np.save(f, np.array([3, 1, 3]))
    assert formats.detect(p) == "npy"
    assert formats.read(p).tables[0].values.tolist() == [3, 1, 3]


@pytest.mark.parametrize(
    ("name", "member", "what"),
    [
        ("day_fea_count.npz", "counts", "table sizes"),
        ("train_day_count.npz", "total_per_file", "samples per day"),
        ("train_fea_dict_3.npz", "unique", "category dictionary"),
    ],
)
def test_dlrm_side_files_are_named(tmp_path, capsys, name, member, what):
    # getCriteoAdData writes these beside the data: *_fea_count, *_day_count, *_fea_dict_{j}
    p = tmp_path / name
    np.savez_compressed(p, **{member: np.arange(26, dtype=np.int32)})
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, what, "not a trace")
