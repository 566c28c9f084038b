"""Review round of the lean DLRM against the references (facebookresearch/dlrm ``dlrm_s_pytorch.py``,
TorchRec ``torchrec/models/dlrm.py``): exact forward by hand, empty bags, out-of-range ids, the data kinds
``tracegen train`` accepts, resume with changed flags, labels outside [0, 1], metrics, and 2 ranks with
fewer tables than ranks."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model import train as mtrain  # noqa: E402
from model.dlrm import DLRM, DLRMConfig, SparseArch, init_table  # noqa: E402
from model.metrics import accuracy, roc_auc  # noqa: E402
from tests.test_model import _one_thread  # noqa: E402, F401  (autouse: one torch thread)
from tests.test_train import SMALL, read_metrics, strip_timing, write_dlrm_npz  # noqa: E402
from tracegen import Table, Trace  # noqa: E402
from tracegen.cli import main  # noqa: E402

# ---- the forward pass, computed by hand --------------------------------------------------------------------
# 2 tables (3 and 4 rows), D = 2, bottom MLP 1 -> 2 (ReLU), top MLP interaction width -> 1 (no ReLU).
E0 = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]], dtype=np.float32)
E1 = np.array([[1.0, 1.0], [-2.0, 0.5], [0.0, -1.0], [3.0, 2.0]], dtype=np.float32)
W_BOT, B_BOT = np.array([[1.0], [-1.0]], dtype=np.float32), np.array([0.5, 0.25], dtype=np.float32)


def _hand_model(itself: bool, fused: bool, op: str = "dot") -> tuple[DLRM, np.ndarray, float]:
    cfg = DLRMConfig(embedding_sizes=[3, 4], embedding_dim=2, mlp_bot=[1, 2], mlp_top=[1],
                     interaction_itself=itself, fused=fused, interaction_op=op)
    model = DLRM(cfg, seed=0)
    width = cfg.interaction_width()
    w_top = np.linspace(-1.0, 1.0, width).astype(np.float32)
    with torch.no_grad():
        model.dense_arch.model[0].weight.copy_(torch.from_numpy(W_BOT))
        model.dense_arch.model[0].bias.copy_(torch.from_numpy(B_BOT))
        model.over_arch.model[0].weight.copy_(torch.from_numpy(w_top[None, :]))
        model.over_arch.model[0].bias.fill_(0.125)
        if fused:
            model.sparse_arch.weight.copy_(torch.from_numpy(np.concatenate([E0, E1])))
        else:
            for bag, e in zip(model.sparse_arch.bags, (E0, E1)):
                bag.weight.copy_(torch.from_numpy(e))
    return model, w_top, 0.125


def _by_hand(dense: float, bag0: list[int], bag1: list[int], itself: bool, w_top, b_top, op: str = "dot") -> float:
    """The reference's sequential_forward + interact_features for one sample, in plain numpy."""
    x = np.maximum(W_BOT[:, 0] * dense + B_BOT, 0.0)  # bottom MLP, ReLU on its last layer too
    e0 = E0[bag0].sum(0) if bag0 else np.zeros(2, np.float32)  # EmbeddingBag mode="sum"; empty bag -> 0
    e1 = E1[bag1].sum(0) if bag1 else np.zeros(2, np.float32)
    vecs = [x, e0, e1]
    if op == "cat":  # R = cat([x] + ly)
        return float(np.concatenate(vecs) @ w_top + b_top)
    # li, lj = [i for i in range(n) for j in range(i + offset)], offset 1 with --arch-interaction-itself
    pairs = [float(vecs[i] @ vecs[j]) for i in range(3) for j in range(i + (1 if itself else 0))]
    z = np.concatenate([x, np.array(pairs, np.float32)])  # R = cat([x] + [Zflat]): dense vector first
    return float(z @ w_top + b_top)


@pytest.mark.parametrize("op,itself", [("dot", False), ("dot", True), ("cat", False)])
@pytest.mark.parametrize("fused", [True, False])
def test_forward_equals_the_reference_by_hand(op, itself, fused):
    model, w_top, b_top = _hand_model(itself, fused, op)
    assert model.config.interaction_width() == {"cat": 6, "dot": 2 + 6 if itself else 2 + 3}[op]
    dense = torch.tensor([[0.75], [-2.0], [3.0]])
    # one-hot: (B, T)
    ids = torch.tensor([[0, 3], [2, 1], [1, 0]])
    got = model(dense, ids).detach().numpy()
    want = [_by_hand(d, [a], [b], itself, w_top, b_top, op) for d, (a, b) in zip([0.75, -2.0, 3.0], ids.tolist())]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # multi-hot, table-major with offsets (T * B + 1,), including empty bags and a repeated id
    bags0, bags1 = [[0, 2], [], [1, 1, 2]], [[3], [0, 1, 2], []]
    values = torch.tensor([i for b in bags0 + bags1 for i in b])
    offsets = torch.tensor(np.cumsum([0] + [len(b) for b in bags0 + bags1]))
    got = model(dense, values, offsets).detach().numpy()
    want = [_by_hand(d, a, b, itself, w_top, b_top, op) for d, a, b in zip([0.75, -2.0, 3.0], bags0, bags1)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # the loss is mean binary cross-entropy on the sigmoid of the logit (the reference's --loss-function bce)
    from model.data import Batch
    from model.dlrm import DLRMTrain

    labels = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    loss, _ = DLRMTrain(model)(Batch(dense, values, offsets, torch.from_numpy(labels)))
    p = 1.0 / (1.0 + np.exp(-np.array(want, dtype=np.float64)))
    assert float(loss.detach()) == pytest.approx(float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))),
                                        rel=1e-6)


def test_an_all_empty_batch_pools_to_zero_and_has_zero_table_gradient():
    sa = SparseArch([3, 4], 2)
    out = sa(torch.zeros(0, dtype=torch.int64), torch.zeros(2 * 5 + 1, dtype=torch.int64))
    assert out.shape == (5, 2, 2) and not out.detach().any()
    out.sum().backward()
    assert not sa.weight.grad.to_dense().any()


def test_embedding_init_is_the_references_uniform():
    """U(-sqrt(1/n), sqrt(1/n)) per table, seeded per table (the same rows whatever the sharding)."""
    for rows in (4, 100, 2500):
        w = init_table(rows, 16, seed=3, table=1).numpy()
        bound = np.sqrt(1.0 / rows)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        assert abs(w.mean()) < 0.1 * bound
    model = DLRM(DLRMConfig(embedding_sizes=[5, 9], embedding_dim=3, mlp_bot=[2, 3], mlp_top=[1]), seed=3)
    np.testing.assert_array_equal(model.sparse_arch.weight.detach()[5:].numpy(), init_table(9, 3, 3, 1).numpy())


# ---- ids outside their table -------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_ids_name_the_table_instead_of_reading_a_neighbour(fused, bad):
    """In the fused weight, id 3 of a 3-row table 0 is row 0 of table 1: it must fail, not read it."""
    model, _, _ = _hand_model(False, fused)
    dense = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"table 0 .*id " + str(bad) + r".* 3 rows"):
        model(dense, torch.tensor([[0, 0], [bad, 1]]))
    with pytest.raises(ValueError, match=r"table 1 .*id " + str(4 if bad == 3 else bad) + r".* 4 rows"):
        model(dense, torch.tensor([0, 1, 4 if bad == 3 else bad, 0]), torch.tensor([0, 1, 2, 3, 4]))


# ---- resuming with flags that would silently change the run ------------------------------------------------
@pytest.mark.parametrize("flags,named", [
    (["--optimizer", "adagrad"], "--optimizer"),  # was a KeyError traceback (SGD state into Adagrad)
    (["--learning-rate", "0.5"], "--learning-rate"),  # was silently the checkpoint's 0.01
    (["--seed", "5"], "--seed"),  # was silently another shuffle order
    (["--mini-batch-size", "16"], "--mini-batch-size"),  # steps would count other batches
])
def test_resume_refuses_changed_training_flags(tmp_path, capsys, flags, named):
    data = write_dlrm_npz(tmp_path / "k.npz", n=300)
    out = tmp_path / "run"
    base = [*SMALL, "--print-freq", "2", "--out", str(out)]
    assert main(["train", str(data), *base, "--num-batches", "2"]) == 0
    before = (out / "metrics.jsonl").read_text()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    capsys.readouterr()
    assert main(["train", str(data), *base, "--num-batches", "4", "--resume", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "checkpoint" in err and len(err.strip().splitlines()) == 1, err
    assert (out / "metrics.jsonl").read_text() == before  # nothing touched
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == ck["step"] == 2
    # the unchanged flags still resume
    assert main(["train", str(data), *base, "--num-batches", "4", "--resume"]) == 0
    assert [r["step"] for r in read_metrics(out)] == [2, 4, 4]


def test_a_checkpoint_alone_is_not_overwritten_without_force(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "k.npz", n=300)
    out = tmp_path / "run"
    assert main(["train", str(data), *SMALL, "--num-batches", "2", "--out", str(out)]) == 0
    os.unlink(out / "metrics.jsonl")  # e.g. a run stopped before its first metrics line was kept
    ck = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", str(data), *SMALL, "--num-batches", "2", "--seed", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "checkpoint.pt").read_bytes() == ck
    assert main(["train", str(data), *SMALL, "--num-batches", "2", "--seed", "4", "--out", str(out),
                 "--force"]) == 0
    assert (out / "checkpoint.pt").read_bytes() != ck


# ---- data kinds and their gaps ------------------------------------------------------------------------------
def _native(tmp_path, name, *, dense=True, labels=True, label_values=None, n=120):
    from tracegen.formats import write

    rng = np.random.default_rng(3)
    tables = []
    for t, s in enumerate((9, 6, 4)):
        lengths = rng.integers(0, 3, n)  # 0..2 ids per bag: empty bags included
        tables.append(Table.from_lengths(f"C{t + 1}", rng.integers(0, s, lengths.sum()), lengths, s))
    y = None
    if labels:
        y = (rng.random(n) < 0.5).astype(np.float32) if label_values is None else label_values
    trace = Trace(tables, dense=rng.integers(0, 9, (n, 13)).astype(np.float32) if dense else None, labels=y)
    path = tmp_path / name
    write(trace, path)
    return path


@pytest.mark.parametrize("dense,labels", [(True, True), (False, True), (True, False), (False, False)])
def test_native_multi_hot_with_and_without_dense_or_labels(tmp_path, capsys, dense, labels):
    path = _native(tmp_path, "t.npz", dense=dense, labels=labels)
    flags = [*SMALL[:-1], "--num-batches", "3", "--print-freq", "3"]
    assert main(["train", str(path), *flags, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert ("no dense features; using 13 zeros" in err) == (not dense)
    assert ("no labels; training on labels drawn at random" in err) == (not labels)
    recs = read_metrics(tmp_path / "a")
    assert [(r["split"], r["step"], r["samples"]) for r in recs] == [("train", 3, 96), ("val", 3, 9)]
    assert all(np.isfinite(r["loss"]) for r in recs)
    # deterministic for a seed
    assert main(["train", str(path), *flags, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert strip_timing(read_metrics(tmp_path / "b")) == strip_timing(recs)


def test_help_says_what_happens_without_dense_features_or_labels(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    out = " ".join(capsys.readouterr().out.split())
    assert "no dense features" in out and "no labels" in out


@pytest.mark.parametrize("bad", [2.0, -1.0])
def test_labels_outside_zero_one_are_refused_before_training(tmp_path, capsys, bad):
    """BCE with a label of 2 has no minimum: the logits run off to infinity instead of failing clearly."""
    y = np.zeros(120, dtype=np.float32)
    y[::3] = 1
    y[50] = bad
    path = _native(tmp_path, "y.npz", label_values=y)
    out = tmp_path / "run"
    assert main(["train", str(path), *SMALL, "--num-batches", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "y.npz" in err and "labels" in err and str(bad) in err and len(err.strip().splitlines()) == 1
    assert not (out / "metrics.jsonl").exists()
    y[50] = 0.25  # click rates in [0, 1] are fine for BCE
    assert main(["train", str(_native(tmp_path, "ok.npz", label_values=y)), *SMALL, "--num-batches", "2"]) == 0


def test_id_beyond_the_declared_rows_names_the_table(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "k.npz")  # tables C1..C3 with 10, 20, 5 rows
    assert main(["train", str(data), *SMALL, "--arch-embedding-size", "10-20-4", "--num-batches", "1"]) == 2
    err = capsys.readouterr().err
    assert "table 2 has id 4" in err and "(table C3;" in err and len(err.strip().splitlines()) == 1


def test_dist_json_with_too_few_rows_does_not_claim_an_id(tmp_path, capsys):
    pytest.importorskip("tracegen.tracemodel")
    spec = os.path.join(os.path.dirname(__file__), "..", "traces", "zipf.json")
    if not os.path.exists(spec):
        pytest.skip("traces/zipf.json is absent")
    assert main(["train", spec, *SMALL, "--arch-embedding-size", "1000", "--num-batches", "1"]) == 2
    err = capsys.readouterr().err
    assert "from 100,000 rows" in err and "only 1,000 rows" in err and "has id" not in err
    assert len(err.strip().splitlines()) == 1


# ---- metrics against obvious references ---------------------------------------------------------------------
def test_auc_accuracy_and_logged_loss_against_numpy():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    s = np.array([0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.9, 0.3])  # ties across classes at 0.4 and 0.9
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    assert roc_auc(y, s) == pytest.approx(np.mean(pairs), abs=1e-15) == 21 / 32
    assert accuracy(y, s) == np.mean((s > 0.5) == (y == 1)) == 4 / 8
    assert np.isnan(roc_auc(np.zeros(4), s[:4])) and np.isnan(roc_auc(np.ones(3), s[:3]))  # undefined, not 0.5


def test_logged_metrics_equal_numpy_on_the_models_own_predictions(tmp_path):
    """The final validation line: loss = mean BCE, accuracy at p = 0.5, AUC, on the val split's predictions."""
    from model.data import TraceBatches, load, split_indices

    data = write_dlrm_npz(tmp_path / "k.npz", n=350)
    out = tmp_path / "run"
    assert main(["train", str(data), *SMALL, "--num-batches", "3", "--out", str(out)]) == 0
    val = [r for r in read_metrics(out) if r["split"] == "val"][0]
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    model = DLRM(DLRMConfig(**ck["config"]), seed=0)
    model.load_state_dict(ck["model"])
    trace = load(str(data))
    vb = TraceBatches(trace, split_indices(trace.n_samples, "day")["val"], 1000)
    b = next(iter(vb))
    with torch.no_grad():
        z = model(b.dense, b.ids, b.offsets).double().numpy()
    y = b.labels.numpy()
    p = 1 / (1 + np.exp(-z))
    assert val["samples"] == len(y) == 25
    assert val["loss"] == pytest.approx(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), rel=1e-5)
    assert val["accuracy"] == pytest.approx(float(np.mean((p > 0.5) == (y > 0.5))))
    assert val["auc"] == pytest.approx(roc_auc(y, z), abs=1e-12)


# ---- 2 ranks: fewer tables than ranks, uneven tables, a batch that does not split ---------------------------
DIST_CASES = [([6], False), ([6], True), ([30, 7, 12], True)]  # 1 table on 2 ranks; 3 tables, 2 + 1 split


def _dist_case(sizes: list[int], multi: bool, B: int = 8):
    from tests.test_distributed import _case

    return _case(multi, B, sizes, seed=len(sizes) * 10 + multi)


def _dist_rank(rank: int, ports: list[int], out_dir: str, data: str) -> None:
    import datetime

    import torch.distributed as dist
    import torch.nn.functional as F

    from model.distributed import DistributedDLRM, all_mean

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))

    def init(k: int) -> None:  # a fresh port per group: a reused one can meet the last group's store
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[k]}", rank=rank, world_size=2,
                                timeout=datetime.timedelta(seconds=30))

    init(0)
    try:
        result = {}
        for i, (sizes, multi) in enumerate(DIST_CASES):
            cfg, batch = _dist_case(sizes, multi)
            net = DistributedDLRM(cfg, seed=0)
            loss = F.binary_cross_entropy_with_logits(net(batch), batch.labels[net.local_slice(8)])
            loss.backward()
            dense = {k.removeprefix("dp.module."): p.grad for k, p in net.named_parameters()
                     if not k.startswith("sparse_arch")}
            g = net.sparse_arch.weight.grad
            g = g.to_dense() if g is not None and g.is_sparse else g
            tables = dict(zip(net.tables, torch.split(g, net.sparse_arch.sizes))) if net.tables else {}
            result[i] = {"loss": all_mean(float(loss.detach())), "dense": dense, "tables": tables}
        try:
            net.local_slice(7)
        except ValueError as e:
            result["odd"] = str(e)
        torch.save(result, os.path.join(out_dir, f"grads{rank}.pt"))
        from model import train as mtrain

        flags = ["--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1",
                 "--num-batches", "4", "--print-freq", "2", "--quiet", "--seed", "3", "--distributed"]
        rc_odd = mtrain.main([data, *flags, "--mini-batch-size", "25", "--out", os.path.join(out_dir, "odd")])
        # run() tears the group down on its way out, error or not: set up again before each run
        rcs = [rc_odd]
        for k, (out, extra) in enumerate((("run", []), ("half", ["--num-batches", "2"]), ("half", ["--resume"]))):
            init(k + 1)
            rcs.append(mtrain.main([data, *flags, "--mini-batch-size", "50", "--out", os.path.join(out_dir, out),
                                    *extra]))
        with open(os.path.join(out_dir, f"rc{rank}"), "w") as f:
            f.write(" ".join(map(str, rcs)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    os._exit(0)  # see tests/test_distributed.py: gloo's threads can abort the interpreter's teardown


@pytest.mark.slow
def test_two_ranks_with_fewer_or_uneven_tables_equal_one_process(tmp_path, capsys):
    import time

    import torch.multiprocessing as mp
    import torch.nn.functional as F

    from tests.test_distributed import _free_port

    data = str(write_dlrm_npz(tmp_path / "one.npz", sizes=(10,)))  # one table on two ranks
    ports: list[int] = []
    while len(ports) < 4:
        if (port := _free_port()) not in ports:
            ports.append(port)
    ctx = mp.start_processes(_dist_rank, args=(ports, str(tmp_path), data), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1) and time.monotonic() < deadline:
            pass
    except mp.ProcessExitedException:
        pass
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    assert all((tmp_path / f"rc{r}").exists() for r in range(2)), "the 2 ranks did not finish"
    assert [(tmp_path / f"rc{r}").read_text() for r in range(2)] == ["2 0 0 0"] * 2  # 25 % 2: refused
    ranks = [torch.load(tmp_path / f"grads{r}.pt") for r in range(2)]
    assert [r["odd"] for r in ranks] == ["global batch 7 is not divisible by 2 ranks"] * 2
    for i, (sizes, multi) in enumerate(DIST_CASES):
        cfg, batch = _dist_case(sizes, multi)
        model = DLRM(cfg, seed=0)
        loss = F.binary_cross_entropy_with_logits(model(batch.dense, batch.ids, batch.offsets), batch.labels)
        loss.backward()
        g = model.sparse_arch.weight.grad.to_dense()
        ref_tables = torch.split(g, sizes)
        got_tables = {t: gt for r in ranks for t, gt in r[i]["tables"].items()}
        assert sorted(got_tables) == list(range(len(sizes)))
        for r in ranks:
            assert r[i]["loss"] == pytest.approx(float(loss.detach()), abs=1e-6)
            for k, p in model.named_parameters():
                if not k.startswith("sparse_arch"):
                    torch.testing.assert_close(r[i]["dense"][k], p.grad, atol=1e-6, rtol=1e-5)
        for t in range(len(sizes)):
            torch.testing.assert_close(got_tables[t], ref_tables[t], atol=1e-6, rtol=1e-5)
    # the CLI: one table on two ranks gives the single-process metrics
    flags = ["--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1",
             "--num-batches", "4", "--print-freq", "2", "--quiet", "--seed", "3", "--mini-batch-size", "50",
             "--num-threads", "1"]
    assert main(["train", data, *flags, "--out", str(tmp_path / "single")]) == 0
    single, dist_run = read_metrics(tmp_path / "single"), read_metrics(tmp_path / "run")
    assert [(r["split"], r["step"], r["samples"]) for r in dist_run] == \
        [(r["split"], r["step"], r["samples"]) for r in single]
    for a, b in zip(single, dist_run):
        for k in ("loss", "accuracy", "auc"):
            assert b[k] == pytest.approx(a[k], abs=1e-5)
    # a distributed run resumed from its per-rank checkpoints equals the uninterrupted one
    assert sorted(os.listdir(tmp_path / "half")) == ["checkpoint-rank0.pt", "checkpoint-rank1.pt", "metrics.jsonl"]
    assert strip_timing(read_metrics(tmp_path / "half")) == strip_timing(dist_run)


def test_resume_drops_a_metrics_line_cut_short_by_a_crash(tmp_path):
    data = write_dlrm_npz(tmp_path / "k.npz", n=300)
    flags = [*SMALL, "--print-freq", "2", "--checkpoint-freq", "2"]
    assert main(["train", str(data), *flags, "--num-batches", "4", "--out", str(tmp_path / "full")]) == 0
    out = tmp_path / "run"
    assert main(["train", str(data), *flags, "--num-batches", "2", "--out", str(out)]) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"split": "train", "st')  # was a JSONDecodeError traceback on --resume
    assert main(["train", str(data), *flags, "--num-batches", "4", "--out", str(out), "--resume"]) == 0
    assert strip_timing(read_metrics(out)) == strip_timing(read_metrics(tmp_path / "full"))


def test_distributed_without_torchrun_is_one_line(tmp_path, capsys, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    data = write_dlrm_npz(tmp_path / "k.npz", n=100)
    assert main(["train", str(data), *SMALL, "--num-batches", "1", "--distributed"]) == 2  # was a traceback
    err = capsys.readouterr().err
    assert "needs torchrun" in err and len(err.strip().splitlines()) == 1
    assert mtrain.main([str(data), *SMALL, "--num-batches", "1", "--distributed"]) == 2
    assert "needs torchrun" in capsys.readouterr().err


def test_bottom_mlp_mismatch_names_both_flags(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "k.npz", n=100)
    assert main(["train", str(data), *SMALL, "--arch-mlp-bot", "13-8-5", "--num-batches", "1"]) == 2
    err = capsys.readouterr().err
    assert "--arch-mlp-bot" in err and "--arch-sparse-feature-size" in err and len(err.strip().splitlines()) == 1


def test_resume_checks_the_world_size_and_old_checkpoints_keep_resuming():
    flags = {"--optimizer": "sgd", "--learning-rate": 0.01, "--mini-batch-size": 32, "--seed": 0,
             "--split": "day", "--no-shuffle": False, "ranks": 1}
    with pytest.raises(mtrain.TracegenError, match="written by 2 ranks, this run has 1"):
        mtrain._check_resume_flags({"training": {**flags, "ranks": 2}}, flags, "c.pt")
    mtrain._check_resume_flags({"seed": 0}, flags, "c.pt")  # a checkpoint from before "training" was kept
    with pytest.raises(mtrain.TracegenError, match="--seed 3, this run gives 0"):
        mtrain._check_resume_flags({"seed": 3}, flags, "c.pt")


def test_resume_of_an_older_checkpoint_with_another_optimizer_is_one_line(tmp_path, capsys):
    data = write_dlrm_npz(tmp_path / "k.npz", n=300)
    out = tmp_path / "run"
    assert main(["train", str(data), *SMALL, "--num-batches", "2", "--out", str(out)]) == 0
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    del ck["training"]  # as written before the training flags were kept
    torch.save(ck, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", str(data), *SMALL, "--num-batches", "4", "--out", str(out), "--resume",
                 "--optimizer", "adagrad"]) == 2  # was a KeyError traceback from Adagrad.step
    err = capsys.readouterr().err
    assert "optimizer state does not fit --optimizer adagrad" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags,message", [
    (["--device", "gpu"], "--device must be cpu, cuda or cuda:N"),  # was a torch RuntimeError traceback
    (["--out", "FILE"], "exists and is not a directory"),  # was a FileExistsError traceback
])
def test_python_m_entry_point_checks_like_the_cli(tmp_path, capsys, flags, message):
    data = write_dlrm_npz(tmp_path / "k.npz", n=100)
    flags = [str(data) if f == "FILE" else f for f in flags]
    assert mtrain.main([str(data), *SMALL, "--num-batches", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("model.train: error:") and len(err.strip().splitlines()) == 1
