"""fieldlearn.sim.scenario: the schema and its cross-block checks; each kind of bad input names its YAML path."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import LoadedScenario, resolve_scenario
from fieldlearn.sim.scenario import Scenario

from .sim_helpers import BASE

REPO = Path(__file__).resolve().parents[2]


def _err(data: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        resolve_scenario(data, REPO / "scenarios")
    return str(info.value)


def test_base_is_valid(base):
    s = resolve_scenario(base, REPO / "scenarios")
    assert isinstance(s.scenario, Scenario)
    assert s.capacity == 9 and s.scenario.end_time == 5.0 and s.scenario.period == 1.0
    assert s.scenario.sensor_names() == ["source"]


def test_program_shorthand_and_yaml_roundtrip(base):
    base["program"] = "gradient"
    s = resolve_scenario(base, REPO / "scenarios")
    again = resolve_scenario(yaml.safe_load(s.to_yaml()), REPO / "scenarios")
    assert again.to_yaml() == s.to_yaml()
    assert again.params == {"source": "source"}


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["links"].update(radius=-1), "links.radius", "must be > 0"),
        (lambda d: d["links"].update(radius="far"), "links.radius", "valid number"),
        (lambda d: d["links"].update(rule="wave"), "links.rule", "unknown rule"),
        (lambda d: d["links"].update(loss=1.5), "links.loss", "must be < 1"),
        (lambda d: d["deployments"][0].update(spacing=0), "deployments[0].spacing", "must be > 0"),
        (lambda d: d["deployments"][0].update(kind="hex"), "deployments[0].kind", "unknown kind"),
        (lambda d: d["deployments"][0].update(rows=2.5), "deployments[0].rows", "valid integer"),
        (lambda d: d["deployments"][0].update(jitter=True), "deployments[0].jitter", "valid number"),
        (lambda d: d["deployments"][0].update(mobility={"kind": "tour", "stops": ["A"], "dwell": 0}),
         "deployments[0].mobility.dwell", "must be > 0"),
        (lambda d: d["deployments"][0].update(mobility={"kind": "tour", "stops": ["B"], "dwell": 2}),
         "deployments[0].mobility.stops[0]", "region 'B' is not defined"),
        (lambda d: d["deployments"][0].update(mobility={"kind": "tour", "stops": ["A", [1, 1]], "dwell": [1]}),
         "deployments[0].mobility.dwell", "1 dwell values for 2 stops"),
        (lambda d: d["deployments"].append({"kind": "random", "count": 3, "region": "nowhere"}),
         "deployments[1].region", "not defined"),
        (lambda d: d["deployments"].append({"kind": "random", "count": 3}), "deployments[1]", "exactly one of"),
        (lambda d: d["deployments"][0].update(mobility={"kind": "trace", "file": "missing.csv"}),
         "deployments[0].mobility.file", "not found"),
        (lambda d: d["deployments"].append({"kind": "graph", "generator": "write_edgelist"}),
         "deployments[1].generator", "not a networkx graph generator"),
        (lambda d: d["deployments"].append({"kind": "graph", "generator": "path_graph", "params": {"m": 3}}),
         "deployments[1].params", "failed"),
        (lambda d: d["regions"].append({"name": "E", "polygon": [[0, 0], [1, 1], [2, 2]]}), "regions[1].polygon",
         "empty polygon"),
        (lambda d: d["regions"].append({"name": "E", "polygon": [[0, 0], [1, 1]]}), "regions[1].polygon",
         "at least 3 points"),
        (lambda d: d["regions"].append({"name": "E", "polygon": [[0, 0], [2, 2], [2, 0], [0, 2]]}),
         "regions[1].polygon", "invalid polygon"),
        (lambda d: d["regions"].append({"name": "A", "box": [0, 0, 1, 1]}), "regions[1].name", "duplicate"),
        (lambda d: d["regions"].append({"name": "Z", "box": [1, 1, 0, 0]}), "regions[1].box", "xmin < xmax"),
        (lambda d: d.update(program={"name": "no_such_program"}), "program.name", "not found"),
        (lambda d: d.update(program={"name": "no.such.module:fn"}), "program.name", "not found"),
        (lambda d: d.update(program={"name": "programs/missing.py"}), "program.name", "not found"),
        (lambda d: d.update(duration={}), "duration", "exactly one of rounds, time"),
        (lambda d: d.update(duration={"rounds": 0}), "duration.rounds", "must be > 0"),
        (lambda d: d.pop("links"), "links", "required"),
        (lambda d: d.update(schedule={"kind": "dirac", "period": -1}), "schedule.period", "must be > 0"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "crash", "devices": {"ids": [99]}}]),
         "faults[0].devices.ids[0]", "out of range"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "crash", "devices": {"region": "Q"}}]),
         "faults[0].devices.region", "not defined"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "sensor", "devices": {"all": True}, "sensor": "x", "value": 1}]),
         "faults[0].sensor", "unknown sensor"),
        (lambda d: d.update(faults=[{"at": -1, "kind": "restore"}]), "faults[0].at", "must be >= 0"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "restore", "name": "w"}]), "faults[0].name", "no cut named"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "cut"}]), "faults[0]", "give pairs, wall or devices"),
        (lambda d: d.update(faults=[{"at": 1, "kind": "move", "devices": {"all": True}}]), "faults[0]",
         "exactly one of to, by, region"),
        (lambda d: d["sensors"].update(position=1), "sensors.position", "built-in sensor"),
        (lambda d: d["deployments"][0].update(sensors={"heat": [1, 2]}), "deployments[0].sensors.heat",
         "2 values for 9 devices"),
        (lambda d: d.update(exports={"stats": ["avg"]}), "exports.stats[0]", "'mean'"),
        (lambda d: d.update(exports={"figures": {"snapshots": [{"cmap": "nope"}]}}),
         "exports.figures.snapshots[0].cmap", "unknown colour map"),
        (lambda d: d.update(exports={"figures": {"snapshots": [{"file": "../x.png"}]}}),
         "exports.figures.snapshots[0].file", "pattern"),
        (lambda d: d["links"].update(rule="fixed", edges=[[0, 12]]) or d["links"].pop("radius"), "links.edges[0]",
         "out of range"),
    ],
)
def test_bad_input_names_the_yaml_path(base, mutate, path, words):
    mutate(base)
    msg = _err(base)
    assert msg.startswith(f"{path}: "), msg
    assert words in msg, msg


def test_selector_and_counts(base):
    base["deployments"] = [
        {"kind": "grid", "count": 10},
        {"kind": "points", "points": [[0, 0], [1, 1]]},
        {"kind": "graph", "generator": "path_graph", "params": {"n": 4}},
    ]
    base["faults"] = [{"at": 2, "kind": "join", "deployment": {"kind": "random", "count": 5, "region": "A"}}]
    s = resolve_scenario(base, REPO / "scenarios")
    assert s.scenario.deployments[0].shape() == (3, 4)
    assert s.n_initial == 16 and s.capacity == 21 and s.counts == (10, 2, 4, 5)


# ------------------------------------------------------------------------------------------- fuzzing
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["A", "grid", "radius", "tour", "sync", "gradient", "end", "x", ""]),
)
KEYS = ["kind", "rule", "rows", "cols", "count", "spacing", "radius", "k", "period", "rounds", "time", "dwell",
        "stops", "name", "box", "polygon", "points", "devices", "ids", "at", "value", "sensor", "region", "mobility",
        "seed", "duration", "deployments", "links", "program", "faults", "exports", "regions", "sensors", "params",
        "generator", "schedule", "values", "figures", "snapshots", "times", "wall", "pairs", "all", "nearest"]
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5),
    ),
    max_leaves=25,
)


def _check(data):
    try:
        s = resolve_scenario(data, REPO / "scenarios")
    except ScenarioError as exc:
        assert str(exc)
    else:
        assert isinstance(s, LoadedScenario)


@settings(max_examples=150)
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), yaml_values, max_size=8))
def test_fuzz_any_mapping_gives_scenario_or_clean_error(data):
    _check(data)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = list(_paths(BASE))[1:]


@settings(max_examples=250)
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), yaml_values, st.booleans()), min_size=1, max_size=3))
def test_fuzz_mutations_of_a_valid_scenario(mutations):
    data = copy.deepcopy(BASE)
    for path, value, delete in mutations:
        cur = data
        try:
            for p in path[:-1]:
                cur = cur[p]
            if delete and isinstance(cur, dict):
                cur.pop(path[-1], None)
            else:
                cur[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _check(data)
