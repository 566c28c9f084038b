"""The DLRM (model/dlrm.py), its sparse optimizers (model/optim.py) and exact AUC (model/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model.data import Batch, TraceBatches  # noqa: E402
from model.dlrm import DLRM, DenseArch, DLRMConfig, DLRMTrain, InteractionArch, OverArch, SparseArch  # noqa: E402
from model.metrics import roc_auc  # noqa: E402
from model.optim import RowWiseAdagrad, SparseSGD  # noqa: E402
from model.train import make_optimizers  # noqa: E402
from tests import naive  # noqa: E402
from tracegen import Trace  # noqa: E402

SIZES = [7, 11, 5]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: OpenMP threads only add spin-waits on a loaded 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_config(**kw) -> DLRMConfig:
    base = dict(embedding_sizes=SIZES, embedding_dim=4, mlp_bot=[3, 8, 4], mlp_top=[6, 1])
    base.update(kw)
    return DLRMConfig(**base)


def one_hot_batch(rng, B=6, sizes=SIZES, F=3) -> Batch:
    ids = np.stack([rng.integers(0, n, B) for n in sizes], axis=1)
    return Batch(torch.from_numpy(rng.random((B, F)).astype(np.float32)), torch.from_numpy(ids), None,
                 torch.from_numpy(rng.integers(0, 2, B).astype(np.float32)))


# ---- shapes, one test per arch -------------------------------------------------------------------------
def test_dense_arch_shape():
    arch = DenseArch([3, 8, 4], torch.Generator().manual_seed(0))
    assert arch(torch.zeros(5, 3)).shape == (5, 4)


@pytest.mark.parametrize("fused", [True, False])
def test_sparse_arch_shape(fused, rng):
    arch = SparseArch(SIZES, 4, fused=fused)
    b = one_hot_batch(rng, B=5)
    assert arch(b.ids).shape == (5, 3, 4)
    offsets = torch.arange(0, 2 * 3 * 5 + 1, 2)  # every bag has 2 ids
    ids = torch.zeros(30, dtype=torch.int64)
    assert arch(ids, offsets).shape == (5, 3, 4)


@pytest.mark.parametrize("op,itself,width", [("dot", False, 4 + 6), ("dot", True, 4 + 10),
                                             ("cat", False, 16)])
def test_interaction_arch_shape(op, itself, width):
    arch = InteractionArch(3, 4, op, itself)
    assert arch.output_dim == width
    assert arch(torch.zeros(5, 4), torch.zeros(5, 3, 4)).shape == (5, width)
    assert small_config(interaction_op=op, interaction_itself=itself).interaction_width() == width


def test_over_arch_shape():
    arch = OverArch(10, [6, 1], torch.Generator().manual_seed(0))
    assert arch(torch.zeros(5, 10)).shape == (5,)


def test_dlrm_shape(rng):
    b = one_hot_batch(rng)
    assert DLRM(small_config())(b.dense, b.ids).shape == (6,)


# ---- forward against the naive loop-over-pairs formula ------------------------------------------------
@pytest.mark.parametrize("op,itself,fused", [("dot", False, True), ("dot", True, True), ("cat", False, True),
                                             ("dot", False, False), ("dot", True, False)])
def test_forward_equals_naive_pairs(op, itself, fused, rng):
    model = DLRM(small_config(interaction_op=op, interaction_itself=itself, fused=fused), seed=3)
    b = one_hot_batch(rng)
    with torch.no_grad():
        got = model(b.dense, b.ids).numpy()
        want = naive.dlrm_forward(model, b.dense, b.ids)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("itself", [False, True])
def test_interaction_gradient_equals_autograd_of_the_formula(itself, rng):
    arch = InteractionArch(4, 3, "dot", itself)
    n = 5
    li, lj = torch.tril_indices(n, n, offset=0 if itself else -1)
    for B in (6, 4, 6):  # the backward's workspace is reused across calls and batch sizes
        dense = torch.from_numpy(rng.normal(size=(B, 3)).astype(np.float64)).requires_grad_()
        sparse = torch.from_numpy(rng.normal(size=(B, 4, 3)).astype(np.float64)).requires_grad_()
        w = torch.from_numpy(rng.normal(size=(B, arch.output_dim)))
        (arch(dense, sparse) * w).sum().backward()
        got = dense.grad.clone(), sparse.grad.clone()
        dense.grad = sparse.grad = None
        c = torch.cat([dense.unsqueeze(1), sparse], 1)
        plain = torch.cat([dense, torch.stack([(c[:, i] * c[:, j]).sum(1) for i, j in zip(li, lj)], 1)], 1)
        torch.testing.assert_close(arch(dense, sparse), plain)
        (plain * w).sum().backward()
        torch.testing.assert_close(got[0], dense.grad)
        torch.testing.assert_close(got[1], sparse.grad)


def test_fused_and_per_table_are_the_same_model(rng):
    b = one_hot_batch(rng)
    a = DLRM(small_config(fused=True), seed=5)(b.dense, b.ids)
    c = DLRM(small_config(fused=False), seed=5)(b.dense, b.ids)
    assert torch.equal(a, c)
    assert not torch.equal(a, DLRM(small_config(), seed=6)(b.dense, b.ids))


@pytest.mark.parametrize("fused", [True, False])
def test_multi_hot_bags_are_sum_pooled(fused, rng):
    B, T = 4, len(SIZES)
    lengths = rng.integers(0, 4, (T, B))  # empty bags too
    values = np.concatenate([rng.integers(0, SIZES[t], lengths[t].sum()) for t in range(T)])
    offsets = np.r_[0, np.cumsum(lengths.ravel())]
    arch = SparseArch(SIZES, 4, fused=fused, seed=2)
    got = arch(torch.from_numpy(values), torch.from_numpy(offsets))
    weights = [arch.weight[sum(SIZES[:t]):sum(SIZES[:t + 1])] if fused else arch.bags[t].weight
               for t in range(T)]
    for t in range(T):
        for b in range(B):
            rows = values[offsets[t * B + b]:offsets[t * B + b + 1]]
            want = sum((weights[t][r] for r in rows), torch.zeros(4))
            torch.testing.assert_close(got[b, t], want)


def test_config_errors_give_the_numbers():
    with pytest.raises(ValueError, match="bottom MLP output 8 != embedding dim 4"):
        small_config(mlp_bot=[3, 8]).validate()
    with pytest.raises(ValueError, match="must end in 1 output.*got 2"):
        small_config(mlp_top=[6, 2]).validate()
    with pytest.raises(ValueError, match="interaction_op"):
        small_config(interaction_op="sum").validate()
    with pytest.raises(ValueError, match=r"positive row counts.*\[7, 0\]"):
        small_config(embedding_sizes=[7, 0]).validate()


# ---- training behaviour -------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["sgd", "adagrad"])
def test_one_step_lowers_the_loss(opt, rng):
    model = DLRM(small_config(), seed=0)
    net = DLRMTrain(model)
    b = one_hot_batch(rng, B=32)
    opts = make_optimizers(model.dense_parameters(), model.embedding_parameters(), opt, 0.05)
    before, _ = net(b)
    before.backward()
    for o in opts:
        o.step()
    after, _ = net(b)
    assert float(after.detach()) < float(before.detach())


def planted_trace(n: int, seed: int = 0, sizes=(50, 40, 30, 20)) -> Trace:
    """Labels from a fixed random teacher: a linear score of per-row weights plus the dense features."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    dense_raw = rng.integers(0, 20, (n, 3)).astype(np.float32)
    row_w = [rng.normal(0, 1, s) for s in sizes]
    score = sum(row_w[t][ids[:, t]] for t in range(len(sizes)))
    score = score + np.log1p(dense_raw) @ np.array([1.0, -1.0, 0.5])
    labels = (score > np.median(score)).astype(np.float32)
    return Trace.from_dense_ids(ids, list(sizes), dense=dense_raw, labels=labels)


def test_planted_signal_is_learned(rng):
    trace = planted_trace(12_000)
    cfg = DLRMConfig(embedding_sizes=trace.cardinalities, embedding_dim=4, mlp_bot=[3, 16, 4],
                     mlp_top=[16, 1])
    model = DLRM(cfg, seed=0)
    net = DLRMTrain(model)
    opts = make_optimizers(model.dense_parameters(), model.embedding_parameters(), "adagrad", 0.1)
    train = TraceBatches(trace, np.arange(10_000), 64, shuffle=True, seed=1, n_dense=3)
    for b in train.batches(0, 300):
        loss, _ = net(b)
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o in opts:
            o.step()
    val = TraceBatches(trace, np.arange(10_000, 12_000), 500, n_dense=3)
    with torch.no_grad():
        scores = np.concatenate([net(b)[1].numpy() for b in val])
    auc = roc_auc(trace.labels[10_000:], scores)
    print(f"planted-signal validation AUC {auc:.3f}")
    assert auc > 0.75, auc


# ---- sparse optimizers against plain formulas ---------------------------------------------------------
def test_sparse_sgd_equals_dense_sgd(rng):
    w0 = torch.from_numpy(rng.random((20, 3)).astype(np.float32))
    rows = torch.tensor([3, 7, 3, 19, 0])  # a repeated row
    vals = torch.from_numpy(rng.random((5, 3)).astype(np.float32))
    w = torch.nn.Parameter(w0.clone())
    w.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), vals, w.shape, check_invariants=True)
    SparseSGD([w], lr=0.5).step()
    want = w0.clone().index_add_(0, rows, vals, alpha=-0.5)
    torch.testing.assert_close(w.data, want)


def test_rowwise_adagrad_equals_naive(rng):
    w0 = rng.random((10, 4)).astype(np.float32)
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = RowWiseAdagrad([w], lr=0.3, eps=1e-8)
    want, state = w0.astype(np.float64), np.zeros(10)
    for _ in range(3):
        rows = rng.integers(0, 10, 7)
        vals = rng.random((7, 4)).astype(np.float32)
        w.grad = torch.sparse_coo_tensor(torch.from_numpy(rows).unsqueeze(0), torch.from_numpy(vals), w.shape,
                                         check_invariants=True)
        opt.step()
        for r in sorted(set(rows.tolist())):
            g = vals[rows == r].astype(np.float64).sum(0)
            state[r] += np.mean(g ** 2)
            want[r] -= 0.3 * g / (np.sqrt(state[r]) + 1e-8)
    np.testing.assert_allclose(w.data.numpy(), want, rtol=1e-5, atol=1e-6)


# ---- exact AUC ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,levels", [(50, 1000), (60, 4), (7, 2)])
def test_auc_equals_naive_pairwise(n, levels, rng):
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.integers(0, levels, n) / levels  # few levels: many ties
    assert roc_auc(labels, scores) == pytest.approx(naive.pairwise_auc(labels, scores), abs=1e-12)


def test_auc_edge_cases():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))

