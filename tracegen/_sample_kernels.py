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

The sampler runs the fast pair :func:`_predraw` (branch-free pre-draws from one stream of doubles,
two per access, five when coupled) and :func:`_stack_run` (the stack kernel on a Fenwick tree of
512-slot blocks that stays in L1, the slot row prefetched as soon as the depth is known, the class
at a coupled depth read from a byte per slot, the coupled residual class by rejection from an alias
table before any scan (its cells and their classes' P in one array, :func:`_alias_cells`),
synthetic ids permuted once per created id; each access's select computed during the access
before it, on the state before that one, then fixed up). Code generation: the
kernels' arrays are borrowed (:func:`_borrow`: no atomic reference counting around inlined helpers),
indices are unsigned where known non-negative (:func:`_u`: no wraparound code) and unpredictable
choices stay arithmetic (:func:`_opaque`). :func:`_draw_accesses` and
:func:`_class_stack_run` are their references: ``tests/test_sample_kernels.py`` checks the fast pair
against them (and :func:`_class_stack_run` is checked against ``tests/naive.py``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
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


@intrinsic
def _prefetch(typingctx, arr, i):
    """Prefetch element ``i`` of a C-contiguous array's flat data (llvm.prefetch, read, high locality)."""
    if not isinstance(arr, types.Array) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=fnty)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, i), codegen


@intrinsic
def _opaque(typingctx, x):
    """``x`` unchanged, through an empty inline-asm barrier: the compiler cannot see it is 0 or 1, so
    ``j + _opaque(flag) * (al - j)`` stays arithmetic (an unpredictable branch costs far more)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(args[0].type, [args[0].type])
        return builder.asm(fnty, "", "=r,0", [args[0]], side_effect=False)

    return x(x), codegen


@njit(cache=True, inline="always")
def _u(i):
    """An index as uint64: numba then skips the negative-index wraparound (two instructions per access);
    only for indices known to be >= 0."""
    return np.uint64(i)


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


@njit(cache=True, inline="always")
def _bs_set(b0, b1, b2, c, s):
    b0[_u(c), _u(s >> 6)] |= _bit(s & 63)
    b1[_u(c), _u(s >> 12)] |= _bit((s >> 6) & 63)
    b2[_u(c), _u(s >> 18)] |= _bit((s >> 12) & 63)


@njit(cache=True, inline="always")
def _bs_clear(b0, b1, b2, c, s):
    w = s >> 6
    b0[_u(c), _u(w)] &= ~_bit(s & 63)
    if b0[_u(c), _u(w)] == np.uint64(0):
        w1 = s >> 12
        b1[_u(c), _u(w1)] &= ~_bit(w & 63)
        if b1[_u(c), _u(w1)] == np.uint64(0):
            b2[_u(c), _u(s >> 18)] &= ~_bit(w1 & 63)


@njit(cache=True, inline="always")
def _bs_succ(b0, b1, b2, c, s):
    """Smallest set slot >= s in class c, or -1 (reads s's word only when ``b1`` says it is not empty)."""
    w0 = s >> 6
    w1 = s >> 12
    m1 = b1[_u(c), _u(w1)]
    if (m1 >> np.uint64(w0 & 63)) & _ONE:
        m = b0[_u(c), _u(w0)] & (_ALL << np.uint64(s & 63))
        if m != np.uint64(0):
            return (w0 << 6) | _lsb(m)
    m = m1 & _above(w0 & 63)
    if m != np.uint64(0):
        w0 = (w1 << 6) | _lsb(m)
        return (w0 << 6) | _lsb(b0[_u(c), _u(w0)])
    w2 = s >> 18
    m = b2[_u(c), _u(w2)] & _above(w1 & 63)
    while m == np.uint64(0):
        w2 += 1
        if w2 >= b2.shape[1]:
            return -1
        m = b2[_u(c), _u(w2)]
    w1 = (w2 << 6) | _lsb(m)
    w0 = (w1 << 6) | _lsb(b1[_u(c), _u(w1)])
    return (w0 << 6) | _lsb(b0[_u(c), _u(w0)])


@njit(cache=True, inline="always")
def _bs_pred(b0, b1, b2, c, s):
    """Largest set slot <= s in class c, or -1 (reads s's word only when ``b1`` says it is not empty)."""
    w0 = s >> 6
    w1 = s >> 12
    m1 = b1[_u(c), _u(w1)]
    if (m1 >> np.uint64(w0 & 63)) & _ONE:
        m = b0[_u(c), _u(w0)] & _upto(s & 63)
        if m != np.uint64(0):
            return (w0 << 6) | _msb(m)
    if (w0 & 63) > 0:
        m = m1 & _upto((w0 & 63) - 1)
        if m != np.uint64(0):
            w0 = (w1 << 6) | _msb(m)
            return (w0 << 6) | _msb(b0[_u(c), _u(w0)])
    w2 = s >> 18
    m = np.uint64(0)
    if (w1 & 63) > 0:
        m = b2[_u(c), _u(w2)] & _upto((w1 & 63) - 1)
    while m == np.uint64(0):
        w2 -= 1
        if w2 < 0:
            return -1
        m = b2[_u(c), _u(w2)]
    w1 = (w2 << 6) | _msb(m)
    w0 = (w1 << 6) | _msb(b1[_u(c), _u(w1)])
    return (w0 << 6) | _msb(b0[_u(c), _u(w0)])


@njit(cache=True, inline="always")
def _fen_add(tree, i, v):
    n = tree.shape[0] - 1
    j = i + 1
    while j <= n:
        tree[_u(j)] += v
        j += j & (-j)


@njit(cache=True, inline="always")
def _fen_move(tree, i, j):
    """``_fen_add(tree, i, -1)`` then ``_fen_add(tree, j, 1)`` (``i <= j``), skipping the nodes both touch."""
    n = tree.shape[0] - 1
    x = i + 1
    y = j + 1
    while x != y:  # a node on both paths stays as it is; both paths end above n
        if x < y:
            if x > n:
                break
            tree[_u(x)] -= 1
            x += x & (-x)
        else:
            if y > n:
                break
            tree[_u(y)] += 1
            y += y & (-y)


@njit(cache=True, inline="always")
def _fen_prefix(tree, i):
    """Number of live slots in [0, i)."""
    s = 0
    j = i
    while j > 0:
        s += tree[_u(j)]
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


@njit(cache=True, inline="always")
def _fen_select_rem(tree, k):
    """``(block, rem)``: the 0-based block holding the k-th (1-based) unit and k's rank inside it."""
    n = tree.shape[0] - 1
    step = np.int64(1) << _msb(np.uint64(n))
    pos = 0
    rem = k
    while step > 0:  # branch-free descent (n is a power of two: q <= n on valid queries)
        q = pos + step
        t = tree[_u(q)] if q <= n else rem
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
    """Position of the r-th (1-based, r <= popcount) set bit of a uint64, by six halvings written
    as arithmetic (no data-dependent branch to mispredict)."""
    pos = np.int64(0)
    for h in (32, 16, 8, 4, 2, 1):
        c = _pop(x & np.uint64((1 << h) - 1))
        gt = np.int64(r > c)
        r -= gt * c
        x = x >> np.uint64(gt * h)
        pos += gt * h
    return pos


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


@njit(cache=True, inline="always")
def _scan_down(live0, top, d):
    """The live slot ``d`` below the live slot ``top`` (d < 512), by popcounts over at most 16 words
    going down from ``top``; -1 when it is deeper than those words."""
    w = top >> 6
    x = live0[_u(w)] & _upto(top & 63)
    for _ in range(16):
        c = _pop(x)
        if d < c:
            return (w << 6) | _word_select(x, c - d)
        d -= c
        w -= 1
        x = live0[_u(w)]
    return -1


@njit(cache=True)
def _live_select_top(tree, live0, top, d, k):
    """The slot with ``d`` live slots after it (the ``k``-th live slot, ``k = live - d``).

    ``top`` is the last live slot. Shallow depths (the common case) scan the words down from the
    top with popcounts; deep ones use the Fenwick tree.
    """
    if d < 512:
        s = _scan_down(live0, top, d)
        if s >= 0:
            return s
    return _live_select(tree, live0, k)


@njit(cache=True, inline="always")
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


_PHI = 0.6180339887498949  # the golden ratio's fractional part (see _stratified)


@njit(cache=True)
def _stratified(off, k):
    """The budget draw of a class's ``k``-th created id: ``frac(off + k * phi)``, ``off`` a per-class uniform.

    The first ``N`` values of this (Kronecker) sequence are spread evenly over [0, 1) for every ``N`` (no gap
    wider than about ``2.6 / N``), so the ids of a class get budgets spread over its whole count law in every
    sample; independent uniforms left a wide class's few hot ids with very different budgets from seed to seed
    (a DP model's top class of 143 ids over counts 305-27,554: twins' LRU MRC error 0.004-0.023 by seed)."""
    x = off + k * _PHI
    return x - np.floor(x)


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
    bud_off,
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
            rem = _budget(_stratified(bud_off[c], cls_made[c]), bud_lo[c], bud_hi[c], bud_a[c], slack) - 1
            cls_made[c] += 1
            live += 1
            cc = c
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


@njit(cache=True, nogil=True)
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


_U27 = 1.0 / 134217728.0  # 2**-27
_U26 = 1.0 / 67108864.0  # 2**-26
_M26 = np.int64((1 << 26) - 1)


@njit(cache=True, inline="always")
def _split53(d):
    """Two uniforms in [0, 1) from the 53 random bits of one ``Generator.random()`` double: 27 and 26 bits."""
    k = np.int64(d * 9007199254740992.0)  # exact: d = k * 2**-53
    return np.float64(k >> 26) * _U27, np.float64(k & _M26) * _U26


@njit(cache=True)
def _edge_lut(grid, last):
    """Per cell of a value ``v`` (``v`` itself below 128, else the top 8 bits of ``v``: 128 cells per
    octave), the last edge index ``<= last`` whose edge is <= the cell's lowest value."""
    top = max(np.int64(grid[grid.shape[0] - 1]), np.int64(128))
    n_oct = _msb(np.uint64(top)) - 6
    lut = np.empty(128 + 128 * n_oct, np.int64)
    a = 0
    for key in range(lut.shape[0]):
        if key < 128:
            v0 = np.int64(key)
        else:
            m = 7 + (key - 128) // 128
            v0 = np.int64(128 + (key & 127)) << (m - 7)
        while a < last and grid[a + 1] <= v0:
            a += 1
        lut[key] = a
    return lut


@njit(cache=True)
def _grid_lut(grid):
    """Bin lookup of the depth grid (``grid[a] <= v < grid[a + 1]``, clamped to the last bin).

    A grid of up to ~80 bins per octave (8 here) has at most one edge inside a cell of
    :func:`_edge_lut`, so :func:`_grid_bin` needs one comparison after the lookup.
    """
    return _edge_lut(grid, grid.shape[0] - 2).astype(np.int32)


@njit(cache=True, inline="always")
def _grid_bin(grid, lut, v):
    """The grid bin of ``v >= 0`` (as the binary search in :func:`_draw_sd`) by :func:`_grid_lut`."""
    ng = grid.shape[0] - 1
    if v < 128:
        key = v
    else:
        m = _msb(np.uint64(v))
        key = 128 + (m - 7) * 128 + ((v >> (m - 7)) & 127)
    if key >= lut.shape[0]:
        return ng - 1
    a = np.int64(lut[_u(key)])
    if a + 1 < ng and grid[_u(a + 1)] <= v:
        a += 1
    return a


@njit(cache=True, nogil=True)
def _predraw(ur, n_u, tbin, nt, prev, acc, m_off, m_size, m_aprob, m_alias, qcold, rep1, off, size, aprob, alias, lo,
             width, cls, dd, flags):
    """The per-access pre-draws of :func:`_draw_accesses` from one stream of doubles, branch-free.

    Access ``i`` reads ``ur[n_u * i]`` (split into ``u_cls, u_sd``) and the first half of
    ``ur[n_u * i + 1]`` (``u_in``; see :func:`_split53`). An immediate repeat of the previous class
    ``p`` is ``u_in < rep[p]`` (``rep1`` is ``[0, rep...]``, indexed by ``p + 1``); otherwise the
    class comes from the time bin's alias table with ``u_cls``, the cold flag from the class's
    credit (as :func:`_cold_schedule`), the stack distance from the class's alias table with
    ``u_sd`` and uniformly inside the bin with ``u_in`` rescaled to ``(u_in - rep[p]) / (1 - rep[p])``.
    Writes ``cls`` (int32), ``dd`` and ``flags`` (bit 0 cold, bit 1 immediate repeat); ``prev``
    and ``acc`` carry across calls, so blocks of any size give one stream.
    """
    p = prev[_u(0)]
    top = nt - 1
    for i in range(tbin.shape[0]):
        t = min(tbin[_u(i)], top)
        u, u_sd = _split53(ur[_u(n_u * i)])
        u_in, _ = _split53(ur[_u(n_u * i + 1)])
        rp = rep1[_u(p + 1)]
        isrep = u_in < rp  # u_in decides the repeat, so the class draw does not wait on the previous one
        u_in = (u_in - rp) / (1.0 - rp)  # exact when rp = 0
        x = u * m_size[_u(t)]
        j = min(np.int64(x), m_size[_u(t)] - 1)
        k = m_off[_u(t)] + j
        ap = m_aprob[_u(k)]
        al = m_alias[_u(k)]
        c = j + _opaque(np.int64(x - j >= ap)) * (al - j)  # arithmetic, not a branch (unpredictable)

        c = p if isrep else c
        q = 0.0 if isrep else qcold[_u(t), _u(c)]
        a = acc[_u(c)] + q  # a repeat leaves acc unchanged (acc < 1)
        cold = a >= 1.0
        acc[_u(c)] = a - 1.0 if cold else a
        x = u_sd * size[_u(c)]
        j = min(np.int64(x), size[_u(c)] - 1)
        k = off[_u(c)] + j
        ap = aprob[_u(k)]
        al = alias[_u(k)]
        b = off[_u(c)] + j + _opaque(np.int64(x - j >= ap)) * (al - j)

        lb = lo[_u(b)]
        wb = width[_u(b)]
        d = min(lb + np.int64(u_in * wb), lb + wb - 1)
        cls[_u(i)] = c
        dd[_u(i)] = 0 if isrep else d
        flags[_u(i)] = np.int8(cold) | (np.int8(isrep) << 1)
        p = c
    prev[_u(0)] = p


@njit(cache=True, nogil=True)
def _tree9_build(live0, tree9):
    """Fenwick tree (``tree9``, zero on entry, ``len(live0) // 8 + 1``) of live slots per 512-slot block
    (one cache line of ``live0``): small enough to stay in L1, unlike one per 64-slot word."""
    n = tree9.shape[0] - 1
    for w in range(live0.shape[0]):
        tree9[(w >> 3) + 1] += _pop(live0[w])
    for i in range(1, n + 1):
        j = i + (i & (-i))
        if j <= n:
            tree9[j] += tree9[i]


@njit(cache=True, inline="always")
def _l9_select(tree9, live0, k):
    """0-based slot of the k-th (1-based) live slot: Fenwick over 512-slot blocks, then its 8 words."""
    b, rem = _fen_select_rem(tree9, k)
    w = b << 3
    # the word holding it: how many of the block's prefix counts stay below rem (arithmetic, no branch)
    acc = np.int64(0)
    off = np.int64(0)
    below = np.int64(0)
    for t in range(7):
        acc += _pop(live0[_u(w + t)])
        lt = np.int64(acc < rem)
        off += lt
        below = acc if lt else below
    return ((w + off) << 6) | _word_select(live0[_u(w + off)], rem - below)


@njit(cache=True, inline="always")
def _l9_select_top(tree9, live0, top, d, k):
    """As :func:`_live_select_top` on the 512-slot tree."""
    if d < 512:
        s = _scan_down(live0, top, d)
        if s >= 0:
            return s
    return _l9_select(tree9, live0, k)


@njit(cache=True, inline="always")
def _l9_prefix(tree9, live0, s):
    """Live slots in [0, s) on the 512-slot tree."""
    w = s >> 6
    c = _fen_prefix(tree9, w >> 3)
    for v in range((w >> 3) << 3, w):
        c += _pop(live0[_u(v)])
    r = s & 63
    if r > 0:
        c += _pop(live0[_u(w)] & ((_ONE << np.uint64(r)) - _ONE))
    return c


@njit(cache=True, inline="always")
def _pop_between(live0, a, b):
    """Live slots in ``[a, b)`` (``a <= b``) by popcounts of the words between (callers keep them close)."""
    wa = a >> 6
    wb = b >> 6
    if wa == wb:
        return _pop(live0[_u(wa)] & (((_ONE << np.uint64(b & 63)) - _ONE) & (_ALL << np.uint64(a & 63))))
    c = _pop(live0[_u(wa)] & (_ALL << np.uint64(a & 63)))
    for w in range(wa + 1, wb):
        c += _pop(live0[_u(w)])
    if (b & 63) > 0:
        c += _pop(live0[_u(wb)] & ((_ONE << np.uint64(b & 63)) - _ONE))
    return c


@njit(cache=True, inline="always")
def _l9_rank(tree9, live0, s, k, x):
    """Live slots in ``[0, x]`` given that slot ``s`` is the ``k``-th live one: popcounts between
    ``s`` and ``x`` when within 8 words, else one Fenwick prefix on the 512-slot tree."""
    if x >= s:
        if (x >> 6) - (s >> 6) > 8:
            return _l9_prefix(tree9, live0, x + 1)
        return k + _pop_between(live0, s + 1, x + 1)
    if (s >> 6) - (x >> 6) > 8:
        return _l9_prefix(tree9, live0, x + 1)
    return k - _pop_between(live0, x + 1, s + 1)


@njit(cache=True, inline="always")
def _residual_pick(ptab, qcnt, bb, inv, u, rbuf, c):
    """The class drawn from the residual ``max(0, P - Q)`` of row ``bb`` with the uniform ``u``
    (``c`` when the residual is empty), as in :func:`_class_stack_run`; sums in groups of four
    (short dependency chains), then a cumulative scan over the group holding the draw."""
    n_cls = ptab.shape[1]
    rs0 = 0.0
    rs1 = 0.0
    rs2 = 0.0
    rs3 = 0.0
    n4 = n_cls & ~3
    for j in range(0, n4, 4):
        r0 = max(ptab[_u(bb), _u(j)] - qcnt[_u(bb), _u(j)] * inv, 0.0)
        r1 = max(ptab[_u(bb), _u(j + 1)] - qcnt[_u(bb), _u(j + 1)] * inv, 0.0)
        r2 = max(ptab[_u(bb), _u(j + 2)] - qcnt[_u(bb), _u(j + 2)] * inv, 0.0)
        r3 = max(ptab[_u(bb), _u(j + 3)] - qcnt[_u(bb), _u(j + 3)] * inv, 0.0)
        rbuf[_u(j)] = r0
        rbuf[_u(j + 1)] = r1
        rbuf[_u(j + 2)] = r2
        rbuf[_u(j + 3)] = r3
        rs0 += r0
        rs1 += r1
        rs2 += r2
        rs3 += r3
    for j in range(n4, n_cls):
        r0 = max(ptab[_u(bb), _u(j)] - qcnt[_u(bb), _u(j)] * inv, 0.0)
        rbuf[_u(j)] = r0
        rs0 += r0
    rs = (rs0 + rs1) + (rs2 + rs3)
    if rs <= 0:
        return c
    tt = u * rs
    sacc = 0.0
    j = 0
    while j + 4 <= n_cls:  # skip whole groups while the running sum stays <= tt
        g = (rbuf[_u(j)] + rbuf[_u(j + 1)]) + (rbuf[_u(j + 2)] + rbuf[_u(j + 3)])
        if sacc + g > tt:
            break
        sacc += g
        j += 4
    last = c
    while j < n_cls:
        r = rbuf[_u(j)]
        if r > 0:
            sacc += r
            last = j
            if sacc > tt:
                return j
        j += 1
    if last == c:  # rounding left the sum short of tt: the last class with a positive residual
        for j in range(n_cls - 1, -1, -1):
            if rbuf[_u(j)] > 0:
                return j
    return last


@njit(cache=True, inline="always")
def _alias_row(p_aprob, p_alias, bb, n_cls, ua):
    """A class ``j ~ P(. | bin bb)`` from the alias row ``bb`` (at ``bb * n_cls``) and the uniform ``ua``."""
    x = ua * n_cls
    j = min(np.int64(x), n_cls - 1)
    r0 = bb * n_cls + j
    ap = p_aprob[_u(r0)]
    al = p_alias[_u(r0)]
    return j + _opaque(np.int64(x - j >= ap)) * (al - j)


@njit(cache=True)
def _alias_cells(p_aprob, p_alias, ptab, fill):
    """The alias rows of ``P(. | bin)`` and the ``P`` of both outcomes of each cell, in one array
    ``(cells, 4)``: ``[aprob, alias, P(j), P(alias)]`` (one cache line per proposal, not three)."""
    n_cls = ptab.shape[1]
    n = p_aprob.shape[0] if fill else 0
    apt = np.empty((max(n, 1), 4))
    for r in range(n):
        bb = r // n_cls
        al = p_alias[r]
        apt[r, 0] = p_aprob[r]
        apt[r, 1] = np.float64(al)
        apt[r, 2] = ptab[bb, r - bb * n_cls]
        apt[r, 3] = ptab[bb, al]
    return apt


@njit(cache=True, inline="always")
def _alias_cell(apt, bb, n_cls, ua):
    """:func:`_alias_row` on :func:`_alias_cells`, with the class's ``P``: ``(j, P(j | bin bb))``."""
    x = ua * n_cls
    j = min(np.int64(x), n_cls - 1)
    r0 = _u(bb * n_cls + j)
    t = _opaque(np.int64(x - j >= apt[r0, _u(0)]))
    al = np.int64(apt[r0, _u(1)])
    pa = apt[r0, _u(2)]
    pb = apt[r0, _u(3)]
    return j + t * (al - j), pb if t else pa


@njit(cache=True, inline="always")
def _propose(
ptab, p_aprob, p_alias, qcnt, bb, inv, ua, ub):
    """One rejection round for the residual ``max(0, P - Q)`` of row ``bb``: ``j ~ P`` (alias row
    ``bb``, uniform ``ua``), accepted when ``ub < max(0, P_j - Q_j) / P_j``; -1 when rejected."""
    jj = _alias_row(p_aprob, p_alias, bb, ptab.shape[1], ua)
    pj = ptab[bb, jj]
    return jj if ub * pj < pj - qcnt[bb, jj] * inv else -1


@njit(cache=True, inline="always")
def _residual_draw(ptab, p_aprob, p_alias, qcnt, bb, inv, u, ua, ub, ua2, ub2, rbuf, c):
    """A class from the residual ``max(0, P - Q)`` of row ``bb``: two rejection rounds from ``P``
    (:func:`_propose`, uniforms ``ua, ub`` then ``ua2, ub2``), then the exact scan
    (:func:`_residual_pick`) with ``u``. Either way the class follows the residual (rejection
    sampling), and the scan, whose cost grows with the classes, runs only after two rejections.
    :func:`_stack_run` applies this rule inline, with the proposals drawn before its select."""
    j = _propose(ptab, p_aprob, p_alias, qcnt, bb, inv, ua, ub)
    if j >= 0:
        return j
    j = _propose(ptab, p_aprob, p_alias, qcnt, bb, inv, ua2, ub2)
    if j >= 0:
        return j
    return _residual_pick(ptab, qcnt, bb, inv, u, rbuf, c)


@intrinsic
def _borrow(typingctx, arr):
    """``arr`` without its memory-manager reference (a null meminfo), so that numba's reference
    counting of it, atomic increments and decrements around every inlined helper that takes it,
    compiles away. Only for arrays that outlive the kernel call (its arguments)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return arr(arr), codegen


@njit(cache=True, inline="always")
def _next_live(live0, x):
    """The smallest live slot above ``x`` (one must exist)."""
    w = x >> 6
    m = live0[_u(w)] & _above(x & 63)
    while m == np.uint64(0):
        w += 1
        m = live0[_u(w)]
    return (w << 6) | _lsb(m)


@njit(cache=True, nogil=True)
def _stack_run(
    ur,
    n_u,
    cls,
    dd,
    flags,
    start,
    out,
    out_cls,
    state,
    tree,
    live0,
    slots,
    scls,
    b0,
    b1,
    b2,
    max_ids,
    cls_made,
    cls_cap,
    bud_lo,
    bud_hi,
    bud_a,
    bud_off,
    slack,
    grid,
    glut,
    ptab,
    p_aprob,
    p_alias,
    qcnt,
    couple_below,
    rbuf,
    keys,
    half_bits,
):
    """:func:`_class_stack_run` on the pre-draws of :func:`_predraw`, from access ``start``.

    ``tree`` counts live slots per 512-slot block (:func:`_tree9_build`); ``scls[s]`` is the class
    of the id in slot ``s``, or ``n_cls`` once its budget is spent (a small array: the coupled pick
    reads it at random depths). Uniforms: ``u_pick`` is the second half of ``ur[n_u * i + 1]``
    (a new id's budget draw is :func:`_stratified`, from ``bud_off`` and the class's count of created
    ids); a coupled access (``n_u >= 3``) finds its grid bin (:func:`_grid_bin`) and reads
    the coupling draw ``ur[n_u * i + 2]``. With ``n_u = 5`` the residual class is first proposed from
    ``P(. | bin)`` (alias tables ``p_aprob``, ``p_alias``, row ``bb`` at ``bb * n_cls``) with the
    halves of ``ur[n_u * i + 3]``, then of ``ur[n_u * i + 4]``, each accepted with probability
    ``max(0, P - Q) / P``; two rejections fall back to the exact scan with the coupling draw
    (:func:`_residual_draw`); with ``n_u = 3`` the scan alone (as :func:`_class_stack_run`). Writes
    synthetic ids (the keyed permutation of the ordinals, applied once per created id and kept in
    ``slots[:, 0]``). Returns the index reached, as :func:`_class_stack_run` (compact and call
    again when it is short of ``len(cls)``).

    Pipelined select: at the top of access ``i`` the slot for access ``i + 1`` is selected on the
    current state (rank ``max(live - d, 1)``), its slot row, class byte and bitset word prefetched;
    access ``i + 1`` then needs at most one step to the next live slot (access ``i`` removed at most
    one slot below and added one on top), so the descent overlaps the previous access's work.
    """
    # borrowed views (no reference counting in the loop; see _borrow)
    ur, cls, dd, flags = _borrow(ur), _borrow(cls), _borrow(dd), _borrow(flags)
    out, out_cls = _borrow(out), _borrow(out_cls)
    state, tree, live0, slots, scls = _borrow(state), _borrow(tree), _borrow(live0), _borrow(slots), _borrow(scls)
    b0, b1, b2, cls_made, cls_cap = _borrow(b0), _borrow(b1), _borrow(b2), _borrow(cls_made), _borrow(cls_cap)
    bud_lo, bud_hi, bud_a, grid, glut = _borrow(bud_lo), _borrow(bud_hi), _borrow(bud_a), _borrow(grid), _borrow(glut)
    bud_off = _borrow(bud_off)
    ptab, p_aprob, p_alias, qcnt = _borrow(ptab), _borrow(p_aprob), _borrow(p_alias), _borrow(qcnt)
    rbuf, keys = _borrow(rbuf), _borrow(keys)
    n = cls.shape[0]
    n_cls = ptab.shape[1]
    n_slots = slots.shape[0]
    card = max_ids
    apt = _alias_cells(p_aprob, p_alias, ptab, n_u >= 5)

    counter = state[_u(0)]
    live = state[_u(1)]
    created = state[_u(2)]
    i = start
    px = np.int64(-1)
    pk = np.int64(0)
    pch = np.int64(-1)
    while i < n:
        if counter >= n_slots:
            break
        qx = np.int64(-1)
        qk = np.int64(0)
        if i + 1 < n and live > 0:  # the select of access i + 1 on this state (fixed up then): overlaps access i
            qk = live - dd[_u(i + 1)]
            if qk < 1:
                qk = 1
            qx = _l9_select_top(tree, live0, counter - 1, live - qk, qk)
            _prefetch(scls, qx)
            _prefetch(slots, 3 * qx)
            if dd[_u(i + 1)] >= couple_below:  # the drawn class is the one searched (coupled: usually not)
                _prefetch(b0, np.int64(cls[_u(i + 1)]) * b0.shape[1] + (qx >> 6))
        c = np.int64(cls[_u(i)])
        d = dd[_u(i)]
        fl = flags[_u(i)]
        _, u_pk = _split53(ur[_u(n_u * i + 1)])
        chosen = -1
        new = (fl & 1) != 0 and created < max_ids and cls_made[_u(c)] < cls_cap[_u(c)]
        if not new:
            if live == 0:
                new = True
            else:
                k = live - d
                if k < 1:
                    k = 1
                coupled = d < couple_below and (fl & 2) == 0
                bb = np.int64(0)
                j1 = np.int64(0)
                j2 = np.int64(0)
                ub = 0.0
                ub2 = 0.0
                pj1 = 0.0
                pj2 = 0.0
                q1 = 0.0
                q2 = 0.0
                if coupled:  # what does not depend on the slot at the depth, before the select (overlaps it)
                    bb = _grid_bin(grid, glut, d)
                    if n_u >= 5:  # the two rejection proposals of _residual_draw, their P and (old) Q counts
                        ua, ub = _split53(ur[_u(n_u * i + 3)])
                        ua2, ub2 = _split53(ur[_u(n_u * i + 4)])
                        j1, pj1 = _alias_cell(apt, bb, n_cls, ua)
                        j2, pj2 = _alias_cell(apt, bb, n_cls, ua2)
                        q1 = qcnt[_u(bb), _u(j1)]
                        q2 = qcnt[_u(bb), _u(j2)]
                s = np.int64(-1)
                if px >= 0:  # the previous access's select for this one, on the state before it
                    r = pk - np.int64(pch >= 0 and pch <= px)
                    if k == r:
                        s = px
                    elif k == r + 1:
                        s = _next_live(live0, px)
                if s < 0:
                    s = _l9_select_top(tree, live0, counter - 1, live - k, k)
                _prefetch(slots, 3 * s)
                take = False
                if coupled:
                    col = np.int64(scls[_u(s)])
                    cs = col
                    if qcnt[_u(bb), _u(n_cls + 1)] >= _QWIN:
                        for j in range(n_cls + 2):
                            qcnt[_u(bb), _u(j)] *= 0.5
                        q1 *= 0.5
                        q2 *= 0.5
                    qcnt[_u(bb), _u(col)] += 1.0
                    qcnt[_u(bb), _u(n_cls + 1)] += 1.0
                    q1 = q1 + 1.0 if j1 == col else q1  # the same values _residual_draw would read
                    q2 = q2 + 1.0 if j2 == col else q2
                    inv = 1.0 / qcnt[_u(bb), _u(n_cls + 1)]
                    uc = ur[_u(n_u * i + 2)]
                    if col < n_cls:
                        q = qcnt[_u(bb), _u(cs)] * inv
                        pp = ptab[_u(bb), _u(cs)]
                        if uc * q < pp:
                            take = True
                        else:
                            uc = (uc * q - pp) / (q - pp)
                    if not take:
                        if n_u >= 5:  # as _residual_draw: two rejection rounds from P, then the exact scan
                            a1 = ub * pj1 < pj1 - q1 * inv
                            a2 = ub2 * pj2 < pj2 - q2 * inv
                            c = j1 if a1 else (j2 if a2 else -1)
                            if c < 0:
                                c = _residual_pick(ptab, qcnt, bb, inv, uc, rbuf, np.int64(cls[_u(i)]))
                        else:
                            c = _residual_pick(ptab, qcnt, bb, inv, uc, rbuf, c)
                if take:
                    chosen = s
                elif (b1[_u(c), _u(s >> 12)] >> np.uint64((s >> 6) & 63)) & _ONE and (
                    b0[_u(c), _u(s >> 6)] >> np.uint64(s & 63)
                ) & _ONE:  # s is a selectable id of class c (its word is read only when b1 says non-empty)
                    chosen = s
                else:
                    sc = _bs_succ(b0, b1, b2, c, s)
                    pc = _bs_pred(b0, b1, b2, c, s)
                    if sc >= 0:
                        _prefetch(slots, 3 * sc)
                    if pc >= 0:
                        _prefetch(slots, 3 * pc)
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
                        ks = _l9_rank(tree, live0, s, k, sc)
                        kp = _l9_rank(tree, live0, s, k, pc)
                        la = np.log1p(live - ks)
                        lb = np.log1p(live - kp)
                        ld = np.log1p(live - k)
                        if u_pk * (lb - la) < lb - ld:
                            chosen = sc
                        else:
                            chosen = pc
        if new:
            o = _feistel(created, card, half_bits, keys)
            created += 1
            u_b = _stratified(bud_off[_u(c)], cls_made[_u(c)])
            rem = _budget(u_b, bud_lo[_u(c)], bud_hi[_u(c)], bud_a[_u(c)], slack) - 1
            cls_made[_u(c)] += 1
            live += 1
            cc = c
            live0[_u(counter >> 6)] |= _bit(counter & 63)
            _fen_add(tree, counter >> 9, 1)
        else:
            o = slots[_u(chosen), _u(0)]
            cc = slots[_u(chosen), _u(1)]
            rem = slots[_u(chosen), _u(2)] - 1
            live0[_u(chosen >> 6)] &= ~_bit(chosen & 63)
            _fen_move(tree, chosen >> 9, counter >> 9)
            if rem >= 0:
                _bs_clear(b0, b1, b2, cc, chosen)
            slots[_u(chosen), _u(0)] = -1
            live0[_u(counter >> 6)] |= _bit(counter & 63)
        if rem > 0:
            _bs_set(b0, b1, b2, cc, counter)
        slots[_u(counter), _u(0)] = o
        slots[_u(counter), _u(1)] = cc
        slots[_u(counter), _u(2)] = rem
        scls[_u(counter)] = cc if rem > 0 else n_cls
        counter += 1
        out[_u(i)] = o
        out_cls[_u(i)] = cc
        px = qx
        pk = qk
        pch = -1 if new else chosen
        i += 1

    state[_u(0)] = counter
    state[_u(1)] = live
    state[_u(2)] = created
    return i
