"""Faults: changes of the world at a given time (crash, join, move, sensor, cut, restore); one class per `faults:`
kind, built by `FAULTS.build(spec, index)`, each applied through the engine's public methods alone."""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from . import scenario as S
from .kinds import Kinds
from .links import Cut
from .regions import Regions, generator_uniform, sample_in_polygon

FAULTS = Kinds("fault")


class FaultTarget(Protocol):
    """What a fault may read and change: the engine's public face for faults."""

    capacity: int
    regions: Regions
    groups: list[Any]
    fault_rng: np.random.Generator

    @property
    def alive(self) -> np.ndarray: ...

    @property
    def positions(self) -> np.ndarray: ...

    def select(self, sel: S.Selector) -> np.ndarray: ...

    def crash(self, ids: np.ndarray) -> None: ...

    def restart(self, ids: np.ndarray, t: float) -> int: ...

    def appear(self, group: Any, t: float) -> int: ...

    def pin(self, ids: np.ndarray, xy: np.ndarray) -> None: ...

    def set_sensor(self, name: str, ids: np.ndarray, value: Any) -> None: ...

    def add_cut(self, cut: Cut) -> None: ...

    def restore_links(self, name: str | None) -> int: ...

    def add_fault(self, fault: "Fault") -> None: ...


class Fault:
    """A fault of the scenario (`index`: its place in `faults:`), due at time `at`."""

    kind: str

    def __init__(self, spec: Any, index: int):
        self.spec = spec
        self.index = index
        self.at = spec.at
        self.kind = spec.kind

    def apply(self, engine: FaultTarget, t: float) -> int:
        """Change the world at time `t`; return how many devices (or cuts) it touched."""
        raise NotImplementedError

    def sensor_values(self) -> dict[str, list[Any]]:
        """The values this fault may write into sensors (a sensor's type holds them from the start)."""
        return {}


@FAULTS.register(S.CrashFault)
class Crash(Fault):
    """The selected alive devices stop; with `restart`, they come back that much later, their state forgotten."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        ids = engine.select(self.spec.devices)
        ids = ids[engine.alive[ids]]
        engine.crash(ids)
        if self.spec.restart is not None and len(ids):
            engine.add_fault(Restart(ids, t + self.spec.restart))
        return len(ids)


class Restart(Fault):
    """Devices that crashed come back (those still crashed): the follow-up of a crash with `restart`."""

    kind = "restart"

    def __init__(self, ids: np.ndarray, at: float):
        self.ids = ids
        self.at = at
        self.index = -1

    def apply(self, engine: FaultTarget, t: float) -> int:
        return engine.restart(self.ids, t)


@FAULTS.register(S.JoinFault)
class Join(Fault):
    """The devices of a deployment appear (the group of devices this fault brings)."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        group = next(g for g in engine.groups if g.fault == self.index)
        return engine.appear(group, t)


@FAULTS.register(S.MoveFault)
class Move(Fault):
    """The selected devices jump `to` a point, `by` an offset, or to random points of a `region`, and stay there."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        f = self.spec
        ids = engine.select(f.devices)
        if f.to is not None:
            xy = np.tile(np.asarray(f.to, dtype=np.float64), (len(ids), 1))
        elif f.by is not None:
            xy = engine.positions[ids] + np.asarray(f.by)
        else:
            xy = sample_in_polygon(engine.regions.polygon(f.region), len(ids),
                                   generator_uniform(engine.fault_rng, len(ids)), f"region {f.region!r}")
        engine.pin(ids, xy)
        return len(ids)


@FAULTS.register(S.SensorFault)
class SetSensor(Fault):
    """A sensor takes a new value on the selected devices."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        ids = engine.select(self.spec.devices)
        engine.set_sensor(self.spec.sensor, ids, self.spec.value)
        return len(ids)

    def sensor_values(self) -> dict[str, list[Any]]:
        return {self.spec.sensor: [self.spec.value]}


@FAULTS.register(S.CutFault)
class CutLinks(Fault):
    """Links are cut: the listed pairs, those crossing a wall, those of some devices (one cut)."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        f = self.spec
        devices = engine.select(f.devices) if f.devices is not None else None
        engine.add_cut(Cut(f.name, engine.capacity, np.asarray(f.pairs, dtype=np.int64).reshape(-1, 2), f.wall, devices))
        return 1


@FAULTS.register(S.RestoreFault)
class Restore(Fault):
    """Cut links come back: the cuts with this name, or every cut; counts the cuts removed."""

    def apply(self, engine: FaultTarget, t: float) -> int:
        return engine.restore_links(self.spec.name)
