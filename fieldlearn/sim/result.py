"""A finished simulation run: its engine (final state), its rows and final values, the files it wrote, and how a
notebook shows it (`show()`: the viewer or the animation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Engine
from .frames import Recording, final_state
from .loader import LoadedScenario

__all__ = ["Result"]


@dataclass
class Result:
    """A finished run: the engine (final state), the recorded rows, the final statistics and the files written."""

    scenario: LoadedScenario
    engine: Engine
    columns: list[str]
    rows: list[list[Any]]
    final: dict[str, Any]
    summary: dict[str, Any]
    out: Path | None = None
    files: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    frames: Any = None  # the frames recorded for exports.animation / exports.viewer (fieldlearn.sim.frames.Recording)

    def recording(self) -> Recording:
        """The frames the run recorded (exports.animation / exports.viewer), else a one-frame recording of its final
        state."""
        return self.frames if self.frames is not None else final_state(self.engine)

    def metric_series(self) -> Any:
        """The accuracy series of a learning run's metrics table, for the viewer (None for other runs)."""
        if "learning" not in self.scenario.resources:
            return None
        from .viewer import MetricSeries

        return MetricSeries.from_rows(self.columns, self.rows)

    def show(self, kind: str = "viewer", color: str | None = None) -> Any:
        """In a notebook: the run's interactive viewer (or `kind="animation"`), shown inline."""
        if kind == "viewer":
            from .viewer import Viewer

            return Viewer(self.recording(), self.metric_series(), color=color)
        if kind == "animation":
            from .animation import Animation

            return Animation(self.recording(), color=color)
        raise ValueError(f"kind {kind!r}: expected 'viewer' or 'animation'")

    def __repr__(self) -> str:
        s, e = self.scenario.scenario, self.engine
        final = [(k, v) for k, v in self.final.items() if k != "time"]
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in final[:4])
        more = f", ... ({len(final)} values)" if len(final) > 4 else ""
        frames = f"; {len(self.frames.frames)} frames recorded" if self.frames is not None else ""
        where = f"; {len(self.files)} files in {self.out}" if self.out is not None else ""
        return (f"<Result {s.name}: {e.capacity} devices, t = {s.end_time:g}, {self.wall_seconds:.2f} s; "
                f"{len(self.rows)} rows x {len(self.columns)} columns{frames}{where}; final: {shown}{more}>")

    def column(self, name: str) -> np.ndarray:
        """One CSV column over the rows, as floats."""
        i = self.columns.index(name)
        return np.array([np.nan if r[i] is None else float(r[i]) for r in self.rows])

    def output(self, name: str) -> np.ndarray:
        """Final per-device values of a program output (NaN where a device has none or is down)."""
        values, valid = self.engine.output(name)
        return np.where(valid, values.astype(np.float64), np.nan)
