"""fieldlearn.sim.inputs: what a scenario names outside itself, read at resolve time: generator graphs, trace files,
vehicle plans, districts and streets, the learning block; every error names the YAML path."""
from __future__ import annotations

import pytest

from fieldlearn.sim import scenario as S
from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.inputs import build_generator_graph, resolve_file


def test_trace_file_through_the_scenario(tmp_path):
    from fieldlearn.sim import ScenarioError
    from fieldlearn.sim.loader import resolve_scenario

    (tmp_path / "t.csv").write_text("time,device,x,y\n0,0,0,0\n4,0,4,0\n")
    data = {
        "duration": {"rounds": 5},
        "deployments": [{"kind": "points", "points": [[0, 0], [1, 1]], "mobility": {"kind": "trace", "file": "t.csv"}}],
        "links": {"rule": "radius", "radius": 1},
        "program": "gradient",
    }
    s = resolve_scenario(data, tmp_path)
    assert s.traces[0].shape == (2, 4)
    (tmp_path / "t.csv").write_text("time,device,x,y\n0,5,0,0\n")
    with pytest.raises(ScenarioError, match=r"deployments\[0\].mobility.file: .*device 5 out of range"):
        resolve_scenario(data, tmp_path)


def test_generator_graphs_are_networkx_generators_only_and_bounded():
    g = build_generator_graph(S.GraphDeployment(kind="graph", generator="path_graph", params={"n": 4}),
                              ("deployments", 0))
    assert g.number_of_nodes() == 4
    with pytest.raises(ScenarioError, match=r"deployments\[1\].generator: 'write_edgelist' is not a networkx graph"):
        build_generator_graph(S.GraphDeployment(kind="graph", generator="write_edgelist"), ("deployments", 1))
    with pytest.raises(ScenarioError, match=r"deployments\[0\].params: complete_graph\(\*\*params\) would build"):
        build_generator_graph(S.GraphDeployment(kind="graph", generator="complete_graph", params={"n": 60_000}),
                              ("deployments", 0))


def test_files_are_found_beside_the_scenario_only(tmp_path):
    (tmp_path / "data.csv").write_text("x")
    assert resolve_file("data.csv", tmp_path, ("streets",)) == tmp_path / "data.csv"
    with pytest.raises(ScenarioError, match=r"streets: file 'nope.csv' not found \(relative paths start at"):
        resolve_file("nope.csv", tmp_path, ("streets",))
