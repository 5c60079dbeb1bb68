"""fieldlearn.sim.checks: what spans blocks is checked before a run, each problem named by its YAML path; areas
that random points are drawn from and mobility legs are bounded so that no run hangs on them."""
from __future__ import annotations

import time

import pytest

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import resolve_scenario

from .sim_helpers import BASE, SCENARIOS

SLIVER = {"name": "s", "polygon": [[0, 0], [10, 10], [10, 10.0000001]]}


def _resolve(**changes):
    data = {**BASE, **changes}
    return resolve_scenario(data, SCENARIOS)


@pytest.mark.parametrize("changes, path", [
    ({"deployments": [{"kind": "grid", "rows": 2, "cols": 2, "mobility": {"kind": "tour", "stops": ["A", "s"], "dwell": 1}}]},
     "deployments[0].mobility.stops[1]"),
    ({"deployments": [{"kind": "random", "count": 5, "region": "s"}]}, "deployments[0].region"),
    ({"deployments": [{"kind": "random", "count": 5, "polygon": SLIVER["polygon"]}]}, "deployments[0].polygon"),
    ({"deployments": [{"kind": "grid", "rows": 2, "cols": 2, "mobility": {"kind": "random_waypoint", "region": "s",
                                                                          "speed": 1}}]}, "deployments[0].mobility.region"),
    ({"faults": [{"at": 1, "kind": "move", "devices": {"all": True}, "region": "s"}]}, "faults[0].region"),
])
def test_a_sliver_that_random_points_are_drawn_from_is_refused_at_once(changes, path):
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match=r"covers 5e-09 of its bounding box; .* needs at least 0.01") as err:
        _resolve(regions=[{"name": "A", "box": [0, 0, 5, 5]}, SLIVER], **changes)
    assert err.value.path == path and time.perf_counter() - started < 1.0


def test_a_sliver_visited_at_its_centre_is_fine():
    tour = {"kind": "tour", "stops": ["s"], "dwell": 1, "placement": "center"}
    _resolve(regions=[SLIVER], deployments=[{"kind": "grid", "rows": 2, "cols": 2, "mobility": tour}])


@pytest.mark.parametrize("mobility, path, message", [
    ({"kind": "tour", "stops": [[0, 0], [1, 1]], "dwell_time": 1.0e-17}, "deployments[0].mobility.dwell_time",
     "must be >= 0.01 (a hundredth of the period 1)"),
    ({"kind": "tour", "stops": [[0, 0], [1, 1]], "dwell": [1, 0.001]}, "deployments[0].mobility.dwell[1]",
     "must be >= 0.01 (a hundredth of a round)"),
    ({"kind": "random_waypoint", "box": [0, 0, 1, 1], "speed": 1.0e12}, "deployments[0].mobility.speed",
     "a waypoint about every 3.33e-13 time units, more than 100 waypoints per round"),
])
def test_mobility_legs_shorter_than_a_hundredth_of_a_round_are_refused(mobility, path, message):
    with pytest.raises(ScenarioError) as err:
        _resolve(deployments=[{"kind": "grid", "rows": 2, "cols": 2, "mobility": mobility}])
    assert err.value.path == path and message in str(err.value)


def test_legs_at_the_bound_are_accepted():
    fast = {"kind": "random_waypoint", "box": [0, 0, 3, 3], "speed": 99, "pause_time": 0}  # a leg every 0.0101
    _resolve(deployments=[{"kind": "grid", "rows": 2, "cols": 2, "mobility": fast}])
    _resolve(deployments=[{"kind": "grid", "rows": 2, "cols": 2,
                           "mobility": {"kind": "tour", "stops": [[0, 0]], "dwell_time": 0.01}}])


@pytest.mark.parametrize("exports, path, message", [
    ({"interval": 1e-17}, "exports.interval", "every 1e-17 records 5e+17 rows over the run"),
    ({"per_device_interval": 1e-6}, "exports.per_device_interval", "rows per device"),
    ({"animation": {"every": 1e-4}}, "exports.animation.every", "50,000 frames over the run (at most 10,000"),
    ({"viewer": {"every": 1e-4}}, "exports.viewer.every", "frames"),
])
def test_recording_far_more_often_than_a_round_is_bounded(exports, path, message):
    with pytest.raises(ScenarioError) as err:
        _resolve(exports=exports)
    assert err.value.path == path and message in str(err.value)
    _resolve(exports={"interval": 0.5, "animation": {"every": 0.1}})  # finer than a round, within the bounds
