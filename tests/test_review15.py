"""Review of the day's changes (release/lean sampling, dense shared stream, stratified budgets, calibrate_global)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_privacy import _recency_stream


def _deeper_target_case():
    """A node whose classes all draw one law with 0.2 of its mass at depth 0, a twin of it, and a target law of
    depths >= 1 twice as deep as the twin realises (so part of it lies beyond the twin's deepest reuse)."""
    from tracegen.locality import stack_distances
    from tracegen.tracemodel import ClassStackSampler, _sd_grid, _time_bins, _without_phases, fit_class_stack

    ids = _recency_stream()
    n, u = ids.shape[0], 4_000
    lengths = np.ones(n, np.int64)
    node = _without_phases(fit_class_stack(ids, lengths))
    node.pop("repeat", None)
    grid = _sd_grid(u, 16)
    g = grid.shape[0]
    law = {"kind": "empirical-binned", "edges": [int(x) for x in grid], "probs": [0.2] + [0.8 / (g - 2)] * (g - 2)}
    node = {**node, "classes": [{**cl, "sd": law} for cl in node["classes"]]}
    # the realised law of calibrate_global's first twin (its seed), every depth doubled
    smp = ClassStackSampler(node, u, np.random.SeedSequence([1, 77, 0]))
    sd = stack_distances(smp.next(n, _time_bins(lengths, int(node["n_time_bins"]))))
    warm = np.sort(sd[sd >= 1])
    real = np.searchsorted(warm, grid, side="left") / warm.shape[0]
    target = np.interp(grid / 2.0, grid, real)
    return node, lengths, u, grid, target, law


def test_calibrate_global_keeps_the_mass_below_lo_when_the_target_reaches_past_the_twin():
    """``calibrate_global`` (lo = 1) promises each class keeps its mass below ``lo`` (the immediate repeats, which
    the repeat rates own). When the target has mass deeper than the twin's deepest reuse (here 6% of it), the
    mapped CDF stops short of 1 at the class's last edge and the renormalisation spreads the missing deep mass
    over every bin, depth 0 included: 0.2 -> 0.21 (the opposite direction of what the target asks)."""
    from tracegen.tracemodel import calibrate_global

    node, lengths, u, grid, target, law = _deeper_target_case()
    assert target[-1] < 0.95  # (the premise: the target reaches well past the twin's deepest reuse)
    out = calibrate_global(node, lengths, u, grid, target, iters=1, lo=1)
    changed = [cl for cl in out["classes"] if cl["sd"]["probs"] != law["probs"]]
    assert changed  # (the calibration moved the laws deeper)
    for cl in changed:
        p = np.asarray(cl["sd"]["probs"])
        assert p.sum() == pytest.approx(1.0)
        assert p[0] == pytest.approx(0.2, abs=1e-9)  # the mass below lo stays (got 0.2105)


def test_release_drops_the_block_buffers_of_the_separate_kernel_path(monkeypatch):
    """``ClassStackSampler.release`` says it drops the block buffers; on the separate-kernel path
    (``FUSED = False``, the benchmark's baseline) its five uniform streams' buffers (``_buf``) are kept."""
    from tests.test_sample_kernels import _deep_node
    from tracegen.tracemodel import ClassStackSampler

    monkeypatch.setattr(ClassStackSampler, "FUSED", False)
    node = _deep_node()
    n = 50_000
    tb = (np.arange(n) * 2) // n
    s = ClassStackSampler(node, 100_000, np.random.SeedSequence(7))
    a = s.next(20_000, tb[:20_000])
    s.release()
    assert getattr(s, "_buf", None) is None
    b = s.next(30_000, tb[20_000:])  # and it samples on, unchanged
    ref = ClassStackSampler(node, 100_000, np.random.SeedSequence(7)).next(n, tb)
    assert np.array_equal(np.concatenate([a, b]), ref)


def test_calibrate_global_refuses_target_rows_that_do_not_match_the_node_phases():
    """Several target rows for a node that draws one law per class (or one row for a per-phase node) is a
    caller's mistake: calibrating the whole-trace laws against one phase's law would be silently wrong."""
    from tracegen.tracemodel import calibrate_global

    node, lengths, u, grid, target, _ = _deeper_target_case()
    with pytest.raises(ValueError, match="target rows"):
        calibrate_global(node, lengths, u, grid, np.stack([target, target, target]), iters=1)
