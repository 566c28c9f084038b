"""The report's matplotlib figures (Agg backend): every axis labelled with units, a legend and a title.

Each function takes prepared numbers (no trace logic here), draws one figure, saves it as a PNG at ``path``
and returns ``path``. matplotlib is imported inside :func:`_pyplot`, with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

MiB = float(1 << 20)
Path = str | os.PathLike
_STYLES = ("-", "--", ":", "-.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    """Write ``fig`` as a PNG atomically (an interrupted report leaves no truncated figure)."""
    from tracegen._util import atomic_output

    try:
        with atomic_output(path, force=True, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        _pyplot().close(fig)
    return os.fspath(path)


def _no_access(mr) -> bool:
    """Whether a miss-ratio curve is that of a stream without accesses: no points, or 0 everywhere (a stream
    with any access has a cold miss, so its miss ratio is positive at every cache size)."""
    m = np.asarray(mr, dtype=np.float64)
    return m.size == 0 or not np.any(m > 0)


def table_curves_drawn(table_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
                       ) -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], list[str]]:
    """The per-table curves :func:`mrc` draws, and notes on those left out.

    A table without accesses has no miss-ratio curve (drawn, it would sit at 0 like a perfect cache): its
    curve is left out, noted ``"t1: no accesses"`` (``"t1: no accesses in synth"`` when only one
    trace's table is empty).
    """
    kept: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    gone: list[str] = []
    notes: list[str] = []
    for table, per_trace in table_curves.items():
        empty = [label for label, (_, mr) in per_trace.items() if _no_access(mr)]
        live = {label: c for label, c in per_trace.items() if label not in empty}
        if live:
            kept[table] = live
        if empty and not live:
            gone.append(table)
        elif empty:
            notes.append(f"{table}: no accesses in {', '.join(empty)}")
    return kept, _no_access_note(gone) + notes


def _no_access_note(tables: list[str], most: int = 6) -> list[str]:
    """``["t1: no accesses"]``, ``["t1, t2: no accesses"]``, ... (at most ``most`` names, then a count)."""
    if not tables:
        return []
    shown = ", ".join(tables[:most]) + (f" and {len(tables) - most} more" if len(tables) > most else "")
    return [f"{shown}: no accesses"]


def mrc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], lines_per_byte: float | None,
        table_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
        title: str = "") -> str:
    """Miss-ratio curves: shared cache (x in MiB, top axis in 64-byte lines) and per table (rows).

    ``curves`` maps a trace label to ``(sizes in bytes, miss ratio)`` of the shared cache (with
    ``lines_per_byte`` the top axis shows 64-byte lines); ``table_curves`` maps a table name to such a dict
    in rows. Traces differ by line style (solid, dashed, ...), tables by colour. Tables without accesses
    are left out and named in the per-table panel's title (:func:`table_curves_drawn`).
    """
    plt = _pyplot()
    notes: list[str] = []
    if table_curves:
        table_curves, notes = table_curves_drawn(table_curves)
        table_curves = table_curves or {}
    n = 2 if table_curves or notes else 1
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 4.5), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    for i, (label, (sizes, mr)) in enumerate(curves.items()):
        ax.plot(np.asarray(sizes) / MiB, mr, linestyle=_STYLES[i % len(_STYLES)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("LRU cache size (MiB of whole rows)")
    ax.set_ylabel("miss ratio (fraction of accesses)")
    ax.set_ylim(0, 1.02)
    ax.set_title("One cache shared by all tables")
    if lines_per_byte:
        def to_lines(x):
            return np.asarray(x) * MiB * lines_per_byte

        def to_mib(x):
            return np.asarray(x) / lines_per_byte / MiB

        top = ax.secondary_xaxis("top", functions=(to_lines, to_mib))
        top.set_xlabel("cache size (64-byte lines; rows start on a line)")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    if n == 2:
        ax2 = axes[0, 1]
        for k, (table, per_trace) in enumerate(table_curves.items()):
            for i, (label, (sizes, mr)) in enumerate(per_trace.items()):
                ax2.plot(sizes, mr, color=f"C{k % 10}", linestyle=_STYLES[i % len(_STYLES)],
                         label=f"{table} ({label})" if len(per_trace) > 1 else table)
        ax2.set_xscale("log")
        ax2.set_xlabel("LRU cache size (rows)")
        ax2.set_ylabel("miss ratio (fraction of accesses)")
        ax2.set_ylim(0, 1.02)
        ax2.set_title("One cache per table (most-accessed tables)" + ("\n(not drawn: " + "; ".join(notes) + ")"
                                                                 if notes else ""))
        if table_curves:
            ax2.legend(fontsize="small")
        ax2.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def sd_cdf(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> str:
    """Stack-distance CDFs, x log (rows)."""
    plt = _pyplot()
    fig, ax = plt.subplots(layout="constrained", figsize=(6.5, 4.5))
    for i, (label, (d, f)) in enumerate(curves.items()):
        ax.plot(np.asarray(d) + 1, f, linestyle=_STYLES[i % len(_STYLES)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("stack distance + 1 (rows)")
    ax.set_ylabel("share of accesses with distance <= x - 1")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Stack-distance CDF (cold accesses never count)")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def rank_frequency(path: Path, counts: dict[str, np.ndarray], title: str = "") -> str:
    """Access count of each row against its popularity rank, log-log."""
    plt = _pyplot()
    fig, ax = plt.subplots(layout="constrained", figsize=(6.5, 4.5))
    for i, (label, c) in enumerate(counts.items()):
        c = np.sort(np.asarray(c))[::-1]
        if c.size:
            # ~400 log-spaced ranks draw the same curve as millions of points, much faster
            r = np.unique(np.geomspace(1, c.size, 400).round().astype(np.int64))
            ax.plot(r, c[r - 1], linestyle=_STYLES[i % len(_STYLES)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("popularity rank (rows, 1 = most accessed)")
    ax.set_ylabel("accesses (count)")
    ax.set_title(title or "Rank-frequency")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def footprint_over_time(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], row_bytes: int | None,
                        title: str = "") -> str:
    """Distinct rows touched (and their bytes, right axis) against accesses so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(layout="constrained", figsize=(6.5, 4.5))
    for i, (label, (n, distinct)) in enumerate(curves.items()):
        ax.plot(n, distinct, linestyle=_STYLES[i % len(_STYLES)], label=label)
    ax.set_xlabel("accesses so far (count)")
    ax.set_ylabel("distinct rows touched (rows)")
    if row_bytes:
        right = ax.secondary_yaxis("right", functions=(lambda r: np.asarray(r) * row_bytes / MiB,
                                                       lambda m: np.asarray(m) * MiB / row_bytes))
        right.set_ylabel(f"footprint (MiB at {row_bytes} B per row)")
    ax.set_title(title or "Footprint over time (all tables)")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def bar_tables_drawn(names: Sequence[str], series: dict[str, Sequence[float]]
                     ) -> tuple[list[str], dict[str, list[float]], list[str]]:
    """The tables and bar heights :func:`table_bars` draws, and notes on those left out.

    ``series``: the first is the reference (allocated bytes), each other one measured on a trace (bytes
    touched): 0 there means the table had no accesses in that trace. Such a table is left out when no
    trace touched it (noted ``"t1: no accesses"``); when only some did, the zero bars are not drawn
    (``"t1: no accesses in touched (synth)"``). Zero heights become NaN: a log axis has no 0, and a bar
    at a tiny floor would read as a real figure.
    """
    labels = list(series)
    vals = {lab: np.asarray(series[lab], dtype=np.float64) for lab in labels}
    measured = labels[1:]
    keep, gone, notes = [], [], []
    for j, name in enumerate(names):
        zero = [lab for lab in measured if not vals[lab][j] > 0]
        if measured and len(zero) == len(measured):
            gone.append(name)
            continue
        if zero:
            notes.append(f"{name}: no accesses in {', '.join(zero)}")
        keep.append(j)
    out = {lab: [float(v) if v > 0 else float("nan") for v in vals[lab][keep]] for lab in labels}
    return [names[j] for j in keep], out, _no_access_note(gone) + notes


def table_bars(path: Path, names: Sequence[str], series: dict[str, Sequence[float]], ylabel: str,
               title: str) -> str:
    """Grouped bars per table, log y (bytes); tables without accesses are left out and named in the title
    (:func:`bar_tables_drawn`)."""
    plt = _pyplot()
    names, series, notes = bar_tables_drawn(names, series)
    if notes:
        title = f"{title}\n(not drawn: {'; '.join(notes)})"
    fig, ax = plt.subplots(figsize=(min(max(6.5, 0.12 * len(names) * len(series) + 2), 14.0), 4.5),
                           layout="constrained")
    x = np.arange(len(names))
    w = 0.8 / max(len(series), 1)
    lo = np.inf
    for i, (label, vals) in enumerate(series.items()):
        v = np.asarray(vals, dtype=np.float64) / MiB
        lo = min(lo, float(np.nanmin(v))) if np.any(np.isfinite(v)) else lo
        ax.bar(x + (i - (len(series) - 1) / 2) * w, v, w, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90 if len(names) > 8 else 0, fontsize="small")
    ax.set_yscale("log")
    if np.isfinite(lo):
        ax.set_ylim(bottom=lo / 10)  # log bars need a floor well below the smallest bar
    ax.set_xlabel("table")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", which="major", alpha=0.3)
    return _save(fig, path)


def bandwidth_bars(path: Path, modelled: dict[str, dict[str, float]], measured: dict[str, float] | None,
                   copy_gbs: float | None, title: str = "") -> str:
    """Left: modelled MiB per batch by term (stacked) per scenario; right: measured GB/s against copy."""
    plt = _pyplot()
    n = 2 if measured else 1
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 4.8), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    scen = list(modelled)
    terms = [k for k in next(iter(modelled.values())) if k != "total"] if modelled else []
    bottom = np.zeros(len(scen))
    for term in terms:
        v = np.array([modelled[s].get(term, 0.0) for s in scen]) / MiB
        if v.any():
            ax.bar(scen, v, bottom=bottom, label=term)
            bottom += v
    ax.set_ylabel("modelled traffic per batch (MiB)")
    ax.set_xlabel("scenario")
    ax.set_title("Modelled bytes per batch")
    ax.tick_params(axis="x", labelrotation=20, labelsize="small")
    ax.legend(fontsize="x-small")
    if measured:
        ax2 = axes[0, 1]
        names = list(measured)
        ax2.bar(names, [measured[k] for k in names], color="tab:green", label="embedding bag fwd+bwd+step")
        if copy_gbs:
            ax2.axhline(copy_gbs, color="tab:red", linestyle="--", label=f"copy {copy_gbs:.1f} GB/s")
        ax2.set_ylabel("achieved bandwidth (GB/s, modelled bytes / time)")
        ax2.set_xlabel("ids")
        ax2.set_title("Measured on this machine")
        ax2.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
