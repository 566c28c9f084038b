"""Hybrid-parallel DLRM on ``torch.distributed``: tables sharded across ranks, MLPs data parallel.

The seed's scheme (Naumov et al., 2019, section 4): every rank reads the ids of the *global* batch
for the tables it owns (model parallel, tables balanced by size) and pools them, ``(B, T_r, D)``;
the butterfly shuffle, one ``all_to_all`` of pooled embeddings, gives each rank every table's vector
for its own slice of the batch, ``(B / W, T, D)``; the MLPs and interaction run data parallel under
``DistributedDataParallel``. gloo on CPU, nccl on GPU.

Notation: ``B`` global batch, ``W`` ranks (world size), ``T`` tables, ``T_r`` tables on rank ``r``,
``D`` embedding dim.

Gradients equal the single-process ones on the same global batch: DDP averages the MLP gradients
over ranks, and the embedding gradients coming back through the all_to_all (a sum over ranks of
per-rank means) are scaled by ``1 / W`` once, on the pooled tensor.
"""

from __future__ import annotations

import inspect
import os

import torch
import torch.distributed as dist
from torch import nn

from model.dlrm import DLRM, DLRMConfig
from tracegen.errors import TracegenError


def shard_tables(sizes: list[int], world: int) -> list[list[int]]:
    """Tables per rank, balanced by rows: largest first onto the least-loaded rank (ties: lower rank)."""
    load = [0] * world
    shards: list[list[int]] = [[] for _ in range(world)]
    for t in sorted(range(len(sizes)), key=lambda t: (-sizes[t], t)):
        r = min(range(world), key=lambda r: (load[r], r))
        shards[r].append(t)
        load[r] += sizes[t]
    return [sorted(s) for s in shards]


class _AllToAll(torch.autograd.Function):
    """``dist.all_to_all_single`` with its transpose as backward (the same collective, splits swapped)."""

    @staticmethod
    def forward(ctx, x, out_splits, in_splits, group):
        ctx.splits, ctx.group = (out_splits, in_splits), group
        out = x.new_empty(sum(out_splits))
        dist.all_to_all_single(out, x.contiguous(), out_splits, in_splits, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        out_splits, in_splits = ctx.splits
        g = grad.new_empty(sum(in_splits))
        dist.all_to_all_single(g, grad.contiguous(), in_splits, out_splits, group=ctx.group)
        return g, None, None, None


class _DataParallelPart(nn.Module):
    """The replicated part: bottom MLP, interaction, top MLP."""

    def __init__(self, model: DLRM):
        super().__init__()
        self.dense_arch, self.inter_arch, self.over_arch = model.dense_arch, model.inter_arch, model.over_arch

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        x = self.dense_arch(dense)  # (B / W, D)
        z = self.inter_arch(x, sparse)  # (B / W, I)
        return self.over_arch(z)  # (B / W,)


class DistributedDLRM(nn.Module):
    """One rank's DLRM: its table shard plus a DDP replica of the MLPs; ``forward(batch)`` gives local logits.

    ``batch`` is the *global* batch (every rank builds the same one); the rank pools its tables for all
    ``B`` samples and returns logits for its slice ``rank * B / W .. (rank + 1) * B / W``.
    """

    def __init__(self, config: DLRMConfig, seed: int = 0, group=None, device: torch.device | str = "cpu"):
        super().__init__()
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.shards = shard_tables(list(config.embedding_sizes), self.world)
        self.tables = self.shards[self.rank]
        self.config = config
        model = DLRM(config, seed=seed, tables=self.tables).to(device)
        self.sparse_arch = model.sparse_arch
        self.register_buffer("my_tables", torch.tensor(self.tables, dtype=torch.int64, device=device),
                             persistent=False)
        order = [t for s in self.shards for t in s]  # tables in the order the all_to_all delivers them
        self.register_buffer("unshard", torch.argsort(torch.tensor(order)).to(device), persistent=False)
        ddp_kw = {"device_ids": [torch.device(device).index]} if torch.device(device).type == "cuda" else {}
        # the replicated part has one buffer, the pair index, equal on every rank: no syncing
        ddp_params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
        sync = "forward_sync_buffers" if "forward_sync_buffers" in ddp_params else "broadcast_buffers"
        ddp_kw[sync] = False
        self.dp = nn.parallel.DistributedDataParallel(_DataParallelPart(model), process_group=group, **ddp_kw)

    def local_slice(self, batch_size: int) -> slice:
        if batch_size % self.world:
            raise ValueError(f"global batch {batch_size} is not divisible by {self.world} ranks")
        n = batch_size // self.world
        return slice(self.rank * n, (self.rank + 1) * n)

    def _my_ids(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        if batch.offsets is None:
            return batch.ids.index_select(1, self.my_tables), None  # (B, T_r)
        B, o = batch.batch_size, batch.offsets
        parts, lens = [], []
        for t in self.tables:
            a, b = o[t * B], o[(t + 1) * B]
            parts.append(batch.ids[a:b])
            lens.append(o[t * B + 1:(t + 1) * B + 1] - o[t * B:(t + 1) * B])
        offsets = torch.zeros(len(self.tables) * B + 1, dtype=torch.int64, device=o.device)
        if lens:
            torch.cumsum(torch.cat(lens), 0, out=offsets[1:])
        ids = torch.cat(parts) if parts else batch.ids[:0]
        return ids, offsets  # (N_r,), (T_r * B + 1,)

    def forward(self, batch) -> torch.Tensor:
        B, W, D = batch.batch_size, self.world, self.config.embedding_dim
        mine = self.local_slice(B)
        Bl = B // W
        if self.tables:
            e = self.sparse_arch(*self._my_ids(batch))  # (B, T_r, D)
        else:  # more ranks than tables: this rank only sends nothing and receives
            e = torch.zeros(B, 0, D, device=batch.dense.device, requires_grad=True)  # (B, 0, D)
        if e.requires_grad:
            e.register_hook(lambda g: g / W)  # per-rank means summed over W ranks -> global mean
        Tr = len(self.tables)
        send = e.reshape(-1)  # (B * T_r * D,), rank j's chunk is samples j * Bl .. (j + 1) * Bl
        out_splits = [Bl * len(s) * D for s in self.shards]
        recv = _AllToAll.apply(send, out_splits, [Bl * Tr * D] * W, self.group)  # (Bl * T * D,)
        pieces = [p.view(Bl, len(s), D) for p, s in zip(recv.split(out_splits), self.shards)]
        sparse = torch.cat(pieces, dim=1).index_select(1, self.unshard)  # (Bl, T, D) in table order
        return self.dp(batch.dense[mine], sparse)  # (Bl,)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list(self.sparse_arch.parameters())

    def dense_parameters(self) -> list[nn.Parameter]:
        return list(self.dp.parameters())


def init_from_env(device: str = "cpu") -> tuple[int, int]:
    """``init_process_group`` from torchrun's environment (gloo on CPU, nccl on CUDA); (rank, world)."""
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise TracegenError("--distributed needs torchrun (RANK, WORLD_SIZE, MASTER_ADDR are not set), e.g. "
                                "torchrun --nproc_per_node=2 -m model.train DATA --distributed")
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist.get_rank(), dist.get_world_size()


def all_mean(x: float, group=None) -> float:
    """Mean of a float over ranks."""
    t = torch.tensor([x], dtype=torch.float64)
    if dist.get_backend(group) == "nccl":
        t = t.cuda()
    dist.all_reduce(t, group=group)
    return float(t.item()) / dist.get_world_size(group)


def all_gather_cat(x: torch.Tensor, group=None) -> torch.Tensor:
    """Concatenate equal-sized 1-D tensors from every rank, in rank order."""
    out = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, x.contiguous(), group=group)
    return torch.cat(out)
