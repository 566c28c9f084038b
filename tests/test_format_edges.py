"""Format edge cases found by testers: ``--table all`` beyond int64, quoted libCacheSim CSV, empty fields in a
DLRM text trace, Criteo TSV with the wrong field count, byte-order marks in every text reader, and the README
formats table against the registry."""

from __future__ import annotations

import gzip
import pathlib
import re

import numpy as np
import pytest

from tracegen import Table, Trace, TracegenError, formats
from tracegen.cli import main
from tracegen.formats import criteo, dlrm
from tracegen.formats._common import flatten_tables

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOM = b"\xef\xbb\xbf"


def _one_line_error(capsys, path, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("tracegen: error: ") and str(path) in err, err
    for part in parts:
        assert part in err, err
    return err


def _criteo_line(i: int, n_cat: int = 26, extra: str = "") -> str:
    cats = [f"{(i * 7 + j) % (3 + i // 5):08x}" for j in range(n_cat)]
    return "\t".join([str(i % 2)] + [str(i % 11)] * 13 + cats) + extra


# ---- 1. --table all must not overflow int64 ------------------------------------------------------------


@pytest.fixture
def big2d(tmp_path):
    p = tmp_path / "big2d.npy"
    np.save(p, np.array([[2**62, 5], [3, 2**62]] * 50, dtype=np.int64))
    return p


@pytest.mark.parametrize("out", ["all.txt", "all.npy", "all.log", "all.bin", "all.csv", "all.oracleGeneral.bin"])
def test_table_all_overflow_is_refused(tmp_path, capsys, big2d, out):
    dst = tmp_path / out
    assert main(["convert", str(big2d), str(dst), "--table", "all"]) == 2
    _one_line_error(capsys, dst, "--table all", "9223372036854775810", "int64", "--densify")
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big2d.npy"]  # no temporary left behind


def test_table_all_overflow_python_api_and_stream_writer(tmp_path):
    cards = [2**62 + 1, 2**62 + 1]
    tr = Trace.from_dense_ids(np.array([[2**62, 5], [3, 2**62]]), cards)
    with pytest.raises(TracegenError, match=r"x\.txt: --table all: .* sum to 9223372036854775810"):
        formats.write(tr, tmp_path / "x.txt", table="all")
    with pytest.raises(TracegenError, match="sum to 9223372036854775810"):
        flatten_tables(tr)
    # the streaming writers (used by `sample` and large conversions) refuse before writing anything
    for name in ("s.txt", "s.bin", "s.npy", "s.log"):
        with pytest.raises(TracegenError, match="int64"):
            formats.open_writer(tmp_path / name, names=["a", "b"], cardinalities=cards, table="all")
    assert list(tmp_path.iterdir()) == []


def test_table_all_at_the_int64_limit_is_exact(tmp_path):
    # cardinalities summing to exactly 2**63 - 1: the largest flattened id 2**63 - 2 is written unchanged
    cards = [2**62, 2**62 - 1]
    tr = Trace.from_dense_ids(np.array([[2**62 - 1, 2**62 - 2], [0, 1]]), cards)
    formats.write(tr, tmp_path / "x.txt", table="all")
    assert (tmp_path / "x.txt").read_text().split() == [
        str(2**62 - 1),
        str(2**63 - 2),
        "0",
        str(2**62 + 1),
    ]


def test_table_all_overflow_densify_works(tmp_path, capsys, big2d):
    dst = tmp_path / "all.txt"
    assert main(["convert", str(big2d), str(dst), "--table", "all", "--densify", "-q"]) == 0
    # column 0: 2**62 -> 0, 3 -> 1 (cardinality 2); column 1: 5 -> 0, 2**62 -> 1, offset by 2
    assert dst.read_text().split() == ["0", "2", "1", "3"] * 50


def test_criteo_streamed_table_all_uses_final_offsets(tmp_path, monkeypatch):
    """A raw Criteo file converted block by block with --table all: the per-table offsets are the final
    cardinalities, not the ones known when each block was parsed (ids agree with flattening the whole trace)."""
    from tracegen.commands.convert import convert

    src = tmp_path / "train.txt"
    src.write_text("\n".join(_criteo_line(i) for i in range(300)) + "\n")
    monkeypatch.setitem(criteo.CriteoParser.__init__.__kwdefaults__, "block_bytes", 4096)  # many blocks
    convert(str(src), str(tmp_path / "flat.txt"), write_opts={"table": "all"}, progress=False)
    monkeypatch.undo()
    whole = formats.read(src)
    expect = flatten_tables(whole)
    got = np.loadtxt(tmp_path / "flat.txt", dtype=np.int64)
    assert got.shape == (300 * 26,)
    np.testing.assert_array_equal(got, expect.values)


# ---- 2. lcs-csv with standard CSV quoting --------------------------------------------------------------


def test_lcs_csv_quoted_header_and_fields(tmp_path, capsys):
    p = tmp_path / "q.csv"
    p.write_text('"time","obj_id","obj_size"\n1,"5",1\n2,"6",1\n3,"5",1\n')
    assert formats.detect(p) == "lcs-csv"
    tr = formats.read(p)
    assert tr.tables[0].values.tolist() == [5, 6, 5] and tr.tables[0].cardinality == 7
    assert formats.read(p, id_col="obj_id").tables[0].values.tolist() == [5, 6, 5]
    assert main(["inspect", str(p), "--id-col", "obj_id", "--json"]) == 0
    assert '"accesses": 3' in capsys.readouterr().out


def test_lcs_csv_quoted_comma_bom_crlf(tmp_path):
    p = tmp_path / "q.csv"
    p.write_bytes(BOM + b'"time","label, with comma","obj_id"\r\n1,"a,b",  "9"\r\n\r\n2,"c",  "4"\r\n')
    tr = formats.read(p)
    assert tr.tables[0].values.tolist() == [9, 4]
    assert formats.read(p, id_col="label, with comma", densify=True).tables[0].values.tolist() == [0, 1]


def test_lcs_csv_one_quoted_column_with_header(tmp_path):
    p = tmp_path / "ids.csv"
    p.write_bytes(b'"obj_id"\n"8"\n"2"\n')
    assert formats.detect(p) == "lcs-csv"
    assert formats.read(p).tables[0].values.tolist() == [8, 2]


def test_lcs_csv_quoted_bad_id_is_one_line(tmp_path, capsys):
    p = tmp_path / "q.csv"
    p.write_text('"time","obj_id"\n1,"5"\n2,"x"\n')
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "'x'", "not an integer")


# ---- 3. dlrm-trace: empty fields are errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (b"1, 2, , 4\n", "empty id at position 2 (line 1, field 3)"),
        (b"1, 2, 3,\n", "empty id at position 3 (line 1, field 4): a trailing comma"),
        (b"1, 2\n, 3\n", "empty id at position 2 (line 2, field 1)"),
    ],
)
def test_dlrm_trace_empty_field_is_an_error(tmp_path, capsys, text, where):
    p = tmp_path / "t.log"
    p.write_bytes(text)
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, where)
    out = tmp_path / "o.txt"
    assert main(["convert", str(p), str(out)]) == 2
    assert not out.exists()


def test_dlrm_trace_reference_layout_still_reads(tmp_path):
    p = tmp_path / "t.log"
    p.write_bytes(b"1, 2, 3, 4, 5, 3\n")  # what the reference writes (str(list)[1:-1]), plus a newline
    assert formats.read(p).tables[0].values.tolist() == [1, 2, 3, 4, 5, 3]
    p.write_bytes(b"7, 8\r\n9\r\n\r\n")  # several lines, CRLF, a trailing blank line
    assert formats.read(p).tables[0].values.tolist() == [7, 8, 9]


# ---- 4. Criteo TSV with a wrong field count ------------------------------------------------------------


@pytest.mark.parametrize(("n_cat", "extra", "fields"), [(26, "\t5", 41), (25, "", 39)])
def test_criteo_tsv_wrong_width_is_named(tmp_path, capsys, n_cat, extra, fields):
    p = tmp_path / "train.txt"
    p.write_text("".join(_criteo_line(i, n_cat, extra) + "\n" for i in range(5)))
    assert main(["inspect", str(p)]) == 2
    _one_line_error(
        capsys, p, f"criteo-tsv: line 1 has {fields} fields, expected 40 (label, 13 dense, 26 categorical)"
    )
    with pytest.raises(TracegenError, match="criteo-tsv: line 1"):
        formats.detect(p)


def test_criteo_tsv_later_line_reports_its_field_count(tmp_path, capsys):
    p = tmp_path / "train.txt"
    p.write_text(_criteo_line(0) + "\n" + _criteo_line(1, extra="\t7\t8") + "\n")
    assert formats.detect(p) == "criteo-tsv"  # a valid first line: detection unchanged
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, p, "line 2: expected 40 fields", "found 42")


def test_criteo_tsv_valid_still_detected(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("".join(_criteo_line(i) + "\n" for i in range(5)))
    assert formats.detect(p) == "criteo-tsv"
    assert formats.read(p).n_samples == 5
    q = tmp_path / "ids.txt"
    q.write_text("3\n4\n")
    assert formats.detect(q) == "txt"


# ---- BOM in every text reader --------------------------------------------------------------------------


def test_bom_accepted_by_every_text_reader(tmp_path):
    cases = {
        "ids.txt": (b"3\n4\n3\n", [3, 4, 3]),
        "t.log": (b"3, 4, 3\n", [3, 4, 3]),
        "a.csv": (b"time,obj_id\n1,3\n2,4\n", [3, 4]),
        "b.csv": (b'"time","obj_id"\n1,"3"\n2,"4"\n', [3, 4]),
        "c.csv": (b"obj_id\n6\n", [6]),
    }
    for name, (body, ids) in cases.items():
        p = tmp_path / name
        p.write_bytes(BOM + body)
        assert formats.read(p).tables[0].values.tolist() == ids, name
    lines = "".join(_criteo_line(i) + "\n" for i in range(4)).encode()
    plain = formats.read(_write(tmp_path / "plain.txt", lines))
    for name, data in [
        ("bom.txt", BOM + lines),
        ("bom_gz.txt", gzip.compress(BOM + lines)),
        ("bom.csv", BOM + _criteo_csv(lines)),
    ]:
        tr = formats.read(_write(tmp_path / name, data))
        assert tr.n_samples == 4 and all(a.equals(b) for a, b in zip(tr.tables, plain.tables)), name
    dist = tmp_path / "dist_emb_0.log"
    dist.write_bytes(BOM + b"1, 2, 3\n0, 1, 3\n0.5, 0.75, 1.0\n")
    d = dlrm.read_dist(dist)
    assert d.unique_ids.tolist() == [1, 2, 3] and d.sd.tolist() == [-1, 0, 2]


def _write(p, data: bytes):
    p.write_bytes(data)
    return p


def _criteo_csv(tsv: bytes) -> bytes:
    head = ",".join(["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)])
    return head.encode() + b"\n" + tsv.replace(b"\t", b",")


# ---- 5. the README formats table says what the code does -----------------------------------------------


def test_readme_formats_table_matches_registry():
    text = (ROOT / "README.md").read_text()
    table = text.split("## Formats", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| `")]
    assert len(rows) >= 9
    seen = set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`([a-z0-9-]+)`", cells[0])
        write = cells[-1]
        for name in names:
            assert name in formats.FORMATS, name
            seen.add(name)
            can_write = formats.FORMATS[name].writer is not None
            assert write.startswith("yes") == can_write, (name, write)
    assert seen == set(formats.FORMATS)


def test_writerless_formats_refused_by_cli(tmp_path, capsys):
    src = tmp_path / "ids.txt"
    src.write_text("1\n2\n")
    for fmt in ("criteo-tsv", "criteo-csv", "dlrm-dist"):
        assert main(["convert", str(src), str(tmp_path / "o.x"), "--to", fmt]) == 2
        assert f"invalid choice: '{fmt}'" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["ids.txt"]


def test_table_helper_offsets_unchanged():
    # flattening below the limit keeps the documented layout: table j's ids offset by sum(card[:j])
    t0 = Table.one_hot("a", np.array([0, 2]), 3)
    t1 = Table.from_lengths("b", np.array([1, 0, 4]), np.array([2, 1]), 5)
    flat = flatten_tables(Trace([t0, t1]))
    assert flat.values.tolist() == [0, 4, 3, 2, 7] and flat.cardinality == 8
    assert flat.offsets.tolist() == [0, 3, 5]


def test_tbe_writer_names_the_file_of_an_empty_trace(tmp_path):
    from tracegen.formats.tbe import write_tbe

    empty = Trace([Table.from_lengths("t0", np.array([], np.int64), np.zeros(3, np.int64), 5)])
    out = tmp_path / "e.pt"
    with pytest.raises(TracegenError, match="empty") as e:
        write_tbe(empty, out)
    assert str(out) in str(e.value) and not out.exists()


@pytest.mark.parametrize("to", ["dlrm-npz", "mlperf-bin"])
def test_dense_values_beyond_int32_saturate_in_x_int(tmp_path, to):
    d = np.zeros((4, 13), np.float32)
    d[0, 0], d[1, 0], d[2, 0], d[3, 0] = 3e9, 2147483000, 5.4, -7
    tr = Trace([Table.one_hot("a", np.arange(4), 4)], dense=d, labels=np.zeros(4, np.float32))
    out = tmp_path / ("o.npz" if to == "dlrm-npz" else "o.bin")
    formats.write(tr, out, fmt=to)
    if to == "dlrm-npz":
        x_int = np.load(out)["X_int"]
    else:  # records of int32: y, 13 X_int, then one id per table
        x_int = np.fromfile(out, np.int32).reshape(-1, 15)[:, 1:14]
    assert x_int.dtype == np.int32
    # float32 holds 2147483000 as 2147483008 and 3e9 saturates at the int32 maximum; never negative
    assert x_int[:, 0].tolist() == [2147483647, 2147483008, 5, 0]


def test_dlrm_npz_error_tells_an_empty_table_from_a_multi_hot_one(tmp_path):
    t0 = Table.one_hot("C1", np.array([0, 1, 0, 2]), 3)
    empty = Table.from_lengths("C3", np.array([], np.int64), np.zeros(4, np.int64), 1)
    with pytest.raises(TracegenError, match="but table C3 has samples with no id; write npz"):
        formats.write(Trace([t0, empty]), tmp_path / "o.npz", fmt="dlrm-npz")


# ---- .bin detection: dlrm-trace-bin vs mlperf-bin, and whose fea_count ---------------------------------


def _mlperf_trace(rng, b=40):
    ids = np.column_stack([rng.integers(0, 50 + j, b) for j in range(26)])
    ids[0] = 0  # first appearance: the first record is all zeros in densified data
    return Trace.from_dense_ids(
        ids,
        [50 + j for j in range(26)],
        dense=rng.integers(0, 9, (b, 13)).astype(np.float32),
        labels=rng.integers(0, 2, b).astype(np.float32),
    )


def test_dlrm_trace_bin_of_small_ids_is_read_back_as_such(tmp_path, rng):
    # 0/1 ids in a multiple of 160 bytes: every sampled "record" passed the old MLPerf check
    ids = rng.integers(0, 2, 20 * 50)
    p = tmp_path / "c6.bin"
    formats.write(Trace.single(ids, name="C6", cardinality=2), p, "dlrm-trace-bin")
    assert p.stat().st_size % 160 == 0
    assert formats.detect(p) == "dlrm-trace-bin"
    back = formats.read(p)
    assert back.n_tables == 1 and back.tables[0].values.tolist() == ids.tolist()


def test_another_stems_fea_count_is_never_used(tmp_path, rng):
    ids = rng.integers(0, 3, 20 * 10)
    p = tmp_path / "c6.bin"
    formats.write(Trace.single(ids, cardinality=3), p, "dlrm-trace-bin")
    formats.write(_mlperf_trace(rng), tmp_path / "all.bin", "mlperf-bin")
    assert (tmp_path / "all_fea_count.npz").exists()
    assert dlrm._find_fea_count(p) is None
    assert formats.detect(p) == "dlrm-trace-bin"
    assert formats.read(p).tables[0].values.tolist() == ids.tolist()
    # read as mlperf-bin on purpose, it still does not take all.bin's sizes (26 tables, max id + 1)
    assert formats.read(p, "mlperf-bin").cardinalities != formats.read(tmp_path / "all.bin").cardinalities


def test_mlperf_bin_still_detected_and_reference_split_naming(tmp_path, rng):
    tr = _mlperf_trace(rng)
    p = tmp_path / "terabyte_processed_train.bin"
    formats.write(tr, p, "mlperf-bin", fea_count=False)
    assert formats.detect(p) == "mlperf-bin"  # by content
    back = formats.read(p)
    assert back.to_dense_ids().tolist() == tr.to_dense_ids().tolist()
    # the reference reads <base>_train.bin / _test.bin with <base>_fea_count.npz
    np.savez(tmp_path / "terabyte_processed_fea_count.npz", counts=np.array(tr.cardinalities, np.int32))
    assert dlrm._find_fea_count(p) == str(tmp_path / "terabyte_processed_fea_count.npz")
    assert formats.read(p).equals(tr)


def test_tiny_binary_that_fits_both_is_refused(tmp_path):
    p = tmp_path / "tiny.bin"
    np.zeros(20, "<u8").tofile(p)  # one 160-byte "record" of zeros, or 20 ids 0
    with pytest.raises(TracegenError, match="ambiguous binary trace: say --from mlperf-bin or --from dlrm-trace-bin"):
        formats.detect(p)
    assert formats.read(p, "dlrm-trace-bin").n_accesses == 20


def test_cli_convert_to_dlrm_trace_bin_then_inspect(tmp_path, rng, capsys):
    src = tmp_path / "src.npz"
    formats.write(_mlperf_trace(rng, b=200), src)
    out = tmp_path / "c6.bin"
    assert main(["convert", str(src), str(out), "--table", "C6", "--to", "dlrm-trace-bin", "-q"]) == 0
    assert main(["convert", str(src), str(tmp_path / "all.bin"), "--to", "mlperf-bin", "-q"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{out}: dlrm-trace-bin" in text and "samples 200  tables 1 " in text, text


def test_string_keys_error_suggests_densify(tmp_path, capsys):
    p = tmp_path / "hex.csv"
    p.write_text("time,obj_id,obj_size\n1,k1f,1\n2,k20,1\n3,k1f,1\n")
    assert main(["inspect", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'k1f' at position 0 is not an integer" in err and "--densify" in err
    assert main(["inspect", str(p), "--densify"]) == 0


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 22])
def test_lcs_csv_blocks_read_like_one_block(tmp_path, monkeypatch, block):
    """The unquoted CSV is split a block of lines at a time; any block size gives the same trace and the
    same line number in errors (blank lines skipped, the header counted)."""
    from tracegen.formats import cache

    monkeypatch.setattr(cache, "CSV_BLOCK", block)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 2**40, 500)
    lines = ["time,obj_id,obj_size"] + [f"{i},{x},4096" for i, x in enumerate(ids.tolist())]
    lines.insert(7, "")  # a blank line
    p = tmp_path / "t.csv"
    p.write_text("\r\n".join(lines) + "\r\n")
    t = formats.read(p)
    assert t.tables[0].values.tolist() == ids.tolist()
    lines[300] = "299"  # one field: no obj_id column; line 300 of the file is the 299th data row
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(TracegenError, match="line 300 has 1 fields, needs column 1"):
        formats.read(p)
