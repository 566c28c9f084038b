"""``-q`` on profile and convert, convert's report of what it wrote, and the benchmark scripts' edges:
``--only`` matching no trace, libcachesim absent, fbgemm's install hint, report.py's temporary folder."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

from tracegen import Table, Trace, formats
from tracegen.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture(autouse=True)
def _restore_path_and_modules(monkeypatch):
    """The scripts put their folder on sys.path and import siblings (baselines, probes, ...): undo both."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", None) and pathlib.Path(sys.modules[name].__file__).parent == BENCH:
            del sys.modules[name]


def _bench(name: str):
    """Import ``benchmarks/<name>.py`` as a module (they are scripts; their folder goes on sys.path)."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def three(tmp_path) -> pathlib.Path:
    """Tables a, b, c of 300 one-hot accesses each (ids 0..49 in a loop)."""
    ids = np.arange(300) % 50
    tr = Trace([Table.one_hot(n, ids, 50) for n in "abc"])
    p = tmp_path / "x3.npz"
    formats.write(tr, p)
    return p


@pytest.fixture
def no_libcachesim(monkeypatch):
    """libcachesim not importable (as when it is not installed)."""
    monkeypatch.setitem(sys.modules, "libcachesim", None)


# ---- -q -------------------------------------------------------------------------------------------------

def test_profile_quiet_prints_nothing(three, tmp_path, capsys):
    assert main(["profile", str(three)]) == 0
    assert "hit@100" in capsys.readouterr().out  # the summary, without -q
    assert main(["profile", str(three), "-q"]) == 0
    assert capsys.readouterr().out == ""
    out = tmp_path / "p.json"
    assert main(["profile", str(three), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text())["tables"]["a"]["accesses"] == 300


def test_profile_quiet_to_stdout_is_only_the_json(three, capsys):
    assert main(["profile", str(three), "-o", "-", "-q"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["tables"]["b"]["distinct"] == 50 and cap.err == ""


def test_convert_quiet_prints_nothing(three, tmp_path, capsys):
    assert main(["convert", str(three), str(tmp_path / "b.txt"), "--table", "b", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "b.txt").read_text().split() == [str(i % 50) for i in range(300)]


def test_convert_reports_what_it_wrote(three, tmp_path, capsys):
    assert main(["convert", str(three), str(tmp_path / "b.txt"), "--table", "b"]) == 0
    out = capsys.readouterr().out
    assert "1 table (b), 300 accesses" in out and "900" not in out
    assert main(["convert", str(three), str(tmp_path / "all.txt"), "--table", "all"]) == 0
    assert "1 table (every table flattened), 900 accesses" in capsys.readouterr().out
    assert main(["convert", str(three), str(tmp_path / "c.txt"), "--table", "2"]) == 0
    assert "1 table (c), 300 accesses" in capsys.readouterr().out
    assert main(["convert", str(three), str(tmp_path / "y.npz")]) == 0
    assert "3 tables, 900 accesses" in capsys.readouterr().out


# ---- benchmarks: --only ---------------------------------------------------------------------------------

def test_quick_fidelity_only_matches_printed_names(capsys):
    qf = _bench("quick_fidelity")
    assert qf.select(["planted-zipf"]) == ["planted-zipf-recency"]
    assert qf.select(["PLANTED"]) == ["planted-zipf-recency"]
    with pytest.raises(SystemExit) as e:
        qf.select(["planted-zipfx"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trace matches --only planted-zipfx" in err and "planted-zipf-recency" in err


def test_dp_fidelity_only_no_match_exits_2(capsys):
    dp = _bench("dp_fidelity")
    with pytest.raises(SystemExit) as e:
        dp.main(["--only", "nothing-like-this"])
    assert e.value.code == 2
    cap = capsys.readouterr()
    assert "no trace matches --only nothing-like-this" in cap.err and cap.out == ""  # no empty table


def test_fidelity_only_no_match_exits_2(tmp_path, capsys):
    fid = _bench("fidelity")
    assert fid.main(["--data", str(tmp_path), "--only", "zzz"]) == 2
    err = capsys.readouterr().err
    assert "no trace matches --only zzz" in err and "planted-zipf" in err and "probe-loop" in err


# ---- benchmarks: libcachesim absent ---------------------------------------------------------------------

def test_fidelity_skips_non_lru_without_libcachesim(no_libcachesim, tmp_path, capsys):
    fid = _bench("fidelity")
    assert fid._cachesim() is None
    rc = fid.main(["--data", str(tmp_path), "--only", "planted-zipf", "--max-accesses", "3000",
                   "--no-fbgemm", "--no-dp"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "FIFO/LFU/ARC skipped: libcachesim not installed" in cap.err
    rows = [ln for ln in cap.out.splitlines() if ln.startswith("| planted-zipf |")]
    assert rows and all(ln.endswith("| - | - | - |") for ln in rows)


def test_quick_fidelity_skips_non_lru_without_libcachesim(no_libcachesim, monkeypatch, capsys):
    qf = _bench("quick_fidelity")
    ids = np.random.default_rng(0).zipf(1.5, 2000) % 300
    monkeypatch.setattr(qf, "load", lambda only, max_acc: [("tiny", Trace.single(ids.astype(np.int64)))])
    assert qf.main([]) == 0
    cap = capsys.readouterr()
    assert "FIFO/LFU/ARC skipped: libcachesim not installed" in cap.err
    row = next(ln for ln in cap.out.splitlines() if ln.startswith("| tiny |"))
    assert "| - | - | - |" in row


def test_fbgemm_hint_is_the_readme_commands(monkeypatch):
    bl = _bench("baselines")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    msg = bl.fbgemm_available()
    assert "pip install --no-deps fbgemm-gpu-cpu==1.8.0 torchrec==1.8.0" in msg
    assert "pip install -c constraints.txt tensordict torchmetrics==1.0.3 pyre-extensions iopath click pyyaml" in msg
    readme = (ROOT / "README.md").read_text()
    assert "`pip install --no-deps fbgemm-gpu-cpu==1.8.0 torchrec==1.8.0`" in readme


# ---- benchmarks/report.py ------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [False, True])
def test_report_bench_removes_its_temp_folder(keep, tmp_path, monkeypatch, capsys):
    import tempfile

    rb = _bench("report")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(rb, "_run", lambda argv: 1.0)  # the timed `tracegen report` runs: not the point here
    kept = tmp_path / "kept"
    argv = ["report.py", "--accesses", "2000", "--no-vs"] + (["--keep", str(kept)] if keep else [])
    monkeypatch.setattr(sys, "argv", argv)
    rb.main()
    assert "tracegen report TRACE" in capsys.readouterr().out
    assert list(tmp.iterdir()) == []  # nothing left behind in the temporary folder
    assert (kept / "planted.npz").exists() == keep
