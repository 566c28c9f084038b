"""Training the DLRM: the loop, optimizers, metrics, checkpoints and the ``python -m model.train`` entry.

``run(args)`` is what ``tracegen train DATA ...`` and ``python -m model.train DATA ...`` call (the
arguments are defined once, in :mod:`tracegen.commands.train`). It opens the data (a trace file, or a
dist.json sampled on the fly), checks that the data fits the architecture before any step, trains for
``--num-batches`` or ``--epochs``, and every ``--print-freq`` batches reports loss, accuracy, exact AUC
and samples/s (data loading included) as one JSON line in ``--out/metrics.jsonl``. Validation runs every
``--test-freq`` batches and at the end. Checkpoints (``--out/checkpoint.pt``) hold the model, optimizer
state, step and training flags; ``--resume`` continues from one and gives the same result as an
uninterrupted run (batches are a function of the seed and the batch index, never of the history), and
refuses flags that would change that (optimizer, learning rate, batch size, seed, split, ranks).

With ``--distributed`` (under ``torchrun``) tables are sharded across ranks and the MLPs are data
parallel (:mod:`model.distributed`); rank 0 writes the metrics, every rank its checkpoint shard.

Notation: ``B`` batch, ``T`` tables, ``D`` embedding dim.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from model.data import (
    SyntheticBatches,
    TraceBatches,
    check_compatible,
    check_labels,
    is_dist_json,
    load,
    max_ids,
    prefetch,
    split_indices,
)
from model.dlrm import DLRM, DLRMConfig, DLRMTrain
from model.metrics import roc_auc
from tracegen.errors import TracegenError

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
# Embedding tables larger than this are refused even where the available memory is unknown (1 PiB).
MAX_TABLE_BYTES = 1 << 50


def parse_sizes(text: str | None, what: str) -> list[int] | None:
    """``"13-512-256"`` to ``[13, 512, 256]`` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        sizes = [int(x) for x in str(text).split("-")]
    except ValueError:
        raise TracegenError(f"{what} must be integers joined by '-', e.g. 13-512-256, got {text!r}") from None
    if min(sizes) < 1:
        raise TracegenError(f"{what} entries must be positive, got {text!r}")
    return sizes


def make_optimizers(dense_params, sparse_params, name: str, lr: float) -> list[torch.optim.Optimizer]:
    """SGD or Adagrad: a foreach torch optimizer for the MLPs, a sparse one (:mod:`model.optim`) for tables.

    The embedding optimizers touch only the rows a batch looked up; Adagrad is element-wise on the MLPs
    and exact row-wise on the tables (one accumulator per row, as TorchRec/FBGEMM do).
    """
    from model.optim import RowWiseAdagrad, SparseSGD

    dense_params, sparse_params = list(dense_params), list(sparse_params)
    if name == "sgd":
        opts = [torch.optim.SGD(dense_params, lr=lr, foreach=True)]
        if sparse_params:
            opts.append(SparseSGD(sparse_params, lr=lr))
    elif name == "adagrad":
        opts = [torch.optim.Adagrad(dense_params, lr=lr, foreach=True)]
        if sparse_params:
            opts.append(RowWiseAdagrad(sparse_params, lr=lr))
    else:
        raise TracegenError(f"optimizer must be 'sgd' or 'adagrad', got {name!r}")
    return opts


@dataclasses.dataclass
class _Interval:
    """Running sums of one reporting interval."""

    losses: list = dataclasses.field(default_factory=list)  # (loss tensor, batch size)
    logits: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, loss, logits, labels):
        self.losses.append(loss.detach() * labels.shape[0])
        self.logits.append(logits.detach())
        self.labels.append(labels)

    def summary(self, gather) -> dict:
        lg, lb = gather(torch.cat(self.logits)), gather(torch.cat(self.labels))
        loss = float(gather(torch.stack(self.losses).sum().reshape(1).double()).sum()) / lb.shape[0]
        lg, lb = lg.float().cpu().numpy(), lb.cpu().numpy()
        return {"loss": loss, "accuracy": float(np.mean((lg > 0) == (lb > 0.5))), "auc": roc_auc(lb, lg),
                "samples": int(lb.shape[0])}


def _open_data(args, n_dense_default: int):
    """(train batches, val batches or None, cardinalities, max ids, dense width or None, path)."""
    path = args.data
    B = args.mini_batch_size
    if is_dist_json(path):
        train = SyntheticBatches(path, B, seed=args.seed, stream=0, n_dense=n_dense_default)
        val = SyntheticBatches(path, B, seed=args.seed, stream=1, n_dense=n_dense_default,
                               chunk_samples=args.num_val_batches * B)  # one sample() call
        tr = train.first
        return train, val, tr.cardinalities, None, None if tr.dense is None else int(tr.dense.shape[1]), path
    trace = load(path)
    trace.validate(path if isinstance(path, (str, os.PathLike)) else None)
    parts = split_indices(trace.n_samples, args.split, seed=args.seed,
                          path=path if isinstance(path, (str, os.PathLike)) else None)
    n_dense = None if trace.dense is None else int(trace.dense.shape[1])
    nd = n_dense if n_dense is not None else n_dense_default
    drop = bool(args.distributed)  # every rank needs an equal slice of each batch
    train = TraceBatches(trace, parts["train"], B, shuffle=not args.no_shuffle, seed=args.seed,
                         drop_last=drop, n_dense=nd)
    val = TraceBatches(trace, parts["val"], B, n_dense=nd, drop_last=drop)
    return train, val, trace.cardinalities, max_ids(trace), n_dense, path if isinstance(path, str) else None


def _effective_batch(train_b, B: int) -> int:
    """The training batch size: ``B``, or the whole split when it is smaller (the last batch is partial)."""
    if isinstance(train_b, TraceBatches) and not train_b.drop_last:
        return max(1, min(B, len(train_b.samples)))
    return B


def split_notes(train_b, val_b, B: int, distributed: bool = False) -> list[str]:
    """What the batch size does to small splits, as lines for stderr; one starting "nothing to train" is fatal.

    Without ``--distributed`` a split smaller than ``B`` is one partial batch; with it partial batches are
    dropped (every rank needs an equal slice), so such a split has no batch at all.
    """
    why = " (--distributed drops partial batches: every rank needs an equal slice)" if distributed else ""
    notes = []
    if isinstance(train_b, TraceBatches):
        n = len(train_b.samples)
        if len(train_b) == 0:
            notes.append(f"nothing to train: the training split has {n:,} samples, fewer than one batch of "
                         f"{B:,}{why}")
        elif n < B:
            notes.append(f"note: --mini-batch-size {B:,} is larger than the training split ({n:,} samples): "
                         f"each batch is the whole split, {n:,} samples")
    if isinstance(val_b, TraceBatches) and len(val_b) == 0:
        notes.append(f"note: no validation: the validation split has {len(val_b.samples):,} samples, fewer "
                     f"than one batch of {B:,}{why}")
    return notes


def build_config(args, cardinalities: list[int], n_dense: int | None) -> DLRMConfig:
    D = args.arch_sparse_feature_size
    sizes = parse_sizes(args.arch_embedding_size, "--arch-embedding-size") or list(cardinalities)
    bot = parse_sizes(args.arch_mlp_bot, "--arch-mlp-bot") or [n_dense or 13, 512, 256, 64, D]
    top = parse_sizes(args.arch_mlp_top, "--arch-mlp-top")
    cfg = DLRMConfig(embedding_sizes=sizes, embedding_dim=D, mlp_bot=bot, mlp_top=top,
                     interaction_op=args.arch_interaction_op, interaction_itself=args.arch_interaction_itself)
    try:
        return cfg.validate()
    except ValueError as e:
        raise TracegenError(str(e)) from None


def _finite(record: dict) -> dict:
    """``record`` with non-finite floats (an AUC over one class, a diverged loss) as ``None``: JSON ``null``."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _metrics_record(line: str) -> dict | None:
    """One metrics.jsonl line as a dict, or ``None`` for a line a crash cut short (it is dropped on resume)."""
    try:
        r = json.loads(line)
    except ValueError:
        return None
    return r if isinstance(r, dict) and isinstance(r.get("step"), int) else None


def _write_json_line(path: str, record: dict) -> None:
    line = json.dumps(_finite(record), allow_nan=False)  # strict JSON: never a bare NaN or Infinity
    with open(path, "a") as f:
        f.write(line + "\n")


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PiB"  # unreachable


def _available_memory() -> int | None:
    try:
        from tracegen.tracemodel import _available_memory as avail
    except ImportError:  # the fit/sample module is not there
        return None
    return avail()


def check_table_memory(cfg: DLRMConfig, path=None, trace=None, *, available: int | None = None,
                       from_flag: bool = False) -> None:
    """Refuse, before allocating, embedding tables larger than the available memory (or ``MAX_TABLE_BYTES``).

    ``cfg.embedding_bytes()`` summed (fp32 rows x D) is compared with ``available`` (default: MemAvailable
    of /proc/meminfo). The message names the largest table, its rows and bytes, and the way out: relabel
    sparse ids (raw 64-bit keys) with ``tracegen convert --densify``, or a smaller ``--arch-embedding-size``
    when the declared rows exceed the largest id (``trace``, when given, is looked at only on failure).
    """
    per = cfg.embedding_bytes()
    total = sum(per)
    if available is None:
        available = _available_memory()
    limit = MAX_TABLE_BYTES if available is None else min(int(available), MAX_TABLE_BYTES)
    if total <= limit:
        return
    t = max(range(len(per)), key=lambda i: per[i])
    rows = int(cfg.embedding_sizes[t])
    name = f"table {t}"
    hint = "give a smaller --arch-embedding-size or --arch-sparse-feature-size"
    if trace is not None and t < trace.n_tables:
        table = trace.tables[t]
        name = f"table {table.name}" if table.name else name
        values = np.asarray(table.values)
        if values.size:
            largest = int(values.max())
            distinct = int(np.unique(values).size)
            need = (largest + 1) * cfg.embedding_dim * 4
            if from_flag and need < per[t]:
                hint = f"--arch-embedding-size gives it {rows:,} rows but its largest id is {largest:,}"
            elif need <= limit - (total - per[t]) and rows > largest + 1:
                hint = (f"its largest id is {largest:,}: give --arch-embedding-size with {largest + 1:,} "
                        f"rows for it")
            else:
                hint = (f"its ids look like raw keys ({distinct:,} distinct, largest {largest:,}): relabel them "
                        f"0..{distinct - 1:,} with `tracegen convert {path or 'DATA'} OUT.npz --densify`")
    where = "the available memory" if available is not None and available < MAX_TABLE_BYTES else "the cap"
    raise TracegenError(
        f"the embedding tables need {_fmt_bytes(total)}, more than {where} ({_fmt_bytes(limit)}): {name} has "
        f"{rows:,} rows x {cfg.embedding_dim} x 4 bytes = {_fmt_bytes(per[t])}; {hint}", path)


def _training_flags(args, world: int = 1) -> dict:
    """The flags besides the architecture that decide what a resumed run computes; kept in the checkpoint.

    ``ranks`` (the world size) decides which tables each rank's checkpoint holds.
    """
    return {"--optimizer": args.optimizer, "--learning-rate": float(args.learning_rate),
            "--mini-batch-size": int(args.mini_batch_size), "--seed": int(args.seed), "--split": args.split,
            "--no-shuffle": bool(args.no_shuffle), "ranks": int(world)}


def _check_resume_flags(ck: dict, flags: dict, path) -> None:
    """Refuse to resume with other training flags: the run would silently differ from an uninterrupted one
    (torch restores the checkpoint's learning rate; another seed or batch size gives other batches)."""
    saved = ck.get("training") or {"--seed": ck.get("seed")}  # older checkpoints kept only the seed
    for flag, value in flags.items():
        if flag in saved and saved[flag] is not None and saved[flag] != value:
            if flag == "ranks":
                raise TracegenError(f"the checkpoint was written by {saved[flag]} ranks, this run has {value}: "
                                    f"resume with torchrun --nproc_per_node={saved[flag]}, or start a new run", path)
            raise TracegenError(f"the checkpoint was trained with {flag} {saved[flag]}, this run gives {value}: "
                                f"resume with the same {flag}, or start a new run", path)


def run(args: argparse.Namespace) -> int:
    """Train; returns 0. Raises :class:`TracegenError` on bad data, arguments or outputs.

    Under ``--distributed`` the process group is torn down on the way out, error or not (a rank that
    leaves it up can hang the others at shutdown).
    """
    try:
        return _run(args)
    finally:
        if args.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TracegenError("--device cuda but torch sees no CUDA device")
    rank, world = 0, 1
    if args.distributed:
        from model import distributed as mdist

        rank, world = mdist.init_from_env(args.device)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        if args.mini_batch_size % world:
            raise TracegenError(f"--mini-batch-size {args.mini_batch_size} is not divisible by {world} ranks")
    lead = rank == 0
    say = (lambda *a: None) if args.quiet or not lead else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if args.num_batches is not None and args.epochs is not None:
        raise TracegenError("give --num-batches or --epochs, not both")
    for flag, value, low in (("--epochs", args.epochs, 1), ("--num-batches", args.num_batches, 1),
                             ("--mini-batch-size", args.mini_batch_size, 1), ("--print-freq", args.print_freq, 1),
                             ("--test-freq", args.test_freq, 0), ("--checkpoint-freq", args.checkpoint_freq, 0),
                             ("--num-val-batches", args.num_val_batches, 1), ("--num-threads", args.num_threads, 0)):
        if value is not None and value < low:  # argparse checks these too; run() is also called from Python
            raise TracegenError(f"{flag} must be >= {low}, got {value}")
    if is_dist_json(args.data) and args.num_batches is None:
        raise TracegenError("a dist.json is an endless stream: give --num-batches (--epochs needs a trace file)",
                            args.data)

    # ---- output folder, checked before any work ------------------------------------------------------
    metrics_path = ckpt_path = None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        metrics_path = os.path.join(args.out, METRICS)
        suffix = f"-rank{rank}" if world > 1 else ""
        ckpt_path = os.path.join(args.out, CHECKPOINT.replace(".pt", f"{suffix}.pt"))
        if args.resume and not os.path.exists(ckpt_path):
            raise TracegenError("no checkpoint to resume from", ckpt_path)
        if not args.resume and not args.force:
            for existing in (metrics_path, ckpt_path):
                if os.path.exists(existing):
                    raise TracegenError("already exists; pass --force to replace it or --resume to continue",
                                        existing)
    elif args.resume:
        raise TracegenError("--resume needs --out DIR (where the checkpoint is)")

    # ---- data and model, checked against each other before any step ----------------------------------
    mlp_bot = parse_sizes(args.arch_mlp_bot, "--arch-mlp-bot")
    train_b, val_b, cards, maxes, n_dense, path = _open_data(args, mlp_bot[0] if mlp_bot else 13)
    cfg = build_config(args, cards, n_dense)
    sample_trace = getattr(train_b, "first", None) or getattr(train_b, "trace", None)
    if sample_trace is not None and sample_trace.labels is None:
        say("note: the data has no labels; training on labels drawn at random from the seed (AUC ~0.5)")
    if n_dense is None:
        say(f"note: the data has no dense features; using {cfg.n_dense} zeros per sample")
    names = [t.name for t in sample_trace.tables] if sample_trace is not None else None
    check_compatible(cards, maxes, n_dense, cfg, path, names=names)
    if sample_trace is not None:
        check_labels(sample_trace, path)
    check_table_memory(cfg, path, sample_trace, from_flag=args.arch_embedding_size is not None)
    B = args.mini_batch_size
    for note in split_notes(train_b, val_b, B, bool(args.distributed)):
        if note.startswith("nothing to train"):
            raise TracegenError(note, path)
        say(note)
    if args.num_batches is not None:
        total = args.num_batches
    else:
        total = (args.epochs if args.epochs is not None else 1) * len(train_b)
    print_freq = max(1, min(args.print_freq, total))
    if args.checkpoint_freq and args.checkpoint_freq < total and args.checkpoint_freq % print_freq:
        if print_freq < args.print_freq:  # capped: a run shorter than --print-freq reports once, at its end
            raise TracegenError(
                f"--checkpoint-freq {args.checkpoint_freq} must be a multiple of the reporting interval, "
                f"{print_freq} batches here (--print-freq {args.print_freq} capped to this run's {total} "
                f"batches); a checkpoint closes a reporting interval: give a --print-freq that divides it")
        raise TracegenError(f"--checkpoint-freq {args.checkpoint_freq} must be a multiple of --print-freq "
                            f"{print_freq} (a checkpoint closes a reporting interval)")

    if args.distributed:
        from model.distributed import DistributedDLRM, all_gather_cat

        net = DistributedDLRM(cfg, seed=args.seed, device=device)
        mine = lambda b: net.local_slice(b.batch_size)  # noqa: E731

        def forward(b):
            logits = net(b)  # (B / W,)
            labels = b.labels[mine(b)]
            return F.binary_cross_entropy_with_logits(logits, labels), logits, labels

        gather = all_gather_cat
        modules = net
    else:
        model = DLRM(cfg, seed=args.seed).to(device)
        net = DLRMTrain(model)

        def forward(b):
            loss, logits = net(b)
            return loss, logits, b.labels

        gather = lambda x: x  # noqa: E731
        modules = model
    opts = make_optimizers(net.dense_parameters() if args.distributed else model.dense_parameters(),
                           net.embedding_parameters() if args.distributed else model.embedding_parameters(),
                           args.optimizer, args.learning_rate)
    step = 0
    if args.resume:
        try:
            ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001  torch raises many types for a corrupt file
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise TracegenError(
                f"cannot load the checkpoint: truncated or corrupt ({type(e).__name__}: {first})", ckpt_path
            ) from None
        if not isinstance(ck, dict) or not {"config", "model", "optimizers", "step"} <= set(ck):
            raise TracegenError("not a tracegen training checkpoint", ckpt_path)
        if ck["config"] != dataclasses.asdict(cfg):
            raise TracegenError("the checkpoint's architecture differs from this run's flags", ckpt_path)
        _check_resume_flags(ck, _training_flags(args, world), ckpt_path)
        try:
            modules.load_state_dict(ck["model"])
        except RuntimeError as e:  # missing keys or other shapes: not a checkpoint of this model
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise TracegenError(f"the checkpoint does not fit this model ({first})", ckpt_path) from None
        try:  # a checkpoint from before the training flags were kept may hold another optimizer's state
            if len(ck["optimizers"]) != len(opts):
                raise ValueError(f"{len(ck['optimizers'])} optimizers saved, {len(opts)} here")
            for o, s in zip(opts, ck["optimizers"]):
                if "training" not in ck and ([set(g) for g in s["param_groups"]]
                                             != [set(g) for g in o.state_dict()["param_groups"]]):
                    raise ValueError("other hyperparameters saved")  # torch would fail later, in step()
                o.load_state_dict(s)
        except (KeyError, ValueError) as e:
            raise TracegenError(f"the checkpoint's optimizer state does not fit --optimizer {args.optimizer} "
                                f"({e})", ckpt_path) from None
        step = int(ck["step"])
        if lead and metrics_path and os.path.exists(metrics_path):  # drop lines written after the checkpoint
            with open(metrics_path) as f:  # (and the final validation, which the resumed run repeats)
                keep = [ln for ln in f if (r := _metrics_record(ln)) is not None
                        and (r["step"] < step or (r["step"] == step and not r.get("final")))]
            with open(metrics_path, "w") as f:
                f.writelines(keep)
        say(f"resumed from {ckpt_path} at batch {step}")
    else:  # --force (checked above): a stale checkpoint must not be resumed into this run's metrics later
        if lead and metrics_path and os.path.exists(metrics_path):
            os.unlink(metrics_path)
        if ckpt_path and os.path.exists(ckpt_path):
            os.unlink(ckpt_path)

    n_params = sum(p.numel() for p in modules.parameters())
    say(f"DLRM: {cfg.n_tables} tables, {sum(cfg.embedding_sizes)} rows x {cfg.embedding_dim}, "
        f"{n_params / 1e6:.1f}M parameters, {world} rank(s), {device}; training {total} batch"
        f"{'' if total == 1 else 'es'} of {_effective_batch(train_b, B):,}")

    def record(rec: dict):
        if lead:
            if metrics_path:
                _write_json_line(metrics_path, rec)
            if not args.quiet:
                line = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={'n/a' if v is None else v}"
                                for k, v in _finite(rec).items())
                print(line, file=sys.stderr, flush=True)

    def evaluate(final: bool = False) -> None:
        if val_b is None:
            return
        iv = _Interval()
        n_val = args.num_val_batches if is_dist_json(args.data) else len(val_b)
        with torch.no_grad():
            for b in prefetch(val_b.batches(0, n_val), device=device):
                loss, logits, labels = forward(b)
                iv.add(loss, logits, labels)
        if iv.logits:
            s = iv.summary(gather)
            record({"split": "val", "step": step, **s, **({"final": True} if final else {})})

    def save() -> None:
        if not ckpt_path:
            return
        tmp = ckpt_path + ".tmp"
        torch.save({"config": dataclasses.asdict(cfg), "model": modules.state_dict(),
                    "optimizers": [o.state_dict() for o in opts], "step": step, "seed": args.seed,
                    "training": _training_flags(args, world)}, tmp)
        os.replace(tmp, ckpt_path)

    from tracegen._util import progress

    iv = _Interval()
    bar = progress(total=total, desc="train", unit="batch", enabled=lead and not args.quiet)
    bar.update(step)
    for b in prefetch(train_b.batches(step, total), device=device):
        loss, logits, labels = forward(b)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        step += 1
        iv.add(loss, logits, labels)
        bar.update(1)
        if step % print_freq == 0 or step == total:
            s = iv.summary(gather)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - iv.start
            record({"split": "train", "step": step, **s, "samples_per_s": s["samples"] / max(elapsed, 1e-9)})
            if not math.isfinite(s["loss"]):
                raise TracegenError(f"loss is {s['loss']} at batch {step}: lower --learning-rate")
            if args.test_freq and step % args.test_freq == 0 and step != total:
                evaluate()
            if (args.checkpoint_freq and step % args.checkpoint_freq == 0) or step == total:
                save()
            iv = _Interval()
    bar.close()
    evaluate(final=True)
    say(f"done in {time.perf_counter() - t_start:.1f} s"
        + (f"; metrics in {metrics_path}" if metrics_path else ""))
    if args.distributed:
        import torch.distributed as dist

        dist.barrier()  # every rank has finished its steps and checkpoint before any leaves
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m model.train DATA ...`` (same flags as ``tracegen train``)."""
    from tracegen.cli import _Parser
    from tracegen.commands.train import add_arguments
    from tracegen.commands.train import run as checked_run  # the CLI's up-front checks, then run()

    p = _Parser(prog="python -m model.train", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return checked_run(args)
    except TracegenError as e:
        print(f"model.train: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the system refused (permissions, disk full, ...): one line, as tracegen's CLI
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"model.train: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
