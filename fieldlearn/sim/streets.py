"""Street networks and districts: lane polylines read from a SUMO network, and polygons that split its extent.

The lane shapes are in the network's coordinates (metres), the same as the x/y of its FCD trace, so figures can
draw the streets behind the devices and districts can serve as regions. Reading needs no SUMO installation: the
network file (`.net.xml`, optionally `.gz`) is parsed with the standard library (fieldlearn.sim.safexml), and
both results have a small JSON form that can ship with a scenario instead of the network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .files import write_atomic
from .safexml import FileFormatError, open_text, parse_stream

STREETS_FORMAT = "fieldlearn.streets/1"
DISTRICTS_FORMAT = "fieldlearn.districts/1"

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


@dataclass(frozen=True)
class Lane:
    """One lane: its id, the edge (street segment) it belongs to, and its centre line, shape (k, 2)."""

    id: str
    edge: str
    shape: np.ndarray


@dataclass(frozen=True)
class StreetNetwork:
    """The lanes of a street network and the bounding box of their shapes."""

    lanes: tuple[Lane, ...]
    bounds: Bounds

    def polylines(self) -> list[np.ndarray]:
        """Every lane's centre line, e.g. for matplotlib's LineCollection."""
        return [lane.shape for lane in self.lanes]

    def to_json(self, path: str | Path, decimals: int = 2) -> None:
        """Write the network as JSON (coordinates rounded to `decimals`), atomically."""
        doc = {"format": STREETS_FORMAT, "units": "m", "bounds": [round(b, decimals) for b in self.bounds],
               "lanes": [{"id": lane.id, "edge": lane.edge, "shape": np.round(lane.shape, decimals).tolist()}
                         for lane in self.lanes]}
        _write_json(path, doc)

    @classmethod
    def from_json(cls, path: str | Path) -> "StreetNetwork":
        """Read what `to_json` wrote."""
        doc = _read_json(path, STREETS_FORMAT)
        try:
            lanes = tuple(Lane(str(d["id"]), str(d["edge"]), _points(d["shape"])) for d in doc["lanes"])
            bounds = _bounds(doc["bounds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"not a street network ({type(exc).__name__}: {exc})", path) from None
        return cls(lanes, bounds)


def read_net(path: str | Path, internal: bool = False) -> StreetNetwork:
    """The lanes of a SUMO network file; `internal` also keeps the short lanes inside junctions."""
    path = Path(path)
    lanes: list[Lane] = []
    state: dict[str, Any] = {"root": None, "edge": None, "internal": False}

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        if state["root"] is None:
            state["root"] = tag
            if tag != "net":
                raise FileFormatError(f"not a SUMO network: the root element is <{tag}>, not <net>", path, line)
        elif tag == "edge":
            state["edge"] = attrs.get("id", "")
            state["internal"] = attrs.get("function") == "internal"
        elif tag == "lane" and state["edge"] is not None and (internal or not state["internal"]):
            shape = attrs.get("shape")
            if not shape:
                raise FileFormatError(f"lane {attrs.get('id')!r} has no shape", path, line)
            lanes.append(Lane(attrs.get("id", ""), state["edge"], _shape(shape, path, line)))

    def end(tag: str, line: int) -> None:
        if tag == "edge":
            state["edge"] = None

    parse_stream(path, start, end)
    if not lanes:
        raise FileFormatError("the network has no lanes", path)
    pts = np.concatenate([lane.shape for lane in lanes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return StreetNetwork(tuple(lanes), (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))


def _shape(text: str, path: Path, line: int) -> np.ndarray:
    """SUMO's `x,y[,z] x,y[,z] ...` as (k, 2) floats."""
    try:
        pts = [tuple(float(c) for c in p.split(",")) for p in text.split()]
        if len(pts) < 2 or any(len(p) not in (2, 3) for p in pts):
            raise ValueError
        arr = np.asarray([p[:2] for p in pts], dtype=np.float64)
    except ValueError:
        raise FileFormatError(f"bad shape {text[:60]!r} (expected 'x,y x,y ...' with two or more points)", path, line) from None
    if not np.isfinite(arr).all():
        raise FileFormatError("shape coordinates must be finite", path, line)
    return arr


@dataclass(frozen=True)
class District:
    """A named polygon (list of (x, y) corners, counter-clockwise, not closed), as a scenario region takes it."""

    name: str
    polygon: tuple[tuple[float, float], ...]


def split_districts(bounds: Bounds, rows: int, cols: int, names: Sequence[str] | None = None) -> list[District]:
    """Split a bounding box into rows x cols equal rectangles, named `district0`... row by row from the south-west
    (or by `names`); neighbours share their borders exactly."""
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1 (got {rows}, {cols})")
    x0, y0, x1, y1 = (float(b) for b in bounds)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"bounds must have xmax > xmin and ymax > ymin (got {bounds})")
    if names is not None and len(names) != rows * cols:
        raise ValueError(f"{rows * cols} districts need {rows * cols} names (got {len(names)})")
    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y0, y1, rows + 1)
    out = []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            a, b, lo, hi = float(xs[c]), float(xs[c + 1]), float(ys[r]), float(ys[r + 1])
            out.append(District(names[k] if names is not None else f"district{k}", ((a, lo), (b, lo), (b, hi), (a, hi))))
    return out


def write_districts(path: str | Path, districts: Sequence[District]) -> None:
    """Write districts as JSON, atomically."""
    _write_json(path, {"format": DISTRICTS_FORMAT, "units": "m",
                       "districts": [{"name": d.name, "polygon": [list(p) for p in d.polygon]} for d in districts]})


def read_districts(path: str | Path) -> list[District]:
    """Read what `write_districts` wrote."""
    doc = _read_json(path, DISTRICTS_FORMAT)
    try:
        out = [District(str(d["name"]), tuple((float(x), float(y)) for x, y in _points(d["polygon"])))
               for d in doc["districts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"not a districts file ({type(exc).__name__}: {exc})", path) from None
    if any(len(d.polygon) < 3 for d in out):
        raise FileFormatError("a district polygon needs at least 3 corners", path)
    return out


def _points(value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise ValueError("expected a list of finite [x, y] points")
    return arr


def _bounds(value: Any) -> Bounds:
    b = [float(v) for v in value]
    if len(b) != 4:
        raise ValueError("bounds are [xmin, ymin, xmax, ymax]")
    return (b[0], b[1], b[2], b[3])


def _write_json(path: str | Path, doc: dict) -> None:
    write_atomic(Path(path), json.dumps(doc, separators=(",", ":")) + "\n")


def _read_json(path: str | Path, fmt: str) -> dict:
    try:
        with open_text(path) as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"not valid JSON: {exc.msg}", path, exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"not UTF-8 text ({exc.reason})", path) from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise FileFormatError(f"expected a JSON object with \"format\": \"{fmt}\"", path)
    return doc
