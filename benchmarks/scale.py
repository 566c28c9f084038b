"""The CLI on inputs shaped like users' real files, at real size: wall time and peak memory per command.

Generates, in a scratch folder (``--dir``, default a temporary one, removed afterwards):

- a Meta dlrm_datasets-shaped TBE file (``fbgemm_t{T}_bs65536.pt``: indices, offsets and a ``T x B`` lengths
  tensor; per-table pooling from a skewed negative binomial with empty bags, 70% of tables averaging 1-5 ids
  per bag, 20% 5-20, 10% 30-80; ids Zipf-like over tables of 10^3 to 10^7 rows);
- a libCacheSim oracleGeneral trace of ``--requests`` requests over raw 64-bit object ids.

Then runs ``tracegen inspect``, ``profile``, ``fit --calibrate 0``, ``sample`` (to npz and tbe-pt),
``convert`` (TBE to oracle-general ``--table all``) and, with ``--default-fit``, the default ``fit`` (minutes) on
them, each in its own process, and prints its wall time and peak RSS, and the peak over the input's ids as
int64 (the baseline: one in-memory copy of what the command reads).

    python benchmarks/scale.py                    # 40 tables (~27M indices), 20M requests: about 3 min
    python benchmarks/scale.py --tables 150       # the README's figures (99M indices, 0.95 GB file)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
B = 65536


def make_tbe(path: str, n_tables: int, seed: int = 13) -> int:
    """A Meta-shaped TBE file; returns its number of indices."""
    import torch

    rng = np.random.default_rng(seed)
    u = rng.random(n_tables)
    means = np.where(u < 0.7, rng.uniform(1, 5, n_tables),
                     np.where(u < 0.9, rng.uniform(5, 20, n_tables), rng.uniform(30, 80, n_tables)))
    p_empty = rng.uniform(0.0, 0.3, n_tables)
    sizes = np.round(10 ** rng.uniform(3, 7, n_tables)).astype(np.int64)
    lengths = np.empty((n_tables, B), np.int64)
    for t in range(n_tables):
        r, m = 2.0, means[t]
        v = rng.negative_binomial(r, r / (r + m), B)
        v[rng.random(B) < p_empty[t]] = 0
        lengths[t] = np.minimum(v, 100 if m < 30 else 200)
    n = int(lengths.sum())
    indices = np.empty(n, np.int64)
    pos = 0
    for t in range(n_tables):
        k, s = int(lengths[t].sum()), int(sizes[t])
        a = rng.uniform(0.8, 1.2)  # Zipf-like ranks: floor(s ** u**a) - 1, scattered by a multiplicative hash
        ranks = np.floor(np.exp(np.log(s) * rng.random(k) ** a)).astype(np.int64) - 1
        indices[pos : pos + k] = (ranks * 2654435761 + 12345) % s
        pos += k
    offsets = np.zeros(n_tables * B + 1, np.int64)
    np.cumsum(lengths.ravel(), out=offsets[1:])
    torch.save((torch.from_numpy(indices), torch.from_numpy(offsets), torch.from_numpy(lengths)), path)
    return n


def make_oracle_general(path: str, n: int, seed: int = 7) -> None:
    """An oracleGeneral trace (24-byte records: time, object id, size, next access) over raw 64-bit ids."""
    from tracegen import synth

    rng = np.random.default_rng(seed)
    keys = rng.integers(1 << 40, 1 << 62, 2_000_000, dtype=np.int64)
    ids = keys[synth.zipf_ids(n, keys.shape[0], 0.9, seed=rng)]
    rec = np.zeros(n, dtype=[("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["t"], rec["id"], rec["size"], rec["next"] = np.arange(n) // 100, ids, 4096, -1
    rec.tofile(path)


def run(label: str, args: list[str], base_bytes: int) -> dict:
    """Run ``python -m tracegen ARGS`` in a child process; its wall time and peak RSS (``wait4``)."""
    cmd = [sys.executable, "-m", "tracegen", *args, "-q"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    peak = ru.ru_maxrss * 1024  # KiB on Linux
    ok = p.returncode == 0
    status = "ok" if ok else f"rc={p.returncode}"
    print(f"{label:44s} {status:>5s} {wall:8.1f} s  peak RSS {peak / 2**30:6.2f} GiB"
          f"  ({peak / max(base_bytes, 1):5.2f}x the input's ids)", flush=True)
    if not ok:
        print("   " + err.decode(errors="replace").strip().splitlines()[-1], flush=True)
    return {"label": label, "rc": p.returncode, "wall_s": wall, "peak_rss": peak}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=40, help="TBE tables (150: 99M indices, the README's figures)")
    ap.add_argument("--requests", type=int, default=20_000_000, help="oracleGeneral requests")
    ap.add_argument("--default-fit", action="store_true", help="also time the default fit (minutes)")
    ap.add_argument("--dir", help="scratch folder (kept; default: a temporary one, removed)")
    args = ap.parse_args(argv)
    work = args.dir or tempfile.mkdtemp(prefix="tracegen-scale-")
    os.makedirs(work, exist_ok=True)
    try:
        tbe = os.path.join(work, f"fbgemm_t{args.tables}_bs{B}.pt")
        og = os.path.join(work, "requests.oracleGeneral.bin")
        t0 = time.perf_counter()
        n = make_tbe(tbe, args.tables)
        make_oracle_general(og, args.requests)
        gib = lambda p: os.path.getsize(p) / 2**30  # noqa: E731
        print(f"inputs: TBE {args.tables} tables x {B:,} samples, {n:,} indices ({gib(tbe):.2f} GiB); "
              f"oracleGeneral {args.requests:,} requests ({gib(og):.2f} GiB); "
              f"made in {time.perf_counter() - t0:.0f} s", flush=True)
        tb, ob = 8 * n, 8 * args.requests
        j = lambda name: os.path.join(work, name)  # noqa: E731
        run("inspect TBE", ["inspect", tbe], tb)
        run("profile TBE", ["profile", tbe, "-o", j("prof.json"), "--force"], tb)
        run("fit --calibrate 0 TBE", ["fit", tbe, "-o", j("tbe.json"), "--calibrate", "0", "--force"], tb)
        if args.default_fit:
            run("fit (default) TBE", ["fit", tbe, "-o", j("tbe_full.json"), "--force"], tb)
        run("sample TBE model -> npz", ["sample", j("tbe.json"), "-o", j("syn.npz"), "--force"], tb)
        run("sample TBE model -> tbe-pt", ["sample", j("tbe.json"), "-o", j("syn.pt"), "--force"], tb)
        run("convert TBE -> oracle-general --table all",
            ["convert", tbe, j("all.oracleGeneral.bin"), "--to", "oracle-general", "--table", "all", "--force"], tb)
        run("inspect oracleGeneral", ["inspect", og, "--from", "oracle-general"], ob)
        run("fit --calibrate 0 oracleGeneral",
            ["fit", og, "--from", "oracle-general", "-o", j("og.json"), "--calibrate", "0", "--force"], ob)
        if args.default_fit:
            run("fit (default) oracleGeneral",
                ["fit", og, "--from", "oracle-general", "-o", j("og_full.json"), "--force"], ob)
        run("sample oracleGeneral model -> oracle-general",
            ["sample", j("og.json"), "-o", j("syn.oracleGeneral.bin"), "--to", "oracle-general", "--force"], ob)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
