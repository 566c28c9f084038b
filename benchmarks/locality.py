"""Locality engine speed and memory against libCacheSim's LRU, measured in the same run.

Prints accesses/s for: exact stack distances + full LRU MRC (with the per-access output, and the
histogram-only profiler path), SHARDS at rate 0.01 (+ MRC; approximate, so its ratio is against
libCacheSim's *exact* replay: the Python binding of libCacheSim 0.3.5 does not expose its SHARDS
sampler), libCacheSim LRU at one cache size and at 20 sizes (best of ``--reps`` like ours); the
ratios ours/libCacheSim; the largest |difference| between our MRC and libCacheSim's miss ratios at
the 20 sizes; the peak extra resident memory of each step; and the
load average (the machine is shared: compare ratios, not absolute figures, across runs).

Usage:
  python benchmarks/locality.py                  # 10M accesses, Zipf(0.9) over 1M ids (the issue's size)
  python benchmarks/locality.py --n 1000000      # quicker
  python benchmarks/locality.py --trace /path/arc_OLTP_P3.npz:P3
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tracegen import locality as L  # noqa: E402


def zipf_ids(n: int, u: int, alpha: float, seed: int = 0) -> np.ndarray:
    """``n`` ids over ``u`` ids with P(rank k) ~ k^-alpha (any alpha >= 0), ranks randomly relabelled."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, u + 1, dtype=np.float64) ** -alpha
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random(n)), u - 1)
    return rng.permutation(u).astype(np.int64)[ranks]


def _status(key: str) -> int:
    """A field of /proc/self/status in bytes (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(fn, reps: int = 1):
    """(best seconds, peak extra RSS bytes over the call, result)."""
    best, peak, out = float("inf"), 0, None
    for _ in range(reps):
        out = None
        base = _status("VmRSS")
        _reset_peak()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        peak = max(peak, _status("VmHWM") - base)
    return best, peak, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="accesses (default 10M)")
    ap.add_argument("--u", type=int, default=1_000_000, help="ids (default 1M)")
    ap.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent (default 0.9)")
    ap.add_argument("--trace", help="use a real trace instead: FILE.npz:KEY or FILE.npy")
    ap.add_argument("--rate", type=float, default=0.01, help="SHARDS rate (default 0.01)")
    ap.add_argument("--reps", type=int, default=1,
                    help="repetitions of every step, ours and libCacheSim's alike (best time kept)")
    ap.add_argument("--no-lcs", action="store_true", help="skip libCacheSim")
    args = ap.parse_args(argv)

    if args.trace:
        path, _, key = args.trace.partition(":")
        ids = (np.load(path)[key] if key else np.load(path)).astype(np.int64)
        what = args.trace
    else:
        ids = zipf_ids(args.n, args.u, args.alpha)
        what = f"Zipf({args.alpha}) over {args.u:,} ids"
    n = ids.size
    print(f"trace: {n:,} accesses, {what}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")

    # compile the kernels outside the timings
    L.stack_distances(ids[:2000])
    L.StreamingProfiler().update(ids[:2000]).stack_distance_histogram()
    L.shards_histogram(ids[:2000], rate=0.5)

    def exact_out():
        sd = L.stack_distances(ids)
        counts, cold = L.sd_histogram(sd)
        return L.miss_ratio_curve(counts, cold), counts, cold

    state = {}

    def exact_hist():
        prof = L.StreamingProfiler().update(ids)
        counts, cold = prof.stack_distance_histogram()
        state["bytes"] = prof.state_bytes()
        return L.miss_ratio_curve(counts, cold), counts, cold

    def shards():
        counts, cold, r = L.shards_histogram(ids, rate=args.rate)
        return L.miss_ratio_curve(counts, cold)

    rows = []
    t_out, m_out, (mrc, counts, cold) = measure(exact_out, args.reps)
    rows.append(("exact sd (per-access out) + full MRC", t_out, m_out))
    del mrc
    t_h, m_h, (_, counts2, cold2) = measure(exact_hist, args.reps)
    assert cold2 == cold and np.array_equal(counts2, counts)
    rows.append(("exact sd histogram (profiler) + full MRC", t_h, m_h))
    t_s, m_s, (s_sizes, s_mr) = measure(shards, args.reps)
    rows.append((f"SHARDS rate {args.rate:g} + full MRC", t_s, m_s))
    u = cold
    sizes20 = np.unique(np.geomspace(max(1, u // 1000), u, 20).astype(np.int64))
    _, exact20 = L.miss_ratio_curve(counts, cold, sizes20)
    _, shards20 = L.miss_ratio_curve(*L.shards_histogram(ids, rate=args.rate)[:2], sizes20)

    lcs1 = lcs20 = None
    if not args.no_lcs:
        try:
            import libcachesim as lcs

            from tracegen.cachesim import oracle_general_file
        except ImportError:
            print("libcachesim not installed: no baseline")
        else:
            with oracle_general_file(ids) as path:
                def replay(c):
                    r = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE,
                                        lcs.ReaderInitParam(ignore_obj_size=True))
                    return lcs.LRU(cache_size=int(c)).process_trace(r)[0]

                one = int(sizes20[len(sizes20) // 2])
                t1, m1, mr1 = measure(lambda: replay(one), args.reps)
                lcs1 = t1
                rows.append((f"libCacheSim LRU, 1 size ({one:,} rows)", t1, m1))
                t20, m20, mr20 = measure(lambda: [replay(c) for c in sizes20], args.reps)
                lcs20 = t20
                rows.append((f"libCacheSim LRU, {len(sizes20)} sizes", t20, m20))
                diff = float(np.max(np.abs(np.asarray(mr20) - exact20)))

    print(f"distinct ids {u:,}; cold fraction {u / n:.4f}; median warm sd "
          f"{L.sd_percentiles(counts, cold)['p50']:,}")
    print(f"{'step':<44} {'seconds':>9} {'M acc/s':>9} {'peak +RSS MiB':>14} {'vs lcs 1':>9} "
          f"{'vs lcs 20':>9}")
    for name, t, m in rows:
        r1 = f"{lcs1 / t:9.2f}" if lcs1 else f"{'-':>9}"
        r20 = f"{lcs20 / t:9.2f}" if lcs20 else f"{'-':>9}"
        print(f"{name:<44} {t:9.3f} {n / t / 1e6:9.2f} {m / 2**20:14.1f} {r1} {r20}")
    print(f"output array alone: {n * 8 / 2**20:.1f} MiB; ids {ids.nbytes / 2**20:.1f} MiB; "
          f"exact engine state "
          f"{state['bytes'] / 2**20:.1f} MiB = {state['bytes'] / max(u, 1):.0f} bytes per distinct id "
          f"(RSS peaks are noisy: freed memory is reused)")
    if lcs20 is not None:
        print(f"max |our LRU MRC - libCacheSim| at {len(sizes20)} sizes: {diff:.2e}")
    print(f"SHARDS rate {args.rate:g}: MAE vs exact at {len(sizes20)} log-spaced sizes "
          f"{np.mean(np.abs(shards20 - exact20)):.4f}; at 101 even sizes "
          f"{_mae_even(counts, cold, ids, args.rate):.4f}")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    return 0


def _mae_even(counts, cold, ids, rate) -> float:
    sizes = np.linspace(0, cold, 101).astype(np.int64)
    _, ex = L.miss_ratio_curve(counts, cold, sizes)
    return float(np.mean(np.abs(L.shards(ids, rate=rate, sizes=sizes).miss_ratios - ex)))


if __name__ == "__main__":
    sys.exit(main())
