"""Frames of a run: recorded at the asked times through the engine's probe, equal to the run's own exports there,
with crashes, restarts, wall cuts and moves; and a calculus Trace as frames."""
from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

import numpy as np
import pytest

from fieldlearn import Network, mux, run, share, uid
from fieldlearn.lib import NO_ID
from fieldlearn.sim import load_scenario, resolve_scenario, run_scenario
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.frames import FrameRecorder, final_state, recording_from_trace

from .sim_helpers import BASE, gradient_program

REPO = Path(__file__).resolve().parents[2]

FAULTY = {
    **copy.deepcopy(BASE),
    "name": "faulty",
    "duration": {"rounds": 30},
    "deployments": [{"kind": "grid", "rows": 4, "cols": 6, "spacing": 1.0}],
    "links": {"rule": "radius", "radius": 1.5},
    "faults": [
        {"at": 8, "kind": "crash", "devices": {"ids": [3, 4]}, "restart": 6},
        {"at": 12, "kind": "cut", "name": "wall", "wall": [[2.5, -1], [2.5, 5]]},
        {"at": 18, "kind": "restore", "name": "wall"},
        {"at": 21, "kind": "move", "devices": {"ids": [23]}, "by": [0.0, 2.0]},
    ],
    "exports": {"values": ["gradient"], "per_device": ["gradient"], "per_device_interval": 3,
                "viewer": {"every": 3}},
}


def devices_csv(path: Path) -> dict[tuple[float, int], dict[str, float]]:
    rows = csv.DictReader(io.StringIO(path.read_text()))
    return {(float(r["time"]), int(r["device"])): {k: float(v) for k, v in r.items()} for r in rows}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    out = tmp_path_factory.mktemp("faulty")
    return run_scenario(resolve_scenario(copy.deepcopy(FAULTY)), out), out


def test_frames_at_every_interval_plus_the_end_and_equal_to_the_per_device_export(faulty):
    result, out = faulty
    rec = result.frames
    assert rec.times.tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    export = devices_csv(out / "devices.csv")
    for f in rec.frames[:-1]:  # devices.csv has rows at the same times (not at the end)
        for i in np.flatnonzero(f.alive):
            row = export[(f.time, int(i))]
            assert (row["x"], row["y"]) == (float(f.positions[i, 0]), float(f.positions[i, 1]))
            assert np.array_equal(row["gradient"], f.values["gradient"][i], equal_nan=True)
        assert {d for (t, d) in export if t == f.time} == set(np.flatnonzero(f.alive).tolist())
    # the last frame is the final state
    last = rec.frames[-1]
    values, valid = result.engine.output("gradient")
    assert np.array_equal(last.values["gradient"][valid], values[valid])


def test_crash_restart_cut_restore_and_move_are_in_the_frames(faulty):
    rec = faulty[0].frames
    by_time = {f.time: (i, f) for i, f in enumerate(rec.frames)}
    for t in (9, 12):
        f = by_time[t][1]
        assert f.crashed.tolist() == [i in (3, 4) for i in range(24)] and np.isnan(f.values["gradient"][[3, 4]]).all()
    assert not by_time[15][1].crashed.any()
    assert [len(by_time[t][1].walls) for t in (9, 12, 15, 18, 21)] == [0, 1, 1, 0, 0]
    assert np.array_equal(by_time[12][1].walls[0], [[2.5, -1], [2.5, 5]])
    # no link crosses the wall while it stands
    f = by_time[15][1]
    x = f.positions[:, 0]
    crosses = (x[f.links[:, 0]] < 2.5) != (x[f.links[:, 1]] < 2.5)
    assert not crosses.any() and ((x[by_time[18][1].links[:, 0]] < 2.5) != (x[by_time[18][1].links[:, 1]] < 2.5)).any()
    i21 = by_time[21][0]
    assert rec.moved(i21).tolist() == [d == 23 for d in range(24)]
    assert rec.frames[i21].positions[23].tolist() == [5.0, 5.0]
    assert [(m.time, m.kind) for m in rec.new_faults(by_time[9][0])] == [(8.0, "crash")]
    assert [(m.time, m.kind) for m in rec.new_faults(by_time[15][0])] == [(14.0, "restart")]
    assert rec.new_faults(by_time[24][0]) == []


def test_links_are_each_undirected_link_once_as_in_the_engine_graph(faulty):
    result, _ = faulty
    g = result.engine.graph
    rows = g.rows()
    want = {(min(a, b), max(a, b)) for a, b in zip(rows.tolist(), g.neighbours.tolist())}
    links = result.frames.frames[-1].links
    assert (links[:, 0] < links[:, 1]).all()
    assert {tuple(p) for p in links.tolist()} == want and len(links) == len(want)


def test_unchanged_graphs_share_one_links_array():
    e = Engine(resolve_scenario(copy.deepcopy(BASE)), gradient_program)
    rec = FrameRecorder(e, 1.0)
    e.run()
    frames = rec.finish(e).frames
    assert [f.time for f in frames] == [0, 1, 2, 3, 4, 5] and all(f.links is frames[0].links for f in frames)


def test_recording_changes_no_result(tmp_path):
    plain = dict(copy.deepcopy(FAULTY), exports={"values": ["gradient"], "per_device": ["gradient"],
                                                  "per_device_interval": 3})
    a = run_scenario(resolve_scenario(plain), tmp_path / "a")
    b = run_scenario(resolve_scenario(copy.deepcopy(FAULTY)), tmp_path / "b")
    for name in ("metrics.csv", "devices.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.frames is None and b.frames is not None


def leaders_program() -> dict:
    """Device 0 leads; every other device has no leader yet (the placeholder id) except id 5 (led by 0)."""
    me = uid()
    return {"leader": mux(me == 0, 0, mux(me == 5, 0, NO_ID)), "hops": share(0, lambda h: h.max() + 1)}


def test_placeholder_ids_become_no_value_and_ids_are_categorical():
    e = Engine(resolve_scenario(copy.deepcopy(BASE)), leaders_program)
    rec = FrameRecorder(e, 2.0)
    e.run()
    r = rec.finish(e)
    assert r.categorical == {"leader": True, "hops": False, "source": True, "region": True}
    v = r.frames[-1].values["leader"]
    assert v[0] == 0 and v[5] == 0 and np.isnan(np.delete(v, [0, 5])).all()
    assert r.colouring("leader").categorical and not r.colouring("hops").categorical


def test_chosen_values_only_and_unknown_ones_skipped():
    e = Engine(resolve_scenario(copy.deepcopy(BASE)), gradient_program)
    rec = FrameRecorder(e, 1.0, values=["gradient", "nothing"])
    e.run()
    assert rec.finish(e).names == ["gradient"]
    with pytest.raises(ValueError, match="positive interval"):
        FrameRecorder(e, 0.0)


def test_final_state_is_one_frame_with_a_note():
    result = run_scenario(load_scenario(REPO / "scenarios" / "grid.yaml", ["duration.rounds=3"]))
    r = final_state(result.engine)
    assert len(r.frames) == 1 and r.frames[0].time == 3.0 and "final state" in r.note
    assert np.array_equal(r.frames[0].values["gradient"], result.output("gradient"))


def test_select_keeps_chosen_frames_devices_and_the_links_between_them(faulty):
    rec = faulty[0].frames
    sub = rec.select([0, 5, 10], np.arange(0, 24, 2))
    assert sub.times.tolist() == [0, 15, 30]
    f = sub.frames[1]
    assert np.isnan(f.positions[1::2]).all() and not f.alive[1::2].any()
    assert ((f.links % 2) == 0).all() and len(f.links) > 0
    assert np.isnan(f.values["gradient"][1::2]).all()


def test_a_trace_on_its_network_becomes_frames():
    net = Network.grid(4, 3)
    net.sensors["source"] = net.ids == 0
    trace = run(lambda: gradient_program(), net, rounds=7)
    rec = recording_from_trace(trace, net, every=3)
    assert rec.times.tolist() == [3.0, 6.0, 7.0]
    assert np.array_equal(rec.frames[1].values["gradient"], trace.history[5]["gradient"])
    assert np.array_equal(rec.frames[0].positions, net.positions.astype(np.float32))
    assert rec.names == ["gradient", "source"] and rec.categorical["source"]
    bare = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    bare.sensors["source"] = bare.ids == 0
    r2 = recording_from_trace(run(lambda: gradient_program(), bare, rounds=2), bare)
    assert np.isfinite(r2.frames[0].positions).all() and len(r2.frames[0].links) == 3
    with pytest.raises(ValueError, match="every"):
        recording_from_trace(trace, net, every=0)


def test_vehicles_absent_from_a_frame_have_no_position_and_the_streets_come_along():
    from .sim_helpers import city

    e = Engine(city())
    rec = FrameRecorder(e, 5.0)
    e.run()
    recording = rec.finish(e)
    assert len(recording.streets) == 168 and all(p.shape[1] == 2 for p in recording.streets)
    f = recording.frames[4]  # t = 20
    assert f.time == 20.0 and f.present.sum() == 1 + len(e.loaded.vehicles[0].trace.present(20.0))
    assert np.isnan(f.positions[~f.present]).all() and np.isfinite(f.positions[f.present]).all()
    assert recording.select(frames=[0, 1]).streets is recording.streets
    x0, y0, x1, y1 = recording.bounds()
    assert x0 <= -1.6 and y0 <= -1.6 and x1 >= 601.6 and y1 >= 601.6  # the streets' extent
