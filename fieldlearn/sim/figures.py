"""PNG figures of a run (matplotlib, Agg, no pyplot state): metric time series and network snapshots.

Time series: one panel per exported value (mean line, min-max band; `sum` on its own axes, since it dwarfs the
others; count/finite on a right axis) and per metric; a metric with one column per (device, area), such as C2FL's
`accuracy`, gets one panel per area with the devices overlaid. At most MAX_PANELS panels: the figure names what it
leaves out. Fault times are dotted lines, labelled once above the top panel. Placeholder leader ids (`NO_ID`,
"no leader yet") are never drawn as numbers.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fieldlearn.lib import NO_ID

from .colouring import PALETTE, is_categorical
from .recording import Capture, Recorder

if TYPE_CHECKING:
    from .engine import Engine

MAX_PANELS = 12
MAX_LEGEND = 8  # lines in a panel with a legend; more are drawn thin, with their mean in bold


@dataclass
class Panel:
    """One axes of the time-series figure: lines (label, column), an optional min-max band, right-axis lines."""

    title: str
    lines: list[tuple[str, int]] = field(default_factory=list)
    band: tuple[int, int] | None = None
    right: list[tuple[str, int]] = field(default_factory=list)
    overlaid: bool = False  # many lines of one kind (devices): thin, no legend, their mean in bold
    note: str = ""


def _is_id_value(name: str, e: "Engine") -> bool:
    store = e.outputs.get(name)
    return store is not None and is_categorical(name, store.dtype)


def mask_placeholders(data: np.ndarray, cols: list[str], id_values: set[str], capacity: int) -> list[str]:
    """Blank (NaN) the cells of id-valued exports (leaders) that a placeholder id reached: a valid id is below the
    capacity, so a larger min/max/mean/std came from NO_ID; returns the values that had such cells."""
    hit = []
    for i, c in enumerate(cols):
        if "." not in c:
            continue
        name, stat = c.rsplit(".", 1)
        if stat in ("count", "finite") or name not in id_values:
            continue
        limit = float(NO_ID) if stat == "sum" else float(capacity)
        bad = data[:, i] >= limit
        if bad.any():
            data[bad, i] = math.nan
            if name not in hit:
                hit.append(name)
    return hit


def plan_panels(values: list[str], cols: list[str], ids: set[str] = frozenset()) -> list[Panel]:
    """Group the metric columns into panels: the exported `values` (columns `value.stat`), then metrics in order.
    Values in `ids` (leader ids) get their min and max as lines: a band or a mean of ids means nothing."""
    panels: list[Panel] = []
    used: set[int] = set()
    for name in values:
        stats = {c[len(name) + 1:]: i for i, c in enumerate(cols)
                 if c.startswith(name + ".") and "." not in c[len(name) + 1:]}
        used |= set(stats.values())
        p = Panel(name)
        if {"min", "max"} <= stats.keys() and name not in ids:
            p.band = (stats["min"], stats["max"])
        for s in ("mean", "std"):
            if s in stats and name not in ids:
                p.lines.append((s, stats[s]))
        if p.band is None:
            p.lines += [(s, stats[s]) for s in ("min", "max") if s in stats]
        p.right = [(s, stats[s]) for s in ("count", "finite") if s in stats]
        if p.lines or p.band or p.right:
            panels.append(p)
        if "sum" in stats:
            panels.append(Panel(f"{name} (sum)", [("sum", stats["sum"])]))
    groups: dict[str, list[tuple[str, int]]] = {}
    for i, c in enumerate(cols[1:], start=1):
        if i in used:
            continue
        head, _, key = c.partition(".")
        groups.setdefault(head, []).append((key, i))
    for head, items in groups.items():
        if len(items) == 1 and items[0][0] == "":
            panels.append(Panel(head, [("", items[0][1])]))
            continue
        two_level = all(k.count(".") == 1 for k, _ in items)
        if two_level:  # e.g. accuracy.d8.area0: one panel per area, the devices overlaid
            by_area: dict[str, list[tuple[str, int]]] = {}
            for k, i in items:
                who, area = k.split(".")
                by_area.setdefault(area, []).append((who, i))
            for area, lines in by_area.items():
                panels.append(Panel(f"{head} on {area}", lines, overlaid=len(lines) > MAX_LEGEND,
                                    note=f"{len(lines)} lines" if len(lines) > MAX_LEGEND else ""))
        else:
            panels.append(Panel(head, items, overlaid=len(items) > MAX_LEGEND,
                                note=f"{len(items)} lines" if len(items) > MAX_LEGEND else ""))
    return panels


def _fault_lines(axes: list[Any], e: "Engine") -> None:
    """Dotted lines at fault times on every panel; labels once, above the top panel, staggered when close."""
    marks: dict[float, list[str]] = {}
    for rec in e.faults_log:
        marks.setdefault(rec.time, [])
        if rec.kind not in marks[rec.time]:
            marks[rec.time].append(rec.kind)
    if not marks:
        return
    lo, hi = axes[0].get_xlim()
    span = max(hi - lo, 1e-12)
    last = -math.inf
    level = 0
    for t in sorted(marks):
        for ax in axes:
            ax.axvline(t, color="0.5", linestyle=":", linewidth=1)
        level = level + 1 if (t - last) / span < 0.08 and level < 2 else 0
        last = t
        axes[0].annotate(" + ".join(marks[t]), (t, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(0, 3 + 9 * level), textcoords="offset points", fontsize=7, color="0.3",
                         ha="center", va="bottom", annotation_clip=False)


def timeseries_png(rec: Recorder, e: "Engine") -> bytes:
    """The metrics over time as PNG bytes (see `timeseries_figure`)."""
    return png_bytes(timeseries_figure(rec, e))


def timeseries_figure(rec: Recorder, e: "Engine") -> Any:
    """The metrics over time: panels as planned by `plan_panels`, faults marked, what was left out named."""
    from matplotlib.figure import Figure

    cols = rec.columns or []
    data = np.array([[math.nan if v is None else float(v) for v in row] for row in rec.rows], dtype=np.float64)
    data = data.reshape(len(rec.rows), len(cols))
    ids = {name for name in rec.exports.values if _is_id_value(name, e)}
    placeholders = mask_placeholders(data, cols, ids, e.capacity)
    t = data[:, 0]
    panels = plan_panels(list(rec.exports.values), cols, ids)
    left_out = panels[MAX_PANELS:]
    panels = panels[:MAX_PANELS]
    top = 0.9 if e.faults_log else 0.55  # inches above the first panel: the title, and fault labels
    bottom = 0.5 + (0.25 if left_out or placeholders else 0.0)
    height = 1.75 * len(panels) + top + bottom
    fig = Figure(figsize=(7.5, height))
    fig.subplots_adjust(left=0.11, right=0.88, top=1 - top / height, bottom=bottom / height, hspace=0.3)
    axes = list(fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
    for ax, p in zip(axes, panels):
        _draw_panel(ax, p, t, data)
    axes[-1].set_xlabel("time")
    _fault_lines(axes, e)
    fig.suptitle(f"{e.scenario.name or 'scenario'}: metrics over time", fontsize=10, y=1 - 0.12 / height, va="top")
    notes = []
    if left_out:
        names = ", ".join(p.title for p in left_out[:6]) + (", ..." if len(left_out) > 6 else "")
        notes.append(f"{len(left_out)} more panels left out: {names} (all columns are in metrics.csv)")
    if placeholders:
        notes.append(f"{', '.join(placeholders)}: rows where a device had no leader yet (placeholder id) left out")
    if notes:
        fig.text(0.02, 0.08 / height, "\n".join(notes), fontsize=7, color="0.3", va="bottom", ha="left")
    return fig


def _draw_panel(ax: Any, p: Panel, t: np.ndarray, data: np.ndarray) -> None:
    handles = []
    if p.band is not None:
        handles.append(ax.fill_between(t, data[:, p.band[0]], data[:, p.band[1]], color="C0", alpha=0.2, linewidth=0,
                                       label="min-max"))
    if p.overlaid:
        for k, (_, i) in enumerate(p.lines):
            ax.plot(t, data[:, i], color=PALETTE[k % 10], linewidth=0.7, alpha=0.6)
        with np.errstate(all="ignore"):
            stack = data[:, [i for _, i in p.lines]]
            ok = np.isfinite(stack).any(axis=1)
            mean = np.full(len(t), math.nan)
            mean[ok] = np.nanmean(stack[ok], axis=1)
        handles += ax.plot(t, mean, color="black", linewidth=1.6, label=f"mean of {len(p.lines)}")
    else:
        for k, (label, i) in enumerate(p.lines):
            handles += ax.plot(t, data[:, i], color=f"C{k}", linewidth=1.4, label=label or None)
    if p.right:
        twin = ax.twinx()
        for k, (label, i) in enumerate(p.right):
            handles += twin.plot(t, data[:, i], color=f"C{k + 4}", linewidth=1.0, linestyle="--",
                                 label=f"{label} (right)")
        twin.tick_params(labelsize=7)
    ax.set_ylabel(p.title, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    labelled = [h for h in handles if h.get_label() and not h.get_label().startswith("_")]
    if len(labelled) > 1 or (labelled and (p.band is not None or p.overlaid)):
        ax.legend(handles=labelled, fontsize=7, loc="best", ncol=2 if len(labelled) > 4 else 1)
    if p.note:
        ax.annotate(p.note, (0.005, 0.98), xycoords="axes fraction", fontsize=6, color="0.4", va="top")


def snapshot_png(captures: list[Capture], snap: Any, e: "Engine") -> bytes:
    """The network at the captured times as PNG bytes (see `snapshot_figure`)."""
    return png_bytes(snapshot_figure(captures, snap, e))


def snapshot_figure(captures: list[Capture], snap: Any, e: "Engine") -> Any:
    """Panels of the network at the captured times: links, devices coloured by the value (outlined, so that pale
    colours show on white; ids with a categorical palette), region outlines, and the street network behind them
    when the scenario names one."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    n = len(captures)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    ids_valued = snap.value is None or _is_id_value(snap.value, e)
    values = [_snapshot_values(c, ids_valued) for c in captures]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.zeros(0)])
    if ids_valued:
        cmap, norm = ListedColormap(list(PALETTE)), Normalize(-0.5, len(PALETTE) - 0.5)
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        cmap, norm = snap.cmap, Normalize(lo, hi if hi > lo else lo + 1.0)
    streets = e.loaded.streets.polylines() if e.loaded.streets is not None else []
    allpos = np.concatenate([c.positions for c in captures] + streets + [np.zeros((0, 2))])
    for poly in e.regions.polygons:
        allpos = np.concatenate([allpos, np.asarray(poly.exterior.coords)])
    aspect = 1.0
    if len(allpos):
        (x0, y0), (x1, y1) = allpos.min(axis=0), allpos.max(axis=0)
        pad = 0.04 * max(x1 - x0, y1 - y0, 1e-9)
        aspect = min(max((y1 - y0 + 2 * pad) / (x1 - x0 + 2 * pad), 0.3), 3.0)
    width, height = 3.6 * cols + 1.2, (3.6 * aspect + 0.6) * rows + 0.5
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.5 / width, right=1 - 1.3 / width, top=1 - 0.6 / height, bottom=0.35 / height,
                        wspace=0.15, hspace=0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    mappable = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.set_axis_off()
            continue
        c = captures[k]
        if streets:
            ax.add_collection(LineCollection(streets, colors="0.86", linewidths=1.4, zorder=0, capstyle="round"))
        for name, poly in zip(e.regions.names, e.regions.polygons):
            xs, ys = poly.exterior.xy
            ax.plot(xs, ys, color="0.3", linewidth=1.0)
            p = poly.representative_point()
            ax.annotate(name, (p.x, p.y), fontsize=7, color="0.3", ha="center")
        pos = {int(i): j for j, i in enumerate(c.ids)}
        if len(c.links):
            a = np.array([pos[int(i)] for i in c.links[:, 0]])
            b = np.array([pos[int(i)] for i in c.links[:, 1]])
            segs = np.stack([c.positions[a], c.positions[b]], axis=1)
            ax.add_collection(LineCollection(segs, colors="0.75", linewidths=0.5, zorder=1))
        alive = c.alive
        vals = values[k]
        ok = alive & np.isfinite(vals)
        size = max(4.0, min(40.0, 4000.0 / max(len(c.ids), 1)))
        shown = np.mod(vals[ok], len(PALETTE)) if ids_valued else vals[ok]
        mappable = ax.scatter(c.positions[ok, 0], c.positions[ok, 1], c=shown, cmap=cmap, norm=norm, s=size,
                              zorder=2, edgecolors="0.25", linewidths=0.4)
        undefined = alive & ~np.isfinite(vals)
        ax.scatter(c.positions[undefined, 0], c.positions[undefined, 1], facecolors="none", edgecolors="0.4", s=size,
                   linewidths=0.6, zorder=2)
        ax.scatter(c.positions[~alive, 0], c.positions[~alive, 1], marker="x", color="0.55", s=size, linewidths=0.6,
                   zorder=2)
        if len(allpos):
            ax.set_xlim(x0 - pad, x1 + pad)
            ax.set_ylim(y0 - pad, y1 + pad)
        ax.set_aspect("equal")
        ax.set_title(f"t = {c.time:g}", fontsize=9)
        ax.tick_params(labelsize=7)
    if mappable is not None and not ids_valued:
        cax = fig.add_axes((1 - 1.0 / width, 0.15, 0.15 / width, 0.7))
        cbar = fig.colorbar(mappable, cax=cax)
        cbar.set_label(snap.value, fontsize=8)
    what = snap.value or "region"
    key = "one colour per id, " if ids_valued else ""
    fig.suptitle(f"{e.scenario.name or 'scenario'}: {what} ({key}hollow: no value, x: crashed)", fontsize=10)
    return fig


def _snapshot_values(c: Capture, ids_valued: bool) -> np.ndarray:
    """A capture's values as floats, placeholder ids and negative ids (no region) as NaN."""
    v = c.values if c.values is not None else np.full(len(c.ids), np.nan)
    v = np.asarray(v, dtype=np.float64).copy()
    if ids_valued:
        v[(v >= NO_ID) | (v < 0)] = np.nan
    return v


def png_bytes(fig: Any) -> bytes:
    """Render a matplotlib Figure to PNG bytes deterministically (Agg, no timestamp or version metadata)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()
