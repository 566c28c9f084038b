"""The trace model: fit distributions from a real trace, save/load them as ``dist.json``, sample twins.

:class:`TraceModel` follows scikit-learn/SDV: the constructor stores parameters, :meth:`TraceModel.fit`
learns trailing-underscore state (``model_``: the dist.json dictionary), :meth:`TraceModel.sample`
draws a synthetic :class:`~tracegen.trace.Trace` (same seed, same trace), :meth:`TraceModel.save` /
:meth:`TraceModel.load` write and read versioned JSON (``docs/dist-json.md``).

The fitted id model of a table (kind ``"class-stack"``): ids are grouped into popularity classes
by their total access count (log-spaced count bins, merged until each class holds >= K ids); each
class keeps its access share, the distribution of the *global* LRU stack distance of its warm
accesses, its immediate-repeat rate, and per time bin its share of accesses and its cold
(first-access) rate. At fit time a class with enough ids may be split in two by its ids' age profile
(front-loaded ids versus ids read evenly; :func:`_age_split`), and a class's stack distances may
be kept per phase of the trace (``sd_phases``), each when a sampled twin says it pays
(:func:`choose_mode`). Sampling either repeats the previous access's id (at that class's repeat
rate) or draws the class of the access, then either creates a new id or reuses the live id of
that class whose global LRU depth is nearest to a drawn stack distance. The global stack-distance distribution
(hence the LRU miss-ratio curve) and the class shares (hence the popularity curve) are both kept.

Notation: ``B`` samples, ``T`` tables, ``N`` accesses of one table, ``C`` popularity classes.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator

import numpy as np

from tracegen.errors import TracegenError
from tracegen.trace import Table, Trace

FORMAT = "tracegen-dist"
SCHEMA_VERSION = 1
SD_CONVENTION = "0 = immediate repeat, -1 = first access; LRU of C rows hits iff 0 <= sd < C"
DEFAULT_MIN_COUNT = 10
# Each synthetic id may be accessed at most (its class's count range) x slack times: 1 gives exact
# within-class counts (popularity) but forces shallower reuses when candidates run out; no budget
# keeps the stack distances but lets within-class counts spread (top-10% share +0.037 on ARC OLTP).
# 1.2 measured best on OLTP (LRU MRC mean 0.0038, top-10% share error 0.013).
DEFAULT_BUDGET_SLACK = 1.2
CALIBRATE_MAX_ACCESSES = 50_000_000  # the DP fit calibrates whole tables up to this length
# The mode choice scores twins of at most about this many accesses: a longer table is judged on its
# first samples (a window, in the whole table's time schedule), so the ~12 scoring twins cost a
# constant; calibration (2-5 twins) still samples the whole table (on a window it did not transfer).
# Measured on ARC OLTP scored on a 300k window: the same mode and class design as on the whole.
TWIN_MAX_ACCESSES = 2_000_000
THREAD_MAX_ACCESSES = 4_000_000  # longer tables calibrate their candidates one at a time (memory)
REFINE_SHARE = 0.1  # a stack-distance bin holding more of a table's warm accesses is cut finer
DEFAULT_PHASES = 4  # stack-distance histograms per class per phase (runs of time bins); 1 = one per class
SPARSE_KEYS = 1 << 40  # a "cardinality" this large means hashed / sparse 64-bit keys, not table rows


def synthetic_cardinality(cardinality: int, distinct: int, hide: bool = False) -> int:
    """Rows of the synthetic table: the table's cardinality, or the distinct count for sparse 64-bit keys
    and where ``hide`` (a cardinality the reader derived from the ids, ``max id + 1``, is one sample's
    raw id; ``docs/privacy.md``)."""
    return int(distinct) if hide or int(cardinality) >= SPARSE_KEYS else int(cardinality)


DEFAULT_COUPLING = False  # for nodes without a "coupling" field
ALWAYS = 1 << 62  # coupling_below of the fully coupled mode
HYBRID_BELOW = 256  # coupling_below of the in-between mode tried by choose_mode


def coupling_below(node: dict) -> int:
    """Drawn stack distances below this use the coupled pick: all with ``coupling``, else the node's
    ``coupling_below`` (default 0: none)."""
    if bool(node.get("coupling", DEFAULT_COUPLING)):
        return ALWAYS
    return int(node.get("coupling_below", 0))
PROB_TOL = 1e-6
FITTED_KINDS = ("class-stack",)


# ---------------------------------------------------------------------------------------------------
# fitting helpers
# ---------------------------------------------------------------------------------------------------


def _sd_grid(max_sd: int, per_octave: int) -> np.ndarray:
    """Bin edges for stack distances: exact below ``2 * per_octave``, then ``per_octave`` bins per octave."""
    exact = 2 * per_octave
    top = max(int(max_sd) + 2, exact + 1)
    n_oct = math.log2(top / exact) + 1
    geo = np.floor(exact * 2.0 ** (np.arange(1, int(n_oct * per_octave) + 2) / per_octave)).astype(np.int64)
    edges = np.unique(np.concatenate([np.arange(exact + 1, dtype=np.int64), geo]))
    cut = int(np.searchsorted(edges, top, side="left"))
    return edges[: cut + 1]


def _refine_grid(grid: np.ndarray, sd: np.ndarray, share: float, parts: int = 8, rounds: int = 4) -> np.ndarray:
    """``grid`` with every bin that holds more than ``share`` of the warm distances cut in ``parts``
    (repeatedly, ``rounds`` times, down to exact values).

    A loop over ``L`` ids reuses at a depth just under ``L``: the LRU miss-ratio curve falls by most of
    its height between two cache sizes. A bin of 1/16 octave (about 4% of the depth) spread those
    reuses over its width and the twin's curve fell gradually (loop probe: LRU MRC max error 0.21).
    The finer bins are still merged to >= K accesses per class (:func:`_merge_bins`).
    """
    from tracegen._fit_kernels import _grid_bins

    warm = np.ascontiguousarray(sd[sd >= 0], np.int64)
    if share <= 0 or warm.shape[0] == 0:
        return grid
    for _ in range(rounds):
        cnt = np.bincount(_grid_bins(warm, grid), minlength=grid.shape[0] - 1)
        heavy = np.flatnonzero((cnt[: grid.shape[0] - 1] > share * warm.shape[0]) & (np.diff(grid) > 1))
        if heavy.shape[0] == 0:
            break
        cuts = [np.linspace(grid[b], grid[b + 1], parts + 1).astype(np.int64) for b in heavy]
        grid = np.unique(np.concatenate([grid, *cuts]))
    return grid


def _merge_bins(counts: np.ndarray, edges: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge consecutive histogram bins so each non-empty output bin holds >= k counts.

    Empty runs before a group stay empty bins (no mass is spread into gaps); a last group
    short of ``k`` joins the previous one. Returns ``(edges, counts)`` with trailing empty bins cut.
    """
    out_e = [int(edges[0])]
    out_c: list[int] = []
    acc = 0
    nb = counts.shape[0]
    i = 0
    while i < nb:
        c = int(counts[i])
        if acc == 0 and c == 0:
            # extend or open an empty bin
            if out_c and out_c[-1] == 0:
                out_e[-1] = int(edges[i + 1])
            else:
                out_c.append(0)
                out_e.append(int(edges[i + 1]))
            i += 1
            continue
        acc += c
        if acc >= k:
            out_c.append(acc)
            out_e.append(int(edges[i + 1]))
            acc = 0
        i += 1
    if acc > 0:  # short remainder: join the last non-empty group, or stand alone
        last = len(out_c) - 1
        while last >= 0 and out_c[last] == 0:
            last -= 1
        if last >= 0:
            out_c[last] += acc
            # absorb the gap and remainder into that group
            del out_c[last + 1 :]
            del out_e[last + 2 :]
            out_e[-1] = int(edges[nb])
        else:
            out_c.append(acc)
            out_e.append(int(edges[nb]))
    # cut trailing empty bins
    while out_c and out_c[-1] == 0:
        out_c.pop()
        out_e.pop()
    return np.asarray(out_e, np.int64), np.asarray(out_c, np.int64)


def _merge_values(values: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep values with >= k samples; move each other's mass to the nearest kept value.

    When none has k samples, all of them go to the value nearest their mean (the mean is a statistic of
    all the samples; the most frequent value could be 0 in a table whose samples hold ids), and not
    to 0 when any value is positive.
    """
    keep = counts >= k
    if not keep.any():
        mean = float(np.dot(values, counts)) / max(float(counts.sum()), 1.0)
        cand = values[values > 0] if (values > 0).any() else values
        j = int(np.argmin(np.abs(cand - mean)))
        return cand[j : j + 1], np.asarray([int(counts.sum())])
    kv = values[keep]
    kc = counts[keep].astype(np.int64).copy()
    for v, c in zip(values[~keep], counts[~keep]):
        kc[int(np.argmin(np.abs(kv - v)))] += int(c)
    return kv, kc


def _popularity_classes(
    counts: np.ndarray, per_octave: int, k: int, support: np.ndarray | None = None, min_ids: int = 1
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Class index of each id (0 = least popular) and the inclusive count range of each class.

    Ids are binned by ``floor(per_octave * log2(count))``; adjacent bins are merged from the most
    popular down until each class is supported by >= k samples (``support``: the samples holding
    each id, default its count) and holds >= ``min_ids`` ids: the min-count rule. Ids seen in fewer
    than k samples are thus always pooled with others; a hot id seen in >= k samples may form its
    own class (its access count is then released, as a statistic of >= k samples).
    """
    raw = np.floor(per_octave * np.log2(counts.astype(np.float64)) + 1e-9).astype(np.int64)
    ub, inv, n_ids = np.unique(raw, return_inverse=True, return_counts=True)
    sup = np.bincount(inv, weights=counts if support is None else support, minlength=ub.shape[0])
    groups: list[list[int]] = []
    cur: list[int] = []
    tot, tot_ids = 0.0, 0
    for j in range(ub.shape[0] - 1, -1, -1):
        cur.append(j)
        tot += float(sup[j])
        tot_ids += int(n_ids[j])
        if tot >= k and tot_ids >= min_ids:
            groups.append(cur)
            cur, tot, tot_ids = [], 0.0, 0
    if cur:
        if groups:
            groups[-1].extend(cur)
        else:
            groups.append(cur)
    groups.reverse()  # least popular first
    bin_to_class = np.empty(ub.shape[0], np.int64)
    for ci, g in enumerate(groups):
        bin_to_class[g] = ci
    cls = bin_to_class[inv]
    lo = np.full(len(groups), np.iinfo(np.int64).max)
    hi = np.zeros(len(groups), np.int64)
    np.minimum.at(lo, cls, counts)
    np.maximum.at(hi, cls, counts)
    return cls, [(int(a), int(b)) for a, b in zip(lo, hi)]


# least ids in each part of a split class: splitting classes of a few (hot) ids cost LRU accuracy
# (nearest-id picks among fewer ids smear the distances; planted trace MRC max 0.0225 with no floor)
# for little LFU gain; 8 kept ARC OLTP's MRC max at 0.0064 with LFU error 0.051 -> 0.038
SPLIT_MIN_IDS = 8


def _age_split(
    cls_of_id: np.ndarray,
    counts: np.ndarray,
    keys: np.ndarray,
    support: np.ndarray | None,
    k: int,
    min_ids: int,
    n_parts: int,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Split each popularity class into up to ``n_parts`` sub-classes by its ids' *age profile*.

    The statistic of an id first seen at access ``f`` is the mean of ``(i - f) / (N - f)`` over its
    accesses ``i``: low for an id read mostly soon after it appears (then rarely: popularity that
    decays with age), about 1/2 for one read evenly until the end. Real ids decay more than the
    twin's (ARC OLTP, ids of 100-1000 accesses first seen in the first half: 40% of their accesses
    in the first quarter of their remaining time, 32% in the twin), which makes an in-cache LFU
    keep ids that no longer pay. Each sub-class gets its own stack-distance histogram, repeat rate,
    mix and cold rates, so the front-loaded part reuses short (bursts after birth) and the even
    part long. The ids of a class are cut at equal-id quantiles of the statistic, and a class is
    split only when every part is supported by >= ``k`` samples and holds >= ``min_ids`` ids (the
    min-count rule); ids seen once stay whole. The statistic and the cut never leave the fit.
    Returns the class of each id and the count ranges (ranges of sub-classes may overlap).
    """
    u = counts.shape[0]
    n = keys.shape[0]
    first = np.full(u, n, np.int64)  # first access of each id
    np.minimum.at(first, keys, np.arange(n, dtype=np.int64))
    mean_pos = np.bincount(keys, weights=np.arange(n, dtype=np.float64), minlength=u) / np.maximum(counts, 1)
    stat = (mean_pos - first) / np.maximum(n - first, 1)
    sup = counts if support is None else support
    n_cls = int(cls_of_id.max()) + 1 if u else 0
    new = np.empty(u, np.int64)
    nxt = 0
    order = np.lexsort((stat, cls_of_id))
    bounds = np.searchsorted(cls_of_id[order], np.arange(n_cls + 1))
    for c in range(n_cls):
        ids = order[bounds[c] : bounds[c + 1]]
        parts = [ids]
        if ids.shape[0] and counts[ids].max() >= 2:
            for m in range(n_parts, 1, -1):
                cuts = [ids[(j * ids.shape[0]) // m : ((j + 1) * ids.shape[0]) // m] for j in range(m)]
                if all(p.shape[0] >= max(min_ids, SPLIT_MIN_IDS) and float(sup[p].sum()) >= k for p in cuts):
                    parts = cuts
                    break
        for p in parts:
            new[p] = nxt
            nxt += 1
    lo = np.full(nxt, np.iinfo(np.int64).max)
    hi = np.zeros(nxt, np.int64)
    np.minimum.at(lo, new, counts)
    np.maximum.at(hi, new, counts)
    return new, [(int(a), int(b)) for a, b in zip(lo, hi)]


def _phase_of(tb: np.ndarray, nt: int, n_phases: int) -> np.ndarray:
    """Phase of every access from its time bin: ``n_phases`` equal runs of the ``nt`` bins (the fit's
    per-phase histograms, their calibration and the sampler agree on it; ``_fit_kernels._node_counts`` too)."""
    return (np.minimum(np.asarray(tb, np.int64), nt - 1) * n_phases) // nt


def _time_bins(
    lengths: np.ndarray, n_time_bins: int, start: int = 0, n_samples: int | None = None
) -> np.ndarray:
    """Time bin of every access: its sample's index scaled to ``n_time_bins`` equal slices of the samples."""
    b = lengths.shape[0]
    total = b if n_samples is None else n_samples
    sample_tb = (np.arange(start, start + b, dtype=np.int64) * n_time_bins) // max(total, 1)
    if b and int(lengths.min()) == 1 and int(lengths.max()) == 1:  # one-hot: one access per sample
        return sample_tb
    return np.repeat(sample_tb, lengths)


def _probs(x: np.ndarray) -> list[float]:
    x = np.asarray(x, np.float64)
    s = x.sum()
    p = x / s if s > 0 else np.full(x.shape, 1.0 / max(x.shape[0], 1))
    return [float(v) for v in p]


def fit_bag_length(lengths: np.ndarray, k: int) -> dict:
    """The bag-length node: constant 1 for one-hot tables, else an empirical pmf with K-merging."""
    lengths = np.asarray(lengths, np.int64)
    vals, cnts = np.unique(lengths, return_counts=True)
    if vals.shape[0] == 1:
        return {"kind": "constant", "value": int(vals[0])}
    kv, kc = _merge_values(vals, cnts, k)
    if kv.shape[0] == 1:
        return {"kind": "constant", "value": int(kv[0])}
    return {"kind": "empirical", "values": [int(v) for v in kv], "probs": _probs(kc)}


def fit_class_stack(
    values: np.ndarray,
    lengths: np.ndarray,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    n_time_bins: int = 64,
    class_bins_per_octave: int = 4,
    sd_bins_per_octave: int = 16,
    budget_slack: float = DEFAULT_BUDGET_SLACK,
    min_class_ids: int = 1,
    return_stats: bool = False,
    split_parts: int = 2,
    twin_max: int = TWIN_MAX_ACCESSES,
    n_phases: int | None = None,
):
    """Fit the ``class-stack`` id node of one table from its access stream (bag order) and bag lengths.

    With ``return_stats`` also returns the table's aggregate profile (stack-distance histogram, cold
    count, per-id counts, LFU and FIFO miss ratios at ``LFU_FRACTIONS`` of the distinct ids) and, when some
    class can be split (``split_parts`` > 1, see :func:`_age_split`), ``"split_node"``: the same
    model with each popularity class split by its ids' age profile, and ``"global"`` (and, with phases,
    ``"global_phases"``): the whole table's law of reuse depths >= 1 (in each phase), the targets of
    :func:`calibrate_global` (:func:`global_target`). These are used in-process by
    :func:`choose_mode` and never saved. A table longer than ``twin_max`` accesses is profiled on
    its first samples holding about ``twin_max`` accesses (``"window"``: their bag lengths and the
    table's sample count), which the twins then reproduce.
    """
    from tracegen.locality import dense_keys, stack_distances

    values = np.asarray(values)
    n = values.shape[0]
    if n == 0:  # a feature never present: one empty class (never sampled: every bag is empty)
        node = {
            "kind": "class-stack",
            "n_time_bins": 1,
            "budget_slack": budget_slack,
            "coupling": False,
            "classes": [{"count_range": [1, 1], "n_ids": 0, "share": 1.0, "sd": None}],
            "mix": [[1.0]],
            "cold": [[1.0]],
        }
        empty = {"sd_counts": np.zeros(0, np.int64), "cold": 0, "id_counts": np.zeros(0, np.int64)}
        return (node, empty) if return_stats else node
    keys, u = dense_keys(values)
    sd = stack_distances(values)
    counts = np.bincount(keys, minlength=u)
    support = None
    if lengths.shape[0] and lengths.max() > 1:  # samples holding each id (a bag may repeat an id)
        from tracegen import _kernels

        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        support = _kernels._group_support(keys, starts, max(u, 1))[:u]
    cls_of_id, ranges = _popularity_classes(counts, class_bins_per_octave, min_count, support, min_class_ids)
    # each time bin's class mix and cold rates describe >= K samples (docs/privacy.md)
    nt = int(max(1, min(n_time_bins, lengths.shape[0] // min_count)))
    tb = _time_bins(lengths, nt)
    grid = _refine_grid(_sd_grid(int(sd.max()), sd_bins_per_octave), sd, REFINE_SHARE)
    n_phases = DEFAULT_PHASES if n_phases is None else int(n_phases)
    node = _class_stack_node(keys, sd, tb, nt, cls_of_id, ranges, grid, min_count, budget_slack, n_phases)
    if not return_stats:
        return node
    from tracegen.locality import sd_histogram

    b_w, m = _twin_window(lengths, twin_max)
    # keys number ids by first appearance, so the window's ids are exactly 0..u_w-1
    u_w = int(keys[:m].max()) + 1 if m else 0
    h, c0 = sd_histogram(sd[:m])
    stats = {
        "sd_counts": h,
        "cold": c0,
        "id_counts": counts if m == n else np.bincount(keys[:m], minlength=u_w),
        "distinct": u,
    }
    # the whole table's law of reuses at depth >= 1, and its law in each phase: the targets of calibrate_global
    # (which runs on whole tables)
    stats["global"] = global_target(h if m == n else sd_histogram(sd)[0])
    n_ph = int(node.get("n_phases", 1))
    if stats["global"] is not None and n_ph > 1:
        ph = _phase_of(tb, nt, n_ph)
        per = [global_target(sd_histogram(sd[ph == q])[0], grid=stats["global"][0]) for q in range(n_ph)]
        if all(t is not None for t in per):
            stats["global_phases"] = (stats["global"][0], np.stack([t[1] for t in per]))
    if m < n:
        stats["window"] = (np.ascontiguousarray(lengths[:b_w]), int(lengths.shape[0]))
    # only the mode choice uses these
    if m >= LFU_MIN_ACCESSES and u_w >= LFU_MIN_IDS:  # (LFU in a cache of a row or two: chaos)
        stats["policy"] = _policy_miss_ratios(keys[:m], u_w, u_w)
    if split_parts > 1:
        s_cls, s_ranges = _age_split(
            cls_of_id, counts, keys, support, min_count, max(min_class_ids, 1), split_parts
        )
        if len(s_ranges) > len(ranges):
            stats["split_node"] = _class_stack_node(
                keys, sd, tb, nt, s_cls, s_ranges, grid, min_count, budget_slack, n_phases
            )
    if u <= FINE_MAX_IDS and FINE_BINS_PER_OCTAVE > class_bins_per_octave:
        f_cls, f_ranges = _popularity_classes(counts, FINE_BINS_PER_OCTAVE, min_count, support, min_class_ids)
        if len(f_ranges) > len(ranges):
            stats["fine_node"] = _class_stack_node(
                keys, sd, tb, nt, f_cls, f_ranges, grid, min_count, budget_slack, n_phases
            )
    return node, stats


def global_target(counts: np.ndarray, per_octave: int = 16, grid: np.ndarray | None = None, lo: int = 1):
    """``(grid, P(SD < grid[i] | SD >= lo))`` from a stack-distance histogram (``counts[d]``), or None when
    no reuse is at depth >= ``lo``: the target of :func:`calibrate_global` (on ``grid`` when given)."""
    counts = np.asarray(counts, np.float64)
    cs = np.concatenate([[0.0], np.cumsum(counts)])
    below = cs[min(int(lo), counts.shape[0])]
    total = float(cs[-1] - below)
    if total <= 0:
        return None
    grid = _sd_grid(counts.shape[0], per_octave) if grid is None else np.asarray(grid, np.int64)
    return grid, (cs[np.minimum(grid, counts.shape[0])] - below).clip(0.0) / total


def _twin_window(lengths: np.ndarray, twin_max: int) -> tuple[int, int]:
    """``(samples, accesses)`` of the shortest prefix of samples holding >= ``twin_max`` accesses (or all)."""
    ends = np.cumsum(lengths)
    n = int(ends[-1]) if ends.shape[0] else 0
    if n <= twin_max:
        return int(lengths.shape[0]), n
    b = int(np.searchsorted(ends, twin_max, side="left")) + 1
    return b, int(ends[b - 1])


def _class_stack_node(
    keys: np.ndarray,
    sd: np.ndarray,
    tb: np.ndarray,
    nt: int,
    cls_of_id: np.ndarray,
    ranges: list[tuple[int, int]],
    grid: np.ndarray,
    min_count: int,
    budget_slack: float,
    n_phases: int = 1,
) -> dict:
    """The ``class-stack`` node of an access stream given each id's class (see :func:`fit_class_stack`).

    With ``n_phases`` > 1 each class also gets ``sd_phases``: its stack-distance histogram in each of
    ``n_phases`` equal runs of time bins (K-merged like ``sd``; ``None`` where it has no reuse).
    """
    from tracegen._fit_kernels import _node_counts

    n = keys.shape[0]
    n_cls = len(ranges)
    acls = cls_of_id[keys]
    n_ids = np.bincount(cls_of_id, minlength=n_cls)
    rep = _repeat_rates(sd, acls, n_cls, min_count)  # repeats of classes with rep > 0 are drawn apart
    n_phases = int(max(1, min(n_phases, nt)))
    acc, cold, repeats, jp = _node_counts(
        acls, np.ascontiguousarray(sd, np.int64), np.ascontiguousarray(tb, np.int64), n_cls, nt, rep > 0,
        np.ascontiguousarray(grid, np.int64), n_phases,
    )
    share = acc.sum(0)
    acc_drawn = acc - repeats
    near = _nearest_live_bins(acc)
    joint = jp.sum(0)

    def binned(h):
        if h.sum() == 0:
            return None
        e, hh = _merge_bins(h, grid, min_count)
        return {"kind": "empirical-binned", "edges": [int(x) for x in e], "probs": _probs(hh)}

    classes = []
    for c in range(n_cls):
        cl = {
            "count_range": list(ranges[c]),
            "n_ids": int(n_ids[c]),
            "mean_count": float(share[c] / n_ids[c]),
            "share": float(share[c] / n),
            "sd": binned(joint[c]),
        }
        if n_phases > 1:
            cl["sd_phases"] = [binned(jp[q, c]) for q in range(n_phases)]
        classes.append(cl)
    return {
        "kind": "class-stack",
        "n_time_bins": nt,
        "n_phases": n_phases,
        "budget_slack": budget_slack,
        "coupling": DEFAULT_COUPLING,
        "classes": classes,
        "mix": _mix_rows(acc[near], share),
        "cold": _cold_rows(cold[near], acc_drawn[near]),
        "repeat": [float(v) for v in rep],
    }


LFU_FRACTIONS = (0.01, 0.1, 0.3)  # LFU/FIFO caches the mode choice compares: these shares of the distinct ids
# tables shorter than this are scored without LFU/FIFO (the threshold below which choose_mode already
# takes the worst of three twins): 1% of a few hundred ids is a cache of one or two rows, whose
# miss ratio is seed noise (the Criteo sample tables: 1,000 rows, 2-300 distinct ids)
LFU_MIN_ACCESSES = 50_000
LFU_MIN_IDS = 20  # nor tables of fewer distinct ids (as benchmarks/quick_fidelity.py's non-LRU columns)
# tables of at most this many distinct ids also try classes FINE_BINS_PER_OCTAVE per octave of count
# (about one id per class in a small table; see choose_mode)
FINE_MAX_IDS = 4096
FINE_BINS_PER_OCTAVE = 64


def _lfu_sizes(distinct: int) -> np.ndarray:
    return np.asarray([max(1, int(f * distinct)) for f in LFU_FRACTIONS], np.int64)


def _policy_miss_ratios(keys: np.ndarray, n_keys: int, distinct: int) -> np.ndarray:
    """The miss ratios the mode choice compares: in-cache LFU, then FIFO, at ``LFU_FRACTIONS`` of ``distinct``."""
    from tracegen._fit_kernels import _fifo_misses

    sizes = _lfu_sizes(distinct)
    keys = np.ascontiguousarray(keys, np.int64)
    n = max(keys.shape[0], 1)
    fifo = [_fifo_misses(keys, max(int(n_keys), 1), int(c)) / n for c in sizes]
    return np.concatenate([_lfu_miss_ratios(keys, n_keys, sizes), np.asarray(fifo, np.float64)])


def _lfu_miss_ratios(keys: np.ndarray, n_keys: int, sizes: np.ndarray) -> np.ndarray:
    """In-cache LFU miss ratios (libCacheSim's ``LFU``) of dense ``keys`` at each cache size."""
    from tracegen._fit_kernels import _lfu_misses

    keys = np.ascontiguousarray(keys, np.int64)
    if keys.shape[0] == 0:
        return np.zeros(len(sizes), np.float64)
    top = int(np.bincount(keys, minlength=int(n_keys)).max())
    n = keys.shape[0]
    return np.asarray([_lfu_misses(keys, int(n_keys), max(int(c), 1), top) / n for c in sizes], np.float64)


def _twin_score(
    node: dict,
    lengths: np.ndarray,
    cardinality: int,
    stats: dict,
    seed: int = 0,
    n_samples: int | None = None,
    bound: float = math.inf,
    memo: dict | None = None,
) -> float:
    """Error of a sampled twin against the real profile: worst error/target ratio (+ 0.1 x their sum).

    Errors: LRU miss-ratio curve (mean and max over 40 log-spaced sizes), top-1% and top-10% share
    and, when ``stats`` holds the real ``"policy"`` miss ratios, the largest in-cache LFU and FIFO
    miss-ratio errors at ``LFU_FRACTIONS`` of the distinct ids (LFU is the policy the LRU curve says least
    about: it rewards ids whose popularity lasts). All are aggregates of the whole table, or of its
    first ``len(lengths)`` of ``n_samples`` samples when the twin is a window of a long table.

    The errors are non-negative, so the first twin's terms alone give a lower bound of the score.
    When that bound exceeds ``bound`` the LFU/FIFO twins are not sampled and the bound is returned
    (a candidate that cannot beat ``bound``): any return value above ``bound`` may be a lower bound,
    one at or below it is exact. ``memo`` (a dict per candidate) keeps the first twin's terms, so a
    later call with a higher bound samples only the missing twins.
    """
    from tracegen.locality import dense_keys

    tb = _time_bins(lengths, int(node["n_time_bins"]), n_samples=n_samples)
    u = stats["id_counts"].shape[0]
    memo = {} if memo is None else memo
    if seed not in memo:
        smp = ClassStackSampler(node, cardinality, np.random.SeedSequence([seed, 99]))
        memo[seed] = _twin_ratios(smp.next(int(lengths.sum()), tb), stats)
    r, lfu = memo[seed]
    if lfu is None or _combine(r) > bound:
        return _combine(r)

    def lfu_twin(j):  # the extra twins that only the LFU/FIFO terms read (threads: see choose_mode)
        smp2 = ClassStackSampler(node, cardinality, np.random.SeedSequence([seed, 99 - j]))
        k2, u2 = dense_keys(smp2.next(int(lengths.sum()), tb))
        return _policy_miss_ratios(k2, u2, u)

    # LFU on small caches is chaotic (the ids that fill the cache early stay): average the signed
    # errors of LFU_TWINS twins (one twin's error varies by 0.002-0.01 with the seed)
    with _twin_threads(LFU_TWINS - 1) as pool:
        extra = list(pool.map(lfu_twin, range(1, LFU_TWINS)))
    for x in extra:  # summed in twin order
        lfu = lfu + x
    d = np.abs(lfu / LFU_TWINS - stats["policy"]).reshape(2, -1)  # LFU, FIFO
    return _combine([*r, *(float(x) / LFU_TARGET for x in d.max(axis=1))])


def _combine(r: list) -> float:
    r = np.asarray(r)
    return float(r.max() + 0.1 * r.sum())


def _twin_ratios(out: np.ndarray, stats: dict) -> tuple[list, np.ndarray | None]:
    """A twin's errors against the real profile, each over its target: LRU miss-ratio curve mean and
    max (40 log-spaced sizes), top-1% and top-10% share; and the twin's LFU and FIFO miss ratios at
    ``LFU_FRACTIONS`` of the distinct ids (``None`` when ``stats`` holds no real ones)."""
    from tracegen.locality import dense_keys, miss_ratio_curve, sd_histogram, stack_distances

    u = stats["id_counts"].shape[0]
    h, c0 = sd_histogram(stack_distances(out))
    sizes = np.unique(np.geomspace(1, max(u, 2), 40).astype(np.int64))
    _, ma = miss_ratio_curve(stats["sd_counts"], stats["cold"], sizes)
    _, mb = miss_ratio_curve(h, c0, sizes)
    keys, u_out = dense_keys(out)
    sc = np.bincount(keys)
    e = np.abs(ma - mb)
    t1 = abs(_top_share(stats["id_counts"], 0.01) - _top_share(sc, 0.01, u))
    t10 = abs(_top_share(stats["id_counts"], 0.1) - _top_share(sc, 0.1, u))
    # errors relative to the targets (MRC mean 0.005, max 0.02, top-1% 0.02; top-10% 0.04; LFU, FIFO 0.03)
    r = [e.mean() / 0.005, e.max() / 0.02, t1 / 0.02, t10 / 0.04]
    lfu = _policy_miss_ratios(keys, u_out, u) if stats.get("policy") is not None else None
    return r, lfu


LFU_TARGET = 0.03  # the non-LRU miss-ratio target of issue #4 (scales the LFU and FIFO terms of _twin_score)
# twins whose LFU miss ratios _twin_score averages: with one, ARC OLTP's choice flipped between
# candidates 0.004 apart in score; with three it keeps the age-split classes (3-seed mean LFU error
# 0.037 against 0.041-0.049 for the others)
LFU_TWINS = 3
# budget_slack values tried on the winner (see DEFAULT_BUDGET_SLACK): the budget keeps within-class
# counts but, on traces of ids read a fixed few times (a block trace's re-reads), forces reuses away
# from their drawn depth (CloudPhysics twin: LRU MRC mean 0.0078 at 1.2, 0.0048 at 1.5, where an id
# read twice may be read a third time; 2.0 and 3.0 gave the same LRU gain and lost more popularity)
SLACK_CHOICES = (1.5,)
TIE_MARGIN = 0.05  # mode scores this close (relative) are a tie: the per-phase candidate is tried in each
HYBRID_CHOICES = (64,)  # coupling_below values choose_mode tries besides none and all (256: same or worse)
# rounds of calibrate_global on choose_mode's last candidate (0: not tried). Winner -> that candidate, LRU MRC mean
# of two twins: ARC OLTP 0.0024 -> 0.0012 / 0.0009 / 0.0009 after 1 / 2 / 3 rounds; probe-rotate (winner with
# phases) 0.0082 -> 0.0040 / 0.0027 / 0.0020; drifting Criteo-like columns of 305 and 1,460 ids (4M accesses)
# 0.0114 -> 0.0094 / 0.0073 / 0.0060 and 0.0085 -> 0.0058 / 0.0042 / 0.0035; CloudPhysics 0.0043 -> 0.0030 (max
# 0.0125 -> 0.0178: choose_mode's LRU guard keeps it out)
GLOBAL_ROUNDS = 3


def choose_mode(node: dict, lengths: np.ndarray, cardinality: int, stats: dict, calibrate: int = 2) -> dict:
    """Pick the sampling mode (and class design) for this table by sampling a twin of each candidate.

    ``coupling`` (take the id at exactly the drawn depth when its class passes a maximal coupling
    to P(class | depth)) reproduces bursty hot ids; the uncoupled mode (nearest id of a pre-drawn
    class, stack distances calibrated) keeps popularity tighter; the hybrid couples drawn distances
    below ``HYBRID_CHOICES`` only (one calibration round). All three are always tried (the
    hybrid used to be tried only when full coupling beat the uncoupled mode: on ARC OLTP that missed
    coupled-below-64, LRU MRC mean 0.0019 -> 0.0010). Then, when ``stats`` holds a ``"split_node"``
    (classes split by age profile, :func:`_age_split`), it is tried in the better of the uncoupled
    and hybrid modes (fully calibrated; in the coupled mode it scored worse on ARC OLTP and the planted
    trace, LFU error 0.045 / 0.055 against 0.037 / 0.031 coupled below 64, three twins each). A table
    of at most ``FINE_MAX_IDS`` ids also tries ``"fine_node"`` (classes ``FINE_BINS_PER_OCTAVE`` per
    octave of count: about one id per class) in both calibrated modes. Four count bins per octave put ids of
    close counts in one class, whose accesses the depth draws then split about evenly, so a small
    table's twin had flatter popularity: i.i.d. Zipf(1.0) tables of 40, 100, 300, 1,000 and 3,000 ids
    (300k accesses, two tables and two twins each) had in-cache LFU errors of 0.062, 0.058, 0.085,
    0.077, 0.040 with four bins and 0.013, 0.011, 0.028, 0.008, 0.013 with the fine candidate. The
    candidate with the lowest :func:`_twin_score` (LRU curve, popularity, LFU and FIFO miss ratios:
    aggregate statistics of the real table only) wins. These candidates draw one stack-distance
    histogram per class. Then the winner is tried with a looser access budget (``SLACK_CHOICES``)
    and last with per-phase histograms (``n_phases``: the depth of reuse changes as the footprint
    grows; ARC P3's first 1M accesses: LRU MRC max 0.0265 -> 0.0198, ARC miss ratio error 0.041 ->
    0.022); each is kept when it scores better. When other modes' twins scored within ``TIE_MARGIN``
    of the winning mode's, the per-phase histograms are tried in each of them too (one twin decides a
    tie: on a planted drift trace the uncoupled and hybrid modes scored 0.880 and 0.879, and phases
    in the hybrid mode scored 3.5 against 0.67 uncoupled, ARC error 0.052 -> 0.033; on the loop probe
    all three modes scored 5.47-5.52, and phases scored 5.44 in the hybrid mode, 5.47 uncoupled and
    0.23 coupled). (Scaling the
    phase histograms by the one-histogram calibration's factors instead of calibrating them per phase
    scored better on ARC OLTP and CloudPhysics but much worse on the drifting planted trace: LRU MRC
    mean ratio 0.74-1.16 against 0.38-0.62.) A candidate's LFU/FIFO twins are sampled only when a
    comparison needs its exact score: its first twin's terms bound the score from below, so the choice
    is the one scoring every candidate in full gives, with fewer twins (ARC OLTP 30 -> 28, ARC P3's
    first 1M accesses 27 -> 21; the same dist.json on all 20 traces of the hash check). Last, the winner
    goes through :func:`calibrate_global` (``GLOBAL_ROUNDS`` rounds against the table's global law of depths
    >= 1, per phase when it draws per-phase histograms); the result replaces the winner when its first
    twin's LRU mean and max terms are both no worse and its score is within ``TIE_MARGIN`` of the winner's.
    """
    full_lengths, n_samples = lengths, None
    if stats.get("window") is not None:  # a long table is scored on twins of its first samples
        lengths, n_samples = stats["window"]
    # small tables are noisy: judge each mode by its worst of three twins (penalises unstable modes)
    seeds = range(3) if int(lengths.sum()) < 50_000 else range(1)

    def score(c, memo, bound=-math.inf):  # (a lower bound when above ``bound``: see _twin_score)
        return max(
            _twin_score(c, lengths, cardinality, stats, seed=s, n_samples=n_samples, bound=bound, memo=memo)
            for s in seeds
        )

    def build(base, cb, iters=None):
        c = {**base, "coupling": cb == ALWAYS}
        if 0 < cb < ALWAYS:
            c["coupling_below"] = int(cb)
        else:
            c.pop("coupling_below", None)
        if iters is None:
            iters = 0 if cb == ALWAYS else (calibrate if cb == 0 else min(calibrate, 1))
        if not iters:
            return c
        return calibrate_class_stack(c, full_lengths, cardinality, iters=iters)

    designs = {"plain": node, "split": stats.get("split_node"), "fine": stats.get("fine_node")}

    def make(design, cb, iters=None, phases=False, slack=None):
        nd = designs[design] if slack is None else {**designs[design], "budget_slack": float(slack)}
        if phases:  # per-phase histograms, calibrated per phase (coupled: not calibrated)
            return build(nd, cb, calibrate if cb != ALWAYS else 0)
        return build(_without_phases(nd), cb, iters)

    modes = (0, *HYBRID_CHOICES, ALWAYS)

    def make_scored(cb):  # a candidate and the lower bound of its score from its first twin
        c, memo = make("plain", cb), {}
        return c, memo, score(c, memo)

    # the candidates are independent: their twins run in threads (the sampling, stack-distance and
    # LFU kernels release the GIL); each twin has its own seed, so the choice does not depend on it
    # (one thread for long tables: each candidate's calibration twins are whole-table arrays)
    with _twin_threads(len(modes) if int(full_lengths.sum()) <= THREAD_MAX_ACCESSES else 1) as ex:
        got = list(ex.map(make_scored, modes))
    cands = [c for c, _, _ in got]
    # each score is [value, exact, memo]: a candidate's LFU/FIFO twins are sampled only when a
    # comparison needs its exact score (branch and bound: the choice is the one all exact scores give)
    scores = [[lo, False, memo] for _, memo, lo in got]
    made = [{"design": "plain", "cb": cb} for cb in modes]  # make()'s arguments for each candidate

    def exact(i):
        if not scores[i][1]:
            scores[i][:2] = [score(cands[i], scores[i][2], math.inf), True]
        return scores[i][0]

    def lowest(idx):  # the index of the lowest score among idx (the first of equals, as np.argmin)
        while True:
            m = min((scores[i][0] for i in idx if scores[i][1]), default=math.inf)
            open_ = [i for i in idx if not scores[i][1] and not scores[i][0] > m]  # (NaN: open)
            if not open_:
                return min((i for i in idx if scores[i][1]), key=lambda i: (scores[i][0], i))
            exact(min(open_, key=lambda i: (scores[i][0], i)))

    def add(**how):
        made.append(how)
        cands.append(make(**how))
        memo = {}
        scores.append([score(cands[-1], memo), False, memo])

    calibrated = modes[lowest(range(len(modes) - 1))]  # the better of the calibrated modes
    if designs["split"] is not None:  # (coupled split twins scored worse)
        add(design="split", cb=calibrated, iters=calibrate)
    if designs["fine"] is not None:  # in both calibrated modes (the plain classes' scores do not tell)
        for cb in sorted(modes[: len(modes) - 1], key=lambda m: m != calibrated):
            add(design="fine", cb=cb, iters=calibrate)
    best = made[lowest(range(len(cands)))]
    for slack in SLACK_CHOICES:
        add(**best, slack=slack)
    best = made[lowest(range(len(cands)))]
    if int(designs[best["design"]].get("n_phases", 1)) > 1:
        add(**best, phases=True)
        # one twin decides between modes: in each other mode that scored within TIE_MARGIN of the
        # winner's, the phases are tried too
        top = scores[lowest(range(len(modes)))][0] * (1.0 + TIE_MARGIN)
        near = [j for j in range(len(modes)) if scores[j][0] <= top and exact(j) <= top]
        for j in sorted(near, key=lambda j: (scores[j][0], j)):
            if modes[j] != best["cb"]:
                add(**{**best, "cb": modes[j]}, phases=True)
    i = lowest(range(len(cands)))
    target = stats.get("global_phases") if _draws_phases(cands[i]) else stats.get("global")
    if GLOBAL_ROUNDS and target is not None:
        # last, the winner calibrated to the table's global law (per phase when it draws per-phase histograms)
        cands.append(calibrate_global(cands[i], full_lengths, cardinality, *target, iters=GLOBAL_ROUNDS))
        memo = {}
        scores.append([score(cands[-1], memo), False, memo])
        # it refines the winner's depths only, so it is kept when its LRU curve is closer (mean and max terms of
        # its first twin) and its score is not worse beyond TIE_MARGIN (the LFU/FIFO terms move by that much with
        # the twins' seeds: ARC OLTP 1.54-1.62 against 1.565). On CloudPhysics it scored better (1.50 against
        # 1.54) with a worse max (0.0216 against 0.0129 over two twins): kept out
        j = len(cands) - 1
        lru_j, lru_i = (scores[k][2].get(min(seeds)) for k in (j, i))  # (terms, LFU) of the first twins
        closer = lru_j is not None and lru_i is not None and all(a <= b for a, b in zip(lru_j[0][:2], lru_i[0][:2]))
        if closer and exact(j) <= exact(i) * (1.0 + TIE_MARGIN):
            return cands[j]
    return cands[i]


def _twin_threads(n: int):
    """A thread pool for ``n`` independent twin jobs (at most the CPU count)."""
    import concurrent.futures as cf

    return cf.ThreadPoolExecutor(max_workers=max(1, min(int(n), os.cpu_count() or 1)))


def _without_phases(node: dict) -> dict:
    """``node`` with one stack-distance histogram per class (its ``sd_phases`` dropped)."""
    classes = [{k: v for k, v in cl.items() if k != "sd_phases"} for cl in node["classes"]]
    return {**node, "n_phases": 1, "classes": classes}


def calibrate_class_stack(
    node: dict,
    lengths: np.ndarray,
    cardinality: int,
    iters: int = 2,
    seed: int = 0,
    gamma: float = 0.6,
) -> dict:
    """Reweight each class's drawn stack-distance bins so the *realised* ones match the fitted ones.

    The sampler reuses the class-``c`` id nearest to a drawn depth, so realised distances are a
    smoothed version of the drawn ones (few class-``c`` ids near the top of the stack push short
    draws deeper). Each iteration samples a twin of the fitted length, histograms the realised
    distances of every class on its own bins, and multiplies the drawn probabilities by
    (target / realised) ** gamma (the ratio clipped to [1/4, 4]); only aggregate histograms are used.
    The immediate-repeat rates are solved for: a class drawn again right after itself re-reads the
    top id too (a class of one id always), so the realised rate exceeds the drawn one; modelling the
    excess as ``a (1 - repeat)**2`` gives the drawn rate that meets the fitted one (docs/trace-model.md).
    Measured (benchmarks/quick_fidelity.py): LRU MRC mean error on ARC OLTP 0.0042 -> 0.0012.
    Calibrating on a window of a long table instead (its first samples) did not transfer: on ARC
    OLTP with a 300k-access window, LRU MRC mean 0.0050 against 0.0021 calibrated on the whole.
    """
    from tracegen.locality import stack_distances

    n_ph = int(node.get("n_phases", 1))

    def sd_nodes(cl):  # the histograms the sampler draws from: one per phase, or the class's own
        if n_ph > 1 and cl.get("sd_phases") is not None:
            return list(cl["sd_phases"])
        return [cl["sd"]]

    target = [
        [None if h is None else np.asarray(h["probs"], np.float64) for h in sd_nodes(cl)] for cl in node["classes"]
    ]
    n = int(lengths.sum())
    tb = _time_bins(lengths, int(node["n_time_bins"]))
    phase = _phase_of(tb, int(node["n_time_bins"]), n_ph)
    rep = np.asarray(node.get("repeat") or [0.0] * len(node["classes"]), np.float64)
    rep_target = rep.copy()
    for it in range(iters):
        smp = ClassStackSampler(node, cardinality, np.random.SeedSequence([seed, it]))
        out = smp.next(n, tb)
        cls = smp.last_cls
        sd = stack_distances(out)
        if rep_target.any():  # drawn distances may land on the top id too: solve for the repeat rates
            c_n = len(node["classes"])
            followed = np.bincount(cls[:-1], minlength=c_n)
            got = np.bincount(cls[1:][sd[1:] == 0], minlength=c_n) / np.maximum(followed, 1)
            # realised = rep + (1 - rep) e, e: the rate at which the other accesses land on the top
            # id. A non-repeat access draws class c with probability m_c (1 - rep_c) / Z, Z =
            # sum_k m_k (1 - rep_k) (m: the class shares), and then lands on the top id at a rate
            # kappa_c (1 for a class of one id), so e = b (1 - rep) / Z with b = kappa m measured on the
            # twin. With x = 1 - rep: target = 1 - x + (b / Z) x^2, solved for x (the smaller root;
            # where none, the x that gives the fewest repeats) jointly, since Z moves with every rate
            # (taken as fixed, the solve overshot: a 4-id Zipf table kept 0.146 of drawn repeats on
            # its top id after two rounds, where 0 is exact, and its twin had 0.363 of its accesses
            # at distance 0 against 0.336)
            upd = (rep_target > 0) & (followed >= 50) & (got > 0)
            m = np.asarray([float(cl.get("share", 0.0)) for cl in node["classes"]], np.float64)
            m = m / m.sum() if m.sum() > 0 else np.full(c_n, 1.0 / c_n)
            x0 = np.maximum(1.0 - rep, 1e-9)
            b = np.clip(got - rep, 0.0, None) / x0**2 * float(np.dot(m, 1.0 - rep))
            with np.errstate(divide="ignore", invalid="ignore"):
                # fewer than drawn (the top id's budget spent): the ratio update of the histograms
                ratio = rep * np.clip(rep_target / got, 0.25, 4.0) ** gamma
            want = np.where(upd & ~(got >= rep), np.clip(ratio, 0.0, 0.99), rep)
            rep = _solve_repeats(b, m, rep_target, want, np.flatnonzero(upd & (got >= rep)))
            node = {**node, "repeat": [float(v) for v in rep]}
        # the realised distances grouped by (class, phase), in one sort; repeats are drawn apart
        keep = sd > np.where(rep_target > 0, 0, -1)[cls]  # (a solved rate may be 0: the histogram still lacks 0)
        grp = cls[keep].astype(np.int64) * n_ph + phase[keep]
        order = np.argsort(grp, kind="stable")
        sd_g = sd[keep][order]
        bounds = np.searchsorted(grp[order], np.arange(len(node["classes"]) * n_ph + 1))
        new_classes = []
        for c, cl in enumerate(node["classes"]):
            hs = sd_nodes(cl)
            for q, h in enumerate(hs):
                if h is None or target[c][q] is None:
                    continue
                e = np.asarray(h["edges"], np.int64)
                a, z = (c * n_ph + q, c * n_ph + q + 1) if len(hs) > 1 else (c * n_ph, (c + 1) * n_ph)
                b = np.clip(np.searchsorted(e, sd_g[bounds[a] : bounds[z]], side="right") - 1, 0, e.shape[0] - 2)
                real = np.bincount(b, minlength=e.shape[0] - 1).astype(np.float64)
                if real.sum() < 50:
                    continue
                real /= real.sum()
                drawn = np.asarray(h["probs"], np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(real > 0, target[c][q] / real, 4.0)
                ratio = np.where(target[c][q] > 0, np.clip(ratio, 0.25, 4.0), 0.0)
                p = drawn * ratio**gamma
                if p.sum() > 0:
                    hs[q] = {**h, "probs": _probs(p)}
            if len(hs) > 1:
                new_classes.append({**cl, "sd_phases": hs})
            else:
                new_classes.append({**cl, "sd": hs[0]})
        node = {**node, "classes": new_classes}
    return node


def _draws_phases(node: dict) -> bool:
    """Whether the sampler draws per-phase histograms for ``node`` (some class has ``sd_phases``)."""
    return int(node.get("n_phases", 1)) > 1 and any(cl.get("sd_phases") for cl in node["classes"])


def _law_cdf(h: dict, x: np.ndarray, lo: int) -> tuple[np.ndarray, float]:
    """An ``empirical-binned`` law's CDF over depths ``>= lo`` at depths ``x`` (uniform inside each bin) and
    its mass below ``lo``."""
    e = np.asarray(h["edges"], np.float64)
    c = np.concatenate([[0.0], np.cumsum(np.asarray(h["probs"], np.float64))])
    below = float(np.interp(float(lo), e, c))
    return np.clip((np.interp(x, e, c) - below) / max(1.0 - below, 1e-12), 0.0, 1.0), below


def calibrate_global(
    node: dict,
    lengths: np.ndarray,
    cardinality: int,
    grid: np.ndarray,
    target_cdf: np.ndarray,
    iters: int = 3,
    lo: int = 1,
    seed: int = 1,
) -> dict:
    """Move every class's drawn stack-distance law so a twin's *global* law of depths ``>= lo`` meets
    ``target_cdf`` (``P(SD < grid[i] | SD >= lo)``; one row per phase for a node with per-phase histograms).

    Per-class calibration (:func:`calibrate_class_stack`) meets each class's own histogram where it can,
    but classes compete for the same stack (a drifting table's hot ids are near the top whatever their
    class draws), so the mixture can stay off. The sampler realises a drawn depth ``d`` at about
    ``R^-1(F(d))`` (``F``: the drawn mixture's CDF, weighted by each class's realised reuses; ``R``: the
    twin's realised one), so drawing from ``F' = G o R^-1 o F`` realises the target ``G``. Each round samples a
    twin and maps every class through the one monotone depth map ``F^-1 o F'`` (per phase, with that phase's
    histograms and target): the class keeps its bins, its mass below ``lo`` (``lo = 1``: the immediate
    repeats, which the repeat rates own) and its rank in depth (hot classes stay shallow). Only the node and
    the target are read. Used on :func:`choose_mode`'s winner, and on the DP fit's StatStack law (``lo = 0``;
    :func:`tracegen.privacy.fit_dp`).
    """
    from tracegen.locality import sd_histogram, stack_distances

    g_int = np.asarray(grid, np.int64)
    g = g_int.astype(np.float64)
    targets = np.atleast_2d(np.asarray(target_cdf, np.float64))
    ramp = 1e-12 * np.arange(g.shape[0])  # (np.interp needs increasing abscissae)
    n = int(lengths.sum())
    nt = int(node["n_time_bins"])
    tb = _time_bins(lengths, nt)
    n_ph = int(node.get("n_phases", 1))
    phased = _draws_phases(node)
    if targets.shape[0] != (n_ph if phased else 1):
        raise ValueError(f"calibrate_global: {targets.shape[0]} target rows for {n_ph if phased else 1} phase(s)")
    phase = _phase_of(tb, nt, n_ph) if phased else None
    n_cls = len(node["classes"])

    def remap(hists, sd, cls, target):  # the drawn laws of one phase, mapped (None: too few reuses)
        keep = sd >= lo
        got = global_target(sd_histogram(sd)[0], grid=g_int, lo=lo)  # (a histogram: no sort)
        if np.count_nonzero(keep) < 100 or got is None:
            return None
        real = got[1]
        w = np.bincount(cls[keep], minlength=n_cls).astype(np.float64)
        use = [c for c in range(n_cls) if hists[c] is not None and w[c] > 0]
        if not use:
            return None
        drawn = sum(w[c] * _law_cdf(hists[c], g, lo)[0] for c in use) / w[use].sum()
        want = np.maximum.accumulate(np.interp(np.interp(drawn, real + ramp, g), g, target))  # G(R^-1(F(x)))
        depth = np.interp(want, drawn + ramp, g)  # F^-1(F'(x)) at every grid edge
        out = list(hists)
        for c in use:
            h = hists[c]
            e = np.asarray(h["edges"], np.float64)
            c_new, below = _law_cdf(h, np.interp(e, g, depth), lo)
            old = np.concatenate([[0.0], np.cumsum(np.asarray(h["probs"], np.float64))])
            cdf = np.maximum.accumulate(np.where(e <= lo, old, below + (1 - below) * c_new))
            # mass the map puts past the class's last edge (a target deeper than the twin's deepest reuse) stays in
            # its last bin; renormalising would spread it over every bin, depth 0 included (review round 15)
            cdf[-1] = max(old[-1], cdf[-2] if cdf.shape[0] > 1 else 0.0)
            probs = np.maximum(np.diff(cdf), 0)
            if probs.sum() > 0:
                out[c] = {**h, "probs": _probs(probs)}
        return out

    for it in range(int(iters)):
        smp = ClassStackSampler(node, cardinality, np.random.SeedSequence([seed, 77, it]))
        sd = stack_distances(smp.next(n, tb))
        cls = smp.last_cls
        classes = [dict(cl) for cl in node["classes"]]
        if phased:  # (a class without a phase's histogram draws its whole-trace one there: left as it is)
            for q in range(n_ph):
                m = phase == q
                hists = [(cl.get("sd_phases") or [None] * n_ph)[q] for cl in node["classes"]]
                new = remap(hists, sd[m], cls[m], targets[q])
                for c, h in enumerate(new or []):
                    if h is not hists[c]:
                        classes[c]["sd_phases"] = [h if k == q else x for k, x in enumerate(classes[c]["sd_phases"])]
        else:
            new = remap([cl.get("sd") for cl in node["classes"]], sd, cls, targets[0])
            for c, h in enumerate(new or []):
                classes[c]["sd"] = h
        node = {**node, "classes": classes}
    return node


REPEAT_SOLVE_ROUNDS = 20  # fixed-point rounds of the joint repeat-rate solve in calibrate_class_stack


def _solve_repeats(b: np.ndarray, m: np.ndarray, target: np.ndarray, rep: np.ndarray, solve) -> np.ndarray:
    """The repeat rates of the classes ``solve`` (the others held at ``rep``) that meet ``target`` jointly:
    at most ``REPEAT_SOLVE_ROUNDS`` Gauss-Seidel rounds of :func:`_solve_repeat_x`, each class solved with the
    rates solved before it in ``Z`` (updating all classes at once oscillated between two points where two
    classes of one id each hold most of the accesses); stops when no rate moves by 1e-12. Rates are clipped
    to ``[0, 0.99]``. (Plain floats: a table of 4,096 fine classes solves in milliseconds.)"""
    want = [float(v) for v in np.asarray(rep, np.float64)]
    mm = [float(v) for v in np.asarray(m, np.float64)]
    bb = [float(v) for v in np.asarray(b, np.float64)]
    tt = [float(v) for v in np.asarray(target, np.float64)]
    idx = [int(c) for c in solve]
    z = sum(mi * (1.0 - wi) for mi, wi in zip(mm, want))
    for _ in range(REPEAT_SOLVE_ROUNDS if idx else 0):
        moved = 0.0
        for c in idx:
            w = max(z - mm[c] * (1.0 - want[c]), 0.0)
            new = min(max(1.0 - _solve_repeat_x(bb[c], mm[c], tt[c], w), 0.0), 0.99)
            z = w + mm[c] * (1.0 - new)
            moved = max(moved, abs(new - want[c]))
            want[c] = new
        if moved < 1e-12:
            break
    return np.asarray(want, np.float64)


def _solve_repeat_x(b: float, m: float, target: float, w: float) -> float:
    """One step of the joint repeat solve for one class: ``x = 1 - repeat`` in ``(0, 1]`` with
    ``target = 1 - x + b x^2 / (m x + W)``, ``w`` the other classes' part of ``Z`` (``sum_k m_k x_k``).

    The class's own part of ``Z`` is solved for, not held at ``x_now``: held, a class of one id with more
    than half the accesses (b = m > 1/2, Criteo's dominant missing-value ids) has its root on the other
    branch, and the rounds walked away from it (an IRM table whose top id has 0.76 of the accesses kept a
    drawn repeat rate of 0.69 where 0 is exact; its twin had 0.64 of its accesses at distance 0 against
    0.58). Multiplied out: ``(m - b) x^2 + (W - (1 - target) m) x - (1 - target) W = 0``; the smallest root
    in ``(0, 1]``, or where none, the ``x`` that gives the fewest repeats."""
    w = max(float(w), 0.0)
    qa = m - b
    qb = w - (1.0 - target) * m
    qc = -(1.0 - target) * w
    disc = qb * qb - 4.0 * qa * qc
    roots = []
    if disc >= 0:
        q = -0.5 * (qb + math.copysign(math.sqrt(disc), qb))  # the numerically stable pair of roots
        if q != 0:
            roots.append(qc / q)
        if qa != 0:
            roots.append(q / qa)
    ok = [r for r in roots if 0 < r <= 1]
    if ok:
        return min(ok)
    if qa < 0:  # the argmax of the quadratic on (0, 1]
        return min(max(-qb / (2.0 * qa), 1e-9), 1.0)
    return 1.0


def _repeat_rates(sd: np.ndarray, acls: np.ndarray, n_cls: int, k: int) -> np.ndarray:
    """Per class ``c``, the rate at which the access after a class-``c`` access re-reads the same id.

    An immediate repeat (stack distance 0: a block written right after it is read, an id twice
    in a row) needs the id on top of the stack to be of the class drawn next; with independent
    class draws that is rare, and the short distance drawn lands on a deeper id of the class (too
    few short reuses, too many medium ones). The sampler draws these repeats explicitly instead
    and keeps the class mix (see ``_draw_accesses``). Classes with fewer than ``k`` repeats get 0.
    """
    rc = np.bincount(acls[sd == 0], minlength=n_cls).astype(np.float64)
    followed = np.bincount(acls[:-1], minlength=n_cls).astype(np.float64)
    rate = np.where((rc >= k) & (followed > 0), rc / np.maximum(followed, 1.0), 0.0)
    return np.minimum(rate, 0.99)


def _mix_rows(acc: np.ndarray, share: np.ndarray) -> list[list[float]]:
    rows = []
    for t in range(acc.shape[0]):
        rows.append(_probs(acc[t] if acc[t].sum() > 0 else share))
    return rows


def _cold_rows(cold: np.ndarray, acc: np.ndarray) -> list[list[float]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(acc > 0, cold / np.maximum(acc, 1), 0.0)
    return [[float(min(1.0, max(0.0, v))) for v in row] for row in q]


def _nearest_live_bins(acc: np.ndarray) -> np.ndarray:
    """Per time bin, itself if it holds accesses, else the nearest bin that does (the later one on a tie).

    A bin without any access (a feature absent from the first samples, say) still gets accesses in a
    twin, whose bag lengths do not depend on time; with no class mix and cold rates of its own its ids
    could only repeat the first one (LRU MRC error 0.11 with the first 12.5% of the bags empty).
    """
    t = np.arange(acc.shape[0])
    live = np.flatnonzero(acc.sum(axis=1) > 0)
    if live.shape[0] in (0, acc.shape[0]):
        return t
    j = np.clip(np.searchsorted(live, t), 0, live.shape[0] - 1)
    before = live[np.maximum(j - 1, 0)]
    return np.where(np.abs(before - t) < np.abs(live[j] - t), before, live[j])


def fit_dense(dense: np.ndarray, k: int, n_quantiles: int = 64) -> dict:
    """Per-column quantile histograms (each bin holds >= k samples; extremes clamped to the k-th value)."""
    dense = np.asarray(dense)
    b = dense.shape[0]
    q = int(max(1, min(n_quantiles, b // max(k, 1))))
    cols = []
    for j in range(dense.shape[1]):
        x = np.sort(np.asarray(dense[:, j], np.float64))
        x = x[np.isfinite(x)]
        if x.size == 0:
            cols.append({"edges": [0.0, 0.0], "probs": [1.0], "integer": True})
            continue
        kk = min(max(k, 1), x.size) - 1
        lo, hi = x[kk], x[x.size - 1 - kk]
        if hi < lo:
            lo = hi = float(np.median(x))
        edges = np.quantile(np.clip(x, lo, hi), np.linspace(0.0, 1.0, q + 1))
        edges = np.maximum.accumulate(edges)
        integer = bool(np.all(x == np.round(x)))
        cols.append({"edges": [float(v) for v in edges], "probs": [1.0 / q] * q, "integer": integer})
    return {"kind": "empirical-quantiles", "dtype": str(dense.dtype), "columns": cols}


# ---------------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------------


def _rng(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(ss))


class ClassStackSampler:
    """Streaming sampler of one ``class-stack`` node: ``next(n, tbin) -> ids``; chunking keeps the output.

    ``last_cls`` is the class of each id of the last ``next`` call (valid until the next call).
    """

    BLOCK = 1 << 15  # accesses per kernel call (their pre-drawn inputs stay in cache)
    # True: the fast kernels (_predraw, _stack_run; one uniform stream). False: the separate pre-draw
    # and stack kernels with five streams (the sampler before; kept for the benchmark's same-run baseline)
    FUSED = True

    def __init__(self, node: dict, cardinality: int, seed: np.random.SeedSequence, scale: float = 1.0):
        from tracegen import _sample_kernels as K

        self._k = K
        classes = node["classes"]
        c = len(classes)
        self.n_classes = c
        self.nt = int(node["n_time_bins"])
        mix = np.asarray(node["mix"], np.float64).reshape(self.nt, c)
        self._cold2 = np.ascontiguousarray(np.asarray(node["cold"], np.float64).reshape(self.nt, c))
        self._cold = self._cold2.ravel()
        # immediate repeats (see _repeat_rates): the other accesses draw their class from
        # q_t ~ mix_t (1 - rep), so that the class shares stay mix_t
        self._rep = np.zeros(c)
        rows = mix
        if node.get("repeat") is not None:
            self._rep = np.asarray(node["repeat"], np.float64).reshape(c)
            q = mix * (1.0 - self._rep)[None, :]
            qs = q.sum(axis=1, keepdims=True)
            rows = np.where(qs > 0, q / np.maximum(qs, 1e-300), mix)
        self._mix_alias = _alias_tables([row for row in rows])
        self._prev = np.array([-1], np.int64)
        # stack-distance tables per phase (a run of time bins; see _class_stack_node): a class without
        # a phase's histogram uses its whole-trace one
        self.n_phases = int(node.get("n_phases", 1))
        self._phase_tables = []
        for q in range(self.n_phases):
            lo, width, probs = [], [], []
            for cl in classes:
                sdn = cl.get("sd")
                if self.n_phases > 1 and cl.get("sd_phases") is not None and cl["sd_phases"][q] is not None:
                    sdn = cl["sd_phases"][q]
                if sdn is None:
                    e, p = np.array([0, 1], np.int64), np.array([1.0])
                else:
                    e, p = np.asarray(sdn["edges"], np.int64), np.asarray(sdn["probs"], np.float64)
                lo.append(e[:-1])
                width.append(np.diff(e))
                probs.append(p)
            self._phase_tables.append(
                (
                    _alias_tables(probs),
                    np.ascontiguousarray(np.concatenate(lo), np.int64),
                    np.ascontiguousarray(np.concatenate(width), np.int64),
                )
            )
        self._sd_alias, self._sd_lo, self._sd_w = self._phase_tables[0]
        self.cardinality = int(cardinality)
        ch = seed.spawn(8)
        # (the sixth stream drew the non-fused path's budgets; budgets are _stratified now, from _r_cold)
        self._r_cls, self._r_cold, self._r_sd, self._r_in, self._r_pick, _, self._r_cpl = (_rng(s) for s in ch[:7])
        self._keys, self._half = _feistel_keys(ch[7], self.cardinality)
        self._perm = np.empty(1024, np.int64)  # synthetic id of each created ordinal (see _permuted)
        self._n_perm = 0
        rng_ = np.asarray([cl["count_range"] for cl in classes], np.float64).reshape(c, 2)
        means = np.asarray([cl.get("mean_count", np.sqrt(r[0] * r[1])) for cl, r in zip(classes, rng_)])
        self._bud_lo, self._bud_hi = rng_[:, 0], rng_[:, 1] + 1.0
        self._bud_a = np.array(
            [_power_exponent(float(lo), float(hi), float(mu)) for lo, hi, mu in zip(self._bud_lo, self._bud_hi, means)]
        )
        self._slack = float(node.get("budget_slack", DEFAULT_BUDGET_SLACK))
        # ids created per class: at most the fitted count, scaled to the sample length
        n_ids = np.asarray([cl["n_ids"] for cl in classes], np.float64)
        self._cls_cap = np.ceil(n_ids * float(scale) - 1e-9).astype(np.int64)
        self._cls_made = np.zeros(c, np.int64)
        self._cold_acc = self._r_cold.random(c)  # per-class cold credit (see _cold_schedule)
        # per-class offsets of the stratified budget draws (_sample_kernels._stratified)
        self._bud_off = self._r_cold.random(c)
        self._alloc(4096)
        self._state = np.zeros(3, np.int64)
        # coupling of the class at the drawn depth to the fitted P(class | depth bin)
        self._couple = coupling_below(node)  # drawn depths below this take the coupled pick
        top = int(max(max(int(lo.max() + w.max()) for _, lo, w in self._phase_tables), 2))
        self._grid = _sd_grid(top, 8)
        nb = self._grid.shape[0] - 1
        warm_w = (mix * (1.0 - self._cold.reshape(self.nt, c))).mean(axis=0)  # (C,) warm share of each class
        joint = np.zeros((nb, c))
        g = self._grid.astype(np.float64)
        for j, cl in enumerate(classes):
            if cl.get("sd") is None:
                continue
            e = np.asarray(cl["sd"]["edges"], np.float64)
            cdf = np.concatenate([[0.0], np.cumsum(np.asarray(cl["sd"]["probs"], np.float64))])
            joint[:, j] = warm_w[j] * np.diff(np.interp(g, e, cdf))
        tot = joint.sum(axis=1, keepdims=True)
        self._ptab = np.ascontiguousarray(np.where(tot > 0, joint / np.maximum(tot, 1e-300), 1.0 / c))
        self._qcnt = np.zeros((nb, c + 2))
        self._glut = K._grid_lut(self._grid)
        self._rbuf = np.empty(c)
        self._rep1 = np.concatenate([[0.0], self._rep])  # indexed by the previous class + 1 (-1: none yet)
        self._p_alias = _alias_tables(list(self._ptab))[2:]  # P(class | depth bin) rows, for the coupled pick

    def _alloc(self, n_slots: int) -> None:
        """Fresh state arrays for ``n_slots`` slots: reuses the spare set left by the last compaction
        (reset with memsets; no new pages to fault in) when it has the same size. Slot rows are not
        reset: the kernels write a row (at ``counter``) before they read it."""
        c = self.n_classes
        spare = getattr(self, "_spare", None)
        if spare is not None and spare[2].shape[0] == n_slots:
            self._tree, self._live0, self._slots, self._b0, self._b1, self._b2 = spare
            for a in (self._tree, self._live0, self._b0, self._b1, self._b2):
                a.fill(0)
        else:
            self._tree = np.zeros((n_slots >> 6) + 1, np.int32)
            self._live0 = np.zeros(n_slots >> 6, np.uint64)
            self._slots = np.empty((n_slots, 3), np.int64)  # per slot: ordinal (-1 dead), class, budget left
            self._b0 = np.zeros((c, max(1, n_slots >> 6)), np.uint64)
            self._b1 = np.zeros((c, max(1, n_slots >> 12)), np.uint64)
            self._b2 = np.zeros((c, max(1, (n_slots + (1 << 18) - 1) >> 18)), np.uint64)
        self._spare = None
        if getattr(self, "_scls", None) is None or self._scls.shape[0] != n_slots:
            self._scls = np.zeros(n_slots, np.uint8 if c < 255 else np.int32)  # see _stack_run
        self._tree9 = np.zeros((n_slots >> 9) + 1, np.int32)  # live slots per 512-slot block (Fenwick)

    def _compact(self) -> None:
        old = (self._tree, self._live0, self._slots, self._b0, self._b1, self._b2)
        live = int(self._state[1])
        n_slots = old[2].shape[0]
        while live * 2 > n_slots:
            n_slots *= 2
        self._alloc(n_slots)
        got = self._k._compact(
            old[2],
            int(self._state[0]),
            self._tree,
            self._live0,
            self._slots,
            self._b0,
            self._b1,
            self._b2,
        )
        assert got == live
        self._state[0] = live
        sl = self._slots[:live]
        self._scls[:live] = np.where(sl[:, 2] > 0, sl[:, 1], self.n_classes)
        self._k._tree9_build(self._live0, self._tree9)
        self._spare = old  # the next compaction of the same size writes into these

    def next(self, n: int, tbin: np.ndarray | None = None) -> np.ndarray:
        """The next ``n`` ids; ``tbin`` (int64, length ``n``) is each access's time bin.

        Works in blocks of ``BLOCK`` accesses whose pre-drawn random numbers live in reused
        buffers (cache-resident); the random streams are consumed in order, so the result does not
        depend on the block size or on how the caller splits ``n``.
        """
        n = int(n)
        if n == 0:
            return np.empty(0, np.int64)
        if tbin is None:
            tbin = np.zeros(n, np.int64)
        if self.n_phases > 1:  # one call per run of one phase, with that phase's stack-distance tables
            tb = np.minimum(np.asarray(tbin, np.int64), self.nt - 1)
            ph = _phase_of(tb, self.nt, self.n_phases)
            cuts = np.concatenate([[0], np.flatnonzero(np.diff(ph)) + 1, [n]])
            if cuts.shape[0] > 2:
                outs, clss = [], []
                for a, b in zip(cuts[:-1], cuts[1:]):
                    outs.append(self.next(int(b - a), tb[a:b]))
                    clss.append(self.last_cls.copy())
                self.last_cls = np.concatenate(clss)
                return np.concatenate(outs)
            self._sd_alias, self._sd_lo, self._sd_w = self._phase_tables[int(ph[0])]
        if self.FUSED:  # _predraw clamps the bins itself
            return self._next_fused(n, np.ascontiguousarray(tbin, np.int64))
        tbin = np.minimum(np.asarray(tbin, np.int64), self.nt - 1)
        bs = min(n, self.BLOCK)
        if getattr(self, "_buf", None) is None or self._buf[0].shape[0] < bs:
            self._buf = (
                *(np.empty(bs) for _ in range(5)),
                np.empty(bs, np.int32),
                np.empty(bs, np.bool_),
                np.empty(bs, np.int64),
                np.zeros(bs, np.int64),
            )
        u_cls, u_sd, u_in, upick, ucpl, cls32, cold, dd, gbin = (x[:bs] for x in self._buf)
        out = np.empty(n, np.int64)
        out_cls = np.empty(n, np.int32)
        self.last_cls = out_cls
        for a in range(0, n, bs):
            m = min(bs, n - a)
            if m < bs:
                u_cls, u_sd, u_in, upick, ucpl, cls32, cold, dd, gbin = (
                    x[:m] for x in (u_cls, u_sd, u_in, upick, ucpl, cls32, cold, dd, gbin)
                )
            self._r_cls.random(out=u_cls)
            self._r_sd.random(out=u_sd)
            self._r_in.random(out=u_in)
            self._k._draw_accesses(
                tbin[a : a + m],
                u_cls,
                u_sd,
                u_in,
                *self._mix_alias,
                self._cold2,
                self._cold_acc,
                *self._sd_alias,
                self._sd_lo,
                self._sd_w,
                self._grid,
                self._couple > 0,
                self._rep,
                self._prev,
                cls32,
                cold,
                dd,
                gbin,
            )
            self._r_pick.random(out=upick)
            if self._couple > 0:  # read only when coupled
                self._r_cpl.random(out=ucpl)
            o, oc = out[a : a + m], out_cls[a : a + m]
            i = 0
            while i < m:
                i = self._k._class_stack_run(
                    cls32,
                    cold,
                    dd,
                    gbin,
                    upick,
                    ucpl,
                    i,
                    o,
                    oc,
                    self._state,
                    self._tree,
                    self._live0,
                    self._slots,
                    self._b0,
                    self._b1,
                    self._b2,
                    self.cardinality,
                    self._cls_made,
                    self._cls_cap,
                    self._bud_lo,
                    self._bud_hi,
                    self._bud_a,
                    self._bud_off,
                    self._slack,
                    self._ptab,
                    self._qcnt,
                    self._couple,
                )
                if i < m:
                    self._compact()
        return self._permuted(out)

    def _next_fused(self, n: int, tbin: np.ndarray) -> np.ndarray:
        """``next`` by the fast kernels (``_predraw``, ``_stack_run``): 2 doubles per access, 5 when coupled."""
        n_u = 5 if self._couple > 0 else 2
        bs = min(n, self.BLOCK)
        if getattr(self, "_ubuf", None) is None or self._ubuf.shape[0] < n_u * bs:
            self._ubuf = np.empty(n_u * bs)
            self._pbuf = (np.empty(bs, np.int32), np.empty(bs, np.int64), np.empty(bs, np.int8))
        out = np.empty(n, np.int64)
        if getattr(self, "_ocls", None) is None or self._ocls.shape[0] < n:
            self._ocls = np.empty(n, np.int32)
        out_cls = self._ocls[:n]  # reused: ``last_cls`` holds until the next call
        self.last_cls = out_cls
        for a in range(0, n, bs):
            m = min(bs, n - a)
            ur = self._ubuf[: n_u * m]
            self._r_cls.random(out=ur)
            cls32, dd, flags = (x[:m] for x in self._pbuf)
            self._k._predraw(
                ur,
                n_u,
                tbin[a : a + m],
                self.nt,
                self._prev,
                self._cold_acc,
                *self._mix_alias,
                self._cold2,
                self._rep1,
                *self._sd_alias,
                self._sd_lo,
                self._sd_w,
                cls32,
                dd,
                flags,
            )
            o, oc = out[a : a + m], out_cls[a : a + m]
            i = 0
            while i < m:
                i = self._k._stack_run(
                    ur,
                    n_u,
                    cls32,
                    dd,
                    flags,
                    i,
                    o,
                    oc,
                    self._state,
                    self._tree9,
                    self._live0,
                    self._slots,
                    self._scls,
                    self._b0,
                    self._b1,
                    self._b2,
                    self.cardinality,
                    self._cls_made,
                    self._cls_cap,
                    self._bud_lo,
                    self._bud_hi,
                    self._bud_a,
                    self._bud_off,
                    self._slack,
                    self._grid,
                    self._glut,
                    self._ptab,
                    *self._p_alias,
                    self._qcnt,
                    self._couple,
                    self._rbuf,
                    self._keys,
                    self._half,
                )
                if i < m:
                    self._compact()
        return out

    def release(self) -> None:
        """Drop the scratch kept between ``next`` calls: the spare state arrays of the last compaction, the
        block buffers and ``last_cls``. The next call allocates them again; its output does not change.
        Sampling a model of many tables keeps one sampler per table alive: on a Meta-shaped model of 150
        tables (10M synthetic ids) this scratch was half of the samplers' memory (1.67 -> 0.84 GiB)."""
        self._spare = None
        self._ubuf = self._pbuf = self._ocls = self._buf = None
        self.last_cls = None

    def _permuted(self, ordinals: np.ndarray) -> np.ndarray:
        """Synthetic ids of ``ordinals``: the keyed permutation, computed once per created id and cached."""
        made = int(self._state[2])
        if made > self._n_perm:
            if made > self._perm.shape[0]:
                grown = np.empty(max(made, 2 * self._perm.shape[0]), np.int64)
                grown[: self._n_perm] = self._perm[: self._n_perm]
                self._perm = grown
            self._perm[self._n_perm : made] = self._k._permute(
                np.arange(self._n_perm, made, dtype=np.int64), self.cardinality, self._half, self._keys
            )
            self._n_perm = made
        return self._perm[ordinals]


def _alias_tables(dists: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alias tables ``(off, size, aprob, alias)`` of several discrete distributions (O(1) draws)."""
    from tracegen import _sample_kernels as K

    size = np.array([len(d) for d in dists], np.int64)
    off = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    probs = np.concatenate([np.asarray(d, np.float64) / max(float(np.sum(d)), 1e-300) for d in dists])
    aprob = np.ones(probs.shape[0])
    alias = np.arange(probs.shape[0], dtype=np.int64) - np.repeat(off, size)
    K._alias_build(probs, off, size, aprob, alias)
    return off, size, aprob, alias


def _power_ppf(u, lo, hi, a):
    """Inverse CDF of the density proportional to ``x**-a`` on ``[lo, hi)`` (vectorised)."""
    u, lo, hi, a = (np.asarray(v, np.float64) for v in (u, lo, hi, a))
    one = np.abs(a - 1.0) < 1e-9
    b = np.where(one, 0.5, 1.0 - a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gen = (lo**b + u * (hi**b - lo**b)) ** (1.0 / b)
        log = lo * (hi / lo) ** u
    x = np.where(one, log, gen)
    x = np.where(np.isfinite(x), x, lo)
    return np.clip(x, lo, hi)


def _power_mean(lo: float, hi: float, a: float) -> float:
    u = (np.arange(256) + 0.5) / 256
    return float(_power_ppf(u, lo, hi, a).mean())


@functools.lru_cache(maxsize=1 << 14)
def _power_exponent(lo: float, hi: float, mean: float) -> float:
    """The exponent ``a`` of the power law on ``[lo, hi)`` whose mean is ``mean`` (bisection; cached:
    the mode choice builds a sampler of the same classes for each of its twins)."""
    if hi - lo <= 1.0 + 1e-9:
        return 0.0
    mean = min(max(mean, lo), hi)
    a_lo, a_hi = -8.0, 8.0  # mean decreases as a grows
    for _ in range(30):
        mid = 0.5 * (a_lo + a_hi)
        if _power_mean(lo, hi, mid) > mean:
            a_lo = mid
        else:
            a_hi = mid
    return 0.5 * (a_lo + a_hi)


def _feistel_keys(ss: np.random.SeedSequence, m: int) -> tuple[np.ndarray, int]:
    bits = max(2, int(m - 1).bit_length())
    half = (bits + 1) // 2
    keys = ss.generate_state(4, np.uint64)  # 4 Feistel rounds
    return np.ascontiguousarray(keys, np.uint64), half


def permute_ids(ordinals: np.ndarray, cardinality: int, seed: np.random.SeedSequence) -> np.ndarray:
    """The keyed pseudo-random bijection of ``[0, cardinality)`` used for synthetic ids."""
    from tracegen import _sample_kernels as K

    keys, half = _feistel_keys(seed, cardinality)
    return K._permute(np.ascontiguousarray(ordinals, np.int64), int(cardinality), half, keys)


class _BagSampler:
    def __init__(self, node: dict, ss: np.random.SeedSequence):
        self.const = node.get("value") if node["kind"] == "constant" else None
        if self.const is None:
            self.values = np.asarray(node["values"], np.int64)
            cdf = np.cumsum(np.asarray(node["probs"], np.float64))
            cdf[-1] = 1.0
            self.cdf = cdf
            self.rng = _rng(ss)

    def next(self, b: int) -> np.ndarray:
        if self.const is not None:
            return np.full(b, int(self.const), np.int64)
        j = np.searchsorted(self.cdf, self.rng.random(b), side="right")
        return self.values[np.minimum(j, self.values.shape[0] - 1)]


class _ForeignSampler:
    """A sampler of a node kind owned by :mod:`tracegen.spec`; ignores time bins."""

    def __init__(self, node: dict, cardinality: int, ss: np.random.SeedSequence):
        spec = _spec_module()
        if spec is None or not hasattr(spec, "make_sampler"):
            raise TracegenError(
                f"id node kind {node.get('kind')!r} needs tracegen.spec, which is not available"
            )
        self.s = spec.make_sampler(node, cardinality, ss)

    def next(self, n: int, tbin=None) -> np.ndarray:
        return np.asarray(self.s.next(int(n)), np.int64)


def _spec_module():
    try:
        from tracegen import spec
    except ImportError:
        return None
    return spec


class _TableSampler:
    def __init__(
        self, tab: dict, ss: np.random.SeedSequence, n_samples: int, scale: float = 1.0, cardinality: int | None = None
    ):
        s_bag, s_ids = ss.spawn(2)
        self.name = tab["name"]
        self.cardinality = int(tab["cardinality"] if cardinality is None else cardinality)
        self.bags = _BagSampler(tab["bag_length"], s_bag)
        node = tab["ids"]
        self.n_samples = n_samples
        if node["kind"] == "class-stack":
            self.ids = ClassStackSampler(node, self.cardinality, s_ids, scale)
            self.nt = self.ids.nt
        else:
            self.ids = _ForeignSampler(node, self.cardinality, s_ids)
            self.nt = 1
        self.pos = 0

    def next(self, b: int, lean: bool = False) -> Table:
        """The next ``b`` samples; ``lean``: drop the id sampler's scratch afterwards (see ``release``)."""
        lengths = self.bags.next(b)
        tb = _time_bins(lengths, self.nt, self.pos, self.n_samples)
        self.pos += b
        ids = self.ids.next(int(lengths.sum()), tb)
        if lean and hasattr(self.ids, "release"):
            self.ids.release()
        return Table.from_lengths(self.name, ids, lengths, self.cardinality)


class _DenseSampler:
    def __init__(self, node: dict, ss: np.random.SeedSequence):
        self.cols = node["columns"]
        self.dtype = np.dtype(node.get("dtype", "float32"))
        self.rngs = [_rng(s) for s in ss.spawn(2 * len(self.cols))]

    def next(self, b: int) -> np.ndarray:
        out = np.empty((b, len(self.cols)), self.dtype)
        for j, col in enumerate(self.cols):
            e = np.asarray(col["edges"], np.float64)
            cdf = np.cumsum(np.asarray(col["probs"], np.float64))
            cdf[-1] = 1.0
            k = np.minimum(np.searchsorted(cdf, self.rngs[2 * j].random(b), side="right"), cdf.shape[0] - 1)
            lo, hi = e[k], e[k + 1]
            u = self.rngs[2 * j + 1].random(b)
            if col.get("integer"):
                x = np.floor(lo + u * (hi - lo + 1.0))
                x = np.minimum(x, hi)
            else:
                x = lo + u * (hi - lo)
            out[:, j] = x
        return out


class _LabelSampler:
    def __init__(self, node: dict, ss: np.random.SeedSequence):
        self.rate = float(node["rate"])
        self.dtype = np.dtype(node.get("dtype", "float32"))
        self.rng = _rng(ss)

    def next(self, b: int) -> np.ndarray:
        return (self.rng.random(b) < self.rate).astype(self.dtype)


def _seeds(seed, n_tables: int) -> list[np.random.SeedSequence]:
    if seed is not None and not isinstance(seed, np.random.SeedSequence):
        bad = isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
        if bad or seed < 0:
            raise TracegenError(f"seed must be None or an integer >= 0, got {seed!r}")
    return np.random.SeedSequence(seed).spawn(n_tables + 2)


def _sample_table_worker(args) -> tuple[str, str]:
    """Worker: sample one table in chunks into two .npy files (values, lengths); returns their paths."""
    tab, ss, n_samples, scale, card, chunk, folder, j = args
    ts = _TableSampler(tab, ss, n_samples, scale, card)
    lp = os.path.join(folder, f"t{j}.lengths.npy")
    vp = os.path.join(folder, f"t{j}.values.npy")
    chunks_v = []
    lengths = np.lib.format.open_memmap(lp, mode="w+", dtype=np.int64, shape=(n_samples,))
    tmpv = os.path.join(folder, f"t{j}.values.raw")
    with open(tmpv, "wb") as f:
        for s in range(0, n_samples, chunk):
            b = min(chunk, n_samples - s)
            t = ts.next(b)
            lengths[s : s + b] = t.lengths
            t.values.astype(np.int64).tofile(f)
            chunks_v.append(t.n_accesses)
    lengths.flush()
    del lengths
    total = int(sum(chunks_v))
    vals = np.lib.format.open_memmap(vp, mode="w+", dtype=np.int64, shape=(total,))
    vals[:] = np.fromfile(tmpv, dtype=np.int64, count=total) if total else vals[:]
    vals.flush()
    del vals
    os.unlink(tmpv)
    return lp, vp


# ---------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------


def _fit_table(job) -> dict:
    """Fit one table's entry of dist.json: ``job = (table, K, TraceModel params)`` (a process-pool task)."""
    t, k, prm, hide = job
    choose = bool(prm["calibrate"]) and 0 < t.n_accesses <= CALIBRATE_MAX_ACCESSES
    got = fit_class_stack(
        t.values,
        t.lengths,
        min_count=k,
        n_time_bins=prm["n_time_bins"],
        class_bins_per_octave=prm["class_bins_per_octave"],
        sd_bins_per_octave=prm["sd_bins_per_octave"],
        return_stats=choose,
    )
    node, stats = got if choose else (got, None)
    distinct = sum(int(cl["n_ids"]) for cl in node["classes"])  # the classes partition the ids
    card = synthetic_cardinality(t.cardinality, distinct, hide)
    if choose:
        node = choose_mode(node, t.lengths, card, stats, int(prm["calibrate"]))
    return {"name": t.name, "cardinality": card, "bag_length": fit_bag_length(t.lengths, k), "ids": node}


AUTO_MIN_ACCESSES = 4_000_000  # below this a fit takes seconds: worker processes (spawn + JIT cache) do not pay
FIT_BYTES_PER_ACCESS = 200  # peak memory of fitting one table, per access (10M-access table: 1.7 GiB measured)


def auto_workers(trace: Trace, memory: int | None = None, cpus: int | None = None) -> int:
    """Processes for fitting ``trace``'s tables when the user does not say: 1 for a single table or a
    trace under ``AUTO_MIN_ACCESSES``; else the CPUs this process may use, at most one per table and
    at most what the available memory holds (``FIT_BYTES_PER_ACCESS`` x the longest table per
    process, within 80% of ``MemAvailable``). The output does not depend on the count."""
    if trace.n_tables < 2 or trace.n_accesses < AUTO_MIN_ACCESSES:
        return 1
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if memory is None:
        memory = _available_memory()
    w = min(int(cpus), trace.n_tables)
    if memory is not None:
        longest = max(t.n_accesses for t in trace.tables)
        w = min(w, int(0.8 * memory) // max(FIT_BYTES_PER_ACCESS * longest, 1))
    return max(1, w)


def _available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _map_tables(fn, jobs: list, workers: int, progress: bool, desc: str) -> list:
    """``[fn(j) for j in jobs]`` in order, in ``workers`` processes when > 1, with a progress bar."""
    from tracegen._util import progress as _progress

    workers = max(1, min(int(workers), len(jobs)))
    bar = _progress(total=len(jobs), desc=desc, unit="table", enabled=progress)
    try:
        if workers == 1:
            out = []
            for j in jobs:
                out.append(fn(j))
                bar.update(1)
            return out
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(fn, j) for j in jobs]
            for _ in cf.as_completed(futs):
                bar.update(1)
            return [f.result() for f in futs]
    finally:
        bar.close()


class TraceModel:
    """Fit-then-sample trace model (see the module docstring and ``docs/dist-json.md``).

    Parameters
    ----------
    min_count: K, the least support of any released statistic (classes hold >= K ids, histogram
        bins >= K samples); K >= 2.
    n_time_bins: slices of the trace over which the class mix and cold rates are kept (footprint growth).
    class_bins_per_octave, sd_bins_per_octave: resolution of the popularity classes and of the
        stack-distance histograms.
    epsilon, delta: optional (epsilon, delta)-differential privacy with the sample as unit
        (see ``docs/privacy.md``); ``max_bag`` clips bag lengths (the per-sample contribution).
    one_hot: DP only, the tables declared one-hot (public schema, ``docs/privacy.md``; default:
        inferred from the data, an assumption the guarantee then rests on).
    public_cardinality: the tables whose cardinality is public schema (True for all, or names). Under
        DP the default is none: every cardinality is then a noisy distinct count, since one a reader
        derived from the data (``max id + 1``) would give away the largest raw id. Without DP the
        default keeps the sizes a file declares (the DLRM reference's ``counts``, native npz metadata)
        and releases the exact distinct count where the reader derived ``max id + 1``
        (``Table.cardinality_from_data``); declaring such a table public releases ``max id + 1``.
    calibrate: iterations of :func:`calibrate_class_stack` (sample a twin, reweight each class's
        drawn stack distances towards the fitted ones); 0 turns it off. Skipped for tables of more
        than ``CALIBRATE_MAX_ACCESSES`` accesses.
    tables: names (or indices) of the tables to fit; default all.
    """

    def __init__(
        self,
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        n_time_bins: int = 64,
        class_bins_per_octave: int = 4,
        sd_bins_per_octave: int = 16,
        epsilon: float | None = None,
        delta: float | None = None,
        max_bag: int | None = None,
        calibrate: int = 2,
        tables=None,
        one_hot=None,
        public_cardinality=None,
    ):
        self.min_count = min_count
        self.calibrate = calibrate
        self.n_time_bins = n_time_bins
        self.class_bins_per_octave = class_bins_per_octave
        self.sd_bins_per_octave = sd_bins_per_octave
        self.epsilon = epsilon
        self.delta = delta
        self.max_bag = max_bag
        self.tables = tables
        self.one_hot = one_hot
        self.public_cardinality = public_cardinality

    def get_params(self) -> dict:
        return {
            "min_count": self.min_count,
            "n_time_bins": self.n_time_bins,
            "class_bins_per_octave": self.class_bins_per_octave,
            "sd_bins_per_octave": self.sd_bins_per_octave,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_bag": self.max_bag,
            "calibrate": self.calibrate,
            "tables": None if self.tables is None else list(self.tables),
            "one_hot": None if self.one_hot is None else list(self.one_hot),
            "public_cardinality": self.public_cardinality
            if self.public_cardinality is None or isinstance(self.public_cardinality, bool)
            else list(self.public_cardinality),
        }

    def _check_params(self) -> None:
        """One-line errors for parameters that would otherwise be coerced or give a misleading dist.json."""

        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
                raise TracegenError(f"{name} must be an integer >= {lo}, got {v!r}")

        integer("min_count", 2)  # statistics supported by one sample would leak it
        integer("n_time_bins", 1)
        integer("class_bins_per_octave", 1)
        integer("sd_bins_per_octave", 1)
        integer("calibrate", 0)
        if self.max_bag is not None:
            integer("max_bag", 1)
        if self.epsilon is not None:
            e = self.epsilon
            if isinstance(e, bool) or not isinstance(e, (int, float, np.number)) or not (0 < e < float("inf")):
                raise TracegenError(f"epsilon must be a finite number > 0, got {e!r}")
            if self.delta is not None and not (0 <= self.delta < 1):
                raise TracegenError(f"delta must be in [0, 1), got {self.delta}")
        else:  # DP-only options on a non-private fit would be recorded in params and mean nothing
            dp_only = ("delta", "max_bag", "one_hot")
            given = [n for n in dp_only if getattr(self, n) is not None]
            if given:
                raise TracegenError(f"{', '.join(given)} apply only with epsilon (differential privacy)")
        for name in ("one_hot", "public_cardinality"):
            v = getattr(self, name)
            if v is None or (name == "public_cardinality" and isinstance(v, bool)):
                continue
            if isinstance(v, (str, bytes)) or not all(isinstance(x, str) for x in v):
                raise TracegenError(f"{name} must be a list of table names, got {v!r}")

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, trace: Trace, *, path=None, progress: bool = False, workers: int = 1) -> TraceModel:
        """Fit every table (bag lengths and ids), the dense features and the labels; returns ``self``.

        ``workers`` > 1 fits tables in that many processes; the result does not depend on it.
        """
        from tracegen import __version__

        if not isinstance(trace, Trace):
            raise TracegenError(f"fit() needs a tracegen Trace, got {type(trace).__name__}", path)
        self._check_params()
        k = int(self.min_count)
        if self.tables:
            trace = trace.select(list(self.tables))
        trace.validate(path)
        if self.epsilon is not None:
            from tracegen import privacy

            model = privacy.fit_dp(trace, self, progress=progress)
        else:
            from tracegen.privacy import public_cardinalities

            # a cardinality the reader derived from the ids (max id + 1) is released only if declared public
            public = public_cardinalities(trace, self.public_cardinality)
            hide = [t.cardinality_from_data and not pub for t, pub in zip(trace.tables, public)]
            jobs = [(t, k, self.get_params(), h) for t, h in zip(trace.tables, hide)]
            tables = _map_tables(_fit_table, jobs, workers, progress, "fit")
            dense = fit_dense(trace.dense, k) if trace.dense is not None and trace.dense.shape[1] else None
            labels = None
            if trace.labels is not None:
                labels = {
                    "kind": "bernoulli",
                    "rate": float(np.mean(np.asarray(trace.labels, np.float64) > 0.5)),
                    "dtype": str(trace.labels.dtype),
                }
            model = {
                "tables": tables,
                "dense": dense,
                "labels": labels,
                "privacy": {
                    "raw_ids": False,
                    "first_appearance_order": False,
                    "min_count": k,
                    # tables released with their distinct count instead of the trace's cardinality (one the
                    # reader derived from the ids, max id + 1, or a sparse 64-bit key space): by where it came
                    # from, not by value (a derived max id + 1 may equal the distinct count, ids 0..U-1 all used)
                    "cardinality_from_distinct": [
                        t.name for t, h in zip(trace.tables, hide) if h or int(t.cardinality) >= SPARSE_KEYS
                    ],
                    "dp": None,
                },
            }
        doc = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_by": f"tracegen {__version__}",
            "stack_distance_convention": SD_CONVENTION,
            "source": {"n_samples": model.pop("n_samples", trace.n_samples), "n_tables": trace.n_tables},
            "params": {kk: v for kk, v in self.get_params().items() if v is not None},
            "privacy": model["privacy"],
            "tables": model["tables"],
            "dense": model["dense"],
            "labels": model["labels"],
        }
        validate_dist(doc)
        self.model_ = doc
        return self

    @classmethod
    def from_spec(cls, spec: dict, *, path=None) -> TraceModel:
        """A model from a dist.json dictionary (validated; fitted or hand-written)."""
        validate_dist(spec, path)
        self = cls(
            **{
                k: v
                for k, v in spec.get("params", {}).items()
                if k
                in (
                    "min_count",
                    "n_time_bins",
                    "class_bins_per_octave",
                    "sd_bins_per_octave",
                    "epsilon",
                    "delta",
                    "max_bag",
                    "calibrate",
                    "one_hot",
                    "public_cardinality",
                )
            }
        )
        self.model_ = spec
        return self

    # ---- persistence --------------------------------------------------------------------------
    def _check_fitted(self) -> dict:
        m = getattr(self, "model_", None)
        if m is None:
            raise TracegenError(
                "this TraceModel is not fitted: call fit(trace) or TraceModel.load(path) first"
            )
        return m

    def to_dict(self) -> dict:
        return self._check_fitted()

    def save(self, path, force: bool = False) -> None:
        """Write ``dist.json`` atomically (refuses to overwrite unless ``force``)."""
        from tracegen._util import atomic_output

        m = self._check_fitted()
        with atomic_output(path, force, suffix=".json") as tmp:
            with open(tmp, "w") as f:
                json.dump(m, f, separators=(",", ":"))
                f.write("\n")

    @classmethod
    def load(cls, path) -> TraceModel:
        """Read and validate a dist.json file (errors name the file and the field)."""
        p = os.fspath(path)
        try:
            with open(p, encoding="utf-8-sig") as f:  # a byte-order mark (some Windows editors add one) is fine
                doc = json.load(f)
        except FileNotFoundError:
            raise TracegenError("no such file", p) from None
        except IsADirectoryError:
            raise TracegenError("is a directory, not a dist.json file", p) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TracegenError(f"not valid JSON ({e})", p) from None
        return cls.from_spec(doc, path=p)

    # ---- sampling -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [t["name"] for t in self._check_fitted()["tables"]]

    @property
    def cardinalities(self) -> list[int]:
        return [int(t["cardinality"]) for t in self._check_fitted()["tables"]]

    def default_n_samples(self) -> int:
        return int(self._check_fitted().get("source", {}).get("n_samples", 0) or 0)

    def sample_iter(
        self, n_samples: int | None = None, *, seed=None, chunk_samples: int = 1 << 18
    ) -> Iterator[Trace]:
        """Yield the synthetic trace in chunks of ``chunk_samples`` samples (same as :meth:`sample`)."""
        m = self._check_fitted()
        n = self._n(n_samples)
        chunk = int(chunk_samples)
        if chunk < 1:
            raise TracegenError(f"chunk_samples must be >= 1, got {chunk_samples}")
        ss = _seeds(seed, len(m["tables"]))
        cards = self._sample_cardinalities(n)
        tss = [_TableSampler(t, ss[j], n, self._scale(n), cards[j]) for j, t in enumerate(m["tables"])]
        ds = _DenseSampler(m["dense"], ss[-2]) if m.get("dense") else None
        ls = _LabelSampler(m["labels"], ss[-1]) if m.get("labels") else None
        lean = len(tss) > 1 and n > chunk  # every table's sampler lives between chunks: keep no scratch
        for s in range(0, n, chunk):
            b = min(chunk, n - s)
            yield Trace(
                [t.next(b, lean) for t in tss],
                dense=None if ds is None else ds.next(b),
                labels=None if ls is None else ls.next(b),
            )

    def _scale(self, n: int) -> float:
        """Sample length over the fitted length (ids created per class scale with it)."""
        fitted = self.default_n_samples()
        return n / fitted if fitted > 0 else 1.0

    def _sample_cardinalities(self, n: int) -> list[int]:
        """Rows of each synthetic table in a sample of ``n`` samples. A cardinality that is a distinct count
        (``privacy.cardinality_from_distinct``; under DP every one not declared public) grows with a
        sample longer than the fitted trace, as its ids do; a declared table size never does."""
        m = self._check_fitted()
        priv = m.get("privacy") or {}
        dp = priv.get("dp")
        if dp:
            public = dp.get("public_cardinality") or []
            distinct = {t["name"] for t in m["tables"]} - set(public)
        else:
            distinct = set(priv.get("cardinality_from_distinct") or [])
        scale = max(self._scale(n), 1.0)
        return [
            max(int(t["cardinality"]), math.ceil(int(t["cardinality"]) * scale - 1e-9))
            if t["name"] in distinct
            else int(t["cardinality"])
            for t in m["tables"]
        ]

    def _n(self, n_samples) -> int:
        n = self.default_n_samples() if n_samples is None else n_samples
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise TracegenError(f"n_samples must be a positive integer, got {n_samples!r}")
        return int(n)

    def sample(self, n_samples: int | None = None, *, seed=None) -> Trace:
        """A synthetic trace of ``n_samples`` samples (default: as many as the fitted trace)."""
        n = self._n(n_samples)
        chunks = list(self.sample_iter(n, seed=seed, chunk_samples=n))
        return chunks[0]

    def sample_to(
        self,
        path,
        n_samples: int | None = None,
        *,
        seed=None,
        fmt: str | None = None,
        workers: int = 1,
        chunk_samples: int = 1 << 18,
        force: bool = False,
        progress: bool | None = False,
        **write_options,
    ) -> None:
        """Stream a synthetic trace to ``path`` in chunks (tables in ``workers`` processes; same output)."""
        from tracegen import formats
        from tracegen._util import check_output, trim_memory
        from tracegen._util import progress as _progress

        m = self._check_fitted()
        n = self._n(n_samples)
        check_output(path, force)
        workers = max(1, int(workers))
        names, cards = self.names, self._sample_cardinalities(n)
        writer = formats.open_writer(
            path, fmt, names=names, cardinalities=cards, force=force, **write_options
        )
        ok = False
        try:
            bar = _progress(total=n, desc="sample", unit="sample", enabled=progress, unit_scale=True)
            if workers == 1 or len(m["tables"]) == 1:
                for tr in self.sample_iter(n, seed=seed, chunk_samples=chunk_samples):
                    writer.write(tr)
                    bar.update(tr.n_samples)
                    del tr
                    if len(m["tables"]) > 1:  # (a chunk of many tables' freed arrays; not per chunk of one table)
                        trim_memory()
            else:
                self._sample_parallel(writer, n, seed, workers, chunk_samples, bar)
            bar.close()
            ok = True
        finally:
            if ok:
                trim_memory()
                writer.close()
            else:
                abort = getattr(writer, "abort", None)
                if abort is not None:
                    abort()

    def _sample_parallel(self, writer, n, seed, workers, chunk, bar) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp
        import tempfile

        m = self.model_
        ss = _seeds(seed, len(m["tables"]))
        ds = _DenseSampler(m["dense"], ss[-2]) if m.get("dense") else None
        ls = _LabelSampler(m["labels"], ss[-1]) if m.get("labels") else None
        parent = os.path.dirname(os.path.abspath(getattr(writer, "path", "."))) or "."
        with tempfile.TemporaryDirectory(prefix=".tracegen-sample-", dir=parent) as folder:
            cards = self._sample_cardinalities(n)
            jobs = [(t, ss[j], n, self._scale(n), cards[j], chunk, folder, j) for j, t in enumerate(m["tables"])]
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
                paths = list(ex.map(_sample_table_worker, jobs))
            lens = [np.load(lp, mmap_mode="r") for lp, _ in paths]
            vals = [np.load(vp, mmap_mode="r") for _, vp in paths]
            offs = [0] * len(paths)
            for s in range(0, n, chunk):
                b = min(chunk, n - s)
                tabs = []
                for j, t in enumerate(m["tables"]):
                    ln = np.asarray(lens[j][s : s + b])
                    tot = int(ln.sum())
                    v = np.asarray(vals[j][offs[j] : offs[j] + tot])
                    offs[j] += tot
                    tabs.append(Table.from_lengths(t["name"], v, ln, int(t["cardinality"])))
                writer.write(
                    Trace(
                        tabs,
                        dense=None if ds is None else ds.next(b),
                        labels=None if ls is None else ls.next(b),
                    )
                )
                bar.update(b)
            del lens, vals


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------


def _err(where: str, msg: str, path) -> TracegenError:
    return TracegenError(f"{where}: {msg}", path)


def _get(d, key: str, where: str, path, types=None):
    if not isinstance(d, dict):
        raise _err(where, "must be an object", path)
    if key not in d:
        raise _err(f"{where}.{key}" if where else key, "missing field", path)
    v = d[key]
    if (
        types is not None
        and not isinstance(v, types)
        or isinstance(v, bool)
        and types in (int, float, (int, float))
    ):
        raise _err(
            f"{where}.{key}" if where else key, f"must be {_tname(types)}, got {type(v).__name__}", path
        )
    return v


def _tname(types) -> str:
    if isinstance(types, tuple):
        return " or ".join(_tname(t) for t in types)
    return {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        types, getattr(types, "__name__", str(types))
    )


def _check_probs(p, where: str, path, n: int | None = None) -> np.ndarray:
    if not isinstance(p, list) or not p:
        raise _err(where, "must be a non-empty list of probabilities", path)
    try:
        a = np.asarray(p, np.float64)
    except (TypeError, ValueError):
        raise _err(where, "must be a list of numbers", path) from None
    if a.ndim != 1:
        raise _err(where, "must be a flat list of numbers", path)
    if n is not None and a.shape[0] != n:
        raise _err(where, f"has {a.shape[0]} entries, expected {n}", path)
    if not np.all(np.isfinite(a)):
        raise _err(where, "holds a non-finite value", path)
    if a.min() < 0:
        j = int(np.argmin(a))
        raise _err(f"{where}[{j}]", f"negative probability {a[j]}", path)
    s = float(a.sum())
    if abs(s - 1.0) > PROB_TOL:
        raise _err(where, f"sums to {s:.6g}, not 1", path)
    return a


def _check_int_list(v, where: str, path, increasing: bool = False, nonneg: bool = True) -> np.ndarray:
    if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise _err(where, "must be a non-empty list of integers", path)
    a = np.asarray(v, np.int64)
    if nonneg and a.min() < 0:
        raise _err(where, "holds a negative value", path)
    if increasing and a.shape[0] > 1 and np.any(np.diff(a) <= 0):
        raise _err(where, "must be strictly increasing", path)
    return a


def _validate_class_stack(node: dict, where: str, path) -> None:
    nt = _get(node, "n_time_bins", where, path, int)
    if nt < 1:
        raise _err(f"{where}.n_time_bins", "must be >= 1", path)
    n_ph = 1
    if "n_phases" in node:
        n_ph = _get(node, "n_phases", where, path, int)
        if not 1 <= n_ph <= nt:
            raise _err(f"{where}.n_phases", f"must be in [1, n_time_bins = {nt}], got {n_ph}", path)
    if "coupling_below" in node:
        cb = _get(node, "coupling_below", where, path, int)
        if cb < 0:
            raise _err(f"{where}.coupling_below", f"must be >= 0, got {cb}", path)
    if "budget_slack" in node:
        bs = _get(node, "budget_slack", where, path, (int, float))
        if not bs >= 1.0:
            raise _err(f"{where}.budget_slack", f"must be >= 1, got {bs}", path)
    classes = _get(node, "classes", where, path, list)
    if not classes:
        raise _err(f"{where}.classes", "must hold at least one class", path)
    c = len(classes)
    shares = []
    for j, cl in enumerate(classes):
        w = f"{where}.classes[{j}]"
        cr = _check_int_list(_get(cl, "count_range", w, path), f"{w}.count_range", path)
        if cr.shape[0] != 2 or cr[0] < 1 or cr[1] < cr[0]:
            raise _err(f"{w}.count_range", "must be [lo, hi] with 1 <= lo <= hi", path)
        n_ids = _get(cl, "n_ids", w, path, int)
        if n_ids < 0:
            raise _err(f"{w}.n_ids", "must be >= 0", path)
        shares.append(_get(cl, "share", w, path, (int, float)))
        sdn = _get(cl, "sd", w, path)
        if sdn is not None:
            _validate_binned(sdn, f"{w}.sd", path)
        if cl.get("sd_phases") is not None:
            sp = _get(cl, "sd_phases", w, path, list)
            if len(sp) != n_ph:
                raise _err(f"{w}.sd_phases", f"has {len(sp)} entries, expected n_phases = {n_ph}", path)
            for q, h in enumerate(sp):
                if h is not None:
                    _validate_binned(h, f"{w}.sd_phases[{q}]", path)
    _check_probs(shares, f"{where}.classes[*].share", path)
    if node.get("repeat") is not None:
        st = _get(node, "repeat", where, path, list)
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in st)
        a = np.asarray(st, np.float64) if ok else None
        if a is None or a.shape != (c,) or not np.all(np.isfinite(a)) or a.min() < 0 or a.max() >= 1:
            raise _err(f"{where}.repeat", f"must be a list of {c} rates in [0, 1)", path)
    for key in ("mix", "cold"):
        rows = _get(node, key, where, path, list)
        if len(rows) != nt:
            raise _err(f"{where}.{key}", f"has {len(rows)} rows, expected n_time_bins = {nt}", path)
        for t, row in enumerate(rows):
            w = f"{where}.{key}[{t}]"
            if key == "mix":
                _check_probs(row, w, path, c)
            else:
                if not isinstance(row, list) or len(row) != c:
                    raise _err(w, f"must be a list of {c} rates", path)
                a = np.asarray(row, np.float64)
                if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
                    raise _err(w, "rates must be in [0, 1]", path)


def _validate_binned(node, where: str, path) -> None:
    kind = _get(node, "kind", where, path, str)
    if kind == "empirical-binned":
        e = _check_int_list(_get(node, "edges", where, path), f"{where}.edges", path, increasing=True)
        _check_probs(_get(node, "probs", where, path), f"{where}.probs", path, e.shape[0] - 1)
    elif kind == "empirical":
        v = _check_int_list(_get(node, "values", where, path), f"{where}.values", path)
        _check_probs(_get(node, "probs", where, path), f"{where}.probs", path, v.shape[0])
    else:
        raise _err(f"{where}.kind", f"unknown kind {kind!r} (expected empirical-binned or empirical)", path)


def _validate_bag(node, where: str, path) -> None:
    kind = _get(node, "kind", where, path, str)
    if kind == "constant":
        v = _get(node, "value", where, path, int)
        if v < 0:
            raise _err(f"{where}.value", "must be >= 0", path)
    elif kind == "empirical":
        _validate_binned(node, where, path)
    else:
        raise _err(f"{where}.kind", f"unknown kind {kind!r} (expected constant or empirical)", path)


def _validate_ids(node, where: str, path) -> None:
    kind = _get(node, "kind", where, path, str)
    if kind == "class-stack":
        _validate_class_stack(node, where, path)
        return
    spec = _spec_module()
    if spec is not None and hasattr(spec, "validate_node"):
        try:
            spec.validate_node(node, where)
        except TracegenError as e:
            if e.path is None and path is not None:
                raise TracegenError(str(e), path) from None
            raise
        return
    raise _err(f"{where}.kind", f"unknown kind {kind!r}", path)


def validate_dist(doc, path=None) -> None:
    """Raise :class:`TracegenError` naming the field if ``doc`` is not a valid dist.json dictionary."""
    if not isinstance(doc, dict):
        raise TracegenError("not a dist.json object", path)
    fmt = _get(doc, "format", "", path)
    if fmt != FORMAT:
        raise _err("format", f"is {fmt!r}, expected {FORMAT!r} (not a tracegen dist.json file)", path)
    ver = _get(doc, "schema_version", "", path, int)
    if ver > SCHEMA_VERSION:
        raise _err(
            "schema_version",
            f"is {ver}, but this tracegen reads up to {SCHEMA_VERSION}: the file was "
            "written by a newer tracegen; upgrade tracegen",
            path,
        )
    if ver < 1:
        raise _err("schema_version", f"is {ver}, must be >= 1", path)
    tables = _get(doc, "tables", "", path, list)
    if not tables:
        raise _err("tables", "must hold at least one table", path)
    names = set()
    for j, t in enumerate(tables):
        w = f"tables[{j}]"
        name = _get(t, "name", w, path, str)
        if name in names:
            raise _err(f"{w}.name", f"duplicate table name {name!r}", path)
        names.add(name)
        card = _get(t, "cardinality", w, path, int)
        if card < 1 or card >= 1 << 62:
            raise _err(f"{w}.cardinality", f"must be in [1, 2**62), got {card}", path)
        _validate_bag(_get(t, "bag_length", w, path), f"{w}.bag_length", path)
        _validate_ids(_get(t, "ids", w, path), f"{w}.ids", path)
    dense = doc.get("dense")
    if dense is not None:
        cols = _get(dense, "columns", "dense", path, list)
        for j, col in enumerate(cols):
            w = f"dense.columns[{j}]"
            e = _get(col, "edges", w, path, list)
            try:
                ea = np.asarray(e, np.float64)
            except (TypeError, ValueError):
                raise _err(f"{w}.edges", "must be a list of numbers", path) from None
            if ea.ndim != 1 or ea.shape[0] < 2 or not np.all(np.isfinite(ea)) or np.any(np.diff(ea) < 0):
                raise _err(f"{w}.edges", "must be >= 2 finite non-decreasing numbers", path)
            _check_probs(_get(col, "probs", w, path), f"{w}.probs", path, ea.shape[0] - 1)
    labels = doc.get("labels")
    if labels is not None:
        r = _get(labels, "rate", "labels", path, (int, float))
        if not (0.0 <= r <= 1.0):
            raise _err("labels.rate", f"must be in [0, 1], got {r}", path)
    src = doc.get("source")
    if src is not None:
        if not isinstance(src, dict):
            raise _err("source", f"must be an object, got {type(src).__name__}", path)
        ns = src.get("n_samples")
        if ns is not None and (isinstance(ns, bool) or not isinstance(ns, int) or ns < 0):
            raise _err("source.n_samples", f"must be a non-negative integer, got {ns!r}", path)
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise _err("params", f"must be an object, got {type(params).__name__}", path)


# ---------------------------------------------------------------------------------------------------
# fidelity
# ---------------------------------------------------------------------------------------------------


def _top_share(counts: np.ndarray, frac: float, n_ids: int | None = None) -> float:
    """Share of the accesses that go to the ``frac`` most accessed of ``n_ids`` ids (default: ``len(counts)``;
    a twin is measured on as many ids as its real table has, whatever its own distinct count)."""
    c = np.sort(counts)[::-1]
    k = max(1, int(round(frac * (c.shape[0] if n_ids is None else n_ids))))
    return float(c[:k].sum() / max(c.sum(), 1))


def table_profile(values: np.ndarray, n_points: int = 40) -> dict:
    """The locality figures of one id stream: sd histogram, counts, footprint curve."""
    from tracegen.locality import dense_keys, sd_histogram, stack_distances

    values = np.asarray(values)
    keys, u = dense_keys(values)
    sd = stack_distances(values)
    counts, cold = sd_histogram(sd)
    fp_pos = np.unique(np.linspace(0, values.shape[0], n_points + 1).astype(np.int64)[1:])
    fp_pos = fp_pos[fp_pos > 0]  # (fewer accesses than points: the first points round down to 0)
    first = np.cumsum(sd < 0)
    return {
        "sd_counts": counts,
        "cold": cold,
        "n": int(values.shape[0]),
        "distinct": int(u),
        "id_counts": np.bincount(keys, minlength=u),
        "fp_frac": fp_pos / max(values.shape[0], 1),
        "fp": first[fp_pos - 1] if values.shape[0] else np.zeros(0),
    }


def fidelity(real: Trace, synthetic: Trace, n_sizes: int = 40) -> dict:
    """Per-table fidelity figures of ``synthetic`` against ``real`` (tables matched by name).

    Per table: ``mrc_mean``/``mrc_max`` (LRU miss ratio abs error over ``n_sizes`` log-spaced cache
    sizes from 1 row to the real distinct count), ``top1``/``top10`` (abs error of the share of
    accesses to the most accessed 1%/10% of the real distinct count of ids, on both sides),
    ``footprint`` (max abs error of distinct-ids-so-far at 40 points, relative to the real final count),
    ``bag_tv`` (total variation distance of bag-length pmfs),
    ``distinct_ratio`` (synthetic/real distinct ids).
    """
    from tracegen.locality import miss_ratio_curve

    out = {}
    for rt in real.tables:
        try:
            st = synthetic.table(rt.name)
        except TracegenError:
            continue
        a, b = table_profile(rt.values), table_profile(st.values)
        sizes = np.unique(np.geomspace(1, max(a["distinct"], 2), n_sizes).astype(np.int64))
        _, ma = miss_ratio_curve(a["sd_counts"], a["cold"], sizes)
        _, mb = miss_ratio_curve(b["sd_counts"], b["cold"], sizes)
        err = np.abs(ma - mb)
        fa = a["fp"] / max(a["distinct"], 1)
        fb = (
            np.interp(a["fp_frac"], b["fp_frac"], b["fp"]) / max(a["distinct"], 1) if b["fp"].size else fa * 0
        )
        la, lb = rt.lengths, st.lengths
        top = int(max(la.max(initial=0), lb.max(initial=0))) + 1
        pa = np.bincount(la, minlength=top) / max(la.shape[0], 1)
        pb = np.bincount(lb, minlength=top) / max(lb.shape[0], 1)
        out[rt.name] = {
            "mrc_mean": float(err.mean()),
            "mrc_max": float(err.max()),
            "top1": abs(_top_share(a["id_counts"], 0.01) - _top_share(b["id_counts"], 0.01, a["distinct"])),
            "top10": abs(_top_share(a["id_counts"], 0.10) - _top_share(b["id_counts"], 0.10, a["distinct"])),
            "footprint": float(np.max(np.abs(fa - fb))) if fa.size else 0.0,
            "bag_tv": float(0.5 * np.abs(pa - pb).sum()),
            "distinct_ratio": b["distinct"] / max(a["distinct"], 1),
        }
    return out
