"""Regenerate the bundled example trace ``tracegen/data/example_trace.npz`` (native npz, compressed) and the
small example files in ``traces/`` (the same kind of trace in other formats).

It is made here by :func:`tracegen.synth.planted_trace` (planted locality, Criteo-like shape), so the
project may redistribute it. Run from the repository root:

    python traces/make_example.py [--force]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tracegen import formats, synth  # noqa: E402

N_SAMPLES = 30_000
SEED = 20240229
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tracegen", "data", "example_trace.npz")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="replace the existing file")
    p.add_argument("-o", "--output", default=OUT)
    args = p.parse_args(argv)
    # one-hot like Criteo, so it converts to every format including the DLRM reference's npz
    trace = synth.planted_trace(N_SAMPLES, seed=SEED, multi_hot=())
    formats.write(trace, args.output, "npz", force=args.force, compress=True)
    print(f"wrote {args.output}: {trace} ({os.path.getsize(args.output) / 1e6:.2f} MB)")
    write_small(force=args.force)
    return 0


def write_small(force: bool = False) -> None:
    """Tiny files of each common format, for the README's examples (a few KB each)."""
    small = synth.planted_trace(300, seed=SEED + 1, multi_hot=())
    # raw Criteo text: label, 13 ints, 26 categories as 8-digit hex (here: the ids, hashed to look raw)
    lines = []
    x = small.to_dense_ids()
    for i in range(small.n_samples):
        ints = [str(int(v)) for v in small.dense[i]]
        cats = [f"{(int(v) * 2654435761 + j) % 2**32:08x}" for j, v in enumerate(x[i])]
        lines.append("\t".join([str(int(small.labels[i]))] + ints + cats))
    path = os.path.join(HERE, "example_criteo.tsv")
    if force or not os.path.exists(path):
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    one = small.select(["C4"])
    for name, fmt in (
        ("example_c4.oracleGeneral.bin", "oracle-general"),
        ("example_c4_trace.log", "dlrm-trace"),
        ("example_c4.txt", "txt"),
    ):
        formats.write(one, os.path.join(HERE, name), fmt, force=force)
    formats.write(
        synth.planted_trace(200, seed=SEED + 2),
        os.path.join(HERE, "example_multi_hot.npz"),
        "npz",
        force=force,
        compress=True,
    )
    print(f"wrote small examples in {HERE}")


if __name__ == "__main__":
    sys.exit(main())
