"""The fidelity benchmark's baselines (benchmarks/baselines.py), e.g. i.i.d. stack distances."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from tracegen.locality import dense_keys, sd_histogram, stack_distances
from tracegen.synth import zipf_ids

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import baselines  # noqa: E402


def test_iid_stack_distances_keeps_the_sd_law():
    real = zipf_ids(30_000, 2_000, 0.9, seed=1)
    synth = baselines.iid_stack_distances(real, 30_000, seed=2)
    assert synth.shape == (30_000,) and dense_keys(synth)[1] <= dense_keys(real)[1]
    ca, cb = sd_histogram(stack_distances(real))[0], sd_histogram(stack_distances(synth))[0]
    n = 30_000
    # the LRU miss ratio at a few sizes (a CDF of the sd law) agrees within sampling noise
    for c in (1, 10, 100, 1000):
        ma = (n - ca[:c].sum()) / n
        mb = (n - cb[:c].sum()) / n
        assert abs(ma - mb) < 0.02
    # and, as the issue says, it destroys popularity: the top id's share collapses
    top = lambda x: np.bincount(dense_keys(x)[0]).max() / x.size  # noqa: E731
    assert top(synth) < 0.5 * top(real)


def test_uniform_baseline():
    real = np.array([5, 9, 9, 1000, 5], np.int64)
    u = baselines.uniform_ids(real, 1000, seed=0)
    assert u.min() >= 0 and u.max() < 3
