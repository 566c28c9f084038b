"""Run the main job end to end on the bundled example trace.

Steps (each prints what it did): inspect the bundled trace (a Criteo-like trace with planted
locality, made by this project), then convert it to the DLRM reference's processed npz in DIR.

Example:
  tracegen demo -o ./tracegen-demo
"""

from __future__ import annotations

import os

from tracegen.commands._common import add_command, add_quiet

ORDER = 1
DEFAULT_DIR = "tracegen-demo"


def register(sub) -> None:
    p = add_command(sub, "demo", run, __doc__)
    p.add_argument(
        "-o",
        "--output",
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"folder for the demo outputs (created; default ./{DEFAULT_DIR})",
    )
    p.add_argument("--force", action="store_true", help="replace outputs already in DIR")
    add_quiet(p)


def _prepare(out_dir: str) -> str:
    from tracegen.errors import TracegenError

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise TracegenError("exists and is not a folder", out_dir)
    os.makedirs(out_dir, exist_ok=True)
    return out_dir


def _step(n: int, text: str) -> None:
    print(f"[{n}] {text}", flush=True)


def run(args) -> int:
    """Run the main job end to end on the bundled example trace."""
    from tracegen import formats
    from tracegen.commands.convert import convert
    from tracegen.commands.inspect import _print_text, summarize
    from tracegen.data import example_trace_path

    progress = False if args.quiet else None
    out = _prepare(args.output)
    src = example_trace_path()

    _step(1, f"inspect the bundled trace {src}")
    trace = formats.read(src)
    _print_text(summarize(trace, path=src, fmt="npz", progress=progress))

    dlrm_npz = os.path.join(out, "example_processed.npz")
    _step(2, f"convert it to the DLRM reference's processed npz: {dlrm_npz}")
    convert(src, dlrm_npz, to="dlrm-npz", force=args.force, progress=progress)
    print(
        f"    wrote {dlrm_npz} (+ example_processed_day_count.npz); load it in the DLRM reference with\n"
        f"    --raw-data-file={os.path.join(out, 'example_processed.txt')} --processed-data-file={dlrm_npz}"
    )
    return 0
