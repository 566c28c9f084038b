"""Fit a trace model (dist.json) from a real trace.

Per table: popularity classes (ids grouped by access count, each supported by >= K samples), the
global LRU stack-distance distribution of each class's reuses, the class mix and cold (first-access)
rate over time, and the bag-length distribution; dense features as per-column quantile histograms
and the label rate. The fit then samples twins to pick the sampling mode and calibrate it
(--calibrate 0 skips that: 25-50x faster, less faithful). dist.json holds no raw id
and no order of first appearance (docs/privacy.md); with --epsilon it is (epsilon, delta)-
differentially private with the sample as the privacy unit.

Examples:
  tracegen fit trace.npz -o dist.json
  tracegen fit cloudPhysicsIO.csv -o cloud.json --densify
  tracegen fit kaggle_processed.npz -o criteo.json --tables C3 C12 --min-count 20
  tracegen fit trace.npz -o private.json --epsilon 1 --delta 1e-6
  tracegen fit day0.npz -o day0.json --workers 8        # tables fitted in 8 processes
                                                        # (default: auto, by CPUs, tables and memory)
"""

from __future__ import annotations

from tracegen.commands._common import add_command, add_output_args, add_quiet, check_not_input, input_file, nonneg_int

ORDER = 20


def register(sub) -> None:
    p = add_command(sub, "fit", run, __doc__)
    p.add_argument("input", metavar="REAL", help="the real trace (any readable format)")
    add_output_args(p, help="the dist.json to write")
    p.add_argument(
        "--tables", nargs="+", metavar="T", help="fit only these tables (names or 0-based indices)"
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=None,
        metavar="K",
        help="least support of any released statistic (default 10; >= 2)",
    )
    p.add_argument(
        "--epsilon",
        type=float,
        default=None,
        metavar="E",
        help="fit with (E, D)-differential privacy, the sample as unit (see docs/privacy.md)",
    )
    p.add_argument("--delta", type=float, default=None, metavar="D", help="DP delta (default 0: pure E-DP)")
    p.add_argument(
        "--calibrate",
        type=nonneg_int,
        default=2,
        metavar="N",
        help="twin-sampling iterations after the fit (default 2; 0 = fit only, fastest)",
    )
    p.add_argument(
        "--max-bag",
        type=int,
        default=None,
        metavar="L",
        help="DP: clip multi-hot bags to L ids (default 32; one-hot tables stay one-hot)",
    )
    p.add_argument(
        "--public-cardinality",
        nargs="*",
        default=None,
        metavar="TABLE",
        help="release these tables' cardinalities (all tables when none is named) as public schema. By "
        "default a size the file declares (the DLRM reference's counts) is kept and one the reader derived "
        "from the ids (max id + 1, the largest raw id) is replaced by the distinct count; with --epsilon "
        "every undeclared cardinality is a noisy distinct count",
    )
    p.add_argument(
        "--one-hot",
        nargs="+",
        default=None,
        metavar="TABLE",
        help="DP: declare these tables one-hot (public schema; by default one-hot-ness is inferred from the "
        "data, an assumption the guarantee rests on: docs/privacy.md)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        metavar="W",
        help="fit tables in W processes (default auto: one for a small trace, else up to the CPUs, "
        "the tables and what memory holds; the output does not depend on W)",
    )
    add_quiet(p)
    try:
        from tracegen.commands._io import add_read_options

        add_read_options(p)
    except ImportError:  # formats not installed yet
        p.add_argument("--from", dest="fmt", metavar="F", help="input format (default: detected)")


def _workers(text: str):
    """argparse type of ``--workers``: ``auto`` or an integer (checked >= 1 in ``run``)."""
    import argparse

    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer or 'auto': {text!r}") from None


def _table_key(s: str):
    return int(s) if s.isdigit() else s


def run(args) -> int:
    """Fit a trace model (dist.json) from a real trace."""
    import math
    import sys
    import time

    from tracegen import formats
    from tracegen._util import check_output
    from tracegen.commands._io import n_tables
    from tracegen.errors import TracegenError
    from tracegen.privacy import check_epsilon
    from tracegen.tracemodel import DEFAULT_MIN_COUNT, TraceModel, auto_workers

    src = input_file(args.input)
    check_not_input(args.output, src)
    check_output(args.output, args.force)
    if args.delta is not None and args.epsilon is None:
        raise TracegenError("--delta needs --epsilon")
    check_epsilon(args.epsilon, args.delta)
    if args.epsilon is not None and not math.isfinite(args.epsilon):
        raise TracegenError(f"--epsilon must be finite, got {args.epsilon}")
    if args.max_bag is not None and args.max_bag < 1:
        raise TracegenError(f"--max-bag must be >= 1, got {args.max_bag}")
    if args.max_bag is not None and args.epsilon is None:
        raise TracegenError("--max-bag needs --epsilon (it bounds a sample's contribution under DP)")
    if args.one_hot is not None and args.epsilon is None:
        raise TracegenError("--one-hot needs --epsilon (it declares public schema under DP)")
    if args.workers != "auto" and args.workers < 1:
        raise TracegenError(f"--workers must be >= 1, got {args.workers}")
    if args.output == "-":
        raise TracegenError("fit writes a file; give -o dist.json")
    try:
        from tracegen.commands._io import read_options

        opts = read_options(args)
    except ImportError:
        opts = {}
    progress = False if args.quiet else None
    t0 = time.perf_counter()
    trace = formats.read(src, getattr(args, "fmt", None), **opts)
    if args.tables:
        trace = trace.select([_table_key(t) if t not in trace.names else t for t in args.tables], src)
    model = TraceModel(
        min_count=args.min_count if args.min_count is not None else DEFAULT_MIN_COUNT,
        epsilon=args.epsilon,
        delta=args.delta,
        max_bag=args.max_bag,
        calibrate=args.calibrate,
        one_hot=args.one_hot,
        public_cardinality=None if args.public_cardinality is None else (args.public_cardinality or True),
    )
    workers = auto_workers(trace) if args.workers == "auto" else args.workers
    model.fit(trace, path=src, progress=progress, workers=workers)
    model.save(args.output, force=args.force)
    if not args.quiet:
        m = model.model_
        n_cls = sum(len(t["ids"].get("classes", [])) for t in m["tables"])
        dp = m["privacy"]["dp"]
        extra = f", ({dp['epsilon_spent']:g}, {dp['delta_spent']:g})-DP" if dp else ""
        print(
            f"fitted {n_tables(trace.n_tables)} ({trace.n_samples:,} samples, {trace.n_accesses:,} accesses, "
            f"{n_cls:,} popularity classes{extra}) in {time.perf_counter() - t0:.1f} s -> {args.output}",
            file=sys.stderr,
        )
        derived = [t.name for t, f in zip(trace.tables, m["tables"]) if t.cardinality_from_data
                   and int(f["cardinality"]) != int(t.cardinality)]
        if derived and not dp:
            shown = ", ".join(derived[:5]) + (f" and {len(derived) - 5} more" if len(derived) > 5 else "")
            print(
                f"cardinality of {shown}: the distinct count, not the file's max id + 1 (a raw id); "
                "--public-cardinality releases it as it is",
                file=sys.stderr,
            )
    return 0
