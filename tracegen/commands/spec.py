"""``tracegen spec``: write a specified dist.json (imported statistics or a parametric family)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from tracegen.commands._common import (
    add_command,
    add_output_args,
    add_quiet,
    check_not_input,
    input_file,
    nonneg_int,
    positive_int,
)
from tracegen.errors import TracegenError

ORDER = 25

# options of each source / family (beyond --name, -o, --force): any other given option is an error
_LOCALITY_OPTS = ("table", "batch_size", "pooling", "cardinality", "carry")
_FAMILY_OPTS = {
    "uniform": ("cardinality",),
    "gaussian": ("cardinality", "mean", "std"),
    "zipf": ("cardinality", "a"),
    "lognormal": ("cardinality", "mu", "sigma", "cold_rate", "a", "irm_share"),
    "powerlaw": ("cardinality", "alpha", "scale", "cold_rate", "a", "irm_share"),
}
_SOURCE_OPTS = ("table", "batch_size", "pooling", "carry", "cardinality", "a", "mu", "sigma", "alpha",
                "scale", "cold_rate", "irm_share", "mean", "std")


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
      --family zipf|uniform|gaussian|lognormal|powerlaw --cardinality N
                                   a parametric table (--a for zipf; --std and optionally --mean for
                                   gaussian, the DLRM reference's --rand-data-dist; --mu/--sigma or
                                   --alpha/--scale and --cold-rate for the stack-distance families; --a
                                   with a stack family gives the IRM + stack mixture, --irm-share of
                                   accesses from Zipf).

    Examples:
      tracegen spec --from-dlrm-dist dist_emb_0.log -o dist.json
      tracegen spec --from-locality-stats 2021_locality_stats.txt --table 0 -o meta0.json
      tracegen spec --family zipf --a 0.9 --cardinality 100000 -o zipf.json
      tracegen spec --family gaussian --std 1000 --cardinality 100000 -o gauss.json
      tracegen sample dist.json -n 100000 -o synth.npz
    """
    from tracegen import spec
    from tracegen._util import atomic_output, check_output

    sources = [x for x in (args.from_dlrm_dist, args.from_locality_stats, args.family) if x]
    if len(sources) != 1:
        raise TracegenError("give exactly one of --from-dlrm-dist, --from-locality-stats or --family")
    _check_applicable(args)
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
                                         cardinality=args.cardinality, carry=args.carry or "independent")
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


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_applicable(args: argparse.Namespace) -> None:
    """Refuse a given option that the chosen source or family does not use (it would be ignored)."""
    if args.from_dlrm_dist:
        allowed, what = (), "--from-dlrm-dist"
    elif args.from_locality_stats:
        allowed, what = _LOCALITY_OPTS, "--from-locality-stats"
    else:
        allowed, what = _FAMILY_OPTS[args.family], f"--family {args.family}"
    for dest in _SOURCE_OPTS:
        if getattr(args, dest) is not None and dest not in allowed:
            raise TracegenError(f"{_flag(dest)} does not apply to {what}")
    if args.family in ("lognormal", "powerlaw") and args.irm_share is not None and args.a is None:
        raise TracegenError(f"--irm-share needs --a (the IRM + stack mixture of --family {args.family})")


def _family_table(args: argparse.Namespace) -> dict:
    if args.cardinality is None:
        raise TracegenError("--family needs --cardinality N (N >= 1)")
    fam = args.family
    if fam == "uniform":
        ids = {"kind": "uniform"}
    elif fam == "gaussian":
        if args.std is None:
            raise TracegenError("--family gaussian needs --std S (> 0) and optionally --mean M (default: the middle)")
        params = {"std": args.std}
        if args.mean is not None:
            params["mean"] = args.mean
        ids = {"kind": "gaussian", "params": params}
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
            scale = 1.0 if args.scale is None else args.scale
            law = {"family": "powerlaw", "params": {"alpha": args.alpha, "scale": scale}}
        cold = 0.0 if args.cold_rate is None else args.cold_rate
        ids = {"kind": "parametric", "stack_distance": law, "cold": {"rate": cold}}
        if args.a is not None:
            ids["popularity"] = {"family": "zipfian", "params": {"a": args.a}}
            ids["irm_share"] = 0.5 if args.irm_share is None else args.irm_share
    return {"name": "t0", "cardinality": int(args.cardinality),
            "bag_length": {"kind": "constant", "value": 1}, "ids": ids}


def _finite(text: str) -> float:
    """argparse type: a finite number."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return v


def _positive(text: str) -> float:
    """argparse type: a finite number > 0."""
    v = _finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _share(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    v = _finite(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def _cardinality(text: str) -> int:
    """argparse type: rows of a table, an integer in [1, 2**62)."""
    v = positive_int(text)
    if v >= 1 << 62:
        raise argparse.ArgumentTypeError(f"must be < 2**62, got {text}")
    return v


def register(sub) -> None:
    p = add_command(sub, "spec", run, run.__doc__)
    src = p.add_argument_group("source (exactly one)")
    src.add_argument("--from-dlrm-dist", metavar="FILE", help="a DLRM reference dist_emb_j.log")
    src.add_argument("--from-locality-stats", metavar="FILE", help="a dlrm_datasets *_locality_stats.txt")
    src.add_argument("--family", choices=["zipf", "uniform", "gaussian", "lognormal", "powerlaw"],
                     help="a parametric table")
    loc = p.add_argument_group("locality stats")
    loc.add_argument("--table", type=nonneg_int, metavar="K", help="record index in the stats file (from 0)")
    loc.add_argument("--batch-size", type=positive_int, metavar="B",
                     help="samples per batch (default: the published one)")
    loc.add_argument("--pooling", type=positive_int, metavar="L",
                     help="ids per sample (default: published indices / (batch size x tables))")
    loc.add_argument("--carry", choices=["independent", "persistent"],
                     help="rows across batches: drawn afresh (independent, the default) or with a fixed "
                          "hotness order")
    par = p.add_argument_group("parametric")
    par.add_argument("--cardinality", type=_cardinality, metavar="N",
                     help="rows of the table, 1 to 2**62 - 1 (with --from-locality-stats: default 10x the "
                          "distinct rows of a batch)")
    par.add_argument("--a", type=_positive, metavar="A", help="Zipf exponent (> 0)")
    par.add_argument("--mean", type=_finite, help="gaussian: mean id (default: the middle of the table)")
    par.add_argument("--std", type=_positive, help="gaussian: standard deviation of the ids (> 0)")
    par.add_argument("--mu", type=_finite, help="lognormal: mean of log stack distance")
    par.add_argument("--sigma", type=_positive, help="lognormal: std of log stack distance (> 0)")
    par.add_argument("--alpha", type=_positive, help="powerlaw: tail exponent (> 0)")
    par.add_argument("--scale", type=_positive, help="powerlaw: scale (> 0; default 1)")
    par.add_argument("--cold-rate", type=_share, metavar="C",
                     help="lognormal/powerlaw: share of first accesses (0)")
    par.add_argument("--irm-share", type=_share, metavar="W",
                     help="with --a and a stack family: share of accesses drawn from Zipf (0.5)")
    p.add_argument("--name", help="table name in the output")
    add_output_args(p)
    add_quiet(p)  # spec prints no summary; accepted like every other command's -q
