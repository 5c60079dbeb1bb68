"""fieldlearn.sim.scenario: schema, loader, overrides; each kind of bad input names its YAML path."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.overrides import apply_overrides, parse_key
from fieldlearn.sim.scenario import Scenario, load_scenario, parse_scenario

from .sim_helpers import BASE

REPO = Path(__file__).resolve().parents[2]


def _err(data: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, base_dir=REPO / "scenarios")
    return str(info.value)


def test_base_is_valid(base):
    s = parse_scenario(base, base_dir=REPO / "scenarios")
    assert isinstance(s, Scenario)
    assert s.capacity == 9 and s.end_time == 5.0 and s.period == 1.0
    assert s.sensor_names() == ["source"]


def test_program_shorthand_and_yaml_roundtrip(base):
    base["program"] = "gradient"
    s = parse_scenario(base, base_dir=REPO / "scenarios")
    again = parse_scenario(yaml.safe_load(s.to_yaml()), base_dir=REPO / "scenarios")
    assert again.model_dump() == s.model_dump()


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


def test_load_scenario_file_errors(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\nduration: {rounds: 3}\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_scenario(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load_scenario(listy)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(unsafe)


def test_load_scenario_with_overrides(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(BASE))
    s = load_scenario(f, ["duration.rounds=7", "links.radius=2", "deployments[0].cols=4", "exports.values=[gradient]"])
    assert s.duration.rounds == 7 and s.links.radius == 2.0 and s.deployments[0].cols == 4
    assert s.exports.values == ["gradient"]
    with pytest.raises(ScenarioError, match=r"s.yaml: links.radius: must be > 0"):
        load_scenario(f, ["links.radius=-3"])
    with pytest.raises(ScenarioError, match=r"--set deployments\[4\].cols=1: deployments\[4\] is out of range"):
        load_scenario(f, ["deployments[4].cols=1"])
    with pytest.raises(ScenarioError, match="expected key.path=value"):
        load_scenario(f, ["duration.rounds"])
    with pytest.raises(ScenarioError, match="not a mapping"):
        load_scenario(f, ["seed.x=1"])


def test_override_parsing():
    assert parse_key("a.b[2].c") == ["a", "b", 2, "c"]
    assert parse_key("a.b.2.c") == ["a", "b", 2, "c"]
    data = {"a": {"b": [1, 2]}}
    apply_overrides(data, ["a.b[1]=x", "a.new.deep=3", "top=null"])
    assert data == {"a": {"b": [1, "x"], "new": {"deep": 3}}, "top": None}
    with pytest.raises(ScenarioError):
        parse_key("[1].a")


def test_selector_and_counts(base):
    base["deployments"] = [
        {"kind": "grid", "count": 10},
        {"kind": "points", "points": [[0, 0], [1, 1]]},
        {"kind": "graph", "generator": "path_graph", "params": {"n": 4}},
    ]
    base["faults"] = [{"at": 2, "kind": "join", "deployment": {"kind": "random", "count": 5, "region": "A"}}]
    s = parse_scenario(base, base_dir=REPO / "scenarios")
    assert s.deployments[0].shape() == (3, 4)
    assert s.n_initial == 16 and s.capacity == 21


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
        s = parse_scenario(data, base_dir=REPO / "scenarios")
    except ScenarioError as exc:
        assert str(exc)
    else:
        assert isinstance(s, Scenario)


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


@settings(max_examples=60)
@given(st.text(max_size=80))
def test_fuzz_yaml_text(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fz") / "s.yaml"
    f.write_text(text, encoding="utf-8")
    try:
        load_scenario(f)
    except ScenarioError:
        pass
