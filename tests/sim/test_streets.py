"""fieldlearn.sim.streets: lane polylines from a SUMO network, districts splitting its extent, their JSON forms."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Polygon

from fieldlearn.sim.regions import Regions
from fieldlearn.sim.safexml import FileFormatError
from fieldlearn.sim.streets import (District, StreetNetwork, read_districts, read_net, split_districts,
                                    write_districts)
from fieldlearn.sim.traces import read_fcd

CITY = Path(__file__).parents[2] / "scenarios" / "data" / "city-6x6"

NET = """<?xml version="1.0" encoding="UTF-8"?>
<net version="1.20">
    <location netOffset="0.00,0.00" convBoundary="0.00,0.00,100.00,0.00"/>
    <edge id=":J1_0" function="internal">
        <lane id=":J1_0_0" index="0" speed="6" length="3" shape="100.00,1.60 101.00,0.00,0.00 100.00,-1.60"/>
    </edge>
    <edge id="E0" from="J0" to="J1" priority="-1">
        <lane id="E0_0" index="0" speed="13.89" length="100.00" shape="0.00,-1.60 100.00,-1.60"/>
        <lane id="E0_1" index="1" speed="13.89" length="100.00" shape="0.00,1.60 50.00,2.00 100.00,1.60"/>
    </edge>
</net>
"""


def write(tmp_path, text, name="n.net.xml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_lanes_of_a_network_with_their_edges_and_bounds(tmp_path):
    net = read_net(write(tmp_path, NET))
    assert [(lane.id, lane.edge) for lane in net.lanes] == [("E0_0", "E0"), ("E0_1", "E0")]
    assert np.array_equal(net.lanes[1].shape, [[0, 1.6], [50, 2.0], [100, 1.6]])
    assert net.bounds == (0.0, -1.6, 100.0, 2.0)
    inner = read_net(write(tmp_path, NET), internal=True)
    assert [lane.id for lane in inner.lanes] == [":J1_0_0", "E0_0", "E0_1"]
    assert np.array_equal(inner.lanes[0].shape[1], [101.0, 0.0]) and inner.bounds == (0.0, -1.6, 101.0, 2.0)
    assert len(net.polylines()) == 2 and net.polylines()[0] is net.lanes[0].shape


def test_the_shipped_city_has_its_168_street_lanes_and_every_vehicle_drives_on_one():
    net = read_net(CITY / "net.net.xml.gz", internal=True)
    plain = [lane for lane in net.lanes if not lane.id.startswith(":")]
    assert len(plain) == 168  # 7 x 6 segments per direction of the grid, twice (x and y), both ways
    assert net.bounds == (-1.6, -1.6, 601.6, 601.6)
    streets = shapely.union_all([LineString(lane.shape) for lane in net.lanes])
    xy = read_fcd(CITY / "fcd.xml.gz").xy
    assert shapely.distance(shapely.points(xy), streets).max() < 0.01  # SUMO wrote 2 decimals


def test_the_shipped_street_and_district_files_match_the_network():
    net = read_net(CITY / "net.net.xml.gz")
    shipped = StreetNetwork.from_json(CITY / "streets.json")
    assert [lane.id for lane in shipped.lanes] == [lane.id for lane in net.lanes] and shipped.bounds == net.bounds
    assert all(np.array_equal(a.shape, np.round(b.shape, 2)) for a, b in zip(shipped.lanes, net.lanes))
    assert read_districts(CITY / "districts.json") == split_districts(net.bounds, 2, 2)


def test_districts_tile_the_box_and_every_vehicle_of_the_city_is_in_one():
    ds = split_districts((-1.6, -1.6, 601.6, 601.6), 2, 2)
    assert [d.name for d in ds] == ["district0", "district1", "district2", "district3"]
    assert ds[0].polygon == ((-1.6, -1.6), (300.0, -1.6), (300.0, 300.0), (-1.6, 300.0))
    assert ds[3].polygon == ((300.0, 300.0), (601.6, 300.0), (601.6, 601.6), (300.0, 601.6))
    polys = [Polygon(d.polygon) for d in ds]
    assert all(p.exterior.is_ccw for p in polys)
    assert shapely.union_all(polys).equals(shapely.box(-1.6, -1.6, 601.6, 601.6))
    assert sum(p.area for p in polys) == pytest.approx(603.2 ** 2, rel=1e-12)
    regions = Regions([d.name for d in ds], [list(d.polygon) for d in ds])
    assert regions.index_of(np.array([[10, 10], [590, 10], [10, 590], [590, 590], [300, 300]])).tolist() == [0, 1, 2, 3, 0]
    assert (regions.index_of(read_fcd(CITY / "fcd.xml.gz").xy) >= 0).all()


def test_districts_of_any_shape_and_with_names():
    ds = split_districts((0, 0, 30, 10), 1, 3, names=["w", "m", "e"])
    assert [(d.name, d.polygon[0], d.polygon[2]) for d in ds] == [("w", (0, 0), (10, 10)), ("m", (10, 0), (20, 10)),
                                                                  ("e", (20, 0), (30, 10))]
    with pytest.raises(ValueError, match="3 districts need 3 names"):
        split_districts((0, 0, 30, 10), 1, 3, names=["a"])
    with pytest.raises(ValueError, match="rows and cols must be >= 1"):
        split_districts((0, 0, 1, 1), 0, 2)
    with pytest.raises(ValueError, match="xmax > xmin"):
        split_districts((0, 0, 0, 1), 1, 1)


def test_json_round_trips(tmp_path):
    net = read_net(write(tmp_path, NET))
    net.to_json(tmp_path / "s.json")
    back = StreetNetwork.from_json(tmp_path / "s.json")
    assert back.bounds == net.bounds and all(np.array_equal(a.shape, b.shape) for a, b in zip(back.lanes, net.lanes))
    ds = [District("a", ((0.0, 0.0), (1.0, 0.0), (0.5, 1.0)))]
    write_districts(tmp_path / "d.json", ds)
    assert read_districts(tmp_path / "d.json") == ds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "n.net.xml", "s.json"]  # no temporary left


@pytest.mark.parametrize("text,line,message", [
    ('<routes>\n</routes>', 1, "not a SUMO network: the root element is <routes>"),
    ('<net>\n<edge id="e">\n<lane id="l"/>\n</edge>\n</net>', 3, "lane 'l' has no shape"),
    ('<net>\n<edge id="e">\n<lane id="l" shape="0,0 1"/>\n</edge>\n</net>', 3, "bad shape '0,0 1'"),
    ('<net>\n<edge id="e">\n<lane id="l" shape="0,0"/>\n</edge>\n</net>', 3, "two or more points"),
    ('<net>\n<edge id="e">\n<lane id="l" shape="0,0 inf,1"/>\n</edge>\n</net>', 3, "must be finite"),
    ('<net>\n<edge id="e">\n</net>', 3, "mismatched tag"),
])
def test_bad_networks_name_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path, text)
    with pytest.raises(FileFormatError) as err:
        read_net(p)
    assert err.value.line == line and message in str(err.value), str(err.value)


def test_a_network_without_lanes_and_bad_json_files(tmp_path):
    with pytest.raises(FileFormatError, match="the network has no lanes"):
        read_net(write(tmp_path, "<net/>"))
    with pytest.raises(FileFormatError, match=r"s\.json line 2: not valid JSON"):
        StreetNetwork.from_json(write(tmp_path, '{"format":\n]', "s.json"))
    with pytest.raises(FileFormatError, match='expected a JSON object with "format": "fieldlearn.districts/1"'):
        read_districts(write(tmp_path, '{"format": "fieldlearn.streets/1"}', "d.json"))
    with pytest.raises(FileFormatError, match="not a districts file"):
        read_districts(write(tmp_path, '{"format": "fieldlearn.districts/1", "districts": [{"name": "a"}]}', "d.json"))
    with pytest.raises(FileFormatError, match="at least 3 corners"):
        read_districts(write(tmp_path, '{"format": "fieldlearn.districts/1", "districts": '
                                       '[{"name": "a", "polygon": [[0, 0], [1, 1]]}]}', "d.json"))
    with pytest.raises(FileFormatError, match="not a street network"):
        StreetNetwork.from_json(write(tmp_path, '{"format": "fieldlearn.streets/1", "bounds": [0, 0, 1], '
                                                '"lanes": []}', "s.json"))
