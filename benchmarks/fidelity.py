"""Fidelity benchmark: how closely synthetic traces reproduce real ones, ours against four baselines.

For every real trace in ``../shared/data`` (ARC OLTP and P3, CloudPhysics ``lbn``, the two Criteo
samples' 26 categorical tables), planted synthetic ones (:mod:`tracegen.synth`) and probe patterns
unlike the real ones (``benchmarks/probes.py``: a loop, a block trace, bursty ids, a workload
switch, multi-hot tables), each generator produces a trace of the same size and shape (the
baselines keep the real bag lengths and only generate ids, table by table):

- ``ours``: ``TraceModel().fit(real).sample(n_samples, seed=0)`` (and, for the DP rows,
  ``TraceModel(epsilon=e)`` for e in 0.5, 1, 4);
- ``dlrm-ref``: the DLRM reference's generator, i.i.d. stack distances exactly as
  ``dlrm_data_pytorch.py`` draws them (``benchmarks/baselines.py``);
- ``iid-sd``: the same i.i.d. law, a draw deeper than the current stack becoming a new id instead of
  being redrawn among shallower depths (a stronger variant on these traces);
- ``fbgemm``: FBGEMM's ``eeg_cli estimate`` + ``generate`` (heavy hitters + Zipf), skipped with a
  message when ``fbgemm_gpu`` is not importable or ``--no-fbgemm``;
- ``uniform``: uniform ids over the real distinct count;
- ``same-gen`` (planted traces only): the planted generator itself with another seed, the noise floor
  (no generator can be expected to beat two independent draws of the true process);
- ``halves`` (real traces): the real trace's second half scored against its first half (both half
  the length): how much the statistics move within the real trace itself, by drift and by chance.
  On small traces (the Criteo samples: 200-1,000 samples) this is the scale below which no error
  figure means much.
- with ``--holdout`` (real traces): every other row is in sample (each generator is fitted on the
  trace it is scored against, and ``fit`` chooses its mode by twins' LRU, top-share, LFU and FIFO
  errors against it); ``ours, fit on 1st half, vs 2nd`` fits on the first half only and scores its
  twin against the second half, next to ``1st half vs 2nd`` (the first half itself, scored the same
  way): the out-of-sample check.

Metrics per table (``tracegen.tracemodel.fidelity``), averaged over tables weighted by accesses:
LRU miss-ratio-curve mean and max absolute error over 40 log-spaced cache sizes (1 row to the real
distinct count), absolute error of the share of accesses to the top 1% and top 10% ids (the same
number of ids on both sides: 1%/10% of the real distinct count; :func:`top_share_errors`), footprint
error (max abs error of distinct-so-far / real distinct); FIFO, LFU and ARC miss-ratio absolute error
(max over caches of 1%, 10% and 30% of the real distinct count, ``tracegen.cachesim.miss_ratios``).

Prints markdown tables (for the README) and, with ``--json OUT``, writes every figure.

    python benchmarks/fidelity.py                       # all traces, P3 cut to --max-accesses 1M
    python benchmarks/fidelity.py --only oltp planted --no-fbgemm --max-accesses 200000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402

from tracegen.trace import Table, Trace  # noqa: E402

REGENERATE: dict = {}  # planted trace name -> (seed -> trace): its "same-gen" row is the noise floor
TARGETS = {"mrc_mean": 0.005, "mrc_max": 0.02, "top1": 0.02, "non_lru": 0.03}
POLICIES = ("FIFO", "LFU", "ARC")
CACHE_FRACTIONS = (0.01, 0.1, 0.3)
EPSILONS = (0.5, 1.0, 4.0)
METRICS = ("mrc_mean", "mrc_max", "top1", "top10", "footprint", "FIFO", "LFU", "ARC")


# ---- traces -------------------------------------------------------------------------------------
def load_traces(data: pathlib.Path, max_accesses: int, only: list[str] | None) -> list[tuple[str, Trace]]:
    from tracegen import formats, synth

    out: list[tuple[str, Trace]] = []

    def want(name):
        return not only or any(o.lower() in name.lower() for o in only)

    arc = data / "arc" / "arc_OLTP_P3.npz"
    if arc.exists():
        z = np.load(arc)
        for key in ("OLTP", "P3"):
            name = f"arc-{key}"
            if want(name):
                ids = np.asarray(z[key][:max_accesses], dtype=np.int64)
                out.append((name, Trace.single(ids - ids.min(), name="t0")))
    cp = data / "cloudphysics" / "cloudPhysicsIO.csv"
    if cp.exists() and want("cloudphysics"):
        try:
            t = formats.read(cp, id_col="lbn", densify=True)
        except TypeError:
            t = formats.read(cp)
        t = t.slice(0, max_accesses)
        out.append(("cloudphysics", t))
    criteo = (("deepctr_criteo_sample.txt", "criteo-deepctr"), ("hillview_criteoTab.csv", "criteo-hillview"))
    for fname, name in criteo:
        p = data / "criteo_samples" / fname
        if p.exists() and want(name):
            t = formats.read(p)
            out.append((name, Trace(t.tables)))
    n_planted = min(max_accesses, 200_000)
    n_criteo = max(1000, n_planted // 26)

    def one(ids):
        return Trace.single(ids, name="t0")

    planted = {
        "planted-zipf": lambda seed: one(synth.zipf_ids(n_planted, 50_000, 0.9, seed=seed)),
        "planted-drift": lambda seed: one(synth.drifting_ids(n_planted, 50_000, seed=seed)),
        "planted-criteo": lambda seed: Trace(synth.planted_trace(n_criteo, seed=seed).tables),
    }
    import probes  # generated access patterns unlike the real traces (benchmarks/probes.py)

    planted.update(probes.probes())
    for name, make in planted.items():
        if want(name):
            out.append((name, make(1)))
            REGENERATE[name] = make
    return out


def trace_names(data: pathlib.Path) -> list[str]:
    """The names ``--only`` matches against: the traces present under ``data`` and the planted ones."""
    names = []
    if (data / "arc" / "arc_OLTP_P3.npz").exists():
        names += ["arc-OLTP", "arc-P3"]
    if (data / "cloudphysics" / "cloudPhysicsIO.csv").exists():
        names.append("cloudphysics")
    for fname, name in (("deepctr_criteo_sample.txt", "criteo-deepctr"),
                        ("hillview_criteoTab.csv", "criteo-hillview")):
        if (data / "criteo_samples" / fname).exists():
            names.append(name)
    import probes

    return names + ["planted-zipf", "planted-drift", "planted-criteo", *probes.probes()]


# ---- generators ---------------------------------------------------------------------------------
def per_table(real: Trace, gen) -> Trace:
    """Apply an id generator table by table, keeping the real bag lengths."""
    tables = []
    for t in real.tables:
        ids = gen(np.asarray(t.values), t.n_accesses)
        if ids is None:  # the generator cannot model this table: it is left out of the scores
            continue
        card = int(max(int(ids.max()) + 1 if ids.size else 1, 1))
        tables.append(Table.from_lengths(t.name, ids, t.lengths, card))
    return Trace(tables)


def ours(real: Trace, seed: int = 0, **params) -> Trace:
    from tracegen.tracemodel import TraceModel

    return TraceModel(**params).fit(real).sample(real.n_samples, seed=seed)


def _fbgemm_or_none(ids: np.ndarray, n: int):
    """FBGEMM's ids, or None where its estimator refuses the table (e.g. 'For infinite zipfian, s must be
    > 1.0' on tables with a handful of distinct ids); such tables are left out of its scores."""
    try:
        return baselines.fbgemm_eeg(ids, n)[0]
    except RuntimeError as e:
        print(f"    fbgemm: table skipped: {str(e).splitlines()[-1][:100]}", file=sys.stderr)
        return None


# ---- metrics ------------------------------------------------------------------------------------
NON_LRU_SKIPPED = "FIFO/LFU/ARC skipped: libcachesim not installed"


def _cachesim():
    """``tracegen.cachesim.miss_ratios``, or None when the optional ``libcachesim`` is not importable
    (``tracegen.cachesim`` itself always imports; it raises only when a replay is asked for)."""
    from tracegen import cachesim

    if not cachesim.available():
        return None
    return cachesim.miss_ratios


_REAL_MR: dict = {}  # (id of the real array, policy) -> (sizes, miss ratios): real traces replayed once


def non_lru_errors(real_ids: np.ndarray, synth_ids: np.ndarray, miss_ratios) -> dict:
    from tracegen.locality import dense_keys

    out = {}
    for pol in POLICIES:
        key = (id(real_ids), pol)
        if key not in _REAL_MR:
            u = max(int(dense_keys(real_ids)[1]), 1)
            sizes = sorted({max(1, int(round(f * u))) for f in CACHE_FRACTIONS})
            _REAL_MR[key] = (real_ids, sizes, np.asarray(_mr(miss_ratios, real_ids, pol, sizes), np.float64))
        _, sizes, a = _REAL_MR[key]
        b = np.asarray(_mr(miss_ratios, synth_ids, pol, sizes), np.float64)
        d = np.abs(a - b)  # NaN where a size is below what the policy supports
        if np.any(np.isfinite(d)):
            out[pol] = float(np.nanmax(d))
    return out


def _mr(miss_ratios, ids, policy, sizes):
    r = miss_ratios(ids, policy, sizes)
    if isinstance(r, dict):
        r = [r[s] for s in sizes]
    return r


def top_share_errors(real_ids: np.ndarray, synth_ids: np.ndarray) -> dict:
    """Abs error of the share of accesses to the hottest 1% / 10% of ids, the *same number* of ids
    (``k = round(frac * real distinct)``, at least 1) on both sides, as every other metric sizes its
    caches from the real distinct count (``tracegen.tracemodel.fidelity`` does the same since this
    benchmark's audit; before, it took 1% of each side's own distinct count, so a generator touching
    fewer ids was scored on a smaller hot set)."""
    from tracegen.locality import dense_keys
    from tracegen.tracemodel import _top_share

    ka, u = dense_keys(real_ids)
    ca, cb = np.bincount(ka, minlength=u), np.bincount(dense_keys(synth_ids)[0])
    return {name: abs(_top_share(ca, frac) - _top_share(cb, frac, u))
            for name, frac in (("top1", 0.01), ("top10", 0.10))}


def score(real: Trace, synth: Trace, with_non_lru: bool = True) -> dict:
    """Access-weighted mean over tables of every metric."""
    from tracegen.tracemodel import fidelity

    f = fidelity(real, synth)
    miss_ratios = _cachesim() if with_non_lru else None
    acc = {m: 0.0 for m in METRICS}
    wsum = {m: 0.0 for m in METRICS}
    worst = {m: 0.0 for m in METRICS}
    per: dict = {}
    scored = 0
    for t in real.tables:
        if t.name not in f:
            continue
        scored += 1
        row = dict(f[t.name])
        row.update(top_share_errors(t.values, synth.table(t.name).values))
        if miss_ratios is not None:
            sv = np.asarray(synth.table(t.name).values)
            row.update(non_lru_errors(t.values, sv, miss_ratios))
        w = float(t.n_accesses)
        per[t.name] = {**{m: row[m] for m in METRICS if m in row}, "weight": w}
        for m in METRICS:
            if m in row:
                acc[m] += w * row[m]
                wsum[m] += w
                worst[m] = max(worst[m], row[m])
    out = {m: acc[m] / wsum[m] for m in METRICS if wsum[m] > 0}
    out["worst_table"] = worst
    out["n_tables"] = len(real.tables)
    out["tables_scored"] = scored
    out["per_table"] = per
    return out


def restrict(s: dict, names) -> dict:
    """``s`` (a :func:`score` result) averaged over the tables ``names`` only (weighted by accesses)."""
    rows = [r for t, r in s.get("per_table", {}).items() if t in set(names)]
    out = {}
    for m in METRICS:
        w = [(r["weight"], r[m]) for r in rows if m in r]
        if w:
            out[m] = sum(a * b for a, b in w) / sum(a for a, _ in w)
    out["n_tables"], out["tables_scored"] = s.get("n_tables", 0), len(rows)
    return out


def same_tables_rows(r: dict) -> dict:
    """Where a method left tables out (FBGEMM refuses some), ``ours`` again on only the tables that
    method scored, so the two rows compare like with like: ``{label: score}``."""
    extra = {}
    for method, s in r["methods"].items():
        if "error" in s or s.get("tables_scored", 0) >= s.get("n_tables", 0):
            continue
        names = list(s.get("per_table", {}))
        for other, o in r["methods"].items():
            if other == "ours" != method and "error" not in o:
                extra[f"{other} (on {method}'s {len(names)}/{s['n_tables']} tables)"] = restrict(o, names)
    return extra


# ---- report -------------------------------------------------------------------------------------
def fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def markdown(results: dict) -> str:
    lines = ["| trace | accesses | method | MRC mean | MRC max | top-1% | top-10% | footprint "
             "| FIFO | LFU | ARC |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for trace, r in results.items():
        for method, s in r["methods"].items():
            if "error" in s:
                lines.append(f"| {trace} | {r['accesses']:,} | {method} | {s['error']} |" + " |" * 7)
                continue
            if s.get("tables_scored", 0) < s.get("n_tables", 0):
                method = f"{method} ({s['tables_scored']}/{s['n_tables']} tables)"
            lines.append(f"| {trace} | {r['accesses']:,} | {method} | "
                         + " | ".join(fmt(s.get(m)) for m in METRICS) + " |")
        for label, s in same_tables_rows(r).items():
            lines.append(f"| {trace} | {r['accesses']:,} | {label} | "
                         + " | ".join(fmt(s.get(m)) for m in METRICS) + " |")
    dp = [(t, r["dp"]) for t, r in results.items() if r.get("dp")]
    if dp:
        lines += ["", "| trace | epsilon | MRC mean | MRC max | top-1% |", "|---|---:|---:|---:|---:|"]
        for t, d in dp:
            for eps, s in d.items():
                if "error" in s:
                    lines.append(f"| {t} | {eps} | {s['error']} | | |")
                else:
                    lines.append(f"| {t} | {eps} | {fmt(s['mrc_mean'])} | {fmt(s['mrc_max'])} "
                                 f"| {fmt(s['top1'])} |")
    return "\n".join(lines)


def target_report(results: dict) -> str:
    lines = ["", "Targets for `ours` (MRC mean <= 0.005, max <= 0.02, top-1% <= 0.02, FIFO/LFU/ARC <= 0.03):"]
    for trace, r in results.items():
        s = r["methods"].get("ours")
        if not s or "error" in s:
            continue
        miss = []
        for m in ("mrc_mean", "mrc_max", "top1"):
            lim = TARGETS[m]
            if s.get(m) is not None and s[m] > lim:
                miss.append(f"{m} {s[m]:.4f} > {lim}")
        for p in POLICIES:
            if s.get(p) is not None and s[p] > TARGETS["non_lru"]:
                miss.append(f"{p} {s[p]:.4f} > {TARGETS['non_lru']}")
        lines.append(f"- {trace}: " + ("all met" if not miss else "MISSED " + "; ".join(miss)))
    return "\n".join(lines)


def _progress(method: str, s: dict) -> None:
    if "error" in s:
        print(f"  {method:8s} FAILED {s['error']}", file=sys.stderr, flush=True)
        return
    figs = " ".join(f"{m}={fmt(s.get(m))}" for m in METRICS if m in s)
    print(f"  {method:8s} {s.get('seconds', '-')}s {figs}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("TRACEGEN_SHARED_DATA", str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--data", default=default_data,
                    help="the shared data folder (../shared/data)")
    ap.add_argument("--max-accesses", type=int, default=1_000_000, help="cut long traces (P3) to a prefix")
    ap.add_argument("--only", nargs="*", help="substrings of trace names to run (arc-OLTP, arc-P3, "
                    "cloudphysics, criteo-deepctr, criteo-hillview, planted-zipf, planted-drift, "
                    "planted-criteo, probe-loop, probe-storage, probe-bursty, probe-switch, "
                    "probe-multihot)")
    ap.add_argument("--no-fbgemm", action="store_true", help="skip FBGEMM's estimator/generator")
    ap.add_argument("--no-dp", action="store_true", help="skip the differential-privacy rows")
    ap.add_argument("--no-non-lru", action="store_true", help="skip FIFO/LFU/ARC (libcachesim)")
    ap.add_argument("--holdout", action="store_true",
                    help="real traces: also fit on the first half and score the twin against the second "
                         "half (out of sample), next to the first half itself scored the same way")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="OUT", help="also write all figures as JSON")
    args = ap.parse_args(argv)

    data = pathlib.Path(args.data)
    traces = load_traces(data, args.max_accesses, args.only)
    if not traces:
        if args.only:
            print(f"no trace matches --only {' '.join(args.only)} (names: {', '.join(trace_names(data))})",
                  file=sys.stderr)
            return 2
        print(f"no traces found under {data}", file=sys.stderr)
        return 1
    fb_reason = "--no-fbgemm" if args.no_fbgemm else baselines.fbgemm_available()
    if fb_reason:
        print(f"fbgemm baseline skipped: {fb_reason}", file=sys.stderr)
    non_lru = not args.no_non_lru
    if non_lru and _cachesim() is None:
        print(NON_LRU_SKIPPED, file=sys.stderr)
        non_lru = False  # their columns print "-"
    gens = {
        "ours": lambda real: ours(real, args.seed),
        "dlrm-ref": lambda real: per_table(real, lambda x, n: baselines.dlrm_reference_ids(x, n, args.seed)),
        "iid-sd": lambda real: per_table(real, lambda x, n: baselines.iid_stack_distances(x, n, args.seed)),
        "fbgemm": None if fb_reason else (lambda real: per_table(real, _fbgemm_or_none)),
        "uniform": lambda real: per_table(real, lambda x, n: baselines.uniform_ids(x, n, args.seed)),
    }
    results: dict = {}
    for name, real in traces:
        print(f"[{name}] {real}", file=sys.stderr, flush=True)
        r = {"accesses": int(real.n_accesses), "tables": real.n_tables, "methods": {}, "dp": {}}
        for method, gen in gens.items():
            if gen is None:
                continue
            t0 = time.perf_counter()
            try:
                synth = gen(real)
                s = score(real, synth, non_lru)
            except Exception as e:  # noqa: BLE001 - a failing generator is a row in the report, not a crash
                s = {"error": f"{type(e).__name__}: {str(e)[:80]}"}
            s["seconds"] = round(time.perf_counter() - t0, 2)
            r["methods"][method] = s
            _progress(method, s)
        if name in REGENERATE:  # noise floor: the planted generator itself, another seed
            s = score(real, REGENERATE[name](1000 + args.seed), non_lru)
            r["methods"]["same-gen"] = s
            _progress("same-gen", s)
        elif real.n_samples >= 2:  # yardstick: the real trace's second half against its first half
            h = real.n_samples // 2
            s = score(real.slice(0, h), real.slice(h, 2 * h), non_lru)
            r["methods"]["halves"] = s
            _progress("halves", s)
            if args.holdout:  # out of sample: fit on the first half only, score against the second
                first, second = real.slice(0, h), real.slice(h, 2 * h)
                for label, make in (("ours, fit on 1st half, vs 2nd", lambda f=first: ours(f, args.seed)),
                                    ("1st half vs 2nd", lambda f=first: f)):
                    try:
                        s = score(second, make(), non_lru)
                    except Exception as e:  # noqa: BLE001
                        s = {"error": f"{type(e).__name__}: {str(e)[:80]}"}
                    r["methods"][label] = s
                    _progress(label, s)
        if not args.no_dp:
            for eps in EPSILONS:
                try:
                    synth = ours(real, args.seed, epsilon=eps)
                    s = score(real, synth, with_non_lru=False)
                except Exception as e:  # noqa: BLE001
                    s = {"error": f"{type(e).__name__}: {str(e)[:80]}"}
                r["dp"][str(eps)] = s
                print(f"  dp eps={eps} mrc_mean={fmt(s.get('mrc_mean'))} mrc_max={fmt(s.get('mrc_max'))}",
                      file=sys.stderr, flush=True)
        results[name] = r
    print(markdown(results))
    print(target_report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
