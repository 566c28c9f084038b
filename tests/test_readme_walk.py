"""What the README's "Commands" paragraph promises about outputs, checked on tiny inputs: ``-o -`` writes
JSON to stdout for ``profile`` and ``spec`` only; the folder-writing commands (``demo``, ``train``) refuse
``-`` with one line instead of creating a folder named ``-``; ``demo --quiet`` says what it keeps."""

from __future__ import annotations

import json

import numpy as np

from tracegen import Table, Trace, formats
from tracegen.cli import main


def _trace(rng, n: int = 300) -> Trace:
    ids = rng.integers(0, 40, size=n)
    return Trace([Table.one_hot("t0", ids, 40)], dense=rng.random((n, 13), dtype=np.float32),
                 labels=(rng.random(n) < 0.3).astype(np.float32))


def _one_line_error(capsys, pattern: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("tracegen: error: ") and pattern in err, err


def test_dash_writes_json_to_stdout_for_profile_and_spec(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    formats.write(_trace(rng), "t.npz")
    capsys.readouterr()
    assert main(["profile", "t.npz", "-o", "-", "-q"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["tables"]["t0"]["accesses"] == 300
    assert main(["spec", "--family", "zipf", "--a", "0.9", "--cardinality", "100", "-o", "-"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["format"] == "tracegen-dist" and spec["tables"][0]["cardinality"] == 100
    assert not (tmp_path / "-").exists()


def test_dash_is_refused_for_trace_and_model_files(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    formats.write(_trace(rng), "t.npz")
    assert main(["spec", "--family", "zipf", "--a", "0.9", "--cardinality", "100", "-o", "z.json"]) == 0
    capsys.readouterr()
    for argv in (["fit", "t.npz", "-o", "-"], ["sample", "z.json", "-n", "10", "-o", "-"],
                 ["convert", "t.npz", "-", "--to", "txt"]):
        assert main(argv) == 2, argv
        _one_line_error(capsys, "")
    assert not (tmp_path / "-").exists()


def test_demo_refuses_dash_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "-o", "-", "-q"]) == 2
    _one_line_error(capsys, "not '-'")
    assert not (tmp_path / "-").exists()


def test_train_refuses_dash_out(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    formats.write(_trace(rng), "t.npz")
    assert main(["train", "t.npz", "--num-batches", "1", "--out", "-", "-q"]) == 2
    _one_line_error(capsys, "not '-'")
    assert not (tmp_path / "-").exists()


def test_demo_quiet_help_says_the_steps_still_print(capsys):
    # tests/test_cli_io.py::test_demo checks that `demo --quiet` still prints its steps; the help must not
    # promise "no summary on stdout" as the other commands' -q does.
    assert main(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "steps and fidelity figures still print" in out
    assert "no summary on stdout" not in out
