"""fieldlearn.sim.result: a finished run's repr, its recording and how a notebook shows it."""
from __future__ import annotations

import copy

import pytest

from fieldlearn.sim import resolve_scenario, run_scenario
from fieldlearn.sim.animation import Animation
from fieldlearn.sim.viewer import Viewer

from .test_frames import FAULTY


def scenario(**exports):
    data = copy.deepcopy(FAULTY)
    data["exports"] = {"values": ["gradient"], **exports}
    return data


def test_result_repr_is_short_and_show_gives_inline_viewer_or_animation():
    result = run_scenario(resolve_scenario(scenario(viewer={"every": 10})))
    text = repr(result)
    assert len(text) < 300 and text.startswith("<Result faulty: 24 devices, t = 30") and "4 frames recorded" in text
    v = result.show()
    assert isinstance(v, Viewer) and v._repr_html_().startswith("<iframe")
    a = result.show("animation", color="gradient")
    assert isinstance(a, Animation) and a.color == "gradient"
    with pytest.raises(ValueError, match="viewer.*animation"):
        result.show("movie")
    assert result.recording() is result.frames and result.metric_series() is None


def test_a_run_without_frames_shows_its_final_state():
    result = run_scenario(resolve_scenario(scenario()))
    assert result.frames is None and len(result.recording().frames) == 1
