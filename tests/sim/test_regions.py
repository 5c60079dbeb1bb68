"""fieldlearn.sim.regions: membership (rectangle fast path equals shapely), sampling inside polygons."""
from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.regions import Regions, covers_xy, generator_uniform, sample_in_polygon


@settings(max_examples=30)
@given(st.integers(0, 10_000))
def test_index_of_matches_shapely_first_match(seed):
    rng = np.random.default_rng(seed)
    polys = [[[0, 0], [4, 0], [4, 4], [0, 4]], [[2, 2], [6, 2], [6, 6], [2, 6]], [[0, 5], [3, 8], [0, 8]]]
    reg = Regions(["a", "b", "c"], polys)
    assert reg.rectangles == [True, True, False]
    pts = rng.uniform(-1, 9, (300, 2))
    pts[:10] = [[4, 4], [2, 2], [0, 0], [6, 6], [4, 1], [1, 5], [3, 8], [0, 8], [6, 2], [8, 8]]  # boundaries
    want = np.full(len(pts), -1)
    for i in range(2, -1, -1):
        inside = shapely.intersects_xy(reg.polygons[i], pts[:, 0], pts[:, 1])
        want[inside] = i
    assert np.array_equal(reg.index_of(pts), want)


def test_sampling_inside_a_concave_polygon():
    poly = shapely.Polygon([[0, 0], [10, 0], [10, 10], [9, 10], [9, 1], [0, 1]])  # an L, 19% of its box
    pts = sample_in_polygon(poly, 2000, generator_uniform(np.random.default_rng(0), 2000))
    assert covers_xy(poly, pts).all()
    assert abs((pts[:, 1] > 1).mean() - 9 / 19) < 0.05
