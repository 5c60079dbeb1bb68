"""Figures: every column gets a panel or is named as left out; per-device-per-area columns become one panel per
area; `sum` has its own axes; fault labels stay inside the figure; placeholder ids never appear; pale colours are
outlined in snapshots."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from fieldlearn import mux, uid
from fieldlearn.lib import NO_ID
from fieldlearn.sim import load_scenario, resolve_scenario
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.export import Recorder
from fieldlearn.sim.figures import MAX_PANELS, mask_placeholders, plan_panels, snapshot_figure, timeseries_figure

from .sim_helpers import BASE, gradient_program

REPO = Path(__file__).resolve().parents[2]


def run(data: dict, program=None) -> tuple[Engine, Recorder]:
    e = Engine(resolve_scenario(data), program)
    rec = Recorder(e)
    e.run()
    rec.finish(e)
    return e, rec


def test_c2fl_accuracy_columns_become_one_panel_per_area_with_every_mover():
    movers = [8, 9, 10, 11, 20, 21, 22, 23, 32, 33, 34, 35, 44, 45, 46, 47]
    cols = ["time", "dwell.mean", "dwell.min", "dwell.max", "alpha.mean", "alpha.min", "alpha.max", "eval_round",
            "cacc", "static_accuracy", "memory"] + [f"accuracy.d{d}.area{a}" for d in movers for a in range(4)]
    panels = plan_panels(["dwell", "alpha"], cols)
    assert [p.title for p in panels] == ["dwell", "alpha", "eval_round", "cacc", "static_accuracy", "memory",
                                         "accuracy on area0", "accuracy on area1", "accuracy on area2",
                                         "accuracy on area3"]
    area1 = panels[7]
    assert [who for who, _ in area1.lines] == [f"d{d}" for d in movers] and area1.overlaid
    assert {cols[i] for _, i in area1.lines} == {f"accuracy.d{d}.area1" for d in movers}
    covered = {i for p in panels for _, i in p.lines + p.right} | {i for p in panels if p.band for i in p.band}
    assert covered == set(range(1, len(cols)))


def test_sum_gets_its_own_axes_and_count_finite_the_right_axis():
    cols = ["time", "g.mean", "g.min", "g.max", "g.sum", "g.finite", "devices"]
    panels = plan_panels(["g"], cols)
    assert [(p.title, p.lines, p.band, p.right) for p in panels] == [
        ("g", [("mean", 1)], (2, 3), [("finite", 5)]), ("g (sum)", [("sum", 4)], None, []),
        ("devices", [("", 6)], None, [])]


def test_too_many_panels_are_named_not_silently_dropped():
    data = copy.deepcopy(BASE)
    data["exports"] = {"values": ["gradient"], "metrics": ["devices", "links", "degree", "device_rounds", "batches",
                                                           "graph_builds", "connected", "components", "crashed"]}
    data["sensors"]["a"] = 1.0
    data["sensors"]["b"] = 2.0
    data["sensors"]["c"] = 3.0
    data["sensors"]["d"] = 4.0
    data["exports"]["values"] += ["a", "b", "c", "d"]
    e, rec = run(data, gradient_program)
    fig = timeseries_figure(rec, e)
    assert len(plan_panels(list(rec.exports.values), rec.columns)) == 14 > MAX_PANELS
    assert len([ax for ax in fig.axes if ax.get_ylabel()]) == MAX_PANELS
    notes = [t.get_text() for t in fig.texts]
    assert any("2 more panels left out: components, crashed (all columns are in metrics.csv)" in t for t in notes)


def test_fault_labels_are_inside_the_figure_above_the_top_panel():
    e, rec = run(load_scenario(REPO / "scenarios" / "faults.yaml", ["duration.rounds=180"]).scenario.model_dump(mode="json"))
    fig = timeseries_figure(rec, e)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    top = fig.axes[0]
    labels = [t for t in top.texts if t.get_text() in ("sensor", "crash", "restart", "cut", "restore")]
    assert sorted(t.get_text() for t in labels) == ["crash", "cut", "restart", "restore", "sensor"]
    fig_box = fig.bbox
    axes_top = top.get_window_extent(renderer).y1
    for t in labels:
        box = t.get_window_extent(renderer)
        assert box.y0 >= axes_top - 1 and box.y1 <= fig_box.y1 and box.x0 >= 0 and box.x1 <= fig_box.x1, t.get_text()


def leaders() -> dict:
    me = uid()
    return {"leader": mux(me < 2, 0, NO_ID)}


def test_placeholder_ids_are_masked_in_time_series_and_hollow_in_snapshots():
    data = copy.deepcopy(BASE)
    data["exports"] = {"values": ["leader"], "stats": ["mean", "min", "max", "sum", "count"],
                       "figures": {"snapshots": [{"value": "leader", "times": ["end"]}]}}
    e, rec = run(data, leaders)
    cols = rec.columns
    table = np.array(rec.rows, dtype=float)
    assert table[0, cols.index("leader.max")] == float(NO_ID)  # in the CSV the placeholder stays as it is
    hit = mask_placeholders(table, cols, {"leader"}, e.capacity)
    assert hit == ["leader"]
    assert np.isnan(table[:, cols.index("leader.max")]).all() and np.isnan(table[:, cols.index("leader.mean")]).all()
    assert (table[:, cols.index("leader.min")] == 0).all() and (table[:, cols.index("leader.count")] == 9).all()
    fig = timeseries_figure(rec, e)
    panel = next(ax for ax in fig.axes if ax.get_ylabel() == "leader")
    assert [line.get_label() for line in panel.get_lines()] == ["min", "max"] and not panel.collections
    ys = [y for ax in fig.axes for line in ax.get_lines() for y in np.asarray(line.get_ydata(), float)]
    assert max(v for v in ys if math.isfinite(v)) <= e.capacity  # ids (and the count, 9): never NO_ID
    assert any("no leader yet" in t.get_text() for t in fig.texts)
    snap = snapshot_figure(rec.captures[0], rec.exports.figures.snapshots[0], e)
    filled, hollow = snap.axes[0].collections[1], snap.axes[0].collections[2]
    assert len(filled.get_offsets()) == 2 and len(hollow.get_offsets()) == 7
    assert len(snap.axes) == 1  # ids: no colour bar


def test_snapshot_markers_are_outlined_so_pale_colours_show_on_white():
    s = load_scenario(REPO / "scenarios" / "gossip.yaml", ["duration.rounds=12"])
    e, rec = run(s.scenario.model_dump(mode="json"))
    fig = snapshot_figure(rec.captures[0], rec.exports.figures.snapshots[0], e)
    devices = fig.axes[0].collections[1]
    edges = devices.get_edgecolors()
    assert len(edges) and (edges[:, :3].mean(axis=1) < 0.5).all() and (devices.get_linewidths() > 0).all()


def test_a_snapshot_draws_the_street_network_behind_the_devices():
    from matplotlib.collections import LineCollection

    from .sim_helpers import city

    loaded = city(exports={"figures": {"snapshots": [{"times": [20], "links": False}]}})
    e = Engine(loaded)
    rec = Recorder(e)
    e.run()
    fig = snapshot_figure(rec.captures[0], rec.exports.figures.snapshots[0], e)
    streets = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(streets) == 1 and len(streets[0].get_segments()) == 168 and streets[0].get_zorder() == 0
    plain = Engine(city(streets=None, exports={"figures": {"snapshots": [{"times": [20], "links": False}]}}))
    rec2 = Recorder(plain)
    plain.run()
    fig2 = snapshot_figure(rec2.captures[0], rec2.exports.figures.snapshots[0], plain)
    assert not [c for c in fig2.axes[0].collections if isinstance(c, LineCollection)]
