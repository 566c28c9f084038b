"""Slow, obviously-correct reference implementations. Fast kernels must equal these exactly."""

from __future__ import annotations

import numpy as np


def stack_distances(ids) -> np.ndarray:
    """List-scan LRU stack: the depth of the id in a most-recent-first list, -1 if absent."""
    stack: list = []
    out = []
    for x in list(ids):
        if x in stack:
            d = stack.index(x)
            out.append(d)
            stack.pop(d)
        else:
            out.append(-1)
        stack.insert(0, x)
    return np.array(out, dtype=np.int64)


def lru_miss_ratio(ids, capacity: int) -> float:
    """Simulate an LRU cache of ``capacity`` entries; return misses / accesses."""
    from collections import OrderedDict

    cache: OrderedDict = OrderedDict()
    misses = 0
    ids = list(ids)
    for x in ids:
        if x in cache:
            cache.move_to_end(x)
        else:
            misses += 1
            if capacity > 0:
                cache[x] = True
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return misses / len(ids) if ids else 0.0


def pairwise_auc(labels, scores) -> float:
    """ROC AUC by comparing every (positive, negative) pair: 1 if the positive scores higher, 1/2 on a tie."""
    pos = [s for y, s in zip(labels, scores) if y > 0.5]
    neg = [s for y, s in zip(labels, scores) if y <= 0.5]
    if not pos or not neg:
        return float("nan")
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def dlrm_forward(model, dense, ids) -> list:
    """DLRM logits of one-hot ``ids`` (B, T) by Python loops: per-table row lookup, each pair's dot."""
    import torch

    cfg = model.config
    out = []
    for b in range(dense.shape[0]):
        x = model.dense_arch(dense[b:b + 1])[0]
        vecs = [x]
        for t in range(ids.shape[1]):
            row = int(ids[b, t])
            if cfg.fused:
                row += sum(cfg.embedding_sizes[:t])
                vecs.append(model.sparse_arch.weight[row])
            else:
                vecs.append(model.sparse_arch.bags[t].weight[row])
        if cfg.interaction_op == "cat":
            z = torch.cat(vecs)
        else:
            feats = [x]
            for i in range(len(vecs)):
                for j in range(i + 1 if cfg.interaction_itself else i):
                    feats.append(torch.dot(vecs[i], vecs[j]).reshape(1))
            z = torch.cat([feats[0], *feats[1:]])
        out.append(float(model.over_arch(z.unsqueeze(0))[0].detach()))
    return out


def spec_stack_replay(ops, vals, order) -> np.ndarray:
    """The specified stack model's replay with a Python list as the LRU stack (most recent first).

    ``ops``: 0 access ``vals[i]`` (an id), 1 cold (next unseen id of ``order``, else the LRU bottom),
    2 the id at depth ``vals[i]`` (cold when the stack is shallower). Twin of ``tracegen._spec_kernels``.
    """
    stack: list = []
    seen: set = set()
    nxt = 0
    out = []
    for op, v in zip(list(ops), list(vals)):
        x = None
        if op == 0:
            x = int(v)
        else:
            cold = op == 1 or v >= len(stack)
            d = int(v)
            if cold:
                while nxt < len(order) and int(order[nxt]) in seen:
                    nxt += 1
                if nxt < len(order):
                    x = int(order[nxt])
                    nxt += 1
                else:
                    d = len(stack) - 1
            if x is None:
                x = stack[d]
        if x in stack:
            stack.remove(x)
        stack.insert(0, x)
        seen.add(x)
        out.append(x)
    return np.array(out, dtype=np.int64)


# ---- formats (owned by the formats helper) -------------------------------------------------------

def next_access_vtime(ids) -> np.ndarray:
    """libCacheSim's oracle field by a backward scan: 1-based position of the next request, -1 if none."""
    ids = [int(x) for x in ids]
    out = [-1] * len(ids)
    last: dict = {}
    for i in range(len(ids) - 1, -1, -1):
        out[i] = last.get(ids[i], -1)
        last[ids[i]] = i + 1
    return np.array(out, dtype=np.int64)


def criteo_lines(lines, sep: str = "\t", max_ind_range: int = -1):
    """Criteo text preprocessed line by line as the DLRM reference describes it: missing fields are 0,
    categories parsed as hex (then ``% max_ind_range``) and relabelled by first appearance per column,
    negative integers clipped to 0. Returns ``(y, x_int, x_cat, counts)``."""
    dicts: list[dict] = [{} for _ in range(26)]
    ys, xs, cs = [], [], []
    for line in lines:
        f = line.rstrip("\r\n").split(sep)
        assert len(f) == 40, len(f)
        f = [x if x.strip() != "" else "0" for x in f]
        ys.append(int(f[0]))
        xs.append([max(0, int(float(x))) for x in f[1:14]])
        row = []
        for j in range(26):
            v = int(f[14 + j], 16)
            if max_ind_range > 0:
                v %= max_ind_range
            row.append(dicts[j].setdefault(v, len(dicts[j])))
        cs.append(row)
    return (np.array(ys, np.int64), np.array(xs, np.int64).reshape(-1, 13), np.array(cs, np.int64).reshape(-1, 26),
            [len(d) for d in dicts])


def first_appearance(ids) -> np.ndarray:
    """Relabel ids 0..U-1 in order of first appearance."""
    m: dict = {}
    return np.array([m.setdefault(x, len(m)) for x in list(ids)], dtype=np.int64)


def distinct_per_group(values, starts) -> np.ndarray:
    """Distinct values in each group ``values[starts[g]:starts[g + 1]]`` (analysis helper reference)."""
    v = list(values)
    return np.array([len(set(v[starts[g]:starts[g + 1]])) for g in range(len(starts) - 1)], dtype=np.int64)


def class_stack_run(cls, cold, dd, gbin, upick, ucpl, bud_off, max_ids, cls_cap, bud_lo, bud_hi, bud_a, slack,
                    ptab, couple_below, qwin=256.0) -> tuple[np.ndarray, np.ndarray]:
    """Reference of the class-stack sampler kernel: an explicit LRU list (top first) of [ordinal, class, budget].

    Per access: a cold draw (while fewer than ``max_ids`` ids exist and fewer than ``cls_cap[c]`` of
    class ``c``) creates a new id of class ``c`` on top with a budget from the class's power law, at the
    uniform ``frac(bud_off[c] + k * phi)`` for the class's ``k``-th id (phi = 0.618...: stratified draws).
    Otherwise the target depth is ``t = min(d, live - 1)``. If ``d < couple_below`` and ``gbin >= 0`` (-1
    marks an immediate repeat, never coupled), the running frequency
    ``Q(class at depth | bin)`` is updated and the id at depth ``t`` is taken with probability
    ``min(1, P/Q)`` (its class must have budget left), else the class is drawn from ``max(0, P - Q)``.
    Then the selectable (budget left) ids of that class just shallower and just deeper than ``t`` are
    found and one taken with probability keeping E[log(1 + depth)] = log(1 + t); with none, a new id
    is created (or, at ``max_ids``, the id at depth ``t`` is taken). Returns (ordinals, classes).
    """
    import math

    def budget(u, lo, hi, a):
        if hi - lo <= 1.0:
            x = lo
        elif abs(a - 1.0) < 1e-9:
            x = lo * (hi / lo) ** u
        else:
            b = 1.0 - a
            x = (lo**b + u * (hi**b - lo**b)) ** (1.0 / b)
            x = min(max(x, lo), hi)
        f = 1.0 + (slack - 1.0) * min(1.0, math.sqrt(20.0 / x))
        return max(int(math.floor(x * f)), 1)

    n_cls = ptab.shape[1]
    q = np.zeros((ptab.shape[0], n_cls + 2))
    stack: list[list[int]] = []
    out = np.empty(len(cls), np.int64)
    out_cls = np.empty(len(cls), np.int64)
    created = 0
    made = [0] * len(cls_cap)
    for i in range(len(cls)):
        c = int(cls[i])
        chosen = -1
        new = bool(cold[i]) and created < max_ids and made[c] < cls_cap[c]
        if not new:
            if not stack:
                new = True
            else:
                t = min(int(dd[i]), len(stack) - 1)
                take = False
                if dd[i] < couple_below and gbin[i] >= 0:
                    bb = int(gbin[i])
                    cs = stack[t][1]
                    col = cs if stack[t][2] > 0 else n_cls
                    if q[bb, n_cls + 1] >= qwin:
                        q[bb, :] *= 0.5
                    q[bb, col] += 1.0
                    q[bb, n_cls + 1] += 1.0
                    tot = q[bb, n_cls + 1]
                    u = ucpl[i]
                    if col < n_cls:
                        qq, p = q[bb, cs] / tot, ptab[bb, cs]
                        if u * qq < p:
                            take = True
                        else:
                            u = (u * qq - p) / (qq - p)
                    if not take:
                        res = [max(0.0, ptab[bb, j] - q[bb, j] / tot) for j in range(n_cls)]
                        rs = sum(r for r in res if r > 0)
                        if rs > 0:
                            acc = 0.0
                            for j in range(n_cls):
                                if res[j] > 0:
                                    acc += res[j]
                                    c = j
                                    if acc > u * rs:
                                        break
                if take or (stack[t][1] == c and stack[t][2] > 0):
                    chosen = t
                else:
                    up = [j for j in range(t - 1, -1, -1) if stack[j][1] == c and stack[j][2] > 0]
                    down = [j for j in range(t + 1, len(stack)) if stack[j][1] == c and stack[j][2] > 0]
                    a = up[0] if up else -1
                    b = down[0] if down else -1
                    if a < 0 and b < 0:
                        if created < max_ids:
                            new = True
                        else:
                            chosen = t
                    elif a < 0:
                        chosen = b
                    elif b < 0:
                        chosen = a
                    else:
                        la, lb, ld = math.log1p(a), math.log1p(b), math.log1p(t)
                        chosen = a if upick[i] * (lb - la) < lb - ld else b
        if new:
            x = bud_off[c] + made[c] * 0.6180339887498949
            e = [created, c, budget(x - math.floor(x), bud_lo[c], bud_hi[c], bud_a[c]) - 1]
            created += 1
            made[c] += 1
        else:
            e = stack.pop(chosen)
            e[2] -= 1
        stack.insert(0, e)
        out[i] = e[0]
        out_cls[i] = e[1]
    return out, out_cls


# ---- locality engine (tracegen.locality) ------------------------------------------------------
def reuse_times(ids) -> np.ndarray:
    """Requests since the previous access to the same id, by scanning back (-1 if none)."""
    ids = list(ids)
    out = []
    for i, x in enumerate(ids):
        j = i - 1
        while j >= 0 and ids[j] != x:
            j -= 1
        out.append(i - j if j >= 0 else -1)
    return np.array(out, dtype=np.int64)


def footprint(ids, points) -> np.ndarray:
    """Distinct ids among the first ``p`` accesses, for each ``p``, by building sets."""
    ids = list(ids)
    return np.array([len(set(ids[:p])) for p in points], dtype=np.int64)


def distinct_per_window(ids, window: int) -> np.ndarray:
    ids = list(ids)
    starts = range(0, len(ids) - window + 1, window)
    return np.array([len(set(ids[s:s + window])) for s in starts], dtype=np.int64)


def average_working_set(ids, window: int) -> float:
    """Mean distinct ids over every sliding window of ``window`` accesses."""
    ids = list(ids)
    n = len(ids)
    if window > n:
        return float("nan")
    return float(np.mean([len(set(ids[s:s + window])) for s in range(n - window + 1)]))


def reuse_factor_histogram(batches) -> dict:
    """Meta's per-batch reuse statistics from a list of per-batch id lists, by counting in dicts."""
    from collections import Counter

    col, share, n_idx, n_uni = [], [], [], []
    for b in batches:
        c = Counter(b)
        rows = [0.0] * 17
        acc = [0.0] * 17
        for v in c.values():
            k = 0
            while k < 16 and v > (2 ** k if k else 1):
                k += 1
            rows[k] += 1
            acc[k] += v
        col.append([r / len(c) for r in rows])
        share.append([a / len(b) for a in acc])
        n_idx.append(len(b))
        n_uni.append(len(c))
    return {"avg_indices": float(np.mean(n_idx)), "avg_unique": float(np.mean(n_uni)),
            "col_size_hist": np.mean(col, axis=0).tolist(), "index_share": np.mean(share, axis=0).tolist()}


def interleave(tables_values, tables_offsets, id_offsets):
    """DLRM issue order: sample by sample, table by table, bag order; ids shifted per table."""
    ids, tix = [], []
    n_samples = len(tables_offsets[0]) - 1
    for b in range(n_samples):
        for t, (v, o) in enumerate(zip(tables_values, tables_offsets)):
            for x in v[o[b]:o[b + 1]]:
                ids.append(int(x) + int(id_offsets[t]))
                tix.append(t)
    return np.array(ids, dtype=np.int64), np.array(tix, dtype=np.int64)


def lru_size_miss_ratio(ids, size_of, capacity: int) -> float:
    """Simulate an LRU cache holding at most ``capacity`` bytes of objects of ``size_of[id]`` bytes:
    insert on miss, then evict least recent objects (possibly the new one) until the total fits."""
    from collections import OrderedDict

    cache: OrderedDict = OrderedDict()
    used = misses = 0
    ids = list(ids)
    for x in ids:
        if x in cache:
            cache.move_to_end(x)
            continue
        misses += 1
        cache[x] = size_of[x]
        used += size_of[x]
        while used > capacity:
            _, s = cache.popitem(last=False)
            used -= s
    return misses / len(ids) if ids else 0.0


def group_support(keys, lengths, n_keys: int) -> list[int]:
    """Per key, the number of consecutive groups (bags of the given lengths) that contain it."""
    out = [0] * n_keys
    pos = 0
    for n in lengths:
        for k in set(int(x) for x in keys[pos : pos + n]):
            out[k] += 1
        pos += n
    return out


def lfu_misses(keys, capacity: int) -> int:
    """In-cache LFU (libCacheSim's ``LFU``): a miss inserts the key with count 1, first evicting the
    cached key of least count, ties broken by least recent access. Linear scan per eviction."""
    count: dict = {}
    last: dict = {}
    misses = 0
    for i, k in enumerate(int(x) for x in keys):
        if k in count:
            count[k] += 1
        else:
            misses += 1
            if len(count) >= capacity:
                victim = min(count, key=lambda x: (count[x], last[x]))
                del count[victim], last[victim]
            count[k] = 1
        last[k] = i
    return misses


def fifo_misses(keys, capacity: int) -> int:
    """FIFO: a miss inserts the key, first evicting the key inserted longest ago; hits change nothing."""
    queue: list = []
    misses = 0
    for k in (int(x) for x in keys):
        if k in queue:
            continue
        misses += 1
        if len(queue) >= capacity:
            queue.pop(0)
        queue.append(k)
    return misses


def batch_interleave(tables, batch_size: int) -> list:
    """DLRM issue order by batch: for each batch of ``batch_size`` samples, table 0's bags, then table 1's,
    ...; each access is the key ``(table index, row id)``. ``tables`` are ``(values, offsets)`` pairs."""
    n_samples = len(tables[0][1]) - 1
    keys = []
    for s in range(0, n_samples, batch_size):
        e = min(s + batch_size, n_samples)
        for j, (v, o) in enumerate(tables):
            keys.extend((j, int(x)) for x in v[o[s]:o[e]])
    return keys


def hot_set_size(ids, share: float) -> int:
    """Fewest distinct ids whose accesses add up to at least ``share`` of all, hottest first, by counting."""
    from collections import Counter

    counts = sorted(Counter(ids).values(), reverse=True)
    total = sum(counts)
    got = 0
    for k, c in enumerate(counts, 1):
        got += c
        if got >= share * total - 1e-9:
            return k
    return 0


def sd_cdf_ks(sd_a, sd_b) -> float:
    """Largest ``|F_a(d) - F_b(d)|`` over every distance ``d``, ``F(d)`` the share of all accesses (cold
    ones, ``-1``, included in the total) with ``0 <= sd <= d``, by counting at each ``d``."""
    a, b = list(sd_a), list(sd_b)
    top = max([0, *a, *b])
    return max(abs(sum(0 <= x <= d for x in a) / len(a) - sum(0 <= x <= d for x in b) / len(b))
               for d in range(top + 1))
