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


def test_a_dist_json_given_as_a_trace_says_to_sample_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["spec", "--family", "zipf", "--a", "0.9", "--cardinality", "50", "-o", "z.json", "-q"]) == 0
    (tmp_path / "other.json").write_text('{"a": 1}\n')
    for cmd in (["inspect", "z.json"], ["profile", "z.json", "-q"], ["fit", "z.json", "-o", "d.json"]):
        capsys.readouterr()
        assert main(cmd) == 2
        _one_line_error(capsys, "z.json: is a dist.json (a trace model), not a trace: sample a trace from it first")
    assert main(["inspect", "other.json"]) == 2
    _one_line_error(capsys, "other.json: is JSON, not a trace")
    assert not (tmp_path / "d.json").exists()


def test_an_output_folder_that_takes_no_files_is_named_not_the_temporary_file(tmp_path, capsys, monkeypatch):
    from tracegen import _util

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_util.tempfile, "mkstemp", refuse)
    out = tmp_path / "z.json"
    assert main(["spec", "--family", "zipf", "--a", "0.9", "--cardinality", "50", "-o", str(out)]) == 2
    _one_line_error(capsys, f"{out}: cannot create a file in {tmp_path}: No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_an_earlier_runs_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "dist.json").write_text("{}")
    assert main(["demo", "-o", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "[1]" not in out.out  # nothing done before the refusal
    assert "already holds dist.json from an earlier run; pass --force" in out.err
    assert (tmp_path / "dist.json").read_text() == "{}"
