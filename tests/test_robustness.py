"""Robustness of every ``tracegen`` command on bad and edge-case inputs that users really have.

Each bad input must give exit status 2, exactly one line on stderr naming the file (or the
argument) and the problem, no traceback; outputs are never left half-written and an existing file
is never replaced without ``--force``. Edge cases that are valid (one access, one distinct id,
all-distinct ids, huge 64-bit keys) must work. Everything goes through ``tracegen.cli.main``.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tracegen import formats
from tracegen.cli import main
from tracegen.formats.cache import OG_DTYPE
from tracegen.trace import Table, Trace

# ---- helpers -------------------------------------------------------------------------------------


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; an exception escaping ``main`` fails the test (it would be a traceback)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_user_error(rc: int, err: str, *needles: str) -> None:
    """Exit 2, one non-empty stderr line, no traceback, every needle (case-insensitive) in the line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr: {err!r}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"


def og_file(path, ids, sizes=None) -> str:
    ids = np.asarray(ids, dtype=np.uint64)
    rec = np.zeros(ids.shape[0], OG_DTYPE)
    rec["time"] = np.arange(ids.shape[0])
    rec["obj_id"] = ids
    rec["obj_size"] = 1 if sizes is None else sizes
    rec["next_access_vtime"] = -1
    rec.tofile(path)
    return str(path)


def dlrm_npz(path, b=30, t=3, **override) -> str:
    rng = np.random.default_rng(0)
    arrays = {
        "X_cat": rng.integers(0, 5, (b, t)).astype(np.int32),
        "X_int": rng.integers(0, 9, (b, 13)).astype(np.int32),
        "y": rng.integers(0, 2, b).astype(np.int32),
        "counts": np.full(t, 5, np.int32),
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return str(path)


def small_trace(b=60, t=2, card=7) -> Trace:
    x = (np.arange(b * t).reshape(b, t) * 3) % card
    return Trace.from_dense_ids(x, [card] * t)


def native_npz(path, trace=None) -> str:
    formats.write(trace or small_trace(), path, "npz")
    return str(path)


def rewrite_npz(src, dst, change) -> str:
    """Copy an npz member by member through ``change(name, bytes) -> bytes``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change(info.filename, zin.read(info.filename)))
    return str(dst)


def edit_npz(src, dst, member, edit) -> str:
    """Copy an npz, letting ``edit`` change one member in place: an ``.npy`` array, or ``metadata.json``'s dict."""
    import io

    def change(name, data):
        if name != member:
            return data
        if name.endswith(".npy"):
            v = np.load(io.BytesIO(data))
            edit(v)
            return npy_bytes(v)
        m = json.loads(data)
        edit(m)
        return json.dumps(m).encode()

    return rewrite_npz(src, dst, change)


def npy_bytes(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def tbe_file(path, obj) -> str:
    import torch

    torch.save(obj, path)
    return str(path)


def tbe_tensors(t=2, b=4, dtype=None):
    import torch

    dtype = dtype or torch.int64
    lengths = torch.tensor([[1, 2, 0, 1], [2, 1, 1, 1]], dtype=dtype)[:t, :b]
    offsets = torch.zeros(t * b + 1, dtype=dtype)
    offsets[1:] = torch.cumsum(lengths.flatten(), 0)
    indices = torch.arange(int(offsets[-1]), dtype=dtype) % 3
    return indices, offsets, lengths


def dist_json(tmp_path, capsys) -> str:
    """A small valid dist.json from ``tracegen spec``."""
    p = tmp_path / "zipf.json"
    rc, _, err = cli(capsys, "spec", "--family", "zipf", "--a", "0.9", "--cardinality", "50", "-o", p)
    assert rc == 0, err
    return str(p)


# ---- bad input files: one line naming the file and the problem, exit 2 ---------------------------

# Each case builds its file(s) in ``tmp`` and returns (argv after the command, path that must be named,
# words of the problem that must appear). ``{cmd}`` cases run under inspect, profile, fit and convert.


def _empty(ext):
    def case(tmp):
        p = tmp / f"empty{ext}"
        p.write_bytes(b"")
        return [p], p, ["empty"]

    case.__name__ = f"empty_file{ext.replace('.', '_')}"
    return case


def missing_file(tmp):
    p = tmp / "nope.npz"
    return [p], p, ["no such file"]


def directory_input(tmp):
    p = tmp / "adir.npz"
    p.mkdir()
    return [p], p, ["directory"]


def og_truncated(tmp):
    p = tmp / "t.oracleGeneral.bin"
    og_file(p, [1, 2, 3])
    with open(p, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05")
    return [p, "--from", "oracle-general"], p, ["multiple of", "24"]


def og_truncated_detected(tmp):
    p = tmp / "t.oracleGeneral.bin"
    og_file(p, [1, 2, 3])
    with open(p, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05")
    return [p], p, ["truncated"]


def og_uint64_above_int64(tmp):
    p = tmp / "big.oracleGeneral.bin"
    og_file(p, [2**64 - 1, 5, 2**63 + 3])
    return [p], p, ["int64", "--densify"]


def npz_truncated(tmp):
    p = native_npz(tmp / "t.npz")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    return [p], p, ["truncated"]


def dlrm_npz_truncated(tmp):
    p = dlrm_npz(tmp / "d.npz")
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-40])
    return [p], p, ["npz"]


def _flip(path, start, n=100):
    data = bytearray(open(path, "rb").read())
    for i in range(start, min(start + n, len(data) - 100)):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def dlrm_npz_compressed_corrupt(tmp):
    """The reference writes np.savez_compressed: a flipped run of bytes inside a deflated member."""
    rng = np.random.default_rng(0)
    p = tmp / "d.npz"
    np.savez_compressed(p, X_cat=rng.integers(0, 1000, (5000, 3)).astype(np.int32),
                        X_int=rng.integers(0, 9, (5000, 13)).astype(np.int32),
                        y=rng.integers(0, 2, 5000).astype(np.int32), counts=np.full(3, 1000, np.int32))
    _flip(p, 2000)
    return [p], p, ["X_cat"]


def native_npz_compressed_corrupt(tmp):
    p = tmp / "n.npz"
    formats.write(Trace.from_dense_ids(np.random.default_rng(0).integers(0, 50, (3000, 2))), p, "npz", compress=True)
    _flip(p, 1500)
    return [p], p, ["t0_values"]


def npz_is_text(tmp):
    p = tmp / "text.npz"
    p.write_text("1\n2\n3\n")
    return [p], p, ["npz"]


def npz_unknown_keys(tmp):
    p = tmp / "other.npz"
    np.savez(p, a=np.arange(3))
    return [p], p, ["X_cat"]


def dlrm_negative_id(tmp):
    x = np.zeros((10, 3), np.int32)
    x[4, 1] = -3
    return [dlrm_npz(tmp / "d.npz", b=10, X_cat=x)], tmp / "d.npz", ["negative", "-3"]


def dlrm_id_beyond_counts(tmp):
    x = np.zeros((10, 3), np.int32)
    x[2, 2] = 5  # counts are 5
    return [dlrm_npz(tmp / "d.npz", b=10, X_cat=x)], tmp / "d.npz", ["5", "cardinality"]


def dlrm_nan_id(tmp):
    x = np.zeros((10, 3), np.float64)
    x[3, 0] = np.nan
    return [dlrm_npz(tmp / "d.npz", b=10, X_cat=x)], tmp / "d.npz", ["non-finite"]


def dlrm_fractional_id(tmp):
    x = np.zeros((10, 3), np.float64)
    x[3, 0] = 1.5
    return [dlrm_npz(tmp / "d.npz", b=10, X_cat=x)], tmp / "d.npz", ["non-integer", "1.5"]


def dlrm_nan_dense(tmp):
    xi = np.zeros((10, 13), np.float32)
    xi[1, 2] = np.nan
    return [dlrm_npz(tmp / "d.npz", b=10, X_int=xi)], tmp / "d.npz", ["X_int", "NaN"]


def dlrm_inf_dense(tmp):
    xi = np.zeros((10, 13), np.float64)
    xi[1, 2] = np.inf
    return [dlrm_npz(tmp / "d.npz", b=10, X_int=xi)], tmp / "d.npz", ["X_int", "infinite"]


def dlrm_rows_xint(tmp):
    return [dlrm_npz(tmp / "d.npz", b=10, X_int=np.zeros((9, 13), np.int32))], tmp / "d.npz", ["X_int"]


def dlrm_rows_y(tmp):
    return [dlrm_npz(tmp / "d.npz", b=10, y=np.zeros(11, np.int32))], tmp / "d.npz", ["y has 11"]


def dlrm_counts_mismatch(tmp):
    return [dlrm_npz(tmp / "d.npz", counts=np.full(4, 5, np.int32))], tmp / "d.npz", ["counts", "mismatch"]


def dlrm_missing_y(tmp):
    return [dlrm_npz(tmp / "d.npz", y=None)], tmp / "d.npz", ["missing key 'y'"]


def dlrm_zero_rows(tmp):
    p = dlrm_npz(
        tmp / "d.npz", b=0, X_cat=np.zeros((0, 3), np.int32), X_int=np.zeros((0, 13), np.int32), y=np.zeros(0)
    )
    return [p], p, ["empty"]


def dlrm_3d(tmp):
    p = dlrm_npz(tmp / "d.npz", X_cat=np.zeros((30, 3, 2), np.int32))
    return [p], p, ["2-D"]


def dlrm_object_dtype(tmp):
    p = tmp / "d.npz"
    np.savez(p, X_cat=np.array([[1, "a"]], dtype=object), X_int=np.zeros((1, 13)), y=np.zeros(1))
    return [p], p, ["object"]


def dlrm_bool_ids(tmp):
    p = dlrm_npz(tmp / "d.npz", X_cat=np.zeros((30, 3), bool))
    return [p], p, ["integers"]


def native_negative_hidden(tmp):
    """metadata.json claims min_id 0 but the values hold a negative id."""
    p = edit_npz(native_npz(tmp / "ok.npz"), tmp / "neg.npz", "t0_values.npy", lambda v: v.__setitem__(3, -2))
    return [p], p, ["negative", "-2"]


def native_beyond_card_hidden(tmp):
    p = edit_npz(native_npz(tmp / "ok.npz"), tmp / "big.npz", "t1_values.npy", lambda v: v.__setitem__(5, 99))
    return [p], p, ["99", "cardinality"]


def native_offsets_decrease(tmp):
    def swap(o):
        o[10], o[11] = o[11], o[10]

    p = edit_npz(native_npz(tmp / "ok.npz"), tmp / "off.npz", "t0_offsets.npy", swap)
    return [p], p, ["offsets decrease"]


def native_meta_list(tmp):
    src = native_npz(tmp / "ok.npz")
    p = rewrite_npz(src, tmp / "m.npz", lambda n, d: b"[1, 2]" if n == "metadata.json" else d)
    return [p, "--from", "npz"], p, ["metadata.json"]


def native_meta_wrong_types(tmp):
    p = edit_npz(
        native_npz(tmp / "ok.npz"), tmp / "m.npz", "metadata.json", lambda m: m["tables"][0].update(cardinality="many")
    )
    return [p], p, ["metadata.json"]


def native_meta_tables_not_list(tmp):
    p = edit_npz(native_npz(tmp / "ok.npz"), tmp / "m.npz", "metadata.json", lambda m: m.update(tables=3))
    return [p], p, ["metadata.json"]


def native_meta_version_string(tmp):
    p = edit_npz(native_npz(tmp / "ok.npz"), tmp / "m.npz", "metadata.json", lambda m: m.update(version="one"))
    return [p], p, ["version"]


def native_nan_dense(tmp):
    tr = small_trace()
    d = np.ones((tr.n_samples, 2), np.float32)
    d[7, 1] = np.nan
    tr.dense = d
    p = tmp / "nan.npz"
    # bypass the writer's own checks: a file written by something else
    formats.write(Trace(tr.tables), p, "npz")
    out = edit_npz(p, tmp / "nand.npz", "metadata.json", lambda m: m.update(dense_features=2))
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("dense.npy", npy_bytes(d))
    return [out], out, ["dense", "NaN"]


def npy_empty_array(tmp):
    p = tmp / "e.npy"
    np.save(p, np.zeros(0, np.int64))
    return [p], p, ["empty"]


def npy_empty_2d(tmp):
    p = tmp / "e.npy"
    np.save(p, np.zeros((0, 3), np.int64))
    return [p], p, ["empty"]


def npy_negative(tmp):
    p = tmp / "n.npy"
    np.save(p, np.array([1, 2, -7, 3]))
    return [p], p, ["negative", "-7"]


def npy_nan(tmp):
    p = tmp / "n.npy"
    np.save(p, np.array([1.0, np.nan, 3.0]))
    return [p], p, ["non-finite"]


def npy_fraction(tmp):
    p = tmp / "n.npy"
    np.save(p, np.array([1.0, 2.25, 3.0]))
    return [p], p, ["non-integer"]


def npy_3d(tmp):
    p = tmp / "n.npy"
    np.save(p, np.zeros((2, 3, 4), np.int64))
    return [p], p, ["shape"]


def npy_truncated(tmp):
    p = tmp / "n.npy"
    np.save(p, np.arange(100, dtype=np.int64))
    data = p.read_bytes()
    p.write_bytes(data[:-50])
    return [p], p, ["npy"]


def npy_pickled_objects(tmp):
    p = tmp / "o.npy"
    np.save(p, np.array([1, None, "x"], dtype=object), allow_pickle=True)
    return [p], p, ["npy"]


def npy_strings(tmp):
    p = tmp / "s.npy"
    np.save(p, np.array(["1", "2"]))
    return [p], p, ["integers"]


def npy_uint64_huge(tmp):
    p = tmp / "u.npy"
    np.save(p, np.array([1, 2**64 - 5], dtype=np.uint64))
    return [p], p, ["int64", "--densify"]


def txt_negative(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\n2\n-5\n")
    return [p], p, ["negative", "-5"]


def txt_float(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\n2.5\n3\n")
    return [p], p, ["2.5", "not an integer"]


def txt_nan(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\nnan\n3\n")
    return [p], p, ["nan", "not an integer"]


def txt_beyond_64bit(tmp):
    p = tmp / "ids.txt"
    p.write_text(f"1\n{2**64 + 1}\n")
    return [p], p, ["64 bits"]


def txt_blank_only(tmp):
    p = tmp / "ids.txt"
    p.write_text("\n\n  \n")
    return [p, "--from", "txt"], p, ["empty"]


def txt_binary_garbage(tmp):
    p = tmp / "ids.txt"
    p.write_bytes(bytes(range(256)) * 4)
    return [p], p, ["format"]


def txt_not_utf8(tmp):
    p = tmp / "ids.txt"
    p.write_bytes(b"12\n\xff\xfe\n")
    return [p, "--from", "txt"], p, ["not an integer"]


def wrong_flag_og_on_text(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\n2\n3\n")
    return [p, "--from", "oracle-general"], p, ["24"]


def wrong_flag_tbe_on_npz(tmp):
    p = dlrm_npz(tmp / "d.npz")
    return [p, "--from", "tbe-pt"], p, ["tbe-pt"]


def wrong_flag_dlrm_on_native(tmp):
    p = native_npz(tmp / "n.npz")
    return [p, "--from", "dlrm-npz"], p, ["X_cat"]


def wrong_flag_npz_on_dlrm(tmp):
    p = dlrm_npz(tmp / "d.npz")
    return [p, "--from", "npz"], p, ["metadata.json"]


def wrong_flag_criteo_on_npy(tmp):
    p = tmp / "a.npy"
    np.save(p, np.arange(10))
    return [p, "--from", "criteo-tsv"], p, ["line 1"]


def wrong_flag_npy_on_text(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\n2\n")
    return [p, "--from", "npy"], p, ["npy"]


def wrong_flag_mlperf_on_text(tmp):
    p = tmp / "ids.txt"
    p.write_text("1\n2\n")
    return [p, "--from", "mlperf-bin"], p, ["160"]


def wrong_ext_npy_named_bin(tmp):
    """An .npy saved under a .bin name: its header is 128 bytes, nothing fits; detection must say so."""
    p = tmp / "ids.bin"
    np.save(open(p, "wb"), np.arange(7, dtype=np.int32))
    return [p], p, ["format"]


def wrong_ext_pt_named_npz(tmp):
    import torch

    p = tmp / "tbe.npz"
    torch.save(tbe_tensors(), p)
    return [p], p, ["X_cat"]


def tbe_gz_truncated(tmp):
    import gzip
    import io

    import torch

    buf = io.BytesIO()
    torch.save(tbe_tensors(), buf)
    p = tmp / "r.pt.gz"
    data = gzip.compress(buf.getvalue())
    p.write_bytes(data[: len(data) // 2])
    return [p], p, ["gzip"]


def gzip_not_criteo(tmp):
    import gzip

    p = tmp / "ids.txt.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"1\n2\n3\n")
    return [p], p, ["gzip"]


def gzip_truncated_criteo(tmp):
    import gzip

    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["abc"] * 26) + "\n"
    p = tmp / "day_0.gz"
    with gzip.open(p, "wb") as f:
        f.write((line * 200).encode())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 10])
    return [p, "--from", "criteo-tsv"], p, ["decompress"]


def criteo_short_line(tmp):
    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["abc"] * 26) + "\n"
    p = tmp / "train.txt"
    p.write_text(line * 3 + "1\t2\t3\n")
    return [p, "--from", "criteo-tsv"], p, ["line 4", "fields"]


def criteo_blank_line_between_data(tmp):
    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["abc"] * 26) + "\n"
    p = tmp / "train.txt"
    p.write_text(line * 3 + "\n" + line)
    return [p], p, ["line 4"]


def criteo_bad_hex(tmp):
    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["abc"] * 26) + "\n"
    p = tmp / "train.txt"
    p.write_text(line + line.replace("abc", "xyz", 1))
    return [p, "--from", "criteo-tsv"], p, ["line 2", "hexadecimal"]


def criteo_csv_header_only(tmp):
    p = tmp / "train.csv"
    cols = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    p.write_text(",".join(cols) + "\n")
    return [p], p, ["empty"]


def dlrm_trace_log_negative(tmp):
    p = tmp / "trace.log"
    p.write_text("1, 2, -3, 4\n")
    return [p], p, ["negative"]


def dlrm_trace_log_float(tmp):
    p = tmp / "trace.log"
    p.write_text("1, 2, 3.5, 4\n")
    return [p], p, ["3.5"]


def dlrm_trace_bin_truncated(tmp):
    p = tmp / "trace.bin"
    np.arange(5, dtype="<u8").tofile(p)
    with open(p, "ab") as f:
        f.write(b"\x00\x01\x02")
    return [p, "--from", "dlrm-trace-bin"], p, ["multiple of 8"]


def lcs_csv_no_id_column(tmp):
    p = tmp / "c.csv"
    p.write_text("time,size\n1,2\n3,4\n")
    return [p, "--from", "lcs-csv"], p, ["id column"]


def lcs_csv_ragged(tmp):
    p = tmp / "c.csv"
    p.write_text("time,obj_id,size\n1,2,3\n4\n")
    return [p], p, ["line 3"]


def lcs_csv_bad_id_col_index(tmp):
    p = tmp / "c.csv"
    p.write_text("time,obj_id,size\n1,2,3\n4,5,6\n")
    return [p, "--id-col", "9"], p, ["column 9"]


def tbe_truncated(tmp):
    p = tbe_file(tmp / "r.pt", tbe_tensors())
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    return [p], p, ["truncated"]


def tbe_not_tuple(tmp):
    return [tbe_file(tmp / "r.pt", {"weights": 1})], tmp / "r.pt", ["indices, offsets, lengths"]


def tbe_int_scalar(tmp):
    return [tbe_file(tmp / "r.pt", 5)], tmp / "r.pt", ["indices, offsets, lengths"]


class Pickled:
    """Some user object pickled into a .pt: weights_only loading must refuse it, not run it."""

    def __init__(self):
        self.x = 1


def tbe_pickled_class(tmp):
    return [tbe_file(tmp / "r.pt", Pickled())], tmp / "r.pt", ["cannot load"]


def tbe_dict_missing_key(tmp):
    i, o, _ = tbe_tensors()
    return [tbe_file(tmp / "r.pt", {"indices": i, "offsets": o})], tmp / "r.pt", ["lengths"]


def tbe_two_tensors(tmp):
    i, o, _ = tbe_tensors()
    return [tbe_file(tmp / "r.pt", (i, o))], tmp / "r.pt", ["indices, offsets, lengths"]


def tbe_ragged_list(tmp):
    return [tbe_file(tmp / "r.pt", ([1, 2], [0, 1, 2], [[1], [1, 2]]))], tmp / "r.pt", ["ragged"]


def tbe_offsets_decrease(tmp):
    i, o, ln = tbe_tensors()
    o = o.clone()
    o[1], o[2] = o[2].item(), o[1].item()
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["decrease"]


def tbe_offsets_end(tmp):
    import torch

    i, o, ln = tbe_tensors()
    i = torch.cat([i, torch.tensor([0, 1])])
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["offsets run", "indices"]


def tbe_lengths_mismatch(tmp):
    i, o, ln = tbe_tensors()
    ln = ln.clone()
    ln[0, 0] += 1
    ln[0, 1] -= 1
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["lengths"]


def tbe_lengths_sum(tmp):
    i, o, ln = tbe_tensors()
    ln = ln.clone()
    ln[1, 3] += 4
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["lengths"]


def tbe_negative(tmp):
    i, o, ln = tbe_tensors()
    i = i.clone()
    i[1] = -1
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["negative"]


def tbe_float_indices(tmp):
    i, o, ln = tbe_tensors()
    i = i.double()
    i[0] = float("nan")
    return [tbe_file(tmp / "r.pt", (i, o, ln))], tmp / "r.pt", ["non-finite"]


def tbe_lengths_3d(tmp):
    i, o, ln = tbe_tensors()
    return [tbe_file(tmp / "r.pt", (i, o, ln.reshape(2, 2, 2)))], tmp / "r.pt", ["lengths"]


def tbe_indices_2d(tmp):
    i, o, ln = tbe_tensors()
    return [tbe_file(tmp / "r.pt", (i.reshape(1, -1), o, ln))], tmp / "r.pt", ["1-D"]


def tbe_empty(tmp):
    import torch

    z = torch.zeros(0, dtype=torch.int64)
    return [tbe_file(tmp / "r.pt", (z, z, z.reshape(0, 0)))], tmp / "r.pt", ["empty"]


def tbe_zero_indices(tmp):
    import torch

    ln = torch.zeros((2, 3), dtype=torch.int64)
    o = torch.zeros(7, dtype=torch.int64)
    return [tbe_file(tmp / "r.pt", (torch.zeros(0, dtype=torch.int64), o, ln))], tmp / "r.pt", ["empty"]


def dist_log_malformed(tmp):
    p = tmp / "dist_emb_0.log"
    p.write_text("1, 2, 3\n0, 1, 2\n0.2, 0.1, 1.0\n")
    return [p, "--from", "dlrm-dist"], p, ["decrease"]


CMD_CASES = [
    *(_empty(e) for e in (".npz", ".npy", ".pt", ".bin", ".txt", ".csv", ".log", ".oracleGeneral")),
    missing_file,
    directory_input,
    og_truncated,
    og_truncated_detected,
    og_uint64_above_int64,
    npz_truncated,
    dlrm_npz_truncated,
    npz_is_text,
    dlrm_npz_compressed_corrupt,
    native_npz_compressed_corrupt,
    npz_unknown_keys,
    dlrm_negative_id,
    dlrm_id_beyond_counts,
    dlrm_nan_id,
    dlrm_fractional_id,
    dlrm_nan_dense,
    dlrm_inf_dense,
    dlrm_rows_xint,
    dlrm_rows_y,
    dlrm_counts_mismatch,
    dlrm_missing_y,
    dlrm_zero_rows,
    dlrm_3d,
    dlrm_object_dtype,
    dlrm_bool_ids,
    native_negative_hidden,
    native_beyond_card_hidden,
    native_offsets_decrease,
    native_meta_list,
    native_meta_wrong_types,
    native_meta_tables_not_list,
    native_meta_version_string,
    native_nan_dense,
    npy_empty_array,
    npy_empty_2d,
    npy_negative,
    npy_nan,
    npy_fraction,
    npy_3d,
    npy_truncated,
    npy_pickled_objects,
    npy_strings,
    npy_uint64_huge,
    txt_negative,
    txt_float,
    txt_nan,
    txt_beyond_64bit,
    txt_blank_only,
    txt_binary_garbage,
    txt_not_utf8,
    wrong_flag_og_on_text,
    wrong_flag_tbe_on_npz,
    wrong_flag_dlrm_on_native,
    wrong_flag_npz_on_dlrm,
    wrong_flag_criteo_on_npy,
    wrong_flag_npy_on_text,
    wrong_flag_mlperf_on_text,
    wrong_ext_npy_named_bin,
    wrong_ext_pt_named_npz,
    gzip_not_criteo,
    tbe_gz_truncated,
    gzip_truncated_criteo,
    criteo_short_line,
    criteo_bad_hex,
    criteo_blank_line_between_data,
    criteo_csv_header_only,
    dlrm_trace_log_negative,
    dlrm_trace_log_float,
    dlrm_trace_bin_truncated,
    lcs_csv_no_id_column,
    lcs_csv_ragged,
    lcs_csv_bad_id_col_index,
    tbe_truncated,
    tbe_not_tuple,
    tbe_int_scalar,
    tbe_pickled_class,
    tbe_dict_missing_key,
    tbe_two_tensors,
    tbe_ragged_list,
    tbe_offsets_decrease,
    tbe_offsets_end,
    tbe_lengths_mismatch,
    tbe_lengths_sum,
    tbe_negative,
    tbe_float_indices,
    tbe_lengths_3d,
    tbe_indices_2d,
    tbe_empty,
    tbe_zero_indices,
]

# The dist log is read by inspect only (it is not a trace): the other commands say so.
INSPECT_ONLY = [dist_log_malformed]


def _argv(cmd, tmp, args):
    out = tmp / "out"
    if cmd == "inspect":
        return ["inspect", *args, "-q"]
    if cmd == "profile":
        return ["profile", *args, "-q"]
    if cmd == "fit":
        return ["fit", *args, "-o", out.with_suffix(".json"), "-q", "--calibrate", "0"]
    if cmd == "convert":
        return ["convert", args[0], out.with_suffix(".npz"), *args[1:], "-q"]
    raise AssertionError(cmd)


@pytest.mark.parametrize("cmd", ["inspect", "profile", "fit", "convert"])
@pytest.mark.parametrize("case", CMD_CASES, ids=lambda c: c.__name__)
def test_bad_trace_file(tmp_path, capsys, case, cmd):
    args, path, needles = case(tmp_path)
    rc, _, err = cli(capsys, *_argv(cmd, tmp_path, args))
    assert_user_error(rc, err, str(path), *needles)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out") or p.startswith(".tracegen")]


@pytest.mark.parametrize("case", INSPECT_ONLY, ids=lambda c: c.__name__)
def test_bad_dist_log(tmp_path, capsys, case):
    args, path, needles = case(tmp_path)
    rc, _, err = cli(capsys, "inspect", *args)
    assert_user_error(rc, err, str(path), *needles)
    rc, _, err = cli(capsys, "spec", "--from-dlrm-dist", path, "-o", tmp_path / "s.json")
    assert_user_error(rc, err, str(path), *needles)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("cmd", ["inspect", "profile", "fit", "convert"])
def test_unreadable_file(tmp_path, capsys, cmd):
    p = tmp_path / "ids.txt"
    p.write_text("1\n2\n")
    p.chmod(0)
    try:
        rc, _, err = cli(capsys, *_argv(cmd, tmp_path, [p]))
        assert_user_error(rc, err, str(p), "not readable")
    finally:
        p.chmod(0o644)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_dist_json(tmp_path, capsys):
    d = dist_json(tmp_path, capsys)
    os.chmod(d, 0)
    try:
        rc, _, err = cli(capsys, "sample", d, "-o", tmp_path / "o.npz", "-n", "10")
        assert_user_error(rc, err, d, "not readable")
    finally:
        os.chmod(d, 0o644)


# ---- valid edge cases: they work -----------------------------------------------------------------


def _edge_single_access(tmp):
    p = tmp / "one.txt"
    p.write_text("42\n")
    return p, []


def _edge_one_distinct(tmp):
    p = tmp / "same.txt"
    p.write_text("7\n" * 200)
    return p, []


def _edge_all_distinct(tmp):
    p = tmp / "distinct.npy"
    np.save(p, np.random.default_rng(1).permutation(500).astype(np.int64))
    return p, []


def _edge_huge_keys(tmp):
    p = tmp / "hashed.txt"
    keys = np.array([2**62 + 5, 2**63 - 1, 2**62 + 5, 2**62 + 9] * 30, dtype=np.int64)
    p.write_text("\n".join(map(str, keys.tolist())) + "\n")
    return p, []


def _edge_og_uint64_densify(tmp):
    p = tmp / "u.oracleGeneral.bin"
    og_file(p, [2**64 - 1, 5, 2**63 + 3, 5, 2**64 - 1] * 20)
    return p, ["--densify"]


def _edge_tbe_int32(tmp):
    import torch

    return tbe_file(tmp / "r.pt", tbe_tensors(dtype=torch.int32)), []


def _edge_tbe_list_of_tensors(tmp):
    return tbe_file(tmp / "r.pt", list(tbe_tensors())), []


def _edge_tbe_python_lists(tmp):
    return tbe_file(tmp / "r.pt", tuple(x.tolist() for x in tbe_tensors())), []


def _edge_tbe_dict(tmp):
    i, o, ln = tbe_tensors()
    return tbe_file(tmp / "r.pt", {"indices": i, "offsets": o, "lengths": ln}), []


def _edge_dlrm_float_xcat(tmp):
    """The reference's own processed npz stores X_cat as float64."""
    x = np.random.default_rng(2).integers(0, 5, (40, 3)).astype(np.float64)
    return dlrm_npz(tmp / "d.npz", b=40, X_cat=x), []


_CRITEO_LINE = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["abc"] * 26)


def _edge_criteo_trailing_blank_lines(tmp):
    p = tmp / "train.txt"
    p.write_text((_CRITEO_LINE + "\n") * 30 + "\n\n")
    return p, []


def _edge_criteo_crlf_no_final_newline(tmp):
    p = tmp / "day_0"
    p.write_bytes(((_CRITEO_LINE + "\r\n") * 30).encode()[:-2])
    return p, ["--from", "criteo-tsv"]


def _edge_og_never_again_int64_max(tmp):
    """libCacheSim also writes INT64_MAX for "no next access"; detected from the content under a plain .bin name."""
    p = tmp / "trace.bin"
    ids = np.array([3, 4, 3, 5] * 10, dtype=np.uint64)
    rec = np.zeros(ids.shape[0], OG_DTYPE)
    rec["obj_id"] = ids
    rec["obj_size"] = 1
    from tracegen.formats.cache import next_access_vtime

    nxt = next_access_vtime(ids)
    rec["next_access_vtime"] = np.where(nxt < 0, np.iinfo(np.int64).max, nxt)
    rec.tofile(p)
    return p, []


def _edge_og_prefix_of_longer_trace(tmp):
    """The first records of a longer oracleGeneral trace point past the file's end: the name decides."""
    p = tmp / "head.oracleGeneral.bin"
    ids = np.array([3, 4, 3, 5] * 10, dtype=np.uint64)
    rec = np.zeros(ids.shape[0], OG_DTYPE)
    rec["obj_id"] = ids
    rec["obj_size"] = 1
    rec["next_access_vtime"] = np.arange(ids.shape[0]) + 1000
    rec.tofile(p)
    return p, []


def _edge_tbe_pt_gz(tmp):
    """Meta's dlrm_datasets ship fbgemm_t856_bs65536.pt.gz: read it compressed."""
    import gzip
    import io

    import torch

    buf = io.BytesIO()
    torch.save(tbe_tensors(), buf)
    p = tmp / "fbgemm_t2_bs4.pt.gz"
    with gzip.open(p, "wb") as f:
        f.write(buf.getvalue())
    return p, []


def _edge_bom_txt(tmp):
    """Saved by a Windows editor: a UTF-8 byte-order mark and CRLF line ends."""
    p = tmp / "ids.txt"
    p.write_bytes(b"\xef\xbb\xbf" + b"3\r\n5\r\n3\r\n7\r\n" * 10)
    return p, []


def _edge_bom_criteo_csv(tmp):
    cols = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    p = tmp / "train.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (",".join(cols) + "\n" + (_CRITEO_LINE.replace("\t", ",") + "\n") * 20).encode())
    return p, []


def _edge_bom_lcs_csv(tmp):
    p = tmp / "block.csv"
    p.write_bytes(b"\xef\xbb\xbf" + b"time,obj_id,size\n" + b"".join(b"%d,%d,1\n" % (i, i % 7) for i in range(60)))
    return p, []


EDGE_CASES = [
    _edge_bom_txt,
    _edge_bom_criteo_csv,
    _edge_bom_lcs_csv,
    _edge_tbe_pt_gz,
    _edge_criteo_trailing_blank_lines,
    _edge_criteo_crlf_no_final_newline,
    _edge_og_never_again_int64_max,
    _edge_og_prefix_of_longer_trace,
    _edge_single_access,
    _edge_one_distinct,
    _edge_all_distinct,
    _edge_huge_keys,
    _edge_og_uint64_densify,
    _edge_tbe_int32,
    _edge_tbe_list_of_tensors,
    _edge_tbe_python_lists,
    _edge_tbe_dict,
    _edge_dlrm_float_xcat,
]


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.__name__[6:])
def test_edge_case_inspect_profile_convert(tmp_path, capsys, case):
    p, opts = case(tmp_path)
    rc, out, err = cli(capsys, "inspect", p, "--json", "-q", *opts)
    assert rc == 0, err
    s = json.loads(out)
    assert s["accesses"] > 0
    rc, _, err = cli(capsys, "profile", p, "-q", *opts)
    assert rc == 0, err
    rc, _, err = cli(capsys, "convert", p, tmp_path / "c.npz", "-q", *opts)
    assert rc == 0, err
    back = formats.read(tmp_path / "c.npz")
    assert back.n_accesses == s["accesses"]


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.__name__[6:])
def test_edge_case_fit_sample(tmp_path, capsys, case):
    p, opts = case(tmp_path)
    d = tmp_path / "d.json"
    rc, _, err = cli(capsys, "fit", p, "-o", d, "-q", "--calibrate", "0", *opts)
    if rc == 2:  # a trace too small to release anything is a clean user error, never a crash
        assert_user_error(rc, err, str(p))
        assert not d.exists()
        return
    assert rc == 0, err
    o = tmp_path / "s.npz"
    rc, _, err = cli(capsys, "sample", d, "-o", o, "-n", "50", "-q")
    assert rc == 0, err
    assert formats.read(o).n_samples == 50


def test_tbe_dict_and_lists_read_like_tensors(tmp_path):
    ref = formats.read(tbe_file(tmp_path / "a.pt", tbe_tensors()))
    for obj in (
        list(tbe_tensors()),
        tuple(x.tolist() for x in tbe_tensors()),
        dict(zip(("indices", "offsets", "lengths"), tbe_tensors())),
    ):
        assert formats.read(tbe_file(tmp_path / "b.pt", obj)).equals(ref)


# ---- malformed dist.json for `sample` (and `train`, `report --vs`) -------------------------------

BAD_DISTS = {
    "not_json": (b"{this is not json", ["JSON"]),
    "json_list": (b"[1, 2, 3]", ["dist.json"]),
    "json_string": (b'"tracegen-dist"', ["dist.json"]),
    "empty": (b"", ["JSON"]),
    "binary": (b"\x00\xff\x10\x80", ["JSON"]),
    "missing_format": (b'{"tables": []}', ["format"]),
}


def _mutated_dist(good: dict, key: str):
    d = json.loads(json.dumps(good))
    t = d["tables"][0]
    if key == "tables_not_list":
        d["tables"] = {"a": 1}
    elif key == "tables_empty":
        d["tables"] = []
    elif key == "table_not_dict":
        d["tables"] = [5]
    elif key == "cardinality_string":
        t["cardinality"] = "lots"
    elif key == "cardinality_float":
        t["cardinality"] = 12.5
    elif key == "cardinality_zero":
        t["cardinality"] = 0
    elif key == "cardinality_null":
        t["cardinality"] = None
    elif key == "missing_ids":
        del t["ids"]
    elif key == "missing_bag":
        del t["bag_length"]
    elif key == "ids_wrong_type":
        t["ids"] = [1, 2]
    elif key == "unknown_family":
        t["ids"]["popularity"]["family"] = "gamma-ray"
    elif key == "params_wrong_type":
        t["ids"]["popularity"]["params"] = "a=0.9"
    elif key == "param_negative":
        t["ids"]["popularity"]["params"]["a"] = -1
    elif key == "param_string":
        t["ids"]["popularity"]["params"]["a"] = "x"
    elif key == "param_nan":
        t["ids"]["popularity"]["params"]["a"] = float("nan")
    elif key == "bag_wrong_kind":
        t["bag_length"] = {"kind": "whatever"}
    elif key == "bag_value_negative":
        t["bag_length"] = {"kind": "constant", "value": -2}
    elif key == "name_not_string":
        t["name"] = 7
    elif key == "schema_string":
        d["schema_version"] = "1"
    elif key == "labels_wrong":
        d["labels"] = {"rate": "half"}
    elif key == "dense_wrong":
        d["dense"] = {"columns": "x"}
    elif key == "source_wrong":
        d["source"] = "real"
    elif key == "top_params_string":
        d["params"] = "min_count=10"
    elif key == "n_samples_negative":
        d["source"] = {"n_samples": -5, "n_tables": 1}
    else:
        raise AssertionError(key)
    return json.dumps(d, allow_nan=True).encode()


MUTATIONS = [
    "tables_not_list",
    "tables_empty",
    "table_not_dict",
    "cardinality_string",
    "cardinality_float",
    "cardinality_zero",
    "cardinality_null",
    "missing_ids",
    "missing_bag",
    "ids_wrong_type",
    "unknown_family",
    "params_wrong_type",
    "param_negative",
    "param_string",
    "param_nan",
    "bag_wrong_kind",
    "bag_value_negative",
    "name_not_string",
    "schema_string",
    "labels_wrong",
    "dense_wrong",
    "source_wrong",
    "n_samples_negative",
    "top_params_string",
]


@pytest.mark.parametrize(
    "key",
    [
        k for k in list(BAD_DISTS) + MUTATIONS
    ],
)
def test_sample_bad_dist_json(tmp_path, capsys, key):
    if key in BAD_DISTS:
        data, needles = BAD_DISTS[key]
    else:
        good = json.loads(open(dist_json(tmp_path, capsys)).read())
        data, needles = _mutated_dist(good, key), []
    d = tmp_path / "bad.json"
    d.write_bytes(data)
    out = tmp_path / "o.npz"
    args = ["sample", d, "-o", out, "-q"] + ([] if key == "n_samples_negative" else ["-n", "20"])
    rc, _, err = cli(capsys, *args)
    assert_user_error(rc, err, str(d), *needles)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


def test_dist_json_with_a_byte_order_mark_samples_as_without(tmp_path, capsys):
    plain = dist_json(tmp_path, capsys)
    d = tmp_path / "bom.json"
    d.write_bytes(b"\xef\xbb\xbf" + open(plain, "rb").read())
    outs = []
    for src, name in ((d, "a.npz"), (plain, "b.npz")):
        rc, _, err = cli(capsys, "sample", src, "-o", tmp_path / name, "-n", "30", "--seed", "3", "-q")
        assert rc == 0, err
        outs.append(formats.read(tmp_path / name))
    assert outs[0].equals(outs[1])


def test_dist_json_is_a_directory(tmp_path, capsys):
    d = tmp_path / "dist.json"
    d.mkdir()
    rc, _, err = cli(capsys, "sample", d, "-o", tmp_path / "o.npz")
    assert_user_error(rc, err, str(d), "directory")


# ---- outputs: missing folder, existing file, a directory; nothing is replaced ----------------------


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "in.npz"
    native_npz(p)
    return str(p)


def _out_cmds(tmp_path, capsys, src, out):
    d = dist_json(tmp_path, capsys)
    return {
        "convert": ["convert", src, out, "-q"],
        "fit": ["fit", src, "-o", out, "-q", "--calibrate", "0"],
        "sample": ["sample", d, "-o", out, "-n", "20", "-q"],
        "spec": ["spec", "--family", "uniform", "--cardinality", "9", "-o", out],
        "profile": ["profile", src, "-o", out, "-q"],
    }


_OUT_NAMES = {"convert": "o.npz", "fit": "o.json", "sample": "o.npz", "spec": "o.json", "profile": "o.json"}


@pytest.mark.parametrize("cmd", list(_OUT_NAMES))
def test_output_exists_without_force(tmp_path, capsys, src, cmd):
    out = tmp_path / _OUT_NAMES[cmd]
    out.write_bytes(b"precious")
    rc, _, err = cli(capsys, *_out_cmds(tmp_path, capsys, src, out)[cmd])
    assert_user_error(rc, err, str(out), "already exists", "--force")
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("cmd", list(_OUT_NAMES))
def test_output_exists_with_force_is_replaced(tmp_path, capsys, src, cmd):
    out = tmp_path / _OUT_NAMES[cmd]
    out.write_bytes(b"precious")
    rc, _, err = cli(capsys, *_out_cmds(tmp_path, capsys, src, out)[cmd], "--force")
    assert rc == 0, err
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("cmd", list(_OUT_NAMES))
def test_output_in_missing_folder(tmp_path, capsys, src, cmd):
    out = tmp_path / "no" / "such" / _OUT_NAMES[cmd]
    rc, _, err = cli(capsys, *_out_cmds(tmp_path, capsys, src, out)[cmd])
    assert_user_error(rc, err, str(out), "does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("cmd", list(_OUT_NAMES))
def test_output_is_a_directory(tmp_path, capsys, src, cmd):
    out = tmp_path / _OUT_NAMES[cmd]
    out.mkdir()
    (out / "keep").write_text("x")
    rc, _, err = cli(capsys, *_out_cmds(tmp_path, capsys, src, out)[cmd], "--force")
    assert_user_error(rc, err, str(out), "directory")
    assert (out / "keep").read_text() == "x"


def test_convert_side_file_exists(tmp_path, capsys, src):
    """dlrm-npz also writes <stem>_day_count.npz: an existing one is not replaced, nor the main output made."""
    side = tmp_path / "o_day_count.npz"
    side.write_bytes(b"precious")
    rc, _, err = cli(capsys, "convert", src, tmp_path / "o.npz", "--to", "dlrm-npz", "-q")
    assert_user_error(rc, err, str(side), "already exists")
    assert side.read_bytes() == b"precious"
    assert not (tmp_path / "o.npz").exists()


def test_convert_onto_itself(tmp_path, capsys, src):
    before = open(src, "rb").read()
    rc, _, err = cli(capsys, "convert", src, src, "--force", "-q")
    assert_user_error(rc, err, src, "same file")
    assert open(src, "rb").read() == before


def test_report_output_is_a_file(tmp_path, capsys, src):
    out = tmp_path / "rep"
    out.write_bytes(b"precious")
    rc, _, err = cli(capsys, "report", src, "-o", out, "--no-measure", "-q")
    assert_user_error(rc, err, str(out), "not a directory")
    assert out.read_bytes() == b"precious"


def test_report_existing_report_needs_force(tmp_path, capsys, src):
    out = tmp_path / "rep"
    rc, _, err = cli(capsys, "report", src, "-o", out, "--no-measure", "-q")
    assert rc == 0, err
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    rc, _, err = cli(capsys, "report", src, "-o", out, "--no-measure", "-q")
    assert_user_error(rc, err, str(out), "--force")
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before


def test_report_bad_vs_dist(tmp_path, capsys, src):
    d = tmp_path / "bad.json"
    d.write_text("[]")
    rc, _, err = cli(capsys, "report", src, "--vs", d, "-o", tmp_path / "rep", "--no-measure", "-q")
    assert_user_error(rc, err, str(d))


def test_train_bad_inputs(tmp_path, capsys, src):
    rc, _, err = cli(capsys, "train", tmp_path / "missing.npz", "--num-batches", "1", "-q")
    assert_user_error(rc, err, "missing.npz", "no such file")
    d = tmp_path / "bad.json"
    d.write_text("[1]")
    rc, _, err = cli(capsys, "train", d, "--num-batches", "1", "-q")
    assert_user_error(rc, err, str(d))
    e = tmp_path / "empty.npy"
    np.save(e, np.zeros(0, np.int64))
    rc, _, err = cli(capsys, "train", e, "--num-batches", "1", "-q")
    assert_user_error(rc, err, str(e), "empty")


# ---- interrupted writes leave nothing half-written -----------------------------------------------


def test_interrupted_convert_leaves_no_partial_output(tmp_path, capsys, src, monkeypatch):
    out = tmp_path / "o.bin"
    out.write_bytes(b"precious")
    from tracegen.formats import cache

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "next_access_vtime", boom)
    rc, _, err = cli(capsys, "convert", src, out, "--table", "all", "--force", "-q")
    assert rc == 130 and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


def test_disk_full_during_convert(tmp_path, capsys, src, monkeypatch):
    """The system refusing a write (ENOSPC) is one line, exit 2; the old output survives, no temp is left."""
    import errno

    from tracegen.formats import native

    def full(path, members, compress=False):
        with open(path, "wb") as f:
            f.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(native, "assemble_npz", full)
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    rc, _, err = cli(capsys, "convert", src, out, "--force", "-q")
    assert_user_error(rc, err, os.strerror(errno.ENOSPC))
    assert out.read_bytes() == b"precious"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


@pytest.mark.parametrize("cmd", ["convert", "fit", "sample", "profile"])
def test_output_with_trailing_slash(tmp_path, capsys, src, cmd):
    out = str(tmp_path / "newdir") + "/"
    argv = {"convert": ["convert", src, out, "--to", "npz"], "fit": ["fit", src, "-o", out, "--calibrate", "0"],
            "sample": ["sample", dist_json(tmp_path, capsys), "-o", out, "-n", "5", "--to", "npz"],
            "profile": ["profile", src, "-o", out]}[cmd]
    rc, _, err = cli(capsys, *argv, "-q")
    assert_user_error(rc, err, out)
    assert not (tmp_path / "newdir").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


def test_interrupted_sample_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    d = dist_json(tmp_path, capsys)
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    from tracegen.formats import native

    real = native.NpzStreamWriter.write
    calls = []

    def write(self, chunk):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, chunk)

    monkeypatch.setattr(native.NpzStreamWriter, "write", write)
    rc, _, err = cli(capsys, "sample", d, "-o", out, "-n", "100", "--chunk", "10", "--force", "-q")
    assert rc == 130 and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


def test_interrupted_report_leaves_no_partial_files(tmp_path, capsys, src, monkeypatch):
    """A report interrupted while a figure is being written leaves no truncated PNG behind."""
    from matplotlib.figure import Figure

    out = tmp_path / "rep"
    real = Figure.savefig
    calls = []

    def savefig(self, fname, *a, **k):
        calls.append(fname)
        if len(calls) == 2:  # the second figure: half written, then Ctrl-C
            with open(fname, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n half")
            raise KeyboardInterrupt
        return real(self, fname, *a, **k)

    monkeypatch.setattr(Figure, "savefig", savefig)
    rc, _, err = cli(capsys, "report", src, "-o", out, "--no-measure", "-q")
    assert rc == 130 and "Traceback" not in err
    assert len(calls) == 2
    for name in os.listdir(out):
        assert not name.startswith(".tracegen"), name
        if name.endswith(".png"):
            assert (out / name).read_bytes().endswith(b"IEND\xaeB`\x82"), f"{name} is truncated"


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", ["0", "-3", "abc", "1.5"])
def test_sample_bad_n(tmp_path, capsys, n):
    d = dist_json(tmp_path, capsys)
    out = tmp_path / "o.npz"
    rc, _, err = cli(capsys, "sample", d, "-o", out, "-n", n)
    assert_user_error(rc, err, "-n")
    assert not out.exists()


@pytest.mark.parametrize("n", [str(2**70), str(10**15)])
def test_sample_absurd_n(tmp_path, capsys, n):
    d = dist_json(tmp_path, capsys)
    out = tmp_path / "o.npz"
    rc, _, err = cli(capsys, "sample", d, "-o", out, "-n", n, "-q")
    assert_user_error(rc, err, "-n")
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tracegen")]


def test_sample_n_beyond_free_disk(tmp_path, capsys, monkeypatch):
    import shutil

    d = dist_json(tmp_path, capsys)
    out = tmp_path / "o.npz"
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, (1 << 30) - (1 << 20), 1 << 20))
    rc, _, err = cli(capsys, "sample", d, "-o", out, "-n", str(10**6), "-q")
    assert_user_error(rc, err, str(out), "GiB free")
    assert not out.exists()


@pytest.mark.parametrize("seed", ["x", "1.5", ""])
def test_bad_seed(tmp_path, capsys, src, seed):
    d = dist_json(tmp_path, capsys)
    rc, _, err = cli(capsys, "sample", d, "-o", tmp_path / "o.npz", "--seed", seed)
    assert_user_error(rc, err, "--seed")
    rc, _, err = cli(capsys, "profile", src, "--seed", seed)
    assert_user_error(rc, err, "--seed")


def test_negative_seed(tmp_path, capsys):
    d = dist_json(tmp_path, capsys)
    rc, _, err = cli(capsys, "sample", d, "-o", tmp_path / "o.npz", "-n", "10", "--seed", "-1", "-q")
    assert_user_error(rc, err, "--seed")


@pytest.mark.parametrize("w", ["0", "-1", "many"])
def test_workers_zero(tmp_path, capsys, src, w):
    d = dist_json(tmp_path, capsys)
    rc, _, err = cli(capsys, "sample", d, "-o", tmp_path / "o.npz", "--workers", w)
    assert_user_error(rc, err, "--workers")
    rc, _, err = cli(capsys, "fit", src, "-o", tmp_path / "o.json", "--workers", w)
    assert_user_error(rc, err, "--workers")


@pytest.mark.parametrize("tables", [["nope"], ["99"], ["C1", "C1"], ["-1"]])
def test_fit_missing_table(tmp_path, capsys, src, tables):
    out = tmp_path / "o.json"
    rc, _, err = cli(capsys, "fit", src, "-o", out, "--tables", *tables, "-q")
    assert_user_error(rc, err, src, "table")
    assert not out.exists()


@pytest.mark.parametrize("table", ["nope", "99", "-1"])
def test_profile_and_convert_missing_table(tmp_path, capsys, src, table):
    rc, _, err = cli(capsys, "profile", src, "--table", table, "-q")
    assert_user_error(rc, err, src, "table")
    out = tmp_path / "o.txt"
    rc, _, err = cli(capsys, "convert", src, out, "--table", table, "-q")
    assert_user_error(rc, err, str(out), "table")
    assert not out.exists()


def test_convert_multi_table_to_single_table_format(tmp_path, capsys, src):
    out = tmp_path / "o.oracleGeneral.bin"
    rc, _, err = cli(capsys, "convert", src, out, "-q")
    assert_user_error(rc, err, str(out), "--table")
    assert not out.exists()


def test_unknown_output_extension(tmp_path, capsys, src):
    out = tmp_path / "o.parquet"
    rc, _, err = cli(capsys, "convert", src, out, "-q")
    assert_user_error(rc, err, str(out), "--to")


@pytest.mark.parametrize(
    "args",
    [
        ["--family", "zipf", "--a", "0.9", "--cardinality", "0"],
        ["--family", "zipf", "--a", "-1", "--cardinality", "10"],
        ["--family", "zipf", "--a", "nan", "--cardinality", "10"],
        ["--family", "lognormal", "--mu", "1", "--sigma", "-1", "--cardinality", "10"],
        ["--family", "powerlaw", "--alpha", "inf", "--cardinality", "10"],
        ["--family", "lognormal", "--mu", "1", "--sigma", "1", "--cold-rate", "2", "--cardinality", "10"],
        ["--family", "zipf", "--a", "1", "--cardinality", str(2**70)],
    ],
    ids=["card0", "a_negative", "a_nan", "sigma_negative", "alpha_inf", "cold_rate_2", "card_huge"],
)
def test_spec_bad_parameters(tmp_path, capsys, args):
    out = tmp_path / "s.json"
    rc, _, err = cli(capsys, "spec", *args, "-o", out)
    assert_user_error(rc, err)
    assert not out.exists()


def test_profile_bad_rates(tmp_path, capsys, src):
    for flag, v in (("--sample-rate", "0"), ("--sample-rate", "1.5"), ("--sample-rate", "nan"), ("--row-bytes", "0")):
        rc, _, err = cli(capsys, "profile", src, flag, v)
        assert_user_error(rc, err, flag)


def test_fit_bad_privacy_and_min_count(tmp_path, capsys, src):
    out = tmp_path / "o.json"
    for args in (["--epsilon", "0"], ["--epsilon", "-1"], ["--epsilon", "nan"], ["--epsilon", "1", "--delta", "2"],
                 ["--min-count", "1"], ["--min-count", "-4"]):
        rc, _, err = cli(capsys, "fit", src, "-o", out, "-q", "--calibrate", "0", *args)
        assert_user_error(rc, err)
        assert not out.exists()


def test_no_command_and_unknown_command(capsys):
    rc, _, err = cli(capsys, "frobnicate")
    assert_user_error(rc, err, "frobnicate")


@pytest.mark.parametrize("args", [["--obj-size", str(2**40)], ["--obj-size", "-1"], ["--days", "-2"]])
def test_convert_bad_write_options(tmp_path, capsys, src, args):
    out = tmp_path / ("o.bin" if args[0] == "--obj-size" else "o.npz")
    to = ["--table", "C1"] if args[0] == "--obj-size" else ["--to", "dlrm-npz"]
    rc, _, err = cli(capsys, "convert", src, out, *to, *args, "-q")
    assert_user_error(rc, err, args[0])
    assert not out.exists()


def test_train_corrupt_checkpoint(tmp_path, capsys):
    p = tmp_path / "ids.npy"
    np.save(p, np.random.default_rng(0).integers(0, 20, (64, 2)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    rc, _, err = cli(capsys, "train", p, "--num-batches", "1", "--out", run, "--resume", "-q")
    assert_user_error(rc, err, "checkpoint.pt")


def test_train_out_is_a_file_and_resume_without_checkpoint(tmp_path, capsys):
    p = tmp_path / "ids.npy"
    np.save(p, np.random.default_rng(0).integers(0, 20, (64, 2)))
    run = tmp_path / "run"
    rc, _, err = cli(capsys, "train", p, "--num-batches", "1", "--out", run, "--resume", "-q")
    assert_user_error(rc, err, "checkpoint.pt", "no checkpoint")
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = cli(capsys, "train", p, "--num-batches", "1", "--out", f, "-q")
    assert_user_error(rc, err, str(f))
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "args",
    [["--mini-batch-size", "0"], ["--num-batches", "0"], ["--num-batches", "-1"], ["--learning-rate", "nan"],
     ["--arch-embedding-size", "5-5-5"], ["--arch-embedding-size", "x-y"]],
)
def test_train_bad_arguments(tmp_path, capsys, args):
    p = tmp_path / "ids.npy"
    np.save(p, np.random.default_rng(0).integers(0, 20, (64, 2)))
    rc, _, err = cli(capsys, "train", p, *args, "-q")
    assert_user_error(rc, err)


def test_spec_bad_locality_stats(tmp_path, capsys):
    p = tmp_path / "stats.txt"
    p.write_text("this is not a stats file\n")
    out = tmp_path / "s.json"
    rc, _, err = cli(capsys, "spec", "--from-locality-stats", p, "--table", "0", "-o", out)
    assert_user_error(rc, err, str(p))
    assert not out.exists()


def test_demo_output_is_a_file(tmp_path, capsys):
    f = tmp_path / "demo"
    f.write_text("x")
    rc, _, err = cli(capsys, "demo", "-o", f, "-q")
    assert_user_error(rc, err, str(f))
    assert f.read_text() == "x"


@pytest.mark.parametrize("ext", ["o.oracleGeneral.bin", "o.csv", "o.npy", "o.txt", "o.log"])
def test_convert_empty_table_to_single_table_format(tmp_path, capsys, ext):
    """A table with no id at all is not written as an empty (unreadable) file."""
    import torch

    ln = torch.tensor([[1, 2, 0, 1], [0, 0, 0, 0]])
    o = torch.zeros(9, dtype=torch.int64)
    o[1:] = torch.cumsum(ln.flatten(), 0)
    p = tbe_file(tmp_path / "r.pt", (torch.tensor([1, 2, 3, 1]), o, ln))
    out = tmp_path / ext
    rc, _, err = cli(capsys, "convert", p, out, "--table", "t1", "-q")
    assert_user_error(rc, err, str(out), "t1")
    assert not out.exists()
    rc, _, err = cli(capsys, "convert", p, out, "--table", "t0", "-q")
    assert rc == 0, err
    assert formats.read(out).n_accesses == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--max-bag", "0"],
        ["--max-bag", "-1", "--epsilon", "1"],
        ["--max-bag", "3"],  # without --epsilon it would be ignored
        ["--epsilon", "inf"],
        ["--delta", "nan", "--epsilon", "1"],
        ["--calibrate", "-1"],
    ],
)
def test_fit_bad_numbers(tmp_path, capsys, src, args):
    out = tmp_path / "o.json"
    rc, _, err = cli(capsys, "fit", src, "-o", out, "-q", "--calibrate", "0", *args)
    assert_user_error(rc, err, args[0])
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [["--throughput", "nan"], ["--throughput", "-5"], ["--device", "bogus"], ["--device", "cuda:99"], ["--dim", "0"],
     ["--budget", "lots"], ["--batch-size", "0"], ["--sample-rate", "2"]],
)
def test_report_bad_arguments(tmp_path, capsys, src, args):
    out = tmp_path / "rep"
    rc, _, err = cli(capsys, "report", src, "-o", out, "-q", *args)
    assert_user_error(rc, err, args[0])
    assert not out.exists()


@pytest.mark.parametrize("args", [["--device", "bogus"], ["--device", "cuda:99"], ["--learning-rate", "-1"]])
def test_train_bad_device_and_rate(tmp_path, capsys, args):
    p = tmp_path / "ids.npy"
    np.save(p, np.random.default_rng(0).integers(0, 20, (64, 2)))
    rc, _, err = cli(capsys, "train", p, "--num-batches", "1", "-q", *args)
    assert_user_error(rc, err, args[0])


def test_profile_row_bytes_too_large(capsys, src):
    rc, _, err = cli(capsys, "profile", src, "--row-bytes", str(10**20), "-q")
    assert_user_error(rc, err, "--row-bytes")


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_profile_shared_cache_of_raw_64bit_keys(tmp_path, capsys):
    """Two tables of raw hashed keys: the shared-cache id space must not wrap around int64."""
    p = tmp_path / "hashed.npy"
    np.save(p, np.array([[2**63 - 1, 1], [5, 2], [2**63 - 1, 1]], dtype=np.int64))
    rc, out, err = cli(capsys, "profile", p, "-o", tmp_path / "p.json", "-q")
    assert rc == 0, err
    shared = json.loads((tmp_path / "p.json").read_text())["shared"]
    assert shared["accesses"] == 6 and shared["distinct"] == 4


@pytest.fixture
def multi_hot_dist(tmp_path, capsys):
    import torch

    g = torch.Generator().manual_seed(0)
    ln = torch.randint(0, 4, (3, 200), generator=g)
    o = torch.zeros(601, dtype=torch.int64)
    o[1:] = torch.cumsum(ln.flatten(), 0)
    p = tbe_file(tmp_path / "mh.pt", (torch.randint(0, 50, (int(o[-1]),), generator=g), o, ln))
    d = tmp_path / "mh.json"
    rc, _, err = cli(capsys, "fit", p, "-o", d, "-q", "--calibrate", "0")
    assert rc == 0, err
    return str(d)


@pytest.mark.parametrize(
    "out, args, needle",
    [
        ("x.npz", ["--to", "dlrm-npz"], "multi-hot"),
        ("x.bin", ["--to", "mlperf-bin"], "multi-hot"),
        ("x.npy", [], "multi-hot"),
        ("x.log", [], "--table"),
        ("x.oracleGeneral.bin", ["--table", "nope"], "nope"),
        ("x.npz", ["--days", "3"], "days"),
    ],
)
def test_sample_multi_hot_into_formats_that_cannot_hold_it(tmp_path, capsys, multi_hot_dist, out, args, needle):
    o = tmp_path / "so" / out
    o.parent.mkdir()
    rc, _, err = cli(capsys, "sample", multi_hot_dist, "-o", o, "-n", "50", "-q", *args)
    assert_user_error(rc, err, str(o), needle)
    assert os.listdir(o.parent) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_folder_not_writable(tmp_path, capsys, src):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, _, err = cli(capsys, "convert", src, ro / "o.npz", "-q")
        assert_user_error(rc, err, str(ro / "o.npz"), "not writable")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("cmd", ["convert", "fit", "profile"])
def test_output_is_the_input_even_with_force(tmp_path, capsys, src, cmd):
    """--force never replaces the file being read (also through a symlink)."""
    before = open(src, "rb").read()
    link = tmp_path / "link.npz"
    link.symlink_to(src)
    argv = {"convert": ["convert", src, link], "fit": ["fit", src, "-o", link, "--calibrate", "0"],
            "profile": ["profile", src, "-o", link]}[cmd]
    rc, _, err = cli(capsys, *argv, "--force", "-q")
    assert_user_error(rc, err, str(link))
    assert open(src, "rb").read() == before and link.is_symlink()


def test_report_vs_trace_with_other_tables(tmp_path, capsys, src):
    other = tmp_path / "other.npy"
    np.save(other, np.arange(40) % 6)
    rc, _, err = cli(capsys, "report", src, "--vs", other, "-o", tmp_path / "rep", "--no-measure", "-q")
    assert_user_error(rc, err, str(other), "1 tables", "2")
    assert not (tmp_path / "rep").exists()


def test_report_vs_trace_with_other_names_says_tables_go_by_position(tmp_path, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    formats.write(Trace([Table.one_hot("C1", np.arange(60) % 7, 7)]), a)
    formats.write(Trace([Table.one_hot("X9", np.arange(60) % 5, 5)]), b)
    rc, out, err = cli(capsys, "report", a, "--vs", b, "-o", tmp_path / "rep", "--no-measure", "-q")
    assert rc == 0 and "compared by position" in err and "C1~X9" in err
