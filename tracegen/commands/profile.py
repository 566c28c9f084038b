"""Profile a trace's cache locality: stack distances, LRU miss-ratio curves, footprint, popularity.

Prints one line per table (and for one cache shared by all tables, accesses interleaved sample by
sample, table by table within a sample; `tracegen report` interleaves a whole batch of each table in
turn, so its shared-cache figures differ): accesses, distinct ids, cold fraction, median and p90 warm
stack distance (the smallest d with at least that share of warm accesses at distance <= d), and the
LRU hit ratio at a few cache sizes. With -o, writes the full profile as JSON (MRC at log-spaced sizes
in rows, and bytes with --row-bytes; footprint curve; popularity).

Stack distances are exact by default (O(N log U)); --sample-rate R estimates them with SHARDS
spatial sampling at rate R (accesses, distinct ids, cold fraction, footprint and popularity stay
exact). A table with few distinct ids is sampled at a higher rate, so that about 1,024 ids or more
fall in the sample, and one with at most 1,024 distinct ids is profiled exactly: the "sd" column
says which ("exact" or the rate used), as do "method" and "sample_rate" in the JSON.

Examples:
  tracegen profile traces/example_criteo.tsv
  tracegen profile big.npz --sample-rate 0.01 -o profile.json --row-bytes 512
  tracegen profile cloudPhysicsIO.oracleGeneral.bin --table t0 -o - > p.json
"""

from __future__ import annotations

import json
import sys

from tracegen.commands._common import add_command, add_output_args, add_quiet, check_not_input, input_file, seed_int
from tracegen.commands._io import add_read_options, read_checked, read_options
from tracegen.errors import TracegenError

ORDER = 12

#: cache sizes (rows) shown in the printed summary
SUMMARY_SIZES = (100, 10_000, 1_000_000)


def register(sub) -> None:
    p = add_command(sub, "profile", run, __doc__)
    p.add_argument("file", metavar="TRACE", help="trace file (any format `tracegen inspect` reads)")
    add_output_args(p, required=False, help="write the full profile JSON here ('-' for stdout)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--exact", action="store_true", help="exact stack distances (the default)")
    g.add_argument("--sample-rate", type=float, metavar="R",
                   help="estimate stack distances with SHARDS at sampling rate R (0 < R <= 1)")
    p.add_argument("--table", action="append", metavar="NAME",
                   help="profile only this table (name or index; repeatable)")
    p.add_argument("--row-bytes", type=int, metavar="B",
                   help="bytes per embedding row: MRC sizes also in bytes")
    p.add_argument("--no-shared", action="store_true", help="skip the cache shared by all tables")
    p.add_argument("--seed", type=seed_int, default=0, help="SHARDS hash seed (default 0)")
    add_quiet(p)
    add_read_options(p)


def _fmt_sd(x) -> str:
    return "-" if x is None else f"{x:,}"


def summary_lines(prof: dict, sizes=SUMMARY_SIZES) -> list[str]:
    """The printed per-table summary of a :func:`tracegen.locality.profile` dict."""
    rows = [(name, s) for name, s in prof["tables"].items()]
    if prof.get("shared"):
        rows.append(("(shared)", prof["shared"]))
    nw = max(8, *(len(n) for n, _ in rows))
    head = (f"{'table':<{nw}} {'accesses':>12} {'distinct':>11} {'cold':>7} {'sd p50':>9} {'sd p90':>10}"
            + "".join(f" {'hit@' + _short(c):>9}" for c in sizes) + f" {'sd':>9}")
    out = [head]
    for name, s in rows:
        hit = s["lru_hit_ratio"]
        sd = s["stack_distance"]
        out.append(f"{name:<{nw}} {s['accesses']:>12,} {s['distinct']:>11,} {s['cold_fraction']:>7.4f} "
                   f"{_fmt_sd(sd['p50']):>9} {_fmt_sd(sd['p90']):>10}"
                   + "".join(f" {hit[str(c)]:>9.4f}" for c in sizes) + f" {_method(s):>9}")
    return out


def _method(s: dict) -> str:
    """``exact`` or ``R=<rate>`` for one summary's stack distances."""
    return "exact" if s.get("method", "exact") == "exact" else f"R={s['sample_rate']:.3g}"


def _short(c: int) -> str:
    for unit, v in (("M", 1_000_000), ("k", 1_000)):
        if c >= v and c % v == 0:
            return f"{c // v}{unit}"
    return str(c)


def run(args) -> int:
    """Profile a trace's cache locality: stack distances, LRU miss-ratio curves, footprint, popularity."""
    from tracegen._util import atomic_output, check_output
    from tracegen.locality import SHARDS_MIN_IDS, profile

    path = input_file(args.file)
    check_not_input(args.output, path)
    if args.output and args.output != "-":
        check_output(args.output, args.force)
    if args.sample_rate is not None and not 0 < args.sample_rate <= 1:
        raise TracegenError(f"--sample-rate must be in (0, 1], got {args.sample_rate}")
    if args.row_bytes is not None and not 0 < args.row_bytes < 2**40:
        raise TracegenError(f"--row-bytes must be in [1, 2**40), got {args.row_bytes}")
    trace = read_checked(path, args.fmt, **read_options(args))
    if args.table:
        names = [int(t) if t.isdigit() and t not in trace.names else t for t in args.table]
        trace = trace.select(names, path)
    prof = profile(trace, sample_rate=args.sample_rate, exact=args.sample_rate is None,
                   row_bytes=args.row_bytes, shared=not args.no_shared, seed=args.seed,
                   progress=False if getattr(args, "quiet", False) else None)
    prof["path"] = path
    to_stdout = args.output == "-"
    text = sys.stderr if to_stdout else sys.stdout
    quiet = getattr(args, "quiet", False)  # -q: only the JSON itself (with -o -) reaches stdout
    method = ("exact" if args.sample_rate is None
              else f"SHARDS rate {args.sample_rate:g}; exact up to {SHARDS_MIN_IDS:,} distinct ids")
    if not quiet:
        print(f"{path}: {trace.n_tables} table(s), {trace.n_accesses:,} accesses ({method}; "
              f"hit@C = LRU hit ratio with C rows)", file=text)
        for line in summary_lines(prof):
            print("  " + line, file=text)
    if args.output:
        data = json.dumps(prof, indent=1)
        if to_stdout:
            sys.stdout.write(data + "\n")
        else:
            with atomic_output(args.output, args.force, suffix=".json") as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(data + "\n")
            if not quiet:
                print(f"wrote {args.output}", file=text)
    return 0
