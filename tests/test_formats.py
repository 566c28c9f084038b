"""Round trips per format, detection, streaming writers, and the real sample files (skipped when absent)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tests import naive
from tracegen import Table, Trace, formats
from tracegen.formats import cache, criteo, dlrm, native
from tracegen.formats._common import flatten_tables


def multi_hot_trace(rng, b: int = 60) -> Trace:
    t0 = Table.one_hot("C1", rng.integers(0, 7, b), 7)
    lens = rng.integers(0, 4, b)
    lens[0] = 0
    t1 = Table.from_lengths("C2", rng.integers(0, 100, int(lens.sum())), lens, 100)
    t2 = Table.one_hot("big", rng.integers(0, 2**40, b), 2**40)
    return Trace(
        [t0, t1, t2],
        dense=rng.integers(0, 50, (b, 13)).astype(np.float32),
        labels=rng.integers(0, 2, b).astype(np.float32),
    )


def one_hot_trace(rng, b: int = 60, t: int = 26) -> Trace:
    x = np.stack([rng.integers(0, 3 + 11 * j, b) for j in range(t)], axis=1)
    return Trace.from_dense_ids(
        x,
        [3 + 11 * j for j in range(t)],
        dense=rng.integers(0, 500, (b, 13)).astype(np.float32),
        labels=rng.integers(0, 2, b).astype(np.float32),
    )


def test_registry_names_are_stable():
    assert list(formats.FORMATS) == [
        "dlrm-npz",
        "npz",
        "criteo-tsv",
        "criteo-csv",
        "mlperf-bin",
        "dlrm-trace",
        "dlrm-trace-bin",
        "dlrm-dist",
        "tbe-pt",
        "oracle-general",
        "lcs-csv",
        "txt",
        "npy",
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_native_npz_round_trip(tmp_path, rng, compress):
    tr = multi_hot_trace(rng)
    p = tmp_path / "t.npz"
    formats.write(tr, p, compress=compress)
    assert formats.detect(p) == "npz"
    back = formats.read(p)
    assert back.equals(tr)
    assert back.names == ["C1", "C2", "big"] and back.cardinalities == [7, 100, 2**40]
    assert all(isinstance(t.values, np.memmap) for t in back.tables) == (not compress)
    assert back.tables[0].values.dtype == np.int64
    with zipfile.ZipFile(p) as z:
        meta = json.loads(z.read("metadata.json"))
    assert meta["format"] == "tracegen-trace" and meta["version"] == 1
    assert [t["cardinality"] for t in meta["tables"]] == [7, 100, 2**40]
    # an ordinary npz to numpy too
    with np.load(p) as z:
        np.testing.assert_array_equal(z["t1_offsets"], tr.tables[1].offsets)


def test_native_npz_is_lazy(tmp_path):
    n = 1_000_000
    tr = Trace.single(np.arange(n, dtype=np.int64) % 1000, cardinality=1000)
    p = tmp_path / "big.npz"
    formats.write(tr, p)
    back = formats.read(p)
    v = back.tables[0].values
    assert isinstance(v, np.memmap) and not v.flags.owndata
    assert int(v[123456]) == 456
    assert back.tables[0].offsets[-1] == n
    assert formats.read(p, validate=True).equals(tr)


def test_dlrm_npz_round_trip_and_reference_layout(tmp_path, rng):
    tr = one_hot_trace(rng)
    p = tmp_path / "kaggle_processed.npz"
    formats.write(tr, p, "dlrm-npz")
    assert formats.detect(p) == "dlrm-npz"
    assert formats.read(p).equals(tr)
    # what the reference's loader reads: plain np.load, integer arrays, counts, and the day count file
    with np.load(p) as z:
        assert sorted(z.files) == ["X_cat", "X_int", "counts", "y"]
        assert z["X_cat"].shape == (60, 26) and z["X_int"].dtype == np.int32 and z["y"].dtype == np.int32
        assert z["counts"].tolist() == tr.cardinalities
    with np.load(tmp_path / "kaggle_processed_day_count.npz") as z:
        assert z["total_per_file"].tolist() == [9, 9, 9, 9, 8, 8, 8]


def test_dlrm_npz_reads_reference_float64_and_day_files(tmp_path, rng):
    tr = one_hot_trace(rng, b=20)
    x_cat = tr.to_dense_ids().astype(np.float64)  # the reference's own output dtype
    x_int = tr.dense.astype(np.int32)
    np.savez_compressed(
        tmp_path / "train_day_3_processed.npz", X_cat=x_cat, X_int=x_int, y=tr.labels.astype(np.int32)
    )
    np.savez_compressed(tmp_path / "train_fea_count.npz", counts=np.array(tr.cardinalities, np.int32))
    back = formats.read(tmp_path / "train_day_3_processed.npz")
    assert back.equals(tr)


def test_mlperf_bin_round_trip(tmp_path, rng):
    tr = one_hot_trace(rng)
    p = tmp_path / "train_data.bin"
    formats.write(tr, p, "mlperf-bin")
    assert os.path.getsize(p) == 60 * 160
    raw = np.fromfile(p, dtype="<i4").reshape(-1, 40)
    np.testing.assert_array_equal(raw[:, 0], tr.labels)
    np.testing.assert_array_equal(raw[:, 14:], tr.to_dense_ids())
    assert formats.detect(p) == "mlperf-bin"
    assert formats.read(p).equals(tr)
    os.unlink(tmp_path / "train_data_fea_count.npz")  # without counts: max id + 1, still detected by layout
    assert formats.detect(p) == "mlperf-bin"
    back = formats.read(p, "mlperf-bin")
    assert back.to_dense_ids().tolist() == tr.to_dense_ids().tolist()


@pytest.mark.parametrize(
    "fmt, ext",
    [
        ("dlrm-trace", ".log"),
        ("dlrm-trace-bin", ".bin"),
        ("txt", ".txt"),
        ("npy", ".npy"),
        ("oracle-general", ".bin"),
        ("lcs-csv", ".csv"),
    ],
)
def test_single_table_round_trip(tmp_path, rng, fmt, ext):
    tr = multi_hot_trace(rng)
    p = tmp_path / ("t" + ext)
    with pytest.raises(formats.TracegenError, match="--table"):
        formats.write(tr, p, fmt)
    assert not p.exists()
    formats.write(tr, p, fmt, table="big")
    if fmt != "dlrm-trace-bin":  # raw uint64 ids are also valid oracleGeneral-sized files sometimes
        assert formats.detect(p) == fmt
    back = formats.read(p, fmt)
    np.testing.assert_array_equal(back.tables[0].values, tr.table("big").values)
    assert back.cardinalities == [int(tr.table("big").values.max()) + 1]
    dense = formats.read(p, fmt, densify=True)
    np.testing.assert_array_equal(dense.tables[0].values, naive.first_appearance(tr.table("big").values))


def test_flatten_all_tables(rng):
    tr = multi_hot_trace(rng)
    flat = flatten_tables(Trace(tr.tables[:2]))
    expect = []
    for b in range(tr.n_samples):
        expect += tr.tables[0].values[tr.tables[0].offsets[b] : tr.tables[0].offsets[b + 1]].tolist()
        expect += (tr.tables[1].values[tr.tables[1].offsets[b] : tr.tables[1].offsets[b + 1]] + 7).tolist()
    assert flat.values.tolist() == expect and flat.cardinality == 107
    assert flat.lengths.tolist() == (1 + tr.tables[1].lengths).tolist()


def test_dlrm_trace_text_layout(tmp_path):
    p = tmp_path / "trace.log"
    formats.write(Trace.single(np.array([1, 2, 3, 2])), p, "dlrm-trace")
    assert p.read_text() == "1, 2, 3, 2\n"
    p2 = tmp_path / "trace.bin"
    formats.write(Trace.single(np.array([1, 2, 3, 2])), p2, "dlrm-trace-bin")
    assert np.fromfile(p2, "<u8").tolist() == [1, 2, 3, 2]


def test_tbe_round_trip_table_major(tmp_path, rng):
    import torch

    tr = multi_hot_trace(rng)
    tr = Trace(tr.tables[:2])
    p = tmp_path / "reqs.pt"
    formats.write(tr, p)
    indices, offsets, lengths = torch.load(p)
    assert lengths.shape == (2, 60)
    np.testing.assert_array_equal(indices.numpy(), np.concatenate([t.values for t in tr.tables]))
    assert offsets.shape[0] == 2 * 60 + 1
    back = formats.read(p)
    for a, b in zip(back.tables, tr.tables):
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.offsets, b.offsets)
    back = formats.read(p, cardinalities=[7, 100], names=["C1", "C2"])
    assert back.equals(tr)


def test_oracle_general_layout(tmp_path):
    ids = np.array([5, 7, 5, 9, 7, 5])
    p = tmp_path / "x.oracleGeneral.bin"
    formats.write(Trace.single(ids), p, obj_size=4096)
    rec = np.fromfile(p, dtype=cache.OG_DTYPE)
    assert rec["obj_id"].tolist() == ids.tolist()
    assert rec["next_access_vtime"].tolist() == [3, 5, 6, -1, -1, -1]
    assert rec["next_access_vtime"].tolist() == naive.next_access_vtime(ids).tolist()
    assert rec["time"].tolist() == list(range(6)) and set(rec["obj_size"].tolist()) == {4096}


def test_next_access_vtime_matches_naive(rng):
    ids = rng.integers(0, 30, 500)
    np.testing.assert_array_equal(cache.next_access_vtime(ids), naive.next_access_vtime(ids))


def test_dist_round_trip(tmp_path):
    d = dlrm.DlrmDist(np.array([3, 1, 2]), np.array([-1, 0, 4]), np.array([0.5, 0.75, 1.0]))
    p = tmp_path / "dist_emb_0.log"
    dlrm.write_dist(d, p)
    assert p.read_text().splitlines()[1] == "0, 1, 5"
    assert formats.detect(p) == "dlrm-dist"
    back = dlrm.read_dist(p)
    np.testing.assert_array_equal(back.sd, d.sd)
    np.testing.assert_allclose(back.cdf, d.cdf)
    np.testing.assert_allclose(back.probabilities, [0.5, 0.25, 0.25])
    with pytest.raises(formats.TracegenError, match="not a trace"):
        formats.read(p)


CRITEO_LINES = [
    "1\t5\t110\t\t16\t\t1\t0\t14\t7\t1\t\t306\t\t62770d79\te21f5d58\tafea442f\t945c7fcf\t38b02748\t6fcd6dcb"
    "\t3580aa21\t28808903\t46dedfa6\t2e027dc1\t0c7c4231\t95981d1f\t00c5ffb7\tbe4ee537\t8a0b74cc\t4cdc3efa"
    "\td20856aa\tb8170bba\t9512c20b\tc38e2f28\t14f65a5d\t25b1b089\td7c1fc0b\t7caf609c\t30436bfc\ted10571d",
    "0\t-1\t3\t5\t\t1\t0\t0\t61\t5\t0\t1\t3157\t5\te5f3fd8d\ta0aaffa6\t6faa15d5\tda8a3421\t3cd69f23\t6fcd6dcb"
    "\tab16ed81\t43426c29\t1df5e154\t7de9c0a9\t6652dc64\t99eb4e27\t00c5ffb7\tbe4ee537\tf3bbfe99\t4cdc3efa"
    "\td20856aa\ta1eb1511\t9512c20b\t\t\t\t1752e9e8\t75350c8a\t991321ea\tb757e957",
]


def _criteo_file(tmp_path, rng, n=300, sep="\t", header=False):
    lines = []
    for i in range(n):
        base = CRITEO_LINES[i % 2].split("\t")
        base[0] = str(int(rng.integers(0, 2)))
        for j in range(14, 40):
            if rng.random() < 0.1:
                base[j] = ""
            else:
                base[j] = f"{int(rng.integers(0, 5 + 7 * (j - 14))) * 2654435761 % 2**32:08x}"
        base[3] = str(int(rng.integers(-3, 40)))
        lines.append(sep.join(base))
    p = tmp_path / ("day_0" if sep == "\t" else "sample.csv")
    head = (
        "label,"
        + ",".join(f"I{i}" for i in range(1, 14))
        + ","
        + ",".join(f"C{i}" for i in range(1, 27))
        + "\n"
    )
    p.write_text((head if header else "") + "\n".join(lines) + "\n")
    return p, lines


@pytest.mark.parametrize("max_ind_range", [-1, 50])
def test_criteo_tsv_matches_reference_rules(tmp_path, rng, max_ind_range):
    p, lines = _criteo_file(tmp_path, rng)
    assert formats.detect(p) == "criteo-tsv"
    tr = formats.read(p, max_ind_range=max_ind_range)
    y, x_int, x_cat, counts = naive.criteo_lines(lines, max_ind_range=max_ind_range)
    np.testing.assert_array_equal(tr.to_dense_ids(), x_cat)
    np.testing.assert_array_equal(tr.dense, x_int)
    np.testing.assert_array_equal(tr.labels, y)
    assert tr.cardinalities == counts


def test_criteo_streaming_blocks_equal_whole(tmp_path, rng):
    p, lines = _criteo_file(tmp_path, rng, n=500)
    parser = criteo.CriteoParser(p, block_bytes=1000)  # many blocks, lines cut across block edges
    ids = np.concatenate([c[2] for c in parser.chunks()])
    np.testing.assert_array_equal(ids, naive.criteo_lines(lines)[2])


def test_criteo_csv_with_header(tmp_path, rng):
    p, lines = _criteo_file(tmp_path, rng, n=50, sep=",", header=True)
    assert formats.detect(p) == "criteo-csv"
    tr = formats.read(p)
    np.testing.assert_array_equal(tr.to_dense_ids(), naive.criteo_lines(lines, sep=",")[2])


def test_convert_criteo_streams_to_dlrm_npz(tmp_path, rng):
    from tracegen.commands.convert import convert

    p, lines = _criteo_file(tmp_path, rng, n=400)
    out = tmp_path / "proc.npz"
    convert(str(p), str(out), to="dlrm-npz", progress=False)
    back = formats.read(out)
    y, x_int, x_cat, counts = naive.criteo_lines(lines)
    np.testing.assert_array_equal(back.to_dense_ids(), x_cat)
    assert back.cardinalities == counts
    out2 = tmp_path / "proc_native.npz"
    convert(str(p), str(out2), progress=False)
    assert formats.read(out2, validate=True).equals(back)


@pytest.mark.parametrize(
    "fmt",
    [
        "npz",
        "dlrm-npz",
        "dlrm-trace",
        "dlrm-trace-bin",
        "oracle-general",
        "txt",
        "npy",
        "tbe-pt",
        "mlperf-bin",
        "lcs-csv",
    ],
)
def test_open_writer_streams_like_write(tmp_path, rng, fmt):
    tr = one_hot_trace(rng, b=90, t=26 if fmt in ("dlrm-npz", "mlperf-bin") else 3)
    opts = {"table": "C2"} if formats.FORMATS[fmt].single_table and fmt != "npy" else {}
    ext = {
        "npz": ".npz",
        "dlrm-npz": ".npz",
        "tbe-pt": ".pt",
        "npy": ".npy",
        "txt": ".txt",
        "lcs-csv": ".csv",
        "dlrm-trace": ".log",
    }.get(fmt, ".bin")
    a, b = tmp_path / ("whole" + ext), tmp_path / ("stream" + ext)
    formats.write(tr, a, fmt, **opts)
    with formats.open_writer(b, fmt, names=tr.names, cardinalities=tr.cardinalities, **opts) as w:
        for s in range(0, 90, 25):
            w.write(tr.slice(s, s + 25))
    ra, rb = formats.read(a, fmt), formats.read(b, fmt)
    assert rb.equals(ra)
    if fmt == "npz":
        assert rb.equals(tr)


def test_open_writer_discards_on_error(tmp_path, rng):
    tr = one_hot_trace(rng, b=10, t=2)
    p = tmp_path / "s.npz"
    with pytest.raises(RuntimeError):
        with formats.open_writer(p, names=tr.names, cardinalities=tr.cardinalities) as w:
            w.write(tr)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_writers_never_overwrite_without_force(tmp_path, rng):
    tr = one_hot_trace(rng, b=10, t=2)
    p = tmp_path / "x.npz"
    p.write_bytes(b"keep")
    with pytest.raises(formats.TracegenError, match="--force"):
        formats.write(tr, p)
    assert p.read_bytes() == b"keep"
    formats.write(tr, p, force=True)
    assert formats.read(p).equals(tr)


# ---- the real sample files -----------------------------------------------------------------------


def test_shared_criteo_samples(shared_data):
    tab = shared_data / "criteo_samples" / "hillview_criteoTab.csv"
    assert formats.detect(tab) == "criteo-tsv"
    tr = formats.read(tab)
    lines = tab.read_text().splitlines()
    y, x_int, x_cat, counts = naive.criteo_lines(lines)
    assert tr.n_samples == 1000 and tr.cardinalities == counts
    np.testing.assert_array_equal(tr.to_dense_ids(), x_cat)
    np.testing.assert_array_equal(tr.dense, x_int)
    csv = shared_data / "criteo_samples" / "deepctr_criteo_sample.txt"
    assert formats.detect(csv) == "criteo-csv"
    tr = formats.read(csv)
    lines = csv.read_text().splitlines()[1:]
    y, x_int, x_cat, counts = naive.criteo_lines(lines, sep=",")
    assert tr.n_samples == 200 and tr.cardinalities == counts
    np.testing.assert_array_equal(tr.dense, x_int)


def test_shared_cloudphysics_oracle_general(shared_data, tmp_path):
    p = shared_data / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin"
    assert formats.detect(p) == "oracle-general"
    tr = formats.read(p)
    assert tr.n_accesses == 113872
    assert len(np.unique(tr.tables[0].values)) == 48974
    rec = np.fromfile(p, dtype=cache.OG_DTYPE)
    # our next_access_vtime equals libCacheSim's own
    np.testing.assert_array_equal(cache.next_access_vtime(rec["obj_id"]), rec["next_access_vtime"])
    out = tmp_path / "again.bin"
    formats.write(tr, out)
    mine = np.fromfile(out, dtype=cache.OG_DTYPE)
    np.testing.assert_array_equal(mine["obj_id"], rec["obj_id"])
    np.testing.assert_array_equal(mine["next_access_vtime"], rec["next_access_vtime"])
    csv = formats.read(shared_data / "cloudphysics" / "cloudPhysicsIO.csv")
    np.testing.assert_array_equal(csv.tables[0].values, tr.tables[0].values)
    assert formats.detect(shared_data / "cloudphysics" / "cloudPhysicsIO.csv") == "lcs-csv"


def test_shared_dlrm_reference_inputs(shared_data):
    d = shared_data / "dlrm_reference_input"
    tr = formats.read(d / "trace.log")
    assert tr.tables[0].values.tolist() == [1, 2, 3, 4, 5, 3, 4, 1, 1, 6, 3]
    dist = dlrm.read_dist(d / "dist_emb_0.log")
    assert dist.sd.tolist() == [-1, 0, 2, 3, 4]
    # the distribution is that of the trace, in our convention (sd = depth - 1)
    sd = naive.stack_distances(tr.tables[0].values)
    vals, counts = np.unique(sd, return_counts=True)
    assert vals.tolist() == dist.sd.tolist()
    np.testing.assert_allclose(np.cumsum(counts) / counts.sum(), dist.cdf, atol=0.01)


def test_bundled_example_trace():
    from tracegen.data import example_trace_path

    p = example_trace_path()
    assert os.path.getsize(p) < 3_000_000
    tr = formats.read(p)
    assert tr.n_tables == 26 and tr.dense.shape[1] == 13 and tr.labels is not None
    with native.NpzArchive(p) as ar:
        assert native.is_native(ar)


def test_libcachesim_reads_our_files(tmp_path, rng):
    """libCacheSim itself replays what we write (skipped without the optional package)."""
    lcs = pytest.importorskip("libcachesim")
    ids = rng.integers(0, 40, 300)
    ids[7] = 2**40
    tr = Trace.single(ids)
    og = tmp_path / "t.oracleGeneral.bin"
    formats.write(tr, og)
    reqs = list(lcs.TraceReader(str(og), lcs.TraceType.ORACLE_GENERAL_TRACE))
    assert [q.obj_id for q in reqs] == ids.tolist()
    never = np.iinfo(np.int64).max  # libCacheSim's reader turns the file's -1 into INT64_MAX
    got = [-1 if q.next_access_vtime == never else q.next_access_vtime for q in reqs]
    assert got == naive.next_access_vtime(ids).tolist()
    csv = tmp_path / "t.csv"
    formats.write(tr, csv)
    p = lcs.ReaderInitParam(
        has_header=True, has_header_set=True, delimiter=",", obj_id_is_num=True, obj_id_is_num_set=True
    )
    p.time_field, p.obj_id_field, p.obj_size_field = 1, 2, 3
    reqs = list(lcs.TraceReader(str(csv), lcs.TraceType.CSV_TRACE, p))
    assert [q.obj_id for q in reqs] == ids.tolist()


def test_next_access_blocks_and_growth(rng):
    """The backward hash scan, fed in blocks from the end and growing its table, equals the naive scan."""
    ids = rng.integers(0, 5000, 20_000).astype(np.uint64)
    scan = cache._NextAccess()
    out = np.empty(ids.size, np.int64)
    for start in range(19_000, -1, -1000):
        out[start : start + 1000] = scan.block(ids[start : start + 1000], start)
    np.testing.assert_array_equal(out, naive.next_access_vtime(ids))
    assert scan.keys.shape[0] >= 2 * 5000 - 1000  # it grew from 4096 slots


@pytest.mark.parametrize("compressed", [False, True])
def test_dlrm_npz_read_in_blocks(tmp_path, rng, monkeypatch, compressed):
    """Blocks of rows (streamed through the decompressor or memory-mapped) give the same trace."""
    tr = one_hot_trace(rng, b=50)
    p = tmp_path / "d.npz"
    save = np.savez_compressed if compressed else np.savez
    x_cat = tr.to_dense_ids().astype(np.float64)
    x_cat[33, 4] = -2
    save(
        p,
        X_cat=x_cat,
        X_int=tr.dense.astype(np.int32),
        y=tr.labels.astype(np.int32),
        counts=np.array(tr.cardinalities, np.int32),
    )
    monkeypatch.setattr(dlrm, "BLOCK_ROWS", 7)
    with pytest.raises(formats.TracegenError, match=f"negative X_cat id -2 at position {33 * 26 + 4}"):
        formats.read(p)
    x_cat[33, 4] = 0
    tr.tables[4].values[33] = 0
    save(
        p,
        X_cat=x_cat,
        X_int=tr.dense.astype(np.int32),
        y=tr.labels.astype(np.int32),
        counts=np.array(tr.cardinalities, np.int32),
    )
    back = formats.read(p)
    assert back.equals(tr)
    assert all(t.offsets is back.tables[0].offsets for t in back.tables)  # one shared, read-only array
    assert not back.tables[0].offsets.flags.writeable


@pytest.mark.parametrize(
    "fmt, ext",
    [
        ("txt", ".txt"),
        ("dlrm-trace", ".log"),
        ("oracle-general", ".bin"),
        ("npz", ".npz"),
        ("dlrm-npz", ".npz"),
        ("npy", ".npy"),
        ("tbe-pt", ".pt"),
    ],
)
def test_stream_writer_empty_or_aborted_leaves_nothing(tmp_path, fmt, ext):
    p = tmp_path / ("out" + ext)
    w = formats.open_writer(p, fmt, names=["C1"], cardinalities=[5])
    with pytest.raises(formats.TracegenError, match="empty"):
        w.close()
    w = formats.open_writer(p, fmt, names=["C1"], cardinalities=[5])
    w.write(Trace.single(np.array([1, 2, 3]), name="C1", cardinality=5))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_criteo_gzip_reads_like_plain(tmp_path, rng):
    import gzip

    p, lines = _criteo_file(tmp_path, rng, n=120)
    gz = tmp_path / "day_0.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert formats.detect(gz) == "criteo-tsv"
    assert formats.read(gz).equals(formats.read(p))
    gz.write_bytes(gzip.compress(p.read_bytes())[:300])
    with pytest.raises(formats.TracegenError, match="decompress"):
        formats.read(gz, "criteo-tsv")
