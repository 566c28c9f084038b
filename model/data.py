"""Batches for the DLRM: from a trace file, an in-memory :class:`tracegen.Trace`, or a dist.json sampled live.

Owns the data path of training: the train/validation/test split (like the reference: by day, or
random), turning a list of sample indices into one :class:`Batch` with vectorised slicing of the
trace's arrays (never a per-sample Python loop), a background prefetch thread, and the checks that
the data fits the model before any training step.

Notation: ``B`` batch, ``T`` tables, ``F`` dense features, ``N`` ids in a multi-hot batch.

A batch carries the row ids it looks up (local to each table): ``Batch.ids`` is ``(B, T)`` when every
table is one-hot, else KJT-style ``values (N,)`` table-major with ``offsets (T * B + 1,)``; use
:meth:`Batch.table_ids` to get what the model touched in one table.

Dense features are stored raw (the DLRM npz keeps ``X_int``); ``log(x + 1)`` is applied per batch,
as the reference does. A trace without dense features gets zeros; one without labels gets labels
drawn at random from the seed (the model then learns nothing, but the lookups are real).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from tracegen import Trace
from tracegen.errors import TracegenError


@dataclasses.dataclass
class Batch:
    """One mini-batch as tensors; see the module docstring for the id layouts."""

    dense: torch.Tensor  # (B, F) float32, log(x + 1) applied
    ids: torch.Tensor  # (B, T) int64 one-hot, or (N,) int64 values table-major
    offsets: torch.Tensor | None  # None (one-hot) or (T * B + 1,) int64
    labels: torch.Tensor  # (B,) float32 in {0, 1}

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_tables(self) -> int:
        if self.offsets is None:
            return int(self.ids.shape[1])
        return (self.offsets.shape[0] - 1) // self.batch_size

    def table_ids(self, t: int) -> np.ndarray:
        """The row ids this batch looks up in table ``t`` (local rows, sample order)."""
        if self.offsets is None:
            return self.ids[:, t].cpu().numpy()
        B = self.batch_size
        a, b = int(self.offsets[t * B]), int(self.offsets[(t + 1) * B])
        return self.ids[a:b].cpu().numpy()

    def to(self, device, non_blocking: bool = False) -> Batch:
        if torch.device(device).type == "cpu":
            return self
        mv = lambda x: None if x is None else x.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(mv(self.dense), mv(self.ids), mv(self.offsets), mv(self.labels))


def split_indices(n_samples: int, how: str = "day", seed: int = 0, days: int = 7,
                  path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Sample indices of ``train``, ``val`` and ``test``, like the reference's Kaggle split.

    ``day``: the trace is ``days`` equal days in time order; train is the first ``days - 1``, the last
    day is halved into validation then test. ``random``: the same sizes over a seeded permutation.
    ``path`` (the trace file) is named in the errors.
    """
    if how not in ("day", "random"):
        raise TracegenError(f"split must be 'day' or 'random', got {how!r}")
    if n_samples < 3:
        raise TracegenError(f"has {n_samples} sample{'' if n_samples == 1 else 's'}, too few to split into "
                            f"train/val/test (3 or more needed)", path)
    n_train = max(1, min(n_samples - 2, (n_samples * (days - 1)) // days))
    n_val = max(1, (n_samples - n_train) // 2)
    order = np.arange(n_samples) if how == "day" else np.random.default_rng(seed).permutation(n_samples)
    return {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}


def _ragged_take(values: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bags ``idx`` of one table: ``(values (N,), lengths (B,))``, vectorised."""
    starts = np.asarray(offsets[idx])
    lengths = np.asarray(offsets[idx + 1]) - starts
    total = int(lengths.sum())
    out_starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) + np.repeat(starts - out_starts, lengths)
    return np.asarray(values[pos]), lengths


class TraceBatches:
    """Batches over a set of samples of a :class:`Trace`, optionally reshuffled each epoch.

    ``batches(start, stop)`` yields global batches ``start .. stop - 1`` (epochs follow each other), so
    a resumed run sees exactly the batches an uninterrupted one would. The order of epoch ``e`` is a
    permutation drawn from ``(seed, e)``.
    """

    def __init__(self, trace: Trace, samples: np.ndarray, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, drop_last: bool = False, n_dense: int = 13, log_dense: bool = True):
        if batch_size < 1:
            raise TracegenError(f"mini-batch size must be >= 1, got {batch_size}")
        self.trace = trace
        self.samples = np.asarray(samples, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.n_dense, self.log_dense = int(n_dense), log_dense
        self.one_hot = [bool(t.n_accesses == t.n_samples
                             and np.array_equal(t.offsets, np.arange(t.n_samples + 1))) for t in trace.tables]
        self._labels = None
        if trace.labels is None:  # random labels: see the module docstring
            rng = np.random.default_rng([self.seed, 7])
            self._labels = rng.integers(0, 2, trace.n_samples).astype(np.float32)

    def __len__(self) -> int:
        n = len(self.samples)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return self.samples
        return self.samples[np.random.default_rng([self.seed, epoch]).permutation(len(self.samples))]

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        per_epoch = len(self)
        if per_epoch == 0:
            return
        stop = per_epoch if stop is None else stop
        epoch, order = -1, None
        for k in range(start, stop):
            e, i = divmod(k, per_epoch)
            if e != epoch:
                epoch, order = e, self.epoch_order(e)
            yield self.make_batch(order[i * self.batch_size:(i + 1) * self.batch_size])

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    def make_batch(self, idx: np.ndarray) -> Batch:
        """The batch of samples ``idx`` (B,): one fancy-index per table, no per-sample Python."""
        tr, B = self.trace, len(idx)
        if all(self.one_hot):
            ids = np.empty((B, tr.n_tables), dtype=np.int64)  # (B, T)
            for t, table in enumerate(tr.tables):
                ids[:, t] = table.values[idx]
            ids_t, offsets_t = torch.from_numpy(ids), None
        else:
            vals, lens = zip(*(_ragged_take(t.values, t.offsets, idx) for t in tr.tables))
            offsets = np.zeros(tr.n_tables * B + 1, dtype=np.int64)  # (T * B + 1,)
            np.cumsum(np.concatenate(lens), out=offsets[1:])
            ids_t = torch.from_numpy(np.concatenate(vals).astype(np.int64, copy=False))  # (N,)
            offsets_t = torch.from_numpy(offsets)
        if tr.dense is None:
            dense = np.zeros((B, self.n_dense), dtype=np.float32)  # (B, F)
        else:
            dense = np.asarray(tr.dense[idx], dtype=np.float32)  # (B, F)
            if self.log_dense:
                dense = np.log1p(np.maximum(dense, 0, out=dense), out=dense)
        labels = (tr.labels if self._labels is None else self._labels)[idx]
        labels_t = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        return Batch(torch.from_numpy(dense), ids_t, offsets_t, labels_t)


ENDLESS = "a dist.json is an endless stream: it has no length; give a number of batches"


class SyntheticBatches:
    """Batches from a dist.json, sampled on the fly in chunks (no trace file).

    Chunk ``c`` of stream ``stream`` (0 training, 1 validation) is ``chunk_samples`` (rounded up to whole
    batches) sampled by
    ``TraceModel.load(path).sample(n, seed=s)``, ``s`` drawn from ``(seed, stream, c)``; so batch ``k``
    is always the same batch for a seed, and a resumed run sees what an uninterrupted one would.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int, *, seed: int = 0, stream: int = 0,
                 chunk_samples: int = 1 << 18, n_dense: int = 13, log_dense: bool = True):
        try:
            from tracegen.tracemodel import TraceModel
        except ImportError as e:  # the fit/sample module is not there yet
            raise TracegenError(f"sampling a dist.json needs tracegen.tracemodel ({e})", path) from e
        if int(batch_size) < 1:
            raise TracegenError(f"batch size must be >= 1, got {batch_size}", path)
        self.path = os.fspath(path)
        self.model = TraceModel.load(self.path)
        self.batch_size, self.seed, self.stream = int(batch_size), int(seed), int(stream)
        # big chunks: a sample() call has a fixed cost (about 5 s for traces/criteo-like.json, whose
        # 10M-row tables are set up per call), so 2^18 samples per call keep sampling ahead of training
        self.chunk_batches = max(1, -(-int(chunk_samples) // self.batch_size))
        self.n_dense, self.log_dense = n_dense, log_dense
        self._cache: tuple[int, TraceBatches] | None = None
        self.first = self.chunk(0).trace  # cardinalities and dense width for the checks

    def chunk(self, c: int) -> TraceBatches:
        if self._cache is None or self._cache[0] != c:
            chunk_seed = int(np.random.default_rng([self.seed, self.stream, c]).integers(2**31))
            trace = self.model.sample(self.batch_size * self.chunk_batches, seed=chunk_seed)
            trace.validate(self.path)
            tb = TraceBatches(trace, np.arange(trace.n_samples), self.batch_size, seed=chunk_seed,
                              n_dense=self.n_dense, log_dense=self.log_dense)
            self._cache = (c, tb)
        return self._cache[1]

    def __len__(self) -> int:
        raise TracegenError(ENDLESS, self.path)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        if stop is None:
            raise TracegenError(f"{ENDLESS} (stop=N)", self.path)
        for k in range(start, stop):
            c, i = divmod(k, self.chunk_batches)
            yield next(self.chunk(c).batches(i, i + 1))


def prefetch(batches: Iterator[Batch], depth: int = 3, device: str | torch.device = "cpu") -> Iterator[Batch]:
    """Build batches in a background thread, ``depth`` ahead of the consumer (numpy releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    pin = torch.device(device).type == "cuda"

    def work():
        try:
            for b in batches:
                if pin:
                    b = Batch(*(None if x is None else x.pin_memory()
                                for x in (b.dense, b.ids, b.offsets, b.labels)))
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # hand the error to the consumer, which re-raises it
            q.put(e)

    th = threading.Thread(target=work, name="tracegen-prefetch", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item.to(device, non_blocking=pin)
    finally:
        stop.set()
        while th.is_alive():  # drain so a blocked put can see the stop flag
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)


def iter_batches(source, batch_size: int, *, num_batches: int | None = None, shuffle: bool = False,
                 seed: int = 0, n_dense: int = 13) -> Iterator[Batch]:
    """The batches training would see, for analysis: what each batch looks up (``Batch.table_ids``).

    ``source`` is a :class:`Trace`, a trace file, or a dist.json (then ``num_batches`` is required);
    all samples in time order unless ``shuffle``.
    """
    if is_dist_json(source):  # checked here, not at the first next(): this is a plain function
        if num_batches is None:
            raise TracegenError(f"{ENDLESS} (iter_batches(..., num_batches=N))", source)
        return SyntheticBatches(source, batch_size, seed=seed, n_dense=n_dense).batches(0, num_batches)
    trace = load(source)
    tb = TraceBatches(trace, np.arange(trace.n_samples), batch_size, shuffle=shuffle, seed=seed,
                      n_dense=n_dense)
    return tb.batches(0, num_batches if num_batches is not None else len(tb))


def load(source) -> Trace:
    """A :class:`Trace` from a Trace (returned as is) or a trace file (any format tracegen reads)."""
    if isinstance(source, Trace):
        return source
    from tracegen.formats import read

    return read(source)


def is_dist_json(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(".json")


def check_compatible(cardinalities: list[int], max_ids: list[int] | None, n_dense: int | None, config,
                     path=None, names: list[str] | None = None) -> None:
    """Fail before training, with the numbers, if the data does not fit the model ``config``.

    ``max_ids`` are the largest ids seen per table; ``None`` (a dist.json, sampled later) compares the
    declared ``cardinalities`` instead. ``names`` (the tables' names) go into the messages.
    """
    rows = list(config.embedding_sizes)
    if len(cardinalities) != len(rows):
        raise TracegenError(f"the data has {len(cardinalities)} tables but the model has {len(rows)} "
                            f"(--arch-embedding-size gives {len(rows)} sizes)", path)
    for t, r in enumerate(rows):
        named = f"table {names[t]}; " if names and names[t] else ""
        if max_ids is not None and max_ids[t] >= r:
            raise TracegenError(f"table {t} has id {max_ids[t]} but the model's table has only {r} rows "
                                f"({named}ids must be < --arch-embedding-size)", path)
        if max_ids is None and cardinalities[t] > r:
            raise TracegenError(f"table {t} samples ids from {cardinalities[t]:,} rows but the model's table has "
                                f"only {r:,} rows ({named}--arch-embedding-size)", path)
    if n_dense is not None and n_dense != config.n_dense:
        raise TracegenError(f"the data has {n_dense} dense features but the bottom MLP takes "
                            f"{config.n_dense} "
                            f"(first entry of --arch-mlp-bot)", path)


def check_labels(trace: Trace, path=None) -> None:
    """Labels must lie in [0, 1] (a click, or a click rate): binary cross-entropy has no minimum otherwise."""
    y = trace.labels
    if y is None or len(y) == 0:
        return
    y = np.asarray(y)
    bad = np.flatnonzero((y < 0) | (y > 1))
    if bad.size:
        i = int(bad[0])
        raise TracegenError(f"labels must be in [0, 1] (click or not, or a click rate) for the binary "
                            f"cross-entropy; sample {i} has {float(y[i])} ({bad.size:,} samples outside)", path)


def max_ids(trace: Trace) -> list[int]:
    """Largest id per table (``-1`` for an empty table)."""
    return [int(t.values.max()) if t.n_accesses else -1 for t in trace.tables]
