"""DP fidelity: LRU MRC mean/max and top-1%/10% share error of the DP fit, averaged over repeated fits.

The DP noise is fresh on every fit, so one run moves by a few hundredths; this script fits each
trace ``--repeats`` times at every epsilon (default 0.5, 1, 4), samples one twin of the same size per
fit (seed 0) and prints the mean (and standard deviation) of each figure over the repeats. Traces and
their loading are those of ``quick_fidelity.py``.

    python benchmarks/dp_fidelity.py --only oltp planted cloudphysics --repeats 3
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from quick_fidelity import load, summarize  # noqa: E402

from tracegen.tracemodel import TraceModel, fidelity  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="substrings of the trace names printed (those of "
                    "quick_fidelity.py: arc-OLTP, arc-P3, cloudphysics-lbn, criteo-hillview, criteo-deepctr, "
                    "planted-zipf-recency) to run")
    ap.add_argument("--max-accesses", type=int, default=1_000_000, help="cut long traces (P3) to this")
    ap.add_argument("--epsilons", type=float, nargs="*", default=[0.5, 1.0, 4.0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    keys = ("mrc_mean", "mrc_max", "top1", "top10", "footprint")
    traces = load(args.only, args.max_accesses)  # exits 2 when --only matches no trace
    print("| trace | epsilon | MRC mean | MRC max | top-1% | top-10% | footprint | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, real in traces:
        for eps in args.epsilons:
            rows, secs = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model = TraceModel(epsilon=eps).fit(real)
                secs.append(time.perf_counter() - t0)
                mean, _ = summarize(real, fidelity(real, model.sample(real.n_samples, seed=0)))
                rows.append([mean[k] for k in keys])
            a = np.asarray(rows)
            cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(a.mean(0), a.std(0)))
            print(f"| {name} | {eps:g} | {cells} | {np.mean(secs):.1f} |", flush=True)
    print(f"\nmean ± sd over {args.repeats} fits (fresh DP noise each); one twin (seed 0) per fit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
