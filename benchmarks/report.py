"""Benchmark ``tracegen report`` on a 10M-access, 26-table trace (target: under 60 s on this machine).

Generates a planted Criteo-like trace (:func:`tracegen.synth.planted_trace`, 26 tables, 3 multi-hot) of about
``--accesses`` accesses, writes it as a native npz, and times the whole command
``tracegen report TRACE -o DIR --force -q`` in a fresh process (Python start-up, reading, analysis, the torch
measurement and the figures). With ``--vs`` it also times the report against a second trace (the same planted
generator with another seed, standing in for a synthetic twin). The baseline, measured in the same run, is one
exact stack-distance pass over the shared stream of all tables (:func:`tracegen.locality.stack_distances`),
so the ratio says how many such passes the report costs.

    python benchmarks/report.py                       # 10M accesses, with and without --vs
    python benchmarks/report.py --accesses 1000000    # quicker
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tracegen", *argv], cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"tracegen {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accesses", type=int, default=10_000_000, help="about this many accesses (10M)")
    ap.add_argument("--no-vs", action="store_true", help="skip the --vs run")
    ap.add_argument("--keep", metavar="DIR", help="write the trace and reports here and keep them "
                    "(default: a temporary folder, removed at exit)")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        _bench(args, args.keep)
        print(f"reports in {args.keep}")
    else:  # the trace and reports (hundreds of MB at the default size) are removed at exit
        with tempfile.TemporaryDirectory(prefix="tracegen-bench-report-") as work:
            _bench(args, work)


def _bench(args, work: str) -> None:
    """Write the planted trace into ``work``, time the baseline and the report command(s)."""
    import numpy as np

    from analysis import locality as aloc
    from tracegen import formats, locality, synth

    per_sample = 23 + 3 * 3.0  # 23 one-hot tables + 3 multi-hot tables of mean bag 3
    n = max(int(args.accesses / per_sample), 1)
    t0 = time.perf_counter()
    tr = synth.planted_trace(n, seed=0)
    path = os.path.join(work, "planted.npz")
    formats.write(tr, path, "npz", force=True)
    gen = time.perf_counter() - t0
    print(f"trace: {tr.n_tables} tables, {tr.n_samples:,} samples, {tr.n_accesses:,} accesses "
          f"(generated and written in {gen:.1f} s)")

    ids, _ = aloc.interleave(tr, 2048)
    locality.stack_distances(ids[:1000])  # compile outside the timing
    t0 = time.perf_counter()
    sd = locality.stack_distances(ids)
    base = time.perf_counter() - t0
    print(f"baseline: exact stack distances of the shared stream ({ids.size:,} accesses): {base:.2f} s "
          f"({int(np.count_nonzero(sd < 0)):,} distinct)")
    del sd, ids

    out = os.path.join(work, "report")
    dt = _run(["report", path, "-o", out, "--force", "-q"])
    print(f"tracegen report TRACE: {dt:.1f} s wall ({dt / base:.1f}x baseline) -- target < 60 s: "
          f"{'met' if dt < 60 else 'NOT met'}")
    if not args.no_vs:
        other = os.path.join(work, "other.npz")
        formats.write(synth.planted_trace(n, seed=1), other, "npz", force=True)
        dt = _run(["report", path, "--vs", other, "-o", out + "-vs", "--force", "-q"])
        print(f"tracegen report TRACE --vs OTHER: {dt:.1f} s wall ({dt / base:.1f}x baseline)")


if __name__ == "__main__":
    main()
