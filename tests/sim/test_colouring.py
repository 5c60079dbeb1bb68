"""Colouring: ids get palette slots, numbers codes along a colour map between run-wide limits, no value is NONE."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import colormaps
from matplotlib.colors import to_hex

from fieldlearn.sim.colouring import NONE, NONE_COLOUR, PALETTE, STEPS, Colouring, is_categorical


@pytest.mark.parametrize("name, dtype, expected", [
    ("leader", np.int64, True), ("lead_id", np.int32, True), ("region", np.int64, True), ("merged", bool, True),
    ("dwell", np.int64, False), ("hops", np.int64, False), ("gradient", np.float64, False),
    ("leader", np.float64, False),
])
def test_which_values_are_identifiers(name, dtype, expected):
    assert is_categorical(name, np.dtype(dtype)) is expected


def test_limits_are_fixed_over_every_frame_and_ignore_non_finite_values():
    c = Colouring.for_values("g", False, [np.array([1.0, np.inf, 3.0]), np.array([np.nan, -2.0, 0.5])])
    assert (c.lo, c.hi) == (-2.0, 3.0)
    assert c.codes(np.array([-2.0, 3.0, 0.5, np.nan, np.inf, 10.0, -10.0])).tolist() == [0, STEPS, 127, NONE, NONE,
                                                                                           STEPS, 0]
    flat = Colouring.for_values("g", False, [np.array([4.0, 4.0])])
    assert (flat.lo, flat.hi) == (3.5, 4.5) and flat.codes(np.array([4.0])).tolist() == [127]


def test_identifiers_take_palette_slots_and_negative_or_missing_ones_none():
    c = Colouring.for_values("leader", True, [np.array([0.0, 5.0])])
    assert c.codes(np.array([0.0, 7.0, 27.0, -1.0, np.nan])).tolist() == [0, 7, 7, NONE, NONE]
    table = c.colours()
    assert len(table) == NONE + 1 and table[:len(PALETTE)] == list(PALETTE) and table[NONE] == NONE_COLOUR
    assert NONE_COLOUR not in PALETTE


def test_colour_table_follows_the_colour_map_and_rgba_uses_it():
    c = Colouring("g", False, 0.0, 1.0, "viridis")
    table = c.colours()
    assert table[0] == to_hex(colormaps["viridis"](0.0)) and table[STEPS] == to_hex(colormaps["viridis"](1.0))
    rgba = c.rgba(np.array([0.0, 1.0, np.nan]))
    assert to_hex(rgba[0]) == table[0] and to_hex(rgba[1]) == table[STEPS] and to_hex(rgba[2]) == NONE_COLOUR


@settings(max_examples=60)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30))
def test_codes_are_monotone_in_the_value(values):
    v = np.array(values)
    c = Colouring.for_values("x", False, [v])
    order = np.argsort(v, kind="stable")
    codes = c.codes(v)[order].astype(int)
    assert (np.diff(codes) >= 0).all() and codes.min() >= 0 and codes.max() <= STEPS


def test_colour_bar_ticks_lie_inside_the_limits():
    c = Colouring("g", False, 0.0, 26.9)
    ticks = c.ticks()
    assert ticks and all(0.0 <= v <= 26.9 for v, _ in ticks)
    assert c.code_of(26.9) == pytest.approx(STEPS) and c.code_of(0.0) == 0.0
