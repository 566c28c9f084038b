"""``tracegen spec``: write a specified dist.json (imported statistics or a parametric family)."""

from __future__ import annotations

import argparse
import json
import sys

from tracegen.commands._common import add_command, add_output_args, check_not_input, input_file
from tracegen.errors import TracegenError

ORDER = 25


def run(args: argparse.Namespace) -> int:
    """Write a hand-specified dist.json that `tracegen sample` samples like a fitted one.

    One source, exactly:
      --from-dlrm-dist FILE        the DLRM reference's dist_emb_j.log (stack distances 1-based, 0 = cold,
                                   converted to ours: sd = depth - 1, -1 cold). Its first line's raw ids are
                                   never copied: only their count becomes the cardinality.
      --from-locality-stats FILE --table K
                                   record K of Meta's dlrm_datasets *_locality_stats.txt: a "batch-reuse"
                                   table whose sampled batches reproduce the published per-batch
                                   reuse-factor histograms (unique rows and accesses per bucket).
      --family zipf|uniform|lognormal|powerlaw --cardinality N
                                   a parametric table (--a for zipf; --mu/--sigma or --alpha/--scale and
                                   --cold-rate for the stack-distance families; --a with a stack family
                                   gives the IRM + stack mixture, --irm-share of accesses from Zipf).

    Examples:
      tracegen spec --from-dlrm-dist dist_emb_0.log -o dist.json
      tracegen spec --from-locality-stats 2021_locality_stats.txt --table 0 -o meta0.json
      tracegen spec --family zipf --a 0.9 --cardinality 100000 -o zipf.json
      tracegen sample dist.json -n 100000 -o synth.npz
    """
    from tracegen import spec
    from tracegen._util import atomic_output, check_output

    sources = [x for x in (args.from_dlrm_dist, args.from_locality_stats, args.family) if x]
    if len(sources) != 1:
        raise TracegenError("give exactly one of --from-dlrm-dist, --from-locality-stats or --family")
    check_not_input(args.output, args.from_dlrm_dist, args.from_locality_stats)
    check_output(args.output, args.force)
    n_samples = None
    if args.from_dlrm_dist:
        table = spec.from_dlrm_dist(input_file(args.from_dlrm_dist))
    elif args.from_locality_stats:
        if args.table is None:
            raise TracegenError("--from-locality-stats needs --table K (the record index, from 0)")
        table = spec.from_locality_stats(input_file(args.from_locality_stats), args.table,
                                         batch_size=args.batch_size, pooling=args.pooling,
                                         cardinality=args.cardinality, carry=args.carry)
        n_samples = table.pop("batch_size")
    else:
        table = _family_table(args)
    if args.name:
        table["name"] = args.name
    spec.validate_node(table["ids"], "tables[0].ids")
    doc = spec.spec_document([table], n_samples=n_samples)
    from tracegen.tracemodel import validate_dist

    validate_dist(doc)  # what `tracegen sample` will check: fail here, before writing
    text = json.dumps(doc, indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with atomic_output(args.output, args.force) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


def _family_table(args: argparse.Namespace) -> dict:
    if args.cardinality is None or args.cardinality < 1:
        raise TracegenError("--family needs --cardinality N (N >= 1)")
    fam = args.family
    if fam == "uniform":
        ids = {"kind": "uniform"}
    elif fam == "zipf":
        if args.a is None:
            raise TracegenError("--family zipf needs --a A (the Zipf exponent, > 0)")
        ids = {"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": args.a}}}
    else:
        if fam == "lognormal":
            if args.mu is None or args.sigma is None:
                raise TracegenError("--family lognormal needs --mu and --sigma (of log stack distance)")
            law = {"family": "lognormal", "params": {"mu": args.mu, "sigma": args.sigma}}
        else:
            if args.alpha is None:
                raise TracegenError("--family powerlaw needs --alpha (tail exponent) and optionally --scale")
            law = {"family": "powerlaw", "params": {"alpha": args.alpha, "scale": args.scale}}
        ids = {"kind": "parametric", "stack_distance": law, "cold": {"rate": args.cold_rate}}
        if args.a is not None:
            ids["popularity"] = {"family": "zipfian", "params": {"a": args.a}}
            ids["irm_share"] = args.irm_share
    return {"name": "t0", "cardinality": int(args.cardinality),
            "bag_length": {"kind": "constant", "value": 1}, "ids": ids}


def register(sub) -> None:
    p = add_command(sub, "spec", run, run.__doc__)
    src = p.add_argument_group("source (exactly one)")
    src.add_argument("--from-dlrm-dist", metavar="FILE", help="a DLRM reference dist_emb_j.log")
    src.add_argument("--from-locality-stats", metavar="FILE", help="a dlrm_datasets *_locality_stats.txt")
    src.add_argument("--family", choices=["zipf", "uniform", "lognormal", "powerlaw"],
                     help="a parametric table")
    loc = p.add_argument_group("locality stats")
    loc.add_argument("--table", type=int, metavar="K", help="record index in the stats file (from 0)")
    loc.add_argument("--batch-size", type=int, metavar="B",
                     help="samples per batch (default: the published one)")
    loc.add_argument("--pooling", type=int, metavar="L",
                     help="ids per sample (default: published indices / (batch size x tables))")
    loc.add_argument("--carry", choices=["independent", "persistent"], default="independent",
                     help="rows across batches: drawn afresh (independent) or with a fixed hotness order")
    par = p.add_argument_group("parametric")
    par.add_argument("--cardinality", type=int, metavar="N", help="rows of the table")
    par.add_argument("--a", type=float, metavar="A", help="Zipf exponent")
    par.add_argument("--mu", type=float, help="lognormal: mean of log stack distance")
    par.add_argument("--sigma", type=float, help="lognormal: std of log stack distance")
    par.add_argument("--alpha", type=float, help="powerlaw: tail exponent")
    par.add_argument("--scale", type=float, default=1.0, help="powerlaw: scale (1)")
    par.add_argument("--cold-rate", type=float, default=0.0, metavar="C", help="share of first accesses (0)")
    par.add_argument("--irm-share", type=float, default=0.5, metavar="W",
                     help="with --a and a stack family: share of accesses drawn from Zipf (0.5)")
    p.add_argument("--name", help="table name in the output")
    add_output_args(p)
