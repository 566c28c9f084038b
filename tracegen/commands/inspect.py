"""Show what a trace file holds: format, tables, accesses, distinct ids, cardinality, bag sizes.

Examples:
  tracegen inspect traces/example_multi_hot.npz
  tracegen inspect cloudPhysicsIO.oracleGeneral.bin --json
  tracegen inspect train.txt --from criteo-tsv --max-ind-range 10000000
  tracegen inspect trace.bin -q   # only check that it reads (exit 0) or say why not (exit 2)
"""

from __future__ import annotations

import json
import sys

import numpy as np

from tracegen.commands._common import add_command, add_quiet, input_file
from tracegen.commands._io import add_read_options, read_options
from tracegen.trace import Table, Trace

ORDER = 10


def register(sub) -> None:
    p = add_command(sub, "inspect", run, __doc__)
    p.add_argument("file", metavar="FILE", help="trace file (or a DLRM dist log)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_quiet(p)
    add_read_options(p)


def distinct(t: Table) -> int:
    """Number of distinct ids of a table (a bitmap when the cardinality is small enough, else a sort)."""
    v = np.asarray(t.values)
    if v.size == 0:
        return 0
    if t.cardinality <= max(4 * v.size, 1 << 24):
        seen = np.zeros(int(t.cardinality), dtype=bool)
        seen[v] = True
        return int(np.count_nonzero(seen))
    return int(np.unique(v).size)


#: offsets differenced at a time for the bag-length range
BAG_BLOCK = 1 << 22


def bag_range(t: Table, block: int | None = None) -> tuple[int, int]:
    """``(min, max)`` bag length of a table, from its offsets a block at a time (``(0, 0)`` for no samples):
    ``t.lengths`` is a whole ``(B,)`` int64 array, and ``is_one_hot`` makes another (1.6 GB for a
    100M-request cache trace, where every bag is one id)."""
    block = block or BAG_BLOCK
    o = t.offsets
    b = o.shape[0] - 1
    if b < 1:
        return 0, 0
    lo, hi = None, None
    for s in range(0, b, block):
        d = np.diff(np.asarray(o[s : min(b, s + block) + 1]))
        m, x = int(d.min()), int(d.max())
        lo, hi = (m, x) if lo is None else (min(lo, m), max(hi, x))
    return lo, hi


def summarize(
    trace: Trace, *, path: str | None = None, fmt: str | None = None, progress: bool | None = None
) -> dict:
    """A JSON-able summary of a trace (what ``tracegen inspect`` prints)."""
    from tracegen._util import progress as bar

    tables = []
    for t in bar(trace.tables, desc="tables", unit="table", enabled=progress):
        lo, hi = bag_range(t)
        b = t.n_samples
        tables.append(
            {
                "name": t.name,
                "accesses": t.n_accesses,
                "distinct": distinct(t),
                "cardinality": int(t.cardinality),
                "one_hot": bool(b and t.n_accesses == b and lo == hi == 1),
                "bag_min": lo,
                "bag_mean": t.n_accesses / b if b else 0.0,
                "bag_max": hi,
            }
        )
    out = {
        "path": path,
        "format": fmt,
        "samples": trace.n_samples,
        "tables": len(tables),
        "accesses": trace.n_accesses,
        "dense_features": None if trace.dense is None else int(trace.dense.shape[1]),
        "labels": trace.labels is not None,
        "positive_rate": None if trace.labels is None else float(np.mean(np.asarray(trace.labels) > 0)),
        "per_table": tables,
    }
    return out


def _dist_summary(path: str) -> dict:
    from tracegen.formats.dlrm import read_dist

    d = read_dist(path)
    p = d.probabilities
    cold = float(p[d.sd < 0].sum())
    return {
        "path": path,
        "format": "dlrm-dist",
        "unique_ids": int(d.unique_ids.size),
        "entries": int(d.sd.size),
        "cold_probability": cold,
        "max_stack_distance": int(d.sd.max()),
        "median_stack_distance": int(d.sd[np.searchsorted(d.cdf, 0.5)]),
    }


def _criteo_summary(path: str, fmt: str, max_ind_range: int = -1, progress: bool | None = None) -> dict:
    """Summary of raw Criteo text in one streaming pass (bounded memory: nothing is kept but the counts)."""
    from tracegen._util import progress as bar
    from tracegen.errors import TraceFormatError
    from tracegen.formats.criteo import N_CAT, CriteoParser
    from tracegen.trace import default_names

    parser = CriteoParser(path, fmt, max_ind_range=max_ind_range)
    positives = 0
    with bar(total=parser.size, desc="scan", unit="B", unit_scale=True, enabled=progress) as pb:
        last = 0
        for y, _x, _ids in parser.chunks():
            positives += int(np.count_nonzero(y > 0))
            pb.update(parser.bytes_read - last)
            last = parser.bytes_read
    b = parser.rows
    if b == 0:
        raise TraceFormatError("trace is empty (no data lines)", path)
    tables = [
        {
            "name": n,
            "accesses": b,
            "distinct": c,
            "cardinality": c,
            "one_hot": True,
            "bag_min": 1,
            "bag_mean": 1.0,
            "bag_max": 1,
        }
        for n, c in zip(default_names(N_CAT), parser.counts)
    ]
    return {
        "path": path,
        "format": fmt,
        "samples": b,
        "tables": N_CAT,
        "accesses": b * N_CAT,
        "dense_features": 13,
        "labels": bool(parser.labelled),  # Kaggle's test.txt has none
        "positive_rate": positives / b if parser.labelled else None,
        "per_table": tables,
    }


def _print_text(s: dict) -> None:
    w = sys.stdout.write
    if s["format"] == "dlrm-dist":
        w(f"{s['path']}: dlrm-dist (a DLRM reference distribution log; sd = depth - 1)\n")
        w(f"  unique ids {s['unique_ids']:,}  entries {s['entries']:,}  ")
        w(f"P(cold) {s['cold_probability']:.4f}  ")
        w(f"median sd {s['median_stack_distance']:,}  max sd {s['max_stack_distance']:,}\n")
        return
    extra = []
    if s["dense_features"] is not None:
        extra.append(f"dense features {s['dense_features']}")
    if s["labels"]:
        extra.append(f"labels (positive rate {s['positive_rate']:.4f})")
    w(f"{s['path']}: {s['format']}\n")
    w(f"  samples {s['samples']:,}  tables {s['tables']}  accesses {s['accesses']:,}")
    w(("  " + "  ".join(extra) if extra else "") + "\n")
    nw = max(5, *(len(t["name"]) for t in s["per_table"]))
    w(f"  {'table':<{nw}} {'accesses':>13} {'distinct':>12} {'cardinality':>14} {'bag min/mean/max':>20}\n")
    for t in s["per_table"]:
        bag = f"{t['bag_min']}/{t['bag_mean']:.2f}/{t['bag_max']}"
        w(f"  {t['name']:<{nw}} {t['accesses']:>13,} {t['distinct']:>12,} ")
        w(f"{t['cardinality']:>14,} {bag:>20}\n")


def run(args) -> int:
    """Show what a trace file holds: format, tables, accesses, distinct ids, cardinality, bag sizes."""
    from tracegen import formats

    path = input_file(args.file)
    fmt = args.fmt or formats.detect(path)
    if fmt == "dlrm-dist":
        s = _dist_summary(path)
    else:
        opts = read_options(args)
        if fmt in ("criteo-tsv", "criteo-csv") and set(opts) <= {"max_ind_range"}:
            s = _criteo_summary(path, fmt, progress=False if args.quiet else None, **opts)
            _emit(s, args.json, args.quiet)
            return 0
        if fmt == "npz":
            opts["validate"] = True  # the summary touches every id anyway: check them all
        trace = formats.read(path, fmt, **opts)
        s = summarize(trace, path=path, fmt=fmt, progress=False if args.quiet else None)
    _emit(s, args.json, args.quiet)
    return 0


def _emit(s: dict, as_json: bool, quiet: bool = False) -> None:
    """Print the summary; ``-q`` prints nothing (the exit status says the file reads), ``--json`` still prints."""
    if as_json:
        json.dump(s, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif not quiet:
        _print_text(s)
