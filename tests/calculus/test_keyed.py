"""fieldlearn.calculus.keyed: the one counter-based hash (splitmix64) of the package."""
from __future__ import annotations

import numpy as np

from fieldlearn.calculus.keyed import keyed_seed, keyed_uniform


def reference(seed, *keys):
    """splitmix64 over the seed and keys, written plainly (the in-place implementation must match it bit for bit)."""
    golden, m1, m2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)

    def mix(z):
        z = (z ^ (z >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
        return z ^ (z >> np.uint64(31))

    arrays = [np.asarray(k).astype(np.int64).view(np.uint64) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    with np.errstate(over="ignore"):
        h = mix(np.full(shape, np.uint64(seed % 2**64), dtype=np.uint64) + golden)
        for a in arrays:
            h = mix(h ^ (a + golden))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def test_a_draw_depends_only_on_its_own_keys():
    a = keyed_uniform(3, np.arange(1000), 7)
    assert np.array_equal(a, keyed_uniform(3, np.arange(1000), 7))
    assert not np.array_equal(a, keyed_uniform(4, np.arange(1000), 7))
    assert keyed_uniform(3, np.arange(1000)[5:6], 7)[0] == a[5]  # independent of the other keys
    assert a.min() >= 0 and a.max() < 1
    hist = np.histogram(keyed_uniform(1, np.arange(100_000)), bins=10, range=(0, 1))[0]
    assert hist.min() > 9_500


def test_it_matches_the_plain_splitmix64():
    ids = np.arange(-50, 950)
    for seed, keys in [(3, (ids,)), (2**64 - 1, (ids, 5, 0)), (-1, (ids, np.arange(1000) % 7, -1, 3)), (0, (4, 2)),
                       (9, (np.arange(6).reshape(2, 3), 1)), (5, ())]:
        got, want = keyed_uniform(seed, *keys), reference(seed, *keys)
        assert got.shape == want.shape and np.array_equal(got, want)


def test_seeds_for_generators():
    assert keyed_seed(0, 1, 11, 3) == keyed_seed(0, 1, 11, 3) != keyed_seed(0, 1, 11, 4)
    assert 0 <= keyed_seed(7, 2**62) < 2**62
