"""fieldlearn.sim.rng: named streams and counter-based uniforms."""
from __future__ import annotations

import numpy as np

from fieldlearn.sim.rng import counter_uniform, key, stream


def test_streams_are_independent_and_reproducible():
    assert stream(1, "a").random() == stream(1, "a").random()
    assert stream(1, "a").random() != stream(1, "b").random() != stream(2, "a").random()


def test_counter_uniform_depends_only_on_its_counters():
    k = key(3, "mobility/0")
    ids = np.arange(1000)
    u = counter_uniform(k, ids, 5, 0)
    assert np.array_equal(u[[7, 3]], counter_uniform(k, np.array([7, 3]), 5, 0))
    assert not np.array_equal(u, counter_uniform(k, ids, 6, 0))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.03
    big = counter_uniform(k, np.arange(100_000))
    hist = np.histogram(big, bins=10, range=(0, 1))[0]
    assert hist.min() > 9_500
