"""Sample a synthetic trace from a trace model (dist.json).

The output format comes from --to or the extension (.npz = native npz; --to dlrm-npz writes the DLRM
reference's processed npz with the same keys, dtypes and shapes as the fitted one). Samples are
streamed to disk in chunks (bounded memory); with --workers W the tables are sampled in W processes.
The output depends only on dist.json, -n and --seed (not on --workers).

Examples:
  tracegen sample dist.json -o synthetic.npz --seed 1
  tracegen sample dist.json -n 1000000 -o day0.npz --to dlrm-npz --workers 4
  tracegen sample cloud.json -o cloud.oracleGeneral.bin
"""

from __future__ import annotations

from tracegen.commands._common import add_command, add_output_args, add_quiet, check_not_input, input_file, seed_int

ORDER = 21


def register(sub) -> None:
    p = add_command(sub, "sample", run, __doc__)
    p.add_argument("dist", metavar="DIST", help="the dist.json (from tracegen fit or tracegen spec)")
    add_output_args(p, help="the synthetic trace to write")
    p.add_argument(
        "-n",
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="samples to draw (default: as many as the fitted trace)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="master seed (default 0)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="worker processes (default 1)")
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        metavar="B",
        help=f"samples per streamed chunk (default: about {CHUNK_IDS:,} ids per chunk, at most {MAX_CHUNK:,} "
        "samples; the output does not depend on it)",
    )
    add_quiet(p)
    try:
        from tracegen.commands._io import add_write_options

        add_write_options(p)
    except ImportError:
        p.add_argument("--to", dest="to", metavar="F", help="output format (default: from the extension)")


#: ids per streamed chunk when --chunk is not given (128 MiB of int64 ids whatever the tables' bag sizes: a
#: fixed 2**18 samples of an 856-table model pooling ~20 ids per bag would be 4.5G ids, 36 GB, in one chunk)
CHUNK_IDS = 1 << 24
#: most samples per chunk when --chunk is not given (one-hot traces with few tables)
MAX_CHUNK = 1 << 18


def auto_chunk(model) -> int:
    """Samples per streamed chunk for ``model``: about :data:`CHUNK_IDS` ids, from the mean bag lengths."""
    import numpy as np

    per_sample = 0.0
    for t in model.model_["tables"]:
        node = t.get("bag_length") or {}
        if node.get("kind") == "constant":
            per_sample += float(node.get("value", 1))
        elif "values" in node and "probs" in node:
            v = np.asarray(node["values"], np.float64)
            p = np.asarray(node["probs"], np.float64)
            per_sample += float(np.dot(v, p) / max(p.sum(), 1e-300)) if v.shape == p.shape and v.size else 1.0
        else:
            per_sample += 1.0
    return int(max(1, min(MAX_CHUNK, CHUNK_IDS // max(per_sample, 1.0))))


#: most samples one run may ask for (ids are counted in int64; 2**40 samples is already petabytes)
MAX_SAMPLES = 1 << 40


def _check_room(out: str, n: int, n_tables: int) -> None:
    """Refuse an -n whose output cannot fit: over :data:`MAX_SAMPLES`, or more than the free disk space.

    The size is a lower bound that holds for every format: 2 bytes per sample per written table (a
    one-digit id and a newline in txt; every binary format stores more)."""
    import os
    import shutil

    from tracegen.errors import TracegenError

    if n > MAX_SAMPLES:
        raise TracegenError(f"-n {n} is too large (at most {MAX_SAMPLES:,} samples per run)")
    folder = os.path.dirname(os.path.abspath(out))
    need = 2 * n * max(1, n_tables)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise TracegenError(
            f"-n {n} needs at least {need / 2**30:,.1f} GiB ({n_tables} table(s) x n samples x 2 bytes) but "
            f"{folder} has {free / 2**30:,.1f} GiB free",
            out,
        )


def run(args) -> int:
    """Sample a synthetic trace from a trace model (dist.json)."""
    import sys
    import time

    from tracegen import formats
    from tracegen._util import check_output
    from tracegen.commands._io import dropped_note, n_tables
    from tracegen.errors import TracegenError
    from tracegen.tracemodel import TraceModel

    src = input_file(args.dist)
    check_not_input(args.output, src)
    if args.output == "-":
        raise TracegenError("sample writes a file; give -o OUT")
    check_output(args.output, args.force)
    if args.samples is not None and args.samples < 1:
        raise TracegenError(f"-n must be >= 1, got {args.samples}")
    if args.workers < 1:
        raise TracegenError(f"--workers must be >= 1, got {args.workers}")
    if args.chunk is not None and args.chunk < 1:
        raise TracegenError(f"--chunk must be >= 1, got {args.chunk}")
    try:
        from tracegen.commands._io import write_options

        opts = write_options(args)
    except ImportError:
        opts = {}
    model = TraceModel.load(src)
    if args.samples is None:
        try:
            n = model._n(None)
        except TracegenError:
            raise TracegenError(
                "holds no positive source.n_samples to default to; give -n N", src
            ) from None
    else:
        n = model._n(args.samples)
    _check_room(args.output, n, 1 if getattr(args, "table", None) else len(model.names))
    chunk = args.chunk if args.chunk is not None else auto_chunk(model)
    t0 = time.perf_counter()
    model.sample_to(
        args.output,
        n,
        seed=args.seed,
        fmt=getattr(args, "to", None),
        workers=args.workers,
        chunk_samples=chunk,
        force=args.force,
        progress=not args.quiet,
        **opts,
    )
    if not args.quiet:
        m = model.model_
        note = dropped_note(
            formats.output_format(args.output, getattr(args, "to", None)),
            dense=bool(m.get("dense")),
            labels=bool(m.get("labels")),
            names=model.names if not opts.get("table") else None,
        )
        if note:
            print(note, file=sys.stderr)
        print(
            f"sampled {n:,} samples x {n_tables(len(model.names))} in {time.perf_counter() - t0:.1f} s "
            f"-> {args.output}",
            file=sys.stderr,
        )
    return 0
