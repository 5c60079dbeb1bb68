"""GapAxis: long empty stretches between far-apart areas shrink; distances inside an occupied stretch are kept."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.gaps import GapAxis

C2FL_X = np.array([0, 8, 1, 3, 5, 7, 100, 108, 101, 107, 200, 208, 300, 308], dtype=float)


def test_c2fl_areas_100_apart_keep_their_width_and_lose_the_gaps():
    a = GapAxis.fit(C2FL_X, extents=np.full(4, 8.0))
    assert a.shrinks and len(a.gaps) == 3
    # occupied length 32; each gap of 92 becomes 3.2
    assert np.allclose(a.knots, [0, 8, 100, 108, 200, 208, 300, 308])
    assert np.allclose(a.drawn, [0, 8, 11.2, 19.2, 22.4, 30.4, 33.6, 41.6])
    assert np.allclose(a(np.array([1.0, 104.0, 307.0])), [1.0, 15.2, 40.6])
    assert [lab for _, lab in a.ticks()] == ["0", "8", "100", "108", "200", "208", "300", "308"]
    assert np.isnan(a(np.array([np.nan]))[0])


def test_dense_or_evenly_spread_coordinates_are_left_alone():
    assert not GapAxis.fit(np.arange(20.0)).shrinks  # a grid
    assert not GapAxis.fit(np.array([0.0, 10.0])).shrinks  # two lone points: nothing occupied to keep
    assert not GapAxis.fit(np.array([0, 1, 3, 5, 6.0]), extents=np.array([6.0])).shrinks  # c2fl's y axis
    x = np.random.default_rng(0).random(500) * 30
    assert not GapAxis.fit(x).shrinks
    assert np.array_equal(GapAxis.identity()(x), x)


@settings(max_examples=50)
@given(st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=40), st.floats(-2e4, 2e4), st.floats(-2e4, 2e4))
def test_the_map_is_monotone_and_keeps_distances_inside_a_stretch(coords, p, q):
    c = np.array(coords)
    a = GapAxis.fit(c)
    lo, hi = min(p, q), max(p, q)
    fp, fq = a(np.array([lo, hi]))
    assert fp <= fq + 1e-9
    # two points in the same occupied stretch (between a knot pair that was not a gap) keep their distance
    for k in range(0, len(a.knots) - 1, 2):
        a0, a1 = a.knots[k], a.knots[k + 1]
        x, y = a0 + 0.25 * (a1 - a0), a0 + 0.75 * (a1 - a0)
        dx, dy = a(np.array([x, y]))
        assert np.isclose(dy - dx, y - x, rtol=1e-9, atol=1e-9)
