"""The sampler's fast kernels (``_predraw``, ``_stack_run``) against references: a plain-Python
pre-draw, and the reference stack kernel ``_class_stack_run`` (itself checked against tests/naive.py)
fed the same uniforms; plus chunking, block size and seed properties of ``ClassStackSampler``."""

from __future__ import annotations

import numpy as np
import pytest

from tracegen import _sample_kernels as K
from tracegen.tracemodel import ALWAYS, ClassStackSampler, _alias_tables, _feistel_keys, _sd_grid, permute_ids


def _split(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = (d * 2.0**53).astype(np.int64)
    return (k >> 26) * 2.0**-27, (k & ((1 << 26) - 1)) * 2.0**-26


def test_split53_is_exact_and_grid_bins_match_searchsorted(rng):
    d = rng.random(10_000)
    hi, lo = _split(d)
    assert np.array_equal(hi * 2.0**27 * 2.0**26 + lo * 2.0**26, d * 2.0**53)
    got = np.array([K._split53(x) for x in d[:200]])
    assert np.array_equal(got[:, 0], hi[:200]) and np.array_equal(got[:, 1], lo[:200])
    for grid in (_sd_grid(100_000, 8), _sd_grid(50, 2), _sd_grid(1 << 30, 8), _sd_grid(5000, 11),
                 np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 1 << 20])):
        lut = K._grid_lut(grid)
        v = np.concatenate([np.arange(3000), grid, grid[1:] - 1, rng.integers(0, int(grid[-1]) * 2, 3000)])
        want = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, grid.shape[0] - 2)
        got = np.array([K._grid_bin(grid, lut, int(x)) for x in v])
        assert np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 100, 1024])
def test_fenwick_move_equals_two_adds(rng, n):
    a = rng.integers(0, 5, n + 1).astype(np.int32)
    b = a.copy()
    for _ in range(500):
        i, j = sorted(int(x) for x in rng.integers(0, n, 2))
        K._fen_add(a, i, -1)
        K._fen_add(a, j, 1)
        K._fen_move(b, i, j)
        assert np.array_equal(a, b)


def _tables(rng, c=4, nt=3):
    mix = rng.random((nt, c)) + 0.05
    mix /= mix.sum(1, keepdims=True)
    sd_probs = [rng.random(int(rng.integers(1, 9))) + 0.01 for _ in range(c)]
    lo = np.concatenate([np.sort(rng.choice(200, len(p), replace=False)) for p in sd_probs]).astype(np.int64)
    return {
        "mix": _alias_tables(list(mix)),
        "mix_p": mix,
        "qcold": rng.random((nt, c)) * 0.3,
        "sd": _alias_tables(sd_probs),
        "lo": lo,
        "width": rng.integers(1, 50, lo.shape[0]).astype(np.int64),
        "rep": np.array([0.0, 0.5, 0.2, 0.9])[:c],
    }


def _alias_pick(u, g, off, size, aprob, alias):
    x = u * size[g]
    j = min(int(x), size[g] - 1)
    k = off[g] + j
    return j if x - j < aprob[k] else int(alias[k])


def _predraw_reference(a, ur, n_u, tbin, nt):
    """The documented pre-draw rule, one access at a time in Python."""
    n = tbin.shape[0]
    c_n = a["qcold"].shape[1]
    acc = np.full(c_n, 0.5)
    p = -1
    cls, dd, flags = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    u_cls, u_sd = _split(ur[0::n_u])
    u_in, _ = _split(ur[1::n_u])
    for i in range(n):
        t = min(int(tbin[i]), nt - 1)
        rp = a["rep"][p] if p >= 0 else 0.0
        if u_in[i] < rp:
            cls[i], dd[i], flags[i] = p, 0, 2
            continue
        c = _alias_pick(u_cls[i], t, *a["mix"])
        acc[c] += a["qcold"][t, c]
        cold = acc[c] >= 1.0
        if cold:
            acc[c] -= 1.0
        b = a["sd"][0][c] + _alias_pick(u_sd[i], c, *a["sd"])
        w = (u_in[i] - rp) / (1.0 - rp)
        dd[i] = min(a["lo"][b] + int(w * a["width"][b]), a["lo"][b] + a["width"][b] - 1)
        cls[i], flags[i], p = c, int(cold), c
    return cls, dd, flags, acc, p


@pytest.mark.parametrize("n_u, block", [(2, 5_000), (3, 777), (2, 1)])
def test_predraw_matches_reference(rng, n_u, block):
    a = _tables(rng)
    n, nt = 5_000, 3
    tbin = np.sort(rng.integers(0, nt + 2, n)).astype(np.int64)  # bins past the last clamp to it
    ur = rng.random(n * n_u)
    c_n = a["qcold"].shape[1]
    acc = np.full(c_n, 0.5)
    prev = np.array([-1], np.int64)
    cls, dd, flags = np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int8)
    rep1 = np.concatenate([[0.0], a["rep"]])
    for s in range(0, n, block):  # pieces: prev and acc carry across calls
        e = min(n, s + block)
        K._predraw(ur[n_u * s : n_u * e], n_u, tbin[s:e], nt, prev, acc, *a["mix"], a["qcold"], rep1, *a["sd"],
                   a["lo"], a["width"], cls[s:e], dd[s:e], flags[s:e])
    w_cls, w_dd, w_flags, w_acc, w_p = _predraw_reference(a, ur, n_u, tbin, nt)
    assert np.array_equal(cls, w_cls) and np.array_equal(dd, w_dd) and np.array_equal(flags, w_flags)
    assert np.array_equal(acc, w_acc) and prev[0] == w_p
    # the draws follow the model: repeat rate after class c, class shares of the other accesses
    is_rep = (flags & 2) != 0
    for c in range(c_n):
        after = np.nonzero(cls[:-1] == c)[0] + 1
        assert abs(is_rep[after].mean() - a["rep"][c]) < 4 * np.sqrt(0.25 / max(after.shape[0], 1)) + 1e-9
    first = ~is_rep & (np.minimum(tbin, nt - 1) == 0)
    share = np.bincount(cls[first], minlength=c_n) / first.sum()
    assert np.abs(share - a["mix_p"][0]).max() < 4 * np.sqrt(0.25 / first.sum())


def _fresh(n_slots, c):
    slots = np.zeros((n_slots, 3), np.int64)
    slots[:, 0] = -1
    return [np.zeros((n_slots >> 6) + 1, np.int32), np.zeros(n_slots >> 6, np.uint64), slots,
            np.zeros((c, n_slots >> 6), np.uint64), np.zeros((c, max(1, n_slots >> 12)), np.uint64),
            np.zeros((c, 1), np.uint64)]


def _run(fast, a, n_slots=4096):
    """Either kernel over the whole input, compacting into fresh arrays whenever the slots fill."""
    c = a["cls_cap"].shape[0]
    n = a["cls"].shape[0]
    made = np.zeros(c, np.int64)
    qcnt = np.zeros((a["ptab"].shape[0], c + 2))
    state = np.zeros(3, np.int64)
    st = _fresh(n_slots, c)
    scls = np.zeros(n_slots, np.uint8)
    tree9 = np.zeros((n_slots >> 9) + 1, np.int32)
    out, out_cls = np.empty(n, np.int64), np.empty(n, np.int32)
    i = 0
    while i < n:
        tree, live0, slots, b0, b1, b2 = st
        if fast:
            i = K._stack_run(
                a["ur"], a["n_u"], a["cls"], a["dd"], a["flags"], i, out, out_cls, state, tree9, live0, slots, scls,
                b0, b1, b2, a["max_ids"], made, a["cls_cap"], a["bud_lo"], a["bud_hi"], a["bud_a"], a["bud_off"],
                a["slack"],
                a["grid"], K._grid_lut(a["grid"]), a["ptab"], *_alias_tables(list(a["ptab"]))[2:], qcnt,
                a["couple_below"], np.empty(c), a["keys"], a["half"])
        else:
            i = K._class_stack_run(
                a["cls"], a["cold"], a["dd"], a["gbin"], a["upick"], a["ucpl"], i, out, out_cls, state,
                tree, live0, slots, b0, b1, b2, a["max_ids"], made, a["cls_cap"], a["bud_lo"], a["bud_hi"],
                a["bud_a"], a["bud_off"], a["slack"], a["ptab"], qcnt, a["couple_below"])
        if i < n:
            old = slots
            st = _fresh(n_slots, c)
            live = K._compact(old, int(state[0]), *st)
            assert live == state[1]
            state[0] = live
            sl = st[2][:live]
            scls[:live] = np.where(sl[:, 2] > 0, sl[:, 1], c)
            tree9[:] = 0
            K._tree9_build(st[1], tree9)
    return out, out_cls, state


@pytest.mark.parametrize(
    "max_ids, couple_below", [(10_000, 0), (150, 0), (10_000, ALWAYS), (150, ALWAYS), (10_000, 20), (150, 20)]
)
def test_stack_run_matches_the_reference_kernel(rng, max_ids, couple_below):
    n, c = 6_000, 5
    grid = np.array([0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256, 1 << 20], np.int64)
    nb = grid.shape[0] - 1
    ptab = rng.random((nb, c))
    ptab /= ptab.sum(1, keepdims=True)
    n_u = 3 if couple_below else 2
    ur = rng.random(n * n_u)
    rep = rng.random(n) < 0.1
    dd = np.where(rep, 0, np.minimum(rng.geometric(0.02, n) - 1, 5_000)).astype(np.int64)
    cold = (rng.random(n) < 0.05) & ~rep
    keys, half = _feistel_keys(np.random.SeedSequence(5), max_ids)
    a = {
        "ur": ur,
        "n_u": n_u,
        "cls": rng.integers(0, c, n).astype(np.int32),
        "dd": dd,
        "flags": (cold.astype(np.int8) | (rep.astype(np.int8) << 1)).astype(np.int8),
        "cold": cold,
        "gbin": np.where(rep, -1, np.clip(np.searchsorted(grid, dd, side="right") - 1, 0, nb - 1)),
        "upick": _split(ur[1::n_u])[1],
        "ucpl": ur[2::n_u] if n_u == 3 else np.zeros(n),
        "max_ids": max_ids,
        "cls_cap": np.array([10_000, 50, 10_000, 3, 1], np.int64),
        "bud_lo": np.array([1.0, 2.0, 5.0, 20.0, 100.0]),
        "bud_hi": np.array([2.0, 4.0, 9.0, 41.0, 1e12]),
        "bud_a": np.array([0.0, 0.0, 1.0, 1.5, 0.8]),
        "bud_off": rng.random(5),
        "slack": 1.3,
        "grid": grid,
        "ptab": ptab,
        "couple_below": couple_below,
        "keys": keys,
        "half": half,
    }
    got, got_cls, st = _run(True, a)
    want, want_cls, st0 = _run(False, a)
    assert np.array_equal(got, permute_ids(want, max_ids, np.random.SeedSequence(5)))
    assert np.array_equal(got_cls, want_cls) and np.array_equal(st, st0)
    assert int(st[2]) <= max_ids and np.unique(got).shape[0] == int(st[2])


def _node(coupling: bool, below: int = 0) -> dict:
    rng = np.random.default_rng(3)
    c = 3
    return {
        "kind": "class-stack",
        "n_time_bins": 2,
        "mix": [0.2, 0.3, 0.5, 0.3, 0.3, 0.4],
        "cold": [0.01, 0.05, 0.2, 0.02, 0.05, 0.3],
        "repeat": [0.3, 0.1, 0.0],
        "coupling": coupling,
        "coupling_below": below,
        "classes": [
            {
                "n_ids": n_ids,
                "count_range": [lo, hi],
                "sd": {"edges": [0, 1, 4, 16, 64, 256, 1024], "probs": list(rng.dirichlet(np.ones(6)))},
            }
            for n_ids, lo, hi in [(20, 200, 400), (300, 10, 40), (3000, 1, 4)]
        ][:c],
    }


@pytest.mark.parametrize("coupling, below", [(False, 0), (True, 0), (False, 64)])
def test_sampler_chunking_block_size_and_seeds(coupling, below):
    node = _node(coupling, below)
    n = 30_000
    tb = (np.arange(n) * 2) // n

    def draw(seed, splits=(n,), block=None):
        old = ClassStackSampler.BLOCK
        try:
            if block:
                ClassStackSampler.BLOCK = block
            s = ClassStackSampler(node, 5_000, np.random.SeedSequence(seed))
            parts, a = [], 0
            for m in splits:
                parts.append(s.next(m, tb[a : a + m]))
                a += m
            return np.concatenate(parts)
        finally:
            ClassStackSampler.BLOCK = old

    one = draw(1)
    assert one.shape == (n,) and one.min() >= 0 and one.max() < 5_000
    assert np.array_equal(one, draw(1, splits=(1, 4_095, 12_345, 13_559)))
    assert np.array_equal(one, draw(1, block=1_000))
    assert not np.array_equal(one, draw(2))


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_residual_draw_follows_the_residual(rng, scale):
    """The coupled pick's class: two rounds of rejection from P, then the exact scan; all give max(0, P - Q)."""
    nb, c = 3, 7
    ptab = rng.random((nb, c)) * (rng.random((nb, c)) < 0.8)
    ptab /= ptab.sum(1, keepdims=True)
    qcnt = np.zeros((nb, c + 2))
    qcnt[:, : c + 1] = rng.random((nb, c + 1)) * 10 * scale + ptab.mean() * (ptab.sum(1, keepdims=True) > 0)
    qcnt[:, c + 1] = qcnt[:, : c + 1].sum(1)
    _, _, aprob, alias = _alias_tables(list(ptab))
    rbuf = np.empty(c)
    n = 60_000
    for bb in range(nb):
        inv = 1.0 / qcnt[bb, c + 1]
        res = np.maximum(ptab[bb] - qcnt[bb, :c] * inv, 0.0)
        want = res / res.sum()
        u = rng.random((n, 5))
        got = np.array([K._residual_draw(ptab, aprob, alias, qcnt, bb, inv, *x, rbuf, -1) for x in u])
        exact = np.array([K._residual_pick(ptab, qcnt, bb, inv, x, rbuf, -1) for x in u[:, 0]])
        for g in (got, exact):
            freq = np.bincount(g, minlength=c) / n
            assert np.abs(freq - want).max() < 5 * np.sqrt(0.25 / n)
            assert np.all(freq[want == 0] == 0)


@pytest.mark.parametrize("density", [0.02, 0.4, 0.97])
def test_512_slot_tree_select_prefix_rank(rng, density):
    """The 512-slot Fenwick tree's select, select-from-top, prefix and rank against the bits."""
    n_slots = 1 << 15
    live = rng.random(n_slots) < density
    live[-1] = True
    live0 = np.packbits(live.reshape(-1, 64)[:, ::-1], axis=1).view(">u8").ravel().astype(np.uint64)
    tree9 = np.zeros((n_slots >> 9) + 1, np.int32)
    K._tree9_build(live0, tree9)
    pos = np.flatnonzero(live)
    cum = np.concatenate([[0], np.cumsum(live)])
    top = int(pos[-1])
    for k in np.unique(np.concatenate([[1, pos.shape[0]], rng.integers(1, pos.shape[0] + 1, 300)])):
        s = int(pos[k - 1])
        assert K._l9_select(tree9, live0, int(k)) == s
        d = pos.shape[0] - int(k)
        assert K._l9_select_top(tree9, live0, top, d, int(k)) == s
        for x in np.concatenate([rng.integers(0, n_slots, 20), s + np.arange(-700, 700, 37)]):
            x = int(min(max(x, 0), n_slots - 1))
            assert K._l9_rank(tree9, live0, s, int(k), x) == cum[x + 1]
            assert K._l9_prefix(tree9, live0, x) == cum[x]


def _deep_node() -> dict:
    """Three classes whose reuses reach depth 65,536: a stack deep enough for far ranks and several compactions."""
    node = _node(False, 32)
    node["classes"] = [
        {**cl, "n_ids": n, "sd": {"edges": [0, 1, 16, 256, 4096, 65536], "probs": [0.1, 0.3, 0.3, 0.2, 0.1]}}
        for cl, n in zip(node["classes"], (200, 5_000, 60_000))
    ]
    return node


def test_deep_stack_is_deterministic_and_chunk_free():
    """A stack deep enough for far ranks, several compactions and slot growth: same seed, same ids
    (an out-of-range read would show up as run-to-run differences), whatever the chunking."""
    node = _deep_node()
    n = 250_000
    tb = (np.arange(n) * 2) // n

    def draw(splits):
        s = ClassStackSampler(node, 100_000, np.random.SeedSequence(7))
        parts, a = [], 0
        for m in splits:
            parts.append(s.next(m, tb[a : a + m]))
            a += m
        return np.concatenate(parts), int(s._state[1])

    one, live = draw((n,))
    assert live > 20_000  # the stack is deep
    assert np.array_equal(one, draw((n,))[0])
    assert np.array_equal(one, draw((99_999, 1, 150_000))[0])


def test_release_between_calls_keeps_the_ids():
    """``release`` (dropping the spare state set, block buffers and ``last_cls`` between calls) changes no id,
    across compactions of both reused and fresh sizes, and the sampler works on after it."""
    node = _deep_node()
    n = 250_000
    tb = (np.arange(n) * 2) // n
    splits = (40_000, 1, 70_000, 139_999)

    def draw(release):
        s = ClassStackSampler(node, 100_000, np.random.SeedSequence(7))
        parts, a = [], 0
        for m in splits:
            parts.append(s.next(m, tb[a : a + m]))
            assert s.last_cls.shape == (m,)
            a += m
            if release:
                s.release()
                assert s._spare is None and s._ubuf is None and s._ocls is None and s.last_cls is None
        return np.concatenate(parts), s

    kept, s_kept = draw(False)
    assert s_kept._spare is not None  # the stack compacted: there was a spare set to drop
    assert np.array_equal(kept, draw(True)[0])


def test_multi_table_chunks_drop_sampler_scratch():
    """Sampling a model of several tables in chunks keeps no sampler scratch between chunks (every table's
    sampler stays alive) and gives the one-shot trace; a single table keeps its scratch (reused per chunk)."""
    from tracegen import synth
    from tracegen.trace import Table, Trace
    from tracegen.tracemodel import TraceModel, _TableSampler

    tabs = [Table.one_hot(f"T{j}", synth.zipf_ids(20_000, 3_000, 1.0, seed=j)) for j in range(2)]
    model = TraceModel(calibrate=0).fit(Trace(tabs))
    made = []
    orig = _TableSampler.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        made.append(self)

    _TableSampler.__init__ = init
    try:
        chunks = list(model.sample_iter(seed=3, chunk_samples=7_000))
        many = made[:]
        made.clear()
        one = model.sample(seed=3)
        single = TraceModel(calibrate=0).fit(Trace(tabs[:1]))
        made.clear()
        list(single.sample_iter(seed=3, chunk_samples=7_000))
    finally:
        _TableSampler.__init__ = orig
    assert all(t.ids._ubuf is None and t.ids.last_cls is None for t in many)
    assert made[0].ids._ubuf is not None
    for j in range(2):
        got = np.concatenate([c.tables[j].values for c in chunks])
        assert np.array_equal(got, one.tables[j].values)


def test_stratified_budget_draws_cover_the_unit_interval_at_every_prefix(rng):
    """A class's budget uniforms ``frac(off + k phi)``: every prefix of N draws leaves no gap wider than 2.7 / N
    on the circle (i.i.d. uniforms leave gaps of about ln(N) / N), whatever the offset."""
    for off in (0.0, *rng.random(5)):
        u = np.array([K._stratified(off, k) for k in range(400)])
        assert np.all((u >= 0) & (u < 1))
        for n in (1, 2, 3, 10, 37, 100, 400):
            x = np.sort(u[:n])
            gaps = np.diff(np.concatenate([x, [x[0] + 1.0]]))
            assert gaps.max() <= 2.7 / n


def test_dp_model_twins_agree_across_seeds():
    """A wide top class (what DP noise leaves: 143 ids over counts 305-27,554 on a planted trace) gets budgets
    over its whole count law in every twin, so twins of one model agree: the top four ids' share of the
    accesses varies by 8% (coefficient of variation over 12 seeds; 16% with i.i.d. budget draws, which put a
    DP model's twins 0.004-0.023 apart in LRU MRC error)."""
    n_hot = 40
    node = {
        "kind": "class-stack", "n_time_bins": 1, "coupling": False, "budget_slack": 1.2,
        "mix": [[0.4, 0.6]], "cold": [[n_hot / 80_000, 0.02]],
        "classes": [
            {"n_ids": n_hot, "count_range": [300, 27_000], "mean_count": 2_000.0, "share": 0.4,
             "sd": {"kind": "empirical-binned", "edges": [0, 1, 16, 256, 4096], "probs": [0.2, 0.4, 0.3, 0.1]}},
            {"n_ids": 4_000, "count_range": [1, 40], "mean_count": 7.5, "share": 0.6,
             "sd": {"kind": "empirical-binned", "edges": [0, 1, 16, 256, 4096, 65536],
                    "probs": [0.05, 0.15, 0.3, 0.3, 0.2]}},
        ],
    }
    tops = []
    for seed in range(12):
        smp = ClassStackSampler(node, 100_000, np.random.SeedSequence(seed))
        out = smp.next(200_000, np.zeros(200_000, np.int64))
        counts = np.sort(np.bincount(np.unique(out, return_inverse=True)[1]))[::-1]
        tops.append(counts[:4].sum() / out.shape[0])
    tops = np.asarray(tops)
    assert tops.std() / tops.mean() < 0.11


def _bits(live: np.ndarray) -> np.ndarray:
    return np.packbits(live.reshape(-1, 64)[:, ::-1], axis=1).view(">u8").ravel().astype(np.uint64)


@pytest.mark.parametrize("density", [0.01, 0.5, 0.99])
def test_next_live(rng, density):
    """``_next_live`` (the fix-up of the pipelined select in ``_stack_run``) against the bits."""
    n_slots = 1 << 14
    live = rng.random(n_slots) < density
    live[-1] = True
    live0 = _bits(live)
    pos = np.flatnonzero(live)
    for x in np.concatenate([rng.integers(0, n_slots - 1, 300), pos[:-1][:50], [0, n_slots - 2]]):
        assert K._next_live(live0, int(x)) == pos[np.searchsorted(pos, x, side="right")]


def test_borrow_opaque_and_unsigned_index_keep_values(rng):
    """The code-generation helpers change no value: a borrowed view writes through to the array,
    ``_opaque`` is the identity and ``_u`` indexes as a signed index would."""
    from numba import njit

    @njit
    def run(a, flags, idx):
        b = K._borrow(a)
        out = 0
        for i in range(idx.shape[0]):
            b[K._u(idx[i])] += 1
            out += K._opaque(np.int64(flags[i])) * idx[i]
        return out

    a = np.zeros(50, np.int64)
    idx = rng.integers(0, 50, 1000)
    flags = rng.random(1000) < 0.5
    assert run(a, flags, idx) == int(idx[flags].sum())
    assert np.array_equal(a, np.bincount(idx, minlength=50))


def test_alias_cells_match_alias_rows(rng):
    """``_alias_cell`` (one array: alias rows and both outcomes' P) picks the class and P of
    ``_alias_row`` on the separate tables."""
    n_bins, c = 7, 13
    ptab = rng.random((n_bins, c)) ** 3
    ptab /= ptab.sum(axis=1, keepdims=True)
    _, _, aprob, alias = _alias_tables(list(ptab))
    apt = K._alias_cells(aprob, alias, ptab, True)
    for bb in range(n_bins):
        for ua in np.concatenate([rng.random(200), [0.0, 1.0 - 2.0**-27]]):
            j = K._alias_row(aprob, alias, bb, c, ua)
            assert K._alias_cell(apt, bb, c, ua) == (j, ptab[bb, j])
