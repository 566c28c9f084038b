"""Quick fidelity check of the class-stack trace model (ours only; baselines are in fidelity.py).

For each trace: fit ``TraceModel()``, sample a twin of the same size (seed 0), and print per trace
(access-weighted mean over tables, and the worst table): LRU MRC mean/max abs error over 40
log-spaced sizes, top-1%/10% share error, footprint error, bag-length TV distance, and FIFO/LFU/ARC
miss-ratio abs error (max over caches of 1%, 10%, 30% of the real distinct count; libCacheSim).
Also, with ``--dp``, the same for the DP fit at epsilon 0.5, 1, 4.

    python benchmarks/quick_fidelity.py                     # all, P3 cut to 1M accesses
    python benchmarks/quick_fidelity.py --only oltp planted --max-accesses 200000 --dp
    python benchmarks/quick_fidelity.py --time-bins 128       # finer class mix / cold-rate slices
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tracegen.trace import Trace  # noqa: E402
from tracegen.tracemodel import TraceModel, fidelity  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
POLICIES = ("FIFO", "LFU", "ARC")
FRACTIONS = (0.01, 0.1, 0.3)


def planted(n: int = 500_000, u: int = 50_000, seed: int = 0) -> np.ndarray:
    """Zipf(1.0)-like popularity over u ids with planted temporal locality and a growing footprint."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, u + 1) ** 0.9
    ranks = rng.choice(u, size=n, p=w / w.sum())
    # ids become available over time: rank r is usable after position r * n / (2u)
    ids = rng.permutation(u)[ranks]
    recent = rng.random(n) < 0.4
    back = np.minimum(rng.geometric(0.01, n), np.arange(n))
    idx = np.nonzero(recent & (back > 0))[0]
    for i in idx:  # sequential on purpose: copies may chain
        ids[i] = ids[i - back[i]]
    return ids.astype(np.int64)


CRITEO = (
    ("criteo-hillview", "criteo-tsv", "hillview_criteoTab.csv"),
    ("criteo-deepctr", "criteo-csv", "deepctr_criteo_sample.txt"),
)


def trace_names() -> list[str]:
    """The row names ``--only`` matches (substrings, case-insensitive): traces present, and the planted one."""
    names = []
    if (DATA / "arc" / "arc_OLTP_P3.npz").exists():
        names += ["arc-OLTP", "arc-P3"]
    if (DATA / "cloudphysics" / "cloudPhysicsIO.csv").exists():
        names.append("cloudphysics-lbn")
    names += [name for name, _, fn in CRITEO if (DATA / "criteo_samples" / fn).exists()]
    return names + ["planted-zipf-recency"]


def select(only: list[str] | None) -> list[str]:
    """The names of :func:`trace_names` that ``--only`` picks; exits 2 naming them when it picks none."""
    names = trace_names()
    if not only:
        return names
    picked = [n for n in names if any(o.lower() in n.lower() for o in only)]
    if not picked:
        sys.stderr.write(f"no trace matches --only {' '.join(only)} (names: {', '.join(names)})\n")
        sys.exit(2)
    return picked


def load(only: list[str] | None, max_acc: int) -> list[tuple[str, Trace]]:
    """The traces whose printed row names contain one of the ``only`` substrings (all when empty)."""
    out = []
    picked = set(select(only))

    def want(name):
        return name in picked

    arc = DATA / "arc" / "arc_OLTP_P3.npz"
    if arc.exists():
        z = np.load(arc)
        for key in ("OLTP", "P3"):
            if want(f"arc-{key}"):
                out.append((f"arc-{key}", Trace.single(z[key][:max_acc].astype(np.int64))))
    cp = DATA / "cloudphysics" / "cloudPhysicsIO.csv"
    if cp.exists() and want("cloudphysics-lbn"):
        with open(cp) as f:
            ids = np.array([int(r["lbn"]) for r in csv.DictReader(f)], np.int64)
        _, inv = np.unique(ids, return_inverse=True)
        out.append(("cloudphysics-lbn", Trace.single(inv.astype(np.int64))))
    for name, fmt, fn in CRITEO:
        p = DATA / "criteo_samples" / fn
        if p.exists() and want(name):
            from tracegen import formats

            out.append((name, formats.read(p, fmt)))
    if want("planted-zipf-recency"):
        out.append(("planted-zipf-recency", Trace.single(planted())))
    return out


def have_cachesim() -> bool:
    """Whether the optional ``libcachesim`` (FIFO/LFU/ARC replay) can be imported."""
    from tracegen import cachesim

    return cachesim.available()


def miss_ratio(ids: np.ndarray, policy: str, size: int) -> float:
    """Miss ratio of ``policy`` (libCacheSim, through :mod:`tracegen.cachesim`) at one size."""
    from tracegen.cachesim import miss_ratios

    return float(np.asarray(miss_ratios(ids, policy, [size]))[0])


def non_lru(real: Trace, syn: Trace, max_ids: int) -> dict:
    out = {p: 0.0 for p in POLICIES}
    for rt, st in zip(real.tables, syn.tables):
        a, b = np.asarray(rt.values), np.asarray(st.values)
        if max_ids:
            a, b = a[:max_ids], b[:max_ids]
        u = np.unique(a).shape[0]
        if u < 20:
            continue
        for p in POLICIES:
            for f in FRACTIONS:
                c = max(1, int(f * u))
                out[p] = max(out[p], abs(miss_ratio(a, p, c) - miss_ratio(b, p, c)))
    return out


def summarize(real: Trace, f: dict) -> tuple[dict, dict]:
    w = {t.name: t.n_accesses for t in real.tables}
    tot = sum(w[k] for k in f)
    keys = ("mrc_mean", "mrc_max", "top1", "top10", "footprint", "bag_tv")
    mean = {k: sum(f[t][k] * w[t] for t in f) / tot for k in keys}
    worst = {k: max(f[t][k] for t in f) for k in keys}
    return mean, worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="substrings of the trace names printed (arc-OLTP, arc-P3, "
                    "cloudphysics-lbn, criteo-hillview, criteo-deepctr, planted-zipf-recency) to run")
    ap.add_argument("--max-accesses", type=int, default=1_000_000, help="cut long traces (P3) to this")
    ap.add_argument(
        "--non-lru-max",
        type=int,
        default=0,
        help="replay only this many first accesses in FIFO/LFU/ARC (default 0: all)",
    )
    ap.add_argument("--no-non-lru", action="store_true")
    ap.add_argument("--dp", action="store_true", help="also the DP fits at epsilon 0.5, 1, 4")
    ap.add_argument(
        "--time-bins", type=int, default=None, help="TraceModel n_time_bins (default: the model's default)"
    )
    args = ap.parse_args(argv)
    traces = load(args.only, args.max_accesses)
    no_non_lru = args.no_non_lru
    if not no_non_lru and not have_cachesim():
        print("FIFO/LFU/ARC skipped: libcachesim not installed", file=sys.stderr)
        no_non_lru = True
    print(
        "| trace | fit | tables | accesses | MRC mean | MRC max | top-1% | top-10% | footprint | bag TV "
        "| FIFO | LFU | ARC | fit s | sample s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, real in traces:
        base = {} if args.time_bins is None else {"n_time_bins": args.time_bins}
        fits = [("ours", base)] + (
            [(f"dp eps={e:g}", {**base, "epsilon": e}) for e in (0.5, 1.0, 4.0)] if args.dp else []
        )
        for label, params in fits:
            t0 = time.perf_counter()
            model = TraceModel(**params).fit(real)
            t1 = time.perf_counter()
            syn = model.sample(real.n_samples, seed=0)
            t2 = time.perf_counter()
            f = fidelity(real, syn)
            mean, worst = summarize(real, f)
            nl = {p: "-" for p in POLICIES} if no_non_lru else {
                p: f"{v:.4f}" for p, v in non_lru(real, syn, args.non_lru_max).items()
            }

            def cell(k, mean=mean, worst=worst, one=real.n_tables == 1):
                return f"{mean[k]:.4f}" if one else f"{mean[k]:.4f} ({worst[k]:.3f})"

            print(
                f"| {name} | {label} | {real.n_tables} | {real.n_accesses} | {cell('mrc_mean')} | "
                f"{cell('mrc_max')} | {cell('top1')} | {cell('top10')} | {cell('footprint')} | "
                f"{cell('bag_tv')} | {nl['FIFO']} | {nl['LFU']} | {nl['ARC']} | "
                f"{t1 - t0:.1f} | {t2 - t1:.1f} |",
                flush=True,
            )
    print(
        "\nmulti-table rows: access-weighted mean over tables (worst table in parentheses); "
        "FIFO/LFU/ARC: max abs miss-ratio error over caches of 1%, 10%, 30% of the distinct ids, worst table."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
