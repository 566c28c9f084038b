"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import os

from tracegen.errors import TracegenError


def add_command(sub, name: str, func, doc: str | None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose help is ``doc`` (the first line is the short help)."""
    doc = (doc or "").strip()
    first = doc.splitlines()[0] if doc else None
    p = sub.add_parser(name, help=first, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def add_output_args(p: argparse.ArgumentParser, required: bool = True, help: str = "output file ('-' for stdout)"):
    p.add_argument("-o", "--output", required=required, metavar="OUT", help=help)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")


def add_quiet(p: argparse.ArgumentParser):
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def input_file(path: str) -> str:
    """Check that ``path`` is a readable file up front."""
    if not os.path.exists(path):
        raise TracegenError("no such file", path)
    if os.path.isdir(path):
        raise TracegenError("is a directory, not a trace file", path)
    if not os.access(path, os.R_OK):
        raise TracegenError("not readable", path)
    return path
