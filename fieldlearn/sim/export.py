"""Writing a run's results into its folder: scenario.yaml, metrics.csv, devices.csv, the figures and summary.json,
each file written atomically (into the staging folder of `result_folder`)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .figures import snapshot_png, timeseries_png
from .files import json_plain, write_atomic
from .recording import Recorder
from .watch import DrawingWarning


def fmt(x: Any) -> str:
    """One CSV cell: integers as integers, floats as their shortest exact repr."""
    if isinstance(x, (bool, np.bool_)):
        return "1" if x else "0"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if x is None:
        return ""
    return repr(float(x))


def csv_text(columns: list[str], rows: list[list[Any]]) -> str:
    """A CSV document (header, then one line per row) with deterministic number formatting."""
    lines = [",".join(columns)]
    lines += [",".join(fmt(x) for x in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_results(out: Path, recorder: Recorder, summary: dict[str, Any], scenario_yaml: str) -> list[str]:
    """Write every result file into `out` (which exists) and return their names, in a fixed order: the data files,
    the figures (one that cannot be drawn is a DrawingWarning, never a lost run), then summary.json listing them."""
    e = recorder.engine
    x = recorder.exports
    files: list[str] = []

    def put(name: str, data: bytes | str) -> None:
        write_atomic(out / name, data)
        files.append(name)

    def draw(name: str, make: Callable[[], bytes]) -> None:
        try:
            data = make()
        except Exception as exc:  # drawing must never lose a finished run
            warnings.warn_explicit(f"{name} not written: {type(exc).__name__}: {exc}", DrawingWarning,
                                   "fieldlearn.sim", 0, module="fieldlearn.sim.export")
            return
        put(name, data)

    put("scenario.yaml", scenario_yaml)
    if x.csv and recorder.columns is not None:
        put("metrics.csv", csv_text(recorder.columns, recorder.rows))
    if x.per_device and recorder.device_rows:
        block = np.concatenate(recorder.device_rows)
        rows = [[r[0], int(r[1]), *r[2:]] for r in block.tolist()]
        put("devices.csv", csv_text(recorder.device_columns, rows))
    if x.figures.timeseries and recorder.columns is not None and len(recorder.columns) > 1:
        draw("timeseries.png", lambda: timeseries_png(recorder, e))
    for k, snap in enumerate(x.figures.snapshots):
        if recorder.captures[k]:
            name = snap.file or (f"snapshot_{snap.value or 'region'}.png" if len(x.figures.snapshots) == 1 else f"snapshot_{k}.png")
            draw(name, lambda k=k, snap=snap: snapshot_png(recorder.captures[k], snap, e))
    if x.summary:
        summary = dict(summary, files=files + ["summary.json"])
        put("summary.json", json.dumps(json_plain(summary, strict=True), indent=2, sort_keys=False) + "\n")
    return files
