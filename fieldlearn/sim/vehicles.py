"""Vehicle deployments (`kind: vehicles`): devices that join when they depart and leave when they arrive, replayed
from a recorded trace or driven live by Eclipse SUMO.

- At resolve time, fieldlearn.sim.inputs `resolve_vehicles` reads the trace file or plans the SUMO run into a
  `ReplayPlan` or a `LivePlan`, which `LoadedScenario.vehicles` keeps.
- At build time (this module) the mobility kinds of `trace:` and `sumo:`, `ReplayMobility` and `LiveMobility`, move the vehicles
  and tell the engine who arrives and who departs (`mobility.PopulationModel`).

Vehicle k of a deployment is the k-th to appear (ties by name, as fieldlearn.sim.traces numbers them), so a live run
and the replay of its own FCD export number them alike. A vehicle is present from its first to its last position
(sample, or SUMO step) and moves on the straight line between two; while absent it has no position (NaN).
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from . import scenario as S
from . import sumo
from .deployments import PLACEMENTS, Placement
from .mobility import MOBILITY, MobilityInputs, PopulationModel
from .regions import Regions
from .inputs import LivePlan, ReplayPlan
from .traces import TimeMap, TraceReplay

__all__ = ["ReplayMobility", "LiveMobility"]

# ------------------------------------------------------------------------------------------------ placement
@PLACEMENTS.register(S.VehiclesDeployment)
def _vehicles(dep: S.VehiclesDeployment, rng: np.random.Generator, regions: Regions, plan: Any) -> Placement:
    """No vehicle is anywhere before it arrives: every position NaN (their mobility places them as they arrive)."""
    if not isinstance(plan, (ReplayPlan, LivePlan)):
        raise ValueError("a vehicle deployment is placed from its plan (LoadedScenario.vehicles)")
    return Placement(np.full((plan.count, 2), np.nan), np.zeros((0, 2), dtype=np.int64))


# ------------------------------------------------------------------------------------------------ replay
@MOBILITY.register(S.TraceSource)
class ReplayMobility(PopulationModel):
    """Vehicles of a recorded trace: each present from its first to its last sample (in simulator time), linearly
    interpolated between its samples; SUMO's coordinates at SUMO's times, exactly."""

    def __init__(self, spec: S.TraceSource, ids: np.ndarray, inputs: MobilityInputs):
        super().__init__(spec, ids, inputs)
        plan = inputs.source
        if not isinstance(plan, ReplayPlan) or plan.count != len(self.ids):
            raise ValueError("replayed vehicles are built from their deployment's ReplayPlan (LoadedScenario.vehicles)")
        replay = TraceReplay(plan.trace, plan.timemap)
        self.trace, self.timemap = replay.trace, replay.timemap
        self.arrive = np.asarray(replay.joins, dtype=np.float64)
        self.depart = np.asarray(replay.leaves, dtype=np.float64)
        self.changes = np.unique(np.concatenate([self.arrive, self.depart]))
        self.inside = np.zeros(len(self.ids), dtype=bool)
        # the samples in time order: at a sample instant where every present vehicle has a sample (SUMO's FCD: every
        # step), the positions are one slice of them, without a search
        order = np.lexsort((self.trace.device, self.trace.times))
        self._step_device, self._step_xy = self.trace.device[order], self.trace.xy[order]
        self._instants, first = np.unique(self.trace.times[order], return_index=True)
        self._bounds = np.append(first, len(order))

    def start(self, t0: float, positions: np.ndarray) -> None:
        self.inside[:] = False

    def present(self, t: float) -> np.ndarray:
        """Vehicles (indices into `ids`) present at simulator time t."""
        return np.flatnonzero((self.arrive <= t) & (t <= self.depart))

    def positions(self, t: float) -> np.ndarray:
        here = self.present(t)
        out = np.full((len(self.ids), 2), np.nan)
        if len(here) == 0:
            return out
        trace = self.trace
        s = float(self.timemap.source_time(float(t)))
        k = int(np.searchsorted(self._instants, s))
        if k < len(self._instants) and self._instants[k] == s and self._bounds[k + 1] - self._bounds[k] == len(here):
            sl = slice(self._bounds[k], self._bounds[k + 1])  # exactly the present vehicles' samples at s
            out[self._step_device[sl]] = self._step_xy[sl]
        else:
            out[here] = trace.positions(np.clip(s, trace.first[here], trace.last[here]), here)
        return out

    def arrivals(self, t: float) -> np.ndarray:
        here = self.present(t)
        new = here[~self.inside[here]]
        self.inside[new] = True
        return new

    def departures(self, t: float) -> np.ndarray:
        gone = np.flatnonzero(self.inside & (self.depart <= t))
        self.inside[gone] = False
        return gone

    def next_change(self, t: float) -> float:
        k = int(np.searchsorted(self.changes, t, side="right"))
        return float(self.changes[k]) if k < len(self.changes) else math.inf


# ------------------------------------------------------------------------------------------------ live
@MOBILITY.register(S.SumoSource)
class LiveMobility(PopulationModel):
    """Vehicles of a SUMO run driven step by step (libsumo or traci): each present from the first to the last SUMO step
    it is on the road, linearly interpolated between steps (as the replay of the run's FCD export)."""

    def __init__(self, spec: S.SumoSource, ids: np.ndarray, inputs: MobilityInputs):
        super().__init__(spec, ids, inputs)
        plan = inputs.source
        if not isinstance(plan, LivePlan) or plan.count != len(self.ids):
            raise ValueError("live vehicles are built from their deployment's LivePlan (LoadedScenario.vehicles)")
        self.plan = plan
        self.inside = np.zeros(len(self.ids), dtype=bool)
        self.live: sumo.LiveSumo | None = None
        self.running = False
        self._staying = np.zeros(len(self.ids), dtype=bool)

    def start(self, t0: float, positions: np.ndarray) -> None:
        self.live = sumo.LiveSumo(self.plan.run, TimeMap(), backend=self.plan.backend)  # type: ignore[arg-type]
        weakref.finalize(self, self.live.close)  # a run dropped before its end frees SUMO (one libsumo per process)
        self.running = True
        self.inside[:] = False

    def close(self) -> None:
        """End the SUMO run (it writes its outputs then); nobody is present afterwards."""
        if self.running and self.live is not None:
            self.running = False
            self.live.close()

    def source_time(self, t: float) -> float:
        """SUMO's second at simulator time t, snapped to SUMO's milliseconds when within rounding of one (so that a
        step's own instant meets the step exactly)."""
        s = float(self.plan.timemap.source_time(float(t)))
        snapped = round(s * 1000.0) / 1000.0
        return snapped if abs(snapped - s) <= 1e-9 * max(1.0, abs(s)) else s

    def _frame(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        if not self.running or self.live is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
        f = self.live.at(self.source_time(t))
        if len(f.index) and f.index[-1] >= len(self.ids):
            raise RuntimeError(f"SUMO inserted more than the {len(self.ids)} vehicles this deployment holds (set "
                               "sumo.vehicles to the most vehicles the run may insert)")
        return f.index, f.xy

    def positions(self, t: float) -> np.ndarray:
        index, xy = self._frame(t)
        out = np.full((len(self.ids), 2), np.nan)
        out[index] = xy
        if self.source_time(t) >= self.plan.stop:  # the scenario's end: the run is over
            self.close()
        return out

    def arrivals(self, t: float) -> np.ndarray:
        index, _ = self._frame(t)
        new = index[~self.inside[index]]
        self.inside[new] = True
        return new

    def departures(self, t: float) -> np.ndarray:
        self._frame(t)
        up = self.live.upcoming if self.running and self.live is not None else None
        self._staying[:] = False
        if up is not None:
            self._staying[up.index[up.index < len(self.ids)]] = True
        gone = np.flatnonzero(self.inside & ~self._staying)
        self.inside[gone] = False
        if up is None:
            self.close()
        return gone

    def next_change(self, t: float) -> float:
        up = self.live.upcoming if self.running and self.live is not None else None
        return float(self.plan.timemap.sim_time(up.time)) if up is not None else math.inf
