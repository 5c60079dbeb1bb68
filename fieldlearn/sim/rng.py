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
    """The splitmix64 finaliser, in place on `z` (a uint64 array the caller owns), which it returns."""
    t = np.right_shift(z, np.uint64(30))
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M1, out=z)
    np.right_shift(z, np.uint64(27), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M2, out=z)
    np.right_shift(z, np.uint64(31), out=t)
    np.bitwise_xor(z, t, out=z)
    return z


def counter_uniform(k: int, *counters: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast element of the integer counters (splitmix64 of key and counters).

    The value for (key, device, leg, ...) is fixed, whatever order or batch it is asked in: mobility stays the
    same when export intervals or event orders change.
    """
    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.int64) for c in counters])
    h = np.full(arrays[0].shape if arrays else (), np.uint64(k), dtype=np.uint64)
    h = np.atleast_1d(h) if h.ndim == 0 else h
    c64 = np.empty_like(h)
    with np.errstate(over="ignore"):
        for c in arrays:
            np.copyto(c64, c, casting="unsafe")  # int64 -> uint64, two's complement as astype
            np.add(c64, np.uint64(1), out=c64)
            np.multiply(c64, _GOLDEN, out=c64)
            np.add(h, c64, out=h)
            _mix(h)
        _mix(h)
    np.right_shift(h, np.uint64(11), out=h)
    out = h.astype(np.float64)
    np.multiply(out, 1.0 / (1 << 53), out=out)
    return out if arrays and arrays[0].ndim else out.reshape(arrays[0].shape if arrays else ())
