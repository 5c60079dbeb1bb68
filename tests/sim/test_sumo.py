"""fieldlearn.sim.sumo: generated cities are cached and reproducible, SUMO's FCD replays onto its streets, and a
live run gives the positions of its own FCD export. Skipped, with the reason, where SUMO is not installed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString

from fieldlearn.sim.streets import read_net
from fieldlearn.sim.sumo import (CitySpec, LiveSumo, SumoFailed, SumoRun, build_city, city_commands, run_fcd,
                                 sumo_missing, sumo_version)
from fieldlearn.sim.traces import TimeMap, TraceReplay, read_fcd

SHIPPED = Path(__file__).parents[2] / "scenarios" / "data" / "city-6x6"
MISSING = sumo_missing()
needs_sumo = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
MISSING_BINDING = sumo_missing(binding=True)
needs_binding = pytest.mark.skipif(MISSING_BINDING is not None, reason=str(MISSING_BINDING))

SMALL = CitySpec(blocks=(2, 2), vehicles=12, depart_end=24.0, duration=60.0, seed=5)


# ------------------------------------------------------------------------------------------- without SUMO
def test_city_specs_are_checked():
    with pytest.raises(ValueError) as err:
        CitySpec(network="maze", blocks=(0, 3), block_length=-1, vehicles=0, seed=-1, min_trip=float("nan"))
    assert str(err.value) == ("network must be 'grid' or 'spider' (got 'maze'); blocks must be two integers >= 1 "
                              "(got (0, 3)); block_length must be a number > 0 (got -1); min_trip must be a number "
                              ">= 0 (got nan); vehicles must be an integer >= 1 (got 0); seed must be an integer >= 0 "
                              "(got -1)")
    with pytest.raises(ValueError, match=r"depart_end \(500\) must not be after duration \(300\)"):
        CitySpec(depart_end=500, duration=300)
    with pytest.raises(ValueError, match="10000 vehicles in 10 s depart less than 0.01 s apart"):
        CitySpec(vehicles=10000, depart_end=10)
    with pytest.raises(ValueError, match="blocks must be two integers >= 1 \\(got 6\\)"):
        CitySpec(blocks=6)
    with pytest.raises(ValueError, match="a spider network needs at least 3 arms"):
        CitySpec(network="spider", blocks=(2, 3))
    assert CitySpec(block_length=100) == CitySpec(block_length=100.0) and CitySpec(block_length=100).block_length == 100.0


def test_city_commands_are_netgenerate_then_random_trips():
    net, trips = city_commands(CitySpec(blocks=(6, 4), block_length=80, vehicles=100, depart_end=50, min_trip=300, seed=3))
    assert net == ["netgenerate", "--grid", "--grid.x-number", "7", "--grid.y-number", "5", "--grid.x-length", "80.0",
                   "--grid.y-length", "80.0", "--default.lanenumber", "1", "--seed", "3", "--output-file", "net.net.xml"]
    assert trips == ["python", "randomTrips.py", "--net-file", "net.net.xml", "--begin", "0", "--end", "49.75",
                     "--period", "0.5", "--seed", "3", "--validate", "--output-trip-file", "trips.trips.xml",
                     "--route-file", "routes.rou.xml", "--min-distance", "300.0"]
    spider, _ = city_commands(CitySpec(network="spider", blocks=(8, 3), block_length=120))
    assert spider[:8] == ["netgenerate", "--spider", "--spider.arm-number", "8", "--spider.circle-number", "3",
                          "--spider.space-radius", "120.0"]


# ------------------------------------------------------------------------------------------- with SUMO
@pytest.fixture(scope="module")
def city(tmp_path_factory):
    if MISSING is not None:
        pytest.skip(MISSING)
    return build_city(SMALL, tmp_path_factory.mktemp("sumo-cache"))


@needs_sumo
def test_a_city_is_built_once_into_its_cache_folder(city):
    assert city.folder.name.startswith("grid-2x2-") and city.net.is_file() and city.routes.is_file()
    doc = json.loads((city.folder / "city.json").read_text())
    assert doc["vehicles"] == 12 and doc["sumo_version"] == sumo_version() and doc["spec"]["seed"] == 5
    assert list(city.commands) == [" ".join(c) for c in city_commands(SMALL)]
    stamp = city.net.stat().st_mtime_ns
    again = build_city(SMALL, city.folder.parent)
    assert again.folder == city.folder and city.net.stat().st_mtime_ns == stamp
    other = build_city(CitySpec(blocks=(2, 2), vehicles=12, depart_end=24.0, duration=60.0, seed=6), city.folder.parent)
    assert other.folder != city.folder
    assert not [p for p in city.folder.parent.iterdir() if p.name.startswith(".")]  # no half-built folder left


@needs_sumo
def test_sumo_fcd_puts_every_vehicle_on_a_lane_of_the_network(city, tmp_path):
    tr = read_fcd(run_fcd(city.run(), tmp_path / "fcd.xml.gz"))
    assert len(tr) == 12 and tr.start == 0.0 and tr.end <= 59.0
    lanes = shapely.union_all([LineString(lane.shape) for lane in read_net(city.net, internal=True).lanes])
    assert shapely.distance(shapely.points(tr.xy), lanes).max() < 0.01
    sparse = read_fcd(run_fcd(city.run(), tmp_path / "sparse.xml", period=5.0, precision=4))
    assert np.array_equal(np.unique(sparse.times), np.arange(0.0, 60.0, 5.0)[: len(np.unique(sparse.times))])
    for t in np.unique(sparse.times):
        a, b = sparse.at(t), tr.at(t)
        here = dict(zip((tr.names[i] for i in b.index), b.xy))
        assert sorted(sparse.names[i] for i in a.index) == sorted(here)
        for i, xy in zip(a.index, a.xy):
            assert np.abs(xy - here[sparse.names[i]]).max() <= 0.005 + 1e-9  # 4 decimals against 2


@needs_sumo
def test_a_spider_city_builds(tmp_path):
    c = build_city(CitySpec(network="spider", blocks=(4, 2), block_length=80, vehicles=5, depart_end=10, duration=20,
                            seed=2), tmp_path)
    x0, y0, x1, y1 = read_net(c.net).bounds  # 4 arms, rings at 80 and 160 m around (160, 160); lanes stop short
    assert x0 == y0 and x1 == y1 and x0 + x1 == pytest.approx(320) and 280 < x1 - x0 < 320


@needs_sumo
def test_a_failing_sumo_run_is_reported(city, tmp_path):
    with pytest.raises(SumoFailed, match="exited with"):
        run_fcd(SumoRun(city.net, (tmp_path / "absent.rou.xml",), end=10), tmp_path / "f.xml")
    assert not list(tmp_path.iterdir())


@needs_sumo
@pytest.mark.skipif(not (SHIPPED / "city.json").is_file(), reason="no shipped city manifest")
def test_the_shipped_city_is_reproduced_by_its_spec(tmp_path):
    doc = json.loads((SHIPPED / "city.json").read_text())
    if doc["sumo_version"] != sumo_version():
        pytest.skip(f"the shipped trace was made with SUMO {doc['sumo_version']}, this is {sumo_version()}")
    spec = CitySpec(**{**doc["spec"], "blocks": tuple(doc["spec"]["blocks"])})
    made = read_fcd(run_fcd(build_city(spec, tmp_path).run(), tmp_path / "fcd.xml.gz", precision=2))
    shipped = read_fcd(SHIPPED / "fcd.xml.gz")
    assert made.names == shipped.names and np.array_equal(made.times, shipped.times)
    assert np.array_equal(made.xy, shipped.xy)


# ------------------------------------------------------------------------------------------- live
def live_against_own_export(city, tmp_path, backend, timemap=TimeMap()):
    pytest.importorskip(backend)
    fcd = tmp_path / f"live-{backend}.xml"
    times = np.arange(-2.0, 64.0, 0.25)
    frames = []
    with LiveSumo(city.run(), timemap=timemap, backend=backend, fcd_output=fcd) as live:
        for t in times:
            frames.append(live.at(t))
        names = list(live.names)
    replay = TraceReplay(read_fcd(fcd), timemap)
    assert names == list(replay.names) and len(names) == 12
    worst = 0.0
    for t, f in zip(times, frames):
        g = replay.at(t)
        assert f.time == t and np.array_equal(f.index, g.index), t
        if len(f.index):
            worst = max(worst, float(np.abs(f.xy - g.xy).max()))
    return worst, frames


@needs_binding
def test_a_live_run_gives_the_positions_of_its_own_fcd_export(city, tmp_path):
    worst, frames = live_against_own_export(city, tmp_path, "libsumo")
    assert worst <= 1e-6
    assert len(frames[0].index) == 0 and max(len(f.index) for f in frames) >= 5  # before the first step: nobody


@needs_binding
def test_a_live_run_maps_simulator_time_to_sumo_time(city, tmp_path):
    worst, frames = live_against_own_export(city, tmp_path, "libsumo", TimeMap(start=10.0, scale=0.5))
    assert worst <= 1e-6 and len(frames[-1].index) > 0  # t = 63.75 is SUMO's 41.9 s: still running


@needs_binding
def test_traci_drives_the_same_run(city, tmp_path):
    worst, _ = live_against_own_export(city, tmp_path, "traci")
    assert worst <= 1e-6


@needs_binding
def test_live_runs_refuse_going_back_and_a_second_libsumo(city):
    pytest.importorskip("libsumo")
    with LiveSumo(city.run()) as live:
        live.at(5.0)
        with pytest.raises(ValueError, match="non-decreasing"):
            live.at(1.0)
        with pytest.raises(RuntimeError, match="one simulation per process"):
            LiveSumo(city.run())
    with pytest.raises(RuntimeError, match="closed"):
        live.at(6.0)
    with pytest.raises(ValueError, match="backend must be"):
        LiveSumo(city.run(), backend="carla")


@needs_binding
def test_a_live_run_sumo_refuses_is_reported(city, tmp_path):
    pytest.importorskip("libsumo")
    with pytest.raises(SumoFailed, match="SUMO could not start"):
        LiveSumo(SumoRun(city.net, (tmp_path / "absent.rou.xml",), end=10))
    with LiveSumo(city.run()) as live:  # the failed start left libsumo free
        assert len(live.at(0.0).index) == 1


# ------------------------------------------------------------------------------------------- configurations, routes
def test_a_sumo_configuration_is_read_option_by_option(tmp_path):
    from fieldlearn.sim.safexml import FileFormatError
    from fieldlearn.sim.sumo import read_sumo_config

    cfg = tmp_path / "run.sumocfg"
    cfg.write_text('<configuration><input><net-file value="n.net.xml"/><route-files value="a.rou.xml, b.rou.xml"/>'
                   '</input><time><begin value="5"/><step-length value="0.5"/></time></configuration>\n')
    assert read_sumo_config(cfg) == {"net-file": "n.net.xml", "route-files": "a.rou.xml, b.rou.xml", "begin": "5",
                                     "step-length": "0.5"}
    cfg.write_text("<routes/>\n")
    with pytest.raises(FileFormatError, match="line 1: not a SUMO configuration"):
        read_sumo_config(cfg)


def test_route_files_count_their_vehicles_and_refuse_flows(tmp_path):
    from fieldlearn.sim.safexml import FileFormatError
    from fieldlearn.sim.sumo import route_vehicles

    assert route_vehicles([SHIPPED / "routes.rou.xml.gz"]) == 300
    assert route_vehicles([SHIPPED / "routes.rou.xml.gz", Path(__file__).parent / "data" / "grid2x2.rou.xml"]) == 306
    flows = tmp_path / "f.rou.xml"
    flows.write_text('<routes>\n<flow id="f" begin="0" end="9" number="3"/>\n</routes>\n')
    with pytest.raises(FileFormatError, match="line 2: a <flow> inserts vehicles as the run goes"):
        route_vehicles([flows])


def test_binding_missing_names_what_is_missing(monkeypatch):
    import fieldlearn.sim.sumo as sumo

    def absent(name):
        raise sumo.SumoUnavailable(f"the Python module {name} is not installed")

    monkeypatch.setattr(sumo, "_binding", absent)
    assert sumo.binding_missing("traci") == "the Python module traci is not installed"


@needs_binding
def test_a_live_run_says_what_comes_next_and_when_it_is_over(city):
    pytest.importorskip("libsumo")
    with LiveSumo(city.run(end=5.0)) as live:
        assert live.upcoming is None and not live.finished  # nothing asked yet
        first = live.at(0.0)
        assert live.upcoming.time == 1.0 and len(first.index) == 1 and 0 in live.upcoming.index
        live.at(3.0)
        assert live.upcoming.time == 4.0 and not live.finished
        live.at(4.0)
        assert live.upcoming is None and live.finished and len(live.at(9.0).index) == 0
