"""fieldlearn.sim.vehicles, through the engine: replayed vehicles sit on SUMO's coordinates at SUMO's times, join at
their departure and leave after their arrival as SUMO recorded them, never hold a link while absent, start fresh and
are forgotten when they leave; a live SUMO run gives the positions of its own FCD export; bad input names the YAML
path (and file and line). Live runs are skipped, with the reason, where SUMO is not installed."""
from __future__ import annotations

import copy
import gzip
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from fieldlearn import rep
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import resolve_scenario
from fieldlearn.sim.sumo import CitySpec, build_city, run_fcd, sumo_missing
from fieldlearn.sim.inputs import LivePlan, ReplayPlan

from .sim_helpers import SCENARIOS, gradient_program

DATA = Path(__file__).parent / "data"
CITY = SCENARIOS / "data" / "city-6x6"
MISSING = sumo_missing(binding=True)
needs_sumo = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def fcd_oracle(path: Path) -> dict[float, dict[str, tuple[float, float]]]:
    """SUMO's samples read with ElementTree: {time: {vehicle: (x, y)}}."""
    root = ET.fromstring(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    out: dict[float, dict[str, tuple[float, float]]] = {}
    for step in root.iter("timestep"):
        out[float(step.get("time"))] = {v.get("id"): (float(v.get("x")), float(v.get("y")))
                                        for v in step.iter("vehicle")}
    return out


def vehicles(source: dict, rounds: int = 300, period: float = 1.0, time: dict | None = None, **extra) -> dict:
    """A scenario of vehicles from `source` (a trace: or sumo: block), one road-side unit, the gradient."""
    dep = {"name": "vehicles", "kind": "vehicles", **source}
    if time is not None:
        dep["time"] = time
    return {"name": "veh", "seed": 1, "duration": {"rounds": rounds}, "schedule": {"kind": "sync", "period": period},
            "sensors": {"source": {"default": False, "set": [{"devices": {"deployment": "rsu"}, "value": True}]}},
            "deployments": [dep, {"name": "rsu", "kind": "points", "points": [[150.0, 150.0]]}],
            "links": {"rule": "radius", "radius": 100.0}, "program": "gradient", **extra}


class Watcher:
    """Per probe instant: positions and presence; per batch: who fired when; checks the graph at every probe."""

    def __init__(self, e: Engine, every: float = 1.0):
        self.positions: dict[float, np.ndarray] = {}
        self.present: dict[float, np.ndarray] = {}
        self.fired: dict[int, list[float]] = defaultdict(list)
        e.every(every, self.probe)
        e.round_hooks.append(self.batch)

    def probe(self, e: Engine) -> None:
        self.positions[e.time] = e.positions.copy()
        self.present[e.time] = e.present.copy()
        g = e.graph
        rows = g.rows()
        assert e.alive[rows].all() and e.alive[g.neighbours].all(), f"a link holds an absent device at {e.time}"
        assert not (e.alive & ~e.present).any()
        assert np.isfinite(e.positions[e.alive]).all() and np.isnan(e.positions[~e.present]).all()

    def batch(self, e: Engine, ids: np.ndarray, outs: dict) -> None:
        assert e.present[ids].all() and e.alive[ids].all(), f"an absent device fired at {e.time}"
        for i in ids.tolist():
            self.fired[i].append(e.time)


def run_watched(data: dict, every: float = 1.0, program=None) -> tuple[Engine, Watcher]:
    e = Engine(resolve_scenario(data, SCENARIOS), program)
    w = Watcher(e, every)
    e.run()
    return e, w


# ------------------------------------------------------------------------------------------- replay in the engine
def test_the_engine_puts_every_vehicle_at_sumos_coordinates_at_sumos_times():
    oracle = fcd_oracle(CITY / "fcd.xml.gz")
    e, w = run_watched(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}))
    names = e.loaded.vehicles[0].trace.names
    assert len(names) == 300 and len(w.positions) == 300
    worst, checked = 0.0, 0
    for t, pos in w.positions.items():
        here = {names[i]: pos[i] for i in np.flatnonzero(w.present[t][:300])}
        assert sorted(here) == sorted(oracle[t]), t  # exactly the vehicles SUMO lists at that step
        for name, (x, y) in oracle[t].items():
            worst = max(worst, abs(here[name][0] - x), abs(here[name][1] - y))
            checked += 1
    assert checked == 25_335 and worst <= 1e-6


def test_time_maps_simulator_time_to_sumo_time_and_positions_interpolate_between_steps():
    oracle = fcd_oracle(CITY / "fcd.xml.gz")
    # simulator time t is SUMO's second 100 + 2 t; rounds every 0.25: SUMO steps fall on every other round
    e, w = run_watched(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}, rounds=80, period=0.25,
                                time={"start": 100.0, "scale": 2.0}), every=0.25)
    names = e.loaded.vehicles[0].trace.names
    index = {n: i for i, n in enumerate(names)}
    for t, pos in w.positions.items():
        s = 100.0 + 2.0 * t
        if s == int(s):
            got = {names[i] for i in np.flatnonzero(w.present[t][:300])}
            assert got == set(oracle[s])
            for name, xy in oracle[s].items():
                assert np.abs(pos[index[name]] - xy).max() <= 1e-6
        else:  # half way between two steps: present at both, on the straight line between them
            a, b = oracle[s - 0.5], oracle[s + 0.5]
            both = set(a) & set(b)
            assert {names[i] for i in np.flatnonzero(w.present[t][:300])} == both
            for name in both:
                mid = (np.asarray(a[name]) + np.asarray(b[name])) / 2
                assert np.abs(pos[index[name]] - mid).max() <= 1e-9


def tripinfo() -> dict[str, tuple[float, float]]:
    """SUMO's own trip records: (depart, arrival) per vehicle (arrival -1: still driving at the end)."""
    root = ET.fromstring(gzip.decompress((CITY / "tripinfo.xml.gz").read_bytes()))
    return {t.get("id"): (float(t.get("depart")), float(t.get("arrival"))) for t in root.iter("tripinfo")}


def test_vehicles_join_at_their_departure_and_leave_after_their_last_step_as_sumo_recorded():
    e, w = run_watched(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}))
    names = e.loaded.vehicles[0].trace.names
    trips = tripinfo()
    assert set(trips) == set(names)
    for i, name in enumerate(names):
        depart, arrival = trips[name]
        last = 299.0 if arrival < 0 else arrival - 1.0  # SUMO lists a vehicle up to the step before it arrives
        assert w.fired[i] == list(np.arange(depart, last + 1.0)), name  # every round of its trip, no other
    assert e.capacity == 301 and e.departed[:300].all() and not e.present[:300].any()  # the trace ends at 299 s
    assert w.fired[300] == list(np.arange(0.0, 300.0))  # the road-side unit fires throughout
    counts = [int(p[:300].sum()) for p in w.present.values()]
    assert max(counts) == 119 and abs(np.mean(counts) - 84.45) < 0.01  # as the city's README says


def test_a_vehicle_joins_fresh_and_is_forgotten_when_it_leaves():
    def counting():
        return {"rounds": rep(0, lambda k: k + 1), **gradient_program()}

    e, w = run_watched(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}, rounds=150), program=counting)
    values, valid = e.output("rounds")
    for i in range(300):
        if e.present[i]:
            assert valid[i] and values[i] == len(w.fired[i])  # counted from 1 at its first round: a fresh state
        else:
            assert not valid[i]  # not arrived yet, or gone: no output
    gone = np.flatnonzero(e.departed)
    assert len(gone) > 50 and (np.asarray(e.vm.last_fire)[gone] == -1).all()  # the VM forgot the vehicles that left


def test_entering_after_departing_starts_from_scratch():
    def counting():
        return {"rounds": rep(0, lambda k: k + 1)}

    e = Engine(resolve_scenario(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}, rounds=20), SCENARIOS), counting)
    e.run(until=10.0)
    assert e.output("rounds")[0][0] == 10
    e.depart(np.array([0]))
    assert not e.present[0] and not e.alive[0] and e.departed[0] and not e.crashed[0]
    e.run(until=12.0)
    e.enter(np.array([0]), 12.0)
    e.run(until=15.0)
    assert e.output("rounds")[0][0] == 3 and e.present[0] and not e.departed[0]


def test_metrics_count_present_alive_and_departed_devices():
    from fieldlearn.sim.simulate import run_scenario

    data = vehicles({"trace": "data/city-6x6/fcd.xml.gz"}, rounds=300,
                    exports={"metrics": ["devices", "present", "departed"], "interval": 50.0})
    result = run_scenario(resolve_scenario(data, SCENARIOS))
    rows = {r[0]: r[1:] for r in result.rows}
    oracle = fcd_oracle(CITY / "fcd.xml.gz")
    trips = tripinfo()
    for t, (alive, present, departed) in rows.items():
        assert alive == present == len(oracle[t]) + 1  # the vehicles SUMO lists, and the road-side unit
        assert departed == sum(1 for d, a in trips.values() if a >= 0 and a - 1 < t)


def test_a_csv_trace_with_a_join_fault_brings_only_the_vehicles_present_from_then_on():
    data = vehicles({"trace": str(DATA / "walk.csv")}, rounds=150)
    data["deployments"] = [data["deployments"][1]]
    data["faults"] = [{"at": 45.0, "kind": "join", "deployment": {"kind": "vehicles", "trace": str(DATA / "walk.csv")}}]
    e, w = run_watched(data)
    # anna walks 0..120 s, bruno 30..90 s: both join at the fault (45 s), bruno leaves after 90, anna after 120
    assert w.fired[1] == list(np.arange(45.0, 121.0)) and w.fired[2] == list(np.arange(45.0, 91.0))
    assert [(f.time, f.kind, f.count) for f in e.faults_log] == [(45.0, "join", 2)]


# ------------------------------------------------------------------------------------------- live
def city_spec(tmp: Path) -> dict:
    return {"city": {"blocks": [2, 2], "vehicles": 12, "depart_end": 24.0, "duration": 60.0, "seed": 5},
            "cache": str(tmp / "sumo-cache")}


@needs_sumo
def test_a_live_run_in_the_engine_gives_the_positions_of_its_own_fcd_export(tmp_path):
    live = resolve_scenario(vehicles({"sumo": city_spec(tmp_path)}, rounds=50, period=0.5), SCENARIOS)
    plan = live.vehicles[0]
    assert isinstance(plan, LivePlan) and plan.count == 12 and plan.run.end == 27.0  # 25 SUMO s and 2 steps
    e = Engine(live)
    w_live = Watcher(e, 0.5)
    e.run()
    assert not plan_is_running(e)  # the run closed SUMO at its end: another may start
    fcd = run_fcd(plan.run, tmp_path / "own.fcd.xml", precision=8)
    e2, w_replay = run_watched(vehicles({"trace": str(fcd)}, rounds=50, period=0.5), every=0.5)
    assert e.capacity == e2.capacity == 13
    assert list(w_live.present) == list(w_replay.present) and len(w_live.present) == 50
    for t in w_live.present:
        assert np.array_equal(w_live.present[t], w_replay.present[t]), t
        here = w_live.present[t]
        assert np.abs(w_live.positions[t][here] - w_replay.positions[t][here]).max(initial=0.0) <= 1e-6, t
    assert w_live.fired == w_replay.fired and max(int(p.sum()) for p in w_live.present.values()) >= 6


def plan_is_running(e: Engine) -> bool:
    return e.groups[0].mobility.running


@needs_sumo
def test_a_live_run_from_a_network_and_routes_and_from_a_configuration(tmp_path):
    city = build_city(CitySpec(blocks=(2, 2), vehicles=12, depart_end=24.0, duration=60.0, seed=5), tmp_path / "c")
    cfg = tmp_path / "run.sumocfg"
    cfg.write_text(f"""<configuration>
    <input><net-file value="{city.net}"/><route-files value="{city.routes}"/></input>
    <time><begin value="0"/><end value="40"/><step-length value="1"/></time>
    <random_number><seed value="5"/></random_number>
</configuration>
""")
    runs = []
    for source in ({"net": str(city.net), "routes": str(city.routes), "seed": 5}, {"config": str(cfg)}):
        e = Engine(resolve_scenario(vehicles({"sumo": source}, rounds=30), SCENARIOS))
        w = Watcher(e)
        e.run()
        runs.append(w)
    assert runs[0].fired == runs[1].fired and len(runs[0].fired) > 5
    for t in runs[0].positions:
        assert np.array_equal(runs[0].positions[t], runs[1].positions[t], equal_nan=True)


# ------------------------------------------------------------------------------------------- bad input
def resolve_error(data: dict, base: Path = SCENARIOS) -> ScenarioError:
    with pytest.raises(ScenarioError) as err:
        resolve_scenario(data, base)
    return err.value


def test_a_bad_trace_row_names_the_yaml_path_the_file_and_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,time,x,y\na,0,1,2\na,1,x,2\n")
    err = resolve_error(vehicles({"trace": str(bad)}), tmp_path)
    assert err.path == "deployments[0].trace.file" and str(bad) in err.text
    assert "line 3: x must be a number (got 'x')" in err.text
    err = resolve_error(vehicles({"trace": "absent.xml"}), tmp_path)
    assert err.path == "deployments[0].trace.file" and "not found" in err.text
    err = resolve_error(vehicles({"trace": {"file": str(bad), "coords": "lonlat"}}), tmp_path)
    assert err.path == "deployments[0].trace.coords" and "FCD traces only" in err.text
    odd = tmp_path / "walk.kml"
    odd.write_text("")
    err = resolve_error(vehicles({"trace": str(odd)}), tmp_path)
    assert "unknown trace format" in err.text


def test_a_vehicle_deployment_needs_exactly_one_source_and_sumo_one_way_in():
    err = resolve_error(vehicles({"trace": "data/city-6x6/fcd.xml.gz", "sumo": {"net": "a", "routes": ["b"]}}))
    assert err.path == "deployments[0]" and "exactly one of trace, sumo" in err.text
    err = resolve_error(vehicles({"sumo": {"net": "a.net.xml"}}))
    assert "net and routes go together" in err.text
    err = resolve_error(vehicles({"sumo": {"config": "a.sumocfg", "city": {}}}))
    assert "exactly one of config, net (with routes), city (got config, city)" in err.text
    err = resolve_error(vehicles({"trace": "data/city-6x6/fcd.xml.gz", "mobility": {"kind": "static"}}))
    assert err.path == "deployments[0].mobility"
    err = resolve_error(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}, mobility_step=1.0))
    assert err.path == "mobility_step" and "does not apply to vehicles" in err.text


def test_a_live_run_without_sumo_is_refused_at_load_time(monkeypatch):
    import fieldlearn.sim.sumo as sumo

    monkeypatch.setattr(sumo, "binding_missing", lambda backend: "the Python module libsumo is not installed")
    err = resolve_error(vehicles({"sumo": {"net": "data/city-6x6/net.net.xml.gz",
                                           "routes": ["data/city-6x6/routes.rou.xml.gz"]}}))
    assert err.path == "deployments[0].sumo" and "libsumo is not installed" in err.text
    assert "a recorded trace replays without it" in err.text


@needs_sumo
def test_route_files_with_flows_need_a_vehicle_count(tmp_path):
    routes = tmp_path / "flows.rou.xml"
    routes.write_text('<routes><flow id="f" begin="0" end="10" number="5" from="A0A1" to="A1A2"/></routes>\n')
    data = vehicles({"sumo": {"net": str(CITY / "net.net.xml.gz"), "routes": [str(routes)]}})
    err = resolve_error(data)
    assert err.path == "deployments[0].sumo.routes" and "line 1: a <flow>" in err.text and "sumo.vehicles" in err.text
    data["deployments"][0]["sumo"]["vehicles"] = 5
    assert resolve_scenario(data, SCENARIOS).counts == (5, 1)


def test_sensors_of_vehicles_are_checked_against_the_vehicles_counted():
    data = vehicles({"trace": "data/city-6x6/fcd.xml.gz", "sensors": {"kind_of": [1, 2]}})
    err = resolve_error(data)
    assert err.path == "deployments[0].sensors.kind_of" and "2 values for 300 devices" in err.text


def test_the_plan_is_what_the_loader_resolved_for_the_deployment():
    loaded = resolve_scenario(vehicles({"trace": "data/city-6x6/fcd.xml.gz"}), SCENARIOS)
    plan = loaded.resolved(0)
    assert isinstance(plan, ReplayPlan) and plan.count == 300 and loaded.counts == (300, 1)
    assert loaded.resolved(1) is None and loaded.capacity == 301
    again = copy.deepcopy(loaded)  # a sweep hands loaded scenarios to its workers
    assert again.vehicles[0].trace.names == plan.trace.names


def test_the_same_vehicle_scenario_and_seed_give_byte_identical_files(tmp_path):
    from fieldlearn.sim.simulate import run_scenario

    from .sim_helpers import city

    outs = []
    for k in range(2):
        loaded = city(exports={"values": ["gradient"], "metrics": ["present", "departed"],
                               "per_device": ["gradient"], "figures": {"snapshots": [{"times": [20, "end"]}]}})
        run_scenario(loaded, tmp_path / f"r{k}")
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / f"r{k}").iterdir())})
    assert len(outs[0]) == 6 and outs[0] == outs[1]
