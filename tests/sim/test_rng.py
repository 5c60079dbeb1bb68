"""fieldlearn.sim.rng: named streams and keys of a run's seed."""
from __future__ import annotations

from fieldlearn.sim.rng import key, stream


def test_streams_are_independent_and_reproducible():
    assert stream(1, "a").random() == stream(1, "a").random()
    assert stream(1, "a").random() != stream(1, "b").random() != stream(2, "a").random()


def test_keys_differ_by_use_and_seed():
    assert key(3, "mobility/0") == key(3, "mobility/0")
    assert len({key(3, "mobility/0"), key(3, "mobility/1"), key(4, "mobility/0")}) == 3
    assert 0 <= key(3, "x") < 2**64
