"""Format options shared by the commands that read or write traces (``inspect``, ``convert``, ``demo``).

``add_read_options(p)`` adds ``--from`` and the reader options; ``read_options(args)`` returns the
keyword arguments for :func:`tracegen.formats.read` (only the flags the user gave, so a reader that
does not take one says so). ``add_write_options``/``write_options`` do the same for writers.
"""

from __future__ import annotations

import argparse

from tracegen.formats import FORMATS


def add_read_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input format options")
    g.add_argument(
        "--from",
        dest="fmt",
        metavar="F",
        choices=list(FORMATS),
        help="input format (default: detected from extension and content): " + ", ".join(FORMATS),
    )
    g.add_argument(
        "--densify",
        action="store_true",
        default=None,
        help="relabel raw 64-bit keys 0..U-1 by first appearance (oracle-general, lcs-csv, txt, npy, "
        "dlrm-trace*)",
    )
    g.add_argument("--id-col", metavar="COL", help="lcs-csv: the id column, by name or 0-based index")
    g.add_argument(
        "--max-ind-range",
        type=int,
        metavar="N",
        help="criteo-*: hash categories modulo N before relabelling (the reference's --max-ind-range)",
    )


def read_checked(path: str, fmt: str | None = None, **opts):
    """Read a trace that the command will scan whole anyway: a native npz is validated id by id first
    (its lazy open checks only the structure), so a corrupt id is a one-line error, not a wrong result."""
    from tracegen import formats

    fmt = fmt or formats.detect(path)
    if fmt == "npz":
        opts.setdefault("validate", True)
    return formats.read(path, fmt, **opts)


def read_options(args) -> dict:
    opts = {}
    if getattr(args, "densify", None):
        opts["densify"] = True
    if getattr(args, "id_col", None) is not None:
        opts["id_col"] = args.id_col
    if getattr(args, "max_ind_range", None) is not None:
        opts["max_ind_range"] = args.max_ind_range
    return opts


def add_write_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output format options")
    g.add_argument(
        "--to",
        dest="to",
        metavar="F",
        choices=[n for n, f in FORMATS.items() if f.writer is not None],
        help="output format (default: from the extension; .npz = native npz)",
    )
    g.add_argument(
        "--table",
        metavar="NAME",
        help="single-table formats: the table to write (name or index), or 'all' to flatten every "
        "table into one address space",
    )
    g.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="dlrm-npz: also write <out>_day_count.npz for N days (default 7; 0 = none)",
    )
    g.add_argument(
        "--obj-size",
        type=int,
        metavar="BYTES",
        help="oracle-general, lcs-csv: object size written per access (default 1)",
    )
    g.add_argument(
        "--compress",
        action="store_true",
        default=None,
        help="npz, dlrm-npz: deflate the members (smaller, but read into memory instead of mapped)",
    )


def write_options(args) -> dict:
    opts = {}
    for key in ("table", "days", "obj_size", "compress"):
        v = getattr(args, key, None)
        if v is not None:
            opts[key] = v
    return opts


def n_tables(n: int) -> str:
    """``"1 table"`` / ``"26 tables"``."""
    return f"{n:,} table" + ("" if n == 1 else "s")


# output formats that keep only ids (no dense features, no labels, no table names)
_IDS_ONLY = ("npy", "tbe-pt")


def dropped_note(to: str, *, dense: bool, labels: bool, names: list[str] | None = None) -> str | None:
    """The stderr note when writing ``to`` drops what the trace has: dense features, labels or table names
    (``None`` when nothing is lost). Single-table formats keep one id sequence; ``npy``/``tbe-pt`` ids only."""
    from tracegen.formats import FORMATS
    from tracegen.trace import default_names

    if to not in _IDS_ONLY and not FORMATS[to].single_table:
        return None
    lost = [w for w, has in (("dense features", dense), ("labels", labels)) if has]
    if to in _IDS_ONLY and names is not None and len(names) > 1 and list(names) != default_names(len(names)):
        lost.append("names")
    if not lost:
        return None
    what = lost[0] if len(lost) == 1 else ", ".join(lost[:-1]) + " and " + lost[-1]
    return f"note: {to} keeps ids only: {what} are not written"
