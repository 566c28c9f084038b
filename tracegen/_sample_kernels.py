"""Compiled numba kernels of the class-stack sampler (private; see :mod:`tracegen.tracemodel`).

State of one table's sampler: live ids sit in *slots* (their last-access timestamps, compacted when
the slot array fills). A bitset of live slots plus a Fenwick tree over its 64-slot words counts
live slots (global LRU depth of a slot = live slots after it; order statistic = the slot with
exactly ``d`` live slots above it; the small tree stays in cache, unlike one over slots), and per
popularity class a three-level bitset (64-ary) of its *selectable* ids answers predecessor/successor
queries, so the class-``c`` ids just above and below a drawn global depth are found in O(log S); one of
the two is taken with probabilities that keep E[log(1 + depth)] equal to the drawn one. Each id gets an
access budget (drawn from its class's count distribution) when created; an id that used it up stays
in the LRU stack but leaves its class's bitset, so it is never reused (within-class counts stay
narrow). For drawn depths below ``couple_below`` (all in the coupled mode) the id at exactly the
drawn depth is taken when its class passes a maximal coupling to the fitted P(class | depth bin)
(see :func:`_class_stack_run`). Immediate repeats are drawn before the kernel (``_draw_accesses``).

Kernels take arrays and return arrays; the random numbers are drawn outside (vectorised) and
replayed here. ``state`` is an int64 array ``[counter, live, created]``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_ONE = np.uint64(1)
_QWIN = 256.0  # window of the running class-at-depth frequencies (halved when full)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@intrinsic
def _ctpop(typingctx, x):
    """Hardware population count of a uint64 (llvm.ctpop)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def _cttz(typingctx, x):
    """Trailing zeros of a non-zero uint64 (llvm.cttz)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.uint64(types.uint64), codegen


@intrinsic
def _ctlz(typingctx, x):
    """Leading zeros of a non-zero uint64 (llvm.ctlz)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.uint64(types.uint64), codegen


@njit(cache=True, inline="always")
def _lsb(x):
    """Index of the lowest set bit of a non-zero uint64."""
    return np.int64(_cttz(x))


@njit(cache=True, inline="always")
def _msb(x):
    """Index of the highest set bit of a non-zero uint64."""
    return 63 - np.int64(_ctlz(x))


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
    step = np.int64(1) << _msb(np.uint64(n))
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
def _fen_select_rem(tree, k):
    """``(block, rem)``: the 0-based block holding the k-th (1-based) unit and k's rank inside it."""
    n = tree.shape[0] - 1
    step = np.int64(1) << _msb(np.uint64(n))
    pos = 0
    rem = k
    while step > 0:  # branch-free descent (n is a power of two: q <= n on valid queries)
        q = pos + step
        t = tree[q] if q <= n else rem
        lt = t < rem
        pos = q if lt else pos
        rem = rem - t if lt else rem
        step >>= 1
    return pos, rem


@njit(cache=True, inline="always")
def _pop(x):
    """Number of set bits of a uint64."""
    return np.int64(_ctpop(x))


@njit(cache=True, inline="always")
def _word_select(x, r):
    """Position of the r-th (1-based, r <= popcount) set bit of a uint64, by halving."""
    pos = 0
    c = _pop(x & np.uint64(0xFFFFFFFF))
    if r > c:
        r -= c
        x = x >> np.uint64(32)
        pos += 32
    c = _pop(x & np.uint64(0xFFFF))
    if r > c:
        r -= c
        x = x >> np.uint64(16)
        pos += 16
    c = _pop(x & np.uint64(0xFF))
    if r > c:
        r -= c
        x = x >> np.uint64(8)
        pos += 8
    for _ in range(r - 1):
        x &= x - _ONE
    return pos + _lsb(x)


@njit(cache=True)
def _live_add(tree, live0, s, v):
    """Mark slot s live (v = 1) or dead (v = -1): a bit in ``live0`` and a count in the block Fenwick tree."""
    if v > 0:
        live0[s >> 6] |= _bit(s & 63)
    else:
        live0[s >> 6] &= ~_bit(s & 63)
    _fen_add(tree, s >> 6, v)


@njit(cache=True)
def _live_prefix(tree, live0, s):
    """Live slots in [0, s)."""
    w = s >> 6
    r = s & 63
    c = _fen_prefix(tree, w)
    if r > 0:
        c += _pop(live0[w] & ((_ONE << np.uint64(r)) - _ONE))
    return c


@njit(cache=True)
def _live_select(tree, live0, k):
    """0-based slot of the k-th (1-based) live slot: Fenwick over 64-slot blocks, then inside the word."""
    b, rem = _fen_select_rem(tree, k)
    return (b << 6) | _word_select(live0[b], rem)


@njit(cache=True)
def _live_select_top(tree, live0, top, d, k):
    """The slot with ``d`` live slots after it (the ``k``-th live slot, ``k = live - d``).

    ``top`` is the last live slot. Shallow depths (the common case) scan the words down from the
    top with popcounts; deep ones use the Fenwick tree.
    """
    if d < 512:
        w = top >> 6
        x = live0[w] & _upto(top & 63)
        for _ in range(16):
            c = _pop(x)
            if d < c:
                return (w << 6) | _word_select(x, c - d)
            d -= c
            w -= 1
            x = live0[w]
    return _live_select(tree, live0, k)


@njit(cache=True)
def _live_between(tree, live0, a, b):
    """Live slots in ``[a, b)`` (``a <= b``): popcounts when close, else two Fenwick prefixes."""
    wa = a >> 6
    wb = b >> 6
    if wb - wa > 8:
        return _live_prefix(tree, live0, b) - _live_prefix(tree, live0, a)
    if wa == wb:
        return _pop(live0[wa] & (((_ONE << np.uint64(b & 63)) - _ONE) & (_ALL << np.uint64(a & 63))))
    c = _pop(live0[wa] & (_ALL << np.uint64(a & 63)))
    for w in range(wa + 1, wb):
        c += _pop(live0[w])
    if (b & 63) > 0:
        c += _pop(live0[wb] & ((_ONE << np.uint64(b & 63)) - _ONE))
    return c


@njit(cache=True)
def _budget(u, lo, hi, a, slack):
    """Access budget ``floor(x * (1 + (slack - 1) * min(1, sqrt(20 / x))))``, x from ``x**-a`` on [lo, hi)."""
    if hi - lo <= 1.0:
        x = lo
    elif abs(a - 1.0) < 1e-9:
        x = lo * (hi / lo) ** u
    else:
        b = 1.0 - a
        x = (lo**b + u * (hi**b - lo**b)) ** (1.0 / b)
        if not (x >= lo):
            x = lo
        if x > hi:
            x = hi
    # the relative slack shrinks for popular ids (a hot id over-served by 20% would skew popularity)
    f = 1.0 + (slack - 1.0) * min(1.0, np.sqrt(20.0 / x))
    r = np.int64(np.floor(x * f))
    if r < 1:
        r = 1
    return r


@njit(cache=True)
def _class_stack_run(
    cls,
    cold,
    dd,
    gbin,
    upick,
    ucpl,
    ubud,
    start,
    out,
    out_cls,
    state,
    tree,
    live0,
    slots,
    b0,
    b1,
    b2,
    max_ids,
    cls_made,
    cls_cap,
    bud_lo,
    bud_hi,
    bud_a,
    slack,
    ptab,
    qcnt,
    couple_below,
):
    """Sample accesses ``start..len(cls)-1`` into ``out`` (ordinals of synthetic ids).

    Per access ``i``: ``cls[i]`` and ``cold[i]`` were drawn from the time bin's class mix and cold
    rates. A cold access creates a new id of that class on top. A warm one has a drawn stack
    distance ``dd[i]`` (common-grid bin ``gbin[i]``, -1 for an immediate repeat); when
    ``dd[i] < couple_below`` and ``gbin[i] >= 0`` the id at exactly that depth is
    taken when its class ``c'`` passes a maximal coupling of the running class-at-depth frequency
    ``Q(c'|bin)`` (``qcnt``) to the fitted ``P(c'|bin)`` (``ptab``): accepted with probability
    ``min(1, P/Q)``, otherwise the class is drawn from the residual ``max(0, P - Q)``. Then the
    selectable ids of that class just above and below the depth are found and one taken (keeping
    ``E[log(1 + depth)]``). Returns the index reached: ``len(cls)`` when done, less when the slot
    array is full and the caller must compact (:func:`_compact`) and call again from there.
    """
    n = cls.shape[0]
    n_cls = ptab.shape[1]
    n_slots = slots.shape[0]
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
                s = _live_select_top(tree, live0, counter - 1, live - k, k)
                take = False
                if dd[i] < couple_below and gbin[i] >= 0:
                    bb = gbin[i]
                    cs = slots[s, 1]
                    col = cs if slots[s, 2] > 0 else n_cls
                    if qcnt[bb, n_cls + 1] >= _QWIN:  # forget old history: Q tracks the current stack
                        for j in range(n_cls + 2):
                            qcnt[bb, j] *= 0.5
                    qcnt[bb, col] += 1.0
                    qcnt[bb, n_cls + 1] += 1.0
                    tot = qcnt[bb, n_cls + 1]
                    u = ucpl[i]
                    if col < n_cls:
                        q = qcnt[bb, cs] / tot
                        p = ptab[bb, cs]
                        if u * q < p:
                            take = True
                            u = -1.0
                        else:
                            u = (u * q - p) / (q - p)  # reuse the uniform for the residual draw
                    if not take:
                        rs = 0.0
                        for j in range(n_cls):
                            r = ptab[bb, j] - qcnt[bb, j] / tot
                            if r > 0:
                                rs += r
                        if rs > 0:
                            t = u * rs
                            acc = 0.0
                            for j in range(n_cls):
                                r = ptab[bb, j] - qcnt[bb, j] / tot
                                if r > 0:
                                    acc += r
                                    c = j
                                    if acc > t:
                                        break
                if take:
                    chosen = s
                elif (b0[c, s >> 6] >> np.uint64(s & 63)) & _ONE:  # s is a selectable id of class c
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
                        # sc is shallower (rank ks > k), pc deeper (kp < k): take one with
                        # probabilities keeping E[log(1 + depth)] = log(1 + d)
                        ks = k + _live_between(tree, live0, s + 1, sc + 1)
                        kp = k - _live_between(tree, live0, pc + 1, s + 1)
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
            rem = _budget(ubud[i], bud_lo[c], bud_hi[c], bud_a[c], slack) - 1
            _live_add(tree, live0, counter, 1)
        else:
            o = slots[chosen, 0]
            cc = slots[chosen, 1]
            rem = slots[chosen, 2] - 1
            live0[chosen >> 6] &= ~_bit(chosen & 63)
            if (chosen >> 6) != (counter >> 6):  # same 64-slot block: its count does not change
                _fen_add(tree, chosen >> 6, -1)
                _fen_add(tree, counter >> 6, 1)
            if slots[chosen, 2] > 0:
                _bs_clear(b0, b1, b2, cc, chosen)
            slots[chosen, 0] = -1
            live0[counter >> 6] |= _bit(counter & 63)
        if rem > 0:
            _bs_set(b0, b1, b2, cc, counter)
        slots[counter, 0] = o
        slots[counter, 1] = cc
        slots[counter, 2] = rem
        counter += 1
        out[i] = o
        out_cls[i] = cc
        i += 1
    state[0] = counter
    state[1] = live
    state[2] = created
    return i


@njit(cache=True)
def _compact(old, counter, tree, live0, slots, b0, b1, b2):
    """Renumber the live slots of ``old`` (in order) as ``0..live-1`` into the fresh new arrays.

    ``slots`` rows are ``(ordinal, class, budget left)``, ordinal -1 for a dead slot. ``tree``,
    ``live0``, ``b0..b2`` must be zero and ``slots[:, 0]`` -1 on entry. Returns the live count.
    """
    live = 0
    for s in range(counter):
        if old[s, 0] >= 0:
            slots[live, 0] = old[s, 0]
            c = old[s, 1]
            slots[live, 1] = c
            slots[live, 2] = old[s, 2]
            if old[s, 2] > 0:
                _bs_set(b0, b1, b2, c, live)
            live0[live >> 6] |= _bit(live & 63)
            tree[(live >> 6) + 1] += 1
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


@njit(cache=True)
def _alias_build(probs, off, size, aprob, alias):
    """Walker/Vose alias tables of several distributions concatenated in ``probs`` (group g at off[g])."""
    for g in range(off.shape[0]):
        n = size[g]
        o = off[g]
        small = np.empty(n, np.int64)
        large = np.empty(n, np.int64)
        ns = 0
        nl = 0
        scaled = np.empty(n)
        for j in range(n):
            scaled[j] = probs[o + j] * n
            if scaled[j] < 1.0:
                small[ns] = j
                ns += 1
            else:
                large[nl] = j
                nl += 1
        while ns > 0 and nl > 0:
            ns -= 1
            s = small[ns]
            nl -= 1
            lg = large[nl]
            aprob[o + s] = scaled[s]
            alias[o + s] = lg
            scaled[lg] = scaled[lg] + scaled[s] - 1.0
            if scaled[lg] < 1.0:
                small[ns] = lg
                ns += 1
            else:
                large[nl] = lg
                nl += 1
        for j in range(nl):
            aprob[o + large[j]] = 1.0
            alias[o + large[j]] = large[j]
        for j in range(ns):
            aprob[o + small[j]] = 1.0
            alias[o + small[j]] = small[j]


@njit(cache=True)
def _alias_draw(group, u, off, size, aprob, alias):
    """One draw per element: index (within its group) from the group's alias table, using one uniform."""
    out = np.empty(group.shape[0], np.int64)
    for i in range(group.shape[0]):
        g = group[i]
        x = u[i] * size[g]
        j = np.int64(x)
        if j >= size[g]:
            j = size[g] - 1
        k = off[g] + j
        out[i] = j if x - j < aprob[k] else alias[k]
    return out


@njit(cache=True)
def _draw_sd(cls, u_bin, u_in, off, size, aprob, alias, lo, width, grid, with_grid):
    """Stack distance per access: bin of the class's histogram (alias), uniform inside; and its grid
    bin (only with ``with_grid``: the coupled mode reads it; else zeros)."""
    n = cls.shape[0]
    dd = np.empty(n, np.int64)
    gb = np.zeros(n, np.int64)
    ng = grid.shape[0] - 1
    for i in range(n):
        g = cls[i]
        x = u_bin[i] * size[g]
        j = np.int64(x)
        if j >= size[g]:
            j = size[g] - 1
        k = off[g] + j
        b = off[g] + (j if x - j < aprob[k] else alias[k])
        v = lo[b] + np.int64(u_in[i] * width[b])
        if v >= lo[b] + width[b]:
            v = lo[b] + width[b] - 1
        dd[i] = v
        if not with_grid:
            continue
        a = 0
        z = ng
        while z - a > 1:  # grid[a] <= v < grid[z]
            m = (a + z) >> 1
            if grid[m] <= v:
                a = m
            else:
                z = m
        gb[i] = a
    return dd, gb


@njit(cache=True)
def _cold_schedule(cls, q, acc):
    """Cold (new-id) flags by a per-class running sum of cold probabilities (low-discrepancy).

    ``acc[c]`` carries each class's fractional credit across calls (start it uniform in [0, 1)); an
    access of class ``c`` with cold probability ``q[i]`` is cold when its class's credit crosses an
    integer. New ids of a class then appear on schedule (a class of two hot ids gets both early when
    its cold rate says so), not at Bernoulli-random times.
    """
    out = np.empty(cls.shape[0], np.bool_)
    for i in range(cls.shape[0]):
        c = cls[i]
        a = acc[c] + q[i]
        if a >= 1.0:
            out[i] = True
            a -= 1.0
        else:
            out[i] = False
        acc[c] = a
    return out


@njit(cache=True)
def _draw_accesses(
    tbin, u_cls, u_sd, u_in, m_off, m_size, m_aprob, m_alias, qcold, acc, off, size, aprob, alias, lo, width, grid,
    with_grid, rep, prev, cls, cold, dd, gb
):
    """One pass of the per-access pre-draws into ``cls`` (int32), ``cold``, ``dd`` and ``gb``.

    After an access of class ``p`` (``prev[0]``, carried across calls; ``-1`` = none yet), with
    probability ``rep[p]`` (``u_cls < rep[p]``) the access is an immediate repeat: class ``p``,
    warm, stack distance 0. Otherwise the class is drawn from alias group ``tbin`` with the rescaled
    uniform, then as :func:`_cold_schedule` with ``q = qcold[tbin, cls]`` and :func:`_draw_sd`
    (``gb`` is written only with ``with_grid``; -1 for a repeat: never coupled).
    """
    ng = grid.shape[0] - 1
    p = prev[0]
    for i in range(tbin.shape[0]):
        t = tbin[i]
        u = u_cls[i]
        if p >= 0 and rep[p] > 0.0:
            if u < rep[p]:
                cls[i] = p
                cold[i] = False
                dd[i] = 0
                gb[i] = -1  # no coupling for a repeat
                continue
            u = (u - rep[p]) / (1.0 - rep[p])
        x = u * m_size[t]
        j = np.int64(x)
        if j >= m_size[t]:
            j = m_size[t] - 1
        k = m_off[t] + j
        c = j if x - j < m_aprob[k] else m_alias[k]
        cls[i] = c
        p = c
        a = acc[c] + qcold[t, c]
        if a >= 1.0:
            cold[i] = True
            a -= 1.0
        else:
            cold[i] = False
        acc[c] = a
        x = u_sd[i] * size[c]
        j = np.int64(x)
        if j >= size[c]:
            j = size[c] - 1
        k = off[c] + j
        b = off[c] + (j if x - j < aprob[k] else alias[k])
        v = lo[b] + np.int64(u_in[i] * width[b])
        if v >= lo[b] + width[b]:
            v = lo[b] + width[b] - 1
        dd[i] = v
        if with_grid:
            a0 = 0
            z = ng
            while z - a0 > 1:  # grid[a0] <= v < grid[z]
                m = (a0 + z) >> 1
                if grid[m] <= v:
                    a0 = m
                else:
                    z = m
            gb[i] = a0
    prev[0] = p
