"""Sampling speed and memory of the class-stack trace model.

Prints, in one process: accesses/s of ``TraceModel.sample_iter`` for a fitted model (three sampling
modes: uncoupled, coupled, and the hybrid ``coupling_below=64``; the median of ``--repeat`` runs, per
second of wall-clock time and per second of the process's CPU time, less noisy on a busy machine),
against baselines measured in the same run: numpy's uniform id generator (a floor: no model at all),
the DLRM reference's generator (``dlrm_data_pytorch.py``'s ``trace_generate_lru`` and
``generate_stack_distance`` ported line by line, on the profile ``trace_profile`` gives: per access a
``numpy.random.rand(1)``, a ``bisect`` while fewer ids than the largest depth have been seen, a linear
scan of the CDF, and a ``del``/``append`` on the list of all distinct ids; measured on a small n), the
same generator's list-LRU update loop alone (the depths drawn vectorised outside the timing: a
generous lower bound on the reference's cost, the figure quoted before), and the sampler's separate-kernel path
(``ClassStackSampler.FUSED = False``: five uniform streams, the pre-draw and stack kernels of before).
With ``--stream N`` also writes an N-access trace to a native npz through ``TraceModel.sample_to`` (chunked) and prints
the peak resident memory (target: 100M accesses under 2 GB).

    python benchmarks/sample_speed.py                    # 10M accesses
    python benchmarks/sample_speed.py --n 2000000 --stream 100000000
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tracegen.trace import Trace  # noqa: E402
from tracegen.tracemodel import TraceModel  # noqa: E402

OLTP = HERE.parent.parent / "shared" / "data" / "arc" / "arc_OLTP_P3.npz"


def real_trace() -> tuple[str, Trace]:
    if OLTP.exists():
        return "ARC OLTP", Trace.single(np.load(OLTP)["OLTP"].astype(np.int64))
    rng = np.random.default_rng(0)
    w = 1.0 / np.arange(1, 100_001) ** 0.9
    return "planted zipf", Trace.single(rng.choice(100_000, size=1_000_000, p=w / w.sum()))


def reference_generate_lru(n: int, line_accesses: list, list_sd: list, cumm_sd: list, seed: int = 0,
                           out: list | None = None) -> float:
    """Accesses/s of the DLRM reference's ``trace_generate_lru`` (no padding), ported line by line from
    facebookresearch/dlrm ``dlrm_data_pytorch.py`` (with its ``generate_stack_distance``): the inputs
    are ``trace_profile``'s (``benchmarks/baselines.py::reference_profile``). ``out``, when given,
    receives the generated ids."""
    import bisect

    ra = np.random.RandomState(seed)
    line_accesses = list(line_accesses)
    cache_line_size = 1

    def generate_stack_distance(cumm_val, cumm_dist, max_i, i):
        u = ra.rand(1)
        if i < max_i:
            j = bisect.bisect(cumm_val, i) - 1
            fi = cumm_dist[j]
            u *= fi
        for j, f in enumerate(cumm_dist):
            if u <= f:
                return cumm_val[j]

    t0 = time.perf_counter()
    max_sd = list_sd[-1]
    ln = len(line_accesses)
    i = 0
    ztrace = []
    for _ in range(n):
        sd = generate_stack_distance(list_sd, cumm_sd, max_sd, i)
        if sd == 0:
            line_ref = line_accesses[0]
            del line_accesses[0]
            line_accesses.append(line_ref)
            mem_ref = np.uint64(line_ref * cache_line_size)
            i += 1
        else:
            line_ref = line_accesses[ln - sd]
            mem_ref = np.uint64(line_ref * cache_line_size)
            del line_accesses[ln - sd]
            line_accesses.append(line_ref)
        ztrace.append(mem_ref)
    dt = time.perf_counter() - t0
    if out is not None:
        out.extend(int(x) for x in ztrace)
    return n / dt


def reference_iid_sd(n: int, sd_values: np.ndarray, sd_probs: np.ndarray, seed: int = 0) -> float:
    """The reference generator's list-LRU update alone: the depths drawn vectorised before the timing
    (the reference draws each with a Python scan of its CDF), then move that element to the top."""
    rng = np.random.default_rng(seed)
    draws = rng.choice(sd_values, size=n, p=sd_probs)
    stack: list[int] = []
    t0 = time.perf_counter()
    nxt = 0
    for d in draws.tolist():
        if d < 0 or d >= len(stack):
            stack.insert(0, nxt)
            nxt += 1
        else:
            x = stack.pop(d)
            stack.insert(0, x)
    return n / (time.perf_counter() - t0)


def rate(model: TraceModel, n: int, chunk: int) -> tuple[float, float]:
    """Accesses per second of wall-clock time and of this process's CPU time (sampling is
    single-threaded: the CPU-time rate is what a busy shared machine leaves less noisy)."""
    model.sample(1000, seed=1)  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    got = 0
    for tr in model.sample_iter(n, seed=0, chunk_samples=chunk):
        got += tr.n_accesses
    return got / (time.perf_counter() - t0), got / max(time.process_time() - c0, 1e-9)


def median_rate(model: TraceModel, n: int, chunk: int, repeat: int, fused: bool = True) -> tuple[float, float]:
    """Medians of ``repeat`` runs (wall, CPU); ``fused=False`` times the separate pre-draw and stack
    kernels (``ClassStackSampler.FUSED``, the sampler before the fast kernels) in the same process."""
    from tracegen.tracemodel import ClassStackSampler

    old = ClassStackSampler.FUSED
    try:
        ClassStackSampler.FUSED = fused
        runs = np.array([rate(model, n, chunk) for _ in range(max(1, repeat))])
        return float(np.median(runs[:, 0])), float(np.median(runs[:, 1]))
    finally:
        ClassStackSampler.FUSED = old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="accesses to sample for the rate")
    ap.add_argument("--chunk", type=int, default=1 << 20, help="samples per chunk")
    ap.add_argument("--stream", type=int, default=0, help="also stream this many accesses to disk")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode (the median is printed)")
    ap.add_argument("--n-ref", type=int, default=2000,
                    help="accesses for the ported reference generator (slow: a Python scan per access)")
    ap.add_argument("--hybrid", type=int, default=64, help="coupling_below of the hybrid mode's row")
    ap.add_argument(
        "--n-old", type=int, default=1, help="also time the separate-kernel sampler (0: skip)"
    )
    args = ap.parse_args(argv)

    name, real = real_trace()
    t0 = time.perf_counter()
    model = TraceModel().fit(real)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    TraceModel(calibrate=0).fit(real)
    t_fit0 = time.perf_counter() - t0
    from tracegen.locality import stack_distances

    t0 = time.perf_counter()
    sd = stack_distances(real.tables[0].values)
    t_sd = time.perf_counter() - t0
    print(
        f"fit on {name} ({real.n_accesses} accesses): {t_fit:.2f} s with mode selection + calibration, "
        f"{t_fit0:.2f} s without; the locality engine's stack_distances alone: {t_sd:.2f} s"
    )
    node = model.model_["tables"][0]["ids"]
    mode = "coupled" if node["coupling"] else "uncoupled"
    if not node["coupling"] and node.get("coupling_below", 0) > 0:
        mode = f"hybrid (coupling_below={node['coupling_below']})"
    print(f"chosen mode: {mode}; {len(node['classes'])} classes")

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(max(1, args.n // (1 << 22))):
        rng.integers(0, real.tables[0].cardinality, 1 << 22)
    floor = max(1, args.n // (1 << 22)) * (1 << 22) / (time.perf_counter() - t0)
    vals, cnts = np.unique(np.minimum(sd, 100_000), return_counts=True)
    loop = reference_iid_sd(20_000, vals, cnts / cnts.sum())
    sys.path.insert(0, str(HERE))
    import baselines

    la, list_sd, cumm_sd = baselines.reference_profile(real.tables[0].values)
    ref = reference_generate_lru(args.n_ref, la.tolist(), list_sd.tolist(), cumm_sd.tolist())
    print(
        f"baselines: numpy uniform ids {floor / 1e6:.1f} M/s; DLRM reference trace_generate_lru "
        f"(ported, {args.n_ref:,} accesses, {len(list_sd):,} distinct depths in its CDF) {ref / 1e3:.1f} k/s; "
        f"its list-LRU update loop alone (draws vectorised, untimed) {loop / 1e3:.1f} k/s"
    )
    modes = {
        "uncoupled": (False, 0),
        "coupled": (True, 0),
        f"hybrid (coupling_below={args.hybrid})": (False, args.hybrid),
    }
    for label, (coupling, below) in modes.items():
        m = TraceModel.from_spec(
            {
                **model.model_,
                "tables": [
                    {**t, "ids": {**t["ids"], "coupling": coupling, "coupling_below": below}}
                    for t in model.model_["tables"]
                ],
            }
        )
        r, r_cpu = median_rate(m, args.n, args.chunk, args.repeat)
        old, old_cpu = median_rate(m, args.n, args.chunk, args.repeat, fused=False) if args.n_old else (None, None)
        vs = (
            f", {r / old:.2f}x the separate-kernel sampler's {old / 1e6:.2f} M/s "
            f"(CPU time: {r_cpu / old_cpu:.2f}x its {old_cpu / 1e6:.2f} M/s)"
            if old
            else ""
        )
        print(
            f"sample ({label}): {r / 1e6:.2f} M accesses/s, {r_cpu / 1e6:.2f} M/s of CPU time "
            f"({r / ref:.0f}x the reference generator, {r / loop:.0f}x its update loop alone, "
            f"{r / floor:.2f}x numpy uniform{vs})"
        )

    if args.stream:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "big.npz")
            t0 = time.perf_counter()
            model.sample_to(out, args.stream, seed=0, fmt="npz", chunk_samples=args.chunk)
            dt = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"streamed {args.stream} accesses to npz in {dt:.1f} s ({args.stream / dt / 1e6:.2f} M/s), "
                f"file {os.path.getsize(out) / 2**20:.0f} MiB, peak RSS {peak:.0f} MiB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
