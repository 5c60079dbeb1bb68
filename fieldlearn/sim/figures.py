"""PNG figures of a run (matplotlib, Agg, no pyplot state): metric time series and network snapshots."""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .recording import Capture, Recorder

if TYPE_CHECKING:
    from .engine import Engine


def _fault_lines(ax: Any, e: "Engine") -> None:
    seen: set[float] = set()
    for rec in e.faults_log:
        if rec.time in seen:
            continue
        seen.add(rec.time)
        ax.axvline(rec.time, color="0.5", linestyle=":", linewidth=1)
        ax.annotate(rec.kind, (rec.time, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color="0.35",
                    rotation=90, va="top", ha="right")


def timeseries_png(rec: Recorder, e: "Engine") -> bytes:
    """One panel per exported value (mean, with the min-max band) and per metric, faults marked by dotted lines."""
    from matplotlib.figure import Figure

    cols = rec.columns or []
    data = np.array([[math.nan if v is None else float(v) for v in row] for row in rec.rows], dtype=np.float64)
    data = data.reshape(len(rec.rows), len(cols))
    t = data[:, 0]
    panels: list[tuple[str, list[tuple[str, int]]]] = []
    for name in rec.exports.values:
        panels.append((name, [(c.split(".", 1)[1], i) for i, c in enumerate(cols) if c.startswith(name + ".")]))
    value_cols = {i for _, items in panels for _, i in items}
    for i, c in enumerate(cols[1:], start=1):
        if i not in value_cols:
            panels.append((c, [("", i)]))
    panels = panels[:8]
    height = 1.9 * len(panels) + 0.9
    fig = Figure(figsize=(7, height))
    fig.subplots_adjust(left=0.11, right=0.9, top=1 - 0.5 / height, bottom=0.5 / height, hspace=0.15)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, items) in zip(axes, panels):
        stats = dict(items)
        band = "min" in stats and "max" in stats and "mean" in stats
        if band:
            ax.fill_between(t, data[:, stats["min"]], data[:, stats["max"]], color="C0", alpha=0.2, linewidth=0,
                            label="min-max")
        handles = []
        twin = None
        for k, (stat, i) in enumerate(items):
            if band and stat in ("min", "max"):
                continue
            if stat in ("finite", "count"):
                twin = twin or ax.twinx()
                handles += twin.plot(t, data[:, i], color=f"C{k + 1}", linewidth=1.0, linestyle="--",
                                     label=f"{stat} (right)")
                twin.tick_params(labelsize=7)
            else:
                handles += ax.plot(t, data[:, i], color=f"C{k}", linewidth=1.4, label=stat or None)
        ax.set_ylabel(title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if any(stat for stat, _ in items):
            if band:
                handles = [h for h in ax.collections[:1]] + handles
            ax.legend(handles=handles, fontsize=7, loc="lower right")
        _fault_lines(ax, e)
    axes[-1].set_xlabel("time")
    fig.suptitle(f"{e.scenario.name or 'scenario'}: metrics over time", fontsize=10)
    return png_bytes(fig)


def snapshot_png(captures: list[Capture], snap: Any, e: "Engine") -> bytes:
    """Panels of the network at the captured times: links, devices coloured by the value, region outlines."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    n = len(captures)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    finite = np.concatenate([c.values[np.isfinite(c.values)] for c in captures if c.values is not None] or [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    allpos = np.concatenate([c.positions for c in captures] + [np.zeros((0, 2))])
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
        vals = c.values if c.values is not None else np.full(len(c.ids), np.nan)
        ok = alive & np.isfinite(vals)
        size = max(4.0, min(40.0, 4000.0 / max(len(c.ids), 1)))
        mappable = ax.scatter(c.positions[ok, 0], c.positions[ok, 1], c=vals[ok], cmap=snap.cmap, norm=norm, s=size,
                              zorder=2, linewidths=0)
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
    if mappable is not None:
        cax = fig.add_axes((1 - 1.0 / width, 0.15, 0.15 / width, 0.7))
        cbar = fig.colorbar(mappable, cax=cax)
        cbar.set_label(snap.value or "region", fontsize=8)
    fig.suptitle(f"{e.scenario.name or 'scenario'}: {snap.value or 'region'} "
                 "(hollow: no finite value, x: crashed)", fontsize=10)
    return png_bytes(fig)


def png_bytes(fig: Any) -> bytes:
    """Render a matplotlib Figure to PNG bytes deterministically (Agg, no timestamp or version metadata)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()
