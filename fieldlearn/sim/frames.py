"""Frames of a run for watching it: positions, alive devices, links, values, regions and faults at recorded times.

A `FrameRecorder` attaches to a running engine through its public probe (`Engine.every`), so rounds between two
recorded times cost nothing; `finish` returns the `Recording` that the animation and the viewer draw. A calculus
`Trace` on a `Network` becomes a Recording with `recording_from_trace`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from fieldlearn.calculus.pytree import tree_flatten
from fieldlearn.lib import NO_ID

from .colouring import Colouring, is_categorical

if TYPE_CHECKING:
    from fieldlearn.calculus import Network, Trace

    from .engine import Engine


@dataclass(frozen=True)
class FaultMark:
    """A fault as the pictures mark it: when, what, how many devices (or cuts) it touched."""

    time: float
    kind: str
    count: int

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.count})"


@dataclass
class Frame:
    """The network at one recorded time. Arrays run over every device id; absent devices have NaN positions."""

    time: float
    positions: np.ndarray  # float32 (capacity, 2)
    alive: np.ndarray  # bool: present and not crashed
    present: np.ndarray  # bool: in the world now (joined, and not departed), crashed or not
    links: np.ndarray  # int32 (m, 2): each link once, lower id first; shared by frames while the graph is unchanged
    values: dict[str, np.ndarray]  # float64 per device; NaN where the device holds no value (or a placeholder id)
    faults: int  # how many faults had happened by this time (a prefix of Recording.faults)
    walls: tuple[np.ndarray, ...] = ()  # the polylines of the wall cuts active now

    @property
    def crashed(self) -> np.ndarray:
        return self.present & ~self.alive


@dataclass
class Recording:
    """Every recorded frame of a run plus what does not change: region outlines, the fault log, value kinds, and the
    street network drawn behind the devices (lane centre lines, when the scenario names `streets`)."""

    name: str
    capacity: int
    frames: list[Frame]
    region_names: list[str] = field(default_factory=list)
    region_outlines: list[np.ndarray] = field(default_factory=list)
    faults: list[FaultMark] = field(default_factory=list)
    categorical: dict[str, bool] = field(default_factory=dict)
    note: str = ""  # what a reader must know (e.g. only the final state was recorded)
    streets: list[np.ndarray] = field(default_factory=list)  # polylines (k, 2) in the devices' coordinates

    @property
    def names(self) -> list[str]:
        """The recorded values, in order of first appearance."""
        return list(self.categorical)

    @property
    def times(self) -> np.ndarray:
        return np.array([f.time for f in self.frames])

    def colouring(self, name: str, cmap: str = "viridis") -> Colouring:
        """How `name` colours devices, with colour-map limits fixed over the whole recording."""
        if name not in self.categorical:
            raise KeyError(name)
        samples = [f.values[name] for f in self.frames if name in f.values]
        return Colouring.for_values(name, self.categorical[name], samples, cmap)

    def default_value(self, preferred: Iterable[str] = ()) -> str | None:
        """The value to colour by when none is chosen: the first preferred one recorded, else the first recorded."""
        for name in preferred:
            if name in self.categorical:
                return name
        return self.names[0] if self.names else None

    def new_faults(self, i: int) -> list[FaultMark]:
        """The faults that happened after frame i-1 up to frame i (all faults so far for the first frame)."""
        start = self.frames[i - 1].faults if i > 0 else 0
        return self.faults[start:self.frames[i].faults]

    def moved(self, i: int) -> np.ndarray:
        """Devices whose position changed since the previous frame (none for the first frame)."""
        if i == 0:
            return np.zeros(self.capacity, dtype=bool)
        a, b = self.frames[i - 1].positions, self.frames[i].positions
        return np.isfinite(a[:, 0]) & np.isfinite(b[:, 0]) & np.any(a != b, axis=1)

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) over every device position, region outline and street."""
        parts = ([f.positions[np.isfinite(f.positions[:, 0])] for f in self.frames] + list(self.region_outlines)
                 + list(self.streets))
        pts = np.concatenate([p.reshape(-1, 2) for p in parts] + [np.zeros((0, 2))])
        if len(pts) == 0:
            return (0.0, 0.0, 1.0, 1.0)
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        return (float(x0), float(y0), float(x1), float(y1))

    def select(self, frames: list[int] | None = None, devices: np.ndarray | None = None) -> "Recording":
        """A smaller recording: the given frame indices and/or device ids (links kept only between kept devices)."""
        keep = list(range(len(self.frames))) if frames is None else list(frames)
        out: list[Frame] = []
        if devices is None:
            out = [self.frames[i] for i in keep]
        else:
            devices = np.asarray(devices, dtype=np.int64)
            mask = np.zeros(self.capacity, dtype=bool)
            mask[devices] = True
            cache: dict[int, np.ndarray] = {}
            for i in keep:
                f = self.frames[i]
                links = cache.get(id(f.links))
                if links is None:
                    links = f.links[mask[f.links[:, 0]] & mask[f.links[:, 1]]] if len(f.links) else f.links
                    cache[id(f.links)] = links
                pos = f.positions.copy()
                pos[~mask] = np.nan
                out.append(Frame(f.time, pos, f.alive & mask, f.present & mask, links,
                                 {k: np.where(mask, v, np.nan) for k, v in f.values.items()}, f.faults, f.walls))
        return Recording(self.name, self.capacity, out, self.region_names, self.region_outlines, self.faults,
                         self.categorical, self.note, self.streets)


def _float_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float64 copy with NaN where a device holds no value or holds lib's placeholder id (NO_ID, "no device")."""
    out = values.astype(np.float64)
    if values.dtype.kind in "iu":
        valid = valid & (values < NO_ID)
    out[~valid] = np.nan
    return out


class FrameRecorder:
    """Records a Frame of `engine` every `every` time units from `start` (after the rounds of that instant);
    with `every=None` only when `capture` is called.

    `values`: the outputs and sensors to keep (default: every program output with one number per device, every
    scenario sensor, and `region` when the scenario has regions).
    """

    def __init__(self, engine: "Engine", every: float | None, values: list[str] | None = None, start: float = 0.0):
        if every is not None and not every > 0:
            raise ValueError(f"frames need a positive interval, got {every!r}")
        self.every = every
        self.wanted = list(values) if values is not None else None
        self.frames: list[Frame] = []
        self.categorical: dict[str, bool] = {}
        self._graph: Any = None
        self._links = np.zeros((0, 2), dtype=np.int32)
        self._walls: list[tuple[str | None, np.ndarray]] = []
        self._seen_faults = 0
        if every is not None:
            engine.every(every, self.capture, start=start)

    def _names(self, e: "Engine") -> list[str]:
        if self.wanted is not None:
            return self.wanted
        names = [k for k, v in e.outputs.items() if v.ndim == 1]
        names += [k for k in e.sensors if k not in names]
        if len(e.regions) and "region" not in names:
            names.append("region")
        return names

    def _update_walls(self, e: "Engine") -> None:
        """Follow the fault log: wall cuts appear and disappear as the engine's cuts do."""
        for rec in e.faults_log[self._seen_faults:]:
            if rec.index < 0:
                continue
            f = e.scenario.faults[rec.index]
            if rec.kind == "cut" and getattr(f, "wall", None) is not None:
                self._walls.append((f.name, np.asarray(f.wall, dtype=np.float64)))
            elif rec.kind == "restore":
                self._walls = [(n, w) for n, w in self._walls if f.name is not None and n != f.name]
        self._seen_faults = len(e.faults_log)

    def capture(self, e: "Engine") -> None:
        """Record the engine's state now (the engine calls this at every recorded time)."""
        present = e.present.copy()
        pos = e.positions.astype(np.float32)
        pos[~present] = np.nan
        g = e.graph
        if g is not self._graph:
            rows = g.rows()
            half = rows < g.neighbours
            self._links = np.column_stack([rows[half], g.neighbours[half]]).astype(np.int32)
            self._graph = g
        values: dict[str, np.ndarray] = {}
        for name in self._names(e):
            try:
                v, valid = e.output(name)
            except KeyError:
                continue  # not produced (yet): e.g. an output only some branch writes
            if v.ndim != 1:
                continue
            if name not in self.categorical:
                self.categorical[name] = is_categorical(name, v.dtype)
            values[name] = _float_values(v, valid)
        self._update_walls(e)
        walls = tuple(w for _, w in self._walls)
        self.frames.append(Frame(float(e.time), pos, e.alive & present, present, self._links, values,
                                 len(e.faults_log), walls))

    def finish(self, e: "Engine") -> Recording:
        """The recording, with the final state (at the end time) added when the last frame is earlier."""
        if not self.frames or self.frames[-1].time < e.time:
            self.capture(e)
        streets = e.loaded.streets
        return Recording(e.scenario.name or "scenario", e.capacity, self.frames, list(e.regions.names),
                         [np.asarray(p.exterior.coords) for p in e.regions.polygons],
                         [FaultMark(r.time, r.kind, r.count) for r in e.faults_log], dict(self.categorical),
                         streets=streets.polylines() if streets is not None else [])


def final_state(e: "Engine") -> Recording:
    """A one-frame recording of the engine as it is now (for a run that recorded no frames)."""
    out = FrameRecorder(e, None).finish(e)
    out.note = "only the final state: set exports.viewer or exports.animation to record frames during the run"
    return out


def _named_leaves(result: Any) -> dict[str, np.ndarray]:
    """One array per device value of a program result: a dict's keys, or `value` / `value_0`, `value_1`..."""
    if isinstance(result, dict):
        out = {}
        for k, v in result.items():
            leaves, _ = tree_flatten(v)
            out.update({str(k): leaves[0]} if len(leaves) == 1 else {f"{k}_{i}": x for i, x in enumerate(leaves)})
        return out
    leaves, _ = tree_flatten(result)
    return {"value": leaves[0]} if len(leaves) == 1 else {f"value_{i}": x for i, x in enumerate(leaves)}


def recording_from_trace(trace: "Trace", network: "Network", every: int = 1, name: str = "run") -> Recording:
    """The rounds of a calculus Trace on its (static) Network as frames: time = rounds done, every `every` rounds.

    Devices sit at `network.positions` (a spring layout of the graph when it has none); values with one number
    per device are kept; sensors with one value per device are kept as well.
    """
    if trace.rounds == 0:
        raise ValueError("the trace holds no round yet")
    if every < 1:
        raise ValueError(f"every must be a positive number of rounds, got {every!r}")
    n = network.n_devices
    pos = network.positions
    if pos is None:
        import networkx as nx

        layout = nx.spring_layout(network.to_networkx(), seed=0)
        pos = np.array([layout[i] for i in range(n)])
    pos = np.asarray(pos, dtype=np.float32)[:, :2]
    g = network.graph
    rows = g.rows()
    half = rows < g.neighbours
    links = np.column_stack([rows[half], g.neighbours[half]]).astype(np.int32)
    everyone = np.ones(n, dtype=bool)
    sensors = {k: np.asarray(v) for k, v in network.sensors.items()
               if isinstance(v, np.ndarray) and v.shape == (n,)}
    categorical: dict[str, bool] = {}
    frames = []
    picked = list(range(every - 1, trace.rounds, every))
    if picked[-1] != trace.rounds - 1:
        picked.append(trace.rounds - 1)
    for k in picked:
        values = {}
        for key, leaf in list(_named_leaves(trace.history[k]).items()) + list(sensors.items()):
            leaf = np.asarray(leaf)
            if leaf.shape != (n,):
                continue
            categorical.setdefault(key, is_categorical(key, leaf.dtype))
            values[key] = _float_values(leaf, everyone)
        frames.append(Frame(float(k + 1), pos, everyone, everyone, links, values, 0))
    return Recording(name, n, frames, categorical=categorical)
