"""fieldlearn.sim.generators: generator graphs are refused before they grow past the limits, the size estimates are
upper bounds, and a bounded build is the very graph networkx builds by default (same type, nodes, edges, order)."""
from __future__ import annotations

import time

import networkx as nx
import pytest

from fieldlearn.sim import generators as G
from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import resolve_scenario

from .sim_helpers import BASE, SCENARIOS


def _graph_scenario(generator: str, **params):
    data = {**BASE, "deployments": [{"kind": "graph", "generator": generator, "params": params, "layout": "circular"}],
            "links": {"rule": "fixed"}, "sensors": {"source": False}}
    return resolve_scenario(data, SCENARIOS)


@pytest.mark.parametrize("generator, params, message", [
    ("complete_graph", {"n": 60_000}, "more than 5,000,000 edges (the most a graph deployment may have): up to 1,799,970,000"),
    ("grid_2d_graph", {"m": 3000, "n": 3000}, "more than 5,000,000 nodes (the most a scenario may have): about 9,000,000"),
    ("hypercube_graph", {"n": 40}, "more than 5,000,000 nodes"),
    ("random_geometric_graph", {"n": 100_000, "radius": 0.5}, "more than 5,000,000 edges"),
    ("gnp_random_graph", {"n": 10_000, "p": 0.5}, "more than 5,000,000 edges"),
])
def test_too_large_generator_graphs_are_refused_before_they_are_built(generator, params, message):
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as err:
        _graph_scenario(generator, **params)
    assert err.value.path == "deployments[0].params" and message in str(err.value)
    assert f"{generator}(**params) would build" in str(err.value)
    assert time.perf_counter() - started < 2.0


def test_a_generator_without_an_estimate_is_stopped_while_building(monkeypatch):
    assert "tadpole_graph" not in G.ESTIMATES
    monkeypatch.setattr(G, "MAX_GRAPH_EDGES", 1000)
    with pytest.raises(ScenarioError, match=r"tadpole_graph\(\*\*params\) would build more than 1,000 edges"):
        _graph_scenario("tadpole_graph", m=2000, n=5)  # 2,005 edges
    assert _graph_scenario("tadpole_graph", m=900, n=5).counts == (905,)
    monkeypatch.setattr(G.S, "MAX_DEVICES", 30)
    with pytest.raises(G.GraphTooLarge, match="more than 30 nodes"):
        nx.path_graph(31, create_using=G.BoundedGraph)


def test_create_using_is_the_simulators():
    with pytest.raises(ScenarioError, match="set by the simulator") as err:
        _graph_scenario("path_graph", n=3, create_using="DiGraph")
    assert err.value.path == "deployments[0].params.create_using"


SAME = [
    ("complete_graph", {"n": 6}), ("grid_2d_graph", {"m": 3, "n": 4}), ("lollipop_graph", {"m": 4, "n": 3}),
    ("barabasi_albert_graph", {"n": 30, "m": 2, "seed": 3}), ("watts_strogatz_graph", {"n": 20, "k": 4, "p": 0.3, "seed": 1}),
    ("gnp_random_graph", {"n": 15, "p": 0.3, "seed": 2, "directed": True}), ("gnm_random_graph", {"n": 15, "m": 20, "seed": 2}),
    ("configuration_model", {"deg_sequence": [3, 3, 2, 2, 2], "seed": 4}), ("gn_graph", {"n": 10, "seed": 1}),
    ("gnr_graph", {"n": 10, "p": 0.5, "seed": 1}), ("gnc_graph", {"n": 10, "seed": 1}), ("paley_graph", {"p": 7}),
    ("random_regular_graph", {"d": 3, "n": 10, "seed": 5}), ("margulis_gabber_galil_graph", {"n": 3}),
    ("chordal_cycle_graph", {"p": 5}), ("random_clustered_graph", {"joint_degree_sequence": [(1, 0), (1, 0), (1, 0), (2, 0), (1, 0), (2, 1), (0, 1), (0, 1)], "seed": 1}),
    ("directed_configuration_model", {"in_degree_sequence": [1, 1, 2], "out_degree_sequence": [2, 1, 1], "seed": 1}),
    ("directed_havel_hakimi_graph", {"in_deg_sequence": [1, 1, 2], "out_deg_sequence": [2, 1, 1]}),
    ("hexagonal_lattice_graph", {"m": 2, "n": 2}), ("balanced_tree", {"r": 2, "h": 3}),
    ("random_geometric_graph", {"n": 30, "radius": 0.3, "seed": 1}), ("powerlaw_cluster_graph", {"n": 20, "m": 2, "p": 0.2, "seed": 1}),
]


@pytest.mark.parametrize("generator, params", SAME, ids=[g for g, _ in SAME])
def test_a_bounded_build_is_the_default_build(generator, params):
    fn = getattr(nx, generator)
    want = fn(**params)
    got = G.bounded_call(generator, fn, dict(params))
    assert next(c for c in type(got).__mro__ if c.__module__.startswith("networkx")) is type(want)
    assert list(got.nodes(data=True)) == list(want.nodes(data=True))
    assert list(got.edges(data=True)) == list(want.edges(data=True))


SAMPLES = {
    "empty_graph": {"n": 7}, "complete_graph": {"n": 7}, "complete_bipartite_graph": {"n1": 3, "n2": 4},
    "path_graph": {"n": 5}, "cycle_graph": {"n": 5}, "star_graph": {"n": 5}, "wheel_graph": {"n": 6},
    "grid_2d_graph": {"m": 3, "n": 4}, "ladder_graph": {"n": 5}, "circular_ladder_graph": {"n": 5},
    "barbell_graph": {"m1": 4, "m2": 2}, "lollipop_graph": {"m": 4, "n": 3}, "balanced_tree": {"r": 3, "h": 2},
    "full_rary_tree": {"r": 3, "n": 20}, "binomial_tree": {"n": 4}, "gnp_random_graph": {"n": 30, "p": 0.9, "seed": 1},
    "erdos_renyi_graph": {"n": 30, "p": 0.2, "seed": 1}, "binomial_graph": {"n": 30, "p": 0.2, "seed": 1},
    "fast_gnp_random_graph": {"n": 30, "p": 0.2, "seed": 1}, "gnm_random_graph": {"n": 10, "m": 100, "seed": 1},
    "dense_gnm_random_graph": {"n": 10, "m": 30, "seed": 1}, "barabasi_albert_graph": {"n": 30, "m": 3, "seed": 1},
    "dual_barabasi_albert_graph": {"n": 30, "m1": 3, "m2": 1, "p": 0.5, "seed": 1},
    "extended_barabasi_albert_graph": {"n": 30, "m": 2, "p": 0.2, "q": 0.2, "seed": 1},
    "powerlaw_cluster_graph": {"n": 30, "m": 3, "p": 0.5, "seed": 1}, "watts_strogatz_graph": {"n": 20, "k": 4, "p": 0.5, "seed": 1},
    "connected_watts_strogatz_graph": {"n": 20, "k": 4, "p": 0.5, "seed": 1},
    "newman_watts_strogatz_graph": {"n": 20, "k": 4, "p": 0.9, "seed": 1}, "random_regular_graph": {"d": 3, "n": 12, "seed": 1},
    "triangular_lattice_graph": {"m": 3, "n": 4}, "hexagonal_lattice_graph": {"m": 3, "n": 4},
    "dorogovtsev_goltsev_mendes_graph": {"n": 4}, "circulant_graph": {"n": 10, "offsets": [1, 3]},
    "random_geometric_graph": {"n": 60, "radius": 0.2, "seed": 1}, "soft_random_geometric_graph": {"n": 60, "radius": 0.2, "seed": 1},
    "thresholded_random_geometric_graph": {"n": 60, "radius": 0.3, "theta": 0.1, "seed": 1},
    "waxman_graph": {"n": 40, "beta": 0.5, "seed": 1}, "geographical_threshold_graph": {"n": 40, "theta": 5, "seed": 1},
    "navigable_small_world_graph": {"n": 4, "p": 1, "q": 2, "seed": 1}, "grid_graph": {"dim": [3, 4, 2]},
    "hypercube_graph": {"n": 4}, "caveman_graph": {"l": 3, "k": 4}, "connected_caveman_graph": {"l": 3, "k": 4},
    "relaxed_caveman_graph": {"l": 3, "k": 4, "p": 0.3, "seed": 1}, "ring_of_cliques": {"num_cliques": 4, "clique_size": 3},
    "windmill_graph": {"n": 3, "k": 4}, "turan_graph": {"n": 10, "r": 3},
    "random_partition_graph": {"sizes": [5, 6, 7], "p_in": 0.8, "p_out": 0.1, "seed": 1},
    "planted_partition_graph": {"l": 3, "k": 5, "p_in": 0.8, "p_out": 0.1, "seed": 1},
    "gaussian_random_partition_graph": {"n": 30, "s": 5, "v": 2, "p_in": 0.8, "p_out": 0.1, "seed": 1},
    "stochastic_block_model": {"sizes": [5, 6], "p": [[0.9, 0.1], [0.1, 0.8]], "seed": 1},
    "kneser_graph": {"n": 6, "k": 2}, "mycielski_graph": {"n": 5}, "sudoku_graph": {"n": 2},
    "random_k_out_graph": {"n": 20, "k": 3, "alpha": 1.0, "seed": 1}, "scale_free_graph": {"n": 30, "seed": 1},
    "random_internet_as_graph": {"n": 1000, "seed": 1}, "random_cograph": {"n": 4, "seed": 1},
    "random_labeled_tree": {"n": 10, "seed": 1}, "random_labeled_rooted_tree": {"n": 10, "seed": 1},
    "random_labeled_rooted_forest": {"n": 10, "seed": 1}, "random_unlabeled_tree": {"n": 10, "seed": 1},
    "random_unlabeled_rooted_tree": {"n": 10, "seed": 1}, "random_unlabeled_rooted_forest": {"n": 10, "seed": 1},
    "expected_degree_graph": {"w": [3, 2, 2, 1, 1, 5], "seed": 1}, "random_degree_sequence_graph": {"sequence": [2, 2, 2, 2], "seed": 1},
    "general_random_intersection_graph": {"n": 10, "m": 4, "p": [0.5] * 4, "seed": 1},
    "uniform_random_intersection_graph": {"n": 10, "m": 4, "p": 0.5, "seed": 1},
    "k_random_intersection_graph": {"n": 10, "m": 4, "k": 2, "seed": 1},
    "visibility_graph": {"series": [3, 1, 4, 1, 5, 9, 2, 6]}, "interval_graph": {"intervals": [[0, 2], [1, 3], [4, 5]]},
    "joint_degree_graph": {"joint_degrees": {1: {4: 1}, 2: {2: 2, 3: 2, 4: 2}, 3: {2: 2, 4: 1}, 4: {1: 1, 2: 2, 3: 1}}, "seed": 1},
    "LFR_benchmark_graph": {"n": 250, "tau1": 3, "tau2": 1.5, "mu": 0.1, "average_degree": 5, "min_community": 20, "seed": 10},
}
SKIPPED = {"random_powerlaw_tree_sequence", "number_of_nonisomorphic_trees", "directed_joint_degree_graph"}  # no graph


def test_every_estimate_has_a_sample_and_bounds_what_is_built():
    assert set(G.ESTIMATES) == set(SAMPLES) | SKIPPED
    for name, params in SAMPLES.items():
        fn = getattr(nx, name)
        g = fn(**params)
        if isinstance(g, list):
            nodes, edges = sum(len(t) for t in g), sum(t.number_of_edges() for t in g)
        else:
            nodes, edges = g.number_of_nodes(), g.number_of_edges()
        est_nodes, est_edges = G.estimate(name, fn, params)
        assert est_nodes >= nodes and est_edges >= edges, (name, est_nodes, nodes, est_edges, edges)


def test_quadratic_layouts_are_bounded():
    with pytest.raises(ScenarioError, match=r"layout 'spring' places at most 5,000 nodes .* this graph has 8,000") as err:
        resolve_scenario({**BASE, "deployments": [{"kind": "graph", "generator": "cycle_graph", "params": {"n": 8000}}],
                          "sensors": {"source": False}}, SCENARIOS)
    assert err.value.path == "deployments[0].layout"
    assert _graph_scenario("cycle_graph", n=8000).counts == (8000,)  # circular: linear time
