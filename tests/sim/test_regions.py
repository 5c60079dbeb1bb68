"""fieldlearn.sim.regions: membership (rectangle fast path equals shapely), sampling inside polygons."""
from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.regions import Regions, covers_xy, generator_uniform, is_rectangle, sample_in_polygon


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


def test_rectangle_detection_is_exact():
    assert is_rectangle(shapely.Polygon([[0, 0], [5, 0], [5, 2], [0, 2]]))
    assert is_rectangle(shapely.Polygon([[-1, 3], [-1, 0.5], [7.25, 0.5], [7.25, 3]]))  # other start, clockwise
    assert not is_rectangle(shapely.Polygon([[0, 0], [5, 0], [5, 2], [0, 2.0000001]]))
    assert not is_rectangle(shapely.Polygon([[0, 0], [5, 0], [5, 2], [2, 2], [0, 2]]))  # a fifth vertex
    assert not is_rectangle(shapely.Polygon([[0, 0], [5, 2], [5, 0], [0, 2]]))  # a bow tie
    assert not is_rectangle(shapely.Polygon([[0, 0], [1, 0], [1, 1], [0, 1]], holes=[[[0.2, 0.2], [0.4, 0.2], [0.4, 0.4]]]))


@settings(max_examples=20)
@given(st.integers(0, 10_000))
def test_rectangle_sampling_equals_shapely_sampling(seed):
    """The bounds test for rectangles accepts exactly the points shapely's contains_xy does (boundary: rejected)."""
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(-10, 10, 2)
    x1, y1 = x0 + rng.uniform(0.1, 20), y0 + rng.uniform(0.1, 20)
    rect = shapely.Polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    n = 500

    def uniform(attempt, comp):  # the first attempt puts exact 0s (on the boundary) and near-1s among the draws
        u = np.random.default_rng([seed, attempt, comp]).random(n)
        if attempt == 0:
            u[:20] = [0.0, np.nextafter(1.0, 0), np.nextafter(0.0, 1), 0.5] * 5
        return u

    got = sample_in_polygon(rect, n, uniform)
    assert shapely.contains_xy(rect, got[:, 0], got[:, 1]).all()
    # the same draws through the general (shapely) path
    square = shapely.Polygon([[x0, y0], [x1, y0], [x1, y1], [(x0 + x1) / 2, y1], [x0, y1]])  # same shape, 5 vertices
    assert not is_rectangle(square)
    assert np.array_equal(got, sample_in_polygon(square, n, uniform))


def test_fill_ratio_is_the_share_of_the_bounding_box():
    from shapely.geometry import Polygon

    from fieldlearn.sim.regions import fill_ratio

    assert fill_ratio(Polygon([(0, 0), (2, 0), (2, 1), (0, 1)])) == 1.0
    assert fill_ratio(Polygon([(0, 0), (2, 0), (0, 2)])) == 0.5
