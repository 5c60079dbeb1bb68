"""fieldlearn.sim.mobility: tour timing and region membership are exact; waypoint and trace models."""
from __future__ import annotations

import numpy as np
import pytest

from fieldlearn.sim import scenario as S
from fieldlearn.sim.mobility import (MOBILITY, MobilityInputs, RandomWaypointMobility, StaticMobility, TourMobility,
                                     TraceMobility)
from fieldlearn.sim.regions import Regions

REGIONS = Regions(["A", "B", "C"], [S.box_polygon([0, 0, 10, 10]), S.box_polygon([20, 0, 30, 10]),
                                     S.box_polygon([0, 20, 10, 30])])


def tour(**kw):
    spec = S.Tour(kind="tour", **kw)
    ids = np.arange(5)
    m = TourMobility(spec, ids, MobilityInputs(REGIONS, period=2.0, key=123))
    m.start(0.0, np.full((5, 2), 50.0))
    return m


def test_tour_jump_is_in_each_region_for_exactly_its_dwell():
    m = tour(stops=["A", "B", "C"], dwell=3)  # 3 rounds of period 2: 6 time units per stop
    for t in np.arange(0, 40, 0.5):
        want = int(t // 6) % 3
        assert np.all(REGIONS.index_of(m.positions(t)) == want), t


def test_tour_dwell_time_list_start_spread_and_no_repeat():
    m = tour(stops=["A", [25.0, 5.0], "C"], dwell_time=[1.0, 2.0, 4.0], start="spread", repeat=False)
    # device d starts at stop d % 3 and walks forward to the last stop, where it stays
    t_expect = {0: [(0.5, 0), (1.5, 1), (3.5, 2), (100, 2)], 1: [(0.5, 1), (2.5, 2), (99, 2)], 2: [(0.1, 2), (50, 2)]}
    for d, checks in t_expect.items():
        for t, stop in checks:
            pos = tour(stops=["A", [25.0, 5.0], "C"], dwell_time=[1.0, 2.0, 4.0], start="spread",
                       repeat=False).positions(t)[d]
            assert REGIONS.index_of(pos[None])[0] == [0, 1, 2][stop], (d, t)
    assert np.allclose(m.positions(1.5)[0], [25, 5])


def test_tour_with_speed_travels_then_dwells():
    m = tour(stops=[[0.0, 0.0], [10.0, 0.0]], dwell_time=2.0, speed=5.0)
    m.start(0.0, np.zeros((5, 2)))
    # leg 0: already at (0,0): arrives at 0, dwells until 2; leg 1: 2 time units of travel, dwell until 6
    assert np.allclose(m.positions(1.0), [0, 0])
    assert np.allclose(m.positions(3.0), [5, 0])
    assert np.allclose(m.positions(4.0), [10, 0])
    assert np.allclose(m.positions(5.9), [10, 0])
    assert np.allclose(m.positions(7.0), [5, 0])


def test_tour_positions_do_not_depend_on_evaluation_times():
    a = tour(stops=["A", "B"], dwell=1)
    b = tour(stops=["A", "B"], dwell=1)
    for t in np.arange(0, 30, 0.25):
        a.positions(t)
    assert np.array_equal(a.positions(30.0), b.positions(30.0))


def reference_leg_positions(m, t):
    """The leg formula written out: a + (b - a) * clip((t - s) / (r - s), 0, 1), 1 for jumps."""
    span = m.r - m.s
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(span > 0, np.clip((t - m.s) / span, 0.0, 1.0), 1.0)
    return m.a + (m.b - m.a) * frac[:, None]


def test_leg_positions_follow_the_formula_while_moving_dwelling_and_jumping():
    models = [tour(stops=["A", "B", "C"], dwell=3), tour(stops=[[0.0, 0.0], [10.0, 0.0]], dwell_time=2.0, speed=5.0),
              RandomWaypointMobility(S.RandomWaypoint(kind="random_waypoint", region="A", speed=[0.5, 3], pause=[0, 2]),
                                     np.arange(7), MobilityInputs(REGIONS, 1.0, 9))]
    models[2].start(0.0, np.full((7, 2), 5.0))
    for m in models:
        for t in np.concatenate([np.arange(0, 20, 0.5), np.arange(20, 40, 3.3)]):
            got = m.positions(float(t))
            assert np.array_equal(got, reference_leg_positions(m, float(t))), t
            assert np.array_equal(got, m.positions(float(t)))  # asking again changes nothing


def test_random_waypoint_stays_inside_and_respects_speed():
    spec = S.RandomWaypoint(kind="random_waypoint", region="B", speed=[1.0, 2.0], pause=1)
    m = RandomWaypointMobility(spec, np.arange(50), MobilityInputs(REGIONS, period=1.0, key=7))
    start = np.column_stack([np.full(50, 25.0), np.full(50, 5.0)])
    m.start(0.0, start)
    prev = m.positions(0.0)
    for t in np.arange(0.1, 40, 0.1):
        cur = m.positions(t)
        assert np.all(REGIONS.index_of(cur) == 1)
        assert np.all(np.linalg.norm(cur - prev, axis=1) <= 2.0 * 0.1 + 1e-9)
        prev = cur
    assert np.all(m.leg > 2)


def test_trace_interpolates_and_clamps():
    data = np.array([[0.0, 0, 0, 0], [10.0, 0, 10, 20], [5.0, 1, 1, 1]])
    data = data[np.lexsort((data[:, 0], data[:, 1]))]
    m = TraceMobility(S.TraceSpec(kind="trace", file="t.csv"), np.arange(3), MobilityInputs(REGIONS, 1.0, 0, data))
    m.start(0.0, np.array([[9.0, 9], [9, 9], [7, 7]]))
    assert np.allclose(m.positions(-1.0), [[0, 0], [1, 1], [7, 7]])
    assert np.allclose(m.positions(2.5), [[2.5, 5], [1, 1], [7, 7]])
    assert np.allclose(m.positions(99.0), [[10, 20], [1, 1], [7, 7]])


def test_each_mobility_kind_builds_its_own_model_and_only_static_stays():
    inputs = MobilityInputs(REGIONS, 1.0, 3, np.array([[0.0, 0, 1, 1]]))
    specs = {StaticMobility: S.Static(), TourMobility: S.Tour(kind="tour", stops=["A"], dwell=1),
             RandomWaypointMobility: S.RandomWaypoint(kind="random_waypoint", region="A", speed=1.0),
             TraceMobility: S.TraceSpec(kind="trace", file="t.csv")}
    for cls, spec in specs.items():
        model = MOBILITY.build(spec, np.arange(2), inputs)
        assert type(model) is cls and model.moves == (cls is not StaticMobility)
        assert model.ids.tolist() == [0, 1]
    static = MOBILITY.build(S.Static(), np.arange(2), inputs)
    static.start(0.0, np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert static.positions(5.0).tolist() == [[1, 2], [3, 4]]


def test_shuffled_tours_give_every_device_its_own_order_of_every_stop_each_cycle():
    import numpy as np

    from fieldlearn.sim import scenario as S
    from fieldlearn.sim.mobility import MobilityInputs, TourMobility
    from fieldlearn.sim.regions import Regions

    names = [f"r{k}" for k in range(6)]
    regions = Regions(names, [[[10 * k, 0], [10 * k + 1, 0], [10 * k + 1, 1], [10 * k, 1]] for k in range(6)])
    spec = S.Tour(kind="tour", stops=names, dwell=1, order="shuffled")
    ids = np.arange(40)
    model = TourMobility(spec, ids, MobilityInputs(regions=regions, period=1.0, key=7))
    idx = np.repeat(ids, 12)
    legs = np.tile(np.arange(12), 40)
    stops = model.stop_index(idx, legs).reshape(40, 12)
    for row in stops:
        assert sorted(row[:6]) == list(range(6)) and sorted(row[6:]) == list(range(6))  # each cycle visits all
    assert len({tuple(r[:6]) for r in stops}) > 30  # orders differ between devices
    again = model.stop_index(idx[::-1], legs[::-1])[::-1].reshape(40, 12)
    assert np.array_equal(stops, again)  # fixed by (device, cycle, stop), whatever is asked with it
