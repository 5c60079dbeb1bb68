"""fieldlearn.sim.shipped: the scenarios installed with the package, found by name."""
from __future__ import annotations

from pathlib import Path

from fieldlearn.sim.shipped import describe, scenario_path, shipped_scenarios

REPO = Path(__file__).resolve().parents[2]


def test_every_scenario_of_the_checkout_is_shipped_and_described():
    shipped = shipped_scenarios()
    assert set(shipped) == {p.stem for p in (REPO / "scenarios").glob("*.yaml")}
    assert all(describe(p) for p in shipped.values())


def test_a_name_is_a_shipped_scenario_unless_it_is_a_path_or_a_file_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert scenario_path("grid") == shipped_scenarios()["grid"]
    assert scenario_path("grid.yaml") == Path("grid.yaml") and scenario_path("x/grid") == Path("x/grid")
    (tmp_path / "grid").write_text("")
    assert scenario_path("grid") == Path("grid")  # a file of that name in the working folder comes first
    assert scenario_path("nothing-of-that-name") == Path("nothing-of-that-name")
