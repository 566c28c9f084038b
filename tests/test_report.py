"""analysis.report and ``tracegen report``: valid PNGs, self-contained HTML, summary.json, one-line errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from analysis import report
from tracegen.cli import main
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _trace(rng, n=600, skew=1.3) -> Trace:
    x = rng.zipf(skew, (n, 3)) % 50
    multi = Table.from_lengths("m", rng.integers(0, 80, 2 * n), np.full(n, 2), 80)
    t = Trace.from_dense_ids(x, [50, 60, 70])
    return Trace([*t.tables, multi])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rng = np.random.default_rng(7)
    out = tmp_path_factory.mktemp("rep") / "r"
    summary = report.write_report(_trace(rng), out, vs=_trace(rng, skew=1.5), batch_size=64, dim=16,
                                  measure=True, measure_batches=1, copy_bytes=1 << 16, progress=False)
    return out, summary


def test_report_writes_valid_pngs(written):
    import matplotlib.image

    out, summary = written
    assert sorted(summary["figures"]) == sorted(report.FIGURES)
    for name in report.FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        img = matplotlib.image.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_html_embeds_every_figure(written):
    out, _ = written
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for name in report.FIGURES:
        b64 = base64.b64encode((out / name).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{b64}'" in page, name
    assert page.count("<img ") == len(report.FIGURES)
    assert "src='" + "r/" not in page  # nothing refers to files beside it


def test_summary_json(written):
    out, summary = written
    s = json.loads((out / "summary.json").read_text())
    assert s["labels"] == ["real", "synthetic"]
    real = s["traces"]["real"]
    assert real["accesses"] == 600 * 3 + 1200 and real["tables"] == 4
    assert real["footprint"]["total_rows"] == 50 + 60 + 70 + 80
    mrc = real["locality"]["shared"]["mrc"]
    assert mrc["sizes_bytes"] == [64 * r for r in mrc["sizes_rows"]]
    assert mrc["sizes_lines"] == mrc["sizes_rows"]  # 16 fp32 values = one 64-byte line
    assert all(a >= b for a, b in zip(mrc["miss_ratio"], mrc["miss_ratio"][1:]))
    assert set(s["measured"]["traces"]) == {"real", "synthetic", "uniform"}
    assert s["comparison"]["shared"]["mrc_mae"] > 0
    assert s["sampling"]["used"] is False
    text = report.text_summary(summary)
    assert "report.html" in text and "synthetic vs real" in text


def test_report_sampling_is_stated(tmp_path, rng):
    # streams above the threshold would be sampled, but every one here has few distinct ids (<= 1,024:
    # locality.SHARDS_MIN_IDS), so all stay exact; tests/test_shards_edges.py covers sampled streams
    s = report.write_report(_trace(rng), tmp_path / "a", threshold=1000, measure=False, progress=False)
    assert s["sampling"]["rates"]["trace"] == {} and s["sampling"]["used"] is False
    tables = {t["name"]: t for t in s["traces"]["trace"]["locality"]["tables"]}
    assert tables["m"]["sample_rate"] == 1.0 and tables["C1"]["sample_rate"] == 1.0


def test_demo_report_prints_where_it_is(tmp_path, rng):
    import io

    out = io.StringIO()
    s = report.demo_report(tmp_path / "demo", _trace(rng), _trace(rng, skew=1.6), stream=out, measure=False)
    assert s["labels"] == ["real", "synthetic"]
    assert str(tmp_path / "demo" / "report.html") in out.getvalue()


def test_report_never_overwrites_without_force(tmp_path, rng):
    tr = _trace(rng)
    report.write_report(tr, tmp_path / "r", measure=False, progress=False)
    before = (tmp_path / "r" / "summary.json").read_bytes()
    with pytest.raises(TracegenError, match="--force"):
        report.write_report(tr, tmp_path / "r", measure=False, progress=False, dim=8)
    assert (tmp_path / "r" / "summary.json").read_bytes() == before
    report.write_report(tr, tmp_path / "r", measure=False, progress=False, dim=8, force=True)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["settings"]["dim"] == 8
    with pytest.raises(TracegenError, match="does not exist"):
        report.write_report(tr, tmp_path / "no" / "r", measure=False, progress=False)


# ---- the CLI ------------------------------------------------------------------------------------------

@pytest.fixture
def trace_file(tmp_path, rng):
    from tracegen import formats

    p = tmp_path / "t.npz"
    formats.write(_trace(rng), p, "npz")
    return p


def test_cli_report(tmp_path, trace_file, capsys):
    out = tmp_path / "cli"
    assert main(["report", str(trace_file), "--vs", str(trace_file), "-o", str(out), "--no-measure",
                 "--batch-size", "64", "--budget", "4K"]) == 0
    stdout = capsys.readouterr().out
    assert "report.html" in stdout and "budget 4 KiB" in stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["budget_bytes"] == 4096 and s["comparison"]["shared"]["mrc_mae"] == 0
    assert main(["report", str(trace_file), "-o", str(out), "--no-measure", "-q"]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["report", str(trace_file), "-o", str(out), "--no-measure", "-q", "--force"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_report_vs_fitted_model(tmp_path, trace_file, capsys):
    from tracegen import formats
    from tracegen.tracemodel import TraceModel

    model = tmp_path / "dist.json"
    TraceModel().fit(formats.read(trace_file)).save(model)
    out = tmp_path / "m"
    assert main(["report", str(trace_file), "--vs", str(model), "-o", str(out), "--no-measure", "-q"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["labels"] == ["t.npz", "dist.json"]
    assert s["traces"]["dist.json"]["samples"] == s["traces"]["t.npz"]["samples"] == 600


@pytest.mark.parametrize("args, message", [
    (["{missing}", "-o", "{out}"], "no such file"),
    (["{trace}", "--vs", "{missing}", "-o", "{out}"], "no such file"),
    (["{trace}", "-o", "{out}", "--sample-rate", "2"], "sample rate"),
    (["{trace}", "-o", "{out}", "--dim", "0"], "must be >= 1"),
    (["{trace}", "-o", "{out}", "--budget", "lots"], "not a size"),
    (["{garbage}", "-o", "{out}"], "{garbage}"),
    (["{trace}", "-o", "{trace}"], "not a directory"),
    (["{trace}", "-o", "{missing}/deeper"], "does not exist"),
    (["{trace}", "-o", "-"], "not '-'"),
    (["{trace}", "--vs", "{badjson}", "-o", "{out}"], "not valid JSON"),
    (["{trace}", "--from", "nosuchformat", "-o", "{out}"], "nosuchformat"),
])
def test_cli_bad_input_one_line_error(tmp_path, trace_file, capsys, args, message):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a trace")
    (tmp_path / "bad.json").write_text("{nope")
    names = {"missing": str(tmp_path / "missing.npz"), "out": str(tmp_path / "o"), "trace": str(trace_file),
             "garbage": str(garbage), "badjson": str(tmp_path / "bad.json")}
    argv = ["report", *[a.format(**names) for a in args], "--no-measure", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message.format(**names) in err
    assert not (tmp_path / "o" / "report.html").exists()


def test_report_on_real_criteo_sample(shared_data, tmp_path):
    from tracegen import formats

    path = shared_data / "criteo_samples" / "hillview_criteoTab.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    tr = formats.read(path, "criteo-tsv")
    s = report.write_report(tr, tmp_path / "c", batch_size=128, measure=False, progress=False)
    real = s["traces"]["trace"]
    assert real["accesses"] == tr.n_accesses and real["tables"] == 26
    touched = sum(len(set(t.values.tolist())) for t in tr.tables)
    assert real["footprint"]["total_rows_touched"] == touched
    assert real["locality"]["shared"]["distinct"] == touched  # tables never share a row


def test_report_with_one_dim_per_table(tmp_path, rng):
    from analysis import locality as loc
    from tests import naive

    tr = _trace(rng, n=300)
    dims = [16, 32, 64, 8]
    s = report.write_report(tr, tmp_path / "d", dim=dims, batch_size=50, measure=False, progress=False)
    assert s["settings"]["dim"] == dims and s["settings"]["row_bytes"] == [64, 128, 256, 32]
    shared = s["traces"]["trace"]["locality"]["shared"]
    ids, tab = loc.interleave(tr, 50)
    size_of = {int(i): [64, 128, 256, 32][int(j)] for i, j in zip(ids, tab)}
    for c, mr in list(zip(shared["mrc_bytes"]["sizes"], shared["mrc_bytes"]["miss_ratio"]))[::6]:
        assert mr == pytest.approx(naive.lru_size_miss_ratio(ids.tolist(), size_of, c))
    after = s["traces"]["trace"]["after_cache"]
    assert all(a["cache_rows"] is None for a in after)
    with pytest.raises(TracegenError, match="3 embedding dims given for 4 tables"):
        report.write_report(tr, tmp_path / "e", dim=[8, 8, 8], measure=False, progress=False)


def test_cli_dim_list(tmp_path, trace_file, capsys):
    out = tmp_path / "dl"
    assert main(["report", str(trace_file), "-o", str(out), "--dim", "16,32,64,8", "--no-measure", "-q"]) == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["dim"] == [16, 32, 64, 8]
    assert main(["report", str(trace_file), "-o", str(tmp_path / "x"), "--dim", "16,0", "-q"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
