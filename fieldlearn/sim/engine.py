"""The discrete-event engine: a heap of timed events; device rounds due at one instant run as one VM batch."""
from __future__ import annotations

import heapq
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from fieldlearn.calculus.network import Graph
from fieldlearn.calculus.pytree import tree_flatten
from fieldlearn.calculus.vm import Inbox, MissingSensor, RoundVM

from . import scenario as S
from .deployments import Placement, area_polygon, place
from .environment import Environment, LazyRegion
from .errors import ScenarioError, format_path
from .faults import FAULTS, Fault
from .kinds import Kinds
from .links import Cut, FixedRule, KnnRule, RadiusRule, filter_links, sorted_unique
from .loader import LoadedScenario
from .mobility import MOBILITY, MobilityInputs, MobilityModel, PopulationModel
from .regions import Regions, covers_xy
from .rng import key, stream
from .timing import ROUND_TIMES
from . import vehicles  # noqa: F401  (importing it registers the vehicle kinds of deployments and mobility)

# Order of events at one instant: faults (and arrivals) change the world, then devices fire (one batch), then probes
# observe, then departures: a device that departs at t is there all through t and gone just after it.
FAULT, ROUND, PROBE, DEPART = 0, 1, 2, 3

LINK_RULES = Kinds("links rule")


@dataclass(frozen=True)
class Group:
    """The devices of one deployment: ids `start .. start+count-1`, where they start and how they move; `fault` is
    the join fault that brings them (None: they are there from time 0)."""

    index: int
    start: int
    count: int
    deployment: Any
    fault: int | None
    placement: Placement
    mobility: MobilityModel

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.count)


@LINK_RULES.register(S.RadiusLinks)
def _radius_rule(spec: S.RadiusLinks, groups: list[Group], capacity: int) -> RadiusRule:
    moves = any(g.mobility.moves for g in groups)
    return RadiusRule(spec.radius, skin=0.25 * spec.radius if moves else 0.0)


@LINK_RULES.register(S.KnnLinks)
def _knn_rule(spec: S.KnnLinks, groups: list[Group], capacity: int) -> KnnRule:
    return KnnRule(spec.k)


@LINK_RULES.register(S.FixedLinks)
def _fixed_rule(spec: S.FixedLinks, groups: list[Group], capacity: int) -> FixedRule:
    edges = [g.placement.edges + g.start for g in groups] + [np.asarray(spec.edges, dtype=np.int64).reshape(-1, 2)]
    return FixedRule(capacity, np.concatenate(edges), spec.lengths == "unit")


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
    `departed` (devices of a deployment whose devices come and go, e.g. vehicles, that left for good),
    `graph`, `sensors`, `outputs`/`output(name)`, `rounds` (per device), `device_rounds`, `batches`, `vm`,
    `scenario`, `capacity`, `faults_log`, `regions`, `seed`, `period`, `device`, `base_dir`, `deployed_mobile`,
    `groups`, `moving` (groups present whose devices move), `faults`, `round_times`, `fault_rng`, `nan_seen`;
    hooks: `round_hooks` (after each batch), `result_hooks` (may take values out of a batch's results before they
    are recorded as outputs), `crash_hooks` (devices that crashed or departed), `every`/`at` (probes); `metrics` by
    name.
    Changes of the world, for faults (`faults.FaultTarget`): `select`, `crash`, `restart`, `appear`, `pin`,
    `set_sensor`, `add_cut`, `restore_links`, `add_fault`; devices that come and go (vehicles): `enter`, `depart`.
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

        self.faults: list[Fault] = [FAULTS.build(f, i) for i, f in enumerate(s.faults)]
        self.groups = self._build_groups()
        self.env = Environment(cap, self.regions, LINK_RULES.build(s.links, self.groups, cap))
        self.env.set_positions(np.arange(cap), np.concatenate([g.placement.positions for g in self.groups]))
        self.present = np.zeros(cap, dtype=bool)
        self.crashed = np.zeros(cap, dtype=bool)
        self.departed = np.zeros(cap, dtype=bool)
        self.pinned = np.zeros(cap, dtype=bool)
        self.moving: list[Group] = []
        self._positions_time = -math.inf

        self.round_times = ROUND_TIMES.build(s.schedule, cap, stream(s.seed, "schedule"))
        self.next_time = np.full(cap, math.inf)
        self.last_round = np.full(cap, -math.inf)
        self.rounds = np.zeros(cap, dtype=np.int64)
        self.device_rounds = 0
        self.batches = 0
        self.retention = s.links.retention
        self.loss = s.links.loss
        self._loss_rng = stream(s.seed, "loss")
        self.fault_rng = stream(s.seed, "faults")  # what faults draw from, in the order they happen

        self.outputs: dict[str, np.ndarray] = {}
        self.has_output: dict[str, np.ndarray] = {}
        self.nan_seen = False  # an output held NaN (warned once)
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
            if g.fault is None:
                self.appear(g, 0.0)
        self._update_positions(0.0)
        for name, spec in s.sensors.items():
            for item in _sensor_default_and_sets(spec)[1]:
                self.set_sensor(name, self.select(item.devices), item.value)
        for fault in self.faults:
            self.add_fault(fault)
        self.adapters = {need: _adapter(need, self, config) for need, config in loaded.resources.items()}
        for adapter in self.adapters.values():
            self.metrics.update(adapter.metrics())

    # -- building ------------------------------------------------------------------------------------------
    def _build_groups(self) -> list[Group]:
        s, loaded = self.scenario, self.loaded
        brought_by = [None] * len(s.deployments) + [i for i, f in enumerate(s.faults) if isinstance(f, S.JoinFault)]
        groups, start = [], 0
        for i, (d, fault, count) in enumerate(zip(s.all_deployments(), brought_by, loaded.counts)):
            try:
                placement = place(d, stream(s.seed, f"deployment/{i}"), self.regions, loaded.resolved(i))
            except ValueError as exc:
                raise ScenarioError(str(exc), format_path(S.deployment_path(s, i))) from None
            inputs = MobilityInputs(self.regions, s.period, key(s.seed, f"mobility/{i}"), loaded.traces.get(i),
                                    loaded.vehicles.get(i))
            mobility = MOBILITY.build(d.mobility, np.arange(start, start + count), inputs)
            groups.append(Group(i, start, count, d, fault, placement, mobility))
            start += count
        return groups

    @property
    def deployed_mobile(self) -> np.ndarray:
        """Whether each device belongs to a deployment whose mobility is not static."""
        out = np.zeros(self.capacity, dtype=bool)
        for g in self.groups:
            out[g.start:g.start + g.count] = g.mobility.moves
        return out

    def _initial_sensors(self) -> dict[str, np.ndarray]:
        """Every scenario sensor over all device ids: its default, then deployments' values, in a type that holds
        every value the scenario may give it (defaults, set values, deployments' values, faults' values)."""
        s = self.scenario
        values: dict[str, list] = {n: [] for n in s.sensor_names()}
        defaults = {}
        for name, spec in s.sensors.items():
            defaults[name], sets = _sensor_default_and_sets(spec)
            values[name] += [defaults[name]] + [item.value for item in sets]
        for d in s.all_deployments():
            for name, v in d.sensors.items():
                values[name] += v if isinstance(v, list) else [v]
        for fault in self.faults:
            for name, written in fault.sensor_values().items():
                values[name] += written
        out = {}
        for name, vals in values.items():
            dtype = np.result_type(*[np.asarray(v).dtype for v in vals]) if vals else np.float64
            arr = np.full(self.capacity, defaults.get(name, 0), dtype=dtype)
            for g in self.groups:
                v = g.deployment.sensors.get(name)
                if v is not None:
                    arr[g.start:g.start + g.count] = v
            out[name] = arr
        return out

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
                if priority >= PROBE and ids_parts:
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
            self.faults_log.append(FaultRecord(t, payload.kind, payload.apply(self, t), payload.index))
        elif kind == "every":
            start, interval, k, fn = payload
            fn(self)
            self._push_probe(start, interval, k + 1, fn)
        elif kind == "at":
            payload(self)
        elif kind == "arrive":
            self._arrivals(payload, t)
        elif kind == "depart":
            self.depart(payload.start + payload.mobility.departures(t))

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
            result = self.vm.round(ids, Inbox(indptr, nbrs, {"distance": dist}, self.capacity))
            for hook in self.result_hooks:
                result = hook(ids, result)
        except ScenarioError:
            raise
        except MissingSensor as exc:
            if exc.name in self.vm.sensors:  # a sensor of another VM the program ran itself: its own failure
                raise SimulationError(t, exc) from exc
            known = ", ".join(sorted(self.vm.sensors))
            raise ScenarioError(f"the program senses {exc.name!r}, which no device has (sensors set: {known}); give "
                                f"it a value under `sensors:` or in a deployment's `sensors:`", "sensors") from None
        except (Exception, SystemExit) as exc:  # SystemExit: the program called sys.exit, a failure of the program
            raise SimulationError(t, exc) from exc
        outs = self._record(ids, result, sel)
        self.last_round[sel] = t
        self.rounds[sel] += 1
        self.device_rounds += len(ids)
        self.batches += 1
        for hook in self.round_hooks:
            hook(self, ids, outs)
        self._push_rounds(ids, self.round_times.next(ids, t, every))

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
            if not self.nan_seen and values.dtype.kind in "fc":
                self._warn_nan(name, ids, values)
        return out

    def _warn_nan(self, name: str, ids: np.ndarray, values: np.ndarray) -> None:
        """Warn once per run when an output first holds NaN (recorded as it is, it makes statistics NaN)."""
        nan = np.isnan(values).reshape(len(values), -1).any(axis=1)
        if nan.any():
            self.nan_seen = True
            device = int(ids[int(np.argmax(nan))])
            warnings.warn_explicit(f"the program's output {name!r} is NaN on device {device} at time {self.time:g} "
                                   "(the first NaN of this run; it is recorded as it is)", NanOutputWarning,
                                   "fieldlearn.sim", 0, module="fieldlearn.sim.engine")

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

    def appear(self, group: Group, t: float) -> int:
        """The devices of `group` appear at `t` where they are deployed, start moving and firing; returns how many
        (for a group whose devices come and go, those present at `t`: the others arrive when their model says)."""
        if group.mobility.changes_population:
            return self._start_population(group, t)
        ids = group.ids
        if group.mobility.moves:
            group.mobility.start(t, group.placement.positions)
            self.moving.append(group)
            self._positions_time = -math.inf
        self.present[ids] = True
        self.env.set_alive(ids, True)
        self._push_rounds(ids, self.round_times.start(ids, t))
        return group.count

    # -- devices that come and go (vehicles) ----------------------------------------------------------------------
    def _start_population(self, group: Group, t: float) -> int:
        """A group whose model says who is present when (a PopulationModel): it starts moving, and its devices present
        at `t` arrive now; the others arrive (and depart) at the instants its model names."""
        group.mobility.start(t, group.placement.positions)
        self.moving.append(group)
        self._positions_time = -math.inf
        self._update_positions(t)
        return self._arrivals(group, t)

    def _arrivals(self, group: Group, t: float) -> int:
        """The devices of `group` that arrive at `t` enter; their departures are due at the end of `t`, and the group's
        next change is scheduled."""
        model: PopulationModel = group.mobility  # type: ignore[assignment]
        ids = group.start + model.arrivals(t)
        self.enter(ids, t)
        self._push(t, DEPART, "depart", group)
        nxt = model.next_change(t)
        if nxt < self.end_time:
            self._push(nxt, FAULT, "arrive", group)
        return len(ids)

    def enter(self, ids: np.ndarray, t: float) -> None:
        """Devices `ids` join at `t` as fresh devices (no state: new ids, or ids whose state was dropped when they
        departed): present, alive, firing from `t` on."""
        if len(ids) == 0:
            return
        self.present[ids] = True
        self.departed[ids] = False
        self.env.set_alive(ids, True)
        self._push_rounds(ids, self.round_times.start(ids, t))

    def depart(self, ids: np.ndarray) -> None:
        """Devices `ids` leave the world: no rounds, no links, no outputs, their state dropped as for a crash (the VM
        and the crash hooks forget them); they are no longer present (nor crashed)."""
        if len(ids) == 0:
            return
        self.crash(ids)
        self.crashed[ids] = False
        self.present[ids] = False
        self.departed[ids] = True

    def _update_positions(self, t: float) -> None:
        """Bring moving devices to time `t` (or to the last mobility-update instant, with `mobility_step`)."""
        step = self.scenario.mobility_step
        if step is not None:
            t = math.floor(t / step + 1e-9) * step
        if t == self._positions_time or not self.moving:
            return
        self._positions_time = t
        for g in self.moving:
            xy = g.mobility.positions(t)
            free = ~self.pinned[g.start:g.start + g.count]
            if free.all():
                self.env.set_positions(slice(g.start, g.start + g.count), xy)
            else:
                self.env.set_positions(g.mobility.ids[free], xy[free])

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

    # -- changes of the world (what faults use) ---------------------------------------------------------------
    def crash(self, ids: np.ndarray) -> None:
        """Devices `ids` stop: no rounds, no messages, no outputs; the VM and the crash hooks forget them."""
        self.env.set_alive(ids, False)
        self.crashed[ids] = True
        self.next_time[ids] = math.inf
        self.last_round[ids] = -math.inf
        for mask in self.has_output.values():
            mask[ids] = False
        if len(ids):
            ran = ids[self.rounds[ids] > 0]  # the VM holds state only for devices that ran
            if len(ran):
                self.vm.forget(ran)
            for hook in self.crash_hooks:
                hook(ids)

    def restart(self, ids: np.ndarray, t: float) -> int:
        """The crashed devices among `ids` come back at `t` (from scratch); returns how many did."""
        ids = ids[self.crashed[ids]]
        self.crashed[ids] = False
        self.env.set_alive(ids, True)
        self._push_rounds(ids, self.round_times.start(ids, t))
        return len(ids)

    def pin(self, ids: np.ndarray, xy: np.ndarray) -> None:
        """Put devices `ids` at `xy`, where they stay: their mobility no longer moves them."""
        self.pinned[ids] = True
        self.env.set_positions(ids, xy)

    def set_sensor(self, name: str, ids: np.ndarray, value: Any) -> None:
        """Scenario sensor `name` reads `value` on devices `ids` from now on."""
        self.sensors[name][ids] = value

    def add_cut(self, cut: Cut) -> None:
        """Remove the links `cut` designates while it lasts."""
        self.env.add_cut(cut)

    def restore_links(self, name: str | None) -> int:
        """Undo the cuts called `name` (every cut when None); returns how many were undone."""
        return self.env.restore(name)

    def add_fault(self, fault: Fault) -> None:
        """Apply `fault` at its time `fault.at` (before the rounds of that instant) and log it in `faults_log`."""
        self._push(fault.at, FAULT, "fault", fault)


class NanOutputWarning(UserWarning):
    """A program's output holds NaN (said once per run, with the output, the first device and the time)."""


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


def _sensor_default_and_sets(spec: Any) -> tuple[Any, list[S.SensorSet]]:
    """A `sensors:` entry as (default, values set on selected devices): a bare value is everybody's default."""
    return (spec.default, spec.set) if isinstance(spec, S.SensorSpec) else (spec, [])
