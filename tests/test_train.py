"""The DLRM data path (model/data.py) and training (model/train.py, ``tracegen train``)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model import train as mtrain  # noqa: E402
from model.data import TraceBatches, iter_batches, prefetch, split_indices  # noqa: E402
from tracegen import Table, Trace  # noqa: E402
from tracegen.cli import main  # noqa: E402

SMALL = ["--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1",
         "--mini-batch-size", "32", "--num-threads", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def write_dlrm_npz(path, n=700, sizes=(10, 20, 5), seed=0):
    """A DLRM reference processed npz (X_cat, X_int raw, y, counts), written as the reference does."""
    rng = np.random.default_rng(seed)
    x_cat = np.stack([rng.integers(0, s, n) for s in sizes], axis=1).astype(np.int32)
    x_int = rng.integers(0, 50, (n, 13)).astype(np.int32)
    y = (x_cat[:, 0] % 2).astype(np.int32)
    np.savez(path, X_cat=x_cat, X_int=x_int, y=y, counts=np.array(sizes, dtype=np.int32))
    return path


def multi_hot_trace(rng, B=40, sizes=(9, 4)) -> Trace:
    tables = []
    for t, s in enumerate(sizes):
        lengths = rng.integers(0, 4, B)
        tables.append(Table.from_lengths(f"C{t + 1}", rng.integers(0, s, lengths.sum()), lengths, s))
    return Trace(tables, dense=rng.integers(0, 9, (B, 13)).astype(np.float32),
                 labels=rng.integers(0, 2, B).astype(np.float32))


def read_metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def strip_timing(records):
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in records]


# ---- data path ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("multi", [False, True])
def test_batches_equal_per_sample_slicing(multi, rng):
    trace = multi_hot_trace(rng) if multi else Trace.from_dense_ids(
        rng.integers(0, 9, (40, 3)), [9, 9, 9], dense=rng.integers(-2, 9, (40, 13)).astype(np.float32),
        labels=rng.integers(0, 2, 40).astype(np.float32))
    tb = TraceBatches(trace, np.arange(3, 40), 8, shuffle=True, seed=4)
    order = tb.epoch_order(1)
    batches = list(tb.batches(len(tb), 2 * len(tb)))  # the second epoch
    assert len(batches) == len(tb) == 5 and batches[-1].batch_size == 5
    for k, b in enumerate(batches):
        idx = order[k * 8:(k + 1) * 8]
        assert (b.offsets is None) == (not multi)
        for t, table in enumerate(trace.tables):
            want = np.concatenate([table.values[table.offsets[i]:table.offsets[i + 1]] for i in idx])
            np.testing.assert_array_equal(b.table_ids(t), want)
        np.testing.assert_allclose(b.dense.numpy(), np.log1p(np.maximum(trace.dense[idx], 0)), rtol=1e-6)
        np.testing.assert_array_equal(b.labels.numpy(), trace.labels[idx])
    assert sorted(np.concatenate([b.labels.numpy() * 0 + 1 for b in batches]).tolist()) == [1.0] * 37


def test_prefetch_yields_the_same_batches_and_stops_early(rng):
    trace = multi_hot_trace(rng)
    tb = TraceBatches(trace, np.arange(40), 7)
    direct = list(tb)
    fetched = list(prefetch(tb.batches(), depth=2))
    assert len(direct) == len(fetched) == 6
    for a, b in zip(direct, fetched):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.offsets, b.offsets)
    it = prefetch(tb.batches(), depth=1)
    next(it)
    it.close()  # the thread must stop without the consumer draining it


def test_iter_batches_carry_every_lookup_in_time_order(rng):
    trace = multi_hot_trace(rng)
    batches = list(iter_batches(trace, 16))
    assert [b.batch_size for b in batches] == [16, 16, 8]
    for t, table in enumerate(trace.tables):
        np.testing.assert_array_equal(np.concatenate([b.table_ids(t) for b in batches]), table.values)


def test_split_like_the_reference():
    parts = split_indices(700, "day")
    assert [len(parts[k]) for k in ("train", "val", "test")] == [600, 50, 50]
    np.testing.assert_array_equal(parts["val"], np.arange(600, 650))
    r = split_indices(700, "random", seed=1)
    assert sorted(np.concatenate(list(r.values())).tolist()) == list(range(700))
    assert not np.array_equal(r["train"], np.arange(600))


# ---- the command line ---------------------------------------------------------------------------------
def test_cli_trains_and_writes_metrics(tmp_path):
    data = write_dlrm_npz(tmp_path / "kaggle.npz")
    out = tmp_path / "run"
    six = [*SMALL, "--num-batches", "6", "--print-freq", "2"]
    assert main(["train", str(data), *six, "--out", str(out)]) == 0
    recs = read_metrics(out)
    assert [(r["split"], r["step"]) for r in recs] == [("train", 2), ("train", 4), ("train", 6), ("val", 6)]
    for r in recs:
        assert np.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 and 0 <= r["auc"] <= 1
    assert recs[0]["samples"] == 64 and recs[-1]["samples"] == 50 and recs[0]["samples_per_s"] > 0
    assert (out / "checkpoint.pt").exists()
    # the same seed gives the same run; an existing output needs --force
    assert main(["train", str(data), *six, "--out", str(out)]) == 2
    out2 = tmp_path / "run2"
    assert main(["train", str(data), *six, "--out", str(out2)]) == 0
    assert strip_timing(read_metrics(out2)) == strip_timing(recs)
    a, b = torch.load(out / "checkpoint.pt"), torch.load(out2 / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_epochs_and_python_m_entry_point(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "kaggle.npz", n=140)  # 120 training samples: 4 batches per epoch
    out = tmp_path / "run"
    assert mtrain.main([str(data), *SMALL, "--epochs", "2", "--out", str(out), "--optimizer", "adagrad"]) == 0
    recs = read_metrics(out)
    assert recs[0]["step"] == 8 and recs[0]["samples"] == 8 * 32 - 2 * 8  # the last batch of an epoch has 24


@pytest.mark.parametrize("opt", ["sgd", "adagrad"])
def test_resume_equals_an_uninterrupted_run(tmp_path, opt):
    data = write_dlrm_npz(tmp_path / "kaggle.npz")
    flags = [*SMALL, "--print-freq", "2", "--optimizer", opt, "--learning-rate", "0.05", "--test-freq", "4"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["train", str(data), *flags, "--num-batches", "22", "--out", str(whole)]) == 0
    assert main(["train", str(data), *flags, "--num-batches", "10", "--out", str(part)]) == 0  # 1 epoch = 19
    assert main(["train", str(data), *flags, "--num-batches", "22", "--out", str(part), "--resume"]) == 0
    assert strip_timing(read_metrics(part)) == strip_timing(read_metrics(whole))
    a, b = torch.load(whole / "checkpoint.pt"), torch.load(part / "checkpoint.pt")
    assert a["step"] == b["step"] == 22
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_multi_hot_native_npz_trains(tmp_path, rng):
    from tracegen.formats import write

    path = tmp_path / "bags.npz"
    write(multi_hot_trace(rng, B=200), path)
    out = tmp_path / "run"
    assert main(["train", str(path), *SMALL, "--num-batches", "4", "--out", str(out)]) == 0
    assert read_metrics(out)[0]["samples"] == 4 * 32


@pytest.mark.parametrize("flags,message", [
    (["--arch-embedding-size", "10-20"], "the data has 3 tables but the model has 2"),
    (["--arch-embedding-size", "10-20-4"], "table 2 has id 4 but the model's table has only 4 rows"),
    (["--arch-mlp-bot", "12-8-4"], "the data has 13 dense features but the bottom MLP takes 12"),
    (["--arch-mlp-bot", "13-8-5"], "bottom MLP output 5 != embedding dim 4"),
    (["--arch-mlp-top", "8-2"], "must end in 1 output"),
    (["--arch-embedding-size", "10-x-4"], "must be integers joined by '-'"),
])
def test_data_architecture_mismatch_fails_before_training(tmp_path, capsys, flags, message):
    data = write_dlrm_npz(tmp_path / "kaggle.npz")
    out = tmp_path / "run"
    assert main(["train", str(data), *SMALL, *flags, "--num-batches", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.pt").exists()


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.npz"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", str(write_dlrm_npz(tmp_path / "k.npz")), "--resume", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_dist_json_is_sampled_on_the_fly(tmp_path):
    pytest.importorskip("tracegen.tracemodel")
    spec = os.path.join(os.path.dirname(__file__), "..", "traces", "zipf.json")
    if not os.path.exists(spec):
        pytest.skip("traces/zipf.json is absent")
    flags = [*SMALL, "--num-batches", "3", "--num-val-batches", "2"]
    assert main(["train", spec, *flags, "--out", str(tmp_path / "run")]) == 0
    recs = read_metrics(tmp_path / "run")
    assert [(r["split"], r["samples"]) for r in recs] == [("train", 96), ("val", 64)]
    assert main(["train", spec, *flags, "--out", str(tmp_path / "run2")]) == 0
    assert strip_timing(read_metrics(tmp_path / "run2")) == strip_timing(recs)  # the same stream for a seed
    assert main(["train", spec, *SMALL, "--epochs", "1", "--out", str(tmp_path / "r3")]) == 2


def test_bundled_example_trace_trains(tmp_path):
    data = pytest.importorskip("tracegen.data")
    path = data.example_trace_path()
    if not os.path.exists(path):
        pytest.skip("the bundled example trace is absent")
    out = tmp_path / "run"
    assert main(["train", path, *SMALL, "--num-batches", "3", "--out", str(out)]) == 0
    recs = read_metrics(out)
    assert recs[0]["samples"] == 96 and recs[-1]["split"] == "val" and recs[-1]["samples"] > 0


# ---- bad input and messages (found by the tester) -----------------------------------------------------
def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_raw_64bit_keys_are_refused_before_allocating(tmp_path, capsys):
    raw = tmp_path / "raw.txt"  # 300 distinct keys spread over 2**48: 18.7 PiB of fp32 rows at D=16
    np.savetxt(raw, (np.arange(3000) % 300).astype(np.uint64) * np.uint64(2**40), fmt="%d")
    out = tmp_path / "run"
    assert main(["train", str(raw), "--num-batches", "2", "--num-threads", "1", "-q", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert str(raw) in err and "table t0 has 328,753,976,705,025 rows x 16 x 4 bytes" in err
    assert "300 distinct" in err and "--densify" in err
    assert not (out / "metrics.jsonl").exists()


def test_table_memory_check_names_the_way_out():
    from model.dlrm import DLRMConfig

    cfg = DLRMConfig([1000, 10], embedding_dim=4, mlp_bot=[13, 4])
    assert cfg.embedding_bytes() == [16000, 160]
    mtrain.check_table_memory(cfg, "t.npz", available=16160)  # fits exactly
    trace = Trace.from_dense_ids(np.stack([np.arange(10) % 10, np.arange(10) % 3], axis=1), [1000, 10])
    with pytest.raises(mtrain.TracegenError, match=r"^t\.npz: .*table C1 has 1,000 rows x 4 x 4 bytes = 15\.6 KiB; "
                       r"its largest id is 9: give --arch-embedding-size with 10 rows"):
        mtrain.check_table_memory(cfg, "t.npz", trace, available=10000)
    with pytest.raises(mtrain.TracegenError, match="--arch-embedding-size gives it 1,000 rows but its largest id is 9"):
        mtrain.check_table_memory(cfg, "t.npz", trace, available=10000, from_flag=True)
    huge = DLRMConfig([2**60], embedding_dim=4, mlp_bot=[13, 4])  # over the cap whatever the memory
    with pytest.raises(mtrain.TracegenError, match="more than the cap"):
        mtrain.check_table_memory(huge, available=2**70)


@pytest.mark.parametrize("flag,value,low", [
    ("--epochs", "0", 1), ("--epochs", "-1", 1), ("--num-batches", "0", 1), ("--mini-batch-size", "0", 1),
    ("--print-freq", "0", 1), ("--num-val-batches", "0", 1), ("--arch-sparse-feature-size", "0", 1),
    ("--num-threads", "-1", 0), ("--test-freq", "-2", 0), ("--checkpoint-freq", "-1", 0),
])
def test_counts_below_their_minimum_are_refused(tmp_path, capsys, flag, value, low):
    data = write_dlrm_npz(tmp_path / "kaggle.npz")
    assert main(["train", str(data), *SMALL, flag, value, "--out", str(tmp_path / "run")]) == 2
    assert f"argument {flag}: must be >= {low}, got {value}" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_python_run_refuses_zero_epochs(tmp_path):
    from tracegen.commands.train import add_arguments

    p = mtrain.argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([str(write_dlrm_npz(tmp_path / "k.npz")), *SMALL])
    args.epochs = 0  # as a Python caller could set it, past argparse
    with pytest.raises(mtrain.TracegenError, match="--epochs must be >= 1, got 0"):
        mtrain.run(args)


@pytest.mark.parametrize("label", [0, 1])
def test_metrics_are_strict_json_when_auc_is_undefined(tmp_path, label):
    rng = np.random.default_rng(0)
    n = 300
    path = tmp_path / "one_class.npz"
    np.savez(path, X_int=rng.integers(0, 9, (n, 13)).astype(np.int32),
             X_cat=rng.integers(0, 50, (n, 3)).astype(np.int32), y=np.full(n, label, np.int32),
             counts=np.array([50] * 3, np.int32))
    out = tmp_path / "run"
    assert main(["train", str(path), *SMALL, "--num-batches", "2", "--out", str(out)]) == 0

    def refuse(c):
        raise AssertionError(f"non-JSON constant {c}")

    with open(out / "metrics.jsonl") as f:
        recs = [json.loads(line, parse_constant=refuse) for line in f]
    assert [(r["split"], r["auc"]) for r in recs] == [("train", None), ("val", None)]
    assert all(np.isfinite(r["loss"]) for r in recs)
    assert mtrain._finite({"a": float("inf"), "b": 1.5, "c": 2}) == {"a": None, "b": 1.5, "c": 2}


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_trace_error_names_the_file(tmp_path, capsys, n):
    path = tmp_path / "tiny.txt"
    path.write_text("5\n7\n"[: 2 * n])
    assert main(["train", str(path), *SMALL]) == 2
    err = _one_line_error(capsys)
    assert f"{path}: has {n} sample" in err and "too few to split into train/val/test" in err


def test_checkpoint_freq_message_gives_the_effective_print_freq(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "kaggle.npz")
    base = ["train", str(data), *SMALL, "--checkpoint-freq", "3"]
    assert main([*base, "--num-batches", "5"]) == 2  # --print-freq 100 capped to the 5 batches
    err = _one_line_error(capsys)
    assert "multiple of the reporting interval, 5 batches here (--print-freq 100 capped to this run's 5" in err
    assert main([*base, "--num-batches", "8", "--print-freq", "2"]) == 2  # not capped: as given
    assert "--checkpoint-freq 3 must be a multiple of --print-freq 2 (" in _one_line_error(capsys)
    out = tmp_path / "run"  # a checkpoint frequency past the run's end leaves just the final checkpoint
    assert main([*base, "--num-batches", "2", "--out", str(out)]) == 0
    assert torch.load(out / "checkpoint.pt")["step"] == 2


def test_batch_larger_than_the_training_split_is_reported(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "kaggle.npz", n=140)  # 120 training samples
    out = tmp_path / "run"
    flags = [f for f in SMALL if f != "--quiet"]
    assert main(["train", str(data), *flags, "--mini-batch-size", "1000", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "note: --mini-batch-size 1,000 is larger than the training split (120 samples)" in err
    assert "training 1 batch of 120" in err
    assert read_metrics(out)[0]["samples"] == 120


def test_split_notes_under_distributed_drop_partial_batches(rng):
    trace = Trace.from_dense_ids(rng.integers(0, 5, (100, 2)), [5, 5])
    parts = split_indices(100, "day")  # 85 / 7 / 8
    train = TraceBatches(trace, parts["train"], 90, drop_last=True)
    val = TraceBatches(trace, parts["val"], 90, drop_last=True)
    notes = mtrain.split_notes(train, val, 90, distributed=True)
    assert notes[0].startswith("nothing to train: the training split has 85 samples, fewer than one batch of 90")
    assert notes[1].startswith("note: no validation: the validation split has 7 samples, fewer than one batch")
    assert all("--distributed drops partial batches" in s for s in notes)
    ok = TraceBatches(trace, parts["train"], 40, drop_last=True)
    assert mtrain.split_notes(ok, val, 40, distributed=True) == [
        "note: no validation: the validation split has 7 samples, fewer than one batch of 40 (--distributed "
        "drops partial batches: every rank needs an equal slice)"]
    assert mtrain.split_notes(TraceBatches(trace, parts["train"], 40), TraceBatches(trace, parts["val"], 40),
                              40) == []


def test_python_api_errors_name_keyword_arguments(tmp_path):
    with pytest.raises(mtrain.TracegenError, match=r"x\.json: .*num_batches=N") as e:
        iter_batches(str(tmp_path / "x.json"), 32)  # raised at the call, before the file is opened
    assert "--num-batches" not in str(e.value)
