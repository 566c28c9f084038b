import numpy as np
import pytest

from tracegen import Table, Trace, TracegenError


def small_trace():
    t0 = Table.one_hot("C1", np.array([0, 1, 0, 2]), 3)
    t1 = Table.from_lengths("C2", np.array([5, 6, 7, 5, 1]), np.array([2, 0, 1, 2]), 8)
    return Trace([t0, t1], dense=np.zeros((4, 13), np.float32), labels=np.array([0, 1, 1, 0], np.int32))


def test_shapes():
    tr = small_trace().validate()
    assert tr.n_samples == 4 and tr.n_tables == 2 and tr.n_accesses == 9
    assert tr.table("C2").lengths.tolist() == [2, 0, 1, 2]
    assert not tr.is_one_hot and tr.select(["C1"]).is_one_hot
    np.testing.assert_array_equal(tr.select([0]).to_dense_ids()[:, 0], [0, 1, 0, 2])


def test_slice_keeps_bags():
    s = small_trace().slice(1, 4)
    assert s.n_samples == 3
    assert s.table("C2").values.tolist() == [7, 5, 1]
    assert s.table("C2").offsets.tolist() == [0, 0, 1, 3]
    s.validate()


@pytest.mark.parametrize("mutate, message", [
    (lambda t: setattr(t.tables[0], "values", np.array([0, 1, -1, 2])), "negative id -1"),
    (lambda t: setattr(t.tables[0], "values", np.array([0, 1, 3, 2])), ">= cardinality 3"),
    (lambda t: setattr(t.tables[0], "values", np.array([0.0, 1, 0, 2])), "ids must be integers"),
    (lambda t: setattr(t.tables[1], "offsets", np.array([0, 3, 2, 3, 5])), "offsets decrease at sample 1"),
    (lambda t: setattr(t.tables[1], "offsets", np.array([0, 2, 2, 3, 4])), "offsets[-1] is 4"),
    (lambda t: setattr(t.tables[1], "name", "C1"), "duplicate table names"),
    (lambda t: setattr(t, "labels", np.zeros(3)), "labels have shape"),
    (lambda t: t.tables.append(Table.one_hot("C3", np.array([0, 1]), 2)), "has 2 samples"),
])
def test_validate_errors(mutate, message):
    tr = small_trace()
    mutate(tr)
    with pytest.raises(TracegenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tr.validate("x.npz")


def test_empty_trace_rejected():
    with pytest.raises(TracegenError, match="empty"):
        Trace([Table.one_hot("a", np.array([], np.int64), 1)]).validate()


def test_dense_ids_error_names_multi_hot_and_empty_tables_apart():
    t0 = Table.one_hot("C1", np.array([0, 1, 0, 2]), 3)
    multi = Table.from_lengths("C2", np.array([5, 6, 7, 5, 1]), np.array([2, 0, 1, 2]), 8)
    empty = Table.from_lengths("C3", np.array([], np.int64), np.zeros(4, np.int64), 1)
    with pytest.raises(TracegenError, match=r"^table C2 is multi-hot and table C3 has samples with no id; X_cat"):
        Trace([t0, multi, empty]).to_dense_ids()
    with pytest.raises(TracegenError, match=r"^table C3 has samples with no id; X_cat"):
        Trace([t0, empty]).to_dense_ids()
    assert Trace([t0]).to_dense_ids()[:, 0].tolist() == [0, 1, 0, 2]
