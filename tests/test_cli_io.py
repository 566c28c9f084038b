"""The ``inspect``, ``convert`` and ``demo`` commands via ``cli.main``: exit codes, output, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import naive
from tracegen import Table, Trace, formats
from tracegen.cli import main


def _trace(rng, b=50):
    t0 = Table.one_hot("C1", rng.integers(0, 7, b), 7)
    lens = rng.integers(1, 4, b)
    t1 = Table.from_lengths("C2", rng.integers(0, 100, int(lens.sum())), lens, 100)
    return Trace(
        [t0, t1],
        dense=rng.integers(0, 9, (b, 13)).astype(np.float32),
        labels=rng.integers(0, 2, b).astype(np.float32),
    )


def _one_line_error(capsys, path_part: str, pattern: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("tracegen: error: ") and path_part in err and pattern in err, err


def test_inspect_text_and_json(tmp_path, rng, capsys):
    tr = _trace(rng)
    p = tmp_path / "t.npz"
    formats.write(tr, p)
    assert main(["inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert ": npz" in out and "samples 50" in out and "C2" in out
    assert main(["inspect", str(p), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["format"] == "npz" and s["samples"] == 50 and s["tables"] == 2 and s["dense_features"] == 13
    c2 = s["per_table"][1]
    assert c2["accesses"] == tr.tables[1].n_accesses
    assert c2["distinct"] == len(set(tr.tables[1].values.tolist()))
    assert c2["cardinality"] == 100 and c2["one_hot"] is False
    assert c2["bag_min"] == int(tr.tables[1].lengths.min()) and c2["bag_max"] == int(
        tr.tables[1].lengths.max()
    )
    assert c2["bag_mean"] == pytest.approx(tr.tables[1].lengths.mean())


def test_inspect_dist_log(tmp_path, capsys):
    p = tmp_path / "dist_emb_0.log"
    p.write_text("1, 2, 3\n0, 1, 3\n0.5, 0.75, 1.0\n")
    assert main(["inspect", str(p), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["format"] == "dlrm-dist" and s["cold_probability"] == 0.5 and s["max_stack_distance"] == 2


def test_inspect_with_reader_options(tmp_path, capsys):
    p = tmp_path / "keys.csv"
    p.write_text("time,key,size\n1,900,1\n2,700,1\n3,900,1\n")
    assert main(["inspect", str(p), "--densify", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["per_table"][0]["cardinality"] == 2 and s["per_table"][0]["distinct"] == 2
    assert main(["inspect", str(p), "--json", "--id-col", "time"]) == 0
    assert json.loads(capsys.readouterr().out)["per_table"][0]["cardinality"] == 4
    assert main(["inspect", str(p), "--from", "txt", "--id-col", "key"]) == 2
    _one_line_error(capsys, "keys.csv", "txt reader takes no option 'id_col'")


def test_convert_round_trip_and_no_overwrite(tmp_path, rng, capsys):
    tr = _trace(rng)
    src, dst = tmp_path / "t.npz", tmp_path / "t.pt"
    formats.write(tr, src)
    assert main(["convert", str(src), str(dst), "--quiet"]) == 0
    assert capsys.readouterr().out == ""  # -q: nothing on stdout
    back = formats.read(dst, cardinalities=[7, 100], names=["C1", "C2"])
    assert all(a.equals(b) for a, b in zip(back.tables, tr.tables))
    before = dst.read_bytes()
    assert main(["convert", str(src), str(dst)]) == 2
    _one_line_error(capsys, "t.pt", "--force")
    assert dst.read_bytes() == before
    assert main(["convert", str(src), str(dst), "--force"]) == 0


def test_convert_single_table_options(tmp_path, rng, capsys):
    tr = _trace(rng)
    src = tmp_path / "t.npz"
    formats.write(tr, src)
    out = tmp_path / "c2.oracleGeneral.bin"
    assert main(["convert", str(src), str(out)]) == 2
    _one_line_error(capsys, "c2.oracleGeneral.bin", "--table")
    assert not out.exists()
    assert main(["convert", str(src), str(out), "--table", "C2", "--obj-size", "64"]) == 0
    back = formats.read(out)
    np.testing.assert_array_equal(back.tables[0].values, tr.tables[1].values)
    txt = tmp_path / "all.txt"
    assert main(["convert", str(src), str(txt), "--table", "all"]) == 0
    assert len(txt.read_text().split()) == tr.n_accesses


def test_convert_criteo_to_dlrm_npz(tmp_path, capsys):
    lines = [
        "\t".join([str(i % 2)] + [str(i - 3)] * 13 + [f"{(i * 7 + j) % 5:x}" for j in range(26)])
        for i in range(30)
    ]
    src = tmp_path / "train.txt"
    src.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "processed.npz"
    assert (
        main(["convert", str(src), str(dst), "--to", "dlrm-npz", "--max-ind-range", "3", "--days", "3"]) == 0
    )
    capsys.readouterr()
    back = formats.read(dst)
    y, x_int, x_cat, counts = naive.criteo_lines(lines, max_ind_range=3)
    np.testing.assert_array_equal(back.to_dense_ids(), x_cat)
    np.testing.assert_array_equal(back.dense, x_int)
    with np.load(tmp_path / "processed_day_count.npz") as z:
        assert z["total_per_file"].tolist() == [10, 10, 10]


@pytest.mark.parametrize(
    "content, name, pattern",
    [
        (b"1\n-2\n", "neg.txt", "negative id -2"),
        (b"", "empty.txt", "empty"),
        (b"\x00\x01\x02", "blob.bin", "size 3 is not a multiple"),
        (b"PK\x03\x04junk", "bad.npz", "truncated or corrupt"),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, content, name, pattern):
    p = tmp_path / name
    p.write_bytes(content)
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, name, pattern)
    out = tmp_path / "out.npz"
    assert main(["convert", str(p), str(out)]) == 2
    _one_line_error(capsys, name, pattern)
    assert not out.exists()


def test_missing_input_and_bad_format_name(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.npz")]) == 2
    _one_line_error(capsys, "nope.npz", "no such file")
    p = tmp_path / "a.txt"
    p.write_text("1\n")
    assert main(["inspect", str(p), "--from", "parquet"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_native_corruption_caught_by_inspect(tmp_path, capsys):
    """inspect and convert scan every id of a native npz (the library's lazy open does not)."""
    tr = Trace.single(np.array([0, 1, 2, 1]), cardinality=3)
    p = tmp_path / "t.npz"
    formats.write(tr, p)
    raw = bytearray(p.read_bytes())
    needle = np.array([0, 1, 2, 1], np.int64).tobytes()
    i = bytes(raw).index(needle)
    raw[i : i + 8] = np.array([-5], np.int64).tobytes()
    p.write_bytes(bytes(raw))
    assert main(["inspect", str(p)]) == 2
    _one_line_error(capsys, "t.npz", "negative id -5")


def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "[2]" in out
    produced = tmp_path / "tracegen-demo" / "example_processed.npz"
    tr = formats.read(produced)
    assert tr.n_tables == 26 and tr.n_samples > 10_000
    assert main(["demo", "--quiet"]) == 2
    _one_line_error(capsys, "example_processed", "--force")
    assert main(["demo", "--quiet", "--force", "-o", str(tmp_path / "other")]) == 0


def test_inspect_criteo_streams_same_summary(tmp_path, capsys):
    from tracegen.commands.inspect import summarize

    lines = [
        "\t".join([str(i % 3 == 0)] + ["1"] * 13 + [f"{(i * (j + 1)) % 7:x}" for j in range(26)])
        for i in range(40)
    ]
    lines = [ln.replace("True", "1").replace("False", "0") for ln in lines]
    p = tmp_path / "day_0"
    p.write_text("\n".join(lines) + "\n")
    assert main(["inspect", str(p), "--json"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    full = summarize(formats.read(p), path=str(p), fmt="criteo-tsv", progress=False)
    assert streamed == json.loads(json.dumps(full))


def test_convert_refuses_stdout(tmp_path, rng, capsys):
    src = tmp_path / "t.npz"
    formats.write(_trace(rng), src)
    assert main(["convert", str(src), "-", "--to", "txt", "--table", "C1"]) == 2
    _one_line_error(capsys, "-", "not to stdout")
    assert not (tmp_path / "-").exists()


def test_help_lists_the_io_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "inspect", "convert"):
        assert f"    {cmd} " in out
    assert main(["convert", "--help"]) == 0
    assert "--table" in capsys.readouterr().out


def test_inspect_quiet_prints_nothing_but_still_checks(tmp_path, rng, capsys):
    p = tmp_path / "t.npz"
    formats.write(_trace(rng), p)
    assert main(["inspect", str(p), "-q"]) == 0
    assert capsys.readouterr().out == ""
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nnot an id\n")
    assert main(["inspect", str(bad), "-q"]) == 2
    _one_line_error(capsys, "bad.txt", "not a trace: line 2 is not an integer id: 'not an id'")


@pytest.mark.parametrize("to, ext", [("npy", ".npy"), ("tbe-pt", ".pt")])
def test_convert_to_ids_only_format_notes_what_is_dropped(tmp_path, rng, capsys, to, ext):
    src = tmp_path / "t.npz"
    formats.write(_trace(rng), src)
    out = tmp_path / f"o{ext}"
    args = ["convert", str(src), str(out), "--to", to] + (["--table", "C1"] if to == "npy" else [])
    assert main(args) == 0
    cap = capsys.readouterr()
    assert f"note: {to} keeps ids only: dense features and labels" in cap.err, cap.err
    assert cap.err.count("\n") == 1
    assert main(args[:2] + [str(tmp_path / f"q{ext}")] + args[3:] + ["-q"]) == 0
    assert capsys.readouterr().err == ""


def test_convert_one_table_is_singular(tmp_path, rng, capsys):
    tr = _trace(rng)
    src = tmp_path / "t.npz"
    formats.write(tr.select(["C1"]), src)
    assert main(["convert", str(src), str(tmp_path / "o.npz")]) == 0
    out = capsys.readouterr().out
    assert "50 samples, 1 table, 50 accesses" in out, out


def test_convert_no_note_when_nothing_is_dropped(tmp_path, rng, capsys):
    src = tmp_path / "t.npz"
    formats.write(_trace(rng), src)
    assert main(["convert", str(src), str(tmp_path / "o.npz")]) == 0
    assert "note" not in capsys.readouterr().err


def test_spec_takes_quiet(tmp_path, capsys):
    out = tmp_path / "z.json"
    assert main(["spec", "--family", "zipf", "--a", "0.9", "--cardinality", "100", "-o", str(out), "-q"]) == 0
    assert out.exists() and capsys.readouterr().out == ""
