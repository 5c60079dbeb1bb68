"""fieldlearn.sim.environment: lazy graph rebuilds, cuts, the graph as a calculus Graph, region sensor."""
from __future__ import annotations

import numpy as np

from fieldlearn.calculus.network import Graph
from fieldlearn.sim.environment import Environment
from fieldlearn.sim.links import Cut, RadiusRule
from fieldlearn.sim.regions import Regions


def make_env():
    regions = Regions(["L", "R"], [[[0, -1], [1.5, -1], [1.5, 1], [0, 1]], [[1.5, -1], [9, -1], [9, 1], [1.5, 1]]])
    env = Environment(4, regions, RadiusRule(1.1))
    env.set_positions(np.arange(4), np.array([[0.0, 0], [1, 0], [2, 0], [3, 0]]))
    env.set_alive(np.arange(4), True)
    return env


def test_graph_built_once_until_something_changes():
    env = make_env()
    g1 = env.graph
    assert env.graph is g1 and env.rebuilds == 1
    env.set_positions(np.array([0]), np.array([[0.0, 0]]))  # same place: nothing changed
    assert env.graph is g1
    env.set_positions(np.array([3]), np.array([[5.0, 0]]))
    g2 = env.graph
    assert env.rebuilds == 2 and g2.n_links == 4
    env.add_cut(Cut("c", 4, np.array([[0, 1]]), None, None))
    assert env.graph.n_links == 2
    assert env.restore("c") == 1 and env.graph.n_links == 4


def test_region_sensor_first_match_and_outside():
    env = make_env()
    assert list(env.region) == [0, 0, 1, 1]
    env.set_positions(np.array([2]), np.array([[20.0, 0]]))
    assert env.region[2] == -1


def test_graph_is_a_calculus_graph_and_cuts_keep_its_row_order():
    env = make_env()
    g = env.graph
    assert isinstance(g, Graph)
    assert g.indptr.tolist() == [0, 1, 3, 5, 6] and g.neighbours.tolist() == [1, 0, 2, 1, 3, 2]
    assert g.distance.tolist() == [1.0] * 6
    env.add_cut(Cut("c", 4, np.array([[1, 2]]), None, None))
    cut = env.graph
    assert isinstance(cut, Graph)
    assert cut.indptr.tolist() == [0, 1, 2, 3, 4] and cut.neighbours.tolist() == [1, 0, 3, 2]
    indptr, nbrs, dist = cut.inbox_links(np.array([1, 3]))  # the inbox rows of a partial batch
    assert indptr.tolist() == [0, 1, 2] and nbrs.tolist() == [0, 2] and dist.tolist() == [1.0, 1.0]


def test_absent_devices_without_a_position_do_not_count_as_moves():
    env = Environment(3, Regions([], []), RadiusRule(1.0))
    env.set_positions(np.arange(3), np.array([[0.0, 0.0], [0.5, 0.0], [np.nan, np.nan]]))
    env.set_alive(np.array([0, 1]), True)
    g = env.graph
    env.set_positions(np.arange(3), np.array([[0.0, 0.0], [0.5, 0.0], [np.nan, np.nan]]))
    assert env.graph is g and env.rebuilds == 1 and env.region.tolist() == [-1, -1, -1]
    assert g.rows().tolist() == [0, 1] and g.neighbours.tolist() == [1, 0]
