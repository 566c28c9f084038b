"""Benchmark: opening a large native npz is O(1) in time and memory until values are touched.

Writes a native npz of ``--accesses`` accesses (default 100M: 10 multi-hot tables, bags of ~10 ids,
streamed with ``open_writer`` so writing needs little memory), then in fresh subprocesses measures
(a) ``tracegen.formats.read`` (memory-mapped): open time and RSS growth, then the time to touch one
table; (b) the baseline, ``np.load`` of every array into memory: time and RSS growth; and (c)
``np.load`` alone, which is lazy on an npz too (it reads the zip directory), then reading one table:
the like-for-like open and touch figures. Also opens
a file 10x smaller to show the open time does not grow with size.

    python benchmarks/load_npz.py --accesses 10000000
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

N_TABLES = 10
BAG = 10


def make(path: str, accesses: int, seed: int = 0) -> None:
    from tracegen import Table, Trace, formats

    rng = np.random.default_rng(seed)
    samples = max(1, accesses // (N_TABLES * BAG))
    names = [f"t{j}" for j in range(N_TABLES)]
    card = 1_000_000
    chunk = 100_000
    with formats.open_writer(path, "npz", names=names, cardinalities=[card] * N_TABLES, force=True) as w:
        for start in range(0, samples, chunk):
            b = min(chunk, samples - start)
            tables = []
            for name in names:
                lengths = np.full(b, BAG, np.int64)
                tables.append(Table.from_lengths(name, rng.integers(0, card, b * BAG), lengths, card))
            w.write(Trace(tables))


CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

path, mode = sys.argv[1], sys.argv[2]
from tracegen import formats  # imports before the first reading
r0 = rss_kb()
t = time.perf_counter()
if mode == "mmap":
    tr = formats.read(path)
    dt = time.perf_counter() - t
    r1 = rss_kb()
    t = time.perf_counter()
    s = int(np.asarray(tr.tables[0].values).sum())
    touch = time.perf_counter() - t
    out = {{"open_s": dt, "open_rss_mb": (r1 - r0) / 1e3, "touch_one_table_s": touch,
           "n_accesses": tr.n_accesses}}
elif mode == "lazy":  # np.load itself is lazy on an npz: open, then read one table's values
    z = np.load(path)
    dt = time.perf_counter() - t
    r1 = rss_kb()
    t = time.perf_counter()
    s = int(z[next(k for k in z.files if k.endswith("_values"))].sum())
    touch = time.perf_counter() - t
    out = {{"open_s": dt, "open_rss_mb": (r1 - r0) / 1e3, "touch_one_table_s": touch}}
else:
    with np.load(path) as z:
        arrays = {{k: z[k] for k in z.files if k.endswith(("_values", "_offsets"))}}
    dt = time.perf_counter() - t
    out = {{"open_s": dt, "open_rss_mb": (rss_kb() - r0) / 1e3}}
print(json.dumps(out))
"""


def child(path: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=ROOT), path, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accesses", type=int, default=100_000_000)
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        big, small = os.path.join(d, "big.npz"), os.path.join(d, "small.npz")
        t = time.perf_counter()
        make(big, args.accesses)
        print(
            f"wrote {args.accesses:,} accesses ({os.path.getsize(big) / 1e9:.2f} GB) in "
            f"{time.perf_counter() - t:.1f} s"
        )
        make(small, args.accesses // 10, seed=1)
        m_small = child(small, "mmap")
        m = child(big, "mmap")
        base = child(big, "load")
        print(
            f"tracegen read (mmap), {m['n_accesses']:,} accesses: open {m['open_s'] * 1e3:.1f} ms, "
            f"RSS +{m['open_rss_mb']:.1f} MB; touching one table ({m['n_accesses'] // N_TABLES:,} ids) "
            f"{m['touch_one_table_s']:.2f} s"
        )
        print(
            f"tracegen read (mmap), {m_small['n_accesses']:,} accesses: "
            f"open {m_small['open_s'] * 1e3:.1f} ms, "
            f"RSS +{m_small['open_rss_mb']:.1f} MB  (10x smaller file: open time ratio "
            f"{m['open_s'] / m_small['open_s']:.2f})"
        )
        lazy = child(big, "lazy")
        print(f"baseline np.load reading every array into memory: {base['open_s']:.2f} s, "
              f"RSS +{base['open_rss_mb']:.0f} MB")
        print(f"baseline np.load alone (lazy NpzFile): open {lazy['open_s'] * 1e3:.1f} ms, "
              f"RSS +{lazy['open_rss_mb']:.1f} MB; reading one table's values "
              f"{lazy['touch_one_table_s']:.2f} s (ours, memory-mapped: {m['touch_one_table_s']:.2f} s)")
        print(
            f"open is {base['open_s'] / m['open_s']:.0f}x faster and uses "
            f"{base['open_rss_mb'] / max(m['open_rss_mb'], 0.1):.0f}x less memory than loading every array "
            f"({lazy['open_s'] / m['open_s']:.2f}x np.load's lazy open time)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
