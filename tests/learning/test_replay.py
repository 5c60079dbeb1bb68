"""Replay memories: what each policy keeps, its bound, class balance, and independence from batching."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fieldlearn.learning.data import IndexSets
from fieldlearn.learning.replay import (
    ReplayMemory,
    ReplayPolicy,
    ReplayStore,
    class_balanced,
    fraction,
    parse_policy,
    reservoir,
    unbounded,
)
from fieldlearn.learning.samples import pad_sets, unpad


def sets_of(*lists):
    return IndexSets.from_lists([np.asarray(r, dtype=np.int64) for r in lists])

def sets(*rows) -> IndexSets:
    return IndexSets.from_lists([np.asarray(r, dtype=np.int64) for r in rows])


def test_unbounded_keeps_the_union_of_everything_added():
    mem = ReplayMemory(3, unbounded())
    mem.add([0, 2], sets([5, 1, 3], [9]))
    mem.add([0], sets([3, 4]))
    assert mem.indices(0).tolist() == [1, 3, 4, 5]
    assert mem.indices(1).tolist() == []
    assert mem.indices(2).tolist() == [9]
    assert mem.sizes().tolist() == [4, 0, 1]
    merged = mem.union_with(sets([4, 8], [0], []))
    assert [r.tolist() for r in merged.to_lists()] == [[1, 3, 4, 5, 8], [0], [9]]
    assert mem.csr().equals(IndexSets.from_lists([[1, 3, 4, 5], [], [9]]))


def test_fraction_keeps_a_fixed_share_of_each_added_set():
    mem = ReplayMemory(2, fraction(0.05))
    first, second = np.arange(0, 200), np.arange(1000, 1030)
    mem.add([1], sets(first))
    assert mem.sizes().tolist() == [0, 10]
    assert set(mem.indices(1)) <= set(first)
    mem.add([1], sets(second))
    assert mem.sizes()[1] == 10 + math.ceil(0.05 * 30)
    assert np.count_nonzero(mem.indices(1) >= 1000) == 2


@pytest.mark.parametrize("policy", [reservoir(25), class_balanced(25)])
def test_bounded_memories_never_exceed_their_capacity(policy):
    labels = np.arange(5000) % 7
    mem = ReplayMemory(4, policy, labels=labels, seed=3)
    seen = [set() for _ in range(4)]
    rng = np.random.default_rng(0)
    for step in range(12):
        rows = [rng.choice(5000, size=rng.integers(0, 40), replace=False) for _ in range(4)]
        mem.add(np.arange(4), IndexSets.from_lists(rows))
        for d in range(4):
            seen[d] |= set(rows[d].tolist())
            assert mem.sizes()[d] == min(25, len(seen[d]))
            assert set(mem.indices(d).tolist()) <= seen[d]


def test_reservoir_is_a_uniform_sample_of_the_stream():
    # 4,000 devices each see 0..99 in two adds; each sample should be kept with probability 10/100
    n = 4000
    mem = ReplayMemory(n, reservoir(10), seed=1)
    mem.add(np.arange(n), IndexSets.from_lists([np.arange(0, 30)] * n))
    mem.add(np.arange(n), IndexSets.from_lists([np.arange(30, 100)] * n))
    assert (mem.sizes() == 10).all()
    frequency = np.bincount(mem.csr().indices, minlength=100) / n
    assert abs(frequency[:30].mean() - 0.1) < 0.01 and abs(frequency[30:].mean() - 0.1) < 0.01
    assert frequency.min() > 0.07 and frequency.max() < 0.13


def test_class_balanced_shares_capacity_equally_and_evicts_from_the_largest_class():
    labels = np.repeat(np.arange(3), 100)  # class c = samples 100c .. 100c+99
    mem = ReplayMemory(1, class_balanced(30), labels=labels, seed=0)
    mem.add([0], sets(np.arange(0, 100)))  # only class 0 so far: it may fill the memory
    assert np.bincount(labels[mem.indices(0)], minlength=3).tolist() == [30, 0, 0]
    mem.add([0], sets(np.arange(100, 104)))  # 4 of class 1: kept in full, class 0 gives way
    assert np.bincount(labels[mem.indices(0)], minlength=3).tolist() == [26, 4, 0]
    mem.add([0], sets(np.arange(200, 300)))  # class 2 arrives in bulk: equal shares among the large classes
    counts = np.bincount(labels[mem.indices(0)], minlength=3)
    assert counts.sum() == 30 and counts[1] == 4 and sorted(counts[[0, 2]].tolist()) == [13, 13]
    mem.add([0], sets(np.arange(104, 200)))  # class 1 grows: now all three share equally
    assert np.bincount(labels[mem.indices(0)], minlength=3).tolist() == [10, 10, 10]


def test_class_balanced_split_with_remainder_differs_by_at_most_one():
    labels = np.arange(1000) % 4
    mem = ReplayMemory(2, class_balanced(10), labels=labels, seed=5)
    mem.add([0, 1], IndexSets.from_lists([np.arange(1000), np.arange(0, 1000, 2)]))  # device 1 sees classes 0, 2
    c0 = np.bincount(labels[mem.indices(0)], minlength=4)
    c1 = np.bincount(labels[mem.indices(1)], minlength=4)
    assert c0.sum() == 10 and c0.max() - c0.min() <= 1
    assert c1.tolist() == [5, 0, 5, 0]


@pytest.mark.parametrize("policy", [fraction(0.3), reservoir(7), class_balanced(7)])
def test_memories_do_not_depend_on_how_devices_are_batched(policy):
    labels = np.arange(500) % 5
    rng = np.random.default_rng(2)
    rounds = [[rng.choice(500, size=20, replace=False) for _ in range(3)] for _ in range(4)]
    together = ReplayMemory(3, policy, labels=labels, seed=8)
    apart = ReplayMemory(3, policy, labels=labels, seed=8)
    for rows in rounds:
        together.add([0, 1, 2], IndexSets.from_lists(rows))
        for d in (2, 0, 1):
            apart.add([d], IndexSets.from_lists([rows[d]]))
    assert together.csr().equals(apart.csr())


def test_memories_are_private_and_copies_independent():
    mem = ReplayMemory(3, unbounded())
    mem.add([1], sets([4, 5]))
    other = mem.copy()
    other.add([0], sets([7]))
    assert mem.sizes().tolist() == [0, 2, 0] and other.sizes().tolist() == [1, 2, 0]
    mem.clear([1])
    assert mem.sizes().tolist() == [0, 0, 0] and other.sizes().tolist() == [1, 2, 0]


def test_policy_parsing_and_errors():
    assert parse_policy("unbounded") == unbounded()
    assert parse_policy("fraction:0.05") == fraction(0.05)
    assert parse_policy("reservoir:500") == reservoir(500)
    assert parse_policy("class_balanced:50") == class_balanced(50)
    assert parse_policy(None) is None and parse_policy("none") is None
    with pytest.raises(ValueError, match="expected"):
        parse_policy("fifo:3")
    with pytest.raises(ValueError, match="share"):
        fraction(1.5)
    with pytest.raises(ValueError, match="unknown kind"):
        ReplayPolicy("lru")
    with pytest.raises(ValueError, match="labels"):
        ReplayMemory(2, class_balanced(5))
    mem = ReplayMemory(2, unbounded())
    with pytest.raises(ValueError, match="twice"):
        mem.add([0, 0], sets([1], [2]))
    with pytest.raises(ValueError, match="index sets"):
        mem.add([0], sets([1], [2]))
    with pytest.raises(ValueError, match="rows"):
        mem.union_with(sets([1]))


def test_replay_store_moves_the_whole_stay_into_memory_on_a_move_and_keeps_nothing_for_disabled_devices():
    store = ReplayStore(3, "unbounded")
    ids = np.array([0, 1, 2])
    no, yes = np.zeros(3, bool), np.ones(3, bool)
    enabled = np.array([True, True, False])
    mem = store.update(ids, pad_sets(sets_of([1, 2], [10], [20])), no, yes, enabled)  # first round: fresh
    assert unpad(mem).equals(IndexSets.empty(3))
    mem = store.update(ids, pad_sets(sets_of([2, 3], [11], [21])), no, no, enabled)
    assert unpad(mem).equals(IndexSets.empty(3))  # nothing enters until the device moves
    moved = np.array([True, False, True])
    mem = store.update(ids, pad_sets(sets_of([50], [12], [22])), moved, no, enabled)
    assert [r.tolist() for r in unpad(mem).to_lists()] == [[1, 2, 3], [], []]
    mem = store.update(ids, pad_sets(sets_of([51], [13], [23])), np.array([True, True, True]), no, enabled)
    # what a device sees in the round it arrives belongs to its new region
    assert [r.tolist() for r in unpad(mem).to_lists()] == [[1, 2, 3, 50], [10, 11, 12], []]
    # a device that restarts (fresh) forgets its memory and its stay
    mem = store.update(ids, pad_sets(sets_of([60], [], [])), no, np.array([True, False, False]), enabled)
    assert unpad(mem).to_lists()[0].tolist() == []
    mem = store.update(ids, pad_sets(sets_of([61], [], [])), np.array([True, False, False]), no, enabled)
    assert unpad(mem).to_lists()[0].tolist() == [60]


@pytest.mark.parametrize("policy, bound", [("reservoir:5", 5), ("class_balanced:6", 6), ("fraction:0.5", None)])
def test_replay_store_keeps_the_policy_bound(policy, bound):
    labels = np.arange(200) % 3
    store = ReplayStore(2, policy, labels=labels, seed=1)
    ids = np.array([0, 1])
    store.update(ids, pad_sets(sets_of([], [])), np.zeros(2, bool), np.ones(2, bool))
    for k in range(4):
        stay = sets_of(np.arange(40 * k, 40 * k + 20), np.arange(40 * k + 20, 40 * k + 40))
        store.update(ids, pad_sets(stay), np.zeros(2, bool), np.zeros(2, bool))
        mem = unpad(store.update(ids, pad_sets(sets_of([], [])), np.ones(2, bool), np.zeros(2, bool)))
        sizes = mem.lengths()
        if bound is not None:
            assert sizes.max() <= bound
            if policy.startswith("class_balanced"):
                counts = np.bincount(labels[mem.row(0)], minlength=3)
                assert counts.max() - counts.min() <= 1
        else:
            assert sizes.tolist() == [10 * (k + 1), 10 * (k + 1)]  # half of each 20-sample stay
