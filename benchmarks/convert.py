"""Benchmark: stream a Criteo-format text file to a DLRM processed npz (rows/s, peak memory).

Generates a TAB-separated Criteo file of ``--rows`` rows (default 10M; variable-width ints, missing
fields, 8-digit hex categories with Criteo-like column sizes), then times ``tracegen convert`` (in a
fresh subprocess, so its peak RSS is its own) and, as the baseline in the same run, the reference's
way of parsing: a plain Python loop splitting each line and relabelling categories with dicts, on
the first ``--baseline-rows`` rows. Targets: >= 200k rows/s and < 2 GB peak for 10M rows.

    python benchmarks/convert.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Criteo-Kaggle-like distinct values per column (scaled down where huge)
CARDS = [
    1460,
    583,
    1_000_000,
    500_000,
    305,
    24,
    12517,
    633,
    3,
    93145,
    5683,
    800_000,
    3194,
    27,
    14992,
    600_000,
    10,
    5652,
    2173,
    4,
    700_000,
    18,
    15,
    286181,
    105,
    142572,
]


def generate(path: str, rows: int, seed: int = 0, chunk: int = 200_000) -> None:
    """Write ``rows`` Criteo lines (vectorised per chunk with numpy string ops)."""
    rng = np.random.default_rng(seed)
    ints = np.array([b""] + [str(i).encode() for i in range(-2, 5000)], dtype="S6")  # index 0 = missing
    hexes = [None] * 26
    with open(path, "wb") as f:
        for start in range(0, rows, chunk):
            b = min(chunk, rows - start)
            cols = [np.where(rng.random(b) < 0.25, b"1", b"0").astype("S1")]
            for _ in range(13):
                v = np.minimum(rng.geometric(0.05, b) - 1, 4999) + 3
                v[rng.random(b) < 0.2] = 0
                cols.append(ints[v])
            for j, card in enumerate(CARDS):
                if hexes[j] is None:
                    keys = rng.integers(0, 2**32, card, dtype=np.uint64)
                    digits = (keys[:, None] >> np.arange(28, -1, -4, dtype=np.uint64)) & np.uint64(15)
                    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[digits.astype(np.int64)]
                    hexes[j] = np.concatenate([np.array([b""], "S8"), chars.copy().view("S8").ravel()])
                r = np.minimum(rng.zipf(1.2, b), card)  # Zipf popularity over the column's values
                r[rng.random(b) < 0.05] = 0  # missing
                cols.append(hexes[j][r])
            f.write(join_fields(cols))


@njit(cache=True)
def _join(mats, lens, out):
    """Write rows of fields (``mats[j]`` (b, w) bytes, ``lens`` (b, fields)) TAB separated into ``out``."""
    pos = 0
    for i in range(lens.shape[0]):
        for j in range(lens.shape[1]):
            m = mats[j]
            for k in range(lens[i, j]):
                out[pos] = m[i, k]
                pos += 1
            out[pos] = 9 if j < lens.shape[1] - 1 else 10
            pos += 1
    return pos


def join_fields(cols: list[np.ndarray]) -> bytes:
    """Lines ``col0 TAB col1 ... NEWLINE`` from fixed-width byte-string columns."""
    b = cols[0].shape[0]
    lens = np.stack([np.char.str_len(c) for c in cols], axis=1).astype(np.int64)  # (b, fields)
    width = max(c.dtype.itemsize for c in cols)
    mats = np.zeros((len(cols), b, width), np.uint8)
    for j, c in enumerate(cols):
        mats[j, :, : c.dtype.itemsize] = c.view(np.uint8).reshape(b, c.dtype.itemsize)
    out = np.empty(int(lens.sum()) + lens.size, np.uint8)
    n = _join(mats, lens, out)
    return out[:n].tobytes()


def baseline(path: str, rows: int) -> float:
    """rows/s of the reference's per-line Python parse (split, int, int(x, 16), dict relabelling)."""
    dicts = [{} for _ in range(26)]
    t = time.perf_counter()
    n = 0
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            fields = [x if x != "" else "0" for x in fields]
            _y = int(fields[0])
            _x = [max(0, int(x)) for x in fields[1:14]]
            _c = [dicts[j].setdefault(int(x, 16), len(dicts[j])) for j, x in enumerate(fields[14:])]
            n += 1
            if n >= rows:
                break
    return n / (time.perf_counter() - t)


CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from tracegen.commands.convert import convert
src, dst, warm = sys.argv[1], sys.argv[2], sys.argv[3]
convert(warm, dst + ".warm.npz", to="dlrm-npz", force=True, progress=False)  # numba kernels loaded
os.unlink(dst + ".warm.npz"); os.unlink(dst + ".warm_day_count.npz")
t = time.perf_counter()
convert(src, dst, to="dlrm-npz", force=True, progress=False)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--baseline-rows", type=int, default=200_000)
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        src = os.path.join(d, "day_0")
        t = time.perf_counter()
        generate(src, args.rows)
        size = os.path.getsize(src)
        print(f"generated {args.rows:,} rows ({size / 1e9:.2f} GB) in {time.perf_counter() - t:.1f} s")
        warm = os.path.join(d, "warm")
        generate(warm, 1000, seed=1)
        dst = os.path.join(d, "processed.npz")
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(root=ROOT), src, dst, warm],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rate = args.rows / res["seconds"]
        base = baseline(src, min(args.rows, args.baseline_rows))
        peak_gb = res["peak_rss_kb"] / 1e6
        mbs = size / res["seconds"] / 1e6
        nb = min(args.rows, args.baseline_rows)
        print(
            f"tracegen convert: {res['seconds']:.1f} s, {rate:,.0f} rows/s, {mbs:.0f} MB/s, "
            f"peak RSS {peak_gb:.2f} GB"
        )
        print(f"baseline (Python per-line loop, first {nb:,} rows): {base:,.0f} rows/s")
        print(
            f"speed-up {rate / base:.1f}x; "
            f"target >= 200,000 rows/s: {'met' if rate >= 200_000 else 'NOT met'}; "
            f"peak < 2 GB: {'met' if peak_gb < 2 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
