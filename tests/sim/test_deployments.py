"""fieldlearn.sim.deployments: grid, random in an area, points, networkx graph layouts."""
from __future__ import annotations

import numpy as np

from fieldlearn.sim import scenario as S
from fieldlearn.sim.inputs import build_generator_graph
from fieldlearn.sim.deployments import place
from fieldlearn.sim.regions import Regions

REG = Regions(["A"], [[[0, 0], [4, 0], [0, 4]]])


def test_grid_row_by_row_with_jitter_bounds():
    d = S.GridDeployment(kind="grid", rows=2, cols=3, spacing=2.0, origin=[1.0, 1.0])
    pos = place(d, np.random.default_rng(0), REG).positions
    assert pos.tolist() == [[1, 1], [3, 1], [5, 1], [1, 3], [3, 3], [5, 3]]
    j = S.GridDeployment(kind="grid", count=7, spacing=1.0, jitter=0.2)
    pj = place(j, np.random.default_rng(0), REG).positions
    assert j.shape() == (3, 3) and len(pj) == 7
    base = place(S.GridDeployment(kind="grid", count=7), np.random.default_rng(0), REG).positions
    assert np.all(np.abs(pj - base) <= 0.2)


def test_random_inside_region_triangle():
    d = S.RandomDeployment(kind="random", count=500, region="A")
    pos = place(d, np.random.default_rng(0), REG).positions
    assert np.all(pos[:, 0] + pos[:, 1] < 4) and np.all(pos >= 0)


def test_points_and_graph():
    p = S.PointsDeployment(kind="points", points=[[0, 1], [2, 3]])
    assert place(p, np.random.default_rng(0), REG).positions.tolist() == [[0, 1], [2, 3]]
    g = S.GraphDeployment(kind="graph", generator="grid_2d_graph", params={"m": 2, "n": 3}, scale=2.0)
    pl = place(g, np.random.default_rng(0), REG, build_generator_graph(g, ("deployments", 0)))
    assert len(pl.positions) == 6 and len(pl.edges) == 7
    assert pl.positions.max() == 4.0  # grid layout: (row, col) labels scaled by 2
    c = S.GraphDeployment(kind="graph", generator="cycle_graph", params={"n": 5}, layout="circular")
    ring = place(c, np.random.default_rng(0), REG, build_generator_graph(c, ("deployments", 0)))
    assert np.allclose(np.linalg.norm(ring.positions, axis=1), 1.0)
