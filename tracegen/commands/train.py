"""``tracegen train``: train the lean DLRM (:mod:`model`) on a trace file or a dist.json."""

from __future__ import annotations

import argparse
import inspect

from tracegen.commands._common import add_command, check_device, nonneg_int, positive_float, positive_int, seed_int

ORDER = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``tracegen train`` and ``python -m model.train`` (named as in the DLRM reference)."""
    p.add_argument("data", metavar="DATA",
                   help="a trace file (DLRM npz, native npz, any format tracegen reads) or a dist.json")
    a = p.add_argument_group("architecture (as the DLRM reference's --arch-* flags)")
    a.add_argument("--arch-sparse-feature-size", type=positive_int, default=16, metavar="D", help="embedding dim (16)")
    a.add_argument("--arch-embedding-size", metavar="N1-N2-..", help="rows per table (default: the data's)")
    a.add_argument("--arch-mlp-bot", metavar="F-..-D", help="bottom MLP widths, input first (F-512-256-64-D)")
    a.add_argument("--arch-mlp-top", metavar="..-1", default="512-256-1",
                   help="top MLP widths after its input, which is the interaction width (512-256-1)")
    a.add_argument("--arch-interaction-op", choices=["dot", "cat"], default="dot")
    a.add_argument("--arch-interaction-itself", action="store_true", help="include self dot products")
    t = p.add_argument_group("training")
    t.add_argument("--mini-batch-size", type=positive_int, default=128, metavar="B")
    t.add_argument("--learning-rate", type=positive_float, default=0.01, metavar="LR")
    n = t.add_mutually_exclusive_group()
    n.add_argument("--num-batches", type=positive_int, metavar="N", help="train N batches (default: one epoch)")
    n.add_argument("--epochs", type=positive_int, metavar="E", help="passes over the training split")
    t.add_argument("--optimizer", choices=["sgd", "adagrad"], default="sgd")
    t.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    t.add_argument("--num-threads", type=nonneg_int, default=0, metavar="N",
                   help="torch threads (0: torch's default; 1 is fastest for small models on a busy machine)")
    t.add_argument("--seed", type=seed_int, default=0, help="weights, shuffling and synthetic data follow it")
    t.add_argument("--split", choices=["day", "random"], default="day",
                   help="train/val/test like the reference: 6 days, then half a day each (day), or random")
    t.add_argument("--no-shuffle", action="store_true", help="train in trace order, not a per-epoch shuffle")
    t.add_argument("--print-freq", type=positive_int, default=100, metavar="N", help="batches per metrics line (100)")
    t.add_argument("--test-freq", type=nonneg_int, default=0, metavar="N",
                   help="validate every N batches (0: only at the end)")
    t.add_argument("--num-val-batches", type=positive_int, default=16, metavar="N",
                   help="validation batches when DATA is a dist.json (16)")
    t.add_argument("--distributed", action="store_true",
                   help="under torchrun: tables sharded over ranks, MLPs data parallel (gloo CPU, nccl GPU)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="write metrics.jsonl and checkpoint.pt here")
    o.add_argument("--checkpoint-freq", type=nonneg_int, default=0, metavar="N",
                   help="also checkpoint every N batches (a multiple of --print-freq; always at the end)")
    o.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    o.add_argument("--force", action="store_true", help="replace DIR/metrics.jsonl and checkpoint.pt if they exist")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar or metric lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Train the lean DLRM on DATA: a trace file or a dist.json sampled on the fly.

    Every --print-freq batches: loss, accuracy, exact AUC and samples/s, as JSON lines in
    DIR/metrics.jsonl with --out. Validation on the reference's split at the end (and every
    --test-freq batches). Same seed, same result on CPU; --resume continues a checkpointed run
    (with the same training flags). Labels must be in [0, 1]. Data with no dense features gets
    zeros (as many as the first --arch-mlp-bot entry, 13 by default); data with no labels gets
    labels drawn at random from the seed (the lookups are real, the AUC stays near 0.5).

    Examples:
      tracegen train kaggle_processed.npz --mini-batch-size 2048 --epochs 1 --out runs/kaggle
      tracegen train traces/zipf.json --num-batches 200 --arch-mlp-bot 13-64-16 --out runs/zipf
    Distributed (tables sharded across ranks, MLPs data parallel):
      torchrun --nproc_per_node=2 -m model.train DATA --distributed
    """
    from tracegen.commands._common import input_file

    input_file(args.data)
    import os

    from tracegen.errors import TracegenError

    check_device(args.device)
    if args.out == "-":
        raise TracegenError("the run writes a folder of files; give --out DIR, not '-'")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise TracegenError("exists and is not a directory (--out takes a folder)", args.out)
    from model.train import run as train_run

    return train_run(args)


def register(sub) -> None:
    p = add_command(sub, "train", run, inspect.cleandoc(run.__doc__))
    add_arguments(p)
