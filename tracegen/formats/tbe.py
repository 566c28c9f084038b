"""Meta dlrm_datasets / FBGEMM TBE requests (``tbe-pt``): ``torch.save((indices, offsets, lengths))``.

Table-major layout: ``indices`` (int64) holds table 0's bags for samples ``0..B-1``, then table 1's,
and so on; ``offsets`` has ``T * B + 1`` entries (bag ``t * B + b``); ``lengths`` is ``T x B``. The
file stores no table sizes, so each table's cardinality is ``max id + 1`` unless ``cardinalities`` is
given. Also read: a list or a dict (``indices``/``offsets``/``lengths``) instead of the tuple, lists or
arrays instead of tensors, int32 or int64, and gzip-compressed files (``fbgemm_t856_bs65536.pt.gz`` as
Meta ships them). torch is imported only when this format is used; ``torch.load(weights_only=True)``
never unpickles code.
"""

from __future__ import annotations

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


def _parts(obj, path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices, offsets, lengths)`` from a tuple/list of three, or a dict with those keys."""
    want = "expected (indices, offsets, lengths): a tuple or list of three tensors, or a dict with those keys"
    if isinstance(obj, dict):
        missing = [k for k in _KEYS if k not in obj]
        if missing:
            keys = ", ".join(map(repr, list(obj)[:8]))
            raise TraceFormatError(f"{want}; the dict lacks {', '.join(missing)} (it holds {keys})", path)
        parts = [obj[k] for k in _KEYS]
    elif isinstance(obj, (tuple, list)) and len(obj) == 3:
        parts = list(obj)
    elif isinstance(obj, (tuple, list)):
        raise TraceFormatError(f"{want}; got a {type(obj).__name__} of {len(obj)}", path)
    else:
        raise TraceFormatError(f"{want}; got {type(obj).__name__}", path)
    return tuple(_array(x, k, path) for x, k in zip(parts, _KEYS))


def _load(path):
    """``torch.load`` (never unpickling code); a gzip-compressed file (Meta ships ``.pt.gz``) is inflated to a
    temporary file first."""
    import gzip
    import shutil
    import tempfile
    import zlib

    import torch

    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if not gz:
        return torch.load(path, map_location="cpu", weights_only=True)
    with tempfile.TemporaryFile() as tmp:
        try:
            with gzip.open(path, "rb") as g:
                shutil.copyfileobj(g, tmp, 1 << 24)
        except (OSError, EOFError, zlib.error) as e:
            raise TraceFormatError(f"cannot decompress: truncated or corrupt gzip ({e})", path) from None
        tmp.seek(0)
        return torch.load(tmp, map_location="cpu", weights_only=True)


def read_tbe(path, *, names=None, cardinalities=None) -> Trace:

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
    indices, offsets, lengths = _parts(obj, path)
    if indices.ndim != 1 or offsets.ndim != 1:
        raise TraceFormatError(
            f"indices and offsets must be 1-D, got {indices.shape} and {offsets.shape}", path
        )
    if lengths.ndim != 2:
        raise TraceFormatError("lengths must be a T x B tensor (it gives the table count)", path)
    t, b = lengths.shape
    if offsets.shape[0] != t * b + 1:
        raise TraceFormatError(
            f"offsets has {offsets.shape[0]} entries but lengths is {t} x {b} "
            f"(needs T * B + 1 = {t * b + 1}): table-count mismatch",
            path,
        )
    ids = ids_from_any(indices, path, densify_hint=False)
    if not np.issubdtype(offsets.dtype, np.integer) or not np.issubdtype(lengths.dtype, np.integer):
        raise TraceFormatError(
            f"offsets and lengths must be integers, got {offsets.dtype} and {lengths.dtype}", path
        )
    offs = offsets.astype(np.int64)
    if offs[0] != 0 or offs[-1] != ids.shape[0]:
        raise TraceFormatError(
            f"offsets run {int(offs[0])}..{int(offs[-1])} but there are {ids.shape[0]} indices", path
        )
    d = np.diff(offs)
    if d.size and d.min() < 0:
        i = int(np.argmax(d < 0))
        raise TraceFormatError(f"offsets decrease at bag {i} ({int(offs[i])} -> {int(offs[i + 1])})", path)
    if not np.array_equal(d.reshape(t, b), lengths):
        raise TraceFormatError("lengths do not match the differences of offsets", path)
    names = list(names) if names is not None else [f"t{j}" for j in range(t)]
    tables = []
    for j in range(t):
        a, z = int(offs[j * b]), int(offs[(j + 1) * b])
        v = ids[a:z]
        card = int(cardinalities[j]) if cardinalities is not None else (int(v.max()) + 1 if v.size else 1)
        tables.append(Table(names[j], card, v, offs[j * b : (j + 1) * b + 1] - a))
    return Trace(tables).validate(path)


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
