"""The analysis report: figures, a self-contained ``report.html``, ``summary.json`` and a text summary.

:func:`write_report` analyses a trace (and optionally a second one, ``vs``, typically its synthetic twin) and
writes into ``out_dir``:

- ``mrc.png`` (LRU miss-ratio curves, log cache size, shared cache in MiB and 64-byte lines, per table in
  rows), ``sd_cdf.png``, ``rank_frequency.png`` (log-log), ``footprint_time.png``, ``footprint_bars.png`` and
  ``bandwidth.png`` (modelled bytes per batch; measured GB/s against copy bandwidth);
- ``report.html`` with every figure embedded as base64 (one file to mail around);
- ``summary.json`` with every number behind the figures.

Above :data:`analysis.locality.SHARDS_THRESHOLD` accesses a stream's stack distances are SHARDS-sampled, except
streams with at most :data:`tracegen.locality.SHARDS_MIN_IDS` distinct rows, which stay exact (a small table's
sample would hold one row or none); the report says which streams were sampled and at what rate.
:func:`text_summary` is the short text the CLI prints;
:func:`demo_report` is
what ``tracegen demo`` ends with (the bundled trace against its synthetic twin).
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from analysis import bandwidth as bw
from analysis import footprint as fp
from analysis import locality as loc
from tracegen import __version__
from tracegen.errors import TracegenError
from tracegen.trace import Trace

FIGURES = {
    "mrc.png": "LRU miss-ratio curves",
    "sd_cdf.png": "Stack-distance CDF",
    "rank_frequency.png": "Rank-frequency (log-log)",
    "footprint_time.png": "Footprint over time",
    "footprint_bars.png": "Per-table footprint",
    "bandwidth.png": "Bandwidth",
}
OUTPUTS = ("report.html", "summary.json", *FIGURES)
CACHE_FRACTIONS = (0.01, 0.1, 0.5)  # cache sizes as shares of the first trace's touched rows (shared cache)


def _prepare_dir(out_dir: str | os.PathLike, force: bool) -> str:
    d = os.fspath(out_dir)
    if os.path.exists(d) and not os.path.isdir(d):
        raise TracegenError("exists and is not a directory", d)
    if os.path.isdir(d):
        if not force:
            for name in OUTPUTS:
                if os.path.exists(os.path.join(d, name)):
                    raise TracegenError(f"already holds {name}; pass --force to replace the report", d)
    else:
        parent = os.path.dirname(os.path.abspath(d))
        if not os.path.isdir(parent):
            raise TracegenError(f"parent folder {parent} does not exist", d)
        os.mkdir(d)
    return d


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _mrc_json(s: loc.StreamLocality, dim: int, dtype: str, max_rows: int, points: int = 24) -> dict:
    sizes = loc.cache_sizes(max_rows, points)
    return {"sizes_rows": sizes.tolist(),
            "sizes_bytes": loc.mrc_in_units(sizes, dim, "bytes", dtype).tolist(),
            "sizes_lines": loc.mrc_in_units(sizes, dim, "lines", dtype).tolist(),
            "miss_ratio": s.miss_ratio(sizes).tolist()}


def _shared_mrc_json(tl: loc.TraceLocality, max_rows: int, points: int = 24) -> dict:
    """The shared cache's MRC: in rows (and bytes and lines by the row size) with one D; with mixed D the
    row curve counts rows whatever their size and ``mrc_bytes``/``mrc_lines`` are the exact sized curves."""
    if tl.uniform:
        return {"mrc": _mrc_json(tl.shared, tl.dim, tl.dtype, max_rows, points)}
    sizes = loc.cache_sizes(max_rows, points)
    out = {"mrc": {"sizes_rows": sizes.tolist(), "miss_ratio": tl.shared.miss_ratio(sizes).tolist()}}
    for unit, sized in (("bytes", tl.shared_bytes), ("lines", tl.shared_lines)):
        top = float(sized.depths[-1]) if sized.depths.size else 1.0
        cs = np.unique(np.geomspace(1, max(top, 1.0) + 1, points).round().astype(np.int64))
        out[f"mrc_{unit}"] = {"sizes": cs.tolist(), "miss_ratio": tl.shared_miss_ratio(cs, unit).tolist()}
    return out


def _all_counts(trace: Trace) -> np.ndarray:
    return np.concatenate([fp.access_counts(t.values, t.cardinality) for t in trace.tables])


def _analyse(trace: Trace, *, dims: list[int], dtype: str, batch_size: int, sample_rate, threshold: int,
             cache_bytes: Sequence[int], budget: int, samples_per_second: float,
             progress) -> tuple[dict, dict]:
    """Numbers of one trace (for JSON) and the arrays the figures need."""
    foot = fp.footprint(trace, dims, batch_size)
    tl = loc.trace_locality(trace, dims, dtype, sample_rate, threshold, batch_size, progress=progress)
    max_rows = max(tl.shared.distinct, 1) + 1
    traffic = {o: bw.model_traffic(trace, dims, batch_size, dtype, o) for o in bw.OPTIMIZERS}
    infer = bw.model_traffic(trace, dims, batch_size, dtype, "sgd", training=False)
    per_batch = traffic["sgd"].samples_per_batch or batch_size  # fewer when the trace is shorter than a batch
    after = []
    for c in cache_bytes:
        mr = float(tl.shared_miss_ratio([c], "bytes")[0])
        if tl.uniform:
            rows = c // tl.row_bytes
            lines, mr_lines = rows * tl.lines_per_row, mr
        else:
            rows, lines = None, c // loc.LINE_BYTES
            mr_lines = float(tl.shared_miss_ratio([lines], "lines")[0])
        left = bw.traffic_after_cache(traffic["sgd"].total, mr)
        after.append({"cache_rows": rows, "cache_bytes": int(c), "cache_lines": int(lines), "miss_ratio": mr,
                      "miss_ratio_lines": mr_lines, "sgd_bytes_per_batch": left["total"],
                      "sgd_bytes_per_s_needed": bw.required_bandwidth(left["total"], per_batch,
                                                                      samples_per_second)})
    data = {
        "samples": trace.n_samples, "tables": trace.n_tables, "accesses": trace.n_accesses,
        "footprint": foot.to_dict(),
        "locality": {"row_bytes": [tl.table_row_bytes(j) for j in range(len(dims))],
                     "lines_per_row": [tl.table_lines_per_row(j) for j in range(len(dims))],
                     "shared": {**tl.shared.summary(), **_shared_mrc_json(tl, max_rows)},
                     "tables": [{**s.summary(), "mrc": _mrc_json(s, d, dtype, max(s.distinct, 1) + 1)}
                                for s, d in zip(tl.tables, dims)]},
        "traffic": {o: t.to_dict() for o, t in traffic.items()},
        "inference_traffic": infer.to_dict(),
        "required_bytes_per_s": {o: bw.required_bandwidth(t.total["total"], per_batch, samples_per_second)
                                 for o, t in traffic.items()},
        "after_cache": after,
        "placement": {g: fp.place(trace, budget, dims, dtype, g).to_dict() for g in ("rows", "tables")},
    }
    arrays = {"locality": tl, "counts": _all_counts(trace), "traffic": traffic, "after": after}
    return data, arrays


def write_report(trace: Trace, out_dir: str | os.PathLike, vs: Trace | None = None, *,
                 labels: Sequence[str] | None = None, dim: int | Sequence[int] = 64, dtype: str = "fp32",
                 batch_size: int = 2048, sample_rate: float | None = None,
                 threshold: int = loc.SHARDS_THRESHOLD, budget_bytes: int | None = None,
                 samples_per_second: float = 1e6, measure: bool = True, measure_batches: int = 8,
                 device: str | None = None, copy_bytes: int = 1 << 28, threads: int | None = 1,
                 force: bool = False,
                 progress: bool | None = None,
                 title: str = "tracegen locality and bandwidth report", sources: Sequence[str] | None = None,
                 seed: int = 0) -> dict:
    """Analyse ``trace`` (and ``vs``) and write the report files into ``out_dir``; return the summary dict.

    ``labels`` name the traces (default ``("real", "synthetic")`` with ``vs``, else ``("trace",)``).
    ``dim`` is one embedding dim for all tables or one per table (``vs`` must have as many tables then).
    ``budget_bytes`` is the placement budget (default: 10% of the first trace's touched rows, in ``dtype``).
    ``sample_rate`` forces SHARDS at that rate on every stream (``None``: automatic above ``threshold``).
    ``measure`` times torch embedding bags (real, ``vs`` and uniform ids) and the copy bandwidth, on CPU with
    ``threads`` torch threads (see :func:`analysis.bandwidth.measure`).
    """
    from analysis import plots
    from tracegen._util import atomic_output
    from tracegen._util import progress as bar

    traces = [trace] if vs is None else [trace, vs]
    labels = list(labels) if labels is not None else (["trace"] if vs is None else ["real", "synthetic"])
    if len(labels) != len(traces) or len(set(labels)) != len(labels):
        raise TracegenError(f"need {len(traces)} distinct labels, got {labels}")
    for i, t in enumerate(traces):
        t.validate(None if sources is None else sources[i])
    # raw 64-bit keys (cache traces): a table holds only its distinct ids, never the id range as rows
    raw_keys = {}
    for i, lab in enumerate(labels):
        traces[i], raw_keys[lab] = fp.densify_raw_keys(traces[i])
    trace = traces[0]
    vs = traces[1] if vs is not None else None
    dims = fp.dims_for(trace, dim)
    if vs is not None:
        fp.dims_for(vs, dim)
    fp.row_bytes(dims[0], dtype)
    if int(batch_size) <= 0:
        raise TracegenError(f"batch size must be positive, got {batch_size}")
    if sample_rate is not None and not 0 < float(sample_rate) <= 1:
        raise TracegenError(f"sample rate must be in (0, 1], got {sample_rate}")
    d = _prepare_dir(out_dir, force)

    steps = bar(total=len(traces) + 3, desc="report", unit="step", enabled=progress)
    touched = [int(fp.access_counts(t.values, t.cardinality).size) for t in trace.tables]
    touched_bytes = sum(n * fp.row_bytes(dd, dtype) for n, dd in zip(touched, dims))
    if len(set(dims)) == 1:  # caches of whole rows: shares of the touched rows
        rb = fp.row_bytes(dims[0], dtype)
        cache_bytes = sorted({max(int(round(f * sum(touched))), 1) * rb for f in CACHE_FRACTIONS})
    else:
        cache_bytes = sorted({max(int(round(f * touched_bytes)), 1) for f in CACHE_FRACTIONS})
    budget = int(budget_bytes) if budget_bytes is not None else int(0.1 * touched_bytes)
    per, arrays = {}, {}
    for lab, t in zip(labels, traces):
        steps.set_description(f"report: {lab}")
        per[lab], arrays[lab] = _analyse(t, dims=dims, dtype=dtype, batch_size=int(batch_size),
                                         sample_rate=sample_rate, threshold=threshold,
                                         cache_bytes=cache_bytes,
                                         budget=budget, samples_per_second=samples_per_second,
                                         progress=progress)
        steps.update()
    comparison = None
    if vs is not None:
        comparison = loc.compare(arrays[labels[0]]["locality"], arrays[labels[1]]["locality"])
    measured = None
    if measure:
        steps.set_description("report: measuring bandwidth")
        named = dict(zip(labels, traces))
        named["uniform"] = bw.uniform_like(trace, seed)
        measured = bw.measure(named, dims, int(batch_size), device, "sgd", measure_batches, copy_bytes,
                              threads=threads)
    steps.update()

    sampling = {lab: {s.name: s.sample_rate for s in [*arrays[lab]["locality"].tables,
                                                      arrays[lab]["locality"].shared] if s.sample_rate < 1}
                for lab in labels}
    streams = {lab: [_stream_sampling(s, sample_rate, threshold)
                     for s in [*arrays[lab]["locality"].tables, arrays[lab]["locality"].shared]
                     if s.sample_rate < 1] for lab in labels}
    summary = {
        "tracegen_version": __version__, "title": title, "labels": labels,
        "sources": list(sources) if sources else None,
        "settings": {**_dim_settings(dims, dtype), "dtype": dtype, "batch_size": int(batch_size),
                     "samples_per_second": float(samples_per_second), "budget_bytes": budget,
                     "cache_bytes": cache_bytes, "shards_threshold": int(threshold),
                     "sample_rate": None if sample_rate is None else float(sample_rate)},
        "sampling": {"used": any(sampling.values()), "rates": sampling, "streams": streams,
                     "note": _sampling_note(streams, threshold, sample_rate)},
        "raw_key_tables": raw_keys,
        "raw_key_note": _raw_key_note(raw_keys),
        "traces": per, "comparison": comparison, "measured": measured,
        "figures": list(FIGURES),
    }

    steps.set_description("report: figures")
    figs = _figures(d, summary, arrays, labels, dims, dtype, plots)
    steps.update()
    steps.set_description("report: writing")
    with atomic_output(os.path.join(d, "summary.json"), force=True) as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1, default=_json_default, allow_nan=False)
    with atomic_output(os.path.join(d, "report.html"), force=True) as tmp:
        with open(tmp, "w") as f:
            f.write(_html(summary, figs))
    steps.update()
    steps.close()
    summary["out_dir"] = d
    return summary


def _dim_settings(dims: list[int], dtype: str) -> dict:
    """``dim``, ``row_bytes``, ``lines_per_row``: numbers with one D, per-table lists otherwise."""
    if len(set(dims)) == 1:
        return {"dim": dims[0], "row_bytes": fp.row_bytes(dims[0], dtype),
                "lines_per_row": loc.lines_per_row(dims[0], dtype)}
    return {"dim": dims, "row_bytes": [fp.row_bytes(x, dtype) for x in dims],
            "lines_per_row": [loc.lines_per_row(x, dtype) for x in dims]}


def _batch_text(summary: dict, label: str) -> str:
    """``batch 2048``, or ``batch of 37 samples (whole trace)`` when the trace is shorter than one batch."""
    b = summary["settings"]["batch_size"]
    n = summary["traces"][label]["traffic"]["sgd"].get("samples_per_batch") or b
    return f"batch {b}" if n == b else f"batch of {n:,.0f} samples (whole trace)"


def _dim_text(dims: list[int]) -> str:
    return f"D={dims[0]}" if len(set(dims)) == 1 else f"D={min(dims)}..{max(dims)} per table"


def _stream_sampling(s, sample_rate: float | None, threshold: int) -> dict:
    """How a sampled stream's SHARDS rate came about: ``asked`` (--sample-rate, or threshold / N) and
    ``raised`` when :func:`tracegen.locality.shards_rate` raised it to sample about 1,024 distinct rows."""
    n = int(s.n_accesses)
    asked = float(sample_rate) if sample_rate is not None else (threshold / n if n > threshold else 1.0)
    rate = float(s.sample_rate)
    return {"name": s.name, "accesses": n, "distinct": int(s.distinct), "rate": rate, "asked_rate": asked,
            "forced": sample_rate is not None, "raised": rate > asked * (1 + 1e-9)}


def _raw_key_note(raw_keys: dict) -> str | None:
    used = {lab: names for lab, names in raw_keys.items() if names}
    if not used:
        return None
    parts = "; ".join(f"{lab}: {', '.join(names[:8])}" + (" ..." if len(names) > 8 else "")
                      for lab, names in used.items())
    return ("Raw keys, not row numbers (an id range of 2**40 or more, or over "
            f"{fp.RAW_KEY_RATIO} times the distinct ids): each such table's size is its distinct ids "
            f"(relabelled 0..U-1 by first appearance), not the id range: {parts}.")


def _sampling_note(streams: dict, threshold: int, sample_rate: float | None = None) -> str:
    from tracegen.locality import SHARDS_MIN_IDS

    used = {lab: r for lab, r in streams.items() if r}
    if not used:
        if sample_rate is not None and sample_rate < 1:
            return (f"All stack distances are exact (--sample-rate {sample_rate:g} was raised to 1 for every "
                    f"stream: none has more than {SHARDS_MIN_IDS:,} distinct rows, or enough to sample "
                    f"about {SHARDS_MIN_IDS:,} of them).")
        return (f"All stack distances are exact (no stream above {threshold:,} accesses with more than "
                f"{SHARDS_MIN_IDS:,} distinct rows).")
    parts = []
    for lab, rows in used.items():
        groups: dict[str, list[str]] = {}  # what happened -> streams, in stream order
        for r in rows:
            if r["raised"]:
                why = (f"rate {r['rate']:.3g}, raised from {r['asked_rate']:.3g} so that about "
                       f"{SHARDS_MIN_IDS:,} of its {r['distinct']:,} distinct rows are sampled")
            elif r["forced"]:
                why = f"rate {r['rate']:.3g} as asked"
            else:
                why = f"rate {r['rate']:.3g} = {threshold:,} / {r['accesses']:,} accesses"
            groups.setdefault(why, []).append(r["name"])
        parts.append(f"{lab}: " + "; ".join(
            f"{', '.join(names[:6])}{' ...' if len(names) > 6 else ''} at {why}" for why, names in groups.items()))
    scope = ("at the rate asked for" if sample_rate is not None
             else f"for streams above {threshold:,} accesses, at rate {threshold:,} / accesses")
    return (f"SHARDS sampling (fixed rate, spatial hash of row ids) was used {scope}; a stream whose rate "
            f"would sample fewer than about {SHARDS_MIN_IDS:,} distinct rows gets a higher rate (exact with at "
            f"most {SHARDS_MIN_IDS:,}). Their miss-ratio curves and stack-distance CDFs are estimates (least "
            "accurate for caches under a few times 1/rate rows); cold shares stay exact. "
            + "; ".join(parts) + ".")


def _figures(d: str, summary: dict, arrays: dict, labels: list[str], dims: list[int], dtype: str,
             plots) -> dict:
    first = arrays[labels[0]]["locality"]
    max_rows = max(a["locality"].shared.distinct for a in arrays.values()) + 1
    if first.uniform:  # x in bytes = rows * row bytes; the top axis in lines
        rb, lpr = first.row_bytes, first.lines_per_row
        shared = {}
        for lab in labels:
            sizes, mr = loc.mrc_points(arrays[lab]["locality"].shared, max_rows)
            shared[lab] = (sizes * rb, mr)
        lines_per_byte = lpr / rb
    else:  # exact sized curves; no single bytes-to-lines factor
        rb, lines_per_byte = None, None
        top_b = max(float(a["locality"].shared_bytes.depths[-1]) if a["locality"].shared_bytes.depths.size
                    else 1.0 for a in arrays.values())
        sizes = np.unique(np.geomspace(min(fp.row_bytes(x, dtype) for x in dims), top_b + 1, 64).round())
        shared = {lab: (sizes, arrays[lab]["locality"].shared_miss_ratio(sizes, "bytes")) for lab in labels}
    top = sorted(range(len(first.tables)), key=lambda j: -first.tables[j].n_accesses)[:4]
    names0 = [s.name for s in first.tables]
    # each trace's table paired with the first trace's table j (as the comparison pairs them)
    partner = {lab: dict(loc.paired_tables(names0, [s.name for s in arrays[lab]["locality"].tables]))
               for lab in labels}
    table_curves = {}
    for j in top:
        name = first.tables[j].name
        table_curves[name] = {}
        for lab in labels:
            if j in partner[lab]:
                table_curves[name][lab] = loc.mrc_points(arrays[lab]["locality"].tables[partner[lab][j]])
    out = {}
    out["mrc.png"] = plots.mrc(os.path.join(d, "mrc.png"), shared, lines_per_byte, table_curves,
                               title=f"LRU miss-ratio curves ({_dim_text(dims)}, {dtype})")
    out["sd_cdf.png"] = plots.sd_cdf(os.path.join(d, "sd_cdf.png"),
                                     {lab: loc.sd_cdf_points(arrays[lab]["locality"].shared)
                                      for lab in labels},
                                     title="Stack-distance CDF, one cache shared by all tables")
    out["rank_frequency.png"] = plots.rank_frequency(os.path.join(d, "rank_frequency.png"),
                                                     {lab: arrays[lab]["counts"] for lab in labels},
                                                     title="Rank-frequency of rows (all tables)")
    out["footprint_time.png"] = plots.footprint_over_time(
        os.path.join(d, "footprint_time.png"),
        {lab: arrays[lab]["locality"].shared.curve for lab in labels if arrays[lab]["locality"].shared.curve},
        rb, title="Footprint over time (all tables)")
    f0 = summary["traces"][labels[0]]["footprint"]
    names = [t["name"] for t in f0["tables"]]
    series = {f"allocated {dtype}": [t["table_bytes"][dtype] for t in f0["tables"]]}
    for lab in labels:
        ft = summary["traces"][lab]["footprint"]["tables"]
        series[f"touched ({lab})"] = [ft[partner[lab][j]]["touched_bytes"][dtype] if j in partner[lab] else 0
                                      for j in range(len(names))]
    out["footprint_bars.png"] = plots.table_bars(os.path.join(d, "footprint_bars.png"), names, series,
                                                 f"bytes ({dtype}, MiB, log)", "Per-table footprint")
    modelled = {}
    for lab in labels:
        tr = arrays[lab]["traffic"]
        suffix = f" {lab}" if len(labels) > 1 else ""
        modelled[f"SGD{suffix}"] = tr["sgd"].total
        modelled[f"Adagrad{suffix}"] = tr["adagrad"].total
    after = arrays[labels[0]]["after"]
    if after:
        mid = after[len(after) // 2]
        left = bw.traffic_after_cache(arrays[labels[0]]["traffic"]["sgd"].total, mid["miss_ratio"])
        suffix = f" {labels[0]}" if len(labels) > 1 else ""
        modelled[f"SGD{suffix}, {_size(mid['cache_bytes'])} cache"] = left
    measured, copy_gbs = None, None
    if summary["measured"]:
        measured = {k: v["achieved_bytes_per_s"] / 1e9 for k, v in summary["measured"]["traces"].items()}
        copy_gbs = summary["measured"]["copy_bytes_per_s"] / 1e9
    out["bandwidth.png"] = plots.bandwidth_bars(
        os.path.join(d, "bandwidth.png"), modelled, measured, copy_gbs,
        title=f"Embedding traffic, {_batch_text(summary, labels[0])}, {_dim_text(dims)}")
    return out


# ---- text and HTML -----------------------------------------------------------------------------------

def _size(n: float) -> str:
    """Bytes in binary units (B, KiB, MiB, GiB, TiB), three significant figures, never in e-notation."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1023.5 or unit == "TiB":  # 1023.5 and up prints as 1 of the next unit, never "1024"
            if unit == "B":
                return f"{n:.0f} B"
            return _num(n) + f" {unit}"
        n /= 1024.0
    return f"{n} B"


def _num(x: float) -> str:
    """Three significant figures below 1,000 (``0.775``, ``23.7``, ``999``), whole numbers with thousands
    separators from there (``1,234``): never e-notation."""
    return f"{x:.3g}" if abs(x) < 999.5 else f"{x:,.0f}"


def text_summary(summary: dict) -> str:
    """A short text summary of a report (what the CLI prints)."""
    s = summary["settings"]
    lines = []
    if summary.get("out_dir"):
        lines.append(f"report: {os.path.join(summary['out_dir'], 'report.html')}")
    for lab in summary["labels"]:
        t = summary["traces"][lab]
        f = t["footprint"]
        hot = f["total_hot_rows"]
        lines.append(f"{lab}: {t['tables']} tables, {t['samples']:,} samples, {t['accesses']:,} accesses; "
                     f"{f['total_rows_touched']:,} of {f['total_rows']:,} rows touched "
                     f"({_size(f['total_touched_bytes'][s['dtype']])} of "
                     f"{_size(f['total_table_bytes'][s['dtype']])} {s['dtype']})")
        hb = {k: _size(v[s['dtype']]) for k, v in f["total_hot_bytes"].items()}
        lines.append(f"  hot set: 50% of accesses from {hot['0.5']:,} rows ({hb['0.5']}), 90% from "
                     f"{hot['0.9']:,} ({hb['0.9']}), 99% from {hot['0.99']:,} ({hb['0.99']})")
        ws = t["locality"]["shared"].get("working_set") or {}
        if ws:
            lines.append("  working set (mean distinct rows over all sliding windows of W accesses): " + ", ".join(
                f"{v:,.0f} at W = {int(k):,}" for k, v in ws.items()))
        mr = ", ".join(f"{a['miss_ratio']:.3f} at {_size(a['cache_bytes'])}" for a in t["after_cache"])
        lines.append(f"  shared LRU miss ratio: {mr}")
        sgd = t["traffic"]["sgd"]["total"]["total"]
        n_b = t["traffic"]["sgd"].get("samples_per_batch") or s["batch_size"]
        batch = (f"per batch of {s['batch_size']}" if n_b == s["batch_size"]
                 else f"per batch of {n_b:,.0f} samples (the whole trace, shorter than one batch)")
        lines.append(f"  modelled SGD traffic: {_size(sgd)} {batch}; "
                     f"{_num(t['required_bytes_per_s']['sgd'] / 1e9)} GB/s at {s['samples_per_second']:,.0f} "
                     f"samples/s")
        pr = t["placement"]["rows"]
        lines.append(f"  budget {_size(pr['budget_bytes'])}: hottest rows give hit ratio "
                     f"{pr['hit_ratio']:.3f}; "
                     f"whole tables give {t['placement']['tables']['hit_ratio']:.3f}")
    c = summary.get("comparison")
    if c:
        lines.append(f"{summary['labels'][1]} vs {summary['labels'][0]}: shared MRC mean abs error "
                     f"{c['shared']['mrc_mae']:.4f} (max {c['shared']['mrc_max_abs_err']:.4f}) at log-spaced "
                     f"cache sizes; per-table mean "
                     f"{c.get('mean_table_mrc_mae', float('nan')):.4f}; "
                     f"SD-CDF KS (every distance) {c['shared']['sd_cdf_ks']:.4f}")
    m = summary.get("measured")
    if m:
        parts = ", ".join(f"{k} {_num(v['achieved_bytes_per_s'] / 1e9)} GB/s ({v['fraction_of_copy']:.0%})"
                          for k, v in m["traces"].items())
        lines.append(f"measured on {m['device']} ({m.get('threads')} thread(s)): {parts}; "
                     f"copy {_num(m['copy_bytes_per_s'] / 1e9)} GB/s")
    if summary.get("raw_key_note"):
        lines.append(summary["raw_key_note"])
    lines.append(summary["sampling"]["note"])
    return "\n".join(lines)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{background:#fff8e0;padding:.5em 1em}
pre{background:#f7f7f7;padding:1em;overflow-x:auto}"""


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _dims_html(s: dict) -> str:
    if isinstance(s["dim"], int):
        return (f"embedding dim {s['dim']} ({s['dtype']}, {s['row_bytes']} bytes and {s['lines_per_row']} "
                "64-byte lines per row)")
    return (f"embedding dims per table {min(s['dim'])}..{max(s['dim'])} ({s['dtype']}, "
            f"{min(s['row_bytes'])}..{max(s['row_bytes'])} bytes per row; the shared cache is measured "
            "exactly in bytes and lines)")


def _html(summary: dict, figs: dict) -> str:
    s = summary["settings"]
    dt = s["dtype"]
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<title>{html.escape(summary['title'])}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(summary['title'])}</h1>",
             f"<p>tracegen {html.escape(summary['tracegen_version'])}; " + _dims_html(s)
             + f"; batch {s['batch_size']}."
             + (f" Sources: {html.escape(', '.join(summary['sources']))}." if summary.get("sources") else "")
             + "</p>",
             f"<p class='note'>{html.escape(summary['sampling']['note'])}</p>",
             (f"<p class='note'>{html.escape(summary['raw_key_note'])}</p>" if summary.get("raw_key_note")
              else ""),
             "<h2>Summary</h2>", f"<pre>{html.escape(text_summary({**summary, 'out_dir': None}))}</pre>"]
    for name, caption in FIGURES.items():
        if name in figs:
            with open(figs[name], "rb") as f:
                b64 = base64.b64encode(f.read()).decode("ascii")
            parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                         f"src='data:image/png;base64,{b64}'>")
    for lab in summary["labels"]:
        t = summary["traces"][lab]
        rows = []
        for ft, lt in zip(t["footprint"]["tables"], t["locality"]["tables"]):
            raw = ft["name"] in (summary.get("raw_key_tables") or {}).get(lab, [])
            rows.append([ft["name"], f"{ft['cardinality']:,}" + (" (distinct raw keys)" if raw else ""),
                         f"{ft['accesses']:,}",
                         f"{ft['rows_touched']:,}",
                         _size(ft["table_bytes"][dt]), _size(ft["touched_bytes"][dt]),
                         f"{ft['rows_per_batch_mean']:.1f}", f"{ft['hot_rows']['0.9']:,}",
                         f"{lt['cold_share']:.3f}", f"{lt['sample_rate']:.3g}"])
        parts.append(f"<h2>Per table: {html.escape(lab)}</h2>" + _table(
            ["table", "rows", "accesses", "rows touched", f"bytes ({dt})", "touched bytes", "rows / batch",
             "hot rows 90%", "cold share", "SHARDS rate"], rows))
        tr = t["traffic"]
        parts.append(f"<h3>Modelled bytes per {html.escape(_batch_text(summary, lab))} ({html.escape(lab)})</h3>"
                     + _table(
            ["term", *bw.OPTIMIZERS],
            [[k, *(_size(tr[o]["total"][k]) for o in bw.OPTIMIZERS)] for k in (*bw.TERMS, "total")]))
        parts.append(f"<h3>Shared cache ({html.escape(lab)})</h3>" + _table(
            ["cache rows", "cache bytes", "64-byte lines", "miss ratio", "SGD bytes / batch after cache",
             "GB/s needed"],
            [[f"{a['cache_rows']:,}" if a["cache_rows"] is not None else "-", _size(a["cache_bytes"]),
              f"{a['cache_lines']:,}",
              f"{a['miss_ratio']:.4f}",
              _size(a["sgd_bytes_per_batch"]), _num(a["sgd_bytes_per_s_needed"] / 1e9)]
             for a in t["after_cache"]]))
        pl = t["placement"]
        parts.append(f"<h3>Placement in {_size(s['budget_bytes'])} ({html.escape(lab)})</h3><p>Greedy by "
                     "accesses per byte (in-sample). Hottest rows: hit ratio "
                     f"{pl['rows']['hit_ratio']:.4f} using {_size(pl['rows']['bytes_used'])}; whole tables "
                     f"({html.escape(', '.join(pl['tables']['tables_kept']) or 'none')}): hit ratio "
                     f"{pl['tables']['hit_ratio']:.4f} using {_size(pl['tables']['bytes_used'])}.</p>")
    c = summary.get("comparison")
    if c:
        rows = [[r["name"] + (f" ~ {r['name_synthetic']}" if r.get("name_synthetic") else ""),
                 f"{r['mrc_mae']:.4f}", f"{r['mrc_max_abs_err']:.4f}", f"{r['sd_cdf_ks']:.4f}",
                 f"{r['distinct_rel_err']:+.3f}"] for r in [c["shared"], *c["tables"]]]
        parts.append(f"<h2>{html.escape(summary['labels'][1])} against "
                     f"{html.escape(summary['labels'][0])}</h2>"
                     + _table(["stream", "MRC mean abs err (log sizes)", "MRC max abs err (log sizes)",
                               "SD-CDF KS (every distance)",
                               "distinct rows rel. err"], rows))
    m = summary.get("measured")
    if m:
        rows = [[k, f"{v['seconds_per_batch'] * 1e3:.2f} ms", _size(v["bytes_per_batch"]),
                 _num(v["achieved_bytes_per_s"] / 1e9), f"{v['fraction_of_copy']:.1%}",
                 f"{v['samples_per_s']:,.0f}"] for k, v in m["traces"].items()]
        parts.append(f"<h2>Measured on {html.escape(m['device'])}</h2><p>torch EmbeddingBag forward + "
                     f"backward + SGD step ({m['threads']} thread(s) on CPU), best of two runs; "
                     f"copy bandwidth {_num(m['copy_bytes_per_s'] / 1e9)} GB/s.</p>"
                     + _table(["ids", "time / batch", "modelled bytes / batch", "GB/s", "of copy",
                               "samples/s"],
                              rows))
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- the demo's last step -----------------------------------------------------------------------------

def demo_report(out_dir: str | os.PathLike, trace: Trace | None = None, synthetic: Trace | None = None, *,
                seed: int = 0, force: bool = False, quiet: bool = False, stream=None, **kwargs) -> dict:
    """The report ``tracegen demo`` ends with: the bundled trace against its synthetic twin.

    ``trace`` defaults to the bundled trace (:func:`tracegen.data.example_trace_path`), ``synthetic`` to a
    :class:`tracegen.tracemodel.TraceModel` fitted on it and sampled with ``seed``. Prints the text summary
    (with where the report is) on ``stream`` (stdout) unless ``quiet``; returns the summary.
    """
    if trace is None:
        from tracegen import data, formats

        trace = formats.read(data.example_trace_path())
    if synthetic is None:
        from tracegen.tracemodel import TraceModel

        synthetic = TraceModel().fit(trace).sample(trace.n_samples, seed=seed)
    summary = write_report(trace, out_dir, vs=synthetic, labels=("real", "synthetic"), force=force,
                           progress=None if not quiet else False, seed=seed, **kwargs)
    if not quiet:
        print(text_summary(summary), file=stream or sys.stdout)
    return summary
