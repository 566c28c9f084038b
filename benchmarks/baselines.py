"""Baseline synthetic-trace generators for ``benchmarks/fidelity.py`` (used by the benchmark only).

Each takes a real id stream (one table, time order) and returns ``n`` synthetic ids:

- :func:`dlrm_reference_ids`: the DLRM reference's generator (``dlrm_data_pytorch.py``:
  ``trace_profile``, the ``__main__`` distribution, ``generate_stack_distance``, ``trace_generate_lru``;
  ``enable_padding`` off, its default): the CDF of the 1-based LRU depth over *all* accesses (0 = cold),
  drawn i.i.d.; while only ``i`` ids have been seen and ``i`` is below the largest depth, the draw is
  restricted to depths ``<= i`` (the reference's ``u *= F(i)``); depth 0 takes the next id in real
  first-appearance order, or the LRU bottom once all ``U`` have been seen. The same law and the same
  decisions as the reference for the same uniforms (``tests/test_bench_audit.py`` checks it against a
  transliteration), replayed on an O(log N) Fenwick stack instead of its O(U) list. The
  ``dlrm-ref`` rows of ``benchmarks/fidelity.py``.
- :func:`iid_stack_distances`: the same i.i.d. law with one change, a draw deeper than the current stack
  becomes a cold access (a new id) instead of being redrawn among the shallower depths; replayed by
  :mod:`tracegen.spec`'s ``"stack-empirical"`` sampler. Early in a trace the reference's restriction
  makes reuses too shallow (its depth can never exceed the ids seen so far, and on a trace with a
  steady cold rate that holds almost to the end); this variant spends the early deep draws on new
  ids instead, which on most traces here fits the LRU curve better (not on all: ARC P3, the loop
  and bursty probes go the other way): ``iid-sd`` in ``benchmarks/fidelity.py``; both are reported.
- :func:`fbgemm_eeg`: FBGEMM's own estimator and generator, ``python -m fbgemm_gpu.tbe.bench.eeg_cli
  estimate`` (heavy hitters + a Zipf(q, s) tail) then ``generate``, run as subprocesses
  (fbgemm-gpu-cpu 1.8.0, an optional benchmark dependency). FBGEMM's generator takes no seed.
- :func:`uniform_ids`: ids uniform over the real trace's distinct count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from numba import njit

from tracegen import spec
from tracegen._sample_kernels import _fen_add, _fen_select
from tracegen.locality import dense_keys, sd_histogram, stack_distances


@njit(cache=True)
def _reference_depths(list_sd, cumm_sd, u):
    """The reference's ``generate_stack_distance`` (no padding) for each uniform in ``u``, in order:
    ``list_sd`` the sorted 1-based depths (0 = cold), ``cumm_sd`` their CDF. Returns the depths."""
    n = u.shape[0]
    k = list_sd.shape[0]
    max_sd = list_sd[k - 1]
    out = np.empty(n, np.int64)
    i = 0  # new references so far
    for t in range(n):
        x = u[t]
        if i < max_sd:  # only depths up to the number of ids seen so far: u *= F(largest depth <= i)
            j = np.searchsorted(list_sd, i, side="right") - 1
            x *= cumm_sd[j]
        j = np.searchsorted(cumm_sd, x, side="left")  # first j with x <= cumm_sd[j]
        if j >= k:  # float round-off above the last CDF value (the reference would return None)
            j = k - 1
        d = list_sd[j]
        out[t] = d
        if d == 0:
            i += 1
    return out


@njit(cache=True)
def _lru_replay(depths, n_ids):
    """The reference's ``trace_generate_lru`` on ordinals: ids ``0..n_ids-1`` in creation order sit
    below the stack; depth 0 takes the next unseen one (or the LRU bottom once all are seen), depth
    ``d > 0`` the ``d``-th most recent. Fenwick tree over time slots (one per access)."""
    n = depths.shape[0]
    tree = np.zeros(n + 2, np.int64)  # Fenwick tree over n + 1 time slots
    slot_id = np.full(n + 1, -1, np.int64)
    last = np.full(n_ids, -1, np.int64)
    marked = 0
    nxt = 0
    out = np.empty(n, np.int64)
    for t in range(n):
        d = depths[t]
        if d == 0 and nxt < n_ids:
            x = nxt
            nxt += 1
        else:
            if d == 0:
                d = marked  # every id seen: the LRU bottom
            x = slot_id[_fen_select(tree, marked - d + 1)]  # the (marked - d + 1)-th mark, oldest first
        p = last[x]
        if p >= 0:  # unmark the old slot
            _fen_add(tree, p, -1)
            marked -= 1
        _fen_add(tree, t, 1)
        marked += 1
        last[x] = t
        slot_id[t] = x
        out[t] = x
    return out


def reference_profile(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's ``trace_profile`` + distribution: ``(line_accesses, list_sd, cumm_sd)`` (distinct
    ids in first-appearance order, sorted 1-based depths with 0 = cold, their CDF over all accesses)."""
    ids = np.asarray(ids, dtype=np.int64)
    sd = stack_distances(ids)  # 0-based, -1 cold: the reference's depth is sd + 1
    depth = sd + 1
    list_sd, counts = np.unique(depth, return_counts=True)
    cumm_sd = np.cumsum(counts) / float(max(ids.size, 1))
    return ids[sd < 0], list_sd.astype(np.int64), cumm_sd


def iid_from_profile(line_accesses, list_sd, cumm_sd, u: np.ndarray) -> np.ndarray:
    """``trace_generate_lru(line_accesses, list_sd, cumm_sd, len(u))`` driven by the uniforms ``u``."""
    line_accesses = np.asarray(line_accesses, dtype=np.int64)
    depths = _reference_depths(np.asarray(list_sd, np.int64), np.asarray(cumm_sd, np.float64),
                               np.asarray(u, np.float64))
    return line_accesses[_lru_replay(depths, line_accesses.size)]


def dlrm_reference_ids(ids: np.ndarray, n: int, seed=0) -> np.ndarray:
    """``n`` ids from the DLRM reference's i.i.d. stack-distance generator fitted on ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0 or int(n) <= 0:
        return np.zeros(0, np.int64)
    la, list_sd, cumm_sd = reference_profile(ids)
    return iid_from_profile(la, list_sd, cumm_sd, np.random.default_rng(seed).random(int(n)))


def iid_stack_distances(ids: np.ndarray, n: int, seed=0) -> np.ndarray:
    """``n`` ids with i.i.d. stack distances from ``ids``'s law, a too-deep draw becoming a new id."""
    sd = stack_distances(ids)
    counts, cold = sd_histogram(sd)
    u = int(dense_keys(ids)[1])
    vals = np.flatnonzero(counts)
    if vals.size == 0:  # every access cold
        vals, probs = np.zeros(1, np.int64), np.ones(1)
    else:
        probs = counts[vals] / counts[vals].sum()
    node = {"kind": "stack-empirical",
            "sd": {"kind": "empirical", "values": vals.tolist(), "probs": probs.tolist()},
            "cold": {"rate": cold / max(sd.size, 1)}}
    return spec.sample_ids(node, int(n), max(u, 1), seed)


def uniform_ids(ids: np.ndarray, n: int, seed=0) -> np.ndarray:
    """``n`` ids uniform over ``[0, U)``, ``U`` the real distinct count."""
    u = max(int(dense_keys(ids)[1]), 1)
    return np.random.default_rng(seed).integers(0, u, int(n), dtype=np.int64)


def fbgemm_available() -> str | None:
    """None when FBGEMM's eeg_cli can be run, else the reason it cannot."""
    try:
        import importlib.util

        if importlib.util.find_spec("fbgemm_gpu") is None:
            return ("fbgemm_gpu is not installed (pip install --no-deps fbgemm-gpu-cpu==1.8.0 torchrec==1.8.0, "
                    "then pip install -c constraints.txt tensordict torchmetrics==1.0.3 pyre-extensions iopath "
                    "click pyyaml)")
    except (ImportError, ValueError) as e:
        return f"fbgemm_gpu cannot be imported ({e})"
    r = subprocess.run([sys.executable, "-m", "fbgemm_gpu.tbe.bench.eeg_cli", "--help"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return "fbgemm_gpu.tbe.bench.eeg_cli does not run: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def _parse_estimate(out: str) -> dict:
    i, j = out.index("{"), out.rindex("}")
    params = json.loads(out[i:j + 1])
    tail = out[j + 1:]
    extra = dict(x.split("=", 1) for x in tail.split() if "=" in x)
    params["max_index"] = int(extra.get("max_index", -1))
    return params


def fbgemm_eeg(ids: np.ndarray, n: int, workdir: str | None = None) -> tuple[np.ndarray, dict]:
    """FBGEMM's estimate-then-generate on ``ids`` (densified first); returns ``(ids, estimated params)``."""
    import torch

    keys, u = dense_keys(ids)
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        src, dst = os.path.join(d, "real.pt"), os.path.join(d, "synth.pt")
        torch.save(torch.from_numpy(np.ascontiguousarray(keys)), src)
        cli = [sys.executable, "-m", "fbgemm_gpu.tbe.bench.eeg_cli"]
        r = subprocess.run([*cli, "estimate", "--indices", src], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"eeg_cli estimate failed: {r.stderr.strip()[-300:]}")
        p = _parse_estimate(r.stdout)
        hitters = ",".join(repr(float(x)) for x in p["heavy_hitters"][:20])
        max_index = max(int(p["max_index"]) + 1, u, 1)
        cmd = [sys.executable, "-m", "fbgemm_gpu.tbe.bench.eeg_cli", "generate", "--zipf", str(p["zipf_q"]),
               str(p["zipf_s"]), "-e", str(max_index), "-n", str(int(n)), "--output", dst]
        if hitters:
            cmd[4:4] = ["--hitters", hitters]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"eeg_cli generate failed: {r.stderr.strip()[-300:]}")
        out = torch.load(dst, weights_only=True).numpy().astype(np.int64).ravel()
    if out.size < n:  # "target" number of indices: pad by repeating if it came back short (said on stderr:
        # a repeat adds reuses at distance out.size that FBGEMM's model does not have)
        print(f"    fbgemm: generate returned {out.size} of {int(n)} ids; repeated to length", file=sys.stderr)
        out = np.resize(out, int(n))
    return out[: int(n)], p
