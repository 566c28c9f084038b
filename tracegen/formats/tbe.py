"""Meta dlrm_datasets / FBGEMM TBE requests (``tbe-pt``): ``torch.save((indices, offsets, lengths))``.

Table-major layout: ``indices`` (int64) holds table 0's bags for samples ``0..B-1``, then table 1's,
and so on; ``offsets`` has ``T * B + 1`` entries (bag ``t * B + b``); ``lengths`` is ``T x B``. The
file stores no table sizes, so each table's cardinality is ``max id + 1`` unless ``cardinalities`` is
given. Also read: a list or a dict (``indices``/``offsets``/``lengths``) instead of the tuple, lists or
arrays instead of tensors, int32 or int64, and gzip-compressed files (``fbgemm_t856_bs65536.pt.gz`` as
Meta ships them). As FBGEMM's ``generate_requests_from_data_file`` (``indices, offsets, *rest``), items
after ``lengths`` (per-sample weights) are ignored; without a ``T x B`` ``lengths`` (none, float weights in
its place, or flat ``T * B`` lengths) the file does not give ``T``, so ``cardinalities`` or ``names`` must.
Offsets of ``T * B`` bag starts without the final end (``nn.EmbeddingBag``'s ``include_last_offset=False``)
are completed by the count of indices. A bare 1-D tensor (FBGEMM's ``tbe eeg_cli generate``) is one id
sequence. torch is imported only when this format is used; ``torch.load(weights_only=True)`` never
unpickles code, and maps the tensors from the file (``mmap=True``) where its format allows, so a
several-GB file is paged in as it is read. :class:`TbeStreamWriter` parks each table's ids on disk
while chunks of samples arrive (the file is table-major) and builds the tensors once at the end.
"""

from __future__ import annotations

import os

import numpy as np

from tracegen._util import atomic_output
from tracegen.errors import TraceFormatError
from tracegen.formats._common import ids_from_any
from tracegen.trace import Table, Trace

_KEYS = ("indices", "offsets", "lengths")


def _array(x, what: str, path) -> np.ndarray:
    """A tensor, ndarray or (nested) list of numbers as an ndarray; anything else is an error."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        a = x
    elif isinstance(x, (list, tuple)):
        try:
            a = np.asarray(x)
        except ValueError:
            raise TraceFormatError(f"{what} is a ragged list, not an array", path) from None
        if a.size == 0:
            a = a.astype(np.int64)
    else:
        raise TraceFormatError(f"{what} must be a tensor or a list of integers, got {type(x).__name__}", path)
    if a.dtype == object or not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.number)):
        raise TraceFormatError(f"{what} must hold numbers, got {a.dtype}", path)
    return a


def _is_tensor(x) -> bool:
    import torch

    return isinstance(x, (torch.Tensor, np.ndarray))


def _parts(obj, path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(indices, offsets, lengths or None)`` from a tuple/list, or a dict with those keys.

    As FBGEMM's ``generate_requests_from_data_file`` (``indices, offsets, *rest = torch.load(...)``), items
    after the offsets are optional: the third is the lengths when it holds integers; float tensors there or
    after it (per-sample weights) are ignored."""
    want = "expected (indices, offsets, lengths): a tuple or list of three tensors, or a dict with those keys"
    if isinstance(obj, dict):
        missing = [k for k in _KEYS if k not in obj]
        if missing:
            keys = ", ".join(map(repr, list(obj)[:8]))
            raise TraceFormatError(f"{want}; the dict lacks {', '.join(missing)} (it holds {keys})", path)
        parts = [obj[k] for k in _KEYS]
    elif isinstance(obj, (tuple, list)) and len(obj) >= 2 and all(_is_tensor(x) for x in obj):
        parts = list(obj[:3])
    elif isinstance(obj, (tuple, list)) and len(obj) == 3:
        parts = list(obj)
    elif isinstance(obj, (tuple, list)):
        raise TraceFormatError(f"{want}; got a {type(obj).__name__} of {len(obj)}", path)
    else:
        raise TraceFormatError(f"{want}; got {type(obj).__name__}", path)
    arrays = [_array(x, k, path) for x, k in zip(parts, _KEYS)]
    if len(arrays) == 3 and not (arrays[2].dtype == np.bool_ or np.issubdtype(arrays[2].dtype, np.integer)):
        if not isinstance(obj, dict) and (len(obj) > 3 or arrays[2].ndim == 1):  # (indices, offsets, weights)
            arrays = arrays[:2]
    return arrays[0], arrays[1], (arrays[2] if len(arrays) == 3 else None)


def _split_tables(offsets: np.ndarray, lengths: np.ndarray | None, n_tables: int | None, path) -> tuple[int, int]:
    """``(T, B)``: from a ``T x B`` ``lengths``, else from the table count given by the caller."""
    if lengths is not None and lengths.ndim == 2:
        return lengths.shape
    what = "no lengths" if lengths is None else f"1-D lengths ({lengths.shape[0]} bags)"
    if lengths is not None and lengths.ndim != 1:
        raise TraceFormatError("lengths must be a T x B tensor (it gives the table count)", path)
    nb = offsets.shape[0] - 1
    if n_tables is None:
        raise TraceFormatError(
            f"{what}: the file does not say how many tables its {nb} bags (indices, offsets, lengths = T x B) "
            "belong to; FBGEMM takes T and B on its command line: read it from Python with "
            "tracegen.formats.read(path, cardinalities=[...]) or names=[...] for the T tables",
            path,
        )
    if n_tables < 1 or nb % n_tables:
        raise TraceFormatError(f"{nb} bags do not split into {n_tables} tables of equal batch size", path)
    if lengths is not None and lengths.shape[0] != nb:
        raise TraceFormatError(f"lengths has {lengths.shape[0]} entries but offsets {nb} bags", path)
    return n_tables, nb // n_tables


def _load(path):
    """``torch.load`` (never unpickling code); a gzip-compressed file (Meta ships ``.pt.gz``) is inflated to a
    temporary file first."""
    import tempfile

    import torch

    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if not gz:
        return _load_mapped(path)
    if os.name != "posix":  # a mapped temporary file cannot be removed while mapped there
        with tempfile.TemporaryFile() as tmp:
            _gunzip(path, tmp)
            tmp.seek(0)
            return torch.load(tmp, map_location="cpu", weights_only=True)
    fd, name = tempfile.mkstemp(prefix="tracegen-tbe-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as tmp:
            _gunzip(path, tmp)
        return _load_mapped(name)  # the mapping outlives the unlinked file
    finally:
        os.unlink(name)


def _gunzip(path, out) -> None:
    import gzip
    import shutil
    import zlib

    try:
        with gzip.open(path, "rb") as g:
            shutil.copyfileobj(g, out, 1 << 24)
    except (OSError, EOFError, zlib.error) as e:
        raise TraceFormatError(f"cannot decompress: truncated or corrupt gzip ({e})", path) from None


def _load_mapped(path):
    """``torch.load`` memory-mapping the tensors (a zip-format file, what ``torch.save`` writes since 1.6): a
    several-GB request file is paged in as the ids are touched instead of copied whole into memory; a
    legacy-format file is loaded the ordinary way."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, ValueError, pickle.UnpicklingError):  # not a zip-format file (or no mmap support)
        return torch.load(path, map_location="cpu", weights_only=True)


def read_tbe(path, *, names=None, cardinalities=None) -> Trace:
    """Read a request file as ``T`` tables over ``B`` samples (``names``/``cardinalities``: one per table)."""
    try:
        obj = _load(path)
    except TraceFormatError:
        raise
    except Exception as e:  # torch raises many types for a corrupt file  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise TraceFormatError(
            f"cannot load as a torch file: truncated, corrupt or not tbe-pt ({type(e).__name__}: {first})",
            path,
        ) from None
    if _is_tensor(obj) and np.ndim(obj) == 1:  # one id tensor (FBGEMM's tbe eeg_cli generate --output)
        return _single(_array(obj, "indices", path), path, names, cardinalities)
    indices, offsets, lengths = _parts(obj, path)
    if indices.ndim != 1 or offsets.ndim != 1:
        raise TraceFormatError(
            f"indices and offsets must be 1-D, got {indices.shape} and {offsets.shape}", path
        )
    n_given = len(cardinalities) if cardinalities is not None else (len(names) if names is not None else None)
    n_ids = indices.shape[0]
    starts_only = lengths is not None and lengths.ndim == 2 and offsets.shape[0] == lengths.size > 0
    if starts_only and 0 < offsets[-1] < n_ids:
        # nn.EmbeddingBag's include_last_offset=False: the bags' starts only (the last one before the end of
        # the indices: full offsets end there); the end is the count of indices (in int64: int32 starts may
        # be followed by more than 2**31 indices)
        offsets = np.append(offsets.astype(np.int64), np.int64(n_ids))
    t, b = _split_tables(offsets, lengths, n_given, path)
    if offsets.shape[0] != t * b + 1:
        raise TraceFormatError(
            f"offsets has {offsets.shape[0]} entries but lengths is {t} x {b} "
            f"(needs T * B + 1 = {t * b + 1}): table-count mismatch",
            path,
        )
    ids = ids_from_any(indices, path, densify_hint=False)
    ldt = offsets.dtype if lengths is None else lengths.dtype
    if not np.issubdtype(offsets.dtype, np.integer) or not np.issubdtype(ldt, np.integer):
        raise TraceFormatError(f"offsets and lengths must be integers, got {offsets.dtype} and {ldt}", path)
    # no whole-file int64 copy or diff of the T x B offsets (Meta's 856 x 65,536 are 56M entries): the
    # checks go table by table, and only the tables' own offsets (rebased to 0) are new memory
    offs = offsets if offsets.dtype == np.int64 else offsets.astype(np.int64)
    if offs[0] != 0 or offs[-1] != ids.shape[0]:
        raise TraceFormatError(
            f"offsets run {int(offs[0])}..{int(offs[-1])} but there are {ids.shape[0]} indices", path
        )
    for j in range(t):
        d = np.diff(offs[j * b : (j + 1) * b + 1])
        if d.size and d.min() < 0:
            i = j * b + int(np.argmax(d < 0))
            raise TraceFormatError(f"offsets decrease at bag {i} ({int(offs[i])} -> {int(offs[i + 1])})", path)
    if lengths is not None:
        flat = lengths.reshape(-1)
        for j in range(t):
            if not np.array_equal(np.diff(offs[j * b : (j + 1) * b + 1]), flat[j * b : (j + 1) * b]):
                raise TraceFormatError("lengths do not match the differences of offsets", path)
    names = list(names) if names is not None else [f"t{j}" for j in range(t)]
    if len(names) != t or (cardinalities is not None and len(cardinalities) != t):
        given = len(names) if len(names) != t else len(cardinalities)
        raise TraceFormatError(f"{given} names or cardinalities given for the file's {t} tables", path)
    tables = []
    for j in range(t):
        a, z = int(offs[j * b]), int(offs[(j + 1) * b])
        v = ids[a:z]
        card = int(cardinalities[j]) if cardinalities is not None else (int(v.max()) + 1 if v.size else 1)
        tables.append(Table(names[j], card, v, offs[j * b : (j + 1) * b + 1] - a, cardinalities is None))
    return Trace(tables).validate(path)


def _single(ids: np.ndarray, path, names, cardinalities) -> Trace:
    """A bare 1-D id tensor: one table, one id per sample."""
    v = ids_from_any(ids, path, densify_hint=False)
    if v.size == 0:
        raise TraceFormatError("trace is empty (no indices)", path)
    name = names[0] if names else "t0"
    card = int(cardinalities[0]) if cardinalities else None  # None: max id + 1, derived from the data
    return Trace.single(v, name=name, cardinality=card).validate(path)


def write_tbe(trace: Trace, path, *, force: bool = False) -> None:
    import torch

    trace.validate(path)
    b = trace.n_samples
    indices = np.concatenate([np.asarray(t.values, np.int64) for t in trace.tables])
    lengths = np.stack([t.lengths for t in trace.tables]).astype(np.int64)  # (T, B)
    offsets = np.zeros(trace.n_tables * b + 1, np.int64)
    np.cumsum(lengths.ravel(), out=offsets[1:])
    with atomic_output(path, force, suffix=".pt") as tmp:
        torch.save((torch.from_numpy(indices), torch.from_numpy(offsets), torch.from_numpy(lengths)), tmp)


class TbeStreamWriter:
    """Streams chunks of samples (all tables) to two raw parts per table; :meth:`close` assembles the
    table-major ``(indices, offsets, lengths)`` and saves them.

    The file is table-major while chunks come sample by sample, so nothing can be written before the last
    chunk; keeping the chunks in memory (the buffered writer) held every id three times at the end (the
    chunks, their concatenation, and the indices tensor): 3.4 GB to write 52M ids. Here memory at close is
    the indices and the ``T x B`` lengths and offsets, once."""

    def __init__(self, path, *, names, cardinalities, force: bool = False):
        from tracegen._util import check_output
        from tracegen.formats._npzio import make_sinks

        self.path, self.force = os.fspath(path), force
        check_output(self.path, force)
        self.names = list(names)
        folder = os.path.dirname(os.path.abspath(self.path))
        sinks = make_sinks(folder, [(np.int64, ())] * (2 * len(self.names)))
        self.values, self.lengths = sinks[0::2], sinks[1::2]
        self.n_samples = 0
        self._closed = False

    def write(self, chunk: Trace) -> None:
        from tracegen.errors import TracegenError

        if chunk.n_tables != len(self.names):
            raise TracegenError(f"chunk has {chunk.n_tables} tables, writer expects {len(self.names)}", self.path)
        for j, t in enumerate(chunk.tables):
            v = np.asarray(t.values)
            if v.size and int(v.min()) < 0:
                raise TracegenError(f"table {t.name!r}: negative id {int(v.min())}", self.path)
            self.values[j].append(v)
            self.lengths[j].append(t.lengths)
        self.n_samples += chunk.n_samples

    def close(self) -> None:
        import torch

        from tracegen.errors import TracegenError

        if self._closed:
            return
        self._closed = True
        try:
            if self.n_samples == 0 or not any(s.rows for s in self.values):
                raise TracegenError("trace is empty (no accesses)", self.path)
            t, b = len(self.names), self.n_samples
            indices = np.empty(sum(s.rows for s in self.values), np.int64)
            lengths = np.empty((t, b), np.int64)  # (T, B)
            at = 0
            for j in range(t):
                _read_into(self.lengths[j], lengths[j])
                _read_into(self.values[j], indices[at : at + self.values[j].rows])
                at += self.values[j].rows
            offsets = np.zeros(t * b + 1, np.int64)
            np.cumsum(lengths.reshape(-1), out=offsets[1:])
            with atomic_output(self.path, self.force, suffix=".pt") as tmp:
                torch.save((torch.from_numpy(indices), torch.from_numpy(offsets), torch.from_numpy(lengths)), tmp)
        finally:
            self.abort()

    def abort(self) -> None:
        self._closed = True
        for s in (*self.values, *self.lengths):
            s.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()


def _read_into(sink, out: np.ndarray) -> None:
    """The rows of a raw part into ``out`` (contiguous, ``sink.rows`` entries), without a temporary copy."""
    if out.size == 0:
        return
    with open(sink.path, "rb") as f:
        got = f.readinto(memoryview(out).cast("B"))
    if got != out.nbytes:
        raise OSError(f"temporary part {sink.path} is short ({got} of {out.nbytes} bytes)")
