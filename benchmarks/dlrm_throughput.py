"""End-to-end DLRM training throughput (samples/s, data loading included) against baselines in the same run.

The DLRM reference's Kaggle-style configuration: sparse dim 16, bottom MLP 13-512-256-64-16, top MLP
512-256-1, 26 tables of 100k rows, batch 2048, one torch thread. The data is an in-memory one-hot
trace with skewed ids, raw integer dense features and labels; every variant reads it through the same
path (``model.data.TraceBatches`` + the prefetch thread), so the figures include building batches.

Variants, each timed over ``--batches`` batches per round, ``--rounds`` rounds interleaved; the median
round is reported in wall-clock time and in process CPU time (all threads, data loading included; on a
shared machine it leaves out the time other processes held the cores):

- ``tracegen``: ``model.dlrm.DLRM`` (one fused table, sparse gradients, compiled sparse SGD).
- ``tracegen-per-table``: the same with one ``nn.EmbeddingBag`` per table (the fused/per-table choice).
- ``straightforward``: per-table ``nn.EmbeddingBag``, dense gradients, one ``torch.optim.SGD`` over all
  parameters, the reference's interaction code.
- ``torchrec``: TorchRec 1.8's ``DLRM`` sharded by ``DistributedModelParallel`` on a 1-rank gloo group
  (FBGEMM CPU kernels, SGD fused into the backward); skipped with a message when not importable.

Run: ``python benchmarks/dlrm_throughput.py [--batches 20 --rounds 3]``. ``--device cuda`` runs the
first three on a GPU (TorchRec is CPU-only here).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from model.data import TraceBatches, prefetch  # noqa: E402
from model.dlrm import DLRM, DLRMConfig  # noqa: E402
from model.train import make_optimizers  # noqa: E402
from tracegen import Trace  # noqa: E402


def make_trace(n: int, tables: int, rows: int, seed: int = 0) -> Trace:
    """One-hot ids skewed towards low rows (a power of a uniform), raw dense ints, 25% positive labels."""
    rng = np.random.default_rng(seed)
    ids = (rng.random((n, tables)) ** 3 * rows).astype(np.int64)
    dense = rng.integers(0, 1000, (n, 13)).astype(np.float32)
    labels = (rng.random(n) < 0.25).astype(np.float32)
    return Trace.from_dense_ids(ids, [rows] * tables, dense=dense, labels=labels)


class Straightforward(nn.Module):
    """The obvious DLRM: per-table EmbeddingBag (dense gradients), MLPs, the reference's dot interaction."""

    def __init__(self, tables: int, rows: int, dim: int, bot: list[int], top: list[int]):
        super().__init__()
        self.embs = nn.ModuleList(nn.EmbeddingBag(rows, dim, mode="sum") for _ in range(tables))

        def mlp(w, last_relu):
            layers = []
            for i in range(len(w) - 1):
                layers.append(nn.Linear(w[i], w[i + 1]))
                if i < len(w) - 2 or last_relu:
                    layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        n = tables + 1
        self.bot = mlp(bot, True)
        self.top = mlp([dim + n * (n - 1) // 2, *top], False)
        self.li = torch.tensor([i for i in range(n) for j in range(i)])
        self.lj = torch.tensor([j for i in range(n) for j in range(i)])

    def forward(self, dense, ids):
        B = dense.shape[0]
        x = self.bot(dense)  # (B, D)
        offsets = torch.arange(B, device=ids.device)
        ly = [emb(ids[:, t].contiguous(), offsets) for t, emb in enumerate(self.embs)]  # T x (B, D)
        t = torch.cat([x] + ly, dim=1).view(B, -1, x.shape[1])  # (B, T + 1, D)
        z = torch.bmm(t, t.transpose(1, 2))  # (B, T + 1, T + 1)
        return self.top(torch.cat([x, z[:, self.li, self.lj]], dim=1)).squeeze(1)  # (B,)


def tracegen_variant(cfg: DLRMConfig, device, lr: float):
    model = DLRM(cfg, seed=0).to(device)
    opts = make_optimizers(model.dense_parameters(), model.embedding_parameters(), "sgd", lr)

    def step(b):
        loss = F.binary_cross_entropy_with_logits(model(b.dense, b.ids, b.offsets), b.labels)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        return loss

    return step


def straightforward_variant(tables, rows, dim, bot, top, device, lr: float):
    model = Straightforward(tables, rows, dim, bot, top).to(device)
    model.li, model.lj = model.li.to(device), model.lj.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step(b):
        loss = F.binary_cross_entropy_with_logits(model(b.dense, b.ids), b.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def torchrec_variant(tables, rows, dim, bot, top, lr: float):
    """TorchRec's DLRM under DistributedModelParallel on one gloo rank, SGD fused into the backward."""
    import torch.distributed as dist
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
    from torchrec.datasets.utils import Batch as TRBatch
    from torchrec.distributed import DistributedModelParallel
    from torchrec.models.dlrm import DLRM as TRDLRM
    from torchrec.models.dlrm import DLRMTrain as TRDLRMTrain
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from torchrec.optim.keyed import KeyedOptimizerWrapper

    if not dist.is_initialized():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(port))
        dist.init_process_group("gloo", rank=0, world_size=1)
    keys = [f"f{t}" for t in range(tables)]
    ebc = EmbeddingBagCollection(device=torch.device("meta"), tables=[
        EmbeddingBagConfig(name=f"t{t}", embedding_dim=dim, num_embeddings=rows, feature_names=[keys[t]])
        for t in range(tables)])
    model = TRDLRMTrain(TRDLRM(embedding_bag_collection=ebc, dense_in_features=bot[0],
                               dense_arch_layer_sizes=bot[1:], over_arch_layer_sizes=top))
    apply_optimizer_in_backward(torch.optim.SGD, model.model.sparse_arch.parameters(), {"lr": lr})
    dmp = DistributedModelParallel(model, device=torch.device("cpu"))
    opt = KeyedOptimizerWrapper(dict(dmp.named_parameters()), lambda ps: torch.optim.SGD(ps, lr=lr))

    def step(b):
        B, T = b.ids.shape
        kjt = KeyedJaggedTensor(keys=keys, values=b.ids.t().reshape(-1),
                                lengths=torch.ones(T * B, dtype=torch.int32))
        opt.zero_grad()
        loss, _ = dmp(TRBatch(dense_features=b.dense, sparse_features=kjt, labels=b.labels))
        loss.backward()
        opt.step()
        return loss

    return step


def time_variant(step, loader: TraceBatches, start: int, n: int, device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``n`` batches from ``start``, built by the prefetch thread.

    CPU seconds count every thread of this process (training and data loading) and, unlike wall time,
    not the time other processes held the cores: the steadier figure on a shared machine.
    """
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    t, c = time.perf_counter(), time.process_time()
    loss = None
    for b in prefetch(loader.batches(start, start + n), device=device):
        loss = step(b)
    float(loss.detach())
    sync()
    return time.perf_counter() - t, time.process_time() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=20, help="timed batches per variant per round (20)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (3)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--spec", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "traces",
                                                  "criteo-like.json"),
                   help="a dist.json whose on-the-fly sampling speed is printed for reference")
    p.add_argument("--skip", nargs="*", default=[], help="variants to skip (torchrec, tracegen-per-table)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    B, T, R, D = args.batch_size, args.tables, args.rows, 16
    bot, top = [13, 512, 256, 64, D], [512, 256, 1]
    per_round = args.batches
    n_batches = args.warmup + args.rounds * per_round
    trace = make_trace(B * n_batches, T, R)
    loader = TraceBatches(trace, np.arange(trace.n_samples), B, shuffle=True)  # gathers, as in training
    print(f"# DLRM throughput: {T} tables x {R} rows, D={D}, bottom {'-'.join(map(str, bot))}, top "
          f"{'-'.join(map(str, top))}, batch {B}, {args.threads} thread(s), {args.device}; "
          f"{args.rounds} rounds x {per_round} batches; load average {os.getloadavg()[0]:.2f} at start")

    # the data path alone, for the record: it must never be the bottleneck
    t = time.perf_counter()
    for _ in loader.batches(0, min(n_batches, 20)):
        pass
    data_rate = B * min(n_batches, 20) / (time.perf_counter() - t)
    print(f"data path alone (shuffled batches, one thread, no prefetch): {data_rate:,.0f} samples/s")
    if args.spec and os.path.exists(args.spec):  # on-the-fly synthetic data: the sampler's own speed
        try:
            from model.data import SyntheticBatches

            syn = SyntheticBatches(args.spec, B)  # samples its first chunk (2^18 samples) here
            per_chunk = syn.chunk_batches
            t = time.perf_counter()
            for _ in syn.batches(per_chunk, 2 * per_chunk):  # the second chunk: one sample() call
                pass
            print(f"dist.json sampled on the fly ({os.path.basename(args.spec)}, chunks of {per_chunk * B} "
                  f"samples): {B * per_chunk / (time.perf_counter() - t):,.0f} samples/s")
        except Exception as e:  # noqa: BLE001 -- informational line only
            print(f"dist.json sampling: skipped ({e})")

    cfg = DLRMConfig(embedding_sizes=[R] * T, embedding_dim=D, mlp_bot=bot, mlp_top=top)
    variants = {}
    variants["tracegen"] = tracegen_variant(cfg, args.device, args.lr)
    per_table = DLRMConfig(**{**cfg.__dict__, "fused": False})
    variants["tracegen-per-table"] = tracegen_variant(per_table, args.device, args.lr)
    variants["straightforward"] = straightforward_variant(T, R, D, bot, top, args.device, args.lr)
    if "torchrec" not in args.skip:
        if torch.device(args.device).type != "cpu":
            print("torchrec: skipped (the installed fbgemm-gpu-cpu runs on CPU only)")
        else:
            try:
                variants["torchrec"] = torchrec_variant(T, R, D, bot, top, args.lr)
            except ImportError as e:
                print(f"torchrec: skipped, not importable ({e})")
    for name in args.skip:
        variants.pop(name, None)

    for step in variants.values():  # warm up (allocations, compiled kernels)
        time_variant(step, loader, 0, args.warmup, args.device)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for r in range(args.rounds):
        start = args.warmup + r * per_round
        for name, step in variants.items():
            times[name].append(time_variant(step, loader, start, per_round, args.device))
    for label, col in (("wall clock", 0), ("process CPU time", 1)):
        rate = {k: B * per_round / statistics.median(x[col] for x in v) for k, v in times.items()}
        print(f"{'median, ' + label + ':':<30} {'samples/s':>10} {'ms/batch':>9} {'vs straightforward':>19} "
              f"{'vs torchrec':>12}")
        for name, r in rate.items():
            vs_s = f"{r / rate['straightforward']:.2f}x" if "straightforward" in rate else "-"
            vs_t = f"{r / rate['torchrec']:.2f}x" if "torchrec" in rate else "-"
            print(f"  {name:<28} {r:>10,.0f} {1e3 * B / r:>9.1f} {vs_s:>19} {vs_t:>12}")
    print("# per-round wall-clock samples/s: " + "; ".join(
        f"{k} " + ", ".join(f"{B * per_round / w:,.0f}" for w, _ in v) for k, v in times.items()))
    print(f"# load average {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} cores)")
    if "torchrec" in variants:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
