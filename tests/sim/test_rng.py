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


def reference_counter_uniform(k, *counters):
    """splitmix64 over the key and counters, written plainly (the in-place implementation must match it bit for bit)."""
    golden, m1, m2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)

    def mix(z):
        z = (z ^ (z >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
        return z ^ (z >> np.uint64(31))

    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.int64) for c in counters])
    h = np.full(arrays[0].shape, np.uint64(k), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in arrays:
            h = mix(h + golden * (c.astype(np.uint64) + np.uint64(1)))
        h = mix(h)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def test_counter_uniform_matches_the_plain_splitmix64():
    k = key(3, "mobility/0")
    ids = np.arange(-50, 950)
    for counters in [(ids,), (ids, 5, 0), (ids, np.arange(1000) % 7, -1, 3), (4, 2), (np.arange(6).reshape(2, 3), 1)]:
        got, want = counter_uniform(k, *counters), reference_counter_uniform(k, *counters)
        assert got.shape == want.shape and np.array_equal(got, want)
