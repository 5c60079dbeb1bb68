"""fieldlearn.learning.samples: sample fields as padded rows, and the one keyed per-round draw."""
from __future__ import annotations

import numpy as np

from fieldlearn.learning.data import IndexSets
from fieldlearn.learning.samples import draw_per_device, pad_sets, unpad


def rows(*lists):
    return IndexSets.from_lists([np.asarray(r, dtype=np.int64) for r in lists])


def test_pad_and_unpad_round_trip_including_empty_rows():
    sets = rows([5, 1, 9], [], [7])
    padded = pad_sets(sets)
    assert padded.tolist() == [[5, 1, 9], [-1, -1, -1], [7, -1, -1]]
    back = unpad(padded)
    assert back.equals(sets)
    empty = pad_sets(IndexSets.empty(2))
    assert tuple(empty.shape) == (2, 0) and unpad(empty).equals(IndexSets.empty(2))


def test_a_device_draws_the_same_samples_in_any_batch_and_other_ones_next_round():
    sets = rows(np.arange(100), np.arange(100, 150), np.arange(3))
    devices = np.array([7, 8, 9])
    together = draw_per_device(sets, 10, devices, seed=1, salt=21, counter=4)
    alone = draw_per_device(sets.take([1]), 10, devices[[1]], seed=1, salt=21, counter=4)
    assert together.lengths().tolist() == [10, 10, 3] and together.row(1).tolist() == alone.row(0).tolist()
    assert set(together.row(0)) <= set(range(100))
    later = draw_per_device(sets, 10, devices, seed=1, salt=21, counter=5)
    assert together.row(0).tolist() != later.row(0).tolist()
