"""Mobility models, vectorised over the devices they move: static, tour, random waypoint, CSV trace; one class per
`mobility:` kind, built by `MOBILITY.build(spec, ids, inputs)`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from fieldlearn.calculus.keyed import keyed_uniform

from . import scenario as S
from .deployments import area_polygon
from .kinds import Kinds
from .regions import Regions, sample_in_polygon

MOBILITY = Kinds("mobility")


@dataclass(frozen=True)
class MobilityInputs:
    """What a model is built from besides its block and its devices: the regions, the mean time between rounds, the
    deployment's random key (for `keyed_uniform`) and, for trace mobility, the deployment's trace rows."""

    regions: Regions
    period: float
    key: int
    trace: np.ndarray | None = None
    source: Any = None  # what the loader resolved for a vehicle deployment (LoadedScenario.vehicles)


class MobilityModel:
    """Moves a fixed set of devices (`ids`, global); `positions(t)` must be called with non-decreasing `t`."""

    moves = True  # False: the devices stay where they are deployed, and the engine never asks
    changes_population = False  # True: a PopulationModel, whose devices come and go

    def __init__(self, spec: object, ids: np.ndarray, inputs: MobilityInputs):
        self.ids = np.asarray(ids, dtype=np.int64)

    def start(self, t0: float, positions: np.ndarray) -> None:
        """The devices appear at `t0` at `positions` (their deployment places)."""
        self._static = np.array(positions, dtype=np.float64)

    def positions(self, t: float) -> np.ndarray:
        """Positions of `ids` at time `t`, shape (len(ids), 2)."""
        return self._static


class PopulationModel(MobilityModel):
    """Moves devices that come and go (vehicles): each is present from its arrival to its departure, and absent (no
    position: NaN) before and after. The engine asks, at each `next_change` instant t, for the `arrivals(t)` (before
    the rounds of t) and the `departures(t)` (after everything else at t: present at t, gone just after it), with
    non-decreasing t; both are indices into `ids`, ascending, each device arriving before it departs."""

    changes_population = True

    def arrivals(self, t: float) -> np.ndarray:
        """Devices present at `t` that were not before (they join as fresh devices)."""
        raise NotImplementedError

    def departures(self, t: float) -> np.ndarray:
        """Devices present at `t` that are gone just after it."""
        raise NotImplementedError

    def next_change(self, t: float) -> float:
        """The first instant after `t` at which devices may arrive or depart (inf: none)."""
        raise NotImplementedError


@MOBILITY.register(S.Static)
class StaticMobility(MobilityModel):
    """Devices stay where they were deployed."""

    moves = False


class LegMobility(MobilityModel):
    """A device travels leg after leg: from where it is to a target (at a speed, or jumping), then dwells there.

    Leg L of device d has target, speed and dwell fixed by (d, L) alone, so positions do not depend on when or
    how often they are evaluated.
    """

    MAX_LEGS_PER_CALL = 100_000

    def start(self, t0: float, positions: np.ndarray) -> None:
        n = len(self.ids)
        self.leg = np.zeros(n, dtype=np.int64)
        self.a = np.array(positions, dtype=np.float64).reshape(n, 2)
        self.s = np.full(n, float(t0))
        self.b = np.zeros_like(self.a)
        self.r = np.zeros(n)
        self.e = np.zeros(n)
        self._delta = np.zeros_like(self.a)  # b - a
        self._span = np.zeros(n)  # r - s
        self._begin(np.arange(n))

    def _begin(self, idx: np.ndarray) -> None:
        """Set target, arrival and departure of the current leg of devices `idx` (start point and time set)."""
        leg = self.leg[idx]
        b = self.target(idx, leg)
        self.b[idx] = b
        speed = self.speed(idx, leg)
        d = b - self.a[idx]
        dist = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])  # = np.linalg.norm(d, axis=1), bit for bit
        with np.errstate(divide="ignore", invalid="ignore"):
            travel = np.where(np.isinf(speed), 0.0, dist / speed)
        self.r[idx] = self.s[idx] + travel
        self.e[idx] = self.r[idx] + self.dwell(idx, leg)
        self._delta[idx] = d
        self._span[idx] = self.r[idx] - self.s[idx]
        self._next_end = float(self.e.min()) if len(self.e) else np.inf
        self._arrived = float(self.r.max()) if len(self.r) else -np.inf  # every device still from then on
        self._cache = None

    def positions(self, t: float) -> np.ndarray:
        if t >= self._next_end:
            for _ in range(self.MAX_LEGS_PER_CALL):
                due = np.flatnonzero(t >= self.e)
                if len(due) == 0:
                    break
                self.leg[due] += 1
                self.s[due] = self.e[due]
                self.a[due] = self.b[due]
                self._begin(due)
            else:
                raise RuntimeError("a mobility model made no progress in time (zero dwell and zero travel)")
        if self._cache is not None:  # every device arrived and dwells since the last call: the same positions
            return self._cache
        span = self._span
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.subtract(t, self.s)
            np.divide(frac, span, out=frac)
            np.clip(frac, 0.0, 1.0, out=frac)
            frac = np.where(span > 0, frac, 1.0)
        out = self._delta * frac[:, None]  # a + (b - a) * frac
        np.add(out, self.a, out=out)
        if t >= self._arrived:
            out.flags.writeable = False
            self._cache = out
        return out

    def target(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def speed(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dwell(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _points_in(poly: Polygon, gids: np.ndarray, leg: np.ndarray, key: int, what: str) -> np.ndarray:
    """One uniform point in `poly` per (device, leg), fixed by those counters."""
    return sample_in_polygon(poly, len(gids), lambda attempt, comp: keyed_uniform(key, gids, leg, attempt, comp), what)


def _center(poly: Polygon) -> np.ndarray:
    c = poly.centroid
    if not poly.contains(c):
        c = poly.representative_point()
    return np.array([c.x, c.y])


@MOBILITY.register(S.Tour)
class TourMobility(LegMobility):
    """Visit stops (regions or points) in turn, dwelling a number of rounds (or a time) in each."""

    def __init__(self, spec: S.Tour, ids: np.ndarray, inputs: MobilityInputs):
        super().__init__(spec, ids, inputs)
        self.spec, self.key = spec, inputs.key
        self.stops: list[Polygon | np.ndarray] = [
            inputs.regions.polygon(s) if isinstance(s, str) else np.asarray(s, dtype=np.float64) for s in spec.stops
        ]
        self.stop_names = [s if isinstance(s, str) else f"point {s}" for s in spec.stops]
        m = len(self.stops)
        dwell = spec.dwell if spec.dwell is not None else spec.dwell_time
        scale = inputs.period if spec.dwell is not None else 1.0
        self.dwells = np.broadcast_to(np.asarray(dwell, dtype=np.float64) * scale, (m,)).copy()
        local = np.arange(len(self.ids))
        if spec.start == "first":
            self.offset = np.zeros(len(self.ids), dtype=np.int64)
        elif spec.start == "spread":
            self.offset = local % m
        else:
            self.offset = np.floor(keyed_uniform(self.key, self.ids, -1) * m).astype(np.int64)
        self._speed = np.inf if spec.speed is None else float(spec.speed)

    def stop_index(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        """Which stop leg `leg` of devices `idx` goes to (in the device's own order of cycle k // m when shuffled)."""
        m = len(self.stops)
        k = self.offset[idx] + leg
        k = k if self.spec.repeat else np.minimum(k, m - 1)
        if self.spec.order == "given":
            return k % m
        cycle, place = k // m, k % m
        keys = keyed_uniform(self.key, self.ids[idx][:, None], cycle[:, None], -2, np.arange(m)[None, :])
        return np.argsort(keys, axis=1, kind="stable")[np.arange(len(idx)), place]

    def target(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        stop = self.stop_index(idx, leg)
        out = np.empty((len(idx), 2))
        for j in np.flatnonzero(np.bincount(stop, minlength=len(self.stops))):  # the stops used, ascending
            sel = stop == j
            where = self.stops[j]
            if isinstance(where, np.ndarray):
                out[sel] = where
            elif self.spec.placement == "center":
                out[sel] = _center(where)
            else:
                out[sel] = _points_in(where, self.ids[idx[sel]], leg[sel], self.key, f"region {self.stop_names[j]!r}")
        return out

    def speed(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        return np.full(len(idx), self._speed)

    def dwell(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        stop = self.stop_index(idx, leg)
        d = self.dwells[stop]
        if not self.spec.repeat:
            d = np.where(self.offset[idx] + leg >= len(self.stops) - 1, np.inf, d)
        return d


@MOBILITY.register(S.RandomWaypoint)
class RandomWaypointMobility(LegMobility):
    """Travel at a (random) speed to a random point of an area, pause, repeat."""

    def __init__(self, spec: S.RandomWaypoint, ids: np.ndarray, inputs: MobilityInputs):
        super().__init__(spec, ids, inputs)
        self.key = inputs.key
        self.area = area_polygon(spec.region, spec.polygon, spec.box, inputs.regions)
        self.what = f"region {spec.region!r}" if spec.region else "waypoint area"
        self.speed_range = np.broadcast_to(np.asarray(spec.speed, dtype=np.float64), (2,))
        pause = spec.pause if spec.pause is not None else (spec.pause_time if spec.pause_time is not None else 0.0)
        scale = inputs.period if spec.pause is not None else 1.0
        self.pause_range = np.broadcast_to(np.asarray(pause, dtype=np.float64) * scale, (2,))

    def _draw(self, lo_hi: np.ndarray, idx: np.ndarray, leg: np.ndarray, comp: int) -> np.ndarray:
        lo, hi = lo_hi
        if lo == hi:
            return np.full(len(idx), lo)
        return lo + (hi - lo) * keyed_uniform(self.key, self.ids[idx], leg, -1, comp)

    def target(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        return _points_in(self.area, self.ids[idx], leg, self.key, self.what)

    def speed(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        return self._draw(self.speed_range, idx, leg, 7)

    def dwell(self, idx: np.ndarray, leg: np.ndarray) -> np.ndarray:
        return self._draw(self.pause_range, idx, leg, 8)


@MOBILITY.register(S.TraceSpec)
class TraceMobility(MobilityModel):
    """Positions linearly interpolated from samples (time, device, x, y); before the first and after the last
    sample a device stays at that sample; devices without samples stay where deployed."""

    def __init__(self, spec: S.TraceSpec, ids: np.ndarray, inputs: MobilityInputs):
        super().__init__(spec, ids, inputs)
        data = inputs.trace
        if data is None:
            raise ValueError("trace mobility is built from its deployment's trace rows (LoadedScenario.traces)")
        self.t = data[:, 0]
        self.dev = data[:, 1].astype(np.int64)
        self.xy = data[:, 2:4]
        n = len(self.ids)
        self.lo = np.searchsorted(self.dev, np.arange(n), side="left")
        self.hi = np.searchsorted(self.dev, np.arange(n), side="right")
        self.traced = self.hi > self.lo
        self.tmin, self.tmax = float(self.t.min()), float(self.t.max())
        self.span = self.tmax - self.tmin + 1.0
        self.keys = self.dev * self.span + (self.t - self.tmin)

    def positions(self, t: float) -> np.ndarray:
        out = self._static.copy()
        devs = np.flatnonzero(self.traced)
        tc = min(max(t, self.tmin), self.tmax)
        q = devs * self.span + (tc - self.tmin)
        i = np.searchsorted(self.keys, q, side="right") - 1
        i = np.clip(i, self.lo[devs], self.hi[devs] - 1)
        j = np.minimum(i + 1, self.hi[devs] - 1)
        t0, t1 = self.t[i], self.t[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(t1 > t0, np.clip((t - t0) / (t1 - t0), 0.0, 1.0), 0.0)
        frac = np.where(t <= t0, 0.0, frac)
        out[devs] = self.xy[i] + (self.xy[j] - self.xy[i]) * frac[:, None]
        return out
