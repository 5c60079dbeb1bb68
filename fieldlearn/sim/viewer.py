"""One self-contained HTML viewer of a run (plotly, plotly.js embedded: it opens offline in any browser).

Play/pause and a time slider over the recorded frames, a menu choosing the value that colours the devices, hover
for a device's id and values, buttons turning links and regions on and off, the street network behind the devices
(when the scenario names one), and, when metrics are given (learning
scenarios), a plot of CAcc and of the hovered mobile device's per-area accuracy whose cursor follows the slider.
Long or large runs are thinned (every k-th frame, then every k-th device) to stay under `max_bytes`, and the page
says so.

    from fieldlearn.sim.viewer import write_viewer
    write_viewer("viewer.html", result.frames, metrics=(result.columns, result.rows))
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .animation import drawing_axes, drawn_limits
from .colouring import NONE, Colouring
from .frames import Recording

MAX_BYTES = 50_000_000  # the whole page, plotly.js (about 4.7 MB) included
PLOTLY_JS_BYTES = 4_900_000
GL_DEVICES = 3000  # above this many devices, WebGL traces (SVG is too slow to animate)
DIV_ID = "fieldlearn-viewer"
LINK_WIDTH = 0.7
_PER_DEVICE = re.compile(r"^accuracy\.d(\d+)\.(.+)$")


# ------------------------------------------------------------------------------------------------ metrics
@dataclass
class MetricSeries:
    """What the metrics plot shows: overall accuracy lines, and per mobile device its accuracy on every area."""

    times: np.ndarray
    overall: dict[str, np.ndarray]
    per_device: dict[int, dict[str, np.ndarray]]

    @classmethod
    def from_rows(cls, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> "MetricSeries | None":
        """Accuracy columns of a run's metrics table (`cacc`, `*accuracy*`, `accuracy.d<id>.<area>`); None if none."""
        if not rows or "time" not in columns:
            return None
        data = np.array([[math.nan if v is None else float(v) for v in r] for r in rows], dtype=np.float64)
        data = data.reshape(len(rows), len(columns))
        col = {c: data[:, i] for i, c in enumerate(columns)}
        overall = {c: v for c, v in col.items() if "." not in c and (c == "cacc" or "accuracy" in c)}
        per_device: dict[int, dict[str, np.ndarray]] = {}
        for c, v in col.items():
            m = _PER_DEVICE.match(c)
            if m:
                per_device.setdefault(int(m.group(1)), {})[m.group(2)] = v
        if not overall and not per_device:
            return None
        return cls(col["time"], overall, per_device)


# ---------------------------------------------------------------------------------------------- encoding
def typed(a: np.ndarray) -> dict[str, str]:
    """A numpy array as plotly.js's binary array spec (base64), 4-8x smaller than JSON numbers."""
    a = np.ascontiguousarray(a)
    kinds = {np.dtype(np.float32): "f4", np.dtype(np.float64): "f8", np.dtype(np.uint8): "u1",
             np.dtype(np.int32): "i4", np.dtype(np.uint16): "u2"}
    spec = {"dtype": kinds[a.dtype], "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = ", ".join(str(s) for s in a.shape)
    return spec


def _colourscale(c: Colouring) -> list[list[Any]]:
    table = c.colours()
    return [[k / NONE, table[k]] for k in range(NONE + 1)]


def _colourbar(c: Colouring, rows: "_Rows") -> dict[str, Any]:
    ticks = c.ticks()
    lo, hi = rows.map
    return {"title": {"text": c.name, "side": "right"}, "tickvals": [c.code_of(v) for v, _ in ticks],
            "ticktext": [lab for _, lab in ticks], "len": hi - lo, "y": (lo + hi) / 2, "yanchor": "middle",
            "thickness": 14, "x": 0.92}


@dataclass(frozen=True)
class _Rows:
    """The page's vertical layout: pixel heights turned into paper fractions (map, controls, metrics)."""

    height: int
    map: tuple[float, float]
    controls: float
    metrics: tuple[float, float] | None

    @classmethod
    def make(cls, aspect: float, metrics: bool) -> "_Rows":
        map_px = int(min(max(900 * 0.9 * aspect, 220), 560))
        ticks_px, controls_px, metrics_px = 30, 125, (230 if metrics else 0)
        plot = map_px + ticks_px + controls_px + metrics_px
        return cls(plot + 110 + (60 if metrics else 20), ((metrics_px + controls_px + ticks_px) / plot, 1.0),
                   (metrics_px + controls_px) / plot, (0.0, metrics_px / plot) if metrics else None)


# ------------------------------------------------------------------------------------------------- layout
@dataclass
class Plan:
    """Which frames and devices go into the page, and why (the note)."""

    frames: list[int]
    devices: np.ndarray | None
    links: bool
    trails: bool
    note: str


def _moving(rec: Recording) -> bool:
    """Whether any device position or the alive set changes between frames (then frames carry positions)."""
    f0 = rec.frames[0]
    return any(not (np.array_equal(f.positions, f0.positions, equal_nan=True) and np.array_equal(f.alive, f0.alive))
               for f in rec.frames[1:])


def link_sets(rec: Recording) -> list[int]:
    """For every frame, the index of its set of drawn links: a frame shares its predecessor's set when the links
    and the positions are the same (the page holds each set once and shows the frame's one)."""
    out = [0]
    for i in range(1, len(rec.frames)):
        a, b = rec.frames[i - 1], rec.frames[i]
        same = (a.links is b.links or np.array_equal(a.links, b.links)) and not rec.moved(i).any()
        out.append(out[-1] if same else out[-1] + 1)
    return out


def plan(rec: Recording, max_bytes: int = MAX_BYTES, min_frames: int = 20, limit: int | None = None) -> Plan:
    """Thin a recording to fit `max_bytes` (estimated): drop links that change too often, then the move trails,
    then keep every k-th frame (at least `min_frames`), then every k-th device; the note says what was left out."""
    n, k, count = rec.capacity, len(rec.names), len(rec.frames)
    per_frame = n * (k + 4 * k + (8 * (k + 2) if _moving(rec) else 0))  # colour codes, hover values, positions
    sets = link_sets(rec)
    firsts = [sets.index(j) for j in range(sets[-1] + 1)]
    link_bytes = sum(len(rec.frames[i].links) for i in firsts) * 24  # 3 points x 2 coordinates x float32
    trail_bytes = sum(int(rec.moved(i).sum()) for i in range(count)) * 24
    budget = (max_bytes - PLOTLY_JS_BYTES) / 1.37  # base64 and JSON overhead
    fixed = n * 8 * (k + 2)  # the first frame, in the figure itself
    notes: list[str] = []
    links = trails = True
    if fixed + count * per_frame + link_bytes + trail_bytes > budget and len(firsts) > 1:
        links, link_bytes = False, 0
        notes.append("links are not shown (they change too often to fit)")
    if fixed + count * per_frame + link_bytes + trail_bytes > budget and trail_bytes:
        trails, trail_bytes = False, 0
        notes.append("moves are not traced")
    if len(firsts) == 1:
        fixed, link_bytes = fixed + link_bytes, 0
    varying = count * per_frame + link_bytes + trail_bytes
    stride = max(1, math.ceil(varying / max(budget - fixed, 1.0)))
    stride = min(stride, max(1, count // min(count, min_frames)))
    picked = list(range(0, count, stride))
    if picked[-1] != count - 1:
        picked.append(count - 1)
    devices = None
    need = fixed + varying * len(picked) / count
    if need > budget:
        every = math.ceil(need / budget)
        devices = np.arange(0, n, every)
        notes.append(f"every {_nth(every)} device is shown ({len(devices):,} of {n:,})")
    if stride > 1:
        notes.insert(0, f"every {_nth(stride)} recorded frame is shown ({len(picked)} of {count})")
    note = f"To stay under {(limit or max_bytes) / 1e6:.0f} MB: " + "; ".join(notes) + "." if notes else ""
    return Plan(picked, devices, links, trails, note)


def _nth(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


# -------------------------------------------------------------------------------------------------- figure
def _lines(xy: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays of line segments separated by NaN (one plotly trace for all of them)."""
    if len(pairs) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    a, b = xy[pairs[:, 0]], xy[pairs[:, 1]]
    gap = np.full(len(pairs), np.nan)
    x = np.column_stack([a[:, 0], b[:, 0], gap]).ravel().astype(np.float32)
    y = np.column_stack([a[:, 1], b[:, 1], gap]).ravel().astype(np.float32)
    return x, y


def _polylines(polys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not polys:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    parts = [np.vstack([p, [[np.nan, np.nan]]]) for p in polys]
    xy = np.vstack(parts).astype(np.float32)
    return xy[:, 0], xy[:, 1]


class _Builder:
    """Builds the plotly figure (as plain dicts of binary arrays) for one recording."""

    def __init__(self, rec: Recording, metrics: MetricSeries | None, color: str | None, cmap: str, fps: float,
                 title: str | None, plan_: Plan):
        self.rec, self.metrics, self.fps, self.plan = rec, metrics, fps, plan_
        if plan_.devices is not None or plan_.frames != list(range(len(rec.frames))):
            rec = rec.select(plan_.frames, plan_.devices)
        self.sub = rec
        self.gx, self.gy = drawing_axes(self.rec)
        x0, y0, x1, y1 = drawn_limits(self.rec, self.gx, self.gy)
        self.rows = _Rows.make((y1 - y0) / max(x1 - x0, 1e-12), metrics is not None)
        self.names = rec.names
        self.colourings = [self.rec.colouring(v, cmap) for v in self.names]
        self.color = color if color is not None else rec.default_value()
        self.moving = _moving(rec)
        self.gl = rec.capacity > GL_DEVICES
        self.title = title or rec.name
        n_max = max(int(f.present.sum()) for f in rec.frames)
        self.size = float(max(3.0, min(11.0, 160.0 / math.sqrt(max(n_max, 1)))))
        self.sets = link_sets(rec) if plan_.links else []
        self.traces: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        self.mover_menu: dict[str, Any] | None = None

    def xy(self, f: Any) -> np.ndarray:
        xy = np.column_stack([self.gx(f.positions[:, 0]), self.gy(f.positions[:, 1])]).astype(np.float32)
        xy[~f.alive] = np.nan
        return xy

    def add(self, key: str, trace: dict[str, Any]) -> None:
        """Append a trace; its uid (`fl-<n>`, also its DOM class `tracefl-<n>`) is its index."""
        self.index[key] = len(self.traces)
        self.traces.append({**trace, "uid": f"fl-{len(self.traces)}"})

    # -- per-frame content: one dict per dynamic trace -------------------------------------------------------
    def dynamic(self, i: int) -> dict[str, dict[str, Any]]:
        rec = self.sub
        f = rec.frames[i]
        xy = self.xy(f)
        out: dict[str, dict[str, Any]] = {}
        values = np.column_stack([f.values.get(v, np.full(rec.capacity, np.nan)) for v in self.names]
                                 ).astype(np.float32) if self.names else np.zeros((rec.capacity, 0), np.float32)
        for v, c in zip(self.names, self.colourings):
            d: dict[str, Any] = {"marker": {"color": typed(c.codes(f.values.get(v, np.full(rec.capacity, np.nan))))}}
            if self.moving:
                d["x"], d["y"] = typed(xy[:, 0]), typed(xy[:, 1])
            out[f"colour:{v}"] = d
        h: dict[str, Any] = {"customdata": typed(values)}
        if self.moving:
            h["x"], h["y"] = typed(xy[:, 0]), typed(xy[:, 1])
        out["hover"] = h
        crashed = np.column_stack([self.gx(f.positions[f.crashed, 0]), self.gy(f.positions[f.crashed, 1])])
        out["crashed"] = {"x": typed(crashed[:, 0].astype(np.float32)), "y": typed(crashed[:, 1].astype(np.float32))}
        if len(set(self.sets)) > 1:
            for j in range(self.sets[-1] + 1):
                out[f"links:{j}"] = {"visible": self.sets[i] == j}
        wx, wy = _polylines([np.column_stack([self.gx(w[:, 0]), self.gy(w[:, 1])]) for w in f.walls])
        out["walls"] = {"x": typed(wx), "y": typed(wy)}
        moved = rec.moved(i) if self.plan.trails else np.zeros(rec.capacity, dtype=bool)
        if moved.any():
            before = rec.frames[i - 1].positions[moved]
            pts = np.vstack([np.column_stack([self.gx(before[:, 0]), self.gy(before[:, 1])]), xy[moved]])
            m = int(moved.sum())
            tx, ty = _lines(pts, np.column_stack([np.arange(m), np.arange(m) + m]))
        else:
            tx, ty = np.zeros(0, np.float32), np.zeros(0, np.float32)
        out["trails"] = {"x": typed(tx), "y": typed(ty)}
        out["faults"] = {"text": [self._fault_text(i)]}
        if self.metrics is not None:
            out["cursor"] = {"x": [f.time, f.time]}
        return out

    def _fault_text(self, i: int) -> str:
        rec = self.sub
        hold = [m for k in range(max(0, i - 2), i + 1) for m in rec.new_faults(k)]
        return ("faults: " + ", ".join(f"{m.label} at t={m.time:g}" for m in hold[-4:])) if hold else ""

    # -- the figure ------------------------------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        rec = self.sub
        scatter = "scattergl" if self.gl else "scatter"
        x0, y0, x1, y1 = drawn_limits(self.rec, self.gx, self.gy)
        first = self.dynamic(0)
        f0 = rec.frames[0]
        xy0 = self.xy(f0)
        if rec.streets:  # beneath everything, and only when the scenario names a street network
            sx, sy = _polylines([np.column_stack([self.gx(p[:, 0]), self.gy(p[:, 1])]) for p in rec.streets])
            self.add("streets", {"type": "scatter", "x": typed(sx), "y": typed(sy), "mode": "lines", "name": "streets",
                                 "line": {"color": "#dcdcdc", "width": 2}, "hoverinfo": "skip", "showlegend": False})
        rx, ry = _polylines([np.column_stack([self.gx(o[:, 0]), self.gy(o[:, 1])]) for o in rec.region_outlines])
        self.add("regions", {"type": "scatter", "x": typed(rx), "y": typed(ry), "mode": "lines", "name": "regions",
                             "line": {"color": "#595959", "width": 1.2}, "hoverinfo": "skip", "showlegend": False})
        corners = [(float(self.gx(np.array([o[:, 0].min()]))[0]), float(self.gy(np.array([o[:, 1].max()]))[0]))
                   for o in rec.region_outlines]
        self.add("region names", {"type": "scatter", "x": [c[0] for c in corners], "y": [c[1] for c in corners],
                                  "mode": "text", "text": rec.region_names, "textposition": "top right",
                                  "textfont": {"size": 11, "color": "#595959"}, "hoverinfo": "skip",
                                  "showlegend": False})
        for j in range(self.sets[-1] + 1 if self.sets else 0):
            f = rec.frames[self.sets.index(j)]
            lx, ly = _lines(np.column_stack([self.gx(f.positions[:, 0]), self.gy(f.positions[:, 1])]), f.links)
            self.add(f"links:{j}", {"type": scatter, "mode": "lines", "x": typed(lx), "y": typed(ly),
                                    "line": {"color": "#c8c8c8", "width": LINK_WIDTH}, "hoverinfo": "skip",
                                    "showlegend": False, "connectgaps": False, "name": "links", "visible": j == 0})
        self.add("walls", {"type": "scatter", "mode": "lines", "line": {"color": "#d62728", "width": 3},
                           "hoverinfo": "skip", "showlegend": False, **first["walls"]})
        self.add("trails", {"type": "scatter", "mode": "lines", "line": {"color": "#ff7f0e", "width": 1.5},
                            "hoverinfo": "skip", "showlegend": False, **first["trails"]})
        for v, c in zip(self.names, self.colourings):
            marker = {"color": first[f"colour:{v}"]["marker"]["color"], "colorscale": _colourscale(c), "cmin": 0,
                      "cmax": NONE, "size": self.size, "line": {"color": "#333333", "width": 0.5},
                      "showscale": not c.categorical}
            if not c.categorical:
                marker["colorbar"] = _colourbar(c, self.rows)
            self.add(f"colour:{v}", {"type": scatter, "mode": "markers", "x": typed(xy0[:, 0]), "y": typed(xy0[:, 1]),
                                     "marker": marker, "hoverinfo": "skip", "showlegend": False, "name": v,
                                     "visible": v == self.color})
        self.add("crashed", {"type": "scatter", "mode": "markers", "name": "crashed", "showlegend": False,
                             "marker": {"symbol": "x-thin", "size": self.size,
                                        "line": {"color": "#7f7f7f", "width": 1.5}},
                             "hoverinfo": "skip", **first["crashed"]})
        ids = np.arange(rec.capacity)
        lines = "".join(f"<br>{v}: %{{customdata[{j}]:.4~g}}" for j, v in enumerate(self.names))
        self.add("hover", {"type": scatter, "mode": "markers", "name": "devices", "x": typed(xy0[:, 0]),
                           "y": typed(xy0[:, 1]), "text": [str(i) for i in ids],
                           "customdata": first["hover"]["customdata"],
                           "marker": {"size": self.size + 2, "color": "rgba(0,0,0,0)" if self.names else "#1f77b4"},
                           "showlegend": False,
                           "hovertemplate": "device %{text}" + lines + "<extra></extra>"})
        self.add("faults", {"type": "scatter", "mode": "text", "x": [x0], "y": [y1], "text": first["faults"]["text"],
                            "textposition": "bottom right", "textfont": {"color": "#d62728", "size": 12},
                            "hoverinfo": "skip", "showlegend": False})
        layout = self._layout(x0, y0, x1, y1)
        if self.metrics is not None:
            self._metric_traces()
            if self.mover_menu is not None:
                layout["updatemenus"].append(self.mover_menu)
        frames = []
        for i, f in enumerate(rec.frames):
            dyn = first if i == 0 else self.dynamic(i)
            keys = list(dyn)
            frames.append({"name": f"{f.time:g}", "data": [dyn[k] for k in keys],
                           "traces": [self.index[k] for k in keys]})
        layout["sliders"] = [self._slider(rec)]
        return {"data": self.traces, "layout": layout, "frames": frames}

    def _layout(self, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
        rec = self.sub
        key = "grey: no value · ×: crashed · orange: moved since the previous frame · red: wall cutting links"
        note = "<br>".join(html.escape(t) for t in (key, self.plan.note, rec.note) if t)
        rows = self.rows
        xaxis: dict[str, Any] = {"range": [x0, x1], "domain": [0, 0.9], "showgrid": False, "zeroline": False}
        yaxis: dict[str, Any] = {"range": [y0, y1], "domain": list(rows.map), "scaleanchor": "x", "scaleratio": 1,
                                 "showgrid": False, "zeroline": False}
        for axis, gap in ((xaxis, self.gx), (yaxis, self.gy)):
            if gap.shrinks:
                ticks = gap.ticks()
                axis.update(tickvals=[t for t, _ in ticks], ticktext=[lab for _, lab in ticks])
        colour_buttons = []
        for v in self.names:
            visible = [name == v for name in self.names]
            colour_buttons.append({"label": v, "method": "restyle",
                                   "args": [{"visible": visible}, [self.index[f"colour:{n}"] for n in self.names]]})
        redraw = True  # text traces (the fault banner) update only on a redraw
        links = [i for k, i in self.index.items() if k.startswith("links:")]  # frames switch them on and off
        menus = [
            {"type": "buttons", "direction": "left", "x": 0.0, "y": rows.controls,
             "xanchor": "left", "yanchor": "top", "showactive": False, "pad": {"t": 4, "r": 6},
             "buttons": [
                 {"label": "play", "method": "animate",
                  "args": [None, {"frame": {"duration": 1000 / self.fps, "redraw": redraw}, "fromcurrent": True,
                                  "transition": {"duration": 0}}]},
                 {"label": "pause", "method": "animate",
                  "args": [[None], {"frame": {"duration": 0, "redraw": redraw}, "mode": "immediate",
                                    "transition": {"duration": 0}}]},
             ]},
        ]
        # one menu per toggle, its button active (highlighted) while the layer shows: a click on an active button
        # runs args2 (hide), on an inactive one args (show)
        regions = [self.index["regions"], self.index["region names"]]
        for x, label, shown, hidden, traces in ((0.82, "links", {"line.width": LINK_WIDTH}, {"line.width": 0}, links),
                                                (0.9, "regions", {"visible": True}, {"visible": False}, regions)):
            menus.append({"type": "buttons", "x": x, "y": 1.0, "xanchor": "right", "yanchor": "bottom",
                          "showactive": True, "active": 0, "pad": {"b": 4}, "name": label,
                          "buttons": [{"label": label, "method": "restyle", "args": [shown, traces],
                                       "args2": [hidden, traces]}]})
        if colour_buttons:
            menus.append({"type": "dropdown", "x": 0.0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
                          "active": self.names.index(self.color) if self.color in self.names else 0,
                          "buttons": colour_buttons, "pad": {"b": 4}, "name": "colour"})
        small = f"<br><span style='font-size:11px'>{note}</span>" if note else ""
        title = f"<b>{html.escape(self.title)}</b>{small}"
        layout: dict[str, Any] = {
            "title": {"text": title, "x": 0.5, "xanchor": "center", "yref": "container", "y": 1.0, "yanchor": "top",
                      "pad": {"t": 12}},
            "xaxis": xaxis, "yaxis": yaxis, "updatemenus": menus, "hovermode": "closest",
            "margin": {"l": 50, "r": 30, "t": 110, "b": 60 if self.metrics is not None else 20},
            "plot_bgcolor": "white", "paper_bgcolor": "white", "height": rows.height,
            "annotations": [{"text": "colour", "x": 0.0, "y": 1.0, "xref": "paper", "yref": "paper",
                             "xanchor": "right", "yanchor": "bottom", "showarrow": False, "font": {"size": 11}}],
        }
        if self.metrics is not None:
            layout["xaxis2"] = {"domain": [0, 0.9], "anchor": "y2", "title": {"text": "time"}}
            layout["yaxis2"] = {"domain": list(rows.metrics or (0, 0)), "anchor": "x2", "range": [0, 1.02],
                                "title": {"text": "accuracy"}}
            layout["legend"] = {"x": 0.92, "y": 0.0, "yanchor": "bottom", "font": {"size": 10}}
        return layout

    def _metric_traces(self) -> None:
        m = self.metrics
        assert m is not None
        for name, v in m.overall.items():
            self.add(f"metric:{name}", {"type": "scatter", "mode": "lines", "x": typed(m.times), "y": typed(v),
                                        "name": name, "xaxis": "x2", "yaxis": "y2",
                                        "line": {"width": 2.5 if name == "cacc" else 1.5}})
        movers = sorted(m.per_device)
        for d in movers:
            for k, (area, v) in enumerate(m.per_device[d].items()):
                self.add(f"mover:{d}:{area}", {"type": "scatter", "mode": "lines", "x": typed(m.times), "y": typed(v),
                                               "name": f"device {d} on {area}", "xaxis": "x2", "yaxis": "y2",
                                               "visible": d == movers[0], "line": {"width": 1, "dash": "dot"},
                                               "legendgroup": "mover"})
        t0 = self.sub.frames[0].time
        self.add("cursor", {"type": "scatter", "mode": "lines", "x": [t0, t0], "y": [0, 1.02], "xaxis": "x2",
                            "yaxis": "y2", "line": {"color": "#d62728", "width": 1.5}, "showlegend": False,
                            "hoverinfo": "skip", "name": "now"})
        if movers:
            keys = [k for k in self.index if k.startswith("mover:")]
            buttons = []
            for d in movers:
                buttons.append({"label": f"device {d}", "method": "restyle",
                                "args": [{"visible": [k.startswith(f"mover:{d}:") for k in keys]},
                                         [self.index[k] for k in keys]]})
            # the menu sits by the metrics plot; hovering a mobile device picks its entry (see _HOVER_JS)
            top = (self.rows.metrics or (0, 0))[1]
            self.mover_menu = {"type": "dropdown", "x": 0.92, "y": top, "xanchor": "left", "yanchor": "top",
                                "buttons": buttons, "active": 0, "name": "mover"}

    def _slider(self, rec: Recording) -> dict[str, Any]:
        redraw = True
        steps = [{"label": f"{f.time:g}", "method": "animate",
                  "args": [[f"{f.time:g}"], {"mode": "immediate", "frame": {"duration": 0, "redraw": redraw},
                                              "transition": {"duration": 0}}]} for f in rec.frames]
        return {"active": 0, "steps": steps, "x": 0.12, "len": 0.78, "y": self.rows.controls,
                "yanchor": "top", "currentvalue": {"prefix": "t = ", "font": {"size": 13}},
                "pad": {"t": 30}, "transition": {"duration": 0}}


# The one piece of page script: hovering a mobile device selects its entry of the metrics' device menu.
_HOVER_JS = """
var gd = document.getElementById('{plot_id}');
gd.on('plotly_hover', function (ev) {
  var p = ev.points[0];
  if (!p || p.data.name !== 'devices') return;
  var menus = gd.layout.updatemenus || [];
  for (var m = 0; m < menus.length; m++) {
    if (menus[m].name !== 'mover') continue;
    var k = menus[m].buttons.findIndex(function (b) { return b.label === 'device ' + p.text; });
    if (k < 0) return;
    var b = menus[m].buttons[k];
    var upd = {}; upd['updatemenus[' + m + '].active'] = k;
    Plotly.restyle(gd, b.args[0], b.args[1]); Plotly.relayout(gd, upd);
  }
});
"""


def viewer_figure(rec: Recording, metrics: MetricSeries | None = None, color: str | None = None,
                  cmap: str = "viridis", fps: float = 8.0, title: str | None = None,
                  max_bytes: int = MAX_BYTES, limit: int | None = None) -> dict[str, Any]:
    """The plotly figure (a dict: data, layout, frames) of the viewer."""
    if not rec.frames:
        raise ValueError("the recording holds no frame")
    if color is not None and color not in rec.categorical:
        raise KeyError(f"color {color!r}: not a recorded value (recorded: {', '.join(rec.names) or 'none'})")
    return _Builder(rec, metrics, color, cmap, fps, title, plan(rec, max_bytes, limit=limit)).build()


def viewer_html(rec: Recording, metrics: MetricSeries | None = None, color: str | None = None,
                cmap: str = "viridis", fps: float = 8.0, title: str | None = None, max_bytes: int = MAX_BYTES) -> str:
    """The viewer as one self-contained HTML page (plotly.js embedded)."""
    import plotly.io as pio

    target = max_bytes
    for _ in range(4):  # the plan estimates sizes; check the page and thin more if it came out too large
        fig = viewer_figure(rec, metrics, color, cmap, fps, title, target, limit=max_bytes)
        page = pio.to_html(fig, include_plotlyjs=True, full_html=True, auto_play=False, validate=False,
                           div_id=DIV_ID, post_script=_HOVER_JS if metrics is not None else None,
                           config={"displaylogo": False, "responsive": True}, default_height="100%")
        if len(page) <= max_bytes:
            break
        target = int(PLOTLY_JS_BYTES + (target - PLOTLY_JS_BYTES) * 0.9 * max_bytes / len(page))
    return page


def write_viewer(path: str | Path, rec: Recording, metrics: MetricSeries | None = None, **kw: Any) -> Path:
    """Write viewer.html (atomically)."""
    from .files import write_atomic

    path = Path(path)
    write_atomic(path, viewer_html(rec, metrics, **kw))
    return path


class Viewer:
    """A viewer for notebooks: shows itself inline (in an iframe, so that its page script stays its own)."""

    def __init__(self, rec: Recording, metrics: MetricSeries | None = None, color: str | None = None,
                 height: int = 700, **kw: Any):
        self.recording, self.metrics, self.color, self.height, self.kw = rec, metrics, color, height, kw

    def __repr__(self) -> str:
        r = self.recording
        return f"Viewer({r.name}: {len(r.frames)} frames, values {', '.join(r.names)})"

    def html(self) -> str:
        return viewer_html(self.recording, self.metrics, self.color, **self.kw)

    def save(self, path: str | Path) -> Path:
        return write_viewer(path, self.recording, self.metrics, color=self.color, **self.kw)

    def _repr_html_(self) -> str:
        page = html.escape(self.html(), quote=True)
        return (f'<iframe srcdoc="{page}" style="width:100%;height:{self.height + 150}px;border:0" '
                f'sandbox="allow-scripts"></iframe>')
