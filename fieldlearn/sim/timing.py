"""When devices fire: synchronous ticks, Dirac combs with a random phase per device, exponential clocks; one
`RoundTimes` class per `schedule:` kind, built by `ROUND_TIMES.build(spec, capacity, rng)`."""
from __future__ import annotations

import numpy as np

from . import scenario as S
from .kinds import Kinds

ROUND_TIMES = Kinds("schedule")


class RoundTimes:
    """The round times of every device of a run."""

    def start(self, ids: np.ndarray, t: float) -> np.ndarray:
        """First round times at or after `t` for devices that (re)start at `t`."""
        raise NotImplementedError

    def next(self, ids: np.ndarray, t: float, every: bool = False) -> np.ndarray:
        """Times of the next round of devices that fired at `t` (`every`: `ids` are all the devices, in order)."""
        raise NotImplementedError


@ROUND_TIMES.register(S.SyncSchedule)
class Ticks(RoundTimes):
    """Every device fires at phase + k * period, computed exactly so, so that equal times batch (phase 0: in sync)."""

    def __init__(self, spec: S.SyncSchedule | S.DiracSchedule, capacity: int, rng: np.random.Generator):
        self.period = spec.period
        self.phase = self.phases(spec, capacity, rng)
        self.tick = np.zeros(capacity, dtype=np.int64)  # the k of each device's next round

    def phases(self, spec: S.SyncSchedule | S.DiracSchedule, capacity: int, rng: np.random.Generator) -> np.ndarray:
        """Each device's phase: 0 for synchronous ticks."""
        return np.zeros(capacity)

    def start(self, ids: np.ndarray, t: float) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        k = np.ceil((t - self.phase[ids]) / self.period - 1e-9).astype(np.int64)
        times = self.phase[ids] + k * self.period
        low = times < t
        k[low] += 1
        self.tick[ids] = k
        return self.phase[ids] + k * self.period

    def next(self, ids: np.ndarray, t: float, every: bool = False) -> np.ndarray:
        if every:
            self.tick += 1
            return self.phase + self.tick * self.period
        self.tick[ids] += 1
        return self.phase[ids] + self.tick[ids] * self.period


@ROUND_TIMES.register(S.DiracSchedule)
class DiracTimes(Ticks):
    """Ticks from a uniform random phase per device in [0, period), rounded down to `phases` slots when given."""

    def phases(self, spec: S.DiracSchedule, capacity: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(capacity)
        if spec.phases is not None:
            u = np.floor(u * spec.phases) / spec.phases
        return u * spec.period


@ROUND_TIMES.register(S.ExponentialSchedule)
class PoissonTimes(RoundTimes):
    """Every device waits an exponential time of mean 1 / rate before each round (a Poisson clock)."""

    def __init__(self, spec: S.ExponentialSchedule, capacity: int, rng: np.random.Generator):
        self.mean = 1.0 / spec.rate
        self.rng = rng

    def start(self, ids: np.ndarray, t: float) -> np.ndarray:
        return t + self.rng.exponential(self.mean, size=len(ids))

    def next(self, ids: np.ndarray, t: float, every: bool = False) -> np.ndarray:
        return self.start(ids, t)
