"""The trace data model: T tables of KJT-style bags, plus optional dense features and labels.

A :class:`Trace` is what every reader returns and every writer takes. Each :class:`Table` is one
categorical feature (one embedding table) with a ``name``, a ``cardinality`` (rows in its
embedding table), ``values`` (int64 row ids, all bags concatenated) and ``offsets`` (int64,
``B + 1`` entries, bag ``b`` is ``values[offsets[b]:offsets[b + 1]]``), as in TorchRec's
KeyedJaggedTensor. Sample order is time order. Dense features are float32 ``(B, F)`` (``F = 13``
for Criteo) and labels ``(B,)``; both optional.

Notation: ``B`` samples, ``T`` tables, ``N`` accesses (total ids) of one table.

Arrays may be read-only memory maps (see :mod:`tracegen.formats`); nothing here copies them
unless asked to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tracegen.errors import TracegenError

VALIDATE_BLOCK = 1 << 22  # bags whose offsets Table.validate checks at a time


@dataclasses.dataclass
class Table:
    """One categorical feature: bags of row ids into an embedding table of ``cardinality`` rows."""

    name: str
    cardinality: int
    values: np.ndarray  # (N,) int64 row ids, bags concatenated in sample order
    offsets: np.ndarray  # (B + 1,) int64, offsets[0] == 0, offsets[-1] == N
    # True when the reader derived ``cardinality`` from the ids (``max id + 1``: the file gives no table
    # size). Such a cardinality is one sample's raw id, so ``fit`` releases the distinct count instead.
    cardinality_from_data: bool = False

    @classmethod
    def one_hot(cls, name: str, ids: np.ndarray, cardinality: int | None = None) -> Table:
        """A table with exactly one id per sample (``cardinality`` defaults to ``max(ids) + 1``)."""
        ids = np.asarray(ids)
        derived = cardinality is None
        if derived:
            cardinality = int(ids.max()) + 1 if ids.size else 0
        return cls(name, int(cardinality), ids.astype(np.int64, copy=False),
                   np.arange(ids.shape[0] + 1, dtype=np.int64), derived)

    @classmethod
    def from_lengths(cls, name: str, values: np.ndarray, lengths: np.ndarray, cardinality: int | None = None) -> Table:
        """A table from concatenated ``values`` and per-sample bag ``lengths``."""
        values = np.asarray(values)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        derived = cardinality is None
        if derived:
            cardinality = int(values.max()) + 1 if values.size else 0
        return cls(name, int(cardinality), values.astype(np.int64, copy=False), offsets, derived)

    @property
    def n_samples(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def n_accesses(self) -> int:
        return int(self.values.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Bag lengths (pooling factors), ``(B,)`` int64."""
        return np.diff(np.asarray(self.offsets))

    @property
    def is_one_hot(self) -> bool:
        return self.n_accesses == self.n_samples and bool(np.all(self.lengths == 1))

    def validate(self, path=None) -> None:
        """Raise :class:`TracegenError` naming the problem (and ``path``) if the table is inconsistent."""
        where = f"table {self.name!r}"
        v, o = self.values, self.offsets
        if not isinstance(self.cardinality, (int, np.integer)) or self.cardinality < 0:
            raise TracegenError(f"{where}: cardinality must be a non-negative integer, got {self.cardinality!r}", path)
        if getattr(v, "ndim", None) != 1 or getattr(o, "ndim", None) != 1:
            raise TracegenError(f"{where}: values and offsets must be 1-D arrays", path)
        if not np.issubdtype(v.dtype, np.integer):
            raise TracegenError(f"{where}: ids must be integers, got dtype {v.dtype}", path)
        if not np.issubdtype(o.dtype, np.integer):
            raise TracegenError(f"{where}: offsets must be integers, got dtype {o.dtype}", path)
        if o.shape[0] < 1:
            raise TracegenError(f"{where}: offsets is empty (needs B + 1 entries)", path)
        if o[0] != 0:
            raise TracegenError(f"{where}: offsets[0] is {int(o[0])}, must be 0", path)
        if o[-1] != v.shape[0]:
            raise TracegenError(f"{where}: offsets[-1] is {int(o[-1])} but there are {v.shape[0]} ids", path)
        for s in range(0, o.shape[0] - 1, VALIDATE_BLOCK):  # in blocks: no diff of the whole offsets (8 B per bag)
            d = np.diff(o[s : s + VALIDATE_BLOCK + 1])
            if d.size and d.min() < 0:
                b = s + int(np.argmax(d < 0))
                raise TracegenError(f"{where}: offsets decrease at sample {b} ({int(o[b])} -> {int(o[b + 1])})", path)
        if v.shape[0]:
            lo, hi = int(v.min()), int(v.max())
            if lo < 0:
                raise TracegenError(f"{where}: negative id {lo} at position {int(np.argmin(v))}", path)
            if hi >= self.cardinality:
                raise TracegenError(
                    f"{where}: id {hi} at position {int(np.argmax(v))} >= cardinality {self.cardinality}", path)

    def equals(self, other: Table) -> bool:
        return (self.name == other.name and int(self.cardinality) == int(other.cardinality)
                and np.array_equal(self.values, other.values) and np.array_equal(self.offsets, other.offsets))


@dataclasses.dataclass
class Trace:
    """``T`` tables over the same ``B`` samples, with optional dense features and labels."""

    tables: list[Table]
    dense: np.ndarray | None = None  # (B, F) float32
    labels: np.ndarray | None = None  # (B,)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dense_ids(cls, x_cat: np.ndarray, cardinalities: Sequence[int] | None = None,
                       names: Sequence[str] | None = None, dense: np.ndarray | None = None,
                       labels: np.ndarray | None = None) -> Trace:
        """A one-hot trace from a ``(B, T)`` matrix of ids (the DLRM ``X_cat`` layout)."""
        x_cat = np.asarray(x_cat)
        if x_cat.ndim != 2:
            raise TracegenError(f"X_cat must be 2-D (samples x tables), got shape {x_cat.shape}")
        n_tables = x_cat.shape[1]
        names = list(names) if names is not None else default_names(n_tables)
        cards = [None] * n_tables if cardinalities is None else list(cardinalities)  # None: max id + 1
        if len(names) != n_tables or len(cards) != n_tables:
            raise TracegenError(f"X_cat has {n_tables} columns but {len(names)} names and "
                                f"{len(cards)} cardinalities were given")
        tables = [Table.one_hot(names[t], np.ascontiguousarray(x_cat[:, t]).astype(np.int64),
                                None if cards[t] is None else int(cards[t])) for t in range(n_tables)]
        return cls(tables, dense=dense, labels=labels)

    @classmethod
    def single(cls, ids: np.ndarray, name: str = "t0", cardinality: int | None = None) -> Trace:
        """A one-table, one-hot trace from a flat id sequence (storage and cache traces)."""
        return cls([Table.one_hot(name, ids, cardinality)])

    # ---- shape ---------------------------------------------------------------------------------
    @property
    def n_tables(self) -> int:
        return len(self.tables)

    @property
    def n_samples(self) -> int:
        if self.tables:
            return self.tables[0].n_samples
        if self.labels is not None:
            return int(self.labels.shape[0])
        return 0 if self.dense is None else int(self.dense.shape[0])

    @property
    def n_accesses(self) -> int:
        return sum(t.n_accesses for t in self.tables)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tables]

    @property
    def cardinalities(self) -> list[int]:
        return [int(t.cardinality) for t in self.tables]

    @property
    def is_one_hot(self) -> bool:
        return all(t.is_one_hot for t in self.tables)

    def table(self, name_or_index: str | int, path=None) -> Table:
        """The table named ``name_or_index`` (or at that 0-based index); a :class:`TracegenError` if none."""
        shown = ", ".join(self.names[:10]) + (" ..." if self.n_tables > 10 else "")
        if isinstance(name_or_index, (int, np.integer)):
            i = int(name_or_index)
            if not 0 <= i < self.n_tables:
                raise TracegenError(f"no table {i}: table indices are 0..{self.n_tables - 1} ({shown})", path)
            return self.tables[i]
        for t in self.tables:
            if t.name == name_or_index:
                return t
        raise TracegenError(f"no table named {name_or_index!r}; tables are {shown}", path)

    def select(self, names: Sequence[str | int], path=None) -> Trace:
        """A trace with only the named (or indexed) tables, in the given order (errors name ``path``)."""
        tables = [self.table(n, path) for n in names]
        dup = sorted({t.name for t in tables if sum(u is t for u in tables) > 1})
        if dup:
            raise TracegenError(f"table {', '.join(dup)} selected more than once", path)
        return Trace(tables, dense=self.dense, labels=self.labels)

    def slice(self, start: int, stop: int) -> Trace:
        """Samples ``start:stop`` (ids are views of the original arrays where possible)."""
        start, stop = max(0, start), min(self.n_samples, stop)
        tables = []
        for t in self.tables:
            a, b = int(t.offsets[start]), int(t.offsets[stop])
            tables.append(Table(t.name, t.cardinality, t.values[a:b], np.asarray(t.offsets[start:stop + 1]) - a,
                                t.cardinality_from_data))
        return Trace(tables,
                     dense=None if self.dense is None else self.dense[start:stop],
                     labels=None if self.labels is None else self.labels[start:stop])

    def not_one_hot(self) -> str:
        """Which tables keep the trace from being one-hot, for error messages ("" when it is one-hot)."""
        bad = [t for t in self.tables if not t.is_one_hot]
        multi = [t.name for t in bad if t.n_samples and int(t.lengths.max()) > 1]
        empty = [t.name for t in bad if t.name not in multi]
        what = []
        if multi:
            many = len(multi) > 1
            what.append(f"table{'s' if many else ''} {', '.join(multi[:5])} {'are' if many else 'is'} multi-hot")
        if empty:
            many = len(empty) > 1
            what.append(f"table{'s' if many else ''} {', '.join(empty[:5])} {'have' if many else 'has'} samples "
                        "with no id")
        return " and ".join(what)

    def to_dense_ids(self) -> np.ndarray:
        """``(B, T)`` int64 ids of a one-hot trace (the DLRM ``X_cat`` layout)."""
        if not self.is_one_hot:
            raise TracegenError(f"{self.not_one_hot()}; X_cat needs one id per sample per table")
        out = np.empty((self.n_samples, self.n_tables), dtype=np.int64)
        for j, t in enumerate(self.tables):
            out[:, j] = t.values
        return out

    # ---- checks --------------------------------------------------------------------------------
    def validate(self, path=None) -> Trace:
        """Raise :class:`TracegenError` (naming ``path``) on any inconsistency; return ``self``."""
        if not self.tables:
            raise TracegenError("trace has no tables", path)
        names = self.names
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise TracegenError(f"duplicate table names: {', '.join(dup)}", path)
        b = self.tables[0].n_samples
        for t in self.tables:
            t.validate(path)
            if t.n_samples != b:
                raise TracegenError(f"table {t.name!r} has {t.n_samples} samples but table "
                                    f"{self.tables[0].name!r} has {b}", path)
        if b == 0 or self.n_accesses == 0:
            raise TracegenError("trace is empty (no accesses)", path)
        if self.dense is not None:
            d = self.dense
            if d.ndim != 2 or d.shape[0] != b:
                raise TracegenError(f"dense features have shape {d.shape}, expected ({b}, F)", path)
            if not np.issubdtype(d.dtype, np.floating) and not np.issubdtype(d.dtype, np.integer):
                raise TracegenError(f"dense features must be numeric, got dtype {d.dtype}", path)
            _check_finite(d, "dense features", path)
        if self.labels is not None:
            y = self.labels
            if y.ndim != 1 or y.shape[0] != b:
                raise TracegenError(f"labels have shape {y.shape}, expected ({b},)", path)
            if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)
                    or y.dtype == np.bool_):
                raise TracegenError(f"labels must be numeric, got dtype {y.dtype}", path)
            _check_finite(y, "labels", path)
        return self

    def equals(self, other: Trace) -> bool:
        """Same tables (names, cardinalities, ids, offsets), dense features and labels."""
        if self.n_tables != other.n_tables or not all(a.equals(b) for a, b in zip(self.tables, other.tables)):
            return False
        for a, b in ((self.dense, other.dense), (self.labels, other.labels)):
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                return False
        return True

    def __repr__(self) -> str:
        extra = []
        if self.dense is not None:
            extra.append(f"dense={tuple(self.dense.shape)}")
        if self.labels is not None:
            extra.append("labels")
        return (f"Trace(samples={self.n_samples}, tables={self.n_tables}, accesses={self.n_accesses}"
                + (", " + ", ".join(extra) if extra else "") + ")")


def default_names(n_tables: int) -> list[str]:
    """Criteo's names ``C1..C26`` style: ``C1 .. C{T}``."""
    return [f"C{j + 1}" for j in range(n_tables)]


def _check_finite(a: np.ndarray, what: str, path=None) -> None:
    """Raise naming the first NaN or infinite entry of a float array (integer arrays always pass)."""
    if not np.issubdtype(a.dtype, np.floating) or a.size == 0:
        return
    step = 1 << 22  # rows at a time: no full-size temporary for a memory-mapped array
    for start in range(0, a.shape[0], step):
        blk = np.asarray(a[start:start + step])
        bad = ~np.isfinite(blk)
        if bad.any():
            pos = np.unravel_index(int(np.argmax(bad)), blk.shape)
            where = (start + int(pos[0]),) + tuple(int(x) for x in pos[1:])
            raise TracegenError(f"{what} hold a NaN or infinite value ({blk[pos]} at {where})", path)
