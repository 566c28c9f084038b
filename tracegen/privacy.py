"""Privacy of fitted models: (epsilon, delta)-differentially private fitting and leak checks.

What a non-private ``dist.json`` holds and why it leaks no raw id is argued in ``docs/privacy.md``;
this module owns the optional differentially private fit (:func:`fit_dp`) and the checks the tests
use (:func:`raw_ids_in`, :func:`longest_common_run`).

DP model: the privacy unit is one *sample* (one row of the trace: its bag in every table, its dense
features and its label); neighbouring traces differ by replacing one sample (bounded DP; the sample
count ``B`` is public). Each sample's contribution is bounded by clipping every bag to ``max_bag``
ids. Only quantities with a proven L1 sensitivity are released, all with the Laplace mechanism at
scale ``sensitivity / epsilon`` (one mechanism over their concatenation, so the spent budget is
exactly ``(epsilon, 0)``):

- per table, the ids' (count bin x first-access time bin) histogram: replacing one sample changes
  at most ``2 * max_bag`` ids' counts and first-access bins, each moving one unit between two cells:
  sensitivity ``4 * max_bag``;
- per table, the largest id count (bounds the count bins): sensitivity ``max_bag``;
- per table, the clipped bag-length histogram: sensitivity 2;
- the label count: sensitivity 1; per dense column a histogram over fixed (data-independent)
  signed log-spaced bins: sensitivity 2 per column.

Stack-distance histograms are NOT released under DP (one access shifts the stack distance of every
later reuse whose window contains it: unbounded sensitivity). Locality is derived from the private
popularity instead: an independent-reference model over the noisy popularity classes, with each
class's stack-distance distribution computed by Che's approximation.
"""

from __future__ import annotations

import json

import numpy as np

from tracegen.errors import TracegenError
from tracegen.trace import Trace

DP_TIME_BINS = 8
DP_DEFAULT_MAX_BAG = 32
_DENSE_EDGES = np.concatenate(
    [-(2.0 ** (np.arange(80, -1, -1) / 2.0) - 1.0)[:-1], 2.0 ** (np.arange(0, 81) / 2.0) - 1.0]
)  # signed log bins, 0 is an edge


def _laplace(rng: np.random.Generator, x: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(x, np.float64) + rng.laplace(0.0, scale, size=np.shape(x))


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


def fit_dp(trace: Trace, params, progress: bool = False) -> dict:
    """The (epsilon, 0)-DP fit of ``trace`` (see the module docstring); returns the model parts."""
    from tracegen._util import progress as _progress
    from tracegen.locality import dense_keys
    from tracegen.tracemodel import (
        CALIBRATE_MAX_ACCESSES,
        DEFAULT_BUDGET_SLACK,
        SPARSE_KEYS,
        _probs,
        calibrate_class_stack,
    )

    eps = float(params.epsilon)
    delta = float(params.delta) if params.delta is not None else 0.0
    k = int(params.min_count)
    cbo = int(params.class_bins_per_octave)
    b = trace.n_samples
    caps = []
    for t in trace.tables:
        if params.max_bag is not None:
            caps.append(int(params.max_bag))
        else:
            caps.append(1 if t.lengths.max(initial=0) <= 1 else DP_DEFAULT_MAX_BAG)
    n_dense = 0 if trace.dense is None else int(trace.dense.shape[1])
    sens = sum(5 * c + 2 for c in caps) + (1 if trace.labels is not None else 0) + 2 * n_dense
    scale = sens / eps
    rng = np.random.default_rng()  # fresh OS entropy: DP noise must not be reproducible from a seed
    nt = int(max(1, min(DP_TIME_BINS, b)))
    tables = []
    for t, cap in _progress(list(zip(trace.tables, caps)), desc="fit (dp)", unit="table", enabled=progress):
        vals, lens = _clip_bags(np.asarray(t.values), t.lengths, cap)
        # bag lengths over the public support 0..cap
        hist_len = np.bincount(np.minimum(lens, cap), minlength=cap + 1)[: cap + 1]
        noisy_len = np.maximum(_laplace(rng, hist_len, scale), 0)
        if cap == 1 and t.lengths.max(initial=0) <= 1:
            bag = {"kind": "constant", "value": 1}
        else:
            if noisy_len.sum() <= 0:
                noisy_len[1] = 1.0
            bag = {"kind": "empirical", "values": list(range(cap + 1)), "probs": _probs(noisy_len)}
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
        max_c = float(_laplace(rng, float(counts.max()), scale)) if u else 1.0
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
        mid = np.array(
            [
                float((row_mass[g] * mids[g]).sum() / row_mass[g].sum())
                if row_mass[g].sum() > 0
                else float(np.sqrt(lo_ * hi_))
                for g, lo_, hi_ in zip(groups, lo, hi)
            ]
        )
        mid = np.clip(mid, lo, np.maximum(hi, lo))
        acc = n_ids * mid
        share = acc / acc.sum()
        # accesses of the table: B times the mean of the private bag-length pmf (post-processing)
        if bag["kind"] == "constant":
            n_acc = float(b * bag["value"])
        else:
            n_acc = float(b * np.dot(np.arange(cap + 1), np.asarray(bag["probs"])))
        n_acc = max(n_acc, 1.0)
        rates = share / n_ids  # per-access probability of one id of each class
        cold_t = np.maximum(np.stack([noisy[g].sum(0) for g in groups], axis=1), 0.0)  # (nt, C)
        acc_t = share[None, :] * (n_acc / nt)
        cold = np.clip(cold_t / np.maximum(acc_t, 1e-12), 0, 1)
        classes = []
        for c in range(n_cls):
            classes.append(
                {
                    "count_range": [int(lo[c]), int(max(hi[c], lo[c]))],
                    "n_ids": int(round(n_ids[c])),
                    "mean_count": float(mid[c]),
                    "share": float(share[c]),
                    "sd": _che_sd_node(n_ids, rates, c, n_acc, params.sd_bins_per_octave),
                }
            )
        mix = [[float(v) for v in share / share.sum()] for _ in range(nt)]
        node = {
            "kind": "class-stack",
            "n_time_bins": nt,
            "budget_slack": DEFAULT_BUDGET_SLACK,
            "classes": classes,
            "mix": mix,
            "cold": [[float(v) for v in row] for row in cold],
        }
        if getattr(params, "calibrate", 0) and n_acc <= CALIBRATE_MAX_ACCESSES:
            # post-processing: calibrate against the Che-derived targets on public-shaped bags
            flat = np.full(b, max(1, int(round(n_acc / max(b, 1)))), np.int64)
            card = int(t.cardinality) if int(t.cardinality) < SPARSE_KEYS else max(1, int(round(n_ids.sum())))
            node = calibrate_class_stack(node, flat, card, iters=int(params.calibrate))
        tables.append(
            {
                "name": t.name,
                "cardinality": int(t.cardinality)
                if int(t.cardinality) < SPARSE_KEYS
                else max(1, int(round(float(n_ids.sum())))),
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
            nh = np.maximum(_laplace(rng, h, scale), 0)
            if nh.sum() <= 0:
                nh[len(nh) // 2] = 1.0
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
            "adjacency": "replace one sample (n_samples public)",
            "mechanism": "laplace",
            "sensitivity": float(sens),
            "noise_scale": float(scale),
            "max_bag": {t.name: c for t, c in zip(trace.tables, caps)},
            "released": released,
            "locality": "IRM over the private popularity classes; stack distances by Che's approximation",
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
