import numpy as np
import pytest

from tests import naive
from tracegen.locality import miss_ratio_curve, sd_histogram, stack_distances


@pytest.mark.parametrize("ids", [[], [7], [3, 3, 3, 3], list(range(20)), [1, 2, 3, 1, 2, 3, 3, 2, 1, 9]])
def test_stack_distances_small(ids):
    np.testing.assert_array_equal(stack_distances(np.array(ids, dtype=np.int64)), naive.stack_distances(ids))


def test_stack_distances_random(rng):
    ids = rng.zipf(1.3, 3000) % 200 + 10**12
    np.testing.assert_array_equal(stack_distances(ids), naive.stack_distances(ids.tolist()))


def test_mrc_equals_lru_simulation(rng):
    ids = rng.integers(0, 60, 2000)
    counts, cold = sd_histogram(stack_distances(ids))
    sizes, mr = miss_ratio_curve(counts, cold, [0, 1, 5, 17, 40, 1000])
    assert mr.tolist() == [naive.lru_miss_ratio(ids, int(c)) for c in sizes]


def test_group_support_counts_each_bag_once(rng):
    from tracegen import _kernels

    lengths = rng.integers(0, 6, 300)
    keys = rng.integers(0, 40, int(lengths.sum()))  # bags repeat keys often
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    got = _kernels._group_support(keys.astype(np.int64), starts, 40)
    assert got.tolist() == naive.group_support(keys, lengths, 40)
    assert got.sum() < keys.shape[0]  # repeats within a bag were counted once
