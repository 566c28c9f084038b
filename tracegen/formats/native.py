"""The native tracegen npz (format name ``npz``): per-table values/offsets plus a JSON metadata entry.

Layout (an ordinary, by default uncompressed, zip of ``.npy`` members):

- ``metadata.json``: ``{"format": "tracegen-trace", "version": 1, "n_samples": B, "tables": [{"name",
  "cardinality", "n_accesses", "min_id", "max_id"}, ...], "dense_features": F or null,
  "labels": true/false}``
- ``t{j}_values.npy`` (int64, N_j), ``t{j}_offsets.npy`` (int64, B + 1) for table ``j``
- ``dense.npy`` (float32, B x F) and ``labels.npy`` (float32, B) when present.

Reading memory-maps stored members (O(1) in time and memory until values are touched) and checks the
structure plus the recorded id range; ``validate=True`` also scans every id and offset.
Compressed files (``compress=True``, used for the bundled example) are read into memory.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tracegen._util import atomic_output, check_output
from tracegen.errors import TraceFormatError, TracegenError
from tracegen.formats._npzio import NpzArchive, RawSink, assemble_npz, make_sinks
from tracegen.trace import Table, Trace

FORMAT_NAME = "tracegen-trace"
VERSION = 1
META = "metadata.json"


def is_native(archive: NpzArchive) -> bool:
    if META not in archive.infos:
        return False
    try:
        meta = json.loads(archive.read_bytes(META))
    except (ValueError, TraceFormatError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def _meta(trace: Trace, mins=None, maxs=None) -> bytes:
    tables = []
    for j, t in enumerate(trace.tables):
        v = t.values
        lo = (int(v.min()) if v.size else 0) if mins is None else int(mins[j])
        hi = (int(v.max()) if v.size else -1) if maxs is None else int(maxs[j])
        spec = {
            "name": t.name,
            "cardinality": int(t.cardinality),
            "n_accesses": int(t.n_accesses),
            "min_id": lo,
            "max_id": hi,
        }
        if t.cardinality_from_data:  # kept so that a fit of the converted file still hides max id + 1
            spec["cardinality_from_data"] = True
        tables.append(spec)
    meta = {
        "format": FORMAT_NAME,
        "version": VERSION,
        "n_samples": int(trace.n_samples),
        "tables": tables,
        "dense_features": None if trace.dense is None else int(trace.dense.shape[1]),
        "labels": trace.labels is not None,
    }
    return json.dumps(meta, indent=1).encode()


def read_npz(path, *, validate: bool = False, mmap: bool = True) -> Trace:
    """Open a native npz lazily (memory-mapped); ``validate=True`` scans all ids and offsets too."""
    with NpzArchive(path) as ar:
        if META not in ar.infos:
            raise TraceFormatError(f"missing {META} (not a native tracegen npz)", path)
        try:
            meta = json.loads(ar.read_bytes(META))
        except ValueError as e:
            raise TraceFormatError(f"{META} is not valid JSON ({e})", path) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise TraceFormatError(f"{META} does not describe a {FORMAT_NAME} file", path)
        version = meta.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise TraceFormatError(f"{META}: version must be an integer, got {version!r}", path)
        if version > VERSION:
            raise TraceFormatError(
                f"written by a newer tracegen (format version {meta['version']}, this one reads {VERSION})",
                path,
            )
        try:
            b = int(meta["n_samples"])
            specs = list(meta["tables"])
            tables = []
            for j, spec in enumerate(specs):
                name, card = str(spec["name"]), int(spec["cardinality"])
                values = ar.get(f"t{j}_values", mmap=mmap)
                offsets = ar.get(f"t{j}_offsets", mmap=mmap)
                for what, a in (("values", values), ("offsets", offsets)):
                    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
                        raise TraceFormatError(
                            f"table {name!r}: {what} must be a 1-D integer array, got {a.dtype} {a.shape}",
                            path,
                        )
                if values.dtype != np.int64:
                    values = values.astype(np.int64)
                if offsets.dtype != np.int64:
                    offsets = offsets.astype(np.int64)
                if offsets.shape[0] != b + 1:
                    raise TraceFormatError(
                        f"table {name!r} has {offsets.shape[0] - 1} samples, metadata "
                        f"says {b} (table-count/sample-count mismatch)",
                        path,
                    )
                if values.shape[0] != int(spec.get("n_accesses", values.shape[0])):
                    raise TraceFormatError(
                        f"table {name!r} has {values.shape[0]} ids, metadata says {spec['n_accesses']}", path
                    )
                lo, hi = int(spec.get("min_id", 0)), int(spec.get("max_id", -1))
                if values.shape[0] and lo < 0:
                    raise TraceFormatError(f"table {name!r}: negative id {lo}", path)
                if values.shape[0] and hi >= card:
                    raise TraceFormatError(f"table {name!r}: id {hi} >= cardinality {card}", path)
                if offsets.shape[0] and (offsets[0] != 0 or offsets[-1] != values.shape[0]):
                    raise TraceFormatError(
                        f"table {name!r}: offsets run {int(offsets[0])}..{int(offsets[-1])}"
                        f" but there are {values.shape[0]} ids",
                        path,
                    )
                tables.append(Table(name, card, values, offsets, spec.get("cardinality_from_data") is True))
            extra = (
                set(ar.names())
                - {META}
                - {f"t{j}_{k}" for j in range(len(specs)) for k in ("values", "offsets")}
            )
            extra -= {"dense", "labels"}
            if any(n.startswith("t") and n.endswith(("_values", "_offsets")) for n in extra):
                raise TraceFormatError(f"holds arrays for more tables than the {len(specs)} in {META}", path)
            dense = ar.get("dense", mmap=mmap) if meta.get("dense_features") is not None else None
            labels = ar.get("labels", mmap=mmap) if meta.get("labels") else None
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, TracegenError):
                raise
            raise TraceFormatError(f"{META} is incomplete or malformed ({e!r})", path) from None
    trace = Trace(tables, dense=dense, labels=labels)
    if validate or not all(isinstance(t.values, np.memmap) for t in tables):
        return trace.validate(path)
    # structural checks only: everything except the per-id / per-offset scans
    if not tables:
        raise TraceFormatError("trace has no tables", path)
    if b == 0 or trace.n_accesses == 0:
        raise TraceFormatError("trace is empty (no accesses)", path)
    if len(set(trace.names)) != len(tables):
        raise TraceFormatError("duplicate table names", path)
    for what, a in (("dense features", dense), ("labels", labels)):
        if a is not None and a.shape[0] != b:
            raise TraceFormatError(f"{what} have {a.shape[0]} rows, expected {b}", path)
    return trace


def write_npz(trace: Trace, path, *, force: bool = False, compress: bool = False) -> None:
    """Write ``trace`` as a native npz (atomic; uncompressed unless ``compress``).

    Uncompressed files hold int64 ids and are memory-mapped on reading; ``compress=True`` deflates the
    members and stores ids in the smallest unsigned dtype that fits (read back as int64, in memory)."""
    trace.validate()
    members: list[tuple[str, object]] = [(META, _meta(trace))]
    for j, t in enumerate(trace.tables):
        # compressed files are read into memory anyway: store ids in the smallest dtype that holds them
        vdt = np.min_scalar_type(max(int(t.cardinality) - 1, 0)) if compress else np.dtype(np.int64)
        members.append((f"t{j}_values", np.asarray(t.values).astype(vdt, copy=False)))
        members.append((f"t{j}_offsets", np.asarray(t.offsets, dtype=np.int64)))
    if trace.dense is not None:
        members.append(("dense", np.asarray(trace.dense, dtype=np.float32)))
    if trace.labels is not None:
        members.append(("labels", np.asarray(trace.labels, dtype=np.float32)))
    with atomic_output(path, force, suffix=".npz") as tmp:
        assemble_npz(tmp, members, compress=compress)


class NpzStreamWriter:
    """Streams chunks of samples to raw parts beside ``path``, assembles the npz at :meth:`close`."""

    def __init__(
        self,
        path,
        *,
        names,
        cardinalities,
        force: bool = False,
        compress: bool = False,
        n_dense: int | None = None,
        labels: bool | None = None,
    ):
        self.path = os.fspath(path)
        check_output(self.path, force)
        self.force, self.compress = force, compress
        self.names = list(names)
        self.cardinalities = [int(c) for c in cardinalities]
        self.folder = os.path.dirname(os.path.abspath(self.path))
        sinks = make_sinks(self.folder, [(np.int64, ())] * (2 * len(self.names)))
        self.values, self.offsets = sinks[0::2], sinks[1::2]
        self.ends = [0] * len(self.names)
        self.mins = [None] * len(self.names)
        self.maxs = [None] * len(self.names)
        self.from_data = [False] * len(self.names)  # a chunk's cardinality was max id + 1 (Table.cardinality_from_data)
        self.dense: RawSink | None = None
        self.labels: RawSink | None = None
        self._n_dense, self._labels = n_dense, labels
        self.n_samples = 0
        self._closed = False
        try:
            for o in self.offsets:
                o.append(np.zeros(1, np.int64))
        except BaseException:
            self._discard()
            raise

    def write(self, chunk: Trace) -> None:
        if chunk.n_tables != len(self.names):
            raise TracegenError(
                f"chunk has {chunk.n_tables} tables, writer expects {len(self.names)}", self.path
            )
        for j, t in enumerate(chunk.tables):
            v = np.asarray(t.values, dtype=np.int64)
            o = np.asarray(t.offsets, dtype=np.int64)
            if v.size:
                lo, hi = int(v.min()), int(v.max())
                self.mins[j] = lo if self.mins[j] is None else min(self.mins[j], lo)
                self.maxs[j] = hi if self.maxs[j] is None else max(self.maxs[j], hi)
            self.from_data[j] = self.from_data[j] or bool(t.cardinality_from_data)
            self.values[j].append(v)
            self.offsets[j].append(o[1:] - o[0] + self.ends[j])
            self.ends[j] += int(o[-1] - o[0])
        b = chunk.n_samples
        if chunk.dense is not None:
            if self.dense is None:
                if self.n_samples:
                    raise TracegenError("dense features appeared after the first chunk", self.path)
                self.dense = RawSink(self.folder, np.float32, (chunk.dense.shape[1],))
            self.dense.append(chunk.dense)
        elif self.dense is not None:
            raise TracegenError("a chunk lacks the dense features the first chunk had", self.path)
        if chunk.labels is not None:
            if self.labels is None:
                if self.n_samples:
                    raise TracegenError("labels appeared after the first chunk", self.path)
                self.labels = RawSink(self.folder, np.float32)
            self.labels.append(chunk.labels)
        elif self.labels is not None:
            raise TracegenError("a chunk lacks the labels the first chunk had", self.path)
        self.n_samples += b

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            tables = []
            for j, name in enumerate(self.names):
                tables.append(
                    Table(name, self.cardinalities[j], np.empty(0, np.int64), np.zeros(1, np.int64))
                )
                hi = self.maxs[j]
                if hi is not None and hi >= self.cardinalities[j]:
                    raise TracegenError(
                        f"table {name!r}: id {hi} >= cardinality {self.cardinalities[j]}", self.path
                    )
            if self.n_samples == 0 or sum(self.ends) == 0:
                raise TracegenError("trace is empty (no accesses)", self.path)
            meta = {
                "format": FORMAT_NAME,
                "version": VERSION,
                "n_samples": self.n_samples,
                "tables": [
                    {
                        "name": n,
                        "cardinality": self.cardinalities[j],
                        "n_accesses": self.ends[j],
                        "min_id": self.mins[j] if self.mins[j] is not None else 0,
                        "max_id": self.maxs[j] if self.maxs[j] is not None else -1,
                        # as write_npz does: a fit of the streamed file still hides max id + 1
                        **({"cardinality_from_data": True} if self.from_data[j] else {}),
                    }
                    for j, n in enumerate(self.names)
                ],
                "dense_features": None if self.dense is None else self.dense.tail[0],
                "labels": self.labels is not None,
            }
            members: list[tuple[str, object]] = [(META, json.dumps(meta, indent=1).encode())]
            for j in range(len(self.names)):
                members += [(f"t{j}_values", self.values[j]), (f"t{j}_offsets", self.offsets[j])]
            if self.dense is not None:
                members.append(("dense", self.dense))
            if self.labels is not None:
                members.append(("labels", self.labels))
            with atomic_output(self.path, self.force, suffix=".npz") as tmp:
                assemble_npz(tmp, members, compress=self.compress)
        finally:
            self._discard()

    def abort(self) -> None:
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        for s in [*self.values, *self.offsets, self.dense, self.labels]:
            if s is not None:
                s.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
