"""Run the main job end to end on the bundled example trace.

Steps (each prints what it did): inspect the bundled trace (a Criteo-like trace with planted
locality, made by this project); convert it to the DLRM reference's processed npz; fit a trace
model (dist.json); sample its synthetic twin; print the fidelity figures (LRU miss-ratio curve,
popularity, footprint); write the locality and bandwidth report (report/report.html) comparing
the real trace with its twin. Everything goes to DIR.

Example:
  tracegen demo -o ./tracegen-demo
"""

from __future__ import annotations

import os

from tracegen.commands._common import add_command

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
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars and no report summary (the steps and fidelity figures still print)")


# what the demo writes in DIR
OUTPUTS = ("example_processed.npz", "example_processed_day_count.npz", "dist.json", "synthetic.npz", "report")


def _prepare(out_dir: str, force: bool = False) -> str:
    from tracegen.errors import TracegenError

    if out_dir == "-":
        raise TracegenError("the demo writes a folder of files; give -o DIR, not '-'")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise TracegenError("exists and is not a folder", out_dir)
    there = [name for name in OUTPUTS if os.path.exists(os.path.join(out_dir, name))]
    if there and not force:  # before any work, not at the step that would write it
        raise TracegenError(f"already holds {', '.join(there)} from an earlier run; pass --force to replace them",
                            out_dir)
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
    out = _prepare(args.output, args.force)
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

    from tracegen.tracemodel import TraceModel, fidelity

    dist = os.path.join(out, "dist.json")
    _step(3, f"fit the trace model: {dist}")
    model = TraceModel().fit(trace)
    model.save(dist, force=args.force)
    print(f"    {len(model.model_['tables'])} tables; no raw id and no first-appearance order in {dist}")

    twin_path = os.path.join(out, "synthetic.npz")
    _step(4, f"sample its synthetic twin ({trace.n_samples} samples, seed 0): {twin_path}")
    twin = TraceModel.load(dist).sample(trace.n_samples, seed=0)
    formats.write(twin, twin_path, fmt="npz", force=args.force)

    _step(5, "fidelity of the twin against the real trace (per table, then worst and mean over tables)")
    print(format_fidelity(fidelity(trace, twin)))

    from analysis.report import demo_report

    _step(6, "locality and bandwidth report, real against synthetic")
    summary = demo_report(os.path.join(out, "report"), trace, twin, force=args.force, quiet=args.quiet)
    print(f"    open {os.path.join(summary.get('out_dir', os.path.join(out, 'report')), 'report.html')}")
    return 0


def format_fidelity(fid: dict) -> str:
    """A small fixed-width table of :func:`tracegen.tracemodel.fidelity` figures."""
    keys = [("mrc_mean", "LRU MRC mean err"), ("mrc_max", "LRU MRC max err"), ("top1", "top-1% share err"),
            ("top10", "top-10% share err"), ("footprint", "footprint err")]
    rows = [f"    {'table':<8}" + "".join(f"{h:>19}" for _, h in keys)]
    for name, f in fid.items():
        rows.append(f"    {name:<8}" + "".join(f"{f[k]:>19.4f}" for k, _ in keys))
    if fid:
        for label, agg in (("worst", max), ("mean", lambda v: sum(v) / len(v))):
            cells = "".join(f"{agg([f[k] for f in fid.values()]):>19.4f}" for k, _ in keys)
            rows.append(f"    {label:<8}" + cells)
    return "\n".join(rows)
