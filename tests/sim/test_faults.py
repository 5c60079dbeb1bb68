"""fieldlearn.sim.faults: each fault kind changes the world at its time, through the engine's public methods alone."""
from __future__ import annotations

import typing

import numpy as np
import pytest

from fieldlearn import rep
from fieldlearn.sim import scenario as S
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.faults import FAULTS, Crash, CutLinks, FaultTarget, Join, Move, Restart, Restore, SetSensor
from fieldlearn.sim.regions import Regions
from .sim_helpers import gradient_program, scenario


def test_crash_restart_forgets_state_and_messages():
    s = scenario(duration={"rounds": 12}, faults=[{"at": 3, "kind": "crash", "devices": {"ids": [4]}, "restart": 4}])
    e = Engine(s, lambda: {"count": rep(0, lambda c: c + 1)})
    e.run(until=5)
    assert not e.alive[4] and e.crashed[4]
    assert np.diff(e.graph.indptr)[4] == 0 and 4 not in e.graph.neighbours
    assert e.outputs["count"][0] == 5 and e.rounds[4] == 3
    assert not e.output("count")[1][4]
    e.run()
    assert e.alive[4] and e.outputs["count"][4] == 12 - 7  # restarted at t=7 from scratch
    assert [(f.kind, f.time) for f in e.faults_log] == [("crash", 3.0), ("restart", 7.0)]


def test_move_sensor_cut_restore_faults():
    s = scenario(
        duration={"rounds": 10},
        faults=[
            {"at": 2, "kind": "move", "devices": {"ids": [8]}, "to": [10, 10]},
            {"at": 3, "kind": "sensor", "devices": {"nearest": [2, 2]}, "sensor": "source", "value": True},
            {"at": 4, "kind": "cut", "name": "w", "wall": [[0.5, -1], [0.5, 5]]},
            {"at": 6, "kind": "restore", "name": "w"},
        ],
    )
    e = Engine(s, gradient_program)
    e.run(until=2.5)
    assert e.positions[8].tolist() == [10, 10] and np.diff(e.graph.indptr)[8] == 0
    e.run(until=3.5)
    assert e.sensors["source"].nonzero()[0].tolist() == [0, 5]  # nearest to (2, 2): 5 and 7 tie, lower id wins
    e.run(until=5)
    rows = e.graph.rows()
    xs = e.positions[:, 0]
    assert not np.any((xs[rows] < 0.5) & (xs[e.graph.neighbours] > 0.5))
    e.run()
    assert e.graph.n_links == 24 - 4  # 3x3 grid: 12 edges both ways, minus the two of device 8 (moved away)
    assert [f.count for f in e.faults_log] == [1, 1, 1, 1]


def test_move_by_an_offset_and_into_a_region_pins_the_devices():
    s = scenario(
        duration={"rounds": 6},
        regions=[{"name": "A", "box": [0, 0, 5, 5]}, {"name": "far", "box": [20, 20, 22, 21]}],
        deployments=[{"kind": "grid", "rows": 3, "cols": 3},
                     {"kind": "points", "points": [[0, 4]],
                      "mobility": {"kind": "tour", "stops": [[0.0, 4.0], [4.0, 4.0]], "dwell_time": 1.0,
                                   "speed": 1.0}}],
        faults=[{"at": 1, "kind": "move", "devices": {"ids": [0, 1]}, "by": [0.5, -1]},
                {"at": 2, "kind": "move", "devices": {"ids": [2, 9]}, "region": "far"}],
    )
    e = Engine(s, gradient_program)
    start = e.positions.copy()
    e.run(until=1.5)
    assert e.positions[[0, 1]].tolist() == (start[[0, 1]] + [0.5, -1]).tolist()
    e.run(until=2.5)
    assert e.regions.index_of(e.positions[[2, 9]]).tolist() == [1, 1]
    pinned = e.positions[9].copy()
    e.run()  # the touring device stays where the fault put it
    assert e.time == 6 and e.positions[9].tolist() == pinned.tolist()
    assert [(f.kind, f.count) for f in e.faults_log] == [("move", 2), ("move", 2)]


def test_restore_without_a_name_undoes_every_cut_and_counts_them():
    s = scenario(duration={"rounds": 6},
                 faults=[{"at": 1, "kind": "cut", "pairs": [[0, 1]]},
                         {"at": 1, "kind": "cut", "name": "x", "devices": {"ids": [4]}},
                         {"at": 3, "kind": "restore"}])
    e = Engine(s, gradient_program)
    full = e.graph.n_links
    e.run(until=2)
    assert e.graph.n_links == full - 2 - 8  # pair 0-1 both ways; the centre's 4 links both ways
    e.run()
    assert e.graph.n_links == full
    assert [(f.kind, f.count) for f in e.faults_log] == [("cut", 1), ("cut", 1), ("restore", 2)]


def test_a_sensor_fault_value_sets_the_sensor_type_from_the_start():
    s = scenario(sensors={"level": 0, "source": False},
                 faults=[{"at": 2, "kind": "sensor", "devices": {"ids": [3]}, "sensor": "level", "value": 0.5}])
    e = Engine(s, gradient_program)
    assert e.sensors["level"].dtype == np.float64 and not e.sensors["level"].any()
    e.run()
    assert e.sensors["level"].tolist() == [0, 0, 0, 0.5, 0, 0, 0, 0, 0]


def test_join_brings_its_own_deployment_and_a_selector_can_name_a_deployment():
    s = scenario(duration={"rounds": 6},
                 deployments=[{"kind": "grid", "rows": 3, "cols": 3, "name": "base"}],
                 faults=[{"at": 1, "kind": "join", "deployment": {"kind": "points", "points": [[1, 1.5], [2, 1.5]]}},
                         {"at": 2, "kind": "join", "deployment": {"kind": "points", "points": [[0, 1.5]]}},
                         {"at": 3, "kind": "crash", "devices": {"deployment": "base", "box": [0, 0, 0.5, 5]}}])
    e = Engine(s, gradient_program)
    e.run()
    assert [(f.kind, f.count) for f in e.faults_log] == [("join", 2), ("join", 1), ("crash", 3)]
    assert e.present.tolist() == [True] * 12 and np.flatnonzero(e.crashed).tolist() == [0, 3, 6]


class FakeWorld:
    """Exactly the members of FaultTarget, recording the calls that change the world."""

    def __init__(self):
        self.capacity = 4
        self.regions = Regions(["R"], [S.box_polygon([10, 10, 11, 11])])
        self.groups = []
        self.fault_rng = np.random.default_rng(0)
        self.alive = np.array([True, False, True, True])
        self.positions = np.zeros((4, 2))
        self.calls = []

    def select(self, sel):
        return np.array([0, 1, 2])

    def __getattr__(self, name):
        if name not in MEMBERS:
            raise AttributeError(f"a fault used {name!r}, which FaultTarget does not declare")
        return lambda *args: self.calls.append((name, *args)) or 7


MEMBERS = set(typing.get_type_hints(FaultTarget)) | {n for n in vars(FaultTarget) if not n.startswith("_")}


def test_faults_use_only_what_fault_target_declares():
    members = MEMBERS
    world = FakeWorld()
    assert {n for n in vars(world) if n != "calls"} | {"select"} <= members
    devices = S.Selector(all=True)
    crash = FAULTS.build(S.CrashFault(kind="crash", at=1.0, devices=devices, restart=2.0), 0)
    assert crash.apply(world, 1.0) == 2  # device 1 is down already
    (name, ids), (name2, restart) = world.calls
    assert (name, ids.tolist(), name2) == ("crash", [0, 2], "add_fault")
    assert isinstance(restart, Restart) and restart.at == 3.0 and restart.kind == "restart" and restart.index == -1
    world.calls.clear()
    move = FAULTS.build(S.MoveFault(kind="move", at=0.0, devices=devices, region="R"), 1)
    assert move.apply(world, 0.0) == 3
    (name, ids, xy), = world.calls
    assert name == "pin" and ids.tolist() == [0, 1, 2] and np.all((xy > 10) & (xy < 11))
    world.calls.clear()
    sensor = FAULTS.build(S.SensorFault(kind="sensor", at=0.0, devices=devices, sensor="s", value=2), 2)
    assert sensor.apply(world, 0.0) == 3 and sensor.sensor_values() == {"s": [2]}
    cut = FAULTS.build(S.CutFault(kind="cut", at=0.0, pairs=[[0, 3]]), 3)
    assert cut.apply(world, 0.0) == 1
    assert FAULTS.build(S.RestoreFault(kind="restore", at=0.0), 4).apply(world, 0.0) == 7
    assert [c[0] for c in world.calls] == ["set_sensor", "add_cut", "restore_links"]


@pytest.mark.parametrize("spec, cls", [
    (S.CrashFault(kind="crash", at=1, devices=S.Selector(all=True)), Crash),
    (S.JoinFault(kind="join", at=1, deployment=S.PointsDeployment(kind="points", points=[[0, 0]])), Join),
    (S.MoveFault(kind="move", at=1, devices=S.Selector(all=True), to=[0, 0]), Move),
    (S.SensorFault(kind="sensor", at=1, devices=S.Selector(all=True), sensor="s", value=1), SetSensor),
    (S.CutFault(kind="cut", at=1, pairs=[[0, 1]]), CutLinks),
    (S.RestoreFault(kind="restore", at=1), Restore),
])
def test_each_fault_kind_builds_its_own_class(spec, cls):
    fault = FAULTS.build(spec, 5)
    assert type(fault) is cls and (fault.kind, fault.index, fault.at) == (spec.kind, 5, 1)
