"""Watching a scenario run: the frames that `exports.animation` and `exports.viewer` ask for, recorded during the
run, drawn after the data results are written (a failure to draw is a warning, never a lost run), and shown in
notebooks (`Result.show()`)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .frames import FrameRecorder, Recording

if TYPE_CHECKING:
    from .engine import Engine
    from .result import Result

TARGET_FRAMES = 100  # the default interval gives about this many frames


class DrawingWarning(UserWarning):
    """An animation or viewer could not be written; the data results are complete."""


def _warn(message: str) -> None:
    """A DrawingWarning that prints as one line (`fieldlearn.sim: DrawingWarning: ...`), without a source line."""
    warnings.warn_explicit(message, DrawingWarning, "fieldlearn.sim", 0, module="fieldlearn.sim.watch")


def default_every(scenario: Any) -> float:
    """About TARGET_FRAMES frames over the run, a whole number of periods apart."""
    period = scenario.period
    return period * max(1, math.ceil(scenario.end_time / period / TARGET_FRAMES))


def _spec_every(spec: Any, scenario: Any) -> float:
    every = getattr(spec, "every", None)
    return float(every) if every is not None else default_every(scenario)


class Watch:
    """Frame recorders for what a scenario's exports ask to watch (nothing at all when they ask for nothing)."""

    def __init__(self, engine: "Engine"):
        s = engine.scenario
        x = s.exports
        self.scenario = s
        self.animation = x.animation
        self.viewer = x.viewer if x.viewer not in (False, None) else None
        self.recorders: dict[float, FrameRecorder] = {}
        self.recordings: dict[float, Recording] = {}
        for spec in (self.animation, self.viewer):
            if spec is not None:
                every = _spec_every(spec, s)
                if every not in self.recorders:
                    self.recorders[every] = FrameRecorder(engine, every)

    def finish(self, engine: "Engine") -> None:
        """Add the final state to every recording (call after the run)."""
        self.recordings = {every: r.finish(engine) for every, r in self.recorders.items()}

    @property
    def recording(self) -> Recording | None:
        """The recording a notebook shows: the viewer's, else the animation's; None when nothing was recorded."""
        for spec in (self.viewer, self.animation):
            if spec is not None and self.recordings:
                return self.recordings[_spec_every(spec, self.scenario)]
        return None

    def colour_of(self, spec: Any, rec: Recording, where: str) -> str | None:
        """The value `spec` (exports.animation or exports.viewer) colours by: its `color` when recorded (else a
        warning and the default), by default the first exported value, else the first recorded one."""
        wanted = getattr(spec, "color", None)
        if wanted is not None and wanted not in rec.categorical:
            default = rec.default_value(self.scenario.exports.values)
            _warn(f"{where}.color: {wanted!r} is not a recorded value (recorded: {', '.join(rec.names)}); "
                  f"colouring by {default!r} instead")
            return default
        return wanted if wanted is not None else rec.default_value(self.scenario.exports.values)

    def write(self, out: Path, result: "Result") -> list[str]:
        """Write run.gif / run.mp4 and viewer.html into `out` after the data files; returns the names written and
        lists them in summary.json. Failures become DrawingWarnings."""
        written: list[str] = []
        if self.animation is not None:
            name = self._write_animation(out)
            if name:
                written.append(name)
        if self.viewer is not None and self._write_viewer(out, result):
            written.append("viewer.html")
        if written:
            _list_in_summary(out, written)
        return written

    def _write_animation(self, out: Path) -> str | None:
        from .animation import Animation, FFmpegMissing

        spec = self.animation
        rec = self.recordings[_spec_every(spec, self.scenario)]
        try:
            anim = Animation(rec, color=self.colour_of(spec, rec, "exports.animation"))
            if spec.format == "mp4":
                try:
                    anim.save(out / "run.mp4", "mp4")
                    return "run.mp4"
                except FFmpegMissing as exc:
                    _warn(f"run.mp4 not written: {exc}; wrote run.gif instead")
            anim.save(out / "run.gif", "gif")
            return "run.gif"
        except Exception as exc:  # drawing must never lose a finished run
            _warn(f"the animation was not written: {type(exc).__name__}: {exc}")
            return None

    def _write_viewer(self, out: Path, result: "Result") -> bool:
        from .viewer import write_viewer

        rec = self.recordings[_spec_every(self.viewer, self.scenario)]
        try:
            write_viewer(out / "viewer.html", rec, result.metric_series(),
                         color=self.colour_of(self.viewer, rec, "exports.viewer"))
            return True
        except ImportError as exc:
            _warn(f"viewer.html not written: it needs plotly (pip install plotly): {exc}")
        except Exception as exc:  # drawing must never lose a finished run
            _warn(f"viewer.html not written: {type(exc).__name__}: {exc}")
        return False


def _list_in_summary(out: Path, names: list[str]) -> None:
    """Add `names` to the file list of summary.json (written by the data export just before)."""
    from .files import write_atomic

    path = out / "summary.json"
    if not path.is_file():
        return
    summary = json.loads(path.read_text())
    summary["files"] = [f for f in summary.get("files", []) if f not in names] + names
    write_atomic(path, json.dumps(summary, indent=2, sort_keys=False) + "\n")
