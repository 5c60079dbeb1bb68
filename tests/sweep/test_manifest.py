"""sweep.json: what it records, reading it back, and telling another scenario's sweep from this one's."""
from __future__ import annotations

import json

from fieldlearn.sweep.grid import FORMAT, make_plan
from fieldlearn.sweep.manifest import is_complete, manifest_text, other_scenario, read_manifest

from .helpers import GRID, write_tiny

MAPPING = {"name": "inline", "duration": {"rounds": 2}, "deployments": [{"kind": "grid", "rows": 2, "cols": 2}],
           "links": {"rule": "radius", "radius": 1.1}, "program": "gradient", "sensors": {"source": {"default": False}}}


def test_the_manifest_records_the_plan_and_each_runs_status():
    plan = make_plan(GRID, "0-1", {"links.radius": [1.5]}, ["duration.rounds=3"], device="cuda")
    first, second = plan.runs
    doc = json.loads(manifest_text(plan, "2 local processes", {first.id: "complete"}, {second.id: "boom"},
                                   ["results.csv"], "complete"))
    assert {k: doc[k] for k in ("format", "state", "scenario", "scenario_file", "name", "sets", "grid", "seeds",
                                "device", "backend", "files")} == {
        "format": FORMAT, "state": "complete", "scenario": str(GRID), "scenario_file": str(GRID.resolve()),
        "name": "grid", "sets": ["duration.rounds=3"], "grid": [["links.radius", [1.5]]], "seeds": [0, 1],
        "device": "cuda", "backend": "2 local processes", "files": ["results.csv"]}
    assert doc["runs"] == [
        {"run": first.id, "params": {"links.radius": 1.5}, "seed": 0,
         "set": ["duration.rounds=3", "links.radius=1.5", "seed=0"], "status": "complete"},
        {"run": second.id, "params": {"links.radius": 1.5}, "seed": 1,
         "set": ["duration.rounds=3", "links.radius=1.5", "seed=1"], "status": "missing", "error": "boom"}]
    assert is_complete(doc) and not is_complete(dict(doc, state="running")) and not is_complete(None)


def test_read_manifest_is_none_without_a_readable_one(tmp_path):
    assert read_manifest(tmp_path) is None
    for text in ("{trunc", "[1, 2]"):
        (tmp_path / "sweep.json").write_text(text)
        assert read_manifest(tmp_path) is None
    (tmp_path / "sweep.json").write_text('{"name": "x"}')
    assert read_manifest(tmp_path) == {"name": "x"}


def test_another_scenario_is_another_file_or_for_a_mapping_another_name(tmp_path):
    grid = make_plan(GRID, "0")
    tiny = make_plan(write_tiny(tmp_path), "0")
    doc = json.loads(manifest_text(grid, "b", {}, {}, [], "running"))
    assert other_scenario(None, tiny) is None and other_scenario(doc, grid) is None
    assert other_scenario(doc, tiny) == f"grid ({GRID.resolve()})"
    copy = tmp_path / "grid.yaml"  # the same content and name in another file: another scenario
    copy.write_text(GRID.read_text())
    assert other_scenario(doc, make_plan(copy, "0")) == f"grid ({GRID.resolve()})"
    inline = make_plan(MAPPING, "0")
    assert inline.source.file is None
    assert other_scenario(json.loads(manifest_text(inline, "b", {}, {}, [], "running")), inline) is None
    assert other_scenario(doc, inline) == f"grid ({GRID.resolve()})"
    older = {"format": 1, "scenario": "scenarios/grid.yaml", "name": "grid"}  # before scenario_file was recorded
    assert other_scenario(older, grid) is None and other_scenario(older, tiny) == "grid (scenarios/grid.yaml)"
