"""Privacy of fitted models: (epsilon, delta)-differentially private fitting and leak checks.

What a non-private ``dist.json`` holds and why it leaks no raw id is argued in ``docs/privacy.md``;
this module owns the optional differentially private fit (:func:`fit_dp`) and the checks the tests
use (:func:`raw_ids_in`, :func:`longest_common_run`).

DP model: the privacy unit is one *sample* (one row of the trace: its bag in every table, its dense
features and its label); neighbouring traces differ by replacing one sample and share the public
schema (bounded DP: the sample count ``B``, table names, which tables are one-hot (declared, or
inferred from the data: :func:`one_hot_tables`), dense column count and dtypes, whether labels exist;
cardinalities only where declared: :func:`public_cardinalities`). Each sample's contribution is
bounded by clipping every bag to ``max_bag`` ids (``L``; 1 for one-hot tables). Every noisy count
is rounded to an integer (:func:`_laplace`). Only quantities with a proven L1 sensitivity are
released, by two Laplace mechanisms composed sequentially (``epsilon = epsilon_pop + epsilon_rt``,
``epsilon_rt = DP_REUSE_SHARE * epsilon``; the spent budget is exactly ``(epsilon, 0)``):

popularity mechanism (scale ``S_pop / epsilon_pop``):

- per table, the ids' (count bin x first-access time bin) histogram: replacing one sample changes
  at most ``2 L`` ids' counts and first-access bins, each moving one unit between two cells:
  sensitivity ``4 L``;
- per table, the largest id count (bounds the count bins): sensitivity ``L``;
- per table, the clipped bag-length histogram: sensitivity 2;
- the label count: sensitivity 1; per dense column a histogram over fixed (data-independent)
  signed log-spaced bins: sensitivity 2 per column.

reuse-time mechanism (scale ``S_rt / epsilon_rt``):

- per table, the histogram of reuse times measured in *samples* (log bins whose edges depend on
  ``B`` only) plus the first-access count: sensitivity ``6 L`` (:func:`reuse_time_histogram`;
  the argument is in ``docs/privacy.md``; sample indices never shift under replacement, stream
  positions would).

Stack-distance histograms are NOT released under DP (one access shifts the stack distance of every
later reuse whose window contains it: unbounded sensitivity). Locality is derived by
post-processing: the global stack-distance law by StatStack (:func:`statstack_sd_cdf`) from the
noisy reuse times; per-class shapes by Che's approximation of an independent-reference model over
the noisy popularity classes, mapped by one monotone depth map onto the StatStack law
(:func:`quantile_map_classes`). The sampling mode is chosen among twins calibrated per class
(as the non-private fit) and twins calibrated to the StatStack law itself
(:func:`tracegen.tracemodel.calibrate_global`).
"""

from __future__ import annotations

import json

import numpy as np

from tracegen.errors import TracegenError
from tracegen.trace import Trace

DP_TIME_BINS = 8
DP_FINE_TIME_BINS = 64  # time slices of the emitted node (post-processing)
DP_TIME_MIX = True  # class mix per time slice from the cold counts (else constant shares)
DP_DEFAULT_MAX_BAG = 32
DP_REUSE_BINS_PER_OCTAVE = 8
# share of epsilon spent on the reuse-time histograms (the rest on the popularity quantities)
DP_REUSE_SHARE = 0.25
_DENSE_EDGES = np.concatenate(
    [-(2.0 ** (np.arange(80, -1, -1) / 2.0) - 1.0)[:-1], 2.0 ** (np.arange(0, 81) / 2.0) - 1.0]
)  # signed log bins, 0 is an edge


def _laplace(rng: np.random.Generator, x: np.ndarray, scale: float) -> np.ndarray:
    """``x`` (integer counts) plus Laplace noise of ``scale``, rounded to integers.

    Rounding is post-processing, and it removes the floating-point side channel of a textbook Laplace
    sampler (Mironov, CCS 2012: the low-order bits of ``x + Y`` in float64 depend on ``x``); the
    released value is then the discretised Laplace mechanism, whose integer outcomes' probabilities
    match the ideal ones to about 1e-16 relative.
    """
    return np.round(np.asarray(x, np.float64) + rng.laplace(0.0, scale, size=np.shape(x)))


def _clip_bags(values: np.ndarray, lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    if lengths.size == 0 or lengths.max() <= cap:
        return values, lengths
    offs = np.concatenate([[0], np.cumsum(lengths)])
    new_len = np.minimum(lengths, cap)
    pos = np.arange(values.shape[0]) - np.repeat(offs[:-1], lengths)
    keep = pos < np.repeat(new_len, lengths)
    return values[keep], new_len


def _che_sd_node(n_ids: np.ndarray, rates: np.ndarray, c: int, n_acc: float, per_octave: int) -> dict | None:
    """Stack-distance distribution of class ``c``'s reuses under IRM by Che's approximation.

    Rates ``rates[j]`` are per-access probabilities of one id of class ``j``. The stack distance of a
    reuse after ``t`` accesses is about ``D(t) = sum_j n_j (1 - (1 - p_j)^t)`` (minus the id itself);
    the reuse time of a class-``c`` id is geometric with ``p_c``, conditioned on ``t <= n_acc``.
    """
    from tracegen.tracemodel import _sd_grid

    p = rates[c]
    if p <= 0:
        return None
    t = np.unique(np.geomspace(1, max(n_acc, 2), 4000))
    dt = (n_ids[None, :] * -np.expm1(np.log1p(-np.minimum(rates, 1 - 1e-12))[None, :] * t[:, None])).sum(1)
    dt = np.maximum(dt - 1.0, 0.0)
    total = float(n_ids.sum())
    grid = _sd_grid(int(max(total, 2)), per_octave)
    t_at = np.interp(grid.astype(np.float64), dt, t, right=np.inf)
    cdf = -np.expm1(np.log1p(-min(p, 1 - 1e-12)) * np.minimum(t_at, n_acc))
    cdf = cdf / cdf[-1] if cdf[-1] > 0 else cdf
    probs = np.diff(cdf)
    probs = np.maximum(probs, 0)
    if probs.sum() <= 0:
        return None
    last = int(np.nonzero(probs)[0][-1]) + 1
    probs = probs[:last] / probs[:last].sum()
    return {
        "kind": "empirical-binned",
        "edges": [int(x) for x in grid[: last + 1]],
        "probs": [float(v) for v in probs],
    }


# ---------------------------------------------------------------------------------------------------
# reuse times (in samples) and StatStack
# ---------------------------------------------------------------------------------------------------


def reuse_time_edges(n_samples: int, per_octave: int = DP_REUSE_BINS_PER_OCTAVE) -> np.ndarray:
    """Public (data-independent) bin edges of reuse times in samples: exact below ``2 * per_octave``,
    then ``per_octave`` bins per octave, up to ``n_samples`` (the last edge exceeds every reuse time)."""
    from tracegen.tracemodel import _sd_grid

    return _sd_grid(max(int(n_samples), 1), per_octave)


def reuse_time_histogram(values: np.ndarray, lengths: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Histogram of the reuse times of one table's access stream, measured in *samples*, and its cold count.

    Each access whose id was accessed before has reuse time ``s - s_prev`` (sample index of this access
    minus that of the previous access to the same id; 0 for a repeat inside one bag), binned on
    ``edges``; each first access counts in ``cold`` (which also equals the number of accesses never
    reused). Replacing one sample with bags of at most ``L`` ids changes the histogram and ``cold`` by at
    most ``6 L`` in L1 (docs/privacy.md), because sample indices never shift under replacement.
    """
    from tracegen.locality import dense_keys

    values = np.asarray(values)
    lengths = np.asarray(lengths, np.int64)
    n = values.shape[0]
    hist = np.zeros(edges.shape[0] - 1, np.int64)
    if n == 0:
        return hist, 0
    keys, _ = dense_keys(values)
    sidx = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
    order = np.argsort(keys, kind="stable")  # stable: accesses of one id stay in stream order
    k_sorted = keys[order]
    s_sorted = sidx[order]
    same = k_sorted[1:] == k_sorted[:-1]
    rt = (s_sorted[1:] - s_sorted[:-1])[same]
    cold = int(n - rt.shape[0])
    b = np.clip(np.searchsorted(edges, rt, side="right") - 1, 0, edges.shape[0] - 2)
    hist += np.bincount(b, minlength=edges.shape[0] - 1)
    return hist, cold


def _rt_tail_sums(edges: np.ndarray, counts: np.ndarray, cold: float):
    """Helpers for the piecewise-uniform reuse-time law: per bin width, tail mass above the bin, and
    ``C(e_b) = sum_{k < e_b} T(k)`` with ``T(k) = cold + mass of reuse times > k``."""
    e = np.asarray(edges, np.float64)
    h = np.asarray(counts, np.float64)
    w = np.diff(e)
    above = cold + (h[::-1].cumsum()[::-1] - h)  # mass in bins strictly after b, plus the never-reused
    per_bin = w * above + h * (w - 1.0) / 2.0  # sum over k in bin b of T(k)
    c_at = np.concatenate([[0.0], per_bin.cumsum()])
    return e, h, w, above, c_at


def statstack_depth(edges: np.ndarray, counts: np.ndarray, cold: float, t: np.ndarray) -> np.ndarray:
    """StatStack (Eklov and Hagersten, ISPASS 2010): expected LRU stack distance of a reuse with reuse time
    ``t`` (in accesses), ``sum_{k=1}^{t-1} P(F > k)``, ``F`` the forward reuse time of an access.

    ``counts`` is a histogram of reuse times on integer-valued ``edges`` (bin ``b`` holds the integers
    ``edges[b] .. edges[b+1]-1``, uniformly spread inside the bin), ``cold`` the number of accesses never
    reused (forward reuse time infinite; equal to the number of first accesses). Exact for unit bins.
    """
    e, h, w, above, c_at = _rt_tail_sums(edges, counts, cold)
    n_tot = float(h.sum() + cold)
    t = np.asarray(t, np.float64)
    if n_tot <= 0:
        return np.zeros_like(t)
    tc = np.clip(t, e[0], e[-1])
    b = np.clip(np.searchsorted(e, tc, side="right") - 1, 0, h.shape[0] - 1)
    n = tc - e[b]  # terms k = e_b .. t-1 inside bin b
    part = n * above[b] + h[b] / w[b] * (n * (w[b] - 1.0) - n * (n - 1.0) / 2.0)
    c_t = c_at[b] + part
    t0 = above[0] + h[0] / w[0] * (w[0] - 1.0)  # T(0)
    out = np.where(t >= 1, c_t - t0, 0.0) / n_tot
    return np.maximum(out, 0.0)


def statstack_sd_cdf(
    edges: np.ndarray,
    counts: np.ndarray,
    cold: float,
    sd_grid: np.ndarray,
    per_sample: float = 1.0,
    max_points: int = 1 << 16,
) -> np.ndarray | None:
    """The global LRU stack-distance law of the reuses implied by a reuse-time histogram (StatStack).

    Returns ``P(SD < sd_grid[i])`` for every grid edge (the CDF of the reuses' stack distances), or
    None when the histogram is empty. Reuse times are in samples; ``per_sample`` (mean accesses per
    sample) scales the distinct-count sum, plus half a bag at each end for multi-hot tables. Each reuse
    time's expected depth is split between its two neighbouring integers (mean-preserving).
    """
    e = np.asarray(edges, np.int64)
    h = np.maximum(np.asarray(counts, np.float64), 0.0)
    if h.sum() <= 0:
        return None
    top = int(e[-1])
    if top <= max_points:
        t = np.arange(top, dtype=np.int64)
        b = np.searchsorted(e, t, side="right") - 1
        mass = h[b] / np.diff(e)[b]
    else:  # integer points: every edge, plus a geometric grid; each point carries its segment's mass
        t = np.unique(np.concatenate([e[:-1], np.geomspace(1, top - 1, max_points).astype(np.int64)]))
        cdf_e = np.concatenate([[0.0], h.cumsum()])
        cdf_t = np.interp(np.append(t, top).astype(np.float64), e.astype(np.float64), cdf_e)
        mass = np.diff(cdf_t)
    m = float(per_sample)
    d = m * statstack_depth(e, h, cold, t)
    if m > 1.0:
        surv = 1.0 - np.interp(t.astype(np.float64), e.astype(np.float64), np.concatenate([[0.0], h.cumsum()])) / (
            h.sum() + cold
        )
        d = np.where(t >= 1, d + (m - 1.0) / 2.0 * (1.0 + surv), (m - 1.0) / 3.0)
    d = np.minimum(d, float(sd_grid[-1]) - 1.0)
    lo = np.floor(d)
    frac = d - lo
    g = np.asarray(sd_grid, np.int64)
    nb = g.shape[0] - 1
    bl = np.clip(np.searchsorted(g, lo, side="right") - 1, 0, nb - 1)
    bh = np.clip(np.searchsorted(g, lo + 1.0, side="right") - 1, 0, nb - 1)
    pm = np.bincount(bl, mass * (1.0 - frac), minlength=nb) + np.bincount(bh, mass * frac, minlength=nb)
    if pm.sum() <= 0:
        return None
    return np.concatenate([[0.0], np.cumsum(pm) / pm.sum()])


def quantile_map_classes(class_sd: list, weights: np.ndarray, grid: np.ndarray, target_cdf: np.ndarray) -> list:
    """Map every class's stack-distance law through one monotone map of depth so the mixture matches.

    ``class_sd[c]`` is an ``empirical-binned`` node on a prefix of ``grid`` (or None), ``weights[c]`` the
    class's share of reuses. With ``F`` the weighted mixture CDF and ``G`` the target CDF, the map is
    ``G^-1 o F``; a class's new CDF at depth ``x`` is ``F_c(F^-1(G(x)))``, so the new mixture is ``G``
    and each class keeps its rank in depth (hot classes stay shallow).
    """
    g = np.asarray(grid, np.float64)
    n_e = g.shape[0]
    cdfs, ws = [], []
    for node, w in zip(class_sd, weights):
        if node is None or w <= 0:
            cdfs.append(None)
            continue
        p = np.asarray(node["probs"], np.float64)
        c = np.ones(n_e)
        c[: p.shape[0] + 1] = np.concatenate([[0.0], np.cumsum(p)])
        c[0] = 0.0
        cdfs.append(np.minimum(c, 1.0))
        ws.append(w)
    if not ws:
        return list(class_sd)
    wsum = float(sum(ws))
    mix = sum(w * c for w, c in zip(weights, cdfs) if c is not None) / wsum
    mix_strict = mix + 1e-12 * np.arange(n_e)  # np.interp needs increasing abscissae
    depth = np.interp(np.asarray(target_cdf, np.float64), mix_strict, g)  # F^-1(G(x)) at every grid edge
    out = []
    for node, c in zip(class_sd, cdfs):
        if c is None:
            out.append(node)
            continue
        new = np.interp(depth, g, c)
        probs = np.maximum(np.diff(new), 0.0)
        if probs.sum() <= 0:
            out.append(node)
            continue
        last = int(np.nonzero(probs)[0][-1]) + 1
        probs = probs[:last] / probs[:last].sum()
        out.append(
            {
                "kind": "empirical-binned",
                "edges": [int(x) for x in grid[: last + 1]],
                "probs": [float(v) for v in probs],
            }
        )
    return out


def _class_time_accesses(cold_t: np.ndarray, acc_c: np.ndarray, iters: int = 50) -> np.ndarray:
    """Accesses of each class in each time slice (post-processing of private totals), ``(T, C)``.

    Each slice holds ``sum(acc_c) / T`` accesses; class ``c``'s first accesses in slice ``t`` are
    ``cold_t[t, c]``, and its reuses (``acc_c[c] - sum_t cold_t[t, c]``) are spread over the slices in
    proportion to its ids alive there (an id is reused only after its first access), rescaled by
    iterative proportional fitting so every slice and every class keeps its total. A class of ids seen
    once thus has a cold rate of 1 in every slice (a constant class mix would give it reuses).
    """
    t_n, c_n = cold_t.shape
    per_slice = float(acc_c.sum()) / max(t_n, 1)
    reuse_c = np.maximum(acc_c - cold_t.sum(0), 0.0)
    reuse_t = np.maximum(per_slice - cold_t.sum(1), 0.0)
    alive = np.cumsum(cold_t, axis=0) - 0.5 * cold_t + 1e-9
    r = alive * (reuse_c / np.maximum(alive.sum(0), 1e-12))[None, :]
    if reuse_t.sum() > 0 and reuse_c.sum() > 0:
        reuse_t = reuse_t * (reuse_c.sum() / reuse_t.sum())
        for _ in range(iters):
            r *= (reuse_t / np.maximum(r.sum(1), 1e-12))[:, None]
            r *= (reuse_c / np.maximum(r.sum(0), 1e-12))[None, :]
    return cold_t + r


def _twin_mrc_score(
    node: dict, lengths: np.ndarray, cardinality: int, grid: np.ndarray, target_cdf: np.ndarray, cold_frac: float
) -> float:
    """LRU miss-ratio error of a sampled twin of ``node`` against the derived (private) curve
    ``cold_frac + (1 - cold_frac) * (1 - target_cdf)``: mean / 0.005 + max / 0.02 over the grid edges."""
    from tracegen.locality import stack_distances
    from tracegen.tracemodel import ClassStackSampler, _time_bins

    smp = ClassStackSampler(node, cardinality, np.random.SeedSequence([0, 99]))
    out = smp.next(int(lengths.sum()), _time_bins(lengths, int(node["n_time_bins"])))
    sd = stack_distances(out)
    n = max(sd.shape[0], 1)
    warm = np.sort(sd[sd >= 0])
    g = np.asarray(grid, np.int64)
    sizes = np.unique(np.geomspace(1, max(int(g[-1]), 2), 40).astype(np.int64))
    twin = 1.0 - np.searchsorted(warm, sizes, side="left") / n  # misses: cold + reuses with sd >= size
    tgt_cdf = np.interp(sizes.astype(np.float64), g.astype(np.float64), np.asarray(target_cdf, np.float64))
    want = cold_frac + (1.0 - cold_frac) * (1.0 - tgt_cdf)
    e = np.abs(twin - want)
    return float(e.mean() / 0.005 + e.max() / 0.02)


def one_hot_tables(trace: Trace, declared=None) -> tuple[list[bool], bool]:
    """Which tables the DP fit treats as one-hot (clip 1, bag length constant 1), and whether declared.

    One-hot-ness is part of the *public schema* (docs/privacy.md): neighbouring traces share it. With
    ``declared`` (table names) it is taken from the caller, so no sample can change it; a declared
    one-hot table is clipped to its first id per bag. Without, it is inferred from the data (every bag
    holds at most one id and some bag one): then the guarantee only covers neighbours that keep each
    table's one-hot-ness, and the one sample that makes a table multi-hot is not protected.
    """
    if declared is None:
        return [bool(t.lengths.max(initial=0) == 1) for t in trace.tables], False
    names = [str(x) for x in declared]
    unknown = sorted(set(names) - set(trace.names))
    if unknown:
        raise TracegenError(f"one-hot tables not in the trace: {', '.join(unknown)}")
    return [t.name in names for t in trace.tables], True


def public_cardinalities(trace: Trace, declared=None) -> list[bool]:
    """Which tables' ``cardinality`` the DP fit releases as public schema (else the noisy distinct count).

    A trace's cardinality is often derived from the data by its reader: ``max id + 1`` for raw-id
    formats (csv, txt, npy, cache traces), the exact distinct count with ``--densify``. Released as it
    is, it would give away the largest raw id, one sample's id. So it is released only when declared
    public: ``declared`` is True (every table) or a list of table names; tables over ``SPARSE_KEYS``
    rows (hashed 64-bit keys) never are.
    """
    from tracegen.tracemodel import SPARSE_KEYS

    if declared is None or declared is False:
        names: set = set()
    elif declared is True:
        names = set(trace.names)
    else:
        names = {str(x) for x in declared}
        unknown = sorted(names - set(trace.names))
        if unknown:
            raise TracegenError(f"public-cardinality tables not in the trace: {', '.join(unknown)}")
    return [t.name in names and int(t.cardinality) < SPARSE_KEYS for t in trace.tables]


def _noise_rng() -> np.random.Generator:
    """The generator of DP noise: fresh OS entropy, so the noise cannot be reproduced from any seed.

    Tests replace this function to make a noisy fit deterministic; nothing else should.
    """
    return np.random.default_rng()


def fit_dp(trace: Trace, params, progress: bool = False) -> dict:
    """The (epsilon, 0)-DP fit of ``trace`` (see the module docstring); returns the model parts."""
    from tracegen._util import progress as _progress
    from tracegen.locality import dense_keys
    from tracegen.tracemodel import (
        CALIBRATE_MAX_ACCESSES,
        DEFAULT_BUDGET_SLACK,
        HYBRID_BELOW,
        _probs,
        _sd_grid,
        calibrate_class_stack,
        calibrate_global,
    )

    eps = float(params.epsilon)
    delta = float(params.delta) if params.delta is not None else 0.0
    k = int(params.min_count)
    cbo = int(params.class_bins_per_octave)
    b = trace.n_samples
    one_hot, declared = one_hot_tables(trace, getattr(params, "one_hot", None))
    card_public = public_cardinalities(trace, getattr(params, "public_cardinality", None))
    cap = DP_DEFAULT_MAX_BAG if params.max_bag is None else int(params.max_bag)
    caps = [1 if oh else cap for oh in one_hot]  # a one-hot table (public schema) stays one-hot
    n_dense = 0 if trace.dense is None else int(trace.dense.shape[1])
    sens = sum(5 * c + 2 for c in caps) + (1 if trace.labels is not None else 0) + 2 * n_dense
    sens_rt = sum(6 * c for c in caps)
    eps_rt = DP_REUSE_SHARE * eps
    eps_pop = eps - eps_rt
    scale = sens / eps_pop if eps_rt > 0 else float("inf")
    scale_rt = sens_rt / eps_rt if eps_rt > 0 else float("inf")
    if not (np.isfinite(scale) and np.isfinite(scale_rt)):
        raise TracegenError(f"epsilon {eps!r} is too small: the Laplace noise scale overflows")
    rt_edges = reuse_time_edges(b)
    rng = _noise_rng()
    nt = int(max(1, min(DP_TIME_BINS, b)))
    tables = []
    for t, cap, oh, pub in _progress(
        list(zip(trace.tables, caps, one_hot, card_public)), desc="fit (dp)", unit="table", enabled=progress
    ):
        vals, lens = _clip_bags(np.asarray(t.values), t.lengths, cap)
        # bag lengths over the public support 0..cap
        hist_len = np.bincount(np.minimum(lens, cap), minlength=cap + 1)[: cap + 1]
        # post-processing: keep the lengths whose noisy count clears scale * ln(20 (L + 1)) (an empty
        # length passes with probability 1 / (40 (L + 1))); when none does, one id per bag (below,
        # data-independent). Clipping the noise at 0 alone left ~scale/2 on every length in 0..L: mean
        # bag 1.5 (lengths 0..3, L = 32) came out 2.9-3.1 on 30,000 samples at epsilon 1 (now 1.48-1.55)
        raw_len = _laplace(rng, hist_len, scale)
        noisy_len = np.where(raw_len > scale * np.log(20.0 * (cap + 1.0)), raw_len, 0.0)
        if oh:  # public schema, not the data (with --max-bag 1 a multi-hot table keeps its noisy pmf)
            bag = {"kind": "constant", "value": 1}
        else:
            if noisy_len.sum() <= 0:
                noisy_len[1] = 1.0
            bag = {"kind": "empirical", "values": list(range(cap + 1)), "probs": _probs(noisy_len)}
        # reuse times in samples (second Laplace mechanism, sensitivity 6 L per table)
        rt_hist, rt_cold = reuse_time_histogram(vals, lens, rt_edges)
        noisy_rt = np.maximum(_laplace(rng, rt_hist, scale_rt), 0.0)
        noisy_rt_cold = max(float(_laplace(rng, float(rt_cold), scale_rt)), 0.0)
        if cap == 1:
            noisy_rt[0] = 0.0  # public: one-id bags cannot repeat an id inside a bag
        keys, u = dense_keys(vals)
        counts = np.bincount(keys, minlength=u)
        # count bins over a public range: 1 .. B * cap accesses
        n_bins = int(np.floor(cbo * np.log2(max(b * cap, 1)))) + 1
        cbin = np.minimum(np.floor(cbo * np.log2(counts) + 1e-9).astype(np.int64), n_bins - 1)
        first = np.full(u, -1, np.int64)
        sidx = np.repeat(np.arange(b, dtype=np.int64), lens)
        first_pos = np.unique(keys, return_index=True)[1]
        first[:] = (sidx[first_pos] * nt) // b
        hist = np.bincount(cbin * nt + first, minlength=n_bins * nt).reshape(n_bins, nt)
        noisy = _laplace(rng, hist, scale)  # unclipped: sums of noise stay unbiased
        # the noisy largest count bounds the count bins (a fake hot class would dominate the shares)
        # always released (an empty table's largest count is 0): skipping the draw when the table holds
        # no id would make "top bin 0 with certainty" tell an empty table from its neighbours
        max_c = float(_laplace(rng, float(counts.max(initial=0)), scale))
        top_bin = int(np.clip(np.floor(cbo * np.log2(max(max_c, 1.0)) + 1e-9), 0, n_bins - 1))
        # post-processing: from the most popular bin down, group bins until the group's noisy id
        # total clears 3 noise standard deviations and K; the rest joins the last group
        groups, cur, tot = [], [], 0.0
        for j in range(top_bin, -1, -1):
            cur.append(j)
            tot += float(noisy[j].sum())
            if tot >= max(k, 3.0 * scale * np.sqrt(2.0 * nt * len(cur))):
                groups.append(cur)
                cur, tot = [], 0.0
        if cur:
            if groups:
                groups[-1].extend(cur)
            else:
                groups.append(cur)
        groups.reverse()
        n_cls = len(groups)
        lo = np.array([int(np.ceil(2.0 ** (min(g) / cbo))) for g in groups], np.int64)
        hi = np.array(
            [max(int(np.ceil(2.0 ** ((max(g) + 1) / cbo))) - 1, int(lo_)) for g, lo_ in zip(groups, lo)],
            np.int64,
        )
        # weights for a group's mean count: noisy id totals minus two noise sds (a count bin that holds
        # only noise must not pull the mean up to its huge count)
        row_mass = np.maximum(noisy.sum(1) - 2.0 * scale * np.sqrt(2.0 * nt), 0.0)
        mids = 2.0 ** ((np.arange(n_bins) + 0.5) / cbo)
        n_ids = np.array([max(float(noisy[g].sum()), 1.0) for g in groups])
        # post-processing with public sizes: a table holds at most B * L distinct ids (and at most its
        # cardinality); at tiny epsilon the noisy totals reach 1e30+ and overflowed the int64 depth grids
        most = float(min(b * cap, int(t.cardinality))) if pub else float(b * cap)
        if n_ids.sum() > max(most, float(n_cls)):
            n_ids = np.maximum(n_ids * (max(most, float(n_cls)) / n_ids.sum()), 1.0)
        mid = np.array(
            [
                float((row_mass[g] * mids[g]).sum() / row_mass[g].sum())
                if row_mass[g].sum() > 0
                else float(np.sqrt(lo_ * hi_))
                for g, lo_, hi_ in zip(groups, lo, hi)
            ]
        )
        mid = np.clip(mid, lo, np.maximum(hi, lo))
        # accesses of the table: B times the mean of the private bag-length pmf (post-processing)
        if bag["kind"] == "constant":
            n_acc = float(b * bag["value"])
        else:
            n_acc = float(b * np.dot(np.arange(cap + 1), np.asarray(bag["probs"])))
        n_acc = max(n_acc, 1.0)
        # the top class's noisy totals are the least reliable (few ids, large counts): its noise-clipped
        # weights drop its hottest ids (mean count biased low), and a noise excursion can fake hundreds of
        # hot ids. It takes the accesses the other (many-id) classes leave instead: raise its mean count
        # (up to its count range) when they exceed its estimate, else lower its id count
        top_scale = 1.0
        if n_cls > 1:
            resid = n_acc - float((n_ids[:-1] * mid[:-1]).sum())
            if resid > 0:
                if resid >= n_ids[-1] * mid[-1]:
                    mid[-1] = float(min(resid / n_ids[-1], max(hi[-1], lo[-1])))
                else:
                    new_n = max(resid / mid[-1], 1.0)
                    top_scale = new_n / n_ids[-1]
                    n_ids[-1] = new_n
        acc = n_ids * mid
        share = acc / acc.sum()
        rates = share / n_ids  # per-access probability of one id of each class
        cold_t = np.maximum(np.stack([noisy[g].sum(0) for g in groups], axis=1), 0.0)  # (nt, C)
        cold_t[:, -1] *= top_scale
        # post-processing: footprint growth on DP_FINE_TIME_BINS slices, by a monotone (PCHIP) curve
        # through each class's cumulative noisy first accesses at the DP_TIME_BINS knots (piecewise
        # constant rates would make the footprint piecewise linear: ~0.04 error on concave growth)
        nf = int(max(1, min(DP_FINE_TIME_BINS, b))) if nt > 1 else nt
        if nf > nt:
            from scipy.interpolate import PchipInterpolator

            cum = np.concatenate([np.zeros((1, n_cls)), np.cumsum(cold_t, axis=0)])
            fine = PchipInterpolator(np.arange(nt + 1) / nt, cum, axis=0)(np.arange(nf + 1) / nf)
            cold_t = np.maximum(np.diff(np.maximum.accumulate(fine, axis=0), axis=0), 0.0)
        ntf = cold_t.shape[0]  # time slices of the node
        if DP_TIME_MIX:
            acc_t = _class_time_accesses(cold_t, share * n_acc)
        else:
            acc_t = np.broadcast_to(share[None, :] * (n_acc / ntf), cold_t.shape).copy()
        cold = np.clip(cold_t / np.maximum(acc_t, 1e-12), 0, 1)
        mix_t = acc_t / np.maximum(acc_t.sum(1, keepdims=True), 1e-12)
        sd_nodes = [_che_sd_node(n_ids, rates, c, n_acc, params.sd_bins_per_octave) for c in range(n_cls)]
        # post-processing: the global stack-distance law by StatStack from the noisy reuse times; the
        # per-class Che laws keep their shape and are mapped by one monotone depth map onto it
        sd_grid = _sd_grid(int(max(float(n_ids.sum()), 2)), params.sd_bins_per_octave)
        target = statstack_sd_cdf(rt_edges, noisy_rt, noisy_rt_cold, sd_grid, per_sample=n_acc / max(b, 1))
        if target is not None:
            reuses = np.maximum(share * n_acc - n_ids, 0.0)
            sd_nodes = quantile_map_classes(sd_nodes, reuses, sd_grid, target)
        classes = []
        for c in range(n_cls):
            classes.append(
                {
                    "count_range": [int(lo[c]), int(max(hi[c], lo[c]))],
                    "n_ids": int(round(n_ids[c])),
                    "mean_count": float(mid[c]),
                    "share": float(share[c]),
                    "sd": sd_nodes[c],
                }
            )
        mix = [[float(v) for v in row / row.sum()] if row.sum() > 0 else [float(v) for v in share] for row in mix_t]
        node = {
            "kind": "class-stack",
            "n_time_bins": ntf,
            "budget_slack": DEFAULT_BUDGET_SLACK,
            "classes": classes,
            "mix": mix,
            "cold": [[float(v) for v in row] for row in cold],
        }
        if getattr(params, "calibrate", 0) and n_acc <= CALIBRATE_MAX_ACCESSES:
            # post-processing: calibrate against the derived targets on public-shaped bags, and pick the
            # sampling mode whose twin best matches the derived (StatStack) LRU curve
            flat = np.full(b, max(1, int(round(n_acc / max(b, 1)))), np.int64)
            card = int(t.cardinality) if pub else max(1, int(round(n_ids.sum())))
            cands = [
                calibrate_class_stack(node, flat, card, iters=int(params.calibrate)),
                calibrate_class_stack(
                    {**node, "coupling": False, "coupling_below": HYBRID_BELOW}, flat, card, iters=int(params.calibrate)
                ),
                {**node, "coupling": False, "coupling_below": HYBRID_BELOW},
            ]
            if target is not None:
                # and calibrated to the StatStack law itself (whole laws: lo = 0)
                for nd in (node, {**node, "coupling": False, "coupling_below": HYBRID_BELOW}):
                    cands.append(calibrate_global(nd, flat, card, sd_grid, target, int(params.calibrate), lo=0))
                cold_n = float(np.clip(noisy_rt_cold, 1.0, n_acc))
                scores = [_twin_mrc_score(c, flat, card, sd_grid, target, cold_n / n_acc) for c in cands]
                node = cands[int(np.argmin(scores))]
            else:
                node = cands[0]
        tables.append(
            {
                "name": t.name,
                # the schema's row count only when declared public: readers derive it from the data
                # (max raw id + 1, or the distinct count with --densify); else the noisy distinct count
                "cardinality": int(t.cardinality) if pub else max(1, int(round(float(n_ids.sum())))),
                "bag_length": bag,
                "ids": node,
            }
        )
    dense = None
    if n_dense:
        cols = []
        e = _DENSE_EDGES
        for j in range(n_dense):
            x = np.asarray(trace.dense[:, j], np.float64)
            x = np.clip(x[np.isfinite(x)], e[0], e[-1])
            h = np.histogram(x, bins=e)[0]
            noisy = _laplace(rng, h, scale)
            # post-processing: a bin is kept only above the level an empty bin's noise passes with
            # probability 1 / (200 bins), so about 0.005 empty bins survive per column (without this the
            # 160 bins' noise put most of a small trace's mass in bins up to +-1e12 away from its data);
            # when no bin clears it, the column is released as the bin [0, 0.41) (data-independent)
            nh = np.where(noisy > scale * np.log(100.0 * len(h)), noisy, 0.0)
            if nh.sum() <= 0:
                nh[int(np.searchsorted(e, 0.0, side="right")) - 1] = 1.0
            nz = np.nonzero(nh)[0]
            a, z = int(nz[0]), int(nz[-1]) + 1
            cols.append(
                {
                    "edges": [float(v) for v in e[a : z + 1]],
                    "probs": _probs(nh[a:z]),
                    "integer": bool(np.issubdtype(trace.dense.dtype, np.integer)),
                }
            )
        dense = {"kind": "empirical-quantiles", "dtype": str(trace.dense.dtype), "columns": cols}
    labels = None
    if trace.labels is not None:
        pos = float(np.count_nonzero(np.asarray(trace.labels, np.float64) > 0.5))
        rate = float(np.clip(_laplace(rng, pos, scale) / max(b, 1), 0.0, 1.0))
        labels = {"kind": "bernoulli", "rate": rate, "dtype": str(trace.labels.dtype)}
    released = [
        "per table: ids by (count bin, first-access time bin)",
        "per table: largest id count",
        "per table: clipped bag-length histogram",
    ]
    if labels is not None:
        released.append("label count")
    if dense is not None:
        released.append("per dense column: histogram over fixed signed log bins")
    released.append("per table: reuse-time histogram in samples (log bins) and first-access count")
    privacy = {
        "raw_ids": False,
        "first_appearance_order": False,
        "min_count": k,
        "dp": {
            "epsilon": eps,
            "delta": delta,
            "epsilon_spent": eps,
            "delta_spent": 0.0,
            "unit": "sample",
            "adjacency": (
                "replace one sample; public schema: n_samples, table names, which tables are one-hot, dense "
                "column count and dtypes, whether labels exist, the cardinalities listed in public_cardinality"
            ),
            "one_hot": [t.name for t, oh in zip(trace.tables, one_hot) if oh],
            "public_cardinality": [t.name for t, pub in zip(trace.tables, card_public) if pub],
            "one_hot_source": "declared" if declared else "inferred from the data (every bag holds <= 1 id, some 1)",
            "mechanism": "laplace",
            "composition": "sequential: popularity mechanism + reuse-time mechanism",
            "sensitivity": float(sens),
            "noise_scale": float(scale),
            "mechanisms": [
                {
                    "name": "popularity",
                    "mechanism": "laplace",
                    "quantities": released[:-1],
                    "epsilon": eps_pop,
                    "sensitivity": float(sens),
                    "noise_scale": float(scale),
                },
                {
                    "name": "reuse-time",
                    "mechanism": "laplace",
                    "quantities": released[-1:],
                    "epsilon": eps_rt,
                    "sensitivity": float(sens_rt),
                    "noise_scale": float(scale_rt),
                    "time_unit": "samples",
                    "bins_per_octave": DP_REUSE_BINS_PER_OCTAVE,
                },
            ],
            "max_bag": {t.name: c for t, c in zip(trace.tables, caps)},
            "released": released,
            "locality": (
                "per-class shapes by Che's approximation over the private popularity classes, mapped by one "
                "monotone depth map onto the global stack-distance law StatStack derives from the private "
                "reuse-time histogram"
            ),
        },
    }
    return {"tables": tables, "dense": dense, "labels": labels, "privacy": privacy}


# ---------------------------------------------------------------------------------------------------
# leak checks (used by the tests; usable on any dist.json)
# ---------------------------------------------------------------------------------------------------


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def raw_ids_in(doc: dict, ids: np.ndarray) -> list[int]:
    """The raw ids of ``ids`` that appear as a number anywhere in the dist.json dictionary ``doc``."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    s = set(int(x) for x in np.unique(np.asarray(ids)))
    return sorted({int(v) for v in _numbers(doc) if float(v).is_integer() and int(v) in s})


def frequency_ranks(ids: np.ndarray) -> np.ndarray:
    """Each access's id replaced by its frequency rank (0 = most accessed; ties by id value)."""
    u, inv, cnt = np.unique(np.asarray(ids), return_inverse=True, return_counts=True)
    order = np.lexsort((u, -cnt))
    rank = np.empty(u.shape[0], np.int64)
    rank[order] = np.arange(u.shape[0])
    return rank[inv]


def longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest contiguous run shared by two int sequences (binary search on rolling sets)."""
    a = np.ascontiguousarray(a, np.int64)
    b = np.ascontiguousarray(b, np.int64)
    if a.size == 0 or b.size == 0:
        return 0
    ab, bb = a.tobytes(), b.tobytes()

    def shared(k: int) -> bool:
        w = 8 * k
        seen = {ab[i : i + w] for i in range(0, len(ab) - w + 1, 8)}
        return any(bb[i : i + w] in seen for i in range(0, len(bb) - w + 1, 8))

    lo, hi = 0, min(a.size, b.size)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if shared(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_epsilon(epsilon, delta) -> None:
    if epsilon is not None and not epsilon > 0:
        raise TracegenError(f"--epsilon must be > 0, got {epsilon}")
    if delta is not None and not (0 <= delta < 1):
        raise TracegenError(f"--delta must be in [0, 1), got {delta}")
