"""Replay id traces in other cache replacement policies through the ``libcachesim`` package.

:func:`miss_ratios` writes the ids to a temporary libCacheSim *oracleGeneral* binary trace (24-byte
records: u32 time, u64 id, u32 size, i64 next access; every object one unit in size, so cache
sizes are in rows) and replays it with libCacheSim's C simulator, once per cache size. We do not
simulate policies ourselves; LRU is also available here as a cross-check of
:func:`tracegen.locality.miss_ratio_curve`.

``libcachesim`` is an optional extra (``pip install tracegen[cachesim]``); without it these
functions raise :class:`~tracegen.errors.TracegenError`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np

from tracegen.errors import TracegenError

#: policy name (case-insensitive, '-' and '_' ignored) -> libcachesim class name
POLICIES = {
    "lru": "LRU", "fifo": "FIFO", "lfu": "LFU", "arc": "ARC", "s3fifo": "S3FIFO",
    "sieve": "Sieve", "clock": "Clock", "clockpro": "ClockPro", "lirs": "LIRS", "twoq": "TwoQ", "2q": "TwoQ",
    "slru": "SLRU", "mq": "MQ", "wtinylfu": "WTinyLFU", "tinylfu": "WTinyLFU", "lecar": "LeCaR",
    "cacheus": "Cacheus", "lhd": "LHD", "random": "Random", "belady": "Belady", "opt": "Belady",
    "lruk": "LRUK", "hyperbolic": "Hyperbolic", "gdsf": "GDSF",
}
# LFUDA is left out: libcachesim 0.3.5 crashes the interpreter replaying it.

#: smallest cache (rows) a policy works at in libcachesim 0.3.5: below it the C library aborts the
#: process (S3-FIFO's small queue, W-TinyLFU's window would be empty) or every access misses. We
#: return NaN for smaller sizes instead of calling it.
MIN_SIZE = {"S3FIFO": 20, "WTinyLFU": 100}

_REC = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


def _lcs():
    try:
        import libcachesim
    except ImportError:
        raise TracegenError("cache simulation needs the optional 'libcachesim' package "
                            "(pip install 'tracegen[cachesim]' or pip install libcachesim)") from None
    return libcachesim


def available() -> bool:
    """Whether ``libcachesim`` can be imported."""
    try:
        _lcs()
    except TracegenError:
        return False
    return True


def policy_class(policy: str):
    """The libcachesim cache class for a policy name (``lru``, ``fifo``, ``lfu``, ``arc``, ``s3fifo``...)."""
    lcs = _lcs()
    key = policy.lower().replace("-", "").replace("_", "")
    name = POLICIES.get(key, policy)
    cls = getattr(lcs, name, None)
    if cls is None or not isinstance(cls, type):
        raise TracegenError(f"unknown cache policy {policy!r}; known: {', '.join(sorted(set(POLICIES)))}")
    return cls


def _next_access(ids: np.ndarray) -> np.ndarray:
    """Index of the next access to the same id (-1 if none), for policies that look ahead (Belady)."""
    n = ids.size
    order = np.lexsort((np.arange(n), ids))
    nxt = np.full(n, -1, np.int64)
    same = ids[order[1:]] == ids[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


@contextlib.contextmanager
def oracle_general_file(ids, *, directory: str | None = None) -> Iterator[str]:
    """Write ``ids`` as a temporary oracleGeneral trace (unit sizes); yield its path, then delete it."""
    a = np.asarray(ids)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise TracegenError("ids must be a 1-D integer array")
    a = a.astype(np.int64, copy=False)
    if a.size and int(a.min()) < 0:
        raise TracegenError("ids must be non-negative for libcachesim")
    if a.size >= 2**32:
        raise TracegenError("trace too long for the oracleGeneral format (u32 time)")
    rec = np.empty(a.size, _REC)
    rec["time"] = np.arange(a.size, dtype=np.uint32)
    rec["id"] = a.astype(np.uint64) + np.uint64(1)  # keep id 0 clear of any sentinel use
    rec["size"] = 1
    nxt = _next_access(a)
    rec["next"] = np.where(nxt >= 0, nxt, -1)
    fd, path = tempfile.mkstemp(prefix="tracegen-", suffix=".oracleGeneral.bin", dir=directory)
    os.close(fd)
    try:
        rec.tofile(path)
        yield path
    finally:
        os.unlink(path)


def miss_ratios(ids, policy: str, sizes: Sequence[int]) -> np.ndarray:
    """Miss ratio of ``policy`` at each cache size (rows) replaying ``ids`` in libCacheSim.

    ``policy`` is a name from :data:`POLICIES` (LRU, FIFO, LFU, ARC, S3-FIFO, Sieve, ...). Returns
    float64 miss ratios, one per size; size 0 gives 1.0, an empty trace 0.0, and a size below the
    policy's :data:`MIN_SIZE` NaN.
    """
    lcs = _lcs()
    cls = policy_class(policy)
    sizes_a = np.asarray(sizes, dtype=np.int64).ravel()
    if sizes_a.size and sizes_a.min() < 0:
        raise TracegenError("cache sizes must be non-negative")
    a = np.asarray(ids)
    out = np.empty(sizes_a.shape, np.float64)
    if a.size == 0:
        out[:] = 0.0
        return out
    with oracle_general_file(a) as path:
        for i, c in enumerate(sizes_a):
            if c == 0:
                out[i] = 1.0
                continue
            if c < MIN_SIZE.get(cls.__name__, 1):
                out[i] = np.nan
                continue
            reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE,
                                     lcs.ReaderInitParam(ignore_obj_size=True))
            try:
                cache = cls(cache_size=int(c))
            except Exception as e:  # noqa: BLE001 - libcachesim raises plain exceptions on bad params
                raise TracegenError(f"libcachesim cannot build a {policy} cache of {c} rows: {e}") from None
            out[i] = float(cache.process_trace(reader)[0])
    return out
