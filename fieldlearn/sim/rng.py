"""Seeded randomness: named numpy Generator streams, and counter-based uniforms that ignore call order."""
from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent Generator for one use (`name`) of the scenario seed: adding a use never shifts another."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def key(seed: int, name: str) -> int:
    """A 64-bit key for `counter_uniform`, derived from the seed and a use name."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1, np.uint64)[0])


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def counter_uniform(k: int, *counters: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast element of the integer counters (splitmix64 of key and counters).

    The value for (key, device, leg, ...) is fixed, whatever order or batch it is asked in: mobility stays the
    same when export intervals or event orders change.
    """
    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.int64) for c in counters])
    h = np.full(arrays[0].shape if arrays else (), np.uint64(k), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in arrays:
            h = _mix(h + _GOLDEN * (c.astype(np.uint64) + np.uint64(1)))
        h = _mix(h)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
