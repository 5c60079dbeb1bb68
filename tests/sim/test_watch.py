"""Watching a scenario: exports.animation / exports.viewer (and --animate / --viewer) write their files after the
data results, list them in summary.json, never lose a run when drawing fails; Result's repr and show()."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest

from fieldlearn.sim import ScenarioError, load_scenario, resolve_scenario, run_scenario
from fieldlearn.sim import animation as A
from fieldlearn.sim.__main__ import main
from fieldlearn.sim.animation import Animation
from fieldlearn.sim.viewer import Viewer
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.watch import DrawingWarning, Watch, default_every

from .sim_helpers import gradient_program
from .test_frames import FAULTY

REPO = Path(__file__).resolve().parents[2]
GRID = str(REPO / "scenarios" / "grid.yaml")


def scenario(**exports) -> dict:
    data = copy.deepcopy(FAULTY)
    data["exports"] = {"values": ["gradient"], **exports}
    return data


def test_animation_and_viewer_come_after_the_data_files_and_are_listed(tmp_path):
    out = tmp_path / "r"
    result = run_scenario(resolve_scenario(scenario(animation={"every": 5}, viewer=True)), out)
    listed = json.loads((out / "summary.json").read_text())["files"]
    assert listed == ["scenario.yaml", "metrics.csv", "timeseries.png", "summary.json", "run.gif", "viewer.html"]
    assert result.files == listed
    assert all((out / f).stat().st_size > 0 for f in listed)
    # the viewer's frames use its own default interval (about 100 frames), the animation every 5
    assert result.frames.times.tolist() == list(range(31))


def test_a_failure_to_draw_is_a_warning_and_the_data_results_are_complete(tmp_path, monkeypatch):
    def broken(*args, **kw):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(Animation, "save", broken)
    with pytest.warns(DrawingWarning, match="animation was not written: RuntimeError: no canvas"):
        result = run_scenario(resolve_scenario(scenario(animation={"every": 5})), tmp_path / "r")
    assert result.files == ["scenario.yaml", "metrics.csv", "timeseries.png", "summary.json"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["files"] == result.files
    assert not (tmp_path / "r" / "run.gif").exists()


def test_mp4_without_ffmpeg_writes_a_gif_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "find_ffmpeg", lambda: None)
    with pytest.warns(DrawingWarning, match="run.mp4 not written: an MP4 needs ffmpeg.*wrote run.gif instead"):
        result = run_scenario(resolve_scenario(scenario(animation={"every": 10, "format": "mp4"})), tmp_path / "r")
    assert "run.gif" in result.files and not (tmp_path / "r" / "run.mp4").exists()


def test_colour_defaults_to_the_first_exported_value_and_an_unknown_one_warns(tmp_path):
    data = scenario(viewer={"every": 10})
    data["exports"]["values"] = ["source", "gradient"]
    e = Engine(resolve_scenario(data), gradient_program)
    w = Watch(e)
    e.run()
    w.finish(e)
    assert w.recording.names == ["gradient", "source", "region"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert w.colour_of(w.viewer, w.recording, "exports.viewer") == "source"
    with pytest.warns(DrawingWarning,
                      match=r"exports.viewer.color: 'nope' is not a recorded value .*colouring by 'gradient'"):
        run_scenario(resolve_scenario(scenario(viewer={"every": 10, "color": "nope"})), tmp_path / "b")
    assert (tmp_path / "b" / "viewer.html").is_file()


def test_the_schema_names_a_bad_value_by_its_path():
    with pytest.raises(ScenarioError, match=r"exports\.animation\.format"):
        resolve_scenario(scenario(animation={"format": "avi"}))
    with pytest.raises(ScenarioError, match=r"exports\.viewer"):
        resolve_scenario(scenario(viewer={"every": -1}))


def test_default_interval_gives_about_a_hundred_frames():
    s = load_scenario(GRID, ["duration.rounds=450"])
    assert default_every(s.scenario) == 5.0
    assert default_every(load_scenario(GRID, ["duration.rounds=60"]).scenario) == 1.0


def test_cli_flags_write_the_files(tmp_path, capsys):
    assert main([GRID, "--set", "duration.rounds=8", "--out", str(tmp_path / "a"), "--animate", "--viewer"]) == 0
    printed = capsys.readouterr().out
    assert "run.gif" in printed and "viewer.html" in printed
    assert main([GRID, "--set", "duration.rounds=8", "--set", "exports.viewer={every: 4}", "--viewer", "--quiet",
                 "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "viewer.html").is_file() and not (tmp_path / "b" / "run.gif").exists()
    with pytest.raises(SystemExit) as exc:
        main([GRID, "--animate", "avi", "--quiet"])
    assert exc.value.code == 2 and "invalid choice: 'avi'" in capsys.readouterr().err


def test_same_scenario_gives_byte_identical_animation_and_viewer(tmp_path):
    for k in range(2):
        run_scenario(resolve_scenario(scenario(animation={"every": 5}, viewer={"every": 5})), tmp_path / str(k))
    for name in ("run.gif", "viewer.html", "summary.json"):
        assert (tmp_path / "0" / name).read_bytes() == (tmp_path / "1" / name).read_bytes(), name
