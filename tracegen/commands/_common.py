"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import math
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


def check_not_input(output: str | None, *inputs: str | None) -> None:
    """Refuse an output that is one of the inputs (``--force`` would replace the data being read)."""
    if not output or output == "-" or not os.path.exists(output):
        return
    for src in inputs:
        if src and os.path.exists(src) and os.path.samefile(output, src):
            raise TracegenError("is also an input: write the output somewhere else", output)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def int_at_least(lo: int):
    """An argparse type: an integer >= ``lo`` (so ``--epochs 0`` is refused, not read as "the default")."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {text}")
        return v

    return parse


nonneg_int = int_at_least(0)
positive_int = int_at_least(1)


def seed_int(text: str) -> int:
    """argparse type of ``--seed``: an integer in [0, 2**63) (numpy seeds are non-negative)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {text}")
    return v


def check_device(device: str | None, flag: str = "--device") -> None:
    """A torch device string that exists here: ``cpu``, or ``cuda``/``cuda:N`` when CUDA is available."""
    if device is None:
        return
    import re

    m = re.fullmatch(r"(cpu|cuda|mps|xpu)(?::(\d+))?", device)
    if not m:
        raise TracegenError(f"{flag} must be cpu, cuda or cuda:N, got {device!r}")
    if m.group(1) == "cpu":
        return
    import torch

    backend = getattr(torch, m.group(1), None)
    available = backend is not None and getattr(backend, "is_available", lambda: False)()
    if not available:
        raise TracegenError(f"{flag} {device}: no {m.group(1)} device is available here (use cpu)")
    if m.group(1) == "cuda" and m.group(2) is not None and int(m.group(2)) >= torch.cuda.device_count():
        raise TracegenError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) here")


def add_quiet(p: argparse.ArgumentParser):
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary on stdout")


def input_file(path: str) -> str:
    """Check that ``path`` is a readable file up front."""
    if not os.path.exists(path):
        raise TracegenError("no such file", path)
    if os.path.isdir(path):
        raise TracegenError("is a directory, not a trace file", path)
    if not os.access(path, os.R_OK):
        raise TracegenError("not readable", path)
    return path
