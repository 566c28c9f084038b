"""Convert a trace between formats (streaming for raw Criteo text and large traces).

The output format comes from --to or the extension (.npz writes the native npz; use --to dlrm-npz
for the DLRM reference's processed npz). Formats that hold one id sequence (oracle-general,
lcs-csv, txt, dlrm-trace*) take --table NAME, or --table all to flatten every table.

Examples:
  tracegen convert train.txt kaggle_processed.npz --to dlrm-npz
  tracegen convert trace.npz trace.oracleGeneral.bin --table C3
  tracegen convert cloudPhysicsIO.csv cloud.npz --densify
"""

from __future__ import annotations

import os
import sys

from tracegen.commands._common import add_command, add_quiet, input_file
from tracegen.commands._io import (
    add_read_options,
    add_write_options,
    dropped_note,
    n_tables,
    read_options,
    write_options,
)

ORDER = 15
CHUNK_SAMPLES = 1 << 20  # most samples per streamed chunk
CHUNK_IDS = 1 << 24  # about this many ids per streamed chunk (a Meta trace has ~1,500 per sample)
STREAM_ABOVE = 1 << 22  # accesses; smaller traces are written in one call


def chunk_samples(trace) -> int:
    """Samples per streamed chunk: about :data:`CHUNK_IDS` ids, at most :data:`CHUNK_SAMPLES` samples.

    A fixed 2**20 samples made one chunk of a whole 150-table, 65,536-sample trace (99M ids): converting it
    to oracle-general --table all peaked at 5.0 GB for a 0.95 GB input."""
    per_sample = trace.n_accesses / max(trace.n_samples, 1)
    return int(max(1, min(CHUNK_SAMPLES, CHUNK_IDS // max(per_sample, 1.0))))


def register(sub) -> None:
    p = add_command(sub, "convert", run, __doc__)
    p.add_argument("input", metavar="IN", help="input trace file")
    p.add_argument("output", metavar="OUT", help="output file")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_quiet(p)
    add_read_options(p)
    add_write_options(p)


def convert_criteo(
    src: str,
    fmt: str,
    dst: str,
    to: str,
    *,
    force: bool = False,
    max_ind_range: int = -1,
    progress: bool | None = None,
    **write_opts,
) -> int:
    """Stream raw Criteo text into any writer (bounded memory); returns the number of samples."""
    from tracegen import formats
    from tracegen._util import progress as bar
    from tracegen.formats._common import check_flat_id_space
    from tracegen.formats.criteo import N_CAT, CriteoParser, chunk_trace
    from tracegen.trace import default_names

    names = default_names(N_CAT)
    final_counts = None
    if write_opts.get("table") == "all":
        # flattened ids are offset by the tables' cardinalities, which grow chunk by chunk while parsing:
        # count them in a first pass so every chunk is flattened with the final offsets
        counter = CriteoParser(src, fmt, max_ind_range=max_ind_range)
        with bar(total=counter.size, desc="count", unit="B", unit_scale=True, enabled=progress) as pb:
            last = 0
            for _ in counter.chunks():
                pb.update(counter.bytes_read - last)
                last = counter.bytes_read
        final_counts = counter.counts
        check_flat_id_space(final_counts, dst)
    parser = CriteoParser(src, fmt, max_ind_range=max_ind_range)
    cards = final_counts or [0] * N_CAT
    writer = formats.open_writer(dst, to, names=names, cardinalities=cards, force=force, **write_opts)
    ok = False
    try:
        with bar(total=parser.size, desc="convert", unit="B", unit_scale=True, enabled=progress) as pb:
            last = 0
            for y, x_int, ids in parser.chunks():
                if hasattr(writer, "write_columns"):  # dlrm-npz: no per-table detour
                    writer.write_columns(y, x_int, ids)
                else:
                    counts = final_counts or parser.counts
                    writer.write(chunk_trace(y, x_int, ids, counts, names, labelled=parser.labelled))
                pb.update(parser.bytes_read - last)
                last = parser.bytes_read
        if parser.rows == 0:
            from tracegen.errors import TraceFormatError

            raise TraceFormatError("trace is empty (no data lines)", src)
        writer.cardinalities = parser.counts
        ok = True
    finally:
        if ok:
            writer.close()
        else:
            writer.abort()
    return parser.rows


def convert(
    src: str,
    dst: str,
    *,
    fmt: str | None = None,
    to: str | None = None,
    force: bool = False,
    read_opts: dict | None = None,
    write_opts: dict | None = None,
    progress: bool | None = None,
) -> dict:
    """Convert ``src`` to ``dst``; returns ``{"from", "to", "samples", "tables", "accesses"}`` of what was
    written (a single-table format writes one table, also named under ``"table"``: a name or ``"all"``)."""
    from tracegen import formats
    from tracegen._util import check_output
    from tracegen._util import progress as bar

    read_opts, write_opts = dict(read_opts or {}), dict(write_opts or {})
    fmt = fmt or formats.detect(src)
    to = formats.output_format(dst, to)
    check_output(dst, force)
    if os.path.abspath(src) == os.path.abspath(dst) or (os.path.exists(dst) and os.path.samefile(src, dst)):
        from tracegen.errors import TracegenError

        raise TracegenError("input and output are the same file", dst)
    if fmt in ("criteo-tsv", "criteo-csv"):
        unknown = set(read_opts) - {"max_ind_range"}
        if unknown:
            from tracegen.errors import TracegenError

            raise TracegenError(f"{fmt} reader takes no option {', '.join(map(repr, sorted(unknown)))}", src)
        rows = convert_criteo(src, fmt, dst, to, force=force, progress=progress, **read_opts, **write_opts)
        info = {"from": fmt, "to": to, "samples": rows, "tables": 26, "accesses": 26 * rows}
        info["note"] = dropped_note(to, dense=True, labels=True)
        table = write_opts.get("table")
        if isinstance(table, str) and table.isdigit():
            from tracegen.trace import default_names

            table = default_names(26)[int(table)]
        return _written(info, formats.FORMATS[to], table, rows)  # one-hot: a table has `rows` accesses
    if fmt == "npz":
        read_opts.setdefault("validate", True)  # conversion touches every id anyway
    trace = formats.read(src, fmt, **read_opts)
    info = {
        "from": fmt,
        "to": to,
        "samples": trace.n_samples,
        "tables": trace.n_tables,
        "accesses": trace.n_accesses,
        "note": dropped_note(
            to, dense=trace.dense is not None and trace.dense.shape[1] > 0, labels=trace.labels is not None,
            names=trace.names,
        ),
    }
    table = write_opts.get("table")
    if formats.FORMATS[to].single_table and table is not None and table != "all":
        from tracegen.formats._common import one_table

        picked = one_table(trace, dst, table, to)  # a lookup; names a missing table before any work
        info = _written(info, formats.FORMATS[to], picked.name, picked.n_accesses)
    else:
        info = _written(info, formats.FORMATS[to], table, None)
    if trace.n_accesses <= STREAM_ABOVE or formats.FORMATS[to].stream_writer is None:
        formats.write(trace, dst, to, force=force, **write_opts)
        return info
    step = chunk_samples(trace)
    with formats.open_writer(
        dst, to, names=trace.names, cardinalities=trace.cardinalities, force=force, **write_opts
    ) as w:
        for start in bar(
            range(0, trace.n_samples, step),
            total=-(-trace.n_samples // step),
            desc="convert",
            unit="chunk",
            enabled=progress,
        ):
            w.write(trace.slice(start, start + step))
    return info


def _written(info: dict, fmt, table, accesses: int | None) -> dict:
    """``info`` describing what a single-table format wrote: one table (``table``: its name, or ``all``
    for every table flattened into one) of ``accesses`` accesses; other formats write every table."""
    if not fmt.single_table or table is None:
        return info
    info = dict(info, tables=1, table=str(table))
    if table != "all" and accesses is not None:
        info["accesses"] = int(accesses)
    return info


def run(args) -> int:
    """Convert a trace between formats (streaming for raw Criteo text and large traces)."""
    src = input_file(args.input)
    info = convert(
        src,
        args.output,
        fmt=args.fmt,
        to=args.to,
        force=args.force,
        read_opts=read_options(args),
        write_opts=write_options(args),
        progress=False if args.quiet else None,
    )
    if args.quiet:
        return 0
    if info.get("note"):
        print(info["note"], file=sys.stderr)
    if info["samples"] is None:
        what = ""
    elif "table" in info:  # a single-table format: one id sequence
        which = "every table flattened" if info["table"] == "all" else info["table"]
        what = f": {info['samples']:,} samples, 1 table ({which}), {info['accesses']:,} accesses"
    else:
        what = f": {info['samples']:,} samples, {n_tables(info['tables'])}, {info['accesses']:,} accesses"
    print(f"wrote {args.output} ({info['to']}, from {info['from']}){what}")
    return 0
