"""Animations: a GIF with one image per recorded frame, devices in their value's colour, time, faults and moves in
the picture; MP4 through an ffmpeg or a clear error; Traces and Results animate too."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from fieldlearn import Network, run
from fieldlearn.sim import animate, resolve_scenario, run_scenario
from fieldlearn.sim import animation as A
from fieldlearn.sim.frames import Frame, Recording

from .sim_helpers import gradient_program
from .test_frames import FAULTY


def four_devices() -> Recording:
    """Four devices far apart with values 0, 1, 2, 3 (then 3, 2, 1, 0), device 3 moving at the second frame."""
    pos = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    moved = pos.copy()
    moved[3] = [12, 10]
    alive = np.ones(4, dtype=bool)
    links = np.array([[0, 1]], dtype=np.int32)
    frames = [Frame(0.0, pos, alive, alive, links, {"v": np.arange(4.0)}, 0),
              Frame(5.0, moved, alive, alive, links, {"v": np.arange(4.0)[::-1].copy()}, 0)]
    return Recording("four", 4, frames, categorical={"v": False})


@pytest.fixture(scope="module")
def faulty():
    return run_scenario(resolve_scenario(copy.deepcopy(FAULTY)))


def test_gif_has_one_image_per_frame(tmp_path, faulty):
    path = animate(faulty, color="gradient").save(tmp_path / "run.gif")
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == len(faulty.frames.frames) == 11
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_devices_are_drawn_in_the_colour_of_their_value():
    rec = four_devices()
    a = A.Animation(rec, color="v")
    fig, painter = A.figure_for(rec, a.colouring)
    png = A._png(fig, 100)
    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float) / 255
    h = im.shape[0]
    table = a.colouring.colours()
    for d in range(4):
        x, y = painter.ax.transData.transform(painter.gx(rec.frames[0].positions[d:d + 1, 0]).tolist()
                                              + painter.gy(rec.frames[0].positions[d:d + 1, 1]).tolist())
        pixel = im[int(round(h - y)), int(round(x))]
        want = to_rgb(table[a.colouring.codes(np.array([float(d)]))[0]])
        assert np.abs(pixel - want).max() < 0.03, (d, pixel, want)


def test_title_has_the_time_and_recent_faults_and_moves_leave_a_trail(faulty):
    rec = faulty.frames
    a = A.Animation(rec)
    _, painter = A.figure_for(rec, a.colouring)
    i9 = rec.times.tolist().index(9.0)
    painter.draw(i9)
    assert "t = 9" in painter.title.get_text() and "crash (2) at t=8" in painter.title.get_text()
    painter.draw(rec.times.tolist().index(30.0))
    assert "faults" not in painter.title.get_text()
    i21 = rec.times.tolist().index(21.0)
    painter.draw(i21)
    assert len(painter.trails.get_segments()) == 1 and len(painter.crashed.get_offsets()) == 0
    painter.draw(i9)
    assert len(painter.crashed.get_offsets()) == 2 and len(painter.trails.get_segments()) == 0
    painter.draw(rec.times.tolist().index(15.0))
    assert len(painter.walls.get_segments()) == 1


def test_colour_bar_limits_are_fixed_over_the_run(faulty):
    a = A.Animation(faulty.frames, color="gradient")
    finite = np.concatenate([f.values["gradient"][np.isfinite(f.values["gradient"])] for f in faulty.frames.frames])
    assert (a.colouring.lo, a.colouring.hi) == (finite.min(), finite.max())


def test_mp4_with_an_ffmpeg(tmp_path):
    if A.find_ffmpeg() is None:
        pytest.skip("no ffmpeg on the PATH and imageio-ffmpeg not installed")
    path = A.Animation(four_devices()).save(tmp_path / "run.mp4")
    assert path.read_bytes()[4:8] == b"ftyp"


def test_mp4_without_ffmpeg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "find_ffmpeg", lambda: None)
    with pytest.raises(A.FFmpegMissing, match="imageio-ffmpeg"):
        A.Animation(four_devices()).save(tmp_path / "run.mp4")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="gif or mp4"):
        A.Animation(four_devices()).save(tmp_path / "run.avi")


def test_a_trace_animates_with_its_network_and_shows_inline():
    net = Network.grid(3, 3)
    net.sensors["source"] = net.ids == 0
    trace = run(lambda: gradient_program(), net, rounds=3)
    anim = animate(trace, net)
    assert anim.color == "gradient" and len(anim.recording.frames) == 3
    assert "<img" in anim._repr_html_() and "Animation(run: 3 frames" in repr(anim)
    with pytest.raises(TypeError, match="Network"):
        animate(trace)
    with pytest.raises(KeyError, match="not a recorded value"):
        animate(trace, net, color="nope")
    with pytest.raises(TypeError, match="cannot animate"):
        animate(42)


def test_a_result_without_frames_animates_its_final_state(faulty):
    plain = run_scenario(resolve_scenario(dict(copy.deepcopy(FAULTY), exports={"values": ["gradient"]})))
    anim = animate(plain)
    assert len(anim.recording.frames) == 1 and "final state" in anim.recording.note


def test_the_street_network_is_drawn_beneath_everything():
    from matplotlib.collections import LineCollection

    streets = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 10.0]])]
    rec = four_devices()
    fig, painter = A.figure_for(rec, None)
    assert not [c for c in painter.ax.collections if isinstance(c, LineCollection) and c.get_zorder() == 0]
    rec.streets = streets
    fig, painter = A.figure_for(rec, None)
    drawn = [c for c in painter.ax.collections if isinstance(c, LineCollection) and c.get_zorder() == 0]
    assert len(drawn) == 1 and [s.tolist() for s in drawn[0].get_segments()] == [s.tolist() for s in streets]
