"""Recorded movement traces (SUMO FCD XML, CSV, GPX) as mobility sources: who is present at a time, and where.

A trace is a set of samples (name, time, x, y) in metres. A device exists from its first to its last sample
(it *joins* at its first sample and *leaves* after its last one) and between two of its samples it moves on the
straight line between them at constant speed (linear interpolation). Latitude/longitude inputs are projected to
metres with `LocalProjection`, an equirectangular projection scaled at the trace's mean latitude (error well
below 0.5% over a city; any object with the same `forward` method, e.g. a pyproj wrapper, can replace it).

Devices are numbered 0, 1, ... in the order they join, ties broken by name, so a live source that numbers
vehicles as they appear (fieldlearn.sim.sumo.LiveSumo) gives the same numbers as the replay of its own trace.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from .safexml import FileFormatError, open_text, parse_stream

EARTH_RADIUS_M = 6_371_008.8  # the mean Earth radius (IUGG), metres


# ------------------------------------------------------------------------------------------- projection
class Projector(Protocol):
    """Anything that maps latitude/longitude in degrees to (x, y) metres."""

    def forward(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LocalProjection:
    """Equirectangular projection: x = R cos(lat_scale) (lon - lon0), y = R (lat - lat0), angles in radians.

    Distances are exact along meridians and along the parallel `lat_scale`; elsewhere the east-west scale is off
    by cos(lat) / cos(lat_scale), about 0.1% 5 km north or south of `lat_scale` at mid latitudes.
    """

    lat0: float
    lon0: float
    lat_scale: float

    @classmethod
    def fit(cls, lat: np.ndarray, lon: np.ndarray) -> "LocalProjection":
        """The projection for these points: origin at their south-west corner, scale at their mean latitude."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        return cls(float(lat.min()), float(lon.min()), float(lat.mean()))

    def forward(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """(x, y) metres east and north of the origin, shape (n, 2)."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        k = math.radians(1.0) * EARTH_RADIUS_M
        return np.stack([(lon - self.lon0) * (k * math.cos(math.radians(self.lat_scale))), (lat - self.lat0) * k], axis=-1)

    def inverse(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in degrees of points (x, y) in metres."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        k = math.radians(1.0) * EARTH_RADIUS_M
        return xy[:, 1] / k + self.lat0, xy[:, 0] / (k * math.cos(math.radians(self.lat_scale))) + self.lon0


# ------------------------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class MobilityFrame:
    """The devices present at `time`: their numbers (ascending) and positions, shape (k, 2)."""

    time: float
    index: np.ndarray
    xy: np.ndarray


class MobilitySource(Protocol):
    """What the simulator asks a source of moving devices: for non-decreasing times, who is where."""

    @property
    def names(self) -> Sequence[str]:
        """The name of each device number seen so far."""
        ...

    def at(self, t: float) -> MobilityFrame: ...


@dataclass(frozen=True)
class TimeMap:
    """Simulator time t corresponds to source time `start + scale * t` (SUMO seconds, trace seconds)."""

    start: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"TimeMap needs a finite start and a positive scale (got {self.start}, {self.scale})")

    def source_time(self, t: float | np.ndarray) -> float | np.ndarray:
        return self.start + self.scale * t

    def sim_time(self, s: float | np.ndarray) -> float | np.ndarray:
        return (s - self.start) / self.scale


class RecordedTrace:
    """Samples of named devices, interpolated in time; each device is present from its first to its last sample."""

    def __init__(self, names: Sequence[str], times: Sequence[float], xy: np.ndarray, source: str = "<memory>",
                 lines: Sequence[int] | None = None, projection: Projector | None = None,
                 epoch: datetime | None = None):
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray([str(n) for n in names], dtype=str)
        line_of = np.asarray(lines if lines is not None else np.zeros(len(times), dtype=np.int64), dtype=np.int64)
        if not (len(labels) == len(times) == len(xy) == len(line_of)):
            raise ValueError("names, times, xy (and lines) must have one entry per sample")
        if len(times) == 0:
            raise FileFormatError("no samples", source)
        bad = np.flatnonzero(~(np.isfinite(times) & np.isfinite(xy).all(axis=1)))
        if len(bad):
            raise FileFormatError("time and position must be finite numbers", source, _line(line_of, bad[0]))
        self.source, self.projection, self.epoch = source, projection, epoch
        by_name, raw = np.unique(labels, return_inverse=True)  # device numbers in name order
        first = np.full(len(by_name), np.inf)
        np.minimum.at(first, raw, times)
        join_order = np.lexsort((np.arange(len(by_name)), first))  # by first time, then name
        number = np.empty(len(by_name), dtype=np.int64)
        number[join_order] = np.arange(len(by_name))
        dev = number[raw]
        order = np.lexsort((times, dev))
        self.device, self.times, self.xy = dev[order], times[order], xy[order]
        same = (np.diff(self.device) == 0) & (np.diff(self.times) == 0)
        if same.any():
            k = int(np.flatnonzero(same)[0]) + 1
            raise FileFormatError(f"{str(by_name[join_order][self.device[k]])!r} has two samples at time {self.times[k]:g}",
                                  source, _line(line_of[order], k))
        self.names: tuple[str, ...] = tuple(str(n) for n in by_name[join_order])
        n = len(self.names)
        self._lo = np.searchsorted(self.device, np.arange(n), side="left")
        self._hi = np.searchsorted(self.device, np.arange(n), side="right")
        self.first = self.times[self._lo]
        self.last = self.times[self._hi - 1]
        self._instants = np.unique(self.times)
        self._keys = self.device * len(self._instants) + np.searchsorted(self._instants, self.times)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"RecordedTrace({len(self)} devices, {len(self.times)} samples, t {self.start:g}..{self.end:g}, {self.source})"

    @property
    def start(self) -> float:
        return float(self._instants[0])

    @property
    def end(self) -> float:
        return float(self._instants[-1])

    def samples(self, device: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample times and positions of device number `device`."""
        sl = slice(self._lo[device], self._hi[device])
        return self.times[sl], self.xy[sl]

    def present(self, t: float) -> np.ndarray:
        """Numbers of the devices present at time t (first sample <= t <= last sample), ascending."""
        return np.flatnonzero((self.first <= t) & (t <= self.last))

    def at(self, t: float) -> MobilityFrame:
        """The devices present at time t and their positions (exact at sample times, linear between)."""
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"time must be finite (got {t})")
        idx = self.present(t)
        return MobilityFrame(t, idx, self.positions(t, idx))

    def positions(self, t: float | np.ndarray, devices: np.ndarray) -> np.ndarray:
        """Positions at time t (one time, or one per device) of `devices`, which must all be present then."""
        devices = np.asarray(devices, dtype=np.int64)
        rank = np.searchsorted(self._instants, t, side="right") - 1
        i = np.searchsorted(self._keys, devices * len(self._instants) + rank, side="right") - 1
        if len(devices) and (np.any(i < self._lo[devices]) or np.any(t > self.last[devices])):
            shown = f"{t:g}" if np.ndim(t) == 0 else "the times given"
            raise ValueError(f"positions asked at {shown} for devices not present then")
        j = np.minimum(i + 1, self._hi[devices] - 1)
        t0, t1 = self.times[i], self.times[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(t1 > t0, (t - t0) / (t1 - t0), 0.0)
        a = self.xy[i]
        return a + (self.xy[j] - a) * frac[:, None]


def _line(lines: np.ndarray, k: int) -> int | None:
    v = int(lines[k])
    return v if v > 0 else None


class TraceReplay:
    """A recorded trace as a mobility source, with simulator time mapped to trace time."""

    def __init__(self, trace: RecordedTrace, timemap: TimeMap = TimeMap()):
        self.trace, self.timemap = trace, timemap

    @property
    def names(self) -> tuple[str, ...]:
        return self.trace.names

    @property
    def joins(self) -> np.ndarray:
        """Simulator time at which each device joins (its first sample)."""
        return self.timemap.sim_time(self.trace.first)

    @property
    def leaves(self) -> np.ndarray:
        """Simulator time of each device's last sample; it is gone at any later time."""
        return self.timemap.sim_time(self.trace.last)

    def at(self, t: float) -> MobilityFrame:
        f = self.trace.at(self.timemap.source_time(float(t)))
        return MobilityFrame(float(t), f.index, f.xy)


# ------------------------------------------------------------------------------------------- readers
Coordinates = Literal["auto", "xy", "lonlat"]


class _Samples:
    """Columns collected while reading a file."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.times: list[float] = []
        self.a: list[float] = []
        self.b: list[float] = []
        self.lines: list[int] = []

    def add(self, name: str, t: float, a: float, b: float, line: int) -> None:
        self.names.append(name)
        self.times.append(t)
        self.a.append(a)
        self.b.append(b)
        self.lines.append(line)

    def trace(self, source: Path, geo: bool, lat_first: bool, projection: Projector | None,
              epoch: datetime | None = None) -> RecordedTrace:
        if not self.times:
            raise FileFormatError("no samples", source)
        a, b = np.asarray(self.a), np.asarray(self.b)
        if geo:
            lat, lon = (a, b) if lat_first else (b, a)
            for values, name, limit in ((lat, "latitude", 90.0), (lon, "longitude", 180.0)):
                bad = np.flatnonzero(np.abs(values) > limit)
                if len(bad):
                    raise FileFormatError(f"{name} {values[bad[0]]:g} is outside [-{limit:g}, {limit:g}]", source,
                                          self.lines[bad[0]])
            projection = projection if projection is not None else LocalProjection.fit(lat, lon)
            xy = np.asarray(projection.forward(lat, lon), dtype=np.float64)
        else:
            xy = np.stack([a, b], axis=-1)
        return RecordedTrace(self.names, self.times, xy, str(source), self.lines, projection if geo else None, epoch)


def _number(text: str | None, what: str, source: Path, line: int) -> float:
    if text is None:
        raise FileFormatError(f"missing {what}", source, line)
    try:
        v = float(text)
    except ValueError:
        raise FileFormatError(f"{what} must be a number (got {text!r})", source, line) from None
    if not math.isfinite(v):
        raise FileFormatError(f"{what} must be finite (got {text!r})", source, line)
    return v


def read_fcd(path: str | Path, coords: Coordinates = "auto", projection: Projector | None = None,
             elements: Sequence[str] = ("vehicle",)) -> RecordedTrace:
    """A SUMO floating-car-data export (`<fcd-export><timestep time><vehicle id x y/>`), gzip or not.

    `coords`: "xy" for network metres, "lonlat" when SUMO wrote geo-coordinates (x = longitude, y = latitude,
    `--fcd-output.geo`), "auto" to follow the `fcd-output.geo` setting SUMO records in the file (its header
    comment, or its `<metadata>` with `--write-metadata`); files without that record are read as "xy".
    `elements` names the moving things to read (SUMO also writes `person` and `container`).
    """
    path = Path(path)
    s = _Samples()
    wanted = frozenset(elements)
    state: dict = {"time": None, "root": None, "geo": False}

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        if state["root"] is None:
            state["root"] = tag
            if tag != "fcd-export":
                raise FileFormatError(f"not a SUMO FCD export: the root element is <{tag}>, not <fcd-export>", path, line)
        elif tag == "fcd-output.geo":  # the configuration SUMO records with --write-metadata
            state["geo"] = attrs.get("value") == "true"
        elif tag == "timestep":
            state["time"] = _number(attrs.get("time"), "timestep time", path, line)
        elif tag in wanted:
            if state["time"] is None:
                raise FileFormatError(f"<{tag}> outside a <timestep>", path, line)
            name = attrs.get("id")
            if not name:
                raise FileFormatError(f"<{tag}> without an id", path, line)
            if "x" not in attrs or "y" not in attrs:
                raise FileFormatError(f"{tag} {name!r} has no x/y (write the FCD with x and y among "
                                      "--fcd-output.attributes)", path, line)
            s.add(name, state["time"], _number(attrs["x"], "x", path, line), _number(attrs["y"], "y", path, line), line)

    def end(tag: str, line: int) -> None:
        if tag == "timestep":
            state["time"] = None

    def comment(text: str) -> None:
        if state["root"] is None and "<fcd-output.geo" in text:
            state["geo"] = 'fcd-output.geo value="true"' in text or "fcd-output.geo value='true'" in text

    parse_stream(path, start, end, comment=comment)
    if state["root"] is None:
        raise FileFormatError("no root element", path)
    if coords not in ("auto", "xy", "lonlat"):
        raise ValueError(f"coords must be 'auto', 'xy' or 'lonlat' (got {coords!r})")
    geo = state["geo"] if coords == "auto" else coords == "lonlat"
    return s.trace(path, geo, lat_first=False, projection=projection)


_ID_COLUMNS = ("id", "vehicle", "device")


def read_trace_csv(path: str | Path, projection: Projector | None = None) -> RecordedTrace:
    """A CSV trace with a header naming its columns: id (or vehicle, device), time, and x, y or lat, lon.

    Columns may come in any order; extra columns are ignored; blank lines and lines starting with `#` are skipped.
    Times are seconds (numbers); x/y are metres, lat/lon degrees (projected to metres).
    """
    path = Path(path)
    s = _Samples()
    try:
        with open_text(path) as fh:
            rows = csv.reader(fh)
            header, line = None, 0
            for row in rows:
                line = rows.line_num
                if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                    continue
                if header is None:
                    header = [c.strip().lower() for c in row]
                    cols = _csv_columns(header, path, line)
                    width = max(cols) + 1
                    continue
                if len(row) < width:
                    raise FileFormatError(f"expected {len(header)} values ({','.join(header)}), got {len(row)}", path, line)
                name = row[cols[0]].strip()
                if not name:
                    raise FileFormatError("empty id", path, line)
                s.add(name, _number(row[cols[1]].strip(), "time", path, line),
                      _number(row[cols[2]].strip(), header[cols[2]], path, line),
                      _number(row[cols[3]].strip(), header[cols[3]], path, line), line)
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"not UTF-8 text ({exc.reason})", path) from None
    except csv.Error as exc:
        raise FileFormatError(f"bad CSV: {exc}", path, line) from None
    if header is None:
        raise FileFormatError("empty file (expected a header such as id,time,x,y)", path)
    return s.trace(path, geo=header[cols[2]] == "lat", lat_first=True, projection=projection)


def _csv_columns(header: list[str], path: Path, line: int) -> tuple[int, int, int, int]:
    """Indices of (id, time, x|lat, y|lon) in a header."""
    def find(*names: str) -> int | None:
        hits = [header.index(n) for n in names if n in header]
        if len(hits) > 1:
            raise FileFormatError(f"the header has more than one of {', '.join(names)}", path, line)
        return hits[0] if hits else None

    ident, time = find(*_ID_COLUMNS), find("time")
    x, y, lat, lon = find("x"), find("y"), find("lat", "latitude"), find("lon", "lng", "longitude")
    planar, geo = x is not None and y is not None, lat is not None and lon is not None
    if ident is None or time is None or planar == geo:
        raise FileFormatError(f"the header must name id, time and either x,y or lat,lon (got {','.join(header)})",
                              path, line)
    if geo:
        header[lat], header[lon] = "lat", "lon"
        return ident, time, lat, lon
    return ident, time, x, y


def read_gpx(path: str | Path, projection: Projector | None = None) -> RecordedTrace:
    """A GPX file: each track (`<trk>`, named by its `<name>` or `track<k>`) is one device; every track point
    needs lat, lon and a `<time>` (ISO 8601; without a zone it is taken as UTC). Trace time 0 is the earliest point.
    """
    path = Path(path)
    s = _Samples()
    names: set[str] = set()
    st: dict = {"trk": None, "pt": None, "text": None, "k": 0, "root": None}
    stamps: list[datetime] = []

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        if st["root"] is None:
            st["root"] = tag
            if tag != "gpx":
                raise FileFormatError(f"not a GPX file: the root element is <{tag}>, not <gpx>", path, line)
        elif tag == "trk":
            st["trk"] = {"name": None, "line": line, "first": len(s.times)}
        elif tag == "trkpt" and st["trk"] is not None:
            st["pt"] = {"lat": _number(attrs.get("lat"), "lat", path, line),
                        "lon": _number(attrs.get("lon"), "lon", path, line), "time": None, "line": line}
        elif (tag == "time" and st["pt"] is not None) or (tag == "name" and st["trk"] is not None and st["pt"] is None):
            st["text"] = []

    def text(data: str) -> None:
        if st["text"] is not None:
            st["text"].append(data)

    def end(tag: str, line: int) -> None:
        if tag == "time" and st["pt"] is not None and st["text"] is not None:
            st["pt"]["time"] = _gpx_time("".join(st["text"]).strip(), path, line)
            st["text"] = None
        elif tag == "name" and st["text"] is not None:
            st["trk"]["name"] = "".join(st["text"]).strip() or None
            st["text"] = None
        elif tag == "trkpt" and st["pt"] is not None:
            pt = st["pt"]
            if pt["time"] is None:
                raise FileFormatError("track point without a <time>", path, pt["line"])
            stamps.append(pt["time"])
            s.add("", 0.0, pt["lat"], pt["lon"], pt["line"])
            st["pt"] = None
        elif tag == "trk" and st["trk"] is not None:
            trk = st["trk"]
            name = trk["name"] or f"track{st['k']}"
            if name in names:
                raise FileFormatError(f"two tracks named {name!r}", path, trk["line"])
            names.add(name)
            for i in range(trk["first"], len(s.times)):
                s.names[i] = name
            st["k"] += 1
            st["trk"] = None

    parse_stream(path, start, end, text=text)
    if st["root"] is None:
        raise FileFormatError("no root element", path)
    if not stamps:
        raise FileFormatError("no track points (<trk><trkseg><trkpt>)", path)
    epoch = min(stamps)
    s.times = [(d - epoch).total_seconds() for d in stamps]
    return s.trace(path, geo=True, lat_first=True, projection=projection, epoch=epoch)


def _gpx_time(text: str, path: Path, line: int) -> datetime:
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise FileFormatError(f"<time> must be an ISO 8601 date and time (got {text!r})", path, line) from None
    return d if d.tzinfo is not None else d.replace(tzinfo=timezone.utc)


TraceFormat = Literal["fcd", "csv", "gpx"]


def trace_format(path: str | Path) -> TraceFormat:
    """The format a trace file's name implies (.xml: SUMO FCD, .csv, .gpx; each optionally .gz)."""
    name = Path(path).name.lower().removesuffix(".gz")
    for suffix, fmt in ((".xml", "fcd"), (".csv", "csv"), (".gpx", "gpx")):
        if name.endswith(suffix):
            return fmt  # type: ignore[return-value]
    raise FileFormatError("unknown trace format: the name must end in .xml (SUMO FCD), .csv or .gpx (optionally .gz)", path)


def load_recorded_trace(path: str | Path, format: TraceFormat | None = None, coords: Coordinates = "auto",
                        projection: Projector | None = None) -> RecordedTrace:
    """Read a trace file in the format given or implied by its name; `coords` applies to FCD only."""
    fmt = format or trace_format(path)
    if fmt == "fcd":
        return read_fcd(path, coords, projection)
    if fmt == "csv":
        return read_trace_csv(path, projection)
    if fmt == "gpx":
        return read_gpx(path, projection)
    raise ValueError(f"format must be 'fcd', 'csv' or 'gpx' (got {format!r})")
