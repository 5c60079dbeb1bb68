"""Counter-based random numbers: a uniform in [0, 1) hashed (splitmix64) from a seed and integer counters.

The value for (seed, device, round, sample, ...) is fixed whatever order, batch or process asks for it, so draws
made per device inside a batched round equal the same draws made one device at a time. This is the one such hash
of the package: the simulator (mobility, placements) and the learning layer (sample draws, replay) both use it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["keyed_uniform", "keyed_seed"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray, t: np.ndarray) -> None:
    """The splitmix64 finaliser, in place on `z` (uint64), using `t` (same shape) as scratch."""
    np.right_shift(z, np.uint64(30), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M1, out=z)
    np.right_shift(z, np.uint64(27), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _M2, out=z)
    np.right_shift(z, np.uint64(31), out=t)
    np.bitwise_xor(z, t, out=z)


def keyed_uniform(seed: int, *keys: object) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast element of the integer `keys` (arrays or ints): the same keys
    give the same draw, independently of the other elements asked for with them."""
    arrays = [np.asarray(k).astype(np.int64, copy=False).view(np.uint64) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    h = np.full(shape, np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    t = np.empty_like(h)
    with np.errstate(over="ignore"):
        np.add(h, _GOLDEN, out=h)
        _mix(h, t)
        for a in arrays:
            np.add(a, _GOLDEN, out=t)
            np.bitwise_xor(h, t, out=h)
            _mix(h, t)
    np.right_shift(h, np.uint64(11), out=h)
    out = h.astype(np.float64)
    np.multiply(out, 1.0 / 9007199254740992.0, out=out)
    return out


def keyed_seed(seed: int, *keys: object) -> int:
    """An integer seed in [0, 2^62) hashed from `seed` and integer keys (for a torch or numpy generator)."""
    return int(keyed_uniform(seed, *[np.asarray(k, dtype=np.int64) for k in keys]).sum() * 2**62) % 2**62
