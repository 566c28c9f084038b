"""``tracegen report``: locality, footprint and bandwidth report of a trace (optionally against another)."""

from __future__ import annotations

import argparse
import sys

from tracegen.commands._common import (
    add_command,
    add_quiet,
    check_device,
    input_file,
    positive_float,
    positive_int,
    seed_int,
)
from tracegen.errors import TracegenError

ORDER = 70


def _rate(text: str) -> float:
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < r <= 1:
        raise argparse.ArgumentTypeError(f"sample rate must be in (0, 1], got {text}")
    return r


def _dims(text: str) -> int | list[int]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"not an embedding dim: {text!r}")
    dims = [positive_int(p.strip()) for p in parts]
    return dims[0] if len(dims) == 1 else dims


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = units.get(t[-1:], 1)
    try:
        v = float(t[:-1] if t[-1:] in units else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 80G, 512M, 1048576)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"size must be non-negative, got {text}")
    return int(v)


def register(sub) -> None:
    p = add_command(sub, "report", run, run.__doc__)
    p.add_argument("trace", metavar="TRACE", help="trace file (any format tracegen reads)")
    p.add_argument("--vs", metavar="OTHER",
                   help="a second trace to compare against, or a fitted dist.json to sample its twin from")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for sampling OTHER when it is a dist.json (0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the report (created)")
    p.add_argument("--force", action="store_true", help="replace a report already in DIR")
    p.add_argument("--dim", type=_dims, default=64, metavar="D",
                   help="embedding dim (64), or one per table: 16,32,64,...")
    p.add_argument("--dtype", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="row storage for cache sizes and traffic (fp32)")
    p.add_argument("--batch-size", type=positive_int, default=2048, metavar="B", help="samples per batch (2048)")
    p.add_argument("--sample-rate", type=_rate, metavar="R",
                   help="SHARDS rate for streams with over 1,024 distinct rows (default: automatic above threshold)")
    p.add_argument("--shards-threshold", type=positive_int, metavar="N", default=None,
                   help="sample streams longer than N accesses (default 4,000,000)")
    p.add_argument("--budget", type=_bytes, metavar="BYTES",
                   help="memory budget for placement, e.g. 80G (binary: K, M, G = KiB, MiB, GiB; "
                   "default: 10%% of the touched rows)")
    p.add_argument("--throughput", type=positive_float, default=1e6, metavar="S",
                   help="samples/s for the bandwidth-needed figure (1e6)")
    p.add_argument("--no-measure", action="store_true", help="skip the torch bandwidth measurement")
    p.add_argument("--device", metavar="DEV", help="torch device for the measurement (default: cuda if any)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="torch CPU threads for the measurement (1: steadiest on a shared machine)")
    add_quiet(p)
    from tracegen.commands._io import add_read_options

    add_read_options(p)  # --from, --densify, --id-col, --max-ind-range: applied to TRACE and a data OTHER


def run(args: argparse.Namespace) -> int:
    """Write a locality, footprint and bandwidth report of TRACE (optionally against OTHER) into DIR.

    DIR gets report.html (self-contained, figures embedded), summary.json and the PNG figures: LRU
    miss-ratio curves, stack-distance CDF, rank-frequency, footprint over time, per-table footprint
    and modelled/measured bandwidth. A short summary goes to stdout. Streams above 4,000,000 accesses
    are SHARDS-sampled (the report says so); --sample-rate forces a rate. Either way a stream with at
    most 1,024 distinct rows stays exact, and one with few more is sampled at a higher rate (about
    1,024 sampled rows at least).

    OTHER may also be a dist.json from `tracegen fit`: its synthetic twin (as many samples as TRACE,
    --seed) is sampled and compared; when it models only some of TRACE's tables (fit --tables), those
    tables of TRACE are compared (a note on stderr says so). The input format options apply to TRACE
    and to a data OTHER.

    Tables whose ids are raw keys (cache traces: an id range of 2**40 or more, or over 64 times the
    distinct ids) count only their distinct ids as rows: the report says which.

    Examples:
      tracegen report real.npz -o report
      tracegen report real.npz --vs synthetic.npz -o cmp --force
      tracegen report real.npz --vs dist.json -o cmp
      tracegen report keys.csv --from lcs-csv --id-col id --densify -o rep
    """
    import os

    from analysis import locality as loc
    from analysis.report import text_summary, write_report
    from tracegen.commands._io import read_checked, read_options

    if not args.no_measure:
        check_device(args.device)
    paths = [input_file(args.trace)] + ([input_file(args.vs)] if args.vs else [])
    out = args.output
    if out == "-":
        raise TracegenError("the report is a folder of files; give -o DIR, not '-'")
    if os.path.exists(out) and not os.path.isdir(out):
        raise TracegenError("exists and is not a directory", out)
    opts = read_options(args)
    traces = [read_checked(paths[0], args.fmt, **opts)]
    if args.vs and paths[1].lower().endswith(".json"):
        from tracegen.tracemodel import TraceModel

        model = TraceModel.load(paths[1])
        names = model.names
        if names != traces[0].names and set(names) <= set(traces[0].names):
            # fitted on some tables (fit --tables): compare those tables of TRACE
            n_all = traces[0].n_tables
            traces[0] = traces[0].select(names, paths[0])
            print(f"tracegen report: note: {paths[1]} models {len(names)} of the {n_all}"
                  f" tables; comparing only those of {paths[0]}: {', '.join(names[:8])}"
                  + (" ..." if len(names) > 8 else ""), file=sys.stderr)
        # a fitted model: sample the synthetic twin, as many samples as TRACE has
        traces.append(model.sample(traces[0].n_samples, seed=args.seed))
    elif args.vs:
        traces.append(read_checked(paths[1], args.fmt, **opts))
    if args.vs and traces[1].n_tables != traces[0].n_tables:
        raise TracegenError(
            f"has {traces[1].n_tables} tables but {paths[0]} has {traces[0].n_tables}: "
            "--vs compares two traces of the same tables", paths[1]
        )
    if args.vs and set(traces[1].names) != set(traces[0].names):  # compared by position (names may differ by format)
        pairs = [f"{x}~{y}" for x, y in zip(traces[0].names, traces[1].names) if x != y]
        print(f"tracegen report: note: tables compared by position, names differ: {', '.join(pairs[:6])}"
              + (" ..." if len(pairs) > 6 else ""), file=sys.stderr)
    if args.vs:
        a, b = (os.path.basename(p) for p in paths)
        labels = [a, b] if a != b else ["trace", "other"]
    else:
        labels = [os.path.basename(paths[0])]
    summary = write_report(traces[0], out, traces[1] if args.vs else None, labels=labels, dim=args.dim,
                           dtype=args.dtype, batch_size=args.batch_size, sample_rate=args.sample_rate,
                           threshold=args.shards_threshold or loc.SHARDS_THRESHOLD, budget_bytes=args.budget,
                           samples_per_second=args.throughput, measure=not args.no_measure,
                           device=args.device, threads=args.threads, force=args.force,
                           progress=False if args.quiet else None, sources=paths)
    if not args.quiet:
        print(text_summary(summary), file=sys.stdout)
    return 0
