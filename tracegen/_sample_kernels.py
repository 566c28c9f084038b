"""Compiled numba kernels of the class-stack sampler (private; see :mod:`tracegen.tracemodel`).

State of one table's sampler: live ids sit in *slots* (their last-access timestamps, compacted when
the slot array fills). A Fenwick tree over slots counts live slots (global LRU depth of a slot =
live slots after it; order statistic = the slot with exactly ``d`` live slots above it), and per
popularity class a three-level bitset (64-ary) of its *selectable* ids answers predecessor/successor
queries, so the class-``c`` ids just above and below a drawn global depth are found in O(log S); one of
the two is taken with probabilities that keep E[log(1 + depth)] equal to the drawn one. Each id gets an
access budget (drawn from its class's count distribution, outside) when created; an id that used it up stays in the
LRU stack but leaves its class's bitset, so it is never reused (within-class counts stay narrow).

Kernels take arrays and return arrays; the random numbers are drawn outside (vectorised) and
replayed here. ``state`` is an int64 array ``[counter, live, created]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _lsb(x):
    """Index of the lowest set bit of a non-zero uint64."""
    n = 0
    if (x & np.uint64(0xFFFFFFFF)) == np.uint64(0):
        n += 32
        x = x >> np.uint64(32)
    if (x & np.uint64(0xFFFF)) == np.uint64(0):
        n += 16
        x = x >> np.uint64(16)
    if (x & np.uint64(0xFF)) == np.uint64(0):
        n += 8
        x = x >> np.uint64(8)
    if (x & np.uint64(0xF)) == np.uint64(0):
        n += 4
        x = x >> np.uint64(4)
    if (x & np.uint64(0x3)) == np.uint64(0):
        n += 2
        x = x >> np.uint64(2)
    if (x & np.uint64(0x1)) == np.uint64(0):
        n += 1
    return n


@njit(cache=True, inline="always")
def _msb(x):
    """Index of the highest set bit of a non-zero uint64."""
    n = 0
    if (x >> np.uint64(32)) != np.uint64(0):
        n += 32
        x = x >> np.uint64(32)
    if (x >> np.uint64(16)) != np.uint64(0):
        n += 16
        x = x >> np.uint64(16)
    if (x >> np.uint64(8)) != np.uint64(0):
        n += 8
        x = x >> np.uint64(8)
    if (x >> np.uint64(4)) != np.uint64(0):
        n += 4
        x = x >> np.uint64(4)
    if (x >> np.uint64(2)) != np.uint64(0):
        n += 2
        x = x >> np.uint64(2)
    if (x >> np.uint64(1)) != np.uint64(0):
        n += 1
    return n


@njit(cache=True, inline="always")
def _above(p):
    """Mask of bits strictly above position p (0..63)."""
    if p >= 63:
        return np.uint64(0)
    return _ALL << np.uint64(p + 1)


@njit(cache=True, inline="always")
def _upto(p):
    """Mask of bits at positions <= p (0..63)."""
    if p >= 63:
        return _ALL
    return (_ONE << np.uint64(p + 1)) - _ONE


@njit(cache=True, inline="always")
def _bit(p):
    return _ONE << np.uint64(p)


@njit(cache=True)
def _bs_set(b0, b1, b2, c, s):
    b0[c, s >> 6] |= _bit(s & 63)
    b1[c, s >> 12] |= _bit((s >> 6) & 63)
    b2[c, s >> 18] |= _bit((s >> 12) & 63)


@njit(cache=True)
def _bs_clear(b0, b1, b2, c, s):
    w = s >> 6
    b0[c, w] &= ~_bit(s & 63)
    if b0[c, w] == np.uint64(0):
        w1 = s >> 12
        b1[c, w1] &= ~_bit(w & 63)
        if b1[c, w1] == np.uint64(0):
            b2[c, s >> 18] &= ~_bit(w1 & 63)


@njit(cache=True)
def _bs_succ(b0, b1, b2, c, s):
    """Smallest set slot >= s in class c, or -1."""
    w0 = s >> 6
    m = b0[c, w0] & (_ALL << np.uint64(s & 63))
    if m != np.uint64(0):
        return (w0 << 6) | _lsb(m)
    w1 = s >> 12
    m = b1[c, w1] & _above(w0 & 63)
    if m != np.uint64(0):
        w0 = (w1 << 6) | _lsb(m)
        return (w0 << 6) | _lsb(b0[c, w0])
    w2 = s >> 18
    m = b2[c, w2] & _above(w1 & 63)
    while m == np.uint64(0):
        w2 += 1
        if w2 >= b2.shape[1]:
            return -1
        m = b2[c, w2]
    w1 = (w2 << 6) | _lsb(m)
    w0 = (w1 << 6) | _lsb(b1[c, w1])
    return (w0 << 6) | _lsb(b0[c, w0])


@njit(cache=True)
def _bs_pred(b0, b1, b2, c, s):
    """Largest set slot <= s in class c, or -1."""
    w0 = s >> 6
    m = b0[c, w0] & _upto(s & 63)
    if m != np.uint64(0):
        return (w0 << 6) | _msb(m)
    w1 = s >> 12
    if (w0 & 63) > 0:
        m = b1[c, w1] & _upto((w0 & 63) - 1)
        if m != np.uint64(0):
            w0 = (w1 << 6) | _msb(m)
            return (w0 << 6) | _msb(b0[c, w0])
    w2 = s >> 18
    m = np.uint64(0)
    if (w1 & 63) > 0:
        m = b2[c, w2] & _upto((w1 & 63) - 1)
    while m == np.uint64(0):
        w2 -= 1
        if w2 < 0:
            return -1
        m = b2[c, w2]
    w1 = (w2 << 6) | _msb(m)
    w0 = (w1 << 6) | _msb(b1[c, w1])
    return (w0 << 6) | _msb(b0[c, w0])


@njit(cache=True)
def _fen_add(tree, i, v):
    n = tree.shape[0] - 1
    j = i + 1
    while j <= n:
        tree[j] += v
        j += j & (-j)


@njit(cache=True)
def _fen_prefix(tree, i):
    """Number of live slots in [0, i)."""
    s = 0
    j = i
    while j > 0:
        s += tree[j]
        j -= j & (-j)
    return s


@njit(cache=True)
def _fen_select(tree, k):
    """0-based slot of the k-th live slot (1-based k)."""
    n = tree.shape[0] - 1
    step = 1
    while step * 2 <= n:
        step *= 2
    pos = 0
    rem = k
    while step > 0:
        q = pos + step
        if q <= n and tree[q] < rem:
            pos = q
            rem -= tree[q]
        step >>= 1
    return pos


@njit(cache=True)
def _class_stack_run(
    cls,
    cold,
    dd,
    upick,
    bud,
    start,
    out,
    state,
    tree,
    slot_ord,
    slot_cls,
    slot_rem,
    b0,
    b1,
    b2,
    max_ids,
    cls_made,
    cls_cap,
):
    """Sample accesses ``start..len(cls)-1`` into ``out`` (ordinals of synthetic ids).

    Returns the index reached: ``len(cls)`` when done, less when the slot array is full and
    the caller must compact (see :func:`_compact`) and call again from there.
    """
    n = cls.shape[0]
    n_slots = slot_ord.shape[0]
    counter = state[0]
    live = state[1]
    created = state[2]
    i = start
    while i < n:
        if counter >= n_slots:
            break
        c = cls[i]
        chosen = -1
        new = cold[i] and created < max_ids and cls_made[c] < cls_cap[c]
        if not new:
            if live == 0:
                new = True
            else:
                k = live - dd[i]
                if k < 1:
                    k = 1
                s = _fen_select(tree, k)
                if slot_cls[s] == c and slot_rem[s] > 0:
                    chosen = s
                else:
                    sc = _bs_succ(b0, b1, b2, c, s)
                    pc = _bs_pred(b0, b1, b2, c, s)
                    if sc < 0 and pc < 0:
                        if created < max_ids:
                            new = True
                        else:
                            chosen = s
                    elif sc < 0:
                        chosen = pc
                    elif pc < 0:
                        chosen = sc
                    else:
                        # sc is shallower (rank ks > k), pc deeper (kp < k): pick one with probabilities
                        # that keep the expected depth equal to the drawn one
                        ks = _fen_prefix(tree, sc + 1)
                        kp = _fen_prefix(tree, pc + 1)
                        # log-depth interpolation: E[log(1 + depth)] = log(1 + d)
                        la = np.log1p(live - ks)
                        lb = np.log1p(live - kp)
                        ld = np.log1p(live - k)
                        if upick[i] * (lb - la) < lb - ld:
                            chosen = sc
                        else:
                            chosen = pc
        if new:
            o = created
            created += 1
            cls_made[c] += 1
            live += 1
            cc = c
            rem = bud[i] - 1
        else:
            o = slot_ord[chosen]
            cc = slot_cls[chosen]
            rem = slot_rem[chosen] - 1
            _fen_add(tree, chosen, -1)
            if slot_rem[chosen] > 0:
                _bs_clear(b0, b1, b2, cc, chosen)
            slot_ord[chosen] = -1
        _fen_add(tree, counter, 1)
        if rem > 0:
            _bs_set(b0, b1, b2, cc, counter)
        slot_ord[counter] = o
        slot_cls[counter] = cc
        slot_rem[counter] = rem
        counter += 1
        out[i] = o
        i += 1
    state[0] = counter
    state[1] = live
    state[2] = created
    return i


@njit(cache=True)
def _compact(old_ord, old_cls, old_rem, counter, tree, slot_ord, slot_cls, slot_rem, b0, b1, b2):
    """Renumber the live slots of ``old_*`` (in order) as ``0..live-1`` into the fresh new arrays.

    ``tree``, ``b0..b2`` must be zero and ``slot_ord`` -1 on entry. Returns the live count.
    """
    live = 0
    for s in range(counter):
        if old_ord[s] >= 0:
            slot_ord[live] = old_ord[s]
            c = old_cls[s]
            slot_cls[live] = c
            slot_rem[live] = old_rem[s]
            if old_rem[s] > 0:
                _bs_set(b0, b1, b2, c, live)
            tree[live + 1] = 1
            live += 1
    n = tree.shape[0] - 1
    for i in range(1, n + 1):
        j = i + (i & (-i))
        if j <= n:
            tree[j] += tree[i]
    return live


@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _feistel(x, m, half_bits, keys):
    """Keyed bijection of [0, m) by a balanced Feistel network with cycle walking."""
    mask = (_ONE << np.uint64(half_bits)) - _ONE
    hb = np.uint64(half_bits)
    y = np.uint64(x)
    um = np.uint64(m)
    while True:
        left = y >> hb
        right = y & mask
        for r in range(keys.shape[0]):
            f = _mix64(right ^ keys[r]) & mask
            left, right = right, left ^ f
        y = (left << hb) | right
        if y < um:
            return np.int64(y)


@njit(cache=True)
def _permute(ordinals, m, half_bits, keys):
    out = np.empty(ordinals.shape[0], np.int64)
    for i in range(ordinals.shape[0]):
        out[i] = _feistel(ordinals[i], m, half_bits, keys)
    return out


@njit(cache=True)
def _binned_draw(bin_idx, u, lo, width):
    """``lo[b] + floor(u * width[b])`` per draw (uniform integer inside the chosen bin)."""
    out = np.empty(bin_idx.shape[0], np.int64)
    for i in range(bin_idx.shape[0]):
        b = bin_idx[i]
        v = lo[b] + np.int64(u[i] * width[b])
        if v >= lo[b] + width[b]:
            v = lo[b] + width[b] - 1
        out[i] = v
    return out
