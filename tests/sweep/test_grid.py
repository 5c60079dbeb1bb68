"""Seeds and grid parsing, the exact cartesian expansion, stable run ids, and the resolved plan (hashes, errors)."""
from __future__ import annotations

import re

import pytest

from fieldlearn.sweep.grid import (
    SweepError,
    expand,
    make_plan,
    normalise_grid,
    normalise_sets,
    parse_grid_arg,
    parse_seeds,
    short_names,
)

from .helpers import GRID, write_tiny


@pytest.mark.parametrize(
    "text, seeds",
    [
        ("0-9", list(range(10))),
        ("4", [4]),
        ("0,3,5-7", [0, 3, 5, 6, 7]),
        (" 2 - 3 , 9 ", [2, 3, 9]),
        ("1,1-2,2", [1, 2]),
        (7, [7]),
        ([3, 1, 3], [3, 1]),
    ],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["3-1", "a", "", "1,,2", "-1", "1.5", str(2**63), [1, "2"], [True]])
def test_bad_seeds_name_the_argument(text):
    with pytest.raises(SweepError, match="seeds"):
        parse_seeds(text)


def test_parse_grid_values_are_yaml_scalars():
    assert parse_grid_arg("program.params.method=c2fl,cl,fl,local") == (
        "program.params.method", ["c2fl", "cl", "fl", "local"])
    assert parse_grid_arg("links.radius=1.5, 2") == ("links.radius", [1.5, 2])
    key, vals = parse_grid_arg("program.params.x=true,'1.0',null,[1, 2],'a, b'")
    assert vals == [True, "1.0", None, [1, 2], "a, b"]
    assert parse_grid_arg("deployments[0].rows=3,4")[0] == "deployments[0].rows"


@pytest.mark.parametrize(
    "text, words",
    [
        ("links.radius", "expected key.path=value"),
        ("links.radius=", "no values"),
        ("seed=1,2", "--seeds"),
        ("=1,2", "--grid =1,2"),
        ("a=[1,", "not a comma-separated list"),
    ],
)
def test_bad_grid_argument_is_named(text, words):
    with pytest.raises(SweepError) as err:
        parse_grid_arg(text)
    assert f"--grid {text}" in str(err.value) and words in str(err.value)


def test_grid_forms_and_duplicates():
    assert normalise_grid({"a.b": [1, 2], "c": "x"}) == [("a.b", [1, 2]), ("c", ["x"])]
    assert normalise_grid(["a.b=1,2", ("c", (3,))]) == [("a.b", [1, 2]), ("c", [3])]
    with pytest.raises(SweepError, match="given twice"):
        normalise_grid(["a=1", "a=2"])
    with pytest.raises(SweepError, match="value 1 is given twice"):
        normalise_grid({"a": [1, 2, 1]})
    with pytest.raises(SweepError, match="no values"):
        normalise_grid({"a": []})
    assert normalise_sets({"duration.rounds": 5, "program.params.tag": "1.0"}) == [
        "duration.rounds=5", "program.params.tag='1.0'"]


def test_expansion_is_the_exact_cartesian_product_in_order():
    runs = expand([0, 5], [("program.params.method", ["c2fl", "fl"]), ("links.radius", [1.5, 2.5])])
    got = [(r.index, r.variant.index, r.params, r.seed) for r in runs]
    assert got == [
        (0, 0, {"program.params.method": "c2fl", "links.radius": 1.5}, 0),
        (1, 0, {"program.params.method": "c2fl", "links.radius": 1.5}, 5),
        (2, 1, {"program.params.method": "c2fl", "links.radius": 2.5}, 0),
        (3, 1, {"program.params.method": "c2fl", "links.radius": 2.5}, 5),
        (4, 2, {"program.params.method": "fl", "links.radius": 1.5}, 0),
        (5, 2, {"program.params.method": "fl", "links.radius": 1.5}, 5),
        (6, 3, {"program.params.method": "fl", "links.radius": 2.5}, 0),
        (7, 3, {"program.params.method": "fl", "links.radius": 2.5}, 5),
    ]
    assert runs[0].variant.overrides == ["program.params.method=c2fl", "links.radius=1.5"]
    assert expand([3], []) [0].params == {} and len(expand([1, 2, 3], [])) == 3


def test_run_ids_are_stable_unique_and_file_safe():
    grid = [("program.params.method", ["c2fl", "a/b", "x y"]), ("links.radius", [1.5, "1.5"])]
    a = [r.id for r in expand([0, 1], grid)]
    b = [r.id for r in expand([0, 1], grid)]
    assert a == b and len(set(a)) == len(a) == 12
    assert all(re.fullmatch(r"[\w.=+-]+", i) for i in a)
    assert a[0].startswith("method=c2fl_radius=1.5_seed0_")
    # adding a grid value keeps the other runs' ids (their results are reused)
    more = {r.id for r in expand([0, 1], [("program.params.method", ["c2fl", "a/b", "x y", "new"]), grid[1]])}
    assert set(a) < more


def test_short_names():
    assert short_names(["program.params.method", "links.radius"]) == {"program.params.method": "method", "links.radius": "radius"}
    assert short_names(["a.x", "b.x"]) == {"a.x": "a.x", "b.x": "b.x"}


def test_plan_resolves_every_run_and_hashes_its_configuration():
    plan = make_plan(GRID, "0-2", {"links.radius": [1.5, 2.5]}, ["duration.rounds=5"])
    assert len(plan.runs) == 6 and plan.seeds == [0, 1, 2] and plan.keys == ["links.radius"]
    assert plan.overrides[plan.runs[1].id] == ["duration.rounds=5", "links.radius=1.5", "seed=1"]
    assert len(set(plan.hashes.values())) == 6
    assert plan.rounds == {0: 5.0, 1: 5.0}
    again = make_plan(GRID, "0-2", {"links.radius": [1.5, 2.5]}, ["duration.rounds=5"])
    assert again.hashes == plan.hashes
    other = make_plan(GRID, "0-2", {"links.radius": [1.5, 2.5]}, ["duration.rounds=6"])
    assert set(other.hashes) == set(plan.hashes) and not set(other.hashes.values()) & set(plan.hashes.values())
    assert make_plan(GRID).seeds == [1]  # the scenario's own seed


def test_plan_hash_changes_when_the_program_changes(tmp_path):
    path = write_tiny(tmp_path)
    before = make_plan(path, "0").hashes
    prog = tmp_path / "programs" / "misbehave.py"
    prog.write_text(prog.read_text() + "\n# edited\n")
    assert make_plan(path, "0").hashes.keys() == before.keys()
    assert make_plan(path, "0").hashes != before


def test_string_values_stay_strings(tmp_path):
    plan = make_plan(write_tiny(tmp_path), "0", {"program.params.tag": ["1.0", 1.0, "yes"]})
    assert [r.params["program.params.tag"] for r in plan.runs] == ["1.0", 1.0, "yes"]
    resolved = [plan.scenario(r).params["tag"] for r in plan.runs]
    assert resolved == ["1.0", 1.0, "yes"] and isinstance(resolved[0], str)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"grid": ["links.radius=1.5,abc"]}, ["--grid links.radius=1.5,abc", "'abc'", "links.radius"]),
        ({"grid": ["nosuch.key=1"]}, ["--grid nosuch.key=1", "nosuch"]),
        ({"grid": ["links.radius=2"], "sets": ["links.radius=3"]}, ["--grid links.radius", "--set links.radius=3"]),
        ({"sets": ["duration.rounds=abc"]}, ["duration.rounds"]),
        ({"sets": ["seed=4"]}, ["--seeds"]),
        ({"seeds": "9-1"}, ["--seeds 9-1"]),
    ],
)
def test_plan_errors_name_the_argument(kwargs, words):
    with pytest.raises(SweepError) as err:
        make_plan(GRID, **kwargs)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(SweepError, match="no such scenario file"):
        make_plan(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        make_plan(bad)


def test_plan_knows_whether_the_runs_learn_or_draw(tmp_path):
    grid = make_plan(GRID, "0", sets=["duration.rounds=2"])
    assert (grid.learning, grid.figures) == (False, True)
    learns = make_plan(GRID.parent / "c2fl.yaml", "0", sets=["duration.rounds=2"], run_figures=False)
    assert (learns.learning, learns.figures) == (True, False)
