"""fieldlearn.sim.environment: lazy graph rebuilds, batch rows of the CSR, region sensor, link filtering."""
from __future__ import annotations

import numpy as np

from fieldlearn.sim.environment import Environment, filter_links
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


def test_inbox_rows_of_a_partial_batch():
    env = make_env()
    indptr, nbrs, dist = env.inbox_links(np.array([1, 3]))
    assert list(indptr) == [0, 2, 3] and sorted(nbrs[:2]) == [0, 2] and list(nbrs[2:]) == [2]
    assert np.allclose(dist, 1)
    full = env.inbox_links(np.arange(4))
    assert full[0] is env.graph.indptr


def test_filter_links():
    indptr = np.array([0, 2, 3, 5])
    keep = np.array([True, False, False, True, True])
    assert list(filter_links(indptr, keep)) == [0, 1, 1, 3]
