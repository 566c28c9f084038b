"""Baseline synthetic-trace generators for ``benchmarks/fidelity.py`` (used by the benchmark only).

Each takes a real id stream (one table, time order) and returns ``n`` synthetic ids:

- :func:`iid_stack_distances`: the DLRM reference's generator (``dlrm_data_pytorch.py``,
  ``trace_generate_lru``): measure the stack-distance distribution (cold accesses included), draw
  i.i.d. distances, and replay them on an LRU stack (a cold draw creates a new id). Written on the
  O(log N) Fenwick replay of :mod:`tracegen.spec` (a ``"stack-empirical"`` node), not the
  reference's O(N * U) ``list.index`` loop; the law is the same.
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

from tracegen import spec
from tracegen.locality import dense_keys, sd_histogram, stack_distances


def iid_stack_distances(ids: np.ndarray, n: int, seed=0) -> np.ndarray:
    """``n`` ids whose stack distances are i.i.d. draws from the real trace's (DLRM reference baseline)."""
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
    if out.size < n:  # "target" number of indices: pad by repeating if it came back short
        out = np.resize(out, int(n))
    return out[: int(n)], p
