"""Networks: KD-tree graphs equal brute force; edge lists and networkx graphs convert faithfully."""
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network
from fieldlearn.calculus.network import graph_from_edges, knn_graph, radius_graph


@settings(max_examples=40)
@given(st.integers(1, 60), st.floats(0.05, 0.6), st.integers(0, 10_000))
def test_radius_graph_equals_brute_force(n, radius, seed):
    pos = np.random.default_rng(seed).random((n, 2))
    g = radius_graph(pos, radius)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    want = {(i, j) for i in range(n) for j in range(n) if i != j and d[i, j] <= radius}
    assert set(g.edge_list()) == want
    np.testing.assert_allclose(g.distance, d[g.rows(), g.neighbours])


def test_knn_graph_is_symmetric_and_contains_each_nearest_neighbour():
    pos = np.random.default_rng(1).random((40, 2))
    g = knn_graph(pos, 3)
    edges = set(g.edge_list())
    assert all((j, i) in edges for i, j in edges)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(40) * 9
    for i in range(40):
        assert all((i, int(j)) in edges for j in np.argsort(d[i])[:3])


def test_graph_from_edges_drops_self_loops_and_duplicates_and_checks_ids():
    g = graph_from_edges(3, np.array([0, 0, 1, 1]), np.array([1, 1, 1, 2]))
    assert g.edge_list() == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        graph_from_edges(3, np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="radius must be > 0"):
        radius_graph(np.zeros((2, 2)), -1.0)


def test_network_from_networkx_keeps_weights_and_positions():
    g = nx.path_graph(4)
    nx.set_edge_attributes(g, {(0, 1): 2.0, (1, 2): 3.0, (2, 3): 4.0}, "weight")
    nx.set_node_attributes(g, {i: (float(i), 0.0) for i in range(4)}, "pos")
    net = Network.from_networkx(g)
    assert set(net.graph.edge_list()) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    back = net.to_networkx()
    assert back[1][2]["weight"] == 3.0
    np.testing.assert_array_equal(net.positions[:, 0], [0, 1, 2, 3])


def test_grid_network_links_the_eight_neighbours_within_radius_1_5():
    net = Network.grid(3, 3, spacing=1.0, radius=1.5)
    np.testing.assert_array_equal(net.graph.degree().reshape(3, 3), [[3, 5, 3], [5, 8, 5], [3, 5, 3]])


def test_random_geometric_has_about_the_requested_mean_degree():
    net = Network.random_geometric(5000, mean_degree=8, seed=0)
    assert 6.5 < net.graph.n_links / 5000 < 8.5
