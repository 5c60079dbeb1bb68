"""Recording a run: at every export tick one row of summarised values and metrics, per-device rows, and the network
captures that snapshot figures draw; `finish` adds the final state."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ScenarioError
from .metrics import resolve_metric

if TYPE_CHECKING:
    from .engine import Engine


def summarise(values: np.ndarray, valid: np.ndarray, stats: list[str]) -> dict[str, float]:
    """Statistics of the valid devices' values; mean/min/max/std/sum skip non-finite values (e.g. inf distances)."""
    v = np.asarray(values[valid], dtype=np.float64)
    finite = np.isfinite(v)
    f = v[finite]
    out: dict[str, float] = {}
    for s in stats:
        if s == "count":
            out[s] = int(len(v))
        elif s == "finite":
            out[s] = float(finite.mean()) if len(v) else math.nan
        elif len(f) == 0:
            out[s] = 0.0 if s == "sum" else math.nan
        else:
            out[s] = float({"mean": np.mean, "min": np.min, "max": np.max, "std": np.std, "sum": np.sum}[s](f))
    return out


@dataclass
class Capture:
    """The state of the network at one instant, for a snapshot panel."""

    time: float
    ids: np.ndarray
    positions: np.ndarray
    alive: np.ndarray
    values: np.ndarray | None
    links: np.ndarray


class Recorder:
    """Observes an engine at export ticks: one row of statistics and metrics per tick, per-device rows, captures."""

    def __init__(self, engine: "Engine"):
        s = engine.scenario
        x = s.exports
        self.engine = engine
        self.exports = x
        self.interval = x.interval or s.period
        self.metric_fns = [
            (name, resolve_metric(name, engine, f"exports.metrics[{i}]")) for i, name in enumerate(x.metrics)
        ]
        self.columns: list[str] | None = None
        self.rows: list[list[Any]] = []
        self.device_columns = ["time", "device", "x", "y"] + list(x.per_device)
        self.device_rows: list[np.ndarray] = []
        self.captures: list[list[Capture]] = [[] for _ in x.figures.snapshots]
        self.final: dict[str, Any] = {}
        engine.every(self.interval, self._row)
        if x.per_device:
            engine.every(x.per_device_interval or self.interval, self._devices)
        for k, snap in enumerate(x.figures.snapshots):
            times = sorted({float(t) for t in snap.times if t != "end"})
            engine.at(times, lambda e, k=k: self.captures[k].append(self._capture(e, k)))

    # -- values ----------------------------------------------------------------------------------------
    def _value(self, e: "Engine", name: str, where: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            values, valid = e.output(name)
        except KeyError:
            if e.batches == 0:
                return None  # no round has run yet: outputs are not known
            outs = ", ".join(e.outputs) or "none"
            sens = ", ".join(["region"] + list(e.sensors))
            raise ScenarioError(f"{name!r} is neither a program output ({outs}) nor a sensor ({sens})", where) from None
        if values.ndim != 1:
            raise ScenarioError(
                f"{name!r} holds {values.shape[1:]} numbers per device; only one number per device can be exported", where
            )
        return values, valid

    def _row(self, e: "Engine") -> None:
        row, cols = self._measure(e)
        if self.columns is None:
            self.columns = cols
        elif cols != self.columns:
            extra = [c for c in cols if c not in self.columns]
            self.columns += extra
            row = [dict(zip(cols, row)).get(c) for c in self.columns]
        self.rows.append(row)

    def _measure(self, e: "Engine") -> tuple[list[Any], list[str]]:
        x = self.exports
        cols: list[str] = ["time"]
        row: list[Any] = [e.time]
        for j, name in enumerate(x.values):
            got = self._value(e, name, f"exports.values[{j}]")
            st = summarise(*got, x.stats) if got is not None else {s: math.nan for s in x.stats}
            for s in x.stats:
                cols.append(f"{name}.{s}")
                row.append(st[s])
        for name, fn in self.metric_fns:
            value = fn(e)
            if isinstance(value, dict):
                for k in value:
                    cols.append(f"{name}.{k}")
                    row.append(_scalar(value[k], name))
            else:
                cols.append(name)
                row.append(_scalar(value, name))
        return row, cols

    def _devices(self, e: "Engine") -> None:
        ids = np.flatnonzero(e.present & e.alive)
        block = np.empty((len(ids), len(self.device_columns)))
        block[:, 0] = e.time
        block[:, 1] = ids
        block[:, 2:4] = e.positions[ids]
        for j, name in enumerate(self.exports.per_device):
            got = self._value(e, name, f"exports.per_device[{j}]")
            if got is None:
                block[:, 4 + j] = math.nan
            else:
                values, valid = got
                block[:, 4 + j] = np.where(valid[ids], values[ids].astype(np.float64), math.nan)
        self.device_rows.append(block)

    def _capture(self, e: "Engine", k: int) -> Capture:
        snap = self.exports.figures.snapshots[k]
        ids = np.flatnonzero(e.present)
        values = None
        name = snap.value
        if name is not None:
            got = self._value(e, name, f"exports.figures.snapshots[{k}].value")
            if got is not None:
                v, valid = got
                values = np.where(valid[ids], v[ids].astype(np.float64), np.nan)
        else:
            values = e.region[ids].astype(np.float64)
        g = e.graph
        rows = g.rows()
        half = rows < g.neighbours
        links = np.column_stack([rows[half], g.neighbours[half]]) if snap.links else np.zeros((0, 2), dtype=np.int64)
        return Capture(e.time, ids, e.positions[ids].copy(), e.alive[ids].copy(), values, links)

    def finish(self, e: "Engine") -> None:
        """Record the final state (at the end time): 'end' snapshots and final statistics."""
        for k, snap in enumerate(self.exports.figures.snapshots):
            if "end" in snap.times:
                self.captures[k].append(self._capture(e, k))
        row, cols = self._measure(e)
        self.final = dict(zip(cols, row))


def _scalar(v: Any, name: str) -> Any:
    if isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating)):
        return v
    arr = np.asarray(v)
    if arr.ndim == 0 and arr.dtype.kind in "biuf":
        return arr.item()
    raise ScenarioError(f"metric {name!r} returned {type(v).__name__}; a metric returns a number or a dict of numbers")
