"""The discrete-event engine: a heap of timed events; device rounds due at one instant run as one VM batch."""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from fieldlearn.calculus.network import Graph
from fieldlearn.calculus.pytree import tree_flatten
from fieldlearn.calculus.vm import Inbox, RoundVM

from . import scenario as S
from .deployments import Placement, area_polygon, place
from .environment import Environment, LazyRegion
from .errors import ScenarioError
from .links import Cut, FixedRule, KnnRule, RadiusRule, filter_links, sorted_unique
from .loader import LoadedScenario
from .mobility import MobilityModel, make_mobility
from .regions import Regions, covers_xy, generator_uniform, sample_in_polygon
from .rng import key, stream
from .timing import Schedule

# Order of events at one instant: faults change the world, then devices fire (one batch), then probes observe.
FAULT, ROUND, PROBE = 0, 1, 2


@dataclass(frozen=True)
class Group:
    """The devices of one deployment: ids `start .. start+count-1`, appearing at `joins` (0 for initial ones)."""

    index: int
    start: int
    count: int
    deployment: Any
    joins: float
    placement: Placement

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.count)


@dataclass
class FaultRecord:
    """A fault that happened: when, what, and how many devices or cuts it touched."""

    time: float
    kind: str
    count: int
    index: int


class Engine:
    """Runs one scenario: devices, environment, schedule, program and faults, event by event.

    Public state for metrics and resource adapters: `time`, `positions`, `region`, `alive`, `crashed`, `present`,
    `graph`, `sensors`, `outputs`/`output(name)`, `rounds` (per device), `device_rounds`, `batches`, `vm`,
    `scenario`, `capacity`, `faults_log`, `regions`, `seed`, `period`, `device`, `base_dir`, `deployed_mobile`;
    hooks: `round_hooks` (after each batch), `result_hooks` (may take values out of a batch's results before they
    are recorded as outputs), `crash_hooks` (devices that crashed), `every`/`at` (probes); `metrics` by name.
    """

    def __init__(self, loaded: LoadedScenario, program: Callable[[], Any] | None = None, *, device: str = "cpu"):
        """`program` (called with no arguments) replaces the scenario's own program, e.g. a function under test."""
        s = loaded.scenario
        self.loaded = loaded
        self.scenario = s
        self.seed = s.seed
        self.period = s.period
        self.base_dir = loaded.base_dir
        self.capacity = cap = loaded.capacity
        self.end_time = s.end_time
        self.time = 0.0
        self.regions = Regions(s.region_names(), [r.points() for r in s.regions])
        declared = loaded.program
        run = program if program is not None else (lambda: declared(**loaded.params))
        self.program = declared if program is None else program
        self.vm = _make_vm(run, device, torch_values="learning" in declared.needs)
        self.device = device

        self.groups = self._place_groups()
        self.env = Environment(cap, self.regions, self._link_rule())
        self.env.set_positions(np.arange(cap), np.concatenate([g.placement.positions for g in self.groups]))
        self.present = np.zeros(cap, dtype=bool)
        self.crashed = np.zeros(cap, dtype=bool)
        self.pinned = np.zeros(cap, dtype=bool)
        self.mobility: list[tuple[Group, MobilityModel]] = []
        self._moving: list[tuple[Group, MobilityModel]] = []
        self._positions_time = -math.inf

        self.schedule = Schedule(s.schedule, cap, stream(s.seed, "schedule"))
        self.next_time = np.full(cap, math.inf)
        self.last_round = np.full(cap, -math.inf)
        self.rounds = np.zeros(cap, dtype=np.int64)
        self.device_rounds = 0
        self.batches = 0
        self.retention = s.links.retention
        self.loss = s.links.loss
        self._loss_rng = stream(s.seed, "loss")
        self._select_rng = stream(s.seed, "faults")

        self.outputs: dict[str, np.ndarray] = {}
        self.has_output: dict[str, np.ndarray] = {}
        self.faults_log: list[FaultRecord] = []
        self.round_hooks: list[Callable[["Engine", np.ndarray, dict[str, np.ndarray]], None]] = []
        self.result_hooks: list[Callable[[np.ndarray, Any], Any]] = []
        self.crash_hooks: list[Callable[[np.ndarray], None]] = []
        self.metrics: dict[str, Callable[["Engine"], Any]] = {}
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0

        self.sensors = self._initial_sensors()
        self.vm.sensors.update(self.sensors)
        self.vm.sensors["position"] = self.env.positions
        self.vm.sensors["region"] = LazyRegion(self.env)
        self.vm.sensors["id"] = np.arange(cap)
        self.vm.sensors["time"] = 0.0

        for g in self.groups:
            if g.joins == 0.0 and g.index < len(s.deployments):
                self._appear(g, 0.0)
        self._update_positions(0.0)
        self._apply_sensor_sets()
        for i, f in enumerate(s.faults):
            self._push(f.at, FAULT, "fault", i)
        self.adapters = {need: _adapter(need, self, config) for need, config in loaded.resources.items()}
        for adapter in self.adapters.values():
            self.metrics.update(adapter.metrics())

    # -- building ------------------------------------------------------------------------------------------
    def _place_groups(self) -> list[Group]:
        s = self.scenario
        groups, start = [], 0
        deps = [(d, 0.0) for d in s.deployments] + [(f.deployment, f.at) for f in s.faults if isinstance(f, S.JoinFault)]
        for i, ((d, t), count) in enumerate(zip(deps, self.loaded.counts)):
            try:
                placement = place(d, stream(s.seed, f"deployment/{i}"), self.regions, self.loaded.graphs.get(i))
            except ValueError as exc:
                raise ScenarioError(str(exc), _deployment_path(s, i)) from None
            groups.append(Group(i, start, count, d, t, placement))
            start += count
        return groups

    @property
    def deployed_mobile(self) -> np.ndarray:
        """Whether each device belongs to a deployment whose mobility is not static."""
        out = np.zeros(self.capacity, dtype=bool)
        for g in self.groups:
            out[g.start:g.start + g.count] = not isinstance(g.deployment.mobility, S.Static)
        return out

    def _link_rule(self) -> RadiusRule | KnnRule | FixedRule:
        links = self.scenario.links
        if isinstance(links, S.RadiusLinks):
            moves = any(not isinstance(g.deployment.mobility, S.Static) for g in self.groups)
            return RadiusRule(links.radius, skin=0.25 * links.radius if moves else 0.0)
        if isinstance(links, S.KnnLinks):
            return KnnRule(links.k)
        edges = [g.placement.edges + g.start for g in self.groups] + [np.asarray(links.edges, dtype=np.int64).reshape(-1, 2)]
        return FixedRule(self.capacity, np.concatenate(edges), links.lengths == "unit")

    def _initial_sensors(self) -> dict[str, np.ndarray]:
        s = self.scenario
        values: dict[str, list] = {n: [] for n in s.sensor_names()}
        for name, spec in s.sensors.items():
            values[name].append(spec.default if isinstance(spec, S.SensorSpec) else spec)
            if isinstance(spec, S.SensorSpec):
                values[name] += [item.value for item in spec.set]
        for d in s.all_deployments():
            for name, v in d.sensors.items():
                values[name] += v if isinstance(v, list) else [v]
        for f in s.faults:
            if isinstance(f, S.SensorFault):
                values[f.sensor].append(f.value)
        out = {}
        for name, vals in values.items():
            dtype = np.result_type(*[np.asarray(v).dtype for v in vals]) if vals else np.float64
            default = s.sensors.get(name)
            if isinstance(default, S.SensorSpec):
                default = default.default
            arr = np.full(self.capacity, default if default is not None else 0, dtype=dtype)
            for g in self.groups:
                v = g.deployment.sensors.get(name)
                if v is not None:
                    arr[g.start:g.start + g.count] = v
            out[name] = arr
        return out

    def _apply_sensor_sets(self) -> None:
        for name, spec in self.scenario.sensors.items():
            if isinstance(spec, S.SensorSpec):
                for item in spec.set:
                    self.sensors[name][self.select(item.devices)] = item.value

    # -- events --------------------------------------------------------------------------------------------
    def _push(self, t: float, priority: int, kind: str, payload: Any) -> None:
        heapq.heappush(self._heap, (t, priority, self._seq, kind, payload))
        self._seq += 1

    def _push_rounds(self, ids: np.ndarray, times: np.ndarray) -> None:
        if len(ids) == self.capacity:  # every device (sorted distinct ids)
            self.next_time[:] = times
        else:
            self.next_time[ids] = times
        if len(ids) == 0:
            return
        lo, hi = times.min(), times.max()
        if lo == hi:
            self._push(float(lo), ROUND, "round", ids)
            return
        order = np.argsort(times, kind="stable")
        t_sorted, id_sorted = times[order], ids[order]
        cuts = np.flatnonzero(np.diff(t_sorted)) + 1
        for t_group, id_group in zip(np.split(t_sorted, cuts), np.split(id_sorted, cuts)):
            self._push(float(t_group[0]), ROUND, "round", np.sort(id_group))

    def every(self, interval: float, fn: Callable[["Engine"], None], start: float = 0.0) -> None:
        """Call `fn(engine)` at start, start + interval, ... (after the rounds of that instant) until the end."""
        self._push_probe(start, interval, 0, fn)

    def _push_probe(self, start: float, interval: float, k: int, fn: Callable) -> None:
        t = start + k * interval
        if t < self.end_time:
            self._push(t, PROBE, "every", (start, interval, k, fn))

    def at(self, times: list[float], fn: Callable[["Engine"], None]) -> None:
        """Call `fn(engine)` at each of `times` before the end (after the rounds of that instant)."""
        for t in times:
            if t < self.end_time:
                self._push(float(t), PROBE, "at", fn)

    def run(self, until: float | None = None, progress: Callable[[float], None] | None = None) -> None:
        """Process events strictly before `until` (default: the scenario's end), then bring positions to it."""
        end = self.end_time if until is None else min(until, self.end_time)
        heap = self._heap
        while heap and heap[0][0] < end:
            t = heap[0][0]
            self.time = t
            ids_parts: list[np.ndarray] = []
            while heap and heap[0][0] == t:
                _, priority, _, kind, payload = heap[0]
                if priority == PROBE and ids_parts:
                    break  # fire the batch before probes observe this instant
                heapq.heappop(heap)
                if kind == "round":
                    ids_parts.append(payload)
                else:
                    self._update_positions(t)
                    self._handle(kind, payload, t)
            if ids_parts:
                self._fire(t, ids_parts)
            if progress is not None:
                progress(t)
        self.time = max(self.time, end) if until is None else end
        self._update_positions(self.time)

    def _handle(self, kind: str, payload: Any, t: float) -> None:
        if kind == "fault":
            self._fault(payload, t)
        elif kind == "restart":
            self._restart(payload, t)
        elif kind == "every":
            start, interval, k, fn = payload
            fn(self)
            self._push_probe(start, interval, k + 1, fn)
        elif kind == "at":
            payload(self)

    # -- rounds --------------------------------------------------------------------------------------------
    def _fire(self, t: float, parts: list[np.ndarray]) -> None:
        ids = parts[0] if len(parts) == 1 else sorted_unique(np.concatenate(parts))
        every = len(ids) == self.capacity  # sorted distinct ids of every device: plain slices below, not gathers
        due = self.next_time[:] == t if every else self.next_time[ids] == t
        if not (every and due.all()):
            ids, every = ids[due], False
        if len(ids) == 0:
            return
        sel: slice | np.ndarray = slice(None) if every else ids
        self._update_positions(t)
        indptr, nbrs, dist = self.env.graph.inbox_links(ids)
        keep = None
        if self.retention is not None:
            stale = self.alive & (self.last_round < t - self.retention)  # senders whose message expired
            if stale.any():
                keep = ~stale[nbrs]
        if self.loss > 0:
            kept = self._loss_rng.random(len(nbrs)) >= self.loss
            keep = kept if keep is None else keep & kept
        if keep is not None and not keep.all():
            indptr, nbrs, dist = filter_links(indptr, keep), nbrs[keep], dist[keep]
        self.vm.sensors["time"] = t
        try:
            result = self.vm.round(ids, Inbox(indptr, nbrs, {"distance": dist}))
            for hook in self.result_hooks:
                result = hook(ids, result)
        except ScenarioError:
            raise
        except Exception as exc:
            raise SimulationError(t, exc) from exc
        outs = self._record(ids, result, sel)
        self.last_round[sel] = t
        self.rounds[sel] += 1
        self.device_rounds += len(ids)
        self.batches += 1
        for hook in self.round_hooks:
            hook(self, ids, outs)
        self._push_rounds(ids, self.schedule.next(ids, t, every))

    def _record(self, ids: np.ndarray, result: Any, sel: slice | np.ndarray | None = None) -> dict[str, np.ndarray]:
        named = _name_outputs(result)
        to_numpy = self.vm.backend.to_numpy
        out = {}
        for name, leaf in named.items():
            values = to_numpy(leaf) if not isinstance(leaf, np.ndarray) else leaf
            values = np.asarray(values)
            if values.ndim == 0:
                values = np.broadcast_to(values, (len(ids),))
            store = self.outputs.get(name)
            if store is None or store.shape[1:] != values.shape[1:]:
                store = np.zeros((self.capacity,) + values.shape[1:], dtype=values.dtype)
                if np.issubdtype(store.dtype, np.floating):
                    store[:] = np.nan
                self.outputs[name] = store
                self.has_output[name] = np.zeros(self.capacity, dtype=bool)
            elif store.dtype != values.dtype and np.result_type(store, values) != store.dtype:
                store = self.outputs[name] = store.astype(np.result_type(store, values))
            store[ids if sel is None else sel] = values
            self.has_output[name][ids if sel is None else sel] = True
            out[name] = values
        return out

    def output(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values over all device ids, mask of alive devices holding one) for a program output or a sensor."""
        if name in self.outputs:
            return self.outputs[name], self.has_output[name] & self.alive
        if name == "region":
            return self.env.region, self.present & self.alive
        if name in ("id", "time", "position"):
            raise KeyError(name)
        if name in self.sensors:
            return self.sensors[name], self.present & self.alive
        raise KeyError(name)

    # -- the world -----------------------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        return self.env.positions

    @property
    def region(self) -> np.ndarray:
        return self.env.region

    @property
    def alive(self) -> np.ndarray:
        return self.env.alive

    @property
    def graph(self) -> Graph:
        return self.env.graph

    def _appear(self, g: Group, t: float) -> None:
        ids = g.ids
        model = make_mobility(g.deployment.mobility, ids, self.regions, self.scenario.period,
                              key(self.seed, f"mobility/{g.index}"), self.loaded.traces.get(g.index))
        if model is not None:
            model.start(t, g.placement.positions)
            self.mobility.append((g, model))
            self._moving.append((g, model))
            self._positions_time = -math.inf
        self.present[ids] = True
        self.env.set_alive(ids, True)
        self._push_rounds(ids, self.schedule.start(ids, t))

    def _update_positions(self, t: float) -> None:
        """Bring moving devices to time `t` (or to the last mobility-update instant, with `mobility_step`)."""
        step = self.scenario.mobility_step
        if step is not None:
            t = math.floor(t / step + 1e-9) * step
        if t == self._positions_time or not self._moving:
            return
        self._positions_time = t
        for g, model in self._moving:
            xy = model.positions(t)
            free = ~self.pinned[g.start:g.start + g.count]
            if free.all():
                self.env.set_positions(slice(g.start, g.start + g.count), xy)
            else:
                self.env.set_positions(model.ids[free], xy[free])

    def select(self, sel: S.Selector) -> np.ndarray:
        """Ids of the devices a selector designates now (present devices; geometric ones among the alive)."""
        cand = self.present.copy()
        if sel.deployment is not None:
            deps = self.scenario.deployments
            i = sel.deployment if isinstance(sel.deployment, int) else [d.name for d in deps].index(sel.deployment)
            g = self.groups[i]
            inside = np.zeros(self.capacity, dtype=bool)
            inside[g.start:g.start + g.count] = True
            cand &= inside
        if sel.ids is not None:
            ids = np.unique(np.asarray(sel.ids, dtype=np.int64))
            return ids[cand[ids]]
        if sel.all or (sel.region is None and sel.box is None and sel.polygon is None and sel.nearest is None):
            return np.flatnonzero(cand)
        cand &= self.alive
        ids = np.flatnonzero(cand)
        pos = self.positions[ids]
        if sel.region is not None:
            return ids[self.region[ids] == self.regions.index(sel.region)]
        if sel.nearest is not None:
            d = np.linalg.norm(pos - np.asarray(sel.nearest), axis=1)
            order = np.lexsort((ids, d))
            return np.sort(ids[order[: sel.count]])
        poly = area_polygon(None, sel.polygon, sel.box, self.regions)
        return ids[covers_xy(poly, pos)]

    # -- faults --------------------------------------------------------------------------------------------
    def _fault(self, index: int, t: float) -> None:
        f = self.scenario.faults[index]
        count = 0
        if isinstance(f, S.CrashFault):
            ids = self.select(f.devices)
            ids = ids[self.alive[ids]]
            self._crash(ids)
            count = len(ids)
            if f.restart is not None and len(ids):
                self._push(t + f.restart, FAULT, "restart", ids)
        elif isinstance(f, S.JoinFault):
            g = next(g for g in self.groups if g.joins == f.at and g.deployment is f.deployment)
            self._appear(g, t)
            count = g.count
        elif isinstance(f, S.MoveFault):
            ids = self.select(f.devices)
            if f.to is not None:
                xy = np.tile(np.asarray(f.to, dtype=np.float64), (len(ids), 1))
            elif f.by is not None:
                xy = self.positions[ids] + np.asarray(f.by)
            else:
                xy = sample_in_polygon(self.regions.polygon(f.region), len(ids),
                                       generator_uniform(self._select_rng, len(ids)), f"region {f.region!r}")
            self.pinned[ids] = True
            self.env.set_positions(ids, xy)
            count = len(ids)
        elif isinstance(f, S.SensorFault):
            ids = self.select(f.devices)
            self.sensors[f.sensor][ids] = f.value
            count = len(ids)
        elif isinstance(f, S.CutFault):
            devices = self.select(f.devices) if f.devices is not None else None
            self.env.add_cut(Cut(f.name, self.capacity, np.asarray(f.pairs, dtype=np.int64).reshape(-1, 2),
                                 f.wall, devices))
            count = 1
        elif isinstance(f, S.RestoreFault):
            count = self.env.restore(f.name)
        self.faults_log.append(FaultRecord(t, f.kind, count, index))

    def _crash(self, ids: np.ndarray) -> None:
        self.env.set_alive(ids, False)
        self.crashed[ids] = True
        self.next_time[ids] = math.inf
        self.last_round[ids] = -math.inf
        for mask in self.has_output.values():
            mask[ids] = False
        if len(ids):
            self.vm.forget(ids)
            for hook in self.crash_hooks:
                hook(ids)

    def _restart(self, ids: np.ndarray, t: float) -> None:
        ids = ids[self.crashed[ids]]
        self.crashed[ids] = False
        self.env.set_alive(ids, True)
        self._push_rounds(ids, self.schedule.start(ids, t))
        self.faults_log.append(FaultRecord(t, "restart", len(ids), -1))


class SimulationError(RuntimeError):
    """The program failed during a round: carries the simulated time and the original exception."""

    def __init__(self, time: float, error: BaseException):
        self.time = time
        self.error = error
        super().__init__(f"the program failed at time {time:g}: {type(error).__name__}: {error}")


def _make_vm(program: Callable[[], Any], device: str, torch_values: bool = False) -> RoundVM:
    """The VM for a run: numpy on the cpu, torch on a GPU; `torch_values` (learning scenarios, whose model leaves
    are torch tensors) selects torch on the cpu as well."""
    if device == "cpu":
        return RoundVM(program, backend="torch") if torch_values else RoundVM(program)
    if device.startswith("cuda"):
        try:
            import torch
        except ImportError:
            raise ScenarioError("--device cuda needs PyTorch, which is not installed") from None
        if not torch.cuda.is_available():
            raise ScenarioError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
        return RoundVM(program, backend="torch", device=device)
    raise ScenarioError(f"--device {device}: expected cpu or cuda")


def _adapter(need: str, engine: Engine, config: Any) -> Any:
    """The adapter that provides a resource a program needs (see loader.RESOURCES)."""
    if need == "learning":
        from .learning import LearningAdapter

        return LearningAdapter(engine, config)
    raise ScenarioError(f"the program needs {need!r}, which the simulator cannot provide", "program.name")


def _name_outputs(result: Any) -> dict[str, Any]:
    """Program results by name: a dict's keys, `value` for a single value, `value_0`, `value_1`... otherwise."""
    if isinstance(result, dict):
        out = {}
        for k, v in result.items():
            leaves, _ = tree_flatten(v)
            if len(leaves) == 1:
                out[str(k)] = leaves[0]
            else:
                out.update({f"{k}_{i}": leaf for i, leaf in enumerate(leaves)})
        return out
    leaves, _ = tree_flatten(result)
    if len(leaves) == 1:
        return {"value": leaves[0]}
    return {f"value_{i}": leaf for i, leaf in enumerate(leaves)}


def _deployment_path(s: S.Scenario, i: int) -> str:
    if i < len(s.deployments):
        return f"deployments[{i}]"
    joins = [k for k, f in enumerate(s.faults) if isinstance(f, S.JoinFault)]
    return f"faults[{joins[i - len(s.deployments)]}].deployment"
