"""Speed of ``TraceModel.fit`` against the locality engine, measured in the same process.

For each trace the baseline is the locality engine's own pass over every table
(``stack_distances`` + ``sd_histogram``, what ``tracegen profile`` computes). Then, in accesses/s
and as a ratio to that baseline: the statistics pass alone (``calibrate=0``: classes, histograms,
time bins), the default fit (which also samples twins to choose the sampling mode and calibrate
it), and the default fit with tables in ``--workers`` processes (the output does not change).

Traces: ARC OLTP (from ../shared/data when present) and a generated multi-hot trace shaped like
Meta's embedding lookups (4 tables, pooling factors 1-60, Zipf-like ids over 300 to 5M rows).

    python benchmarks/fit_speed.py
    python benchmarks/fit_speed.py --samples 80000 --workers 2
    python benchmarks/fit_speed.py --zipf 10000000 --no-default   # one long table; prints peak RSS
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tracegen.locality import sd_histogram, stack_distances  # noqa: E402
from tracegen.trace import Table, Trace  # noqa: E402
from tracegen.tracemodel import TraceModel  # noqa: E402

OLTP = HERE.parent.parent / "shared" / "data" / "arc" / "arc_OLTP_P3.npz"


def multi_hot(n_samples: int, seed: int = 1) -> Trace:
    """Four tables: (rows, mean pooling factor) = (1M, 30), (50k, 5), (5M, 60), (300, 1); Zipf(1.05) ids."""
    rng = np.random.default_rng(seed)
    tabs = []
    for j, (rows, pool) in enumerate(((1_000_000, 30), (50_000, 5), (5_000_000, 60), (300, 1))):
        lengths = rng.poisson(pool, n_samples).astype(np.int64)
        m = min(rows, 2_000_000)
        w = 1.0 / np.arange(1, m + 1) ** 1.05
        ranks = rng.choice(m, size=int(lengths.sum()), p=w / w.sum())
        ids = rng.permutation(rows)[:m][ranks]
        tabs.append(Table.from_lengths(f"T{j}", ids.astype(np.int64), lengths, rows))
    return Trace(tabs)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=40_000, help="samples of the multi-hot trace")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes for the last row")
    ap.add_argument("--zipf", type=int, default=0, help="also one table of this many Zipf(0.9) accesses")
    ap.add_argument("--no-default", action="store_true", help="skip ARC OLTP and the multi-hot trace")
    args = ap.parse_args(argv)

    traces = []
    if OLTP.exists() and not args.no_default:
        traces.append(("ARC OLTP", Trace.single(np.load(OLTP)["OLTP"].astype(np.int64))))
    if not args.no_default:
        traces.append((f"multi-hot x4 ({args.samples} samples)", multi_hot(args.samples)))
    if args.zipf:
        rng = np.random.default_rng(0)
        w = 1.0 / np.arange(1, 1_000_001) ** 0.9
        ids = rng.choice(1_000_000, size=args.zipf, p=w / w.sum()).astype(np.int64)
        traces.append(("Zipf(0.9) over 1M ids", Trace.single(ids)))
    TraceModel().fit(Trace.single(np.arange(3000) % 97))  # compile every kernel once

    for name, tr in traces:
        n = tr.n_accesses
        base = timed(lambda tr=tr: [sd_histogram(stack_distances(t.values)) for t in tr.tables])
        rows = [
            ("statistics only (calibrate=0)", timed(lambda tr=tr: TraceModel(calibrate=0).fit(tr))),
            ("default fit", timed(lambda tr=tr: TraceModel().fit(tr))),
        ]
        if tr.n_tables > 1 and args.workers > 1:
            t = timed(lambda tr=tr: TraceModel().fit(tr, workers=args.workers))
            rows.append((f"default fit, {args.workers} workers", t))
        print(f"{name}: {tr.n_tables} tables, {n} accesses")
        print(f"  locality engine (stack distances + histogram): {base:6.2f} s  {n / base / 1e6:6.2f} M acc/s")
        for label, t in rows:
            print(f"  {label:<34}{t:6.2f} s  {n / t / 1e6:6.2f} M acc/s  ({t / base:.1f}x the engine's time)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
