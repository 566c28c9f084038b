"""Memory bandwidth of embedding lookups: a byte-exact traffic model and torch measurements.

**Model** (:func:`batch_traffic`), bytes moved for one table in one batch of ``B`` samples with ``L`` lookups
of which ``U`` are distinct rows, rows of ``D`` values and ``row_bytes(D, dtype)`` bytes (``r``):

==================  ==========================================  ==============================================
term                bytes                                       what
==================  ==========================================  ==============================================
``indices``         ``8 L + 8 (B + 1)``                         int64 ids and offsets read
``forward_gather``  ``L r``                                     every lookup reads its row (no dedup)
``forward_output``  ``4 B D``                                   pooled fp32 bag outputs written
``backward_grad``   ``4 L D``                                   the bag's fp32 output gradient read per lookup
``scatter_read``    ``U r`` (training)                          each distinct row read once for its update
``scatter_write``   ``U r`` (training)                          ... and written back (gradients summed per
                                                                row within the batch, as fused kernels do)
``state_read``      SGD 0; Adagrad ``4 U D``; row-wise          optimizer state of each distinct row read
                    Adagrad ``4 U``
``state_write``     same as ``state_read``                      ... and written back
==================  ==========================================  ==============================================

Inference (``training=False``) keeps only ``indices``, ``forward_gather`` and ``forward_output``.

**After a cache** of ``C`` rows (:func:`traffic_after_cache`): the row terms (``forward_gather``,
``scatter_*``, ``state_*``) are multiplied by the LRU miss ratio at ``C`` (fetch on miss; the update of a
cached row stays in the cache); the streamed terms (indices, outputs, gradients) are unchanged.
**Bandwidth needed** at ``S`` samples per second (:func:`required_bandwidth`) is ``bytes_per_batch * S / B``,
``B`` the samples of the batches modelled (the batch size, or every sample of a trace shorter than one batch).

**Measured** (:func:`measure_embedding_bag`): torch ``nn.EmbeddingBag`` (sum pooling, sparse gradients, all
tables in one bag as FBGEMM's table-batched embedding lays them out) forward, backward and optimizer step
over the trace's batches, timed on CPU (or CUDA when available); the
achieved bandwidth is the model's bytes per batch over the measured seconds per batch. :func:`copy_bandwidth`
times ``dst.copy_(src)`` on the same device (``2 * nbytes`` moved per copy) as the machine's peak; the report
shows achieved / peak for the real trace, its synthetic twin and uniform random ids (:func:`uniform_like`).
Tables larger than ``max_rows`` rows are hashed to ``max_rows`` rows (``id mod max_rows``) for the
measurement, the same for every trace compared, to bound memory.

Notation: ``B`` batch, ``T`` tables, ``D`` embedding dim, ``L`` lookups, ``U`` distinct rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from analysis.footprint import dims_for, row_bytes, rows_per_batch
from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace

OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad")
ROW_TERMS = ("forward_gather", "scatter_read", "scatter_write", "state_read", "state_write")
TERMS = ("indices", "forward_gather", "forward_output", "backward_grad", *ROW_TERMS[1:])


def batch_traffic(lookups: float, distinct: float, samples: float, dim: int, dtype: str = "fp32",
                  optimizer: str = "sgd", training: bool = True) -> dict[str, float]:
    """Bytes of each term in the module table for one table and one batch (floats: means are allowed)."""
    if optimizer not in OPTIMIZERS:
        raise TracegenError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    r = row_bytes(dim, dtype)
    L, U, B, D = float(lookups), float(distinct), float(samples), int(dim)
    state = {"sgd": 0.0, "adagrad": 4.0 * U * D, "rowwise_adagrad": 4.0 * U}[optimizer]
    out = {"indices": 8 * L + 8 * (B + 1), "forward_gather": L * r, "forward_output": 4 * B * D,
           "backward_grad": 4 * L * D if training else 0.0,
           "scatter_read": U * r if training else 0.0, "scatter_write": U * r if training else 0.0,
           "state_read": state if training else 0.0, "state_write": state if training else 0.0}
    out["total"] = sum(out[k] for k in TERMS)
    return out


@dataclasses.dataclass
class Traffic:
    """Mean bytes per batch, per table and in total, for one dtype and optimizer."""

    batch_size: int
    dtype: str
    optimizer: str
    training: bool
    n_batches: int
    tables: dict[str, dict[str, float]]  # table name -> term -> bytes per batch
    total: dict[str, float]  # term -> bytes per batch, all tables
    lookups_per_batch: float
    distinct_per_batch: float
    samples_per_batch: float = 0.0  # samples in the batches modelled: batch_size, or all when fewer

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def model_traffic(trace: Trace, dim: int | Sequence[int] = 64, batch_size: int = 2048, dtype: str = "fp32",
                  optimizer: str = "sgd", training: bool = True) -> Traffic:
    """Mean bytes per batch of ``batch_size`` samples (full batches only when there is at least one; a trace
    shorter than one batch is modelled as one batch of all its samples, ``samples_per_batch`` says how many:
    divide by that, not by ``batch_size``, for bytes per sample)."""
    dims = dims_for(trace, dim)
    b = trace.n_samples
    n_full = b // batch_size
    tables, lookups, distinct = {}, 0.0, 0.0
    samples = np.diff(np.append(np.arange(0, b, batch_size), b))
    per_batch = float(samples[:n_full].mean() if n_full else samples.mean()) if samples.size else 0.0
    for t, d in zip(trace.tables, dims):
        u = rows_per_batch(t, batch_size)
        off = np.asarray(t.offsets, np.int64)
        edges = np.append(np.arange(0, b, batch_size), b)
        lk = np.diff(off[edges])
        samples = np.diff(edges)
        if n_full:
            u, lk, samples = u[:n_full], lk[:n_full], samples[:n_full]
        tables[t.name] = batch_traffic(lk.mean(), u.mean(), samples.mean(), d, dtype, optimizer, training)
        lookups += float(lk.mean())
        distinct += float(u.mean())
    total = {k: sum(v[k] for v in tables.values()) for k in (*TERMS, "total")}
    return Traffic(int(batch_size), dtype, optimizer, bool(training), max(n_full, 1), tables, total,
                   lookups, distinct, per_batch)


def traffic_after_cache(traffic: dict[str, float], miss_ratio: float) -> dict[str, float]:
    """Bytes per batch left for memory behind an LRU cache with ``miss_ratio``: row terms scaled."""
    if not 0 <= miss_ratio <= 1:
        raise TracegenError(f"miss ratio must be in [0, 1], got {miss_ratio}")
    out = {k: (v * miss_ratio if k in ROW_TERMS else v) for k, v in traffic.items() if k != "total"}
    out["total"] = sum(out[k] for k in TERMS if k in out)
    return out


def required_bandwidth(bytes_per_batch: float, batch_size: int, samples_per_second: float) -> float:
    """Bytes per second needed to train (or serve) ``samples_per_second``: ``bytes_per_batch * S / B``, ``B``
    the samples in the batch those bytes were modelled on (:attr:`Traffic.samples_per_batch`)."""
    if batch_size <= 0:
        raise TracegenError(f"batch size must be positive, got {batch_size}")
    return float(bytes_per_batch) * float(samples_per_second) / float(batch_size)


# ---- measurement --------------------------------------------------------------------------------------

def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``torch.set_num_threads(n)`` (``None``: leave it), restoring the old count afterwards."""
    import torch

    old = torch.get_num_threads()
    if n is not None:
        if int(n) < 1:
            raise TracegenError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def copy_bandwidth(nbytes: int = 1 << 28, device: str | None = None, repeats: int = 5) -> float:
    """The machine's copy bandwidth in bytes/s: best of ``repeats`` ``dst.copy_(src)`` of ``nbytes``
    (``2 * nbytes`` moved: one read, one write)."""
    import torch

    device = device or default_device()
    src = torch.ones(int(nbytes), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    best = float("inf")
    for _ in range(max(int(repeats), 1)):
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * nbytes / best


def uniform_like(trace: Trace, seed: int = 0) -> Trace:
    """The same bags (lengths, cardinalities, dense, labels), ids uniform over each table's rows."""
    rng = np.random.default_rng(seed)
    tables = [Table(t.name, t.cardinality, rng.integers(0, max(int(t.cardinality), 1), t.n_accesses),
                    np.asarray(t.offsets, np.int64).copy()) for t in trace.tables]
    return Trace(tables, dense=trace.dense, labels=trace.labels)


def measure_embedding_bag(trace: Trace, dim: int | Sequence[int] = 64, batch_size: int = 2048,
                          device: str | None = None,
                          optimizer: str = "sgd", max_batches: int = 8, max_rows: int = 1 << 17,
                          warmup: int = 2, seed: int = 0, max_seconds: float | None = None,
                          min_seconds: float = 0.2) -> dict:
    """Time ``nn.EmbeddingBag`` forward + backward + optimizer step over the first batches of ``trace``.

    All tables of one ``D`` live in one ``EmbeddingBag`` (table ``j``'s rows after those of the tables
    before it) and each batch is one call per distinct ``D`` over its ``T * B`` bags, table-major, the
    layout of FBGEMM's table-batched embedding: per-call overhead then does not swamp the memory traffic.
    Returns seconds per batch, the modelled bytes per batch of exactly the batches timed (a short last batch
    counts its own bytes and samples) and the achieved bytes/s (modelled bytes over measured seconds).
    ``warmup`` batches run first and are not timed. The next (up to) ``max_batches`` batches are timed,
    in whole passes until ``min_seconds`` have passed (short batches are otherwise lost in timer noise);
    timing stops early once ``max_seconds`` have passed (at least one batch is timed).
    """
    import torch

    if optimizer not in ("sgd", "adagrad"):
        raise TracegenError(f"measured optimizer must be sgd or adagrad, got {optimizer!r}")
    device = device or default_device()
    dims = dims_for(trace, dim)
    torch.manual_seed(seed)
    b = trace.n_samples
    n_batches = min(max(-(-b // batch_size), 1), int(max_batches) + int(warmup))
    sub = trace.slice(0, min(b, n_batches * batch_size))
    rows = [max(min(int(t.cardinality), int(max_rows)), 1) for t in sub.tables]
    # the ids the measurement really uses: tables above max_rows hashed to max_rows rows
    sub = Trace([Table(t.name, n, np.asarray(t.values, np.int64) % n, np.asarray(t.offsets, np.int64))
                 for t, n in zip(sub.tables, rows)])
    groups = {d: [j for j in range(len(dims)) if dims[j] == d] for d in sorted(set(dims))}
    bags = []
    for d, tabs in groups.items():
        # constant weights (values do not matter for bandwidth); torch.full touches every page up front
        w = torch.full((sum(rows[j] for j in tabs), d), 0.01, dtype=torch.float32, device=device)
        bags.append(torch.nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="sum", sparse=True))
    params = [p for bag in bags for p in bag.parameters()]
    opt = torch.optim.SGD(params, lr=0.01) if optimizer == "sgd" else torch.optim.Adagrad(params, lr=0.01)
    batches = []
    for i in range(n_batches):
        s = sub.slice(i * batch_size, (i + 1) * batch_size)
        per_group = []
        for tabs in groups.values():
            base = np.concatenate([[0], np.cumsum([rows[j] for j in tabs])])
            ts = [s.tables[j] for j in tabs]
            ids = np.concatenate([np.asarray(t.values, np.int64) + base[k] for k, t in enumerate(ts)])
            starts = np.concatenate([[0], np.cumsum([t.n_accesses for t in ts])[:-1]])
            off = np.concatenate([np.asarray(t.offsets[:-1], np.int64) + starts[k] for k, t in enumerate(ts)])
            per_group.append((torch.from_numpy(ids).to(device), torch.from_numpy(off).to(device)))
        batches.append(per_group)

    def step(batch):
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        for bag, (ids, off) in zip(bags, batch):
            loss = loss + bag(ids, off).sum()  # (T_d * B, D) pooled bags
        loss.backward()
        opt.step()

    first = min(int(warmup), len(batches) - 1)
    for batch in batches[:first]:
        step(batch)
    _sync(device)
    pool = batches[first:]
    done = 0
    t0 = time.perf_counter()
    while True:  # whole passes over the pool until min_seconds in all; stops early after max_seconds
        step(pool[done % len(pool)])
        done += 1
        if done % len(pool) == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds or (max_seconds is not None and elapsed > max_seconds):
                break
        elif max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    _sync(device)
    elapsed = time.perf_counter() - t0
    seconds = elapsed / done
    # modelled bytes and samples of exactly the batches timed (pool batch i % len(pool) at step i): a short
    # last batch moves fewer bytes, so one mean over the full batches would overstate the achieved rate
    pool_bytes, pool_samples = [], []
    for i in range(first, len(batches)):
        one = sub.slice(i * batch_size, min((i + 1) * batch_size, sub.n_samples))
        pool_bytes.append(model_traffic(one, dims, batch_size, "fp32", optimizer, training=True).total["total"])
        pool_samples.append(one.n_samples)
    steps = np.arange(done) % len(pool)
    total_bytes = float(np.sum(np.asarray(pool_bytes)[steps]))
    total_samples = int(np.sum(np.asarray(pool_samples)[steps]))
    return {"device": device, "optimizer": optimizer, "batch_size": int(batch_size), "batches": done,
            "seconds_per_batch": seconds, "bytes_per_batch": total_bytes / done,
            "achieved_bytes_per_s": total_bytes / elapsed, "samples_per_s": total_samples / elapsed}


def measure(traces: dict[str, Trace], dim: int | Sequence[int] = 64, batch_size: int = 2048,
            device: str | None = None,
            optimizer: str = "sgd", max_batches: int = 8, copy_bytes: int = 1 << 28,
            max_seconds: float | None = 2.0, threads: int | None = 1) -> dict:
    """Measured embedding-bag bandwidth for each named trace and the copy bandwidth; fraction of peak each.

    On CPU everything runs with ``threads`` torch threads (default 1: on a machine shared with other work,
    several OpenMP threads waiting on each other at every barrier make small kernels tens of times
    slower and the figures meaningless; ``None`` keeps torch's setting). Copy and embedding bags use the
    same count, so the fraction of copy bandwidth compares like with like.
    """
    device = device or default_device()
    with torch_threads(threads if not device.startswith("cuda") else None):
        import torch

        peak = copy_bandwidth(copy_bytes, device)
        out = {"device": device, "threads": torch.get_num_threads(), "copy_bytes_per_s": peak, "traces": {}}
        for name, tr in traces.items():
            # best of two runs: a first run in a process (or on fresh memory) can be several times slower
            runs = [measure_embedding_bag(tr, dim, batch_size, device, optimizer, max_batches,
                                          max_seconds=max_seconds) for _ in range(2)]
            m = max(runs, key=lambda r: r["achieved_bytes_per_s"])
            m["fraction_of_copy"] = m["achieved_bytes_per_s"] / peak
            out["traces"][name] = m
    return out
