"""The DLRM model (Naumov et al., 2019): four small modules wired in one readable file.

``DLRM.forward`` reads like the paper: the bottom MLP turns dense features into one vector
(:class:`DenseArch`), every table pools its bag of rows into one vector (:class:`SparseArch`),
those ``T + 1`` vectors interact pairwise (:class:`InteractionArch`), and the top MLP turns the
interactions into a click logit (:class:`OverArch`). Names follow TorchRec's
``torchrec/models/dlrm.py``; the flags mirror the DLRM reference (``--arch-*``). The loss lives in
:class:`DLRMTrain`, not in the model.

Notation: ``B`` batch, ``T`` tables, ``D`` embedding dim, ``F`` dense features, ``N`` ids in a
multi-hot batch (all tables). A batch's ids come either as a ``(B, T)`` tensor (one-hot, every
sample looks up exactly one row per table) or KJT-style: ``values (N,)`` concatenated table-major
(table 0's ``B`` bags, then table 1's ...) with ``offsets (T * B + 1,)``. Ids are rows *local to
their table*; :class:`SparseArch` adds each table's base row once, from a buffer built in
``__init__``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class DLRMConfig:
    """Architecture of one DLRM; the fields mirror the reference's ``--arch-*`` flags."""

    # Rows per embedding table (--arch-embedding-size). Default in the CLI: the data's cardinalities,
    # so every id of the trace has a row.
    embedding_sizes: list[int]
    # D, the width of every embedding row (--arch-sparse-feature-size). The dot interaction needs the
    # bottom MLP to end at D too, so dense and sparse vectors live in one space.
    embedding_dim: int = 16
    # Bottom MLP layer widths including its input (--arch-mlp-bot): the first entry is F, the number of
    # dense features (13 for Criteo); the last must equal embedding_dim.
    mlp_bot: list[int] = dataclasses.field(default_factory=lambda: [13, 512, 256, 64, 16])
    # Top MLP widths after its input (--arch-mlp-top), as the current reference takes them: the input
    # width is the interaction's output and is computed, not given. The last entry must be 1 (one logit).
    mlp_top: list[int] = dataclasses.field(default_factory=lambda: [512, 256, 1])
    # "dot": pairwise dot products of the T + 1 vectors (the paper); "cat": concatenate them.
    interaction_op: str = "dot"
    # Include each vector's dot product with itself (--arch-interaction-itself); off in the reference.
    interaction_itself: bool = False
    # One fused weight for all tables (one gather per batch) instead of T nn.EmbeddingBag modules. Fused
    # measured faster on CPU (benchmarks/dlrm_throughput.py); both give identical results for a seed.
    fused: bool = True
    # Sparse embedding gradients: only the rows a batch touched are updated. Dense gradients of a 26 x 100k
    # x 16 model are 166 MB per step to zero and apply, which dominates a CPU step.
    sparse_grad: bool = True

    @property
    def n_tables(self) -> int:
        return len(self.embedding_sizes)

    @property
    def n_dense(self) -> int:
        return int(self.mlp_bot[0])

    def embedding_bytes(self, element_size: int = 4) -> list[int]:
        """Bytes of each table's weight, ``rows x D x element_size`` (fp32 by default); Python ints, no overflow."""
        return [int(r) * int(self.embedding_dim) * int(element_size) for r in self.embedding_sizes]

    def interaction_width(self) -> int:
        """Width of InteractionArch's output, the top MLP's input."""
        n = self.n_tables + 1  # dense vector plus one pooled vector per table
        if self.interaction_op == "cat":
            return n * self.embedding_dim
        pairs = n * (n + 1) // 2 if self.interaction_itself else n * (n - 1) // 2
        return self.embedding_dim + pairs

    def validate(self) -> DLRMConfig:
        """Raise ``ValueError`` with the numbers if the pieces do not fit together; return ``self``."""
        if not self.embedding_sizes or min(self.embedding_sizes) < 1:
            raise ValueError(f"embedding_sizes must be positive row counts, got {list(self.embedding_sizes)}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if len(self.mlp_bot) < 2 or min(self.mlp_bot) < 1:
            raise ValueError(f"mlp_bot needs an input and 1+ layers, all positive, got {self.mlp_bot}")
        if self.mlp_bot[-1] != self.embedding_dim:
            raise ValueError(f"bottom MLP output {self.mlp_bot[-1]} != embedding dim {self.embedding_dim} "
                             f"(mlp_bot {'-'.join(map(str, self.mlp_bot))}): the last --arch-mlp-bot width "
                             f"must equal --arch-sparse-feature-size, as the dense vector meets the embeddings")
        if not self.mlp_top or min(self.mlp_top) < 1:
            raise ValueError(f"mlp_top needs at least one layer of positive widths, got {self.mlp_top}")
        if self.mlp_top[-1] != 1:
            raise ValueError(f"top MLP must end in 1 output (the click logit), got {self.mlp_top[-1]}")
        if self.interaction_op not in ("dot", "cat"):
            raise ValueError(f"interaction_op must be 'dot' or 'cat', got {self.interaction_op!r}")
        return self


def _mlp(widths: list[int], last_relu: bool, generator: torch.Generator) -> nn.Sequential:
    """Linear layers ``widths[0] -> ... -> widths[-1]``, ReLU between, initialised like the reference."""
    layers: list[nn.Module] = []
    for i, (n, m) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(n, m)
        with torch.no_grad():  # the reference's init: W ~ N(0, sqrt(2 / (m + n))), b ~ N(0, sqrt(1 / m))
            lin.weight.normal_(0.0, math.sqrt(2.0 / (m + n)), generator=generator)
            lin.bias.normal_(0.0, math.sqrt(1.0 / m), generator=generator)
        layers.append(lin)
        if i < len(widths) - 2 or last_relu:
            layers.append(nn.ReLU(inplace=True))  # in place: one (B, m) buffer less per layer
    return nn.Sequential(*layers)


class DenseArch(nn.Module):
    """Bottom MLP: ``(B, F)`` dense features to ``(B, D)``."""

    def __init__(self, widths: list[int], generator: torch.Generator):
        super().__init__()
        self.model = _mlp(list(widths), last_relu=True, generator=generator)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return self.model(dense)  # (B, D)


def init_table(rows: int, dim: int, seed: int, table: int) -> torch.Tensor:
    """Table ``table``'s initial weight, ``U(-1/sqrt(rows), 1/sqrt(rows))`` as in the reference.

    Each table has its own generator (seeded from ``seed`` and the table index), so a table gets the
    same rows whether it lives in a fused weight, its own module or on another rank.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + table + 1)
    bound = math.sqrt(1.0 / rows)
    return torch.empty(rows, dim).uniform_(-bound, bound, generator=g)  # (rows, D)


class SparseArch(nn.Module):
    """One sum-pooled embedding per table: ids to ``(B, T, D)``.

    ``fused`` keeps every table in one ``(sum rows, D)`` weight and looks a batch up in one call,
    with each table's base row added from ``table_offsets`` (built once); otherwise one
    ``nn.EmbeddingBag`` per table. ``tables`` selects which global tables this arch holds (a rank's
    shard); their initial weights do not depend on the selection.
    """

    def __init__(self, embedding_sizes: list[int], dim: int, *, seed: int = 0, fused: bool = True,
                 sparse_grad: bool = True, tables: list[int] | None = None):
        super().__init__()
        self.tables = list(range(len(embedding_sizes))) if tables is None else list(tables)
        self.sizes = [int(embedding_sizes[t]) for t in self.tables]
        self.dim = dim
        self.fused = fused
        self.sparse_grad = sparse_grad
        inits = [init_table(n, dim, seed, t) for n, t in zip(self.sizes, self.tables)]
        self.register_buffer("table_rows", torch.tensor(self.sizes, dtype=torch.int64), persistent=False)  # (T,)
        if fused:
            self.weight = nn.Parameter(torch.cat(inits) if inits else torch.empty(0, dim))  # (sum rows, D)
            base = torch.zeros(len(self.sizes), dtype=torch.int64)
            if self.sizes:
                base[1:] = torch.cumsum(torch.tensor(self.sizes[:-1], dtype=torch.int64), 0)
            self.register_buffer("table_offsets", base, persistent=False)  # (T,)
        else:
            self.bags = nn.ModuleList(
                nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="sum", sparse=sparse_grad)
                for w in inits)

    @property
    def n_tables(self) -> int:
        return len(self.sizes)

    def _check_ids(self, ids: torch.Tensor, rows: torch.Tensor, per_table: torch.Tensor | None = None) -> None:
        """``ValueError`` naming the table if an id is outside ``0 .. rows - 1`` of its table.

        In the fused weight such an id would silently read a row of the neighbouring table. On CPU the
        first bad id is named; elsewhere an asynchronous assert keeps the step free of a host sync.
        """
        if ids.numel() == 0:
            return
        if ids.dim() == 2:  # one-hot (B, T): per-table min and max in one pass (0.06 ms for 2048 x 26)
            lo, hi = torch.aminmax(ids, dim=0)
            ok = ~((lo < 0) | (hi >= rows)).any()
        else:
            ok = (ids.min() >= 0) & ~(ids >= rows).any()
        if ids.device.type != "cpu":
            torch._assert_async(ok, "an embedding id is outside its table (< 0 or >= its rows)")
            return
        if bool(ok):
            return
        k = int(torch.nonzero(((ids < 0) | (ids >= rows)).reshape(-1))[0])
        if ids.dim() == 2:  # one-hot (B, T)
            t = k % ids.shape[1]
        else:  # multi-hot, table-major: the table whose run of ids holds position k
            t = int(torch.searchsorted(torch.cumsum(per_table.cpu(), 0), k, right=True))
        raise ValueError(f"table {self.tables[t]} has id {int(ids.reshape(-1)[k])} but only "
                         f"{self.sizes[t]} rows (ids must be 0 .. {self.sizes[t] - 1})")

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot ``ids (B, T)``, or multi-hot ``ids (N,)`` with ``offsets (T * B + 1,)``: ``(B, T, D)``.

        Ids are checked against their table's rows (``ValueError`` naming the table).
        """
        T = self.n_tables
        if offsets is None:  # one-hot: a plain gather, no bags
            self._check_ids(ids, self.table_rows)
            if self.fused:
                rows = ids + self.table_offsets  # (B, T) rows of the fused weight
                return F.embedding(rows, self.weight, sparse=self.sparse_grad)  # (B, T, D)
            return torch.stack([F.embedding(ids[:, t], bag.weight, sparse=self.sparse_grad)
                                for t, bag in enumerate(self.bags)], dim=1)  # (B, T, D)
        B = (offsets.shape[0] - 1) // T
        per_table = offsets[B::B] - offsets[0:-1:B]  # (T,) ids per table
        self._check_ids(ids, torch.repeat_interleave(self.table_rows, per_table, output_size=ids.shape[0]), per_table)
        if self.fused:
            base = torch.repeat_interleave(self.table_offsets, per_table, output_size=ids.shape[0])  # (N,)
            rows = ids + base  # (N,)
            pooled = F.embedding_bag(rows, self.weight, offsets, mode="sum", sparse=self.sparse_grad,
                                     include_last_offset=True)  # (T * B, D)
            return pooled.view(T, B, self.dim).transpose(0, 1)  # (B, T, D)
        out = []
        for t, bag in enumerate(self.bags):
            o = offsets[t * B:(t + 1) * B + 1]
            out.append(bag(ids[o[0]:o[-1]], o[:-1] - o[0]))  # (B, D)
        return torch.stack(out, dim=1)  # (B, T, D)


class _PairwiseDot(torch.autograd.Function):
    """Dot products of chosen pairs of ``T + 1`` vectors: ``(B, T + 1, D)`` to ``(B, pairs)``.

    Forward is one ``bmm`` (the Gram matrix) and a gather of the pairs. Backward is one ``bmm`` too,
    ``grad = S @ combined`` with ``S`` the symmetric ``(T + 1) x (T + 1)`` matrix of the pairs' gradients
    (doubled on the diagonal, since ``d(c.c)/dc = 2c``), where autograd would zero-fill a Gram-sized
    gradient, scatter into it and run two ``bmm``s. ``S`` lives in a buffer whose non-pair entries stay
    zero, so it is written, never cleared.
    """

    @staticmethod
    def forward(ctx, combined, arch):
        B, n, _ = combined.shape
        ctx.save_for_backward(combined)
        ctx.arch = arch
        gram = torch.bmm(combined, combined.transpose(1, 2))  # (B, T + 1, T + 1)
        return gram.view(B, n * n).index_select(1, arch.pairs)  # (B, pairs)

    @staticmethod
    def backward(ctx, grad):
        (combined,) = ctx.saved_tensors
        arch = ctx.arch
        B, n, _ = combined.shape
        sym = arch._grad_workspace(B, n, grad)  # (B, (T + 1) ** 2), zero off the pairs
        g = grad * arch.pair_scale.to(grad.dtype) if arch.itself else grad  # (B, pairs)
        sym.scatter_(1, arch.pairs.expand(B, -1), g)  # faster than index_copy_ along dim 1
        sym.scatter_(1, arch.pairs_t.expand(B, -1), g)
        return torch.bmm(sym.view(B, n, n), combined), None  # (B, T + 1, D)


class InteractionArch(nn.Module):
    """Feature interaction: ``(B, D)`` dense and ``(B, T, D)`` sparse to ``(B, output_dim)``.

    ``dot``: the dense vector followed by the dot products of every pair of the ``T + 1`` vectors
    (``i > j``, or ``i >= j`` with ``itself``), in the reference's order. ``cat``: all ``T + 1``
    vectors concatenated. The pair indices are built once here.
    """

    def __init__(self, n_tables: int, dim: int, op: str = "dot", itself: bool = False):
        super().__init__()
        if op not in ("dot", "cat"):
            raise ValueError(f"interaction op must be 'dot' or 'cat', got {op!r}")
        self.op, self.itself = op, itself
        n = n_tables + 1
        li, lj = torch.tril_indices(n, n, offset=0 if itself else -1)  # row-major: i ascending, then j
        # flat positions of the pairs in the (T + 1) x (T + 1) Gram matrix, and of their mirror images
        self.register_buffer("pairs", li * n + lj, persistent=False)  # (pairs,)
        self.register_buffer("pairs_t", lj * n + li, persistent=False)  # (pairs,)
        self.register_buffer("pair_scale", torch.where(li == lj, 2.0, 1.0), persistent=False)  # (pairs,)
        self.output_dim = n * dim if op == "cat" else dim + int(li.numel())
        self._workspace: torch.Tensor | None = None

    def _grad_workspace(self, B: int, n: int, like: torch.Tensor) -> torch.Tensor:
        w = self._workspace
        if w is None or w.shape[0] < B or w.dtype != like.dtype or w.device != like.device:
            w = self._workspace = like.new_zeros(B, n * n)
        return w[:B]

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        B, _, D = sparse.shape
        combined = torch.cat([dense.unsqueeze(1), sparse], dim=1)  # (B, T + 1, D)
        if self.op == "cat":
            return combined.reshape(B, -1)  # (B, (T + 1) * D)
        return torch.cat([dense, _PairwiseDot.apply(combined, self)], dim=1)  # (B, D + pairs)


class OverArch(nn.Module):
    """Top MLP: interactions ``(B, I)`` to one logit per sample ``(B,)``; its sigmoid is the click rate."""

    def __init__(self, in_features: int, widths: list[int], generator: torch.Generator):
        super().__init__()
        self.in_features = in_features
        self.model = _mlp([in_features, *widths], last_relu=False, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).squeeze(1)  # (B,)


class DLRM(nn.Module):
    """DLRM: ``forward(dense, ids, offsets=None)`` returns click logits ``(B,)``.

    Weights are a function of ``seed`` only (MLPs from one generator, each table from its own), so two
    models built with the same config and seed are identical, whatever the sharding.
    """

    def __init__(self, config: DLRMConfig, seed: int = 0, tables: list[int] | None = None):
        super().__init__()
        self.config = config.validate()
        g = torch.Generator().manual_seed(seed)
        self.dense_arch = DenseArch(config.mlp_bot, g)
        self.sparse_arch = SparseArch(config.embedding_sizes, config.embedding_dim, seed=seed,
                                      fused=config.fused, sparse_grad=config.sparse_grad, tables=tables)
        self.inter_arch = InteractionArch(config.n_tables, config.embedding_dim, config.interaction_op,
                                          config.interaction_itself)
        if self.inter_arch.output_dim != config.interaction_width():
            raise ValueError(f"interaction width {self.inter_arch.output_dim} != config's "
                             f"{config.interaction_width()}")
        self.over_arch = OverArch(self.inter_arch.output_dim, config.mlp_top, g)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor,
                offsets: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dense_arch(dense)  # (B, D)
        e = self.sparse_arch(ids, offsets)  # (B, T, D)
        z = self.inter_arch(x, e)  # (B, I)
        return self.over_arch(z)  # (B,)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding weights (sparse gradients when ``config.sparse_grad``)."""
        return list(self.sparse_arch.parameters())

    def dense_parameters(self) -> list[nn.Parameter]:
        """Every MLP parameter (dense gradients; the part DDP replicates)."""
        return [*self.dense_arch.parameters(), *self.over_arch.parameters()]


class DLRMTrain(nn.Module):
    """The loss wrapper: ``forward(batch)`` gives ``(loss, logits)``, mean binary cross-entropy on logits."""

    def __init__(self, model: DLRM):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(batch.dense, batch.ids, batch.offsets)  # (B,)
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels)
        return loss, logits.detach()
