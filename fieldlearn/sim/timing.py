"""When devices fire: synchronous ticks, Dirac combs with a random phase per device, exponential clocks."""
from __future__ import annotations

import math

import numpy as np

from . import scenario as S


class Schedule:
    """Round times of every device; times of one device are phase + k * period exactly, so ties batch."""

    def __init__(self, spec: S.SyncSchedule | S.DiracSchedule | S.ExponentialSchedule, capacity: int,
                 rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        self.exponential = isinstance(spec, S.ExponentialSchedule)
        self.period = 1.0 / spec.rate if isinstance(spec, S.ExponentialSchedule) else spec.period
        self.phase = np.zeros(capacity)
        if isinstance(spec, S.DiracSchedule):
            u = rng.random(capacity)
            if spec.phases is not None:
                u = np.floor(u * spec.phases) / spec.phases
            self.phase = u * spec.period
        self.tick = np.zeros(capacity, dtype=np.int64)  # the k of each device's next periodic round

    def start(self, ids: np.ndarray, t: float) -> np.ndarray:
        """First round times at or after `t` for devices that (re)start at `t`."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.exponential:
            return t + self.rng.exponential(self.period, size=len(ids))
        k = np.ceil((t - self.phase[ids]) / self.period - 1e-9).astype(np.int64)
        times = self.phase[ids] + k * self.period
        low = times < t
        k[low] += 1
        self.tick[ids] = k
        return self.phase[ids] + k * self.period

    def next(self, ids: np.ndarray, t: float, every: bool = False) -> np.ndarray:
        """Times of the next round of devices that fired at `t` (`every`: `ids` are all the devices, in order)."""
        if self.exponential:
            return t + self.rng.exponential(self.period, size=len(ids))
        if every:
            self.tick += 1
            return self.phase + self.tick * self.period
        self.tick[ids] += 1
        return self.phase[ids] + self.tick[ids] * self.period


def first_tick_at_or_after(t: float, period: float) -> float:
    """The first multiple of `period` not before `t` (computed as k * period so it equals round times)."""
    k = math.ceil(t / period - 1e-9)
    if k * period < t:
        k += 1
    return k * period
