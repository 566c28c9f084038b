"""Compiled numba kernels for the locality engine (private; see :mod:`tracegen.locality`).

Kernels take contiguous arrays and return arrays; they never validate, print or hold RNG state.
Each has an obviously-correct slow twin in ``tests/naive.py`` and is tested for exact equality.

Data structures
---------------
- **id table**: open addressing with linear probing and Fibonacci hashing, load factor at most 1/2,
  doubled when full, holding (id, dense key) pairs; when every id is a small non-negative integer a
  *direct* id-indexed array replaces it (``direct``). :func:`_engine_run_ids` densifies 64K-access
  chunks with it (keys in order of first appearance: popular ids get small, cache-resident keys)
  and runs the engine on the keys, whose per-key state (last access time, count) is an array.
  (The engine can also run on raw ids with (id, last time, count) triples in a hashed table; the
  SHARDS kernels do.)
- **stack-distance engine**: a mark at the last access time of every id, in a bitmap over
  *compacted* access times ``0..S-1`` with ``S = O(U)``, plus a Fenwick tree over blocks of 64 times
  (``S / 64`` counters, small enough to stay in cache). The stack distance of an access whose id was
  last seen at time ``p`` is the number of marks after ``p``: a popcount in ``p``'s block plus a
  Fenwick prefix query. The block being filled joins the tree only when full. When the time counter
  reaches ``S`` the live times are renumbered ``0..U-1`` in order (ranks, hence distances, are
  unchanged) and the structure is rebuilt in O(S); ``S`` doubles while ``U > S / 2``, so this costs
  O(1) amortised per access and memory stays O(U).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

# engine state vector (int64): number of keys, next compacted time, accesses seen, Fenwick size, and a
# sink for the prefetching loads (stored so the compiler keeps them)
ST_U, ST_T, ST_N, ST_S, ST_SINK = 0, 1, 2, 3, 4
ST_LEN = 5
# how many accesses ahead the engine touches an id's state so it is in cache when its turn comes
PREFETCH = 32


# ---------------------------------------------------------------------------------------------
# id table
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _slot(x, shift):
    return np.int64((np.uint64(x) * _GOLD) >> np.uint64(shift))


@njit(cache=True)
def _new_table(cap):
    tab = np.empty(2 * cap, np.int64)
    for s in range(cap):
        tab[2 * s + 1] = -1
    return tab


@njit(cache=True)
def _table_shift(cap):
    b = 0
    while (np.int64(1) << b) < cap:
        b += 1
    return 64 - b


@njit(cache=True)
def _grow_table(tab):
    cap = tab.shape[0] // 2
    ncap = 2 * cap
    new = _new_table(ncap)
    shift = _table_shift(ncap)
    mask = ncap - 1
    for s in range(cap):
        k = tab[2 * s + 1]
        if k >= 0:
            x = tab[2 * s]
            j = _slot(x, shift)
            while new[2 * j + 1] >= 0:
                j = (j + 1) & mask
            new[2 * j] = x
            new[2 * j + 1] = k
    return new


@njit(cache=True, inline="always")
def _lookup(tab, x, u, shift, mask, direct):
    """Dense key of ``x``, inserting it as key ``u`` if new; returns (key, is_new). Load stays <= 1/2."""
    if direct:
        k = tab[x]
        if k < 0:
            tab[x] = u
            return u, True
        return k, False
    j = _slot(x, shift)
    while True:
        k = tab[2 * j + 1]
        if k < 0:
            tab[2 * j] = x
            tab[2 * j + 1] = u
            return u, True
        if tab[2 * j] == x:
            return k, False
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def _dense_keys_run(ids, tab, u, direct):
    """Dense keys of ``ids`` continuing a table holding ``u`` keys; returns (keys, tab, u)."""
    n = ids.shape[0]
    keys = np.empty(n, np.int64)
    if direct:  # a plain loop: several times faster than the general one below
        for i in range(n):
            x = ids[i]
            k = tab[x]
            if k < 0:
                tab[x] = u
                k = u
                u += 1
            keys[i] = k
        return keys, tab, u
    cap = tab.shape[0] // 2
    shift = _table_shift(cap)
    mask = cap - 1
    for i in range(n):
        if not direct and 2 * (u + 1) > cap:
            tab = _grow_table(tab)
            cap = tab.shape[0] // 2
            shift = _table_shift(cap)
            mask = cap - 1
        k, new = _lookup(tab, ids[i], u, shift, mask, direct)
        if new:
            u += 1
        keys[i] = k
    return keys, tab, u


@njit(cache=True, nogil=True)
def _dense_keys(ids):
    """Map arbitrary int64 ids to dense keys 0..U-1 in order of first appearance; returns (keys, U)."""
    keys, tab, u = _dense_keys_run(ids, _new_table(1024), 0, False)
    return keys, u


@njit(cache=True)
def _direct_map(size):
    return np.full(size, -1, np.int64)


# ---------------------------------------------------------------------------------------------
# reuse times, first accesses
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _reuse_times(keys, n_keys):
    """Requests since the previous access to the same key (-1 cold), from dense keys."""
    n = keys.shape[0]
    last = np.full(n_keys, -1, np.int64)
    out = np.empty(n, np.int64)
    for i in range(n):
        k = keys[i]
        p = last[k]
        out[i] = -1 if p < 0 else i - p
        last[k] = i
    return out


@njit(cache=True)
def _gap_histogram(keys, n_keys):
    """Histogram of the gaps (runs of requests not touching a key) of every key, boundaries included.

    For each key: the run before its first access, the runs between accesses (reuse time - 1) and
    the run after its last access. ``out[g]`` counts gaps of length ``g`` (0..N).
    """
    n = keys.shape[0]
    last = np.full(n_keys, -1, np.int64)
    out = np.zeros(n + 1, np.int64)
    for i in range(n):
        k = keys[i]
        p = last[k]
        out[i - p - 1] += 1  # p = -1 gives the leading run of length i
        last[k] = i
    for k in range(n_keys):
        out[n - 1 - last[k]] += 1
    return out


@njit(cache=True)
def _distinct_per_group(keys, starts, n_keys):
    """Distinct keys in each group ``keys[starts[g]:starts[g + 1]]``; keys are dense ``0..n_keys-1``."""
    n_groups = starts.shape[0] - 1
    out = np.zeros(n_groups, np.int64)
    last = np.full(n_keys, -1, np.int64)
    for g in range(n_groups):
        c = 0
        for i in range(starts[g], starts[g + 1]):
            k = keys[i]
            if last[k] != g:
                last[k] = g
                c += 1
        out[g] = c
    return out


@njit(cache=True)
def _group_support(keys, starts, n_keys):
    """Per key, the number of groups ``keys[starts[g]:starts[g + 1]]`` holding it (repeats count once)."""
    out = np.zeros(n_keys, np.int64)
    last = np.full(n_keys, -1, np.int64)
    for g in range(starts.shape[0] - 1):
        for i in range(starts[g], starts[g + 1]):
            k = keys[i]
            if last[k] != g:
                last[k] = g
                out[k] += 1
    return out


# ---------------------------------------------------------------------------------------------
# exact stack distances: Fenwick tree over compacted access times
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _fenwick_prefix_ones(size, ones):
    """Fenwick tree (1-based, ``size + 1`` entries) of a 0/1 array whose first ``ones`` leaves are 1."""
    tree = np.zeros(size + 1, np.int32)
    for j in range(1, size + 1):
        lo = j - (j & (-j))
        v = min(j, ones) - lo
        tree[j] = v if v > 0 else 0
    return tree


@njit(cache=True)
def _block_tree(n_blocks, full_blocks):
    """Fenwick tree over ``n_blocks`` blocks of 64 times whose first ``full_blocks`` hold 64 marks each."""
    tree = np.zeros(n_blocks + 1, np.int32)
    for j in range(1, n_blocks + 1):
        lo = j - (j & (-j))
        v = min(j, full_blocks) - lo
        tree[j] = 64 * v if v > 0 else 0
    return tree


@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _new_state_table(cap):
    """Hashed per-id state, stride 3: id, last compacted time (-1: empty slot), access count."""
    tab = np.zeros(3 * cap, np.int64)
    for s in range(cap):
        tab[3 * s + 1] = -1
    return tab


@njit(cache=True)
def _new_state_direct(n_ids):
    """Direct per-id state for ids ``0..n_ids-1``, stride 2: last compacted time (-1: unseen), count."""
    tab = np.zeros(2 * n_ids, np.int64)
    for s in range(n_ids):
        tab[2 * s] = -1
    return tab


@njit(cache=True)
def _grow_state_table(tab):
    cap = tab.shape[0] // 3
    ncap = 2 * cap
    new = _new_state_table(ncap)
    shift = _table_shift(ncap)
    mask = ncap - 1
    for s in range(cap):
        if tab[3 * s + 1] >= 0:
            x = tab[3 * s]
            j = _slot(x, shift)
            while new[3 * j + 1] >= 0:
                j = (j + 1) & mask
            new[3 * j] = x
            new[3 * j + 1] = tab[3 * s + 1]
            new[3 * j + 2] = tab[3 * s + 2]
    return new


@njit(cache=True)
def _compact(tab, stride, off, u, size, bits):
    """Renumber the live last-access times (``tab[off::stride]``, ``-1`` = none) to 0..u-1 in order.

    The live times are the set bits of ``bits``. Returns the new ``(bits, tree, size)``; ``size``
    doubles while ``u > size / 2`` so the next compaction is at least ``size / 2`` accesses away.
    """
    nw = size >> 6
    before = np.empty(nw, np.int64)
    r = 0
    for w in range(nw):
        before[w] = r
        r += _popcount(bits[w])
    one = np.uint64(1)
    for q in range(off, tab.shape[0], stride):
        p = tab[q]
        if p >= 0:
            w = p >> 6
            below = bits[w] & ((one << np.uint64(p & 63)) - one)
            tab[q] = before[w] + _popcount(below)
    while 2 * u > size:
        size *= 2
    nw = size >> 6
    nbits = np.zeros(nw, np.uint64)
    for w in range(u >> 6):
        nbits[w] = ~np.uint64(0)
    if u & 63:
        nbits[u >> 6] = (one << np.uint64(u & 63)) - one
    return nbits, _block_tree(nw, u >> 6), size


@njit(cache=True)
def _new_engine(first_cap, tree_size, tab):
    """Fresh engine state around the per-id state ``tab``: ``st, first, hist, bits, tree``.

    ``tree_size`` is a power of two >= 64.
    """
    st = np.zeros(ST_LEN, np.int64)
    st[ST_S] = tree_size
    first = np.empty(first_cap, np.int64)
    hist = np.zeros(first_cap + 1, np.int64)
    bits = np.zeros(tree_size >> 6, np.uint64)
    tree = np.zeros((tree_size >> 6) + 1, np.int32)
    return st, first, hist, bits, tree


@njit(cache=True)
def _grow(a, n):
    b = np.zeros(n, a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _engine_span(ids, i0, out, direct, st, tab, first, bits, tree):
    """The hot loop: process ``ids[i0:]`` until done or until maintenance is due; returns the stop index.

    Per id, ``tab`` holds its last (compacted) access time and access count: at ``2 * id`` when
    ``direct``, else in a linear-probing slot (id, last, count). Marks (one per id, at its last
    access time) live in the bitmap ``bits``; ``tree`` is a Fenwick tree of the mark counts of the
    64-time blocks *before* the current block ``t >> 6``, which joins the tree when it fills. The
    marks after time ``p`` in block ``b < t >> 6`` number ``u - prefix(b) + popcount(marks in b
    after p)``. First accesses append their global position to ``first``; each distance goes to
    ``out``. Stops before an access that needs a compaction, a bigger ``first`` or (hashed ids) a
    bigger table; nothing is reallocated here.
    """
    n = ids.shape[0]
    u = st[ST_U]
    t = st[ST_T]
    base = st[ST_N]
    size = st[ST_S]
    nb = size >> 6
    fcap = first.shape[0]
    one = np.uint64(1)
    cap = 1
    shift = 64
    if not direct:
        cap = tab.shape[0] // 3
        shift = _table_shift(cap)
    mask = cap - 1
    # accesses that can run without maintenance: each adds at most one id and one time
    stop = min(n, i0 + (size - t), i0 + (fcap - u))
    if not direct:
        stop = min(stop, i0 + (cap // 2 - u))
    sink = 0
    for i in range(i0, stop):
        if direct and i + PREFETCH < stop:
            # an independent early load of a later id's state: a software prefetch that the
            # out-of-order core overlaps with this access's dependent chain of loads
            sink += tab[2 * ids[i + PREFETCH]]
        x = ids[i]
        if direct:
            o = 2 * x
        else:
            j = _slot(x, shift)
            while True:
                if tab[3 * j + 1] < 0:
                    tab[3 * j] = x
                    break
                if tab[3 * j] == x:
                    break
                j = (j + 1) & mask
            o = 3 * j + 1
        p = tab[o]
        if p < 0:
            first[u] = base + i
            u += 1
            tab[o + 1] = 1
            d = -1
        else:
            b = p >> 6
            bit = one << np.uint64(p & 63)
            w = bits[b]
            after = _popcount(w & ~((bit << one) - one))
            bits[b] = w & ~bit
            if b == (t >> 6):
                d = after + 0
            else:
                s = 0
                j = b + 1
                while j > 0:
                    s += tree[j]
                    j -= j & (-j)
                d = u - s + after
                j = b + 1
                while j <= nb:
                    tree[j] -= 1
                    j += j & (-j)
            tab[o + 1] += 1
        out[i] = d
        b = t >> 6
        bits[b] |= one << np.uint64(t & 63)
        tab[o] = t
        t += 1
        if (t & 63) == 0:
            c = _popcount(bits[b])
            j = b + 1
            while j <= nb:
                tree[j] += c
                j += j & (-j)
    st[ST_U] = u
    st[ST_T] = t
    st[ST_SINK] = sink
    return stop


@njit(cache=True)
def _engine_run(ids, out, direct, st, tab, first, hist, bits, tree):
    """Advance the stack-distance engine over ``ids``.

    Writes each stack distance to ``out`` (``len(ids)`` entries) and adds the warm ones to ``hist``
    (``hist[d]``; counted in a separate pass, which keeps the random increments off the engine's
    chain of dependent loads), counts accesses per id in ``tab`` and appends the global position of
    each first access to ``first``. Returns the (possibly reallocated) ``tab, first, hist, bits,
    tree``; ``st`` is updated in place.
    """
    n = ids.shape[0]
    i = 0
    stride = 2 if direct else 3
    off = 0 if direct else 1
    while True:
        i = _engine_span(ids, i, out, direct, st, tab, first, bits, tree)
        if i >= n:
            break
        u = st[ST_U]
        if st[ST_T] == st[ST_S]:
            bits, tree, size = _compact(tab, stride, off, u, st[ST_S], bits)
            st[ST_S] = size
            st[ST_T] = u
        fcap = first.shape[0]
        if u == fcap:
            fcap *= 2
            first = _grow(first, fcap)
            hist = _grow(hist, fcap + 1)
        if not direct and 2 * (u + 1) > tab.shape[0] // 3:
            tab = _grow_state_table(tab)
    for i in range(n):
        d = out[i]
        if d >= 0:
            hist[d] += 1
    st[ST_N] += n
    return tab, first, hist, bits, tree


@njit(cache=True)
def _grow_state_direct(tab, n_keys):
    """The direct per-key state grown (doubling) to hold at least ``n_keys`` keys."""
    cap = tab.shape[0] // 2
    if cap >= n_keys:
        return tab
    while cap < n_keys:
        cap *= 2
    new = _new_state_direct(cap)
    new[: tab.shape[0]] = tab
    return new


@njit(cache=True, nogil=True)
def _engine_run_ids(ids, out, write_out, direct_ids, idtab, st, tab, first, hist, bits, tree):
    """The engine over arbitrary ids: densify 64K-access chunks (``idtab`` persists), then run on keys.

    Dense keys in order of first appearance give popular ids small, cache-resident keys, which is
    faster than indexing per-id state by raw id or hash slot. ``tab`` is the direct per-key state.
    Returns ``idtab, tab, first, hist, bits, tree``.
    """
    n = ids.shape[0]
    ch = 65536
    scratch = np.empty(0 if write_out else min(n, ch), np.int64)
    for c0 in range(0, n, ch):
        c1 = min(n, c0 + ch)
        keys, idtab, u = _dense_keys_run(ids[c0:c1], idtab, st[ST_U], direct_ids)
        tab = _grow_state_direct(tab, u)
        o = out[c0:c1] if write_out else scratch[: c1 - c0]
        tab, first, hist, bits, tree = _engine_run(keys, o, True, st, tab, first, hist, bits, tree)
    return idtab, tab, first, hist, bits, tree


@njit(cache=True)
def _stack_distances(keys, n_keys):
    """Exact LRU stack distances of dense keys (0..n_keys-1); kept for callers of the first cut."""
    n = keys.shape[0]
    out = np.empty(n, np.int64)
    size = 1024
    while size < 2 * n_keys:
        size *= 2
    tab = _new_state_direct(max(n_keys, 1))
    st, first, hist, bits, tree = _new_engine(max(n_keys, 1), size, tab)
    _engine_run(keys, out, True, st, tab, first, hist, bits, tree)
    return out


# ---------------------------------------------------------------------------------------------
# SHARDS
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _hash62(x, seed):
    """splitmix64 finaliser of ``x ^ seed``, top 62 bits as a non-negative int64."""
    z = np.uint64(x) ^ np.uint64(seed)
    z = z * _GOLD
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(2))


@njit(cache=True)
def _hash_ids(ids, seed):
    n = ids.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = _hash62(ids[i], seed)
    return out


@njit(cache=True)
def _shards_fixed_rate(ids, threshold, seed):
    """Stack distances of the accesses whose id hash is below ``threshold`` (spatial sampling).

    Returns ``(dist, n_sampled)``: ``dist[:n_sampled]`` the stack distances within the sampled
    sub-trace (-1 cold).
    """
    n = ids.shape[0]
    m = 0
    sel = np.empty(1024, np.int64)
    for i in range(n):
        if _hash62(ids[i], seed) < threshold:
            if m == sel.shape[0]:
                sel = _grow(sel, 2 * m)
            sel[m] = ids[i]
            m += 1
    out = np.empty(m, np.int64)
    tab = _new_state_table(1024)
    st, first, hist, bits, tree = _new_engine(1024, 1024, tab)
    _engine_run(sel[:m], out, False, st, tab, first, hist, bits, tree)
    return out, m


@njit(cache=True)
def _heap_push(hh, hk, n, h, k):
    i = n
    while i > 0:
        par = (i - 1) >> 1
        if hh[par] >= h:
            break
        hh[i] = hh[par]
        hk[i] = hk[par]
        i = par
    hh[i] = h
    hk[i] = k


@njit(cache=True)
def _heap_pop(hh, hk, n):
    """Remove the max of a heap of ``n`` entries (n >= 1); the last entry sifts down from the root."""
    n -= 1
    h = hh[n]
    k = hk[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hh[c + 1] > hh[c]:
            c += 1
        if hh[c] <= h:
            break
        hh[i] = hh[c]
        hk[i] = hk[c]
        i = c
    if n > 0:
        hh[i] = h
        hk[i] = k


@njit(cache=True)
def _table_delete(tab, x, shift, mask):
    """Delete ``x`` from a linear-probing table (backward-shift deletion); returns its key or -1."""
    j = _slot(x, shift)
    while True:
        if tab[2 * j + 1] < 0:
            return -1
        if tab[2 * j] == x:
            break
        j = (j + 1) & mask
    k = tab[2 * j + 1]
    hole = j
    j = (j + 1) & mask
    while tab[2 * j + 1] >= 0:
        home = _slot(tab[2 * j], shift)
        # move the entry at j into the hole if its home is not cyclically in (hole, j]
        if (j > hole and (home <= hole or home > j)) or (j < hole and (home <= hole and home > j)):
            tab[2 * hole] = tab[2 * j]
            tab[2 * hole + 1] = tab[2 * j + 1]
            hole = j
        j = (j + 1) & mask
    tab[2 * hole + 1] = -1
    return k


@njit(cache=True)
def _shards_fixed_size(ids, s_max, seed):
    """SHARDS_max: sample ids by hash, keeping at most ``s_max`` distinct ids (lowest hashes).

    Returns ``(dist, thrs, final_thr)``: for each sampled access its stack distance among the ids
    tracked then (-1 cold) and the threshold in force when it was processed, and the threshold after
    the whole trace (the sampling rate is ``thr / 2**62``). An evicted id loses its mark, so later
    distances skip it.
    """
    n = ids.shape[0]
    full = np.int64(1) << 62
    thr = full
    cap = 1024
    while cap < 4 * (s_max + 1):
        cap *= 2
    shift = _table_shift(cap)
    mask = cap - 1
    tab = _new_table(cap)
    # per tracked slot: last time; slots recycled through a free list
    slots = s_max + 1
    last = np.full(slots, -1, np.int64)
    free = np.arange(slots - 1, -1, -1).astype(np.int64)
    n_free = slots
    hh = np.empty(slots, np.int64)
    hk = np.empty(slots, np.int64)
    hn = 0
    size = 1024
    while size < 2 * slots:
        size *= 2
    tree = np.zeros(size + 1, np.int32)
    t = 0
    live = 0
    dist = np.empty(1024, np.int64)
    thrs = np.empty(1024, np.int64)
    m = 0
    for i in range(n):
        x = ids[i]
        h = _hash62(x, seed)
        if h >= thr:
            continue
        if t == size:
            # compact live times of tracked slots
            rank = np.zeros(size, np.int32)
            for s in range(slots):
                if last[s] >= 0:
                    rank[last[s]] = 1
            r = 0
            for p in range(size):
                f = rank[p]
                rank[p] = r
                r += f
            for s in range(slots):
                if last[s] >= 0:
                    last[s] = rank[last[s]]
            tree = _fenwick_prefix_ones(size, live)
            t = live
        if m == dist.shape[0]:
            dist = _grow(dist, 2 * m)
            thrs = _grow(thrs, 2 * m)
        j = _slot(x, shift)
        k = -1
        while True:
            kk = tab[2 * j + 1]
            if kk < 0:
                break
            if tab[2 * j] == x:
                k = kk
                break
            j = (j + 1) & mask
        if k < 0:
            n_free -= 1
            k = free[n_free]
            tab[2 * j] = x
            tab[2 * j + 1] = k
            _heap_push(hh, hk, hn, h, x)
            hn += 1
            d = -1
            live += 1
        else:
            p = last[k] + 1
            s = 0
            jj = p
            while jj > 0:
                s += tree[jj]
                jj -= jj & (-jj)
            d = live - s
            jj = p
            while jj <= size:
                tree[jj] -= 1
                jj += jj & (-jj)
        dist[m] = d
        thrs[m] = thr
        m += 1
        jj = t + 1
        while jj <= size:
            tree[jj] += 1
            jj += jj & (-jj)
        last[k] = t
        t += 1
        # evict the largest hashes until at most s_max ids are tracked
        while hn > s_max:
            top = hh[0]
            while hn > 0 and hh[0] == top:
                y = hk[0]
                _heap_pop(hh, hk, hn)
                hn -= 1
                ky = _table_delete(tab, y, shift, mask)
                p = last[ky] + 1
                jj = p
                while jj <= size:
                    tree[jj] -= 1
                    jj += jj & (-jj)
                last[ky] = -1
                free[n_free] = ky
                n_free += 1
                live -= 1
            thr = top
    return dist[:m].copy(), thrs[:m].copy(), thr


# ---------------------------------------------------------------------------------------------
# reuse-factor histograms (Meta dlrm_datasets locality statistics)
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _batch_counts(keys, n_keys, bounds):
    """Per batch ``[bounds[b], bounds[b+1])``: the access count of every distinct key in it.

    Returns ``(counts, batch_of)`` concatenated over batches (keys in first-appearance order within
    a batch).
    """
    n_b = bounds.shape[0] - 1
    cnt = np.zeros(n_keys, np.int64)
    order = np.empty(keys.shape[0], np.int64)
    counts = np.empty(keys.shape[0], np.int64)
    batch_of = np.empty(keys.shape[0], np.int64)
    m = 0
    for b in range(n_b):
        lo = bounds[b]
        hi = bounds[b + 1]
        nu = 0
        for i in range(lo, hi):
            k = keys[i]
            if cnt[k] == 0:
                order[nu] = k
                nu += 1
            cnt[k] += 1
        for q in range(nu):
            k = order[q]
            counts[m] = cnt[k]
            batch_of[m] = b
            m += 1
            cnt[k] = 0
    return counts[:m].copy(), batch_of[:m].copy()


@njit(cache=True)
def _table_from_direct(dmap):
    """A hashed id table holding the same (id, key) pairs as a direct map."""
    u = 0
    for x in range(dmap.shape[0]):
        if dmap[x] >= 0:
            u += 1
    cap = 1024
    while cap < 2 * (u + 1):
        cap *= 2
    tab = _new_table(cap)
    shift = _table_shift(cap)
    mask = cap - 1
    for x in range(dmap.shape[0]):
        k = dmap[x]
        if k >= 0:
            j = _slot(x, shift)
            while tab[2 * j + 1] >= 0:
                j = (j + 1) & mask
            tab[2 * j] = x
            tab[2 * j + 1] = k
    return tab


@njit(cache=True, nogil=True)
def _sd_histogram(sd, size):
    """``(counts[:size], cold)`` of stack distances (``-1`` cold) in one pass; ``size`` > max(sd)."""
    counts = np.zeros(size, np.int64)
    cold = 0
    for i in range(sd.shape[0]):
        d = sd[i]
        if d < 0:
            cold += 1
        else:
            counts[d] += 1
    return counts, cold
