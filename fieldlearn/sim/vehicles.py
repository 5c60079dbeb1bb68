"""Vehicle deployments (`kind: vehicles`): devices that join when they depart and leave when they arrive, replayed
from a recorded trace or driven live by Eclipse SUMO.

- At resolve time (the loader), `resolve_vehicles` reads the trace file (SUMO FCD XML, CSV or GPX, with
  fieldlearn.sim.traces) or plans the SUMO run (a configuration, a network and route files, or a city generated from
  a few keys, with fieldlearn.sim.sumo) and counts its vehicles: a `ReplayPlan` or a `LivePlan`, which
  `LoadedScenario.vehicles` keeps. Every error names the YAML path (and, for a bad file, its line).
- At build time the mobility kinds of `trace:` and `sumo:`, `ReplayMobility` and `LiveMobility`, move the vehicles
  and tell the engine who arrives and who departs (`mobility.PopulationModel`).

Vehicle k of a deployment is the k-th to appear (ties by name, as fieldlearn.sim.traces numbers them), so a live run
and the replay of its own FCD export number them alike. A vehicle is present from its first to its last position
(sample, or SUMO step) and moves on the straight line between two; while absent it has no position (NaN).
"""
from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import scenario as S
from . import sumo
from .deployments import PLACEMENTS, Placement
from .errors import ScenarioError, format_path
from .mobility import MOBILITY, MobilityInputs, PopulationModel
from .regions import Regions
from .safexml import FileFormatError
from .traces import RecordedTrace, TimeMap, load_recorded_trace, trace_format

__all__ = ["ReplayPlan", "LivePlan", "resolve_vehicles", "ReplayMobility", "LiveMobility", "default_city_cache"]

FindFile = Callable[[str, tuple], Path]  # a file a scenario names (relative to its folder) -> its path


@dataclass(frozen=True)
class ReplayPlan:
    """A recorded trace to replay, and how simulator time maps to its seconds."""

    trace: RecordedTrace
    timemap: TimeMap

    @property
    def count(self) -> int:
        return len(self.trace)


@dataclass(frozen=True)
class LivePlan:
    """A SUMO run to drive live: its options, the binding, how many vehicles it may insert, how simulator time maps to
    SUMO's seconds, and `stop`: the SUMO second at which the scenario ends (the run is closed there)."""

    run: sumo.SumoRun
    timemap: TimeMap
    backend: str
    count: int
    stop: float


def default_city_cache() -> Path:
    """Where generated cities are kept unless a scenario says (`sumo.cache`): the user's cache folder."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "fieldlearn" / "sumo"


def resolve_vehicles(d: S.VehiclesDeployment, loc: tuple, base_dir: Path, find: FindFile,
                     end_time: float) -> ReplayPlan | LivePlan:
    """What a vehicle deployment at YAML path `loc` needs before the run: its trace read, or its SUMO run planned
    (nothing here depends on the scenario's seed: `LoadedScenario.with_seed` keeps the plans)."""
    timemap = TimeMap(d.time.start, d.time.scale)
    if d.trace is not None:
        return _replay_plan(d.trace, loc + ("trace",), find, timemap)
    assert d.sumo is not None
    return _live_plan(d.sumo, loc + ("sumo",), base_dir, find, end_time, timemap)


def _replay_plan(src: S.TraceSource, loc: tuple, find: FindFile, timemap: TimeMap) -> ReplayPlan:
    path = find(src.file, loc + ("file",))
    where = format_path(loc + ("file",))
    try:
        fmt = trace_format(path) if src.format == "auto" else src.format
        if src.coords != "auto" and fmt != "fcd":
            raise ScenarioError(f"coords applies to SUMO FCD traces only (this one is {fmt})",
                                format_path(loc + ("coords",)))
        trace = load_recorded_trace(path, fmt, src.coords)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), where) from None
    return ReplayPlan(trace, timemap)


def _live_plan(src: S.SumoSource, loc: tuple, base_dir: Path, find: FindFile, end_time: float,
               timemap: TimeMap) -> LivePlan:
    why = (sumo.sumo_missing() if src.city is not None else None) or sumo.binding_missing(src.backend)
    if why is not None:
        raise ScenarioError(f"a live SUMO run needs SUMO here: {why} (a recorded trace replays without it: `trace:`)",
                            format_path(loc))
    declared: dict[str, float] = {}  # begin, end, step-length from a configuration or a city
    options: tuple[str, ...] = ()
    run_seed = 0
    if src.city is not None:
        net, routes, declared = _city(src, loc + ("city",), base_dir)
        run_seed = src.city.seed
    elif src.config is not None:
        net, routes, declared, cfg_seed, cfg = _configured(src, loc + ("config",), find)
        options = ("--configuration-file", str(cfg))
        run_seed = cfg_seed if cfg_seed is not None else 0
    else:
        assert src.net is not None and src.routes is not None
        net = find(src.net, loc + ("net",))
        routes = tuple(find(r, loc + ("routes", j)) for j, r in enumerate(src.routes))
    step = src.step_length or declared.get("step-length", 1.0)
    begin = src.begin if src.begin is not None else declared.get("begin", 0.0)
    stop = float(timemap.source_time(end_time))
    end = src.end or declared.get("end") or math.inf
    end = min(end, stop + 2 * step)  # one step past the scenario's end is all the run needs (and then it closes)
    if not end > begin:
        raise ScenarioError(f"SUMO would run from {begin:g} s to {end:g} s: nothing to drive", format_path(loc))
    count = src.vehicles
    if count is None:
        try:
            count = sumo.route_vehicles(routes)
        except FileFormatError as exc:
            raise ScenarioError(str(exc), format_path(loc + ("routes",))) from None
        if count == 0:
            raise ScenarioError("the route files insert no vehicle", format_path(loc + ("routes",)))
    run = sumo.SumoRun(Path(net), tuple(Path(r) for r in routes), end=end, begin=begin, step_length=step,
                       seed=src.seed if src.seed is not None else run_seed, options=options)
    return LivePlan(run, timemap, src.backend, int(count), stop)


def _city(src: S.SumoSource, loc: tuple, base_dir: Path) -> tuple[Path, tuple[Path, ...], dict[str, float]]:
    """The generated city of `sumo.city`, built into its cache folder unless already there."""
    keys = src.city
    assert keys is not None
    try:
        spec = sumo.CitySpec(network=keys.network, blocks=(keys.blocks[0], keys.blocks[1]),
                             block_length=keys.block_length,
                             lanes=keys.lanes, vehicles=keys.vehicles, depart_end=keys.depart_end,
                             duration=keys.duration, min_trip=keys.min_trip, seed=keys.seed,
                             step_length=src.step_length or 1.0)
    except ValueError as exc:
        raise ScenarioError(str(exc), format_path(loc)) from None
    cache = (base_dir / src.cache) if src.cache is not None else default_city_cache()
    try:
        city = sumo.build_city(spec, cache)
    except (sumo.SumoFailed, sumo.SumoUnavailable, OSError) as exc:
        raise ScenarioError(f"generating the city failed: {exc}", format_path(loc)) from None
    return city.net, (city.routes,), {"end": spec.duration}


def _configured(src: S.SumoSource, loc: tuple, find: FindFile
                ) -> tuple[Path, tuple[Path, ...], dict[str, float], int | None, Path]:
    """Network, route files, times and seed of a SUMO configuration file."""
    assert src.config is not None
    cfg = find(src.config, loc)
    where = format_path(loc)
    try:
        options = sumo.read_sumo_config(cfg)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), where) from None
    missing = [k for k in ("net-file", "route-files") if k not in options]
    if missing:
        raise ScenarioError(f"{cfg}: the configuration names no {' and no '.join(missing)}", where)

    def named(value: str) -> Path:
        p = Path(value.strip())
        p = p if p.is_absolute() else cfg.parent / p
        if not p.is_file():
            raise ScenarioError(f"{cfg}: file {value.strip()!r} not found (relative paths start at {cfg.parent})",
                                where)
        return p

    net = named(options["net-file"])
    routes = tuple(named(r) for r in options["route-files"].split(",") if r.strip())
    declared = {}
    for key in ("begin", "end", "step-length"):
        if key in options:
            try:
                declared[key] = float(options[key])
            except ValueError:
                raise ScenarioError(f"{cfg}: {key} must be a number of seconds (got {options[key]!r})", where) from None
    cfg_seed = None
    if "seed" in options:
        try:
            cfg_seed = int(options["seed"])
        except ValueError:
            raise ScenarioError(f"{cfg}: seed must be an integer (got {options['seed']!r})", where) from None
    return net, routes, declared, cfg_seed, cfg


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
        self.trace, self.timemap = plan.trace, plan.timemap
        self.arrive = np.asarray(self.timemap.sim_time(self.trace.first), dtype=np.float64)
        self.depart = np.asarray(self.timemap.sim_time(self.trace.last), dtype=np.float64)
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
