"""``report`` on raw 64-bit keys, its input-format options, ``--vs`` a model of some tables, the SHARDS note."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis import footprint as fp
from analysis import report
from tracegen.cli import main
from tracegen.locality import dense_keys
from tracegen.trace import Table, Trace
from tracegen.tracemodel import SPARSE_KEYS


def _raw_ids(rng, base: int, n: int = 3000, distinct: int = 400, zipf: bool = True) -> np.ndarray:
    """Zipf-ish (or uniform) accesses over ``distinct`` keys scattered in ``[base, base + 2**40)`` (int64)."""
    keys = base + rng.choice(1 << 40, distinct, replace=False).astype(np.int64)
    pick = np.minimum(rng.zipf(1.2, n) - 1, distinct - 1) if zipf else rng.integers(0, distinct, n)
    return keys[pick]


def _finite(x) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def test_raw_keys_near_2_62_equal_the_densified_trace(tmp_path, rng):
    ids = _raw_ids(rng, (1 << 62) - (1 << 41), n=6000, distinct=3000, zipf=False)
    raw = Trace.single(ids)
    assert raw.tables[0].cardinality > 1 << 61 and fp.is_raw_keys(raw.tables[0])
    keys, u = dense_keys(ids)
    dense = Trace.single(keys)
    assert dense.tables[0].cardinality == u and not fp.is_raw_keys(dense.tables[0])
    kw = dict(measure=False, progress=False, batch_size=256, threshold=1000)  # the shared stream is sampled
    a = report.write_report(raw, tmp_path / "raw", **kw)
    b = report.write_report(dense, tmp_path / "dense", **kw)
    assert a["traces"] == b["traces"] and _finite(a["traces"])
    f = a["traces"]["trace"]["footprint"]
    assert f["total_rows"] == f["total_rows_touched"] == u
    assert f["total_table_bytes"]["fp32"] == u * 256
    assert a["raw_key_tables"] == {"trace": ["t0"]} and b["raw_key_tables"] == {"trace": []}
    assert "distinct ids" in a["raw_key_note"] and b["raw_key_note"] is None
    assert "Raw keys" in report.text_summary(a) and "Raw keys" not in report.text_summary(b)
    assert a["sampling"]["used"] and a["sampling"] == b["sampling"]
    assert json.loads((tmp_path / "raw" / "summary.json").read_text())["traces"] == json.loads(
        (tmp_path / "dense" / "summary.json").read_text())["traces"]


def test_cli_report_keys_of_3e15(tmp_path, rng, capsys):
    ids = _raw_ids(rng, 3 * 10**15, n=2000, distinct=300)
    u = len(np.unique(ids))
    path = tmp_path / "keys.txt"
    path.write_text("\n".join(map(str, ids.tolist())) + "\n")
    out = tmp_path / "r"
    assert main(["report", str(path), "-o", str(out), "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert f"{u:,} of {u:,} rows touched" in text and "TiB" not in text
    s = json.loads((out / "summary.json").read_text())
    f = s["traces"]["keys.txt"]["footprint"]
    assert f["tables"][0]["cardinality"] == u and f["total_table_bytes"]["fp32"] == u * 256
    whole = s["traces"]["keys.txt"]["placement"]["tables"]
    assert whole["bytes_used"] in (0, u * 256) and whole["rows_kept"]["t0"] in (0, u)
    assert s["raw_key_tables"] == {"keys.txt": ["t0"]}


def test_cli_report_key_of_2_62(tmp_path, capsys):
    path = tmp_path / "big.txt"
    path.write_text("1\n2\n3\n1\n4611686018427387904\n1\n")
    assert main(["report", str(path), "-o", str(tmp_path / "r"), "--no-measure", "-q"]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["traces"]["big.txt"]["footprint"]["total_rows"] == 4


def test_raw_key_rule():
    def table(values, card=None):
        return Table.one_hot("t", np.asarray(values, np.int64), card)

    assert fp.is_raw_keys(table([0, SPARSE_KEYS - 1], SPARSE_KEYS))  # the range alone says keys
    assert fp.is_raw_keys(table([0, 5, 64 * 3]))  # range 193 > 64 x 3 distinct, and ends on a touched id
    assert not fp.is_raw_keys(table([0, 5, 64 * 3 - 1]))  # 192 = 64 x 3: not above the ratio
    assert not fp.is_raw_keys(table([0, 5, 7], 10_000_000))  # declared rows beyond the ids: a table
    assert not fp.is_raw_keys(table([0, 1, 2, 3]))


def test_place_whole_tables_with_a_huge_cardinality_does_not_overflow():
    t = Trace([Table.one_hot("k", np.array([1, 1, 1 << 62], np.int64)),
               Table.one_hot("s", np.array([0, 1, 0], np.int64))])
    p = fp.place(t, 1 << 20, 64, "fp32", "tables")
    assert p.tables_kept == ["s"] and p.bytes_used == 2 * 256 and p.hit_ratio == pytest.approx(0.5)


def test_cli_report_input_format_options(tmp_path, capsys):
    path = tmp_path / "hex.csv"
    path.write_text("time,id\n1,0x1f\n2,0xabc\n3,0x1f\n4,0x2\n")
    out = tmp_path / "r"
    assert main(["report", str(path), "--id-col", "id", "-o", str(out), "--no-measure", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert main(["report", str(path), "--from", "lcs-csv", "--id-col", "id", "--densify", "-o", str(out),
                 "--no-measure", "-q"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["traces"]["hex.csv"]["footprint"]["total_rows_touched"] == 3
    assert s["traces"]["hex.csv"]["accesses"] == 4
    # the options apply to a data OTHER too
    out2 = tmp_path / "r2"
    assert main(["report", str(path), "--vs", str(path), "--id-col", "id", "--densify", "-o", str(out2),
                 "--no-measure", "-q"]) == 0
    s = json.loads((out2 / "summary.json").read_text())
    assert s["comparison"]["shared"]["mrc_mae"] == 0


def test_cli_report_vs_model_of_some_tables(tmp_path, rng, capsys):
    from tracegen import formats
    from tracegen.tracemodel import TraceModel

    x = rng.zipf(1.3, (400, 4)) % 40
    tr = Trace.from_dense_ids(x, [40, 50, 60, 70])
    path = tmp_path / "t.npz"
    formats.write(tr, path, "npz")
    sub = tmp_path / "sub.json"
    TraceModel(calibrate=0).fit(tr.select(["C4", "C2"])).save(sub)
    out = tmp_path / "r"
    assert main(["report", str(path), "--vs", str(sub), "-o", str(out), "--no-measure", "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 of the 4 tables" in err and "C4, C2" in err
    s = json.loads((out / "summary.json").read_text())
    assert [t["name"] for t in s["traces"]["t.npz"]["footprint"]["tables"]] == ["C4", "C2"]
    assert s["traces"]["sub.json"]["tables"] == 2
    # a model with a table TRACE lacks is still refused, in one line
    other = tmp_path / "other.json"
    TraceModel(calibrate=0).fit(Trace.from_dense_ids(x[:, :2], [40, 50], names=["C1", "Z9"])).save(other)
    assert main(["report", str(path), "--vs", str(other), "-o", str(tmp_path / "o"), "--no-measure", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 2 tables" in err


def test_sampling_note_says_what_happened_per_stream(tmp_path, rng):
    few = rng.integers(0, 1500, 6000)  # 1,500 distinct: 2000 / 6000 would sample ~500 rows, so raised
    many = rng.integers(0, 50_000, 6000)  # ~5,600 distinct: 1/3 samples ~1,900, kept as threshold / N
    tr = Trace([Table.one_hot("few", few, 1500), Table.one_hot("many", many, 50_000)])
    s = report.write_report(tr, tmp_path / "a", threshold=2000, measure=False, progress=False)
    rows = {r["name"]: r for r in s["sampling"]["streams"]["trace"]}
    u = len(np.unique(few))
    assert rows["few"]["distinct"] == u and rows["few"]["raised"]
    assert rows["few"]["rate"] == pytest.approx(1024 / u)
    assert not rows["many"]["raised"] and rows["many"]["rate"] == pytest.approx(2000 / 6000)
    note = s["sampling"]["note"]
    assert f"few at rate {1024 / u:.3g}, raised from 0.333 so that about 1,024 of its {u:,} distinct" in note
    assert "many at rate 0.333 = 2,000 / 6,000 accesses" in note
    assert "shared at rate 0.167 = 2,000 / 12,000 accesses" in note
    forced = report.write_report(tr, tmp_path / "b", sample_rate=0.5, measure=False, progress=False)
    note = forced["sampling"]["note"]
    assert "many, shared at rate 0.5 as asked" in note and f"few at rate {1024 / u:.3g}, raised from 0.5" in note
