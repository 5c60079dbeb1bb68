"""The scenario schema (pydantic, unknown keys forbidden, strict types): each block of a scenario YAML as a class.
Loading a file and resolving what it names is `loader.py`; checks across blocks are `checks.py`."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RESERVED_SENSORS = ("position", "region", "time", "id")
MAX_DEVICES = 5_000_000

MAX_COORDINATE = 1e12  # metres: a continent in micrometres; far below where squared distances lose all precision
Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
Box = Annotated[list[Coordinate], Field(min_length=4, max_length=4)]
Pair = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]
Scalar = Union[bool, int, float]
PosFloat = Annotated[float, Field(gt=0, le=MAX_COORDINATE)]
NonNegFloat = Annotated[float, Field(ge=0, le=MAX_COORDINATE)]


class Model(BaseModel):
    """Base of every scenario block: strict types, unknown keys rejected, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _check_polygon(points: list[list[float]] | None) -> list[list[float]] | None:
    if points is None:
        return None
    from shapely.geometry import Polygon
    from shapely.validation import explain_validity

    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    poly = Polygon(points)
    if poly.is_empty or poly.convex_hull.area <= 0:
        raise ValueError("empty polygon (its area is 0)")
    if not poly.is_valid:
        raise ValueError(f"invalid polygon ({explain_validity(poly)})")
    return points


def _check_box(box: list[float] | None) -> list[float] | None:
    if box is not None and not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError("a box is [xmin, ymin, xmax, ymax] with xmin < xmax and ymin < ymax")
    return box


def _one_of(model: BaseModel, names: tuple[str, ...], required: bool = True) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) > 1 or (required and not given):
        raise ValueError(f"give exactly one of {', '.join(names)}" + (f" (got {', '.join(given)})" if given else ""))


def box_polygon(box: list[float]) -> list[list[float]]:
    """The four corners of an [xmin, ymin, xmax, ymax] box."""
    x0, y0, x1, y1 = box
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# ----------------------------------------------------------------------------------------- regions and areas
class RegionSpec(Model):
    """A named polygon of the environment (or a box shorthand); the `region` sensor is its index."""

    name: Annotated[str, Field(min_length=1)]
    polygon: list[Point] | None = None
    box: Box | None = None

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))
    _box = field_validator("box")(classmethod(lambda cls, v: _check_box(v)))

    @model_validator(mode="after")
    def _exactly_one(self) -> "RegionSpec":
        _one_of(self, ("polygon", "box"))
        return self

    def points(self) -> list[list[float]]:
        return self.polygon if self.polygon is not None else box_polygon(self.box)  # type: ignore[arg-type]


class RegionsFile(Model):
    """`regions: {from_file: PATH}`: the regions are the districts of a file (`fieldlearn.districts/1`, as
    fieldlearn.sim.streets.write_districts writes it), relative to the scenario's folder; the loader reads it."""

    from_file: Annotated[str, Field(min_length=1, max_length=4096)]


class Selector(Model):
    """Which devices a fault or sensor setting targets, evaluated when it applies (positions at that time).

    One of ids / region / box / polygon / nearest (+count) / all, optionally restricted to a `deployment`
    (index or name); `deployment` alone selects all of that deployment's devices.
    """

    ids: list[Annotated[int, Field(ge=0)]] | None = None
    region: str | None = None
    box: Box | None = None
    polygon: list[Point] | None = None
    nearest: Point | None = None
    count: Annotated[int, Field(gt=0)] = 1
    deployment: Annotated[int, Field(ge=0)] | str | None = None
    all: Literal[True] | None = None

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))
    _box = field_validator("box")(classmethod(lambda cls, v: _check_box(v)))

    @model_validator(mode="after")
    def _exactly_one(self) -> "Selector":
        # `deployment` alone selects a deployment's devices; with another key it restricts that selection
        _one_of(self, ("ids", "region", "box", "polygon", "nearest", "all"), required=self.deployment is None)
        if self.count != 1 and self.nearest is None:
            raise ValueError("count applies only with nearest")
        return self


# ----------------------------------------------------------------------------------------------- mobility
class Static(Model):
    """Devices stay where they were deployed."""

    kind: Literal["static"] = "static"


class Tour(Model):
    """Visit `stops` (region names or [x, y] points) in turn, dwelling in each, jumping or moving at `speed`;
    `order: shuffled` gives every device its own itinerary: a random order of the stops, drawn anew each cycle."""

    kind: Literal["tour"]
    stops: Annotated[list[Union[str, Point]], Field(min_length=1)]
    dwell: PosFloat | list[PosFloat] | None = None
    dwell_time: PosFloat | list[PosFloat] | None = None
    speed: PosFloat | None = None
    repeat: bool = True
    start: Literal["first", "spread", "random"] = "first"
    order: Literal["given", "shuffled"] = "given"
    placement: Literal["random", "center"] = "random"

    @model_validator(mode="after")
    def _dwell(self) -> "Tour":
        _one_of(self, ("dwell", "dwell_time"))
        return self


class RandomWaypoint(Model):
    """Move at `speed` to a random point of an area, pause, repeat (the classic random waypoint model)."""

    kind: Literal["random_waypoint"]
    region: str | None = None
    box: Box | None = None
    polygon: list[Point] | None = None
    speed: PosFloat | Annotated[list[PosFloat], Field(min_length=2, max_length=2)]
    pause: NonNegFloat | Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)] | None = None
    pause_time: NonNegFloat | Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)] | None = None

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))
    _box = field_validator("box")(classmethod(lambda cls, v: _check_box(v)))

    @model_validator(mode="after")
    def _area(self) -> "RandomWaypoint":
        _one_of(self, ("region", "box", "polygon"))
        _one_of(self, ("pause", "pause_time"), required=False)
        for name in ("speed", "pause", "pause_time"):
            v = getattr(self, name)
            if isinstance(v, list) and v[0] > v[1]:
                raise ValueError(f"{name}: a range is [min, max] with min <= max")
        return self


class TraceSpec(Model):
    """Positions read from a CSV of time,device,x,y (device = index within the deployment), interpolated."""

    kind: Literal["trace"]
    file: Annotated[str, Field(min_length=1, max_length=4096)]


Mobility = Annotated[Union[Static, Tour, RandomWaypoint, TraceSpec], Field(discriminator="kind")]


# -------------------------------------------------------------------------------------------- deployments
SensorValues = dict[str, Union[Scalar, list[Scalar]]]


class _Deployment(Model):
    name: str | None = None
    sensors: SensorValues = {}
    mobility: Mobility = Field(default_factory=Static)


class GridDeployment(_Deployment):
    """Devices on a grid `spacing` apart from `origin`, row by row, optionally jittered uniformly by ±`jitter`."""

    kind: Literal["grid"]
    rows: Annotated[int, Field(gt=0)] | None = None
    cols: Annotated[int, Field(gt=0)] | None = None
    count: Annotated[int, Field(gt=0)] | None = None
    spacing: PosFloat = 1.0
    origin: Point = [0.0, 0.0]
    jitter: NonNegFloat = 0.0

    @model_validator(mode="after")
    def _shape(self) -> "GridDeployment":
        if self.rows is not None and self.cols is not None:
            if self.count is not None and self.count > self.rows * self.cols:
                raise ValueError(f"count {self.count} does not fit in {self.rows}x{self.cols}")
        elif self.count is None:
            raise ValueError("give rows and cols, or count (with cols or rows optional)")
        if self.n_devices > MAX_DEVICES:
            raise ValueError(f"too many devices ({self.n_devices} > {MAX_DEVICES})")
        return self

    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the grid."""
        if self.rows is not None and self.cols is not None:
            return self.rows, self.cols
        n = self.count or 0
        if self.cols is not None:
            return math.ceil(n / self.cols), self.cols
        if self.rows is not None:
            return self.rows, math.ceil(n / self.rows)
        cols = math.ceil(math.sqrt(n))
        return math.ceil(n / cols), cols

    @property
    def n_devices(self) -> int:
        if self.count is not None:
            return self.count
        r, c = self.shape()
        return r * c


class RandomDeployment(_Deployment):
    """`count` devices uniformly at random inside a region, polygon or box."""

    kind: Literal["random"]
    count: Annotated[int, Field(gt=0, le=MAX_DEVICES)]
    region: str | None = None
    polygon: list[Point] | None = None
    box: Box | None = None

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))
    _box = field_validator("box")(classmethod(lambda cls, v: _check_box(v)))

    @model_validator(mode="after")
    def _area(self) -> "RandomDeployment":
        _one_of(self, ("region", "polygon", "box"))
        return self

    @property
    def n_devices(self) -> int:
        return self.count


class PointsDeployment(_Deployment):
    """Devices at explicit [x, y] points."""

    kind: Literal["points"]
    points: Annotated[list[Point], Field(min_length=1, max_length=MAX_DEVICES)]

    @property
    def n_devices(self) -> int:
        return len(self.points)


GRAPH_LAYOUTS = ("auto", "pos", "grid", "spring", "circular", "shell", "spectral", "kamada_kawai", "random")


class GraphDeployment(_Deployment):
    """The nodes of a networkx generator (`generator(**params)`), placed by a layout; its edges serve `links.rule: fixed`."""

    kind: Literal["graph"]
    generator: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = {}
    layout: Literal["auto", "pos", "grid", "spring", "circular", "shell", "spectral", "kamada_kawai", "random"] = "auto"
    scale: PosFloat = 1.0
    origin: Point = [0.0, 0.0]


class SourceTime(Model):
    """How simulator time maps to the seconds of a trace or of SUMO: source second = start + scale * t."""

    start: Coordinate = 0.0
    scale: PosFloat = 1.0


class TraceSource(Model):
    """Vehicles replayed from a recorded trace: a SUMO FCD export (.xml), a CSV (id, time, x, y or lat, lon) or a
    GPX file, optionally gzipped, relative to the scenario's folder (read by the loader)."""

    file: Annotated[str, Field(min_length=1, max_length=4096)]
    format: Literal["auto", "fcd", "csv", "gpx"] = "auto"  # auto: from the file name
    coords: Literal["auto", "xy", "lonlat"] = "auto"  # FCD only: SUMO's metres, or geo-coordinates (projected)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"file": data} if isinstance(data, str) else data


class CityKeys(Model):
    """A city generated with SUMO's netgenerate and randomTrips.py (fieldlearn.sim.sumo.CitySpec)."""

    network: Literal["grid", "spider"] = "grid"
    blocks: Annotated[list[Annotated[int, Field(ge=1, le=1000)]], Field(min_length=2, max_length=2)] = [6, 6]
    block_length: PosFloat = 100.0
    lanes: Annotated[int, Field(ge=1, le=8)] = 1
    vehicles: Annotated[int, Field(ge=1, le=MAX_DEVICES)] = 300
    depart_end: PosFloat = 240.0
    duration: PosFloat = 300.0
    min_trip: NonNegFloat = 0.0
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0


class SumoSource(Model):
    """Vehicles driven live by SUMO (libsumo or traci), from one of: a SUMO configuration (`config`), a network and
    route files (`net`, `routes`), or a generated city (`city`). Paths are relative to the scenario's folder."""

    config: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    net: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    routes: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(min_length=1)] | None = None
    city: CityKeys | None = None
    cache: Annotated[str, Field(min_length=1, max_length=4096)] | None = None  # generated cities (default: user cache)
    backend: Literal["libsumo", "traci"] = "libsumo"
    begin: NonNegFloat | None = None  # SUMO seconds (default: the configuration's, else 0)
    end: PosFloat | None = None  # default: the configuration's, else one step past the scenario's end
    step_length: PosFloat | None = None  # default: the configuration's, else 1 s
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None  # SUMO's (default: the city's, the config's, else 0)
    vehicles: Annotated[int, Field(ge=1, le=MAX_DEVICES)] | None = None  # default: counted in the route files

    @field_validator("routes", mode="before")
    @classmethod
    def _one_route_file(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _source(self) -> "SumoSource":
        given = [k for k in ("config", "net", "city") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of config, net (with routes), city"
                             + (f" (got {', '.join(given)})" if given else ""))
        if (self.net is None) != (self.routes is None):
            raise ValueError("net and routes go together (a network and its route files)")
        if self.cache is not None and self.city is None:
            raise ValueError("cache applies only with city")
        return self


class VehiclesDeployment(Model):
    """Vehicles that join when they depart and leave when they arrive (capacity: every vehicle of the run), replayed
    from a recorded `trace` or driven live by `sumo`; `time` maps simulator time to the source's seconds."""

    kind: Literal["vehicles"]
    name: str | None = None
    sensors: SensorValues = {}
    trace: TraceSource | None = None
    sumo: SumoSource | None = None
    time: SourceTime = Field(default_factory=SourceTime)

    @model_validator(mode="after")
    def _one_source(self) -> "VehiclesDeployment":
        _one_of(self, ("trace", "sumo"))
        return self

    @property
    def mobility(self) -> TraceSource | SumoSource:
        """The source that moves the vehicles (the mobility kind built for them)."""
        return self.trace if self.trace is not None else self.sumo  # type: ignore[return-value]


Deployment = Annotated[
    Union[GridDeployment, RandomDeployment, PointsDeployment, GraphDeployment, VehiclesDeployment],
    Field(discriminator="kind"),
]


# ------------------------------------------------------------------------------------- links and schedule
class _Links(Model):
    retention: PosFloat | None = None
    loss: Annotated[float, Field(ge=0, lt=1)] = 0.0


class RadiusLinks(_Links):
    """Devices closer than `radius` hear each other (a cell-list search, updated where devices moved)."""

    rule: Literal["radius"]
    radius: PosFloat


class KnnLinks(_Links):
    """Each device links its `k` nearest devices (symmetrised)."""

    rule: Literal["knn"]
    k: Annotated[int, Field(gt=0)]


class FixedLinks(_Links):
    """A fixed graph: the edges of graph deployments plus `edges` (global ids), both ways."""

    rule: Literal["fixed"]
    edges: list[Pair] = []
    lengths: Literal["euclidean", "unit"] = "euclidean"


Links = Annotated[Union[RadiusLinks, KnnLinks, FixedLinks], Field(discriminator="rule")]


class SyncSchedule(Model):
    """Every device fires at 0, period, 2*period, ... (one batch per tick)."""

    kind: Literal["sync"] = "sync"
    period: PosFloat = 1.0


class DiracSchedule(Model):
    """Each device fires every `period` from its own random phase; `phases: K` rounds phases to K slots."""

    kind: Literal["dirac"]
    period: PosFloat = 1.0
    phases: Annotated[int, Field(gt=0)] | None = None


class ExponentialSchedule(Model):
    """Each device fires after exponential waits of mean 1/rate (a Poisson clock)."""

    kind: Literal["exponential"]
    rate: PosFloat = 1.0


ScheduleSpec = Annotated[Union[SyncSchedule, DiracSchedule, ExponentialSchedule], Field(discriminator="kind")]


class Duration(Model):
    """How long the run lasts: `rounds` (periods of the schedule) or simulated `time`."""

    rounds: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    time: PosFloat | None = None

    @model_validator(mode="after")
    def _one(self) -> "Duration":
        _one_of(self, ("rounds", "time"))
        return self


# ----------------------------------------------------------------------------------- sensors and program
class SensorSet(Model):
    devices: Selector
    value: Scalar


class SensorSpec(Model):
    """A sensor's default value for every device plus values set on selected devices at time 0."""

    default: Scalar
    set: list[SensorSet] = []


class ProgramSpec(Model):
    """The aggregate program: `NAME` (programs/NAME.py), a .py path, or `module:function`; `params` are its kwargs."""

    name: Annotated[str, Field(min_length=1, max_length=1000)]
    function: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_]\w*$")] | None = None
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


# --------------------------------------------------------------------------------------------------- faults
class _Fault(Model):
    at: NonNegFloat


class CrashFault(_Fault):
    """Devices stop (their messages vanish); with `restart` they come back after that time, state forgotten."""

    kind: Literal["crash"]
    devices: Selector
    restart: PosFloat | None = None


class JoinFault(_Fault):
    """New devices (a deployment) appear."""

    kind: Literal["join"]
    deployment: Deployment


class MoveFault(_Fault):
    """Devices jump `to` a point, `by` an offset, or into a `region` (random point), and stay there."""

    kind: Literal["move"]
    devices: Selector
    to: Point | None = None
    by: Point | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "MoveFault":
        _one_of(self, ("to", "by", "region"))
        return self


class SensorFault(_Fault):
    """A sensor takes a new value on the selected devices."""

    kind: Literal["sensor"]
    devices: Selector
    sensor: Annotated[str, Field(min_length=1)]
    value: Scalar


class CutFault(_Fault):
    """Links are cut: given `pairs`, all links crossing a `wall` polyline, or all links of some `devices`."""

    kind: Literal["cut"]
    name: str | None = None
    pairs: list[Pair] = []
    wall: Annotated[list[Point], Field(min_length=2)] | None = None
    devices: Selector | None = None

    @model_validator(mode="after")
    def _some(self) -> "CutFault":
        if not self.pairs and self.wall is None and self.devices is None:
            raise ValueError("give pairs, wall or devices")
        return self


class RestoreFault(_Fault):
    """Cut links come back (the cut with this `name`, or all cuts)."""

    kind: Literal["restore"]
    name: str | None = None


Fault = Annotated[
    Union[CrashFault, JoinFault, MoveFault, SensorFault, CutFault, RestoreFault], Field(discriminator="kind")
]


# -------------------------------------------------------------------------------------------------- exports
STATS = ("mean", "min", "max", "std", "sum", "count", "finite")


class Snapshot(Model):
    """A figure of the network at some times, devices coloured by `value`, with region outlines."""

    value: str | None = None
    times: Annotated[list[Union[NonNegFloat, Literal["end"]]], Field(min_length=1, max_length=12)] = ["end"]
    file: Annotated[str, Field(pattern=r"^[\w.-]+\.png$")] | None = None
    cmap: str = "viridis"
    links: bool = True


class Figures(Model):
    timeseries: bool = True
    snapshots: list[Snapshot] = []


class AnimationSpec(Model):
    """`exports.animation`: run.gif (or run.mp4, needs ffmpeg) of frames every `every` time units (default: about
    100 frames), devices coloured by `color` (default: the first exported value)."""

    every: PosFloat | None = None
    color: str | None = None
    format: Literal["gif", "mp4"] = "gif"


class ViewerSpec(Model):
    """`exports.viewer`: viewer.html, an interactive page of frames every `every` time units (`true`: defaults)."""

    every: PosFloat | None = None
    color: str | None = None


class Exports(Model):
    """What is written: values summarised per row (CSV), per-device values, metrics, the JSON summary, figures."""

    values: list[str] = []
    stats: Annotated[list[Literal["mean", "min", "max", "std", "sum", "count", "finite"]], Field(min_length=1)] = [
        "mean",
        "min",
        "max",
    ]
    per_device: list[str] = []
    metrics: list[str] = []
    interval: PosFloat | None = None
    per_device_interval: PosFloat | None = None
    csv: bool = True
    summary: bool = True
    figures: Figures = Field(default_factory=Figures)
    animation: AnimationSpec | None = None
    viewer: Union[bool, ViewerSpec] = False


# ------------------------------------------------------------------------------------------------- scenario
class Scenario(Model):
    """A whole simulation: devices, environment, schedule, program, faults and exports."""

    name: Annotated[str, Field(pattern=r"^\w[\w.-]{0,99}$")] | None = None  # a folder name, never a path
    description: Annotated[str, Field(max_length=4000)] | None = None
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    duration: Duration
    regions: Union[list[RegionSpec], RegionsFile] = []  # the loader replaces a RegionsFile by its regions
    streets: Annotated[str, Field(min_length=1, max_length=4096)] | None = None  # drawn behind the devices
    sensors: dict[str, Union[Scalar, SensorSpec]] = {}
    deployments: Annotated[list[Deployment], Field(min_length=1)]
    links: Links
    schedule: ScheduleSpec = Field(default_factory=SyncSchedule)
    program: ProgramSpec
    faults: list[Fault] = []
    exports: Exports = Field(default_factory=Exports)
    learning: dict[str, Any] | None = None
    mobility_step: PosFloat | None = None  # None: positions exact at every event; else updated every step

    @property
    def period(self) -> float:
        """The mean time between two rounds of a device."""
        s = self.schedule
        return 1.0 / s.rate if isinstance(s, ExponentialSchedule) else s.period

    @property
    def end_time(self) -> float:
        """The simulated time at which the run stops (events at or after it do not happen)."""
        d = self.duration
        return d.rounds * self.period if d.rounds is not None else float(d.time)  # type: ignore[arg-type]

    def region_names(self) -> list[str]:
        if isinstance(self.regions, RegionsFile):
            raise ValueError("regions: {from_file: ...} is read by the loader (fieldlearn.sim.loader)")
        return [r.name for r in self.regions]

    def sensor_names(self) -> list[str]:
        """Scenario-defined sensors, in first-mention order."""
        names = list(self.sensors)
        for d in self.all_deployments():
            names += [n for n in d.sensors if n not in names]
        return names

    def all_deployments(self) -> list[Any]:
        """Initial deployments then join deployments, in id order."""
        return list(self.deployments) + [f.deployment for f in self.faults if isinstance(f, JoinFault)]

    def to_yaml(self) -> str:
        """The validated scenario, defaults filled in, as YAML."""
        data = self.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def deployment_paths(s: Scenario) -> list[tuple]:
    """The YAML path of every deployment in id order: the initial deployments, then the join faults' deployments."""
    return [("deployments", i) for i in range(len(s.deployments))] + [
        ("faults", k, "deployment") for k, f in enumerate(s.faults) if isinstance(f, JoinFault)]


def deployment_path(s: Scenario, i: int) -> tuple:
    """The YAML path of deployment `i` in id order (see `deployment_paths`)."""
    return deployment_paths(s)[i]


__all__ = ["Scenario", "RESERVED_SENSORS", "MAX_DEVICES", "box_polygon", "deployment_path", "deployment_paths"]
