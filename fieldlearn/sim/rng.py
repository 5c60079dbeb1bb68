"""Seeded randomness of a run: named numpy Generator streams, and keys for the counter-based uniforms
(`fieldlearn.calculus.keyed.keyed_uniform`) that do not depend on call order."""
from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent Generator for one use (`name`) of the scenario seed: adding a use never shifts another."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def key(seed: int, name: str) -> int:
    """A 64-bit key for `keyed_uniform`, derived from the seed and a use name."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1, np.uint64)[0])
