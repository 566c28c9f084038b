"""Bad input: every reader rejects truncated/corrupt files, missing keys, bad ids and offsets, empty traces,
table-count mismatches with one line naming the file (a TracegenError), never a traceback or a wrong trace."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tracegen import Table, Trace, TracegenError, formats


def _trace(n=40, t=3):
    x = np.arange(n * t).reshape(n, t) % 5
    return Trace.from_dense_ids(
        x, [5] * t, dense=np.ones((n, 13), np.float32), labels=np.zeros(n, np.float32)
    )


def _native(tmp, **kw):
    p = tmp / "t.npz"
    formats.write(_trace(), p, **kw)
    return p


def _rewrite_npz(src, dst, change):
    """Copy an npz member by member, letting ``change(name, bytes) -> bytes | None`` edit or drop members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def _npy_bytes(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def truncated_native(tmp):
    p = _native(tmp)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p, {}, "npz|zip|truncated"


def garbage_npz(tmp):
    p = tmp / "g.npz"
    p.write_bytes(b"PK\x03\x04" + bytes(range(200)))
    return p, {}, "zip"


def native_missing_metadata(tmp):
    p = _rewrite_npz(_native(tmp), tmp / "m.npz", lambda n, d: None if n == "metadata.json" else d)
    return p, {"fmt": "npz"}, "metadata.json"


def native_bad_json(tmp):
    p = _rewrite_npz(_native(tmp), tmp / "m.npz", lambda n, d: b"{not json" if n == "metadata.json" else d)
    return p, {"fmt": "npz"}, "JSON"


def native_missing_array(tmp):
    p = _rewrite_npz(_native(tmp), tmp / "m.npz", lambda n, d: None if n == "t1_values.npy" else d)
    return p, {}, "missing array 't1_values'"


def native_table_count_mismatch(tmp):
    def change(n, d):
        if n == "metadata.json":
            meta = json.loads(d)
            meta["tables"] = meta["tables"][:2]
            return json.dumps(meta).encode()
        return d

    p = _rewrite_npz(_native(tmp), tmp / "m.npz", change)
    return p, {}, "more tables"


def native_id_over_cardinality(tmp):
    def change(n, d):
        if n == "metadata.json":
            meta = json.loads(d)
            meta["tables"][0]["cardinality"] = 3
            return json.dumps(meta).encode()
        return d

    p = _rewrite_npz(_native(tmp), tmp / "m.npz", change)
    return p, {}, ">= cardinality 3"


def native_decreasing_offsets(tmp):
    def change(n, d):
        if n == "t0_offsets.npy":
            o = np.arange(41, dtype=np.int64)
            o[5], o[6] = 7, 4
            return _npy_bytes(o)
        return d

    p = _rewrite_npz(_native(tmp), tmp / "m.npz", change)
    return p, {"validate": True}, "offsets decrease at sample 5"


def native_negative_ids_full_check(tmp):
    def change(n, d):
        if n == "t2_values.npy":
            v = np.zeros(40, np.int64)
            v[9] = -4
            return _npy_bytes(v)
        return d

    p = _rewrite_npz(_native(tmp), tmp / "m.npz", change)
    return p, {"validate": True}, "negative id -4"


def dlrm_missing_key(tmp):
    p = tmp / "d.npz"
    np.savez(p, X_cat=np.zeros((4, 2)), X_int=np.zeros((4, 13), np.int32))
    return p, {}, "missing key 'y'"


def dlrm_negative(tmp):
    p = tmp / "d.npz"
    x = np.zeros((4, 2))
    x[2, 1] = -1
    np.savez(p, X_cat=x, X_int=np.zeros((4, 13), np.int32), y=np.zeros(4, np.int32), counts=np.array([3, 3]))
    return p, {}, "negative"


def dlrm_over_counts(tmp):
    p = tmp / "d.npz"
    x = np.zeros((4, 2), np.int32)
    x[3, 0] = 7
    np.savez(p, X_cat=x, X_int=np.zeros((4, 13), np.int32), y=np.zeros(4, np.int32), counts=np.array([3, 3]))
    return p, {}, "id 7 .*>= cardinality 3"


def dlrm_fractional(tmp):
    p = tmp / "d.npz"
    x = np.zeros((4, 2))
    x[1, 1] = 1.5
    np.savez(p, X_cat=x, X_int=np.zeros((4, 13), np.int32), y=np.zeros(4, np.int32), counts=np.array([3, 3]))
    return p, {}, "non-integer value 1.5"


def dlrm_nan(tmp):
    p = tmp / "d.npz"
    x = np.zeros((4, 2))
    x[0, 0] = np.nan
    np.savez(p, X_cat=x, X_int=np.zeros((4, 13), np.int32), y=np.zeros(4, np.int32), counts=np.array([3, 3]))
    return p, {}, "non-finite"


def dlrm_count_mismatch(tmp):
    p = tmp / "d.npz"
    np.savez(
        p,
        X_cat=np.zeros((4, 2)),
        X_int=np.zeros((4, 13), np.int32),
        y=np.zeros(4, np.int32),
        counts=np.array([3, 3, 3]),
    )
    return p, {}, "table-count mismatch"


def dlrm_empty(tmp):
    p = tmp / "d.npz"
    np.savez(
        p,
        X_cat=np.zeros((0, 2)),
        X_int=np.zeros((0, 13), np.int32),
        y=np.zeros(0, np.int32),
        counts=np.array([3, 3]),
    )
    return p, {}, "empty"


def dlrm_row_mismatch(tmp):
    p = tmp / "d.npz"
    np.savez(p, X_cat=np.zeros((4, 2)), X_int=np.zeros((4, 13), np.int32), y=np.zeros(3, np.int32))
    return p, {}, "y has 3 entries"


def mlperf_truncated(tmp):
    p = tmp / "m.bin"
    np.zeros(40 * 3 - 5, np.int32).tofile(p)
    return p, {"fmt": "mlperf-bin"}, "multiple of the 160-byte record"


def oracle_truncated(tmp):
    p = tmp / "o.bin"
    p.write_bytes(b"\x00" * 50)
    return p, {"fmt": "oracle-general"}, "24-byte"


def oracle_huge_ids(tmp):
    from tracegen.formats.cache import OG_DTYPE

    rec = np.zeros(3, OG_DTYPE)
    rec["obj_id"] = [1, 2**64 - 1, 3]
    rec["next_access_vtime"] = -1
    p = tmp / "o.bin"
    rec.tofile(p)
    return p, {"fmt": "oracle-general"}, "densify"


def trace_bin_truncated(tmp):
    p = tmp / "t.bin"
    p.write_bytes(b"\x01" * 13)
    return p, {"fmt": "dlrm-trace-bin"}, "multiple of 8"


def empty_bin(tmp):
    p = tmp / "e.bin"
    p.write_bytes(b"")
    return p, {}, "empty"


def txt_negative(tmp):
    p = tmp / "t.txt"
    p.write_text("1\n2\n-3\n")
    return p, {}, "negative id -3"


def txt_float(tmp):
    p = tmp / "t.txt"
    p.write_text("1\n2.5\n3\n")
    return p, {}, "'2.5' .*not an integer"


def txt_nan(tmp):
    p = tmp / "t.txt"
    p.write_text("1\nnan\n3\n")
    return p, {"fmt": "txt"}, "'nan' .*not an integer"


def txt_empty(tmp):
    p = tmp / "t.txt"
    p.write_text("\n\n")
    return p, {"fmt": "txt"}, "empty"


def log_garbage(tmp):
    p = tmp / "trace.log"
    p.write_text("1, 2, x, 4\n")
    return p, {"fmt": "dlrm-trace"}, "'x' .*not an integer"


def npy_nan(tmp):
    p = tmp / "a.npy"
    np.save(p, np.array([1.0, np.nan]))
    return p, {}, "non-finite"


def npy_negative(tmp):
    p = tmp / "a.npy"
    np.save(p, np.array([1, -2, 3]))
    return p, {}, "negative id -2"


def npy_3d(tmp):
    p = tmp / "a.npy"
    np.save(p, np.zeros((2, 2, 2), np.int64))
    return p, {}, "shape"


def npy_truncated(tmp):
    p = tmp / "a.npy"
    np.save(p, np.arange(100))
    p.write_bytes(p.read_bytes()[:300])
    return p, {}, "npy"


def npy_object(tmp):
    p = tmp / "a.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return p, {}, "npy|pickle"


def pt_garbage(tmp):
    p = tmp / "r.pt"
    p.write_bytes(b"not a torch file")
    return p, {}, "torch"


def pt_table_mismatch(tmp):
    import torch

    p = tmp / "r.pt"
    torch.save((torch.arange(6), torch.tensor([0, 2, 4, 6]), torch.tensor([[2, 2], [2, 0]])), p)
    return p, {}, "table-count mismatch"


def pt_decreasing(tmp):
    import torch

    p = tmp / "r.pt"
    torch.save((torch.arange(4), torch.tensor([0, 3, 1, 4]), torch.tensor([[3, -2, 3]])), p)
    return p, {}, "offsets decrease at bag 1"


def pt_negative(tmp):
    import torch

    p = tmp / "r.pt"
    torch.save((torch.tensor([1, -1]), torch.tensor([0, 1, 2]), torch.tensor([[1, 1]])), p)
    return p, {}, "negative id -1"


def pt_over_cardinality(tmp):
    import torch

    p = tmp / "r.pt"
    torch.save((torch.tensor([1, 9]), torch.tensor([0, 1, 2]), torch.tensor([[1, 1]])), p)
    return p, {"cardinalities": [5]}, "id 9 .*>= cardinality 5"


def pt_float(tmp):
    import torch

    p = tmp / "r.pt"
    torch.save((torch.tensor([1.0, 2.5]), torch.tensor([0, 1, 2]), torch.tensor([[1, 1]])), p)
    return p, {}, "non-integer value 2.5"


def criteo_short_line(tmp):
    p = tmp / "day_0"
    good = "\t".join(["1"] + ["2"] * 13 + ["0a"] * 26)
    p.write_text(good + "\n" + "\t".join(["1"] + ["2"] * 13 + ["0a"] * 10) + "\n")
    return p, {"fmt": "criteo-tsv"}, "line 2: expected 40 fields.*found 24"


def criteo_bad_hex(tmp):
    p = tmp / "day_0"
    p.write_text("\t".join(["1"] + ["2"] * 13 + ["zz"] + ["0a"] * 25) + "\n")
    return p, {"fmt": "criteo-tsv"}, "line 1: category C1 is not hexadecimal"


def criteo_bad_int(tmp):
    p = tmp / "s.csv"
    head = "label," + ",".join(f"I{i}" for i in range(1, 14)) + "," + ",".join(f"C{i}" for i in range(1, 27))
    p.write_text(head + "\n" + ",".join(["0", "abc"] + ["2"] * 12 + ["0a"] * 26) + "\n")
    return p, {}, "line 2: integer feature I1 is not a number"


def criteo_header_only(tmp):
    p = tmp / "s.csv"
    head = "label," + ",".join(f"I{i}" for i in range(1, 14)) + "," + ",".join(f"C{i}" for i in range(1, 27))
    p.write_text(head + "\n")
    return p, {"fmt": "criteo-csv"}, "empty"


def lcs_bad_id(tmp):
    p = tmp / "c.csv"
    p.write_text("time,obj_id,size\n1,5,1\n2,abc,1\n")
    return p, {}, "'abc' .*not an integer"


def lcs_no_id_column(tmp):
    p = tmp / "c.csv"
    p.write_text("time,size\n1,5\n2,3\n")
    return p, {"fmt": "lcs-csv"}, "--id-col"


def dist_bad_cdf(tmp):
    p = tmp / "dist_emb_0.log"
    p.write_text("1, 2\n0, 1, 2\n0.5, 0.4, 1.0\n")
    return p, {"dist": True}, "decrease at entry 1"


def dist_not_ending_at_one(tmp):
    p = tmp / "dist_emb_0.log"
    p.write_text("1, 2\n0, 1\n0.5, 0.9\n")
    return p, {"dist": True}, "end at 0.9"


def dist_lengths(tmp):
    p = tmp / "dist_emb_0.log"
    p.write_text("1, 2\n0, 1, 2\n0.5, 1.0\n")
    return p, {"dist": True}, "3 stack distances but 2"


def dist_two_lines(tmp):
    p = tmp / "dist_emb_0.log"
    p.write_text("1, 2\n0, 1\n")
    return p, {"dist": True}, "3 lines"


CASES = [
    truncated_native,
    garbage_npz,
    native_missing_metadata,
    native_bad_json,
    native_missing_array,
    native_table_count_mismatch,
    native_id_over_cardinality,
    native_decreasing_offsets,
    native_negative_ids_full_check,
    dlrm_missing_key,
    dlrm_negative,
    dlrm_over_counts,
    dlrm_fractional,
    dlrm_nan,
    dlrm_count_mismatch,
    dlrm_empty,
    dlrm_row_mismatch,
    mlperf_truncated,
    oracle_truncated,
    oracle_huge_ids,
    trace_bin_truncated,
    empty_bin,
    txt_negative,
    txt_float,
    txt_nan,
    txt_empty,
    log_garbage,
    npy_nan,
    npy_negative,
    npy_3d,
    npy_truncated,
    npy_object,
    pt_garbage,
    pt_table_mismatch,
    pt_decreasing,
    pt_negative,
    pt_over_cardinality,
    pt_float,
    criteo_short_line,
    criteo_bad_hex,
    criteo_bad_int,
    criteo_header_only,
    lcs_bad_id,
    lcs_no_id_column,
    dist_bad_cdf,
    dist_not_ending_at_one,
    dist_lengths,
    dist_two_lines,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line_naming_the_file(tmp_path, case):
    path, opts, pattern = case(tmp_path)
    opts = dict(opts)
    if opts.pop("dist", False):
        from tracegen.formats.dlrm import read_dist

        call = lambda: read_dist(path)  # noqa: E731
    else:
        fmt = opts.pop("fmt", None)
        call = lambda: formats.read(path, fmt, **opts)  # noqa: E731
    with pytest.raises(TracegenError, match=pattern) as err:
        call()
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ") and "\n" not in msg


def test_native_lazy_open_does_not_scan(tmp_path):
    """The default (lazy) open checks structure and the recorded id range, not every offset."""
    p, _, _ = native_decreasing_offsets(tmp_path)
    tr = formats.read(p)  # opens: O(1)
    with pytest.raises(TracegenError, match="offsets decrease"):
        tr.validate(p)


def test_write_rejects_invalid_trace(tmp_path):
    bad = Trace([Table("a", 3, np.array([0, 5]), np.array([0, 1, 2]))])
    p = tmp_path / "x.npz"
    with pytest.raises(TracegenError, match=">= cardinality 3"):
        formats.write(bad, p)
    assert not p.exists() and list(tmp_path.iterdir()) == []


def test_unknown_format_and_option(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("1\n2\n")
    with pytest.raises(TracegenError, match="unknown format 'parquet'"):
        formats.read(p, "parquet")
    with pytest.raises(TracegenError, match="txt reader takes no option 'id_col'"):
        formats.read(p, id_col="x")
    with pytest.raises(TracegenError, match="no such file"):
        formats.read(tmp_path / "missing.txt")
    with pytest.raises(TracegenError, match="extension '.xyz'"):
        formats.write(Trace.single(np.array([1])), tmp_path / "out.xyz")


def test_multi_hot_to_dlrm_npz_is_refused(tmp_path):
    tr = Trace([Table.from_lengths("a", np.array([1, 2, 3]), np.array([2, 1]), 4)])
    with pytest.raises(TracegenError, match="multi-hot; write npz or tbe-pt"):
        formats.write(tr, tmp_path / "d.npz", "dlrm-npz")
    assert list(tmp_path.iterdir()) == []


# ---- --from npy on what is not a .npy ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["npz", "pt"])
def test_from_npy_on_a_zip_archive_is_one_line(tmp_path, kind):
    tr = _trace()
    p = tmp_path / f"t.{kind}"
    formats.write(tr, p, "npz" if kind == "npz" else "tbe-pt")
    with pytest.raises(TracegenError) as err:
        formats.read(p, "npy")
    msg = str(err.value)
    assert msg.startswith(str(p)) and "npz/zip archive, not a .npy array" in msg, msg
    assert "pickle" not in msg


@pytest.mark.parametrize(
    "content, words",
    [
        (b"# a markdown file\nhello\n", "no NumPy header"),
        (None, "holds Python objects"),  # an object-dtype .npy
    ],
)
def test_from_npy_never_suggests_pickle(tmp_path, content, words):
    p = tmp_path / "x.npy"
    if content is None:
        np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    else:
        p.write_bytes(content)
    with pytest.raises(TracegenError) as err:
        formats.read(p, "npy")
    msg = str(err.value)
    assert words in msg and "pickle" not in msg.lower() and "\n" not in msg, msg


def test_txt_that_is_not_a_trace_names_the_line(tmp_path):
    p = tmp_path / "README.md"
    p.write_text("12\n\n# Title with words " + "x" * 200 + "\n")
    with pytest.raises(TracegenError) as err:
        formats.read(p, "txt")
    msg = str(err.value)
    assert "not a trace: line 3 is not an integer id: '# Title with words" in msg, msg
    assert len(msg) < len(str(p)) + 130 and msg.endswith("...'"), msg


def test_txt_several_ids_on_a_line_names_the_line(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("1\n2\n3 4 5\n")
    with pytest.raises(TracegenError, match=r"line 3 holds 3 ids, expected one id per line: '3 4 5'"):
        formats.read(p, "txt")


def test_lcs_csv_on_tsv_shows_a_short_line(tmp_path):
    p = tmp_path / "t.csv"
    row = "\t".join(["1"] + ["abcdef"] * 60)
    p.write_text(row + "\n" + row + "\n")
    with pytest.raises(TracegenError) as err:
        formats.read(p, "lcs-csv")
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < len(str(p)) + 160, msg
