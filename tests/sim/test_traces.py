"""fieldlearn.sim.traces: replayed traces sit on SUMO's samples, interpolate between them, join and leave at the
right times; CSV, GPX and geo FCD readers, the projection, and an error naming file and line for each bad input."""
from __future__ import annotations

import gzip
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.traces import (EARTH_RADIUS_M, FileFormatError, LocalProjection, RecordedTrace, TimeMap,
                                   TraceReplay, load_recorded_trace, read_fcd, read_gpx, read_trace_csv,
                                   trace_format)

DATA = Path(__file__).parent / "data"
GRID_FCD = DATA / "grid2x2.fcd.xml"
SHIPPED = Path(__file__).parents[2] / "scenarios" / "data" / "city-6x6"


def sumo_samples(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """The oracle: (time, x, y) per vehicle, read with ElementTree."""
    out = defaultdict(list)
    for step in ET.parse(path).getroot().iter("timestep"):
        for v in step.iter("vehicle"):
            out[v.get("id")].append((float(step.get("time")), float(v.get("x")), float(v.get("y"))))
    return dict(out)


ORACLE = sumo_samples(GRID_FCD)
TRACE = read_fcd(GRID_FCD)


# ------------------------------------------------------------------------------------------- FCD replay
def test_replay_puts_each_vehicle_at_sumos_coordinates_at_sumos_times():
    by_time = defaultdict(dict)
    for name, rows in ORACLE.items():
        for t, x, y in rows:
            by_time[t][name] = (x, y)
    assert len(by_time) == 40 and sum(len(v) for v in by_time.values()) == 176
    for t, where in by_time.items():
        f = TRACE.at(t)
        assert [TRACE.names[i] for i in f.index] == sorted(where, key=TRACE.names.index)
        want = np.array([where[TRACE.names[i]] for i in f.index])
        assert np.abs(f.xy - want).max() <= 1e-6


def test_vehicles_are_numbered_by_first_appearance_then_name():
    firsts = sorted((rows[0][0], name) for name, rows in ORACLE.items())
    assert TRACE.names == tuple(name for _, name in firsts) == ("0", "1", "2", "3", "5", "4")  # 4 waited 3 s
    assert len(TRACE) == 6 and (TRACE.start, TRACE.end) == (0.0, 39.0)


def test_presence_starts_at_departure_and_ends_one_step_before_arrival():
    trips = {t.get("id"): (float(t.get("depart")), float(t.get("arrival")))
             for t in ET.parse(DATA / "grid2x2.tripinfo.xml").getroot().iter("tripinfo")}
    planned = {v.get("id"): float(v.get("depart")) for v in ET.parse(DATA / "grid2x2.rou.xml").getroot().iter("vehicle")}
    assert trips["4"][0] == planned["4"] + 3.0  # SUMO inserted it late: it joins when it really departs
    assert sum(arrival < 0 for _, arrival in trips.values()) == 2  # still driving when SUMO stops at 40 s
    for k, name in enumerate(TRACE.names):
        depart, arrival = trips[name]
        assert TRACE.first[k] == depart
        assert TRACE.last[k] == (arrival - 1.0 if arrival >= 0 else 39.0)
        assert k in TRACE.present(depart) and k not in TRACE.present(depart - 0.5)
        leave = TRACE.last[k]
        assert k in TRACE.present(leave) and k not in TRACE.present(leave + 0.5)
    assert len(TRACE.present(39.5)) == 0 and len(TRACE.at(-1.0).index) == 0


@settings(max_examples=60, deadline=None)
@given(st.floats(-2.0, 42.0, allow_nan=False))
def test_between_samples_a_vehicle_moves_linearly(t):
    f = TRACE.at(t)
    want_present = [name for name, rows in ORACLE.items() if rows[0][0] <= t <= rows[-1][0]]
    assert sorted(TRACE.names[i] for i in f.index) == sorted(want_present)
    for i, xy in zip(f.index, f.xy):
        rows = ORACLE[TRACE.names[i]]
        times = [r[0] for r in rows]
        k = max(j for j, s in enumerate(times) if s <= t)
        t0, x0, y0 = rows[k]
        t1, x1, y1 = rows[min(k + 1, len(rows) - 1)]
        frac = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        assert np.allclose(xy, [x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)], rtol=0, atol=1e-9)


def test_positions_of_absent_devices_are_refused():
    with pytest.raises(ValueError, match="not present"):
        TRACE.positions(0.0, np.array([5]))
    with pytest.raises(ValueError, match="finite"):
        TRACE.at(float("nan"))


def test_a_single_sample_device_is_present_only_at_that_instant():
    tr = RecordedTrace(["a", "b", "b"], [5.0, 0.0, 10.0], np.array([[1.0, 2.0], [0.0, 0.0], [10.0, 0.0]]))
    assert tr.names == ("b", "a")
    assert tr.present(5.0).tolist() == [0, 1] and tr.present(4.9).tolist() == [0]
    assert np.array_equal(tr.at(5.0).xy, [[5.0, 0.0], [1.0, 2.0]])


def test_replay_maps_simulator_time_to_trace_time():
    rep = TraceReplay(TRACE, TimeMap(start=4.0, scale=2.0))
    for t in (0.0, 1.25, 7.5, 17.75):
        f, g = rep.at(t), TRACE.at(4.0 + 2.0 * t)
        assert f.time == t and np.array_equal(f.index, g.index) and np.array_equal(f.xy, g.xy)
    assert np.array_equal(rep.joins, (TRACE.first - 4.0) / 2.0) and np.array_equal(rep.leaves, (TRACE.last - 4.0) / 2.0)
    assert rep.names == TRACE.names
    with pytest.raises(ValueError, match="positive scale"):
        TimeMap(0.0, 0.0)


def test_gzip_fcd_reads_the_same(tmp_path):
    p = tmp_path / "grid.fcd.xml.gz"
    p.write_bytes(gzip.compress(GRID_FCD.read_bytes()))
    tr = load_recorded_trace(p)
    assert tr.names == TRACE.names and np.array_equal(tr.times, TRACE.times) and np.array_equal(tr.xy, TRACE.xy)


def test_the_shipped_city_trace_is_small_and_readable():
    p = SHIPPED / "fcd.xml.gz"
    assert p.stat().st_size < 3_000_000
    tr = read_fcd(p)
    assert len(tr) == 300 and tr.start == 0.0 and tr.end == 299.0
    assert tr.projection is None and np.all(np.diff(np.unique(tr.times)) == 1.0)
    trips = {t.get("id"): (float(t.get("depart")), float(t.get("arrival")))
             for t in ET.parse(gzip.open(SHIPPED / "tripinfo.xml.gz")).getroot().iter("tripinfo")}
    depart, arrival = np.array([trips[n] for n in tr.names]).T
    assert np.array_equal(tr.first, depart) and np.all(np.diff(depart) >= 0)  # numbered in order of departure
    assert np.array_equal(tr.last, np.where(arrival >= 0, arrival - 1.0, 299.0))


# ------------------------------------------------------------------------------------------- geo and projection
def test_geo_fcd_is_detected_and_projected_like_sumos_own_utm_metres():
    geo, xy = read_fcd(DATA / "geo.fcd.xml"), read_fcd(DATA / "geo-xy.fcd.xml")
    assert isinstance(geo.projection, LocalProjection) and xy.projection is None
    assert geo.names == xy.names and np.array_equal(geo.times, xy.times)
    d_geo = np.linalg.norm(geo.xy[:, None] - geo.xy[None], axis=-1)
    d_utm = np.linalg.norm(xy.xy[:, None] - xy.xy[None], axis=-1)
    far = d_utm > 100.0  # 6 decimals of a degree are ~0.1 m: compare distances well above that
    assert far.sum() > 20 and np.abs(d_geo[far] / d_utm[far] - 1).max() < 0.005
    raw = read_fcd(DATA / "geo.fcd.xml", coords="xy")
    assert raw.projection is None and np.allclose(raw.xy[0], [11.340064, 44.489986])


def test_geo_recorded_as_metadata_is_detected_too(tmp_path):
    p = tmp_path / "m.xml"
    p.write_text('<fcd-export><metadata><sumoConfiguration><output><fcd-output.geo value="true"/></output>'
                 '</sumoConfiguration></metadata><timestep time="0"><vehicle id="a" x="11.0" y="45.0"/>'
                 '<vehicle id="b" x="11.001" y="45.0"/></timestep></fcd-export>')
    tr = read_fcd(p)
    assert tr.projection == LocalProjection(45.0, 11.0, 45.0)
    assert math.isclose(tr.xy[1, 0] - tr.xy[0, 0], math.radians(0.001) * EARTH_RADIUS_M * math.cos(math.radians(45.0)),
                        rel_tol=1e-9)


def test_known_distances_are_within_half_a_percent():
    # WGS84 lengths of one degree at 45 N (the standard meridian and parallel series)
    lat_degree = 111132.954 - 559.822 * math.cos(math.radians(90)) + 1.175 * math.cos(math.radians(180))
    lon_degree = (111412.84 * math.cos(math.radians(45)) - 93.5 * math.cos(math.radians(135))
                  + 0.118 * math.cos(math.radians(225)))
    p = LocalProjection.fit([44.5, 45.5], [10.0, 11.0])
    assert p.lat_scale == 45.0
    north = p.forward([44.5, 45.5], [10.5, 10.5])
    east = p.forward([45.0, 45.0], [10.0, 11.0])
    assert abs(np.linalg.norm(north[1] - north[0]) / lat_degree - 1) < 0.005
    assert abs(np.linalg.norm(east[1] - east[0]) / lon_degree - 1) < 0.005
    lat, lon = p.inverse(p.forward([44.7, 45.2], [10.1, 10.9]))
    assert np.allclose(lat, [44.7, 45.2], atol=1e-12) and np.allclose(lon, [10.1, 10.9], atol=1e-12)


# ------------------------------------------------------------------------------------------- CSV and GPX
def test_csv_and_gpx_of_the_same_walk_agree():
    a, b = read_trace_csv(DATA / "walk.csv"), read_gpx(DATA / "walk.gpx")
    assert a.names == ("anna", "bruno") and b.names == ("anna", "track1")
    assert np.array_equal(a.times, b.times) and np.array_equal(a.times, [0, 60, 120, 30, 90])
    assert a.projection == b.projection == LocalProjection(44.4931, 11.3430, float(np.mean(
        [44.4940, 44.4949, 44.4949, 44.4940, 44.4931])))
    assert np.allclose(a.xy, b.xy, rtol=0, atol=1e-9)
    k = math.radians(1.0) * EARTH_RADIUS_M
    assert np.allclose(a.samples(0)[1], [[0, 0.0009 * k], [0, 0.0018 * k], [0.0012 * k * math.cos(math.radians(a.projection.lat_scale)), 0.0018 * k]])
    assert b.epoch.isoformat() == "2024-05-01T10:00:00+00:00"
    assert np.allclose(a.at(30.0).xy[0], [0.0, 0.00135 * k])


def test_csv_in_metres_with_columns_in_any_order(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("time,x,vehicle,y\n0,0,car,0\n10,100,car,50\n5,1,bike,2\n")
    tr = load_recorded_trace(p)
    assert tr.names == ("car", "bike") and tr.projection is None
    assert np.array_equal(tr.at(5.0).xy, [[50.0, 25.0], [1.0, 2.0]])


def test_a_shared_projection_puts_two_files_in_one_frame():
    proj = LocalProjection(44.49, 11.34, 44.49)
    a = read_trace_csv(DATA / "walk.csv", projection=proj)
    b = read_gpx(DATA / "walk.gpx", projection=proj)
    assert a.projection is proj and np.allclose(a.xy, b.xy, atol=1e-9)
    assert np.allclose(a.xy[0], proj.forward(44.4940, 11.3430))


def test_trace_format_follows_the_name():
    assert [trace_format(n) for n in ("a.fcd.xml", "A.XML.GZ", "b.csv", "c.csv.gz", "d.gpx")] == \
           ["fcd", "fcd", "csv", "csv", "gpx"]
    with pytest.raises(FileFormatError, match="unknown trace format"):
        trace_format("trace.json")


# ------------------------------------------------------------------------------------------- bad input
def bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,line,message", [
    ("id,time,x\n", 1, "the header must name id, time and either x,y or lat,lon"),
    ("id,time,x,y,lat,lon\n", 1, "either x,y or lat,lon"),
    ("id,device,time,x,y\n", 1, "more than one of id, vehicle, device"),
    ("id,time,x,y\na,0,1,2\na,1,1\n", 3, "expected 4 values"),
    ("id,time,x,y\na,0,1,2\n\na,zero,1,2\n", 4, "time must be a number (got 'zero')"),
    ("id,time,x,y\na,0,nan,2\n", 2, "x must be finite"),
    ("id,time,x,y\n ,0,1,2\n", 2, "empty id"),
    ("id,time,x,y\na,0,1,2\nb,0,1,2\na,0,3,3\n", 4, "'a' has two samples at time 0"),
    ("id,time,lat,lon\na,0,91,2\n", 2, "latitude 91 is outside [-90, 90]"),
    ("id,time,lat,lon\na,0,45,-181\n", 2, "longitude -181 is outside [-180, 180]"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path, text, line, message):
    p = bad(tmp_path, "t.csv", text)
    with pytest.raises(FileFormatError) as err:
        read_trace_csv(p)
    assert err.value.line == line and err.value.file == str(p) and message in str(err.value)
    assert str(err.value).startswith(f"{p} line {line}: ")


@pytest.mark.parametrize("text,message", [("", "empty file"), ("# only a comment\n", "empty file"),
                                          ("id,time,x,y\n", "no samples")])
def test_empty_csv_files(tmp_path, text, message):
    with pytest.raises(FileFormatError, match=message):
        read_trace_csv(bad(tmp_path, "t.csv", text))


def test_non_utf8_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"id,time,x,y\n\xff,0,1,2\n")
    with pytest.raises(FileFormatError, match="not UTF-8"):
        read_trace_csv(p)


FCD = '<fcd-export>\n<timestep time="0">\n{}\n</timestep>\n</fcd-export>\n'


@pytest.mark.parametrize("text,line,message", [
    (FCD.format('<vehicle id="a" x="1"/>'), 3, "vehicle 'a' has no x/y"),
    (FCD.format('<vehicle x="1" y="2"/>'), 3, "<vehicle> without an id"),
    (FCD.format('<vehicle id="a" x="1" y="north"/>'), 3, "y must be a number (got 'north')"),
    (FCD.format('<vehicle id="a" x="1" y="2"/>\n<vehicle id="a" x="1" y="3"/>'), 4, "'a' has two samples at time 0"),
    ('<fcd-export>\n<timestep time="soon">\n</timestep>\n</fcd-export>', 2, "timestep time must be a number"),
    ('<fcd-export>\n<vehicle id="a" x="1" y="2"/>\n</fcd-export>', 2, "<vehicle> outside a <timestep>"),
    ('<routes>\n</routes>', 1, "not a SUMO FCD export: the root element is <routes>"),
    (FCD.format('<vehicle id="a" x="1" y="2">'), 4, "not well-formed XML: mismatched tag"),
    ('<!DOCTYPE fcd-export [<!ENTITY a "b">]>\n' + FCD.format(""), 1, "document type declarations"),
])
def test_bad_fcd_names_file_and_line(tmp_path, text, line, message):
    p = bad(tmp_path, "t.fcd.xml", text)
    with pytest.raises(FileFormatError) as err:
        read_fcd(p)
    assert err.value.line == line and message in str(err.value), str(err.value)


def test_an_fcd_without_vehicles_has_no_samples(tmp_path):
    with pytest.raises(FileFormatError, match="no samples"):
        read_fcd(bad(tmp_path, "t.xml", FCD.format("")))
    with pytest.raises(ValueError, match="coords must be"):
        read_fcd(GRID_FCD, coords="utm")


GPX = '<gpx xmlns="http://www.topografix.com/GPX/1/1">\n<trk><name>{}</name><trkseg>\n{}\n</trkseg></trk>\n{}</gpx>'
PT = '<trkpt lat="45" lon="11"><time>{}</time></trkpt>'


@pytest.mark.parametrize("text,line,message", [
    (GPX.format("a", '<trkpt lat="45" lon="11"></trkpt>', ""), 3, "track point without a <time>"),
    (GPX.format("a", '<trkpt lon="11"><time>2024-01-01T00:00:00Z</time></trkpt>', ""), 3, "missing lat"),
    (GPX.format("a", PT.format("yesterday"), ""), 3, "<time> must be an ISO 8601 date and time (got 'yesterday')"),
    (GPX.format("a", PT.format("2024-01-01T00:00:00Z"), f"<trk><name>a</name><trkseg>{PT.format('2024-01-01T00:00:09Z')}</trkseg></trk>\n"),
     5, "two tracks named 'a'"),
    (GPX.format("a", PT.format("2024-01-01T00:00:00Z") + "\n" + PT.format("2024-01-01T00:00:00+00:00"), ""), 4,
     "'a' has two samples at time 0"),
    ('<kml>\n</kml>', 1, "not a GPX file: the root element is <kml>"),
])
def test_bad_gpx_names_file_and_line(tmp_path, text, line, message):
    p = bad(tmp_path, "t.gpx", text)
    with pytest.raises(FileFormatError) as err:
        read_gpx(p)
    assert err.value.line == line and message in str(err.value), str(err.value)


def test_a_gpx_without_track_points(tmp_path):
    with pytest.raises(FileFormatError, match="no track points"):
        read_gpx(bad(tmp_path, "t.gpx", '<gpx><wpt lat="1" lon="2"/></gpx>'))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileFormatError, match=r"absent\.csv: cannot open"):
        load_recorded_trace(tmp_path / "absent.csv")


def test_positions_at_one_time_per_device_equal_each_asked_alone():
    devices = np.arange(len(TRACE))
    times = np.array([0.5 * (TRACE.first[d] + TRACE.last[d]) for d in devices]) + 0.25
    times = np.minimum(times, TRACE.last)
    together = TRACE.positions(times, devices)
    alone = np.vstack([TRACE.positions(float(t), np.array([d])) for d, t in zip(devices, times)])
    assert np.array_equal(together, alone)
    with pytest.raises(ValueError, match="the times given"):
        TRACE.positions(TRACE.last + 1.0, devices)
