"""An animation of a run with matplotlib: devices at their positions coloured by a value, links, region outlines,
the street network behind them (when the scenario names one), wall cuts, crashed devices, moves (a trail from the
previous frame) and faults, the time in the title.

GIF needs only Pillow; MP4 needs an ffmpeg (on the PATH, or the one the `imageio-ffmpeg` wheel ships). In a notebook
an `Animation` shows itself inline (matplotlib's HTML player).

    from fieldlearn.sim import animate
    animate(trace, network).save("run.gif")      # a calculus Trace on its Network
    animate(result, color="leader")              # a finished simulation (fieldlearn.sim.run_scenario)
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .colouring import PALETTE, STEPS, Colouring
from .frames import Recording, recording_from_trace
from .gaps import GapAxis

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FAULT_HOLD = 3  # a fault stays named in the title for this many frames
MAX_LINKS = 200_000  # links per frame drawn at most (beyond, links are left out and the title says so)


class FFmpegMissing(RuntimeError):
    """An MP4 was asked for but no ffmpeg is available."""


def find_ffmpeg() -> str | None:
    """The path of an ffmpeg: on the PATH, else the binary of the `imageio-ffmpeg` wheel; None when neither."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def drawing_axes(rec: Recording) -> tuple[GapAxis, GapAxis]:
    """The coordinate maps of a recording: long empty stretches between far-apart areas shrunk on each axis."""
    parts = ([f.positions[np.isfinite(f.positions[:, 0])] for f in rec.frames] + list(rec.region_outlines)
             + list(rec.streets))
    pts = np.concatenate([p.reshape(-1, 2) for p in parts] + [np.zeros((0, 2))])
    sizes = np.array([np.ptp(o, axis=0) for o in rec.region_outlines]).reshape(-1, 2)
    extents = [sizes[:, k] if len(sizes) else None for k in (0, 1)]
    return GapAxis.fit(pts[:, 0], extents[0]), GapAxis.fit(pts[:, 1], extents[1])


def drawn_limits(rec: Recording, gx: GapAxis, gy: GapAxis) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the drawing, padded by 4 % of its larger side."""
    x0, y0, x1, y1 = rec.bounds()
    (a, c), (b, d) = gx(np.array([x0, x1])), gy(np.array([y0, y1]))
    pad = 0.04 * max(c - a, d - b, 1e-9)
    return float(a - pad), float(b - pad), float(c + pad), float(d + pad)


def _drawn(gx: GapAxis, gy: GapAxis, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([gx(xy[:, 0]), gy(xy[:, 1])])


class FramePainter:
    """Draws the frames of a recording on one matplotlib Axes: the artists are made once and updated per frame."""

    def __init__(self, fig: "Figure", ax: "Axes", rec: Recording, colouring: Colouring | None,
                 cax: "Axes | None" = None):
        from matplotlib.collections import LineCollection

        self.fig, self.ax, self.rec, self.colouring = fig, ax, rec, colouring
        self.gx, self.gy = drawing_axes(rec)
        n_max = max(int(f.present.sum()) for f in rec.frames)
        self.size = float(max(4.0, min(36.0, 6000.0 / max(n_max, 1))))
        x0, y0, x1, y1 = drawn_limits(rec, self.gx, self.gy)
        if rec.streets:
            ax.add_collection(LineCollection([_drawn(self.gx, self.gy, p) for p in rec.streets], colors="0.86",
                                             linewidths=1.6, zorder=0, capstyle="round"))
        for name, outline in zip(rec.region_names, rec.region_outlines):
            xy = _drawn(self.gx, self.gy, outline)
            ax.plot(xy[:, 0], xy[:, 1], color="0.35", linewidth=1.0, zorder=1)
            ax.annotate(name, (xy[:, 0].min(), xy[:, 1].max()), fontsize=7, color="0.3", va="bottom", ha="left",
                        zorder=1)
        for g in self.gx.gaps:
            ax.axvline(g, color="0.6", linestyle=(0, (2, 3)), linewidth=0.8, zorder=0)
        for g in self.gy.gaps:
            ax.axhline(g, color="0.6", linestyle=(0, (2, 3)), linewidth=0.8, zorder=0)
        self.links = ax.add_collection(LineCollection([], colors="0.78", linewidths=0.5, zorder=2))
        self.walls = ax.add_collection(LineCollection([], colors="#d62728", linewidths=2.2, zorder=3))
        self.trails = ax.add_collection(LineCollection([], colors="#ff7f0e", linewidths=1.3, alpha=0.9, zorder=3))
        empty = np.zeros((0, 2))
        self.devices = ax.scatter(empty[:, 0], empty[:, 1], s=self.size, edgecolors="0.2", linewidths=0.4, zorder=4)
        self.hollow = ax.scatter(empty[:, 0], empty[:, 1], s=self.size, facecolors="none", edgecolors="0.45",
                                 linewidths=0.7, zorder=4)
        self.crashed = ax.scatter(empty[:, 0], empty[:, 1], s=self.size, marker="x", color="0.5", linewidths=0.8,
                                  zorder=4)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        for axis, gap in ((ax.xaxis, self.gx), (ax.yaxis, self.gy)):
            if gap.shrinks:
                ticks = gap.ticks()
                axis.set_ticks([t for t, _ in ticks], [lab for _, lab in ticks])
        self.title = ax.set_title("", fontsize=9, loc="left")
        self._key(cax)

    def _key(self, cax: "Axes | None") -> None:
        """The colour bar (numbers) or a legend of the values (regions, booleans) or a note (ids)."""
        c = self.colouring
        if c is None:
            return
        if not c.categorical:
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import ListedColormap, Normalize

            sm = ScalarMappable(Normalize(c.lo, c.hi), ListedColormap(c.colours()[:STEPS + 1]))
            bar = self.fig.colorbar(sm, cax=cax, ax=None if cax is not None else self.ax, fraction=0.04, pad=0.02)
            bar.set_label(c.name, fontsize=8)
            bar.ax.tick_params(labelsize=7)
            return
        seen = sorted({int(v) for f in self.rec.frames for v in f.values.get(c.name, np.zeros(0)) if np.isfinite(v)})
        if c.name == "region" and self.rec.region_names:
            labels = {i: n for i, n in enumerate(self.rec.region_names)}
        elif set(seen) <= {0, 1} and len(seen) <= 2:
            labels = {0: "false", 1: "true"}
        else:
            labels = {}
        if labels:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=PALETTE[k % len(PALETTE)],
                              markeredgecolor="0.2", label=lab) for k, lab in labels.items() if k in seen]
            self.ax.legend(handles=handles, title=c.name, fontsize=7, title_fontsize=7, loc="upper left",
                           bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            self.ax.annotate(f"colour: {c.name}\n(one colour per id)", (1.01, 1.0), xycoords="axes fraction",
                             fontsize=7, va="top", ha="left", color="0.3")

    def _title(self, i: int, links_left_out: bool) -> str:
        rec = self.rec
        f = rec.frames[i]
        head = f"{rec.name}: {self.colouring.name if self.colouring else 'devices'}   t = {f.time:g}"
        recent = [m for k in range(max(0, i - FAULT_HOLD + 1), i + 1) for m in rec.new_faults(k)]
        lines = [head]
        if recent:
            shown = ", ".join(f"{m.label} at t={m.time:g}" for m in recent[-4:])
            lines.append(("faults: " + shown) if len(recent) <= 4 else f"faults: ... {shown}")
        notes = []
        if links_left_out:
            notes.append(f"links not drawn ({len(f.links):,} > {MAX_LINKS:,})")
        if rec.note:
            notes.append(rec.note)
        if notes:
            lines.append("; ".join(notes))
        return "\n".join(lines)

    def draw(self, i: int) -> list[Any]:
        """Update every artist to frame i; returns them (matplotlib's animation protocol)."""
        rec = self.rec
        f = rec.frames[i]
        xy = _drawn(self.gx, self.gy, f.positions)
        too_many = len(f.links) > MAX_LINKS
        if len(f.links) and not too_many:
            segs = np.stack([xy[f.links[:, 0]], xy[f.links[:, 1]]], axis=1)
            segs = segs[np.isfinite(segs).all(axis=(1, 2))]
        else:
            segs = np.zeros((0, 2, 2))
        self.links.set_segments(segs)
        self.walls.set_segments([_drawn(self.gx, self.gy, w) for w in f.walls])
        moved = rec.moved(i)
        if moved.any():
            before = _drawn(self.gx, self.gy, rec.frames[i - 1].positions[moved])
            self.trails.set_segments(np.stack([before, xy[moved]], axis=1))
        else:
            self.trails.set_segments([])
        alive = f.alive
        if self.colouring is not None and self.colouring.name in f.values:
            v = f.values[self.colouring.name]
            has = alive & np.isfinite(v)
            if self.colouring.categorical:
                has &= v >= 0
            self.devices.set_offsets(xy[has])
            self.devices.set_facecolors(self.colouring.rgba(v[has]))
            self.hollow.set_offsets(xy[alive & ~has])
        else:
            self.devices.set_offsets(xy[alive])
            self.devices.set_facecolors("#1f77b4")
            self.hollow.set_offsets(np.zeros((0, 2)))
        self.crashed.set_offsets(xy[f.crashed])
        self.title.set_text(self._title(i, too_many))
        return [self.links, self.walls, self.trails, self.devices, self.hollow, self.crashed, self.title]


def figure_for(rec: Recording, colouring: Colouring | None, width: float = 7.5) -> tuple["Figure", FramePainter]:
    """A Figure sized to the recording's drawn extent, with a painter on it (frame 0 drawn)."""
    from matplotlib.figure import Figure

    x0, y0, x1, y1 = drawn_limits(rec, *drawing_axes(rec))
    w, h = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    aspect = min(max(h / w, 0.12), 1.3)
    map_w = width - 1.6
    height = map_w * aspect + 1.1
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.55 / width, right=1 - 1.35 / width, bottom=0.35 / height, top=1 - 0.7 / height)
    ax = fig.add_subplot(1, 1, 1)
    cax = None
    if colouring is not None and not colouring.categorical:
        cax = fig.add_axes((1 - 1.15 / width, 0.35 / height, 0.12 / width, 1 - 1.05 / height))
    painter = FramePainter(fig, ax, rec, colouring, cax)
    painter.draw(0)
    return fig, painter


class Animation:
    """A recording drawn as an animation, coloured by one value; `save` writes GIF or MP4, notebooks show it inline."""

    def __init__(self, recording: Recording, color: str | None = None, fps: float = 8.0, cmap: str = "viridis"):
        if not recording.frames:
            raise ValueError("the recording holds no frame")
        if color is not None and color not in recording.categorical:
            known = ", ".join(recording.names) or "none"
            raise KeyError(f"color {color!r}: not a recorded value (recorded: {known})")
        self.recording = recording
        self.color = color if color is not None else recording.default_value()
        self.colouring = recording.colouring(self.color, cmap) if self.color is not None else None
        self.fps = fps

    def __repr__(self) -> str:
        r = self.recording
        return (f"Animation({r.name}: {len(r.frames)} frames, t = {r.frames[0].time:g} .. {r.frames[-1].time:g}, "
                f"colour {self.color})")

    def _animation(self) -> tuple[Any, "Figure"]:
        from matplotlib.animation import FuncAnimation
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig, painter = figure_for(self.recording, self.colouring)
        FigureCanvasAgg(fig)
        anim = FuncAnimation(fig, painter.draw, frames=len(self.recording.frames), interval=1000.0 / self.fps,
                             blit=False, repeat=False)
        return anim, fig

    def save(self, path: str | Path, format: str | None = None, dpi: int = 90) -> Path:
        """Write the animation (atomically): `gif` (Pillow) or `mp4` (ffmpeg; FFmpegMissing when there is none).
        The format defaults to the file's suffix."""
        import os

        import matplotlib
        from matplotlib.animation import FFMpegWriter, PillowWriter

        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or "gif").lower()
        if fmt not in ("gif", "mp4"):
            raise ValueError(f"format {fmt!r}: expected gif or mp4")
        exe = find_ffmpeg() if fmt == "mp4" else None
        if fmt == "mp4" and exe is None:
            raise FFmpegMissing("an MP4 needs ffmpeg, and none was found (install the wheel with "
                                "`pip install imageio-ffmpeg`, or `apt install ffmpeg`); GIF needs nothing")
        anim, _ = self._animation()
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.{fmt}")
        try:
            if fmt == "gif":
                anim.save(str(tmp), writer=PillowWriter(fps=self.fps), dpi=dpi)
            else:
                # libx264 needs even sizes
                even = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white", "-pix_fmt", "yuv420p"]
                with matplotlib.rc_context({"animation.ffmpeg_path": exe}):
                    anim.save(str(tmp), writer=FFMpegWriter(fps=self.fps, codec="libx264", extra_args=even), dpi=dpi)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def frame_png(self, i: int = -1, dpi: int = 100) -> bytes:
        """One frame as PNG bytes (e.g. for a report)."""
        fig, painter = figure_for(self.recording, self.colouring)
        painter.draw(i % len(self.recording.frames))
        return _png(fig, dpi)

    def to_jshtml(self) -> str:
        """matplotlib's HTML player (frames as embedded images), for notebooks."""
        anim, _ = self._animation()
        return anim.to_jshtml(fps=self.fps, embed_frames=True, default_mode="once")

    def _repr_html_(self) -> str:
        return self.to_jshtml()


def _png(fig: "Figure", dpi: int) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@runtime_checkable
class Recorded(Protocol):
    """What can be animated besides a Recording and a Trace: anything that gives its recording (a simulation
    Result)."""

    def recording(self) -> Recording: ...


def as_recording(source: Any, network: Any = None, every: int = 1) -> Recording:
    """A Recording from a Recording, a simulation Result (its recorded frames, else its final state) or a calculus
    Trace with its Network."""
    if isinstance(source, Recording):
        return source
    from fieldlearn.calculus import Trace

    if isinstance(source, Trace):
        if network is None:
            raise TypeError("animating a Trace needs the Network it ran on: animate(trace, network)")
        return recording_from_trace(source, network, every=every)
    if isinstance(source, Recorded):
        return source.recording()
    raise TypeError(f"cannot animate a {type(source).__name__}: give a Trace and its Network, a Result or a Recording")


def animate(source: Any, network: Any = None, *, color: str | None = None, every: int = 1, fps: float = 8.0,
            cmap: str = "viridis") -> Animation:
    """An Animation of a calculus Trace on its Network (every `every` rounds), a simulation Result or a Recording,
    devices coloured by `color` (default: the first recorded value)."""
    return Animation(as_recording(source, network, every), color=color, fps=fps, cmap=cmap)
