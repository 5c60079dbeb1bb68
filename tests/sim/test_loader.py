"""fieldlearn.sim.loader: a file (or a shipped scenario's name) through overrides, schema and checks to one resolved
scenario: the program located and its parameters bound, graphs built, traces read; every error names the file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import load_scenario, resolve_scenario

from .sim_helpers import BASE

REPO = Path(__file__).resolve().parents[2]


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
    sc = s.scenario
    assert sc.duration.rounds == 7 and sc.links.radius == 2.0 and sc.deployments[0].cols == 4
    assert sc.exports.values == ["gradient"]
    with pytest.raises(ScenarioError, match=r"s.yaml: links.radius: must be > 0"):
        load_scenario(f, ["links.radius=-3"])
    with pytest.raises(ScenarioError, match=r"--set deployments\[4\].cols=1: deployments\[4\] is out of range"):
        load_scenario(f, ["deployments[4].cols=1"])
    with pytest.raises(ScenarioError, match="expected key.path=value"):
        load_scenario(f, ["duration.rounds"])
    with pytest.raises(ScenarioError, match="not a mapping"):
        load_scenario(f, ["seed.x=1"])


def test_a_shipped_scenario_loads_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_scenario("grid", ["duration.rounds=3"])
    assert loaded.name == "grid" and loaded.program_ref.module == "fieldlearn.programs.gradient"
    assert loaded.params == {"source": "source"} and loaded.capacity == 400


def test_repeated_keys_deep_nesting_and_alias_bombs_are_refused_before_validation(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump(BASE) + "seed: 3\n")
    with pytest.raises(ScenarioError, match=r"twice.yaml: the key 'seed' appears twice .*lines \d+ and \d+"):
        load_scenario(twice)
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 600 + "]" * 600 + "\n")
    with pytest.raises(ScenarioError, match=r"deep.yaml: nested more than 64 levels deep"):
        load_scenario(deep)
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for k in range(1, 9):
        prev = chr(ord("a") + k - 1)
        levels.append(f"{chr(ord('a') + k)}: &{chr(ord('a') + k)} [" + ", ".join([f"*{prev}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    with pytest.raises(ScenarioError, match=r"bomb.yaml: the document expands to more than 1,000,000 values"):
        load_scenario(bomb)


def test_loaded_scenarios_say_what_ran(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(BASE))
    loaded = load_scenario(f, ["program.params.source=source"])
    text = loaded.to_yaml()
    assert yaml.safe_load(text)["program"] == {"name": "gradient", "params": {"source": "source"}}
    assert loaded.with_seed(9).scenario.seed == 9 and loaded.scenario.seed == 1


@settings(max_examples=60)
@given(st.text(max_size=80))
def test_fuzz_yaml_text(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fz") / "s.yaml"
    f.write_text(text, encoding="utf-8")
    try:
        load_scenario(f)
    except ScenarioError:
        pass


def test_regions_from_a_districts_file_and_streets_from_json_or_a_sumo_network(tmp_path):
    from .sim_helpers import CITY, SCENARIOS, city

    loaded = city()
    regions = loaded.scenario.regions
    assert [r.name for r in regions] == ["district0", "district1", "district2", "district3"]
    assert regions[3].polygon == [[300.0, 300.0], [601.6, 300.0], [601.6, 601.6], [300.0, 601.6]]
    assert "from_file" not in loaded.to_yaml() and "district3" in loaded.to_yaml()  # what ran: the polygons
    from_json = loaded.streets
    from_net = city(streets="data/city-6x6/net.net.xml.gz").streets
    assert len(from_json.lanes) == len(from_net.lanes) == 168 and from_json.bounds == from_net.bounds
    for name, changes, path, message in [
        ("absent", {"regions": {"from_file": "nowhere.json"}}, "regions.from_file", "not found"),
        ("streets", {"regions": {"from_file": "data/city-6x6/streets.json"}}, "regions.from_file",
         'expected a JSON object with "format": "fieldlearn.districts/1"'),
        ("no streets", {"streets": "data/city-6x6/districts.json"}, "streets", "fieldlearn.streets/1"),
        ("bad net", {"streets": "data/city-6x6/routes.rou.xml.gz"}, "streets", "not a SUMO network"),
    ]:
        with pytest.raises(ScenarioError) as err:
            city(**changes)
        assert err.value.path == path and message in err.value.text, name
    bad = tmp_path / "d.json"
    bad.write_text('{"format": "fieldlearn.districts/1", "districts": [{"name": "flat", "polygon": '
                   '[[0, 0], [1, 1], [2, 2]]}]}')
    with pytest.raises(ScenarioError) as err:
        city(regions={"from_file": str(bad)})
    assert err.value.path == "regions.from_file" and "district 'flat'" in err.value.text and "area" in err.value.text
    assert CITY["regions"] == {"from_file": "data/city-6x6/districts.json"} and SCENARIOS.is_dir()
