"""What a scenario names outside itself, read or built at resolve time (by the loader, before any result folder
exists): networkx generator graphs, CSV traces, vehicle plans (a trace read, or a SUMO run planned), districts and
street files, and the `learning:` block. Every error is a ScenarioError naming the YAML path (and, for a bad file,
its line). The runtime objects built from these come later (deployments, mobility, vehicles, learning)."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import ValidationError

from . import scenario as S
from . import sumo
from .deployments import LAYOUT_LIMITS, graph_layout
from .errors import ScenarioError, format_path, from_validation_error
from .generators import MAX_GRAPH_EDGES, GraphTooLarge, bounded_call
from .safexml import FileFormatError
from .streets import StreetNetwork, read_districts, read_net
from .traces import RecordedTrace, TimeMap, load_recorded_trace, trace_format

__all__ = ["build_generator_graph", "read_trace", "ReplayPlan", "LivePlan", "resolve_vehicles", "default_city_cache",
           "regions_from_file", "read_streets", "resolve_file", "configure_learning"]


# ---------------------------------------------------------------------------------------------- files
def regions_from_file(name: str, base_dir: Path) -> list[S.RegionSpec]:
    """The regions of `regions: {from_file: NAME}`: the districts of a districts file, in its order."""
    loc = ("regions", "from_file")
    path = resolve_file(name, base_dir, loc)
    try:
        districts = read_districts(path)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), format_path(loc)) from None
    out = []
    for d in districts:
        try:
            out.append(S.RegionSpec.model_validate({"name": d.name, "polygon": [list(p) for p in d.polygon]}))
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ScenarioError(f"{path}: district {d.name!r}: {reason}", format_path(loc)) from None
    if not out:
        raise ScenarioError(f"{path}: no districts", format_path(loc))
    return out


def read_streets(name: str, base_dir: Path) -> StreetNetwork:
    """The street network of `streets: NAME`: a streets JSON (fieldlearn.streets/1) or a SUMO network (.net.xml)."""
    path = resolve_file(name, base_dir, ("streets",))
    try:
        if path.name.lower().removesuffix(".gz").endswith(".json"):
            return StreetNetwork.from_json(path)
        return read_net(path)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), "streets") from None


def resolve_file(name: str, base_dir: Path, loc: tuple) -> Path:
    """A data file a scenario names, relative to the scenario's folder."""
    p = Path(name)
    candidate = p if p.is_absolute() else base_dir / p
    try:
        if candidate.is_file():
            return candidate
    except OSError as exc:
        raise ScenarioError(f"file {name[:80]!r}: not a usable path ({exc.strerror or exc})", format_path(loc)) from None
    raise ScenarioError(f"file {name!r} not found (relative paths start at {base_dir})", format_path(loc))


# ------------------------------------------------------------------------------------------- graphs
_ALLOWED_GENERATOR_MODULES = ("networkx.generators.", "networkx.algorithms.bipartite.generators")


def build_generator_graph(d: S.GraphDeployment, loc: tuple) -> Any:
    """Call the networkx generator named by a graph deployment (only functions of networkx.generators), stopped
    before it builds more than MAX_DEVICES nodes or MAX_GRAPH_EDGES edges (`generators.bounded_call`)."""
    import networkx as nx

    fn = getattr(nx, d.generator, None) if not d.generator.startswith("_") else None
    module = getattr(fn, "__module__", "") or ""
    if fn is None or not callable(fn) or not module.startswith(_ALLOWED_GENERATOR_MODULES):
        raise ScenarioError(f"{d.generator!r} is not a networkx graph generator", format_path(loc + ("generator",)))
    if "create_using" in d.params:
        raise ScenarioError("set by the simulator (graphs are built bounded)", format_path(loc + ("params", "create_using")))
    try:
        g = bounded_call(d.generator, fn, dict(d.params))
    except GraphTooLarge as exc:
        raise ScenarioError(f"{d.generator}(**params) would build {exc}", format_path(loc + ("params",))) from None
    except Exception as exc:  # third-party code fed user parameters: any failure is a bad input
        raise ScenarioError(f"{d.generator}(**params) failed: {type(exc).__name__}: {exc}", format_path(loc + ("params",))) from None
    if not isinstance(g, nx.Graph):
        raise ScenarioError(f"{d.generator} did not return a graph", format_path(loc + ("generator",)))
    if g.number_of_nodes() == 0:
        raise ScenarioError("the generated graph has no nodes", format_path(loc + ("params",)))
    if g.number_of_nodes() > S.MAX_DEVICES:
        raise ScenarioError(f"too many nodes ({g.number_of_nodes():,} > {S.MAX_DEVICES:,})", format_path(loc + ("params",)))
    if g.number_of_edges() > MAX_GRAPH_EDGES:
        raise ScenarioError(f"too many edges ({g.number_of_edges():,} > {MAX_GRAPH_EDGES:,})", format_path(loc + ("params",)))
    if d.layout == "pos" and not all("pos" in a for _, a in g.nodes(data=True)):
        raise ScenarioError("layout 'pos' needs a 'pos' attribute on every node", format_path(loc + ("layout",)))
    if d.layout == "grid" and not all(isinstance(v, tuple) and len(v) == 2 for v in g.nodes):
        raise ScenarioError("layout 'grid' needs nodes labelled (row, col)", format_path(loc + ("layout",)))
    layout = graph_layout(d, g)
    most = LAYOUT_LIMITS.get(layout)
    if most is not None and g.number_of_nodes() > most:
        raise ScenarioError(f"layout {layout!r} places at most {most:,} nodes (its time grows faster than the nodes; "
                            f"this graph has {g.number_of_nodes():,}): choose layout circular, random or spectral",
                            format_path(loc + ("layout",)))
    return g


# ------------------------------------------------------------------------------------------- traces
def read_trace(path: Path, count: int, loc: tuple) -> np.ndarray:
    """Rows (time, device, x, y) of a trace CSV sorted by device then time; checked against the deployment size."""
    where = format_path(loc)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}", where) from None
    if not rows or [c.strip() for c in rows[0]] != ["time", "device", "x", "y"]:
        raise ScenarioError(f"{path}: the first line must be the header time,device,x,y", where)
    data = []
    for k, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            t, dev, x, y = float(row[0]), int(row[1]), float(row[2]), float(row[3])
        except (ValueError, IndexError):
            raise ScenarioError(f"{path} line {k}: expected numbers time,device,x,y, got {','.join(row)!r}", where) from None
        if not all(np.isfinite([t, x, y])):
            raise ScenarioError(f"{path} line {k}: values must be finite", where)
        if not 0 <= dev < count:
            raise ScenarioError(f"{path} line {k}: device {dev} out of range (the deployment has {count} devices)", where)
        data.append((t, dev, x, y))
    if not data:
        raise ScenarioError(f"{path}: no samples", where)
    arr = np.asarray(data, dtype=np.float64)
    order = np.lexsort((arr[:, 0], arr[:, 1]))
    arr = arr[order]
    dup = (np.diff(arr[:, 1]) == 0) & (np.diff(arr[:, 0]) == 0)
    if dup.any():
        raise ScenarioError(f"{path}: device {int(arr[1:][dup][0, 1])} has two samples at time {arr[1:][dup][0, 0]}", where)
    return arr


# ------------------------------------------------------------------------------------------ vehicles
FindFile = Callable[[str, tuple], Path]  # a file a scenario names (relative to its folder) -> its path


@dataclass(frozen=True)
class ReplayPlan:
    """A recorded trace to replay, and how simulator time maps to its seconds."""

    trace: RecordedTrace
    timemap: TimeMap

    @property
    def count(self) -> int:
        return len(self.trace)


@dataclass(frozen=True)
class LivePlan:
    """A SUMO run to drive live: its options, the binding, how many vehicles it may insert, how simulator time maps to
    SUMO's seconds, and `stop`: the SUMO second at which the scenario ends (the run is closed there)."""

    run: sumo.SumoRun
    timemap: TimeMap
    backend: str
    count: int
    stop: float


def default_city_cache() -> Path:
    """Where generated cities are kept unless a scenario says (`sumo.cache`): the user's cache folder."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "fieldlearn" / "sumo"


def resolve_vehicles(d: S.VehiclesDeployment, loc: tuple, base_dir: Path, find: FindFile,
                     end_time: float) -> ReplayPlan | LivePlan:
    """What a vehicle deployment at YAML path `loc` needs before the run: its trace read, or its SUMO run planned
    (nothing here depends on the scenario's seed: `LoadedScenario.with_seed` keeps the plans)."""
    timemap = TimeMap(d.time.start, d.time.scale)
    if d.trace is not None:
        return _replay_plan(d.trace, loc + ("trace",), find, timemap)
    assert d.sumo is not None
    return _live_plan(d.sumo, loc + ("sumo",), base_dir, find, end_time, timemap)


def _replay_plan(src: S.TraceSource, loc: tuple, find: FindFile, timemap: TimeMap) -> ReplayPlan:
    path = find(src.file, loc + ("file",))
    where = format_path(loc + ("file",))
    try:
        fmt = trace_format(path) if src.format == "auto" else src.format
        if src.coords != "auto" and fmt != "fcd":
            raise ScenarioError(f"coords applies to SUMO FCD traces only (this one is {fmt})",
                                format_path(loc + ("coords",)))
        trace = load_recorded_trace(path, fmt, src.coords)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), where) from None
    return ReplayPlan(trace, timemap)


def _live_plan(src: S.SumoSource, loc: tuple, base_dir: Path, find: FindFile, end_time: float,
               timemap: TimeMap) -> LivePlan:
    why = (sumo.sumo_missing() if src.city is not None else None) or sumo.binding_missing(src.backend)
    if why is not None:
        raise ScenarioError(f"a live SUMO run needs SUMO here: {why} (a recorded trace replays without it: `trace:`)",
                            format_path(loc))
    declared: dict[str, float] = {}  # begin, end, step-length from a configuration or a city
    options: tuple[str, ...] = ()
    run_seed = 0
    if src.city is not None:
        net, routes, declared = _city(src, loc + ("city",), base_dir)
        run_seed = src.city.seed
    elif src.config is not None:
        net, routes, declared, cfg_seed, cfg = _configured(src, loc + ("config",), find)
        options = ("--configuration-file", str(cfg))
        run_seed = cfg_seed if cfg_seed is not None else 0
    else:
        assert src.net is not None and src.routes is not None
        net = find(src.net, loc + ("net",))
        routes = tuple(find(r, loc + ("routes", j)) for j, r in enumerate(src.routes))
    step = src.step_length or declared.get("step-length", 1.0)
    begin = src.begin if src.begin is not None else declared.get("begin", 0.0)
    stop = float(timemap.source_time(end_time))
    end = src.end or declared.get("end") or math.inf
    end = min(end, stop + 2 * step)  # one step past the scenario's end is all the run needs (and then it closes)
    if not end > begin:
        raise ScenarioError(f"SUMO would run from {begin:g} s to {end:g} s: nothing to drive", format_path(loc))
    count = src.vehicles
    if count is None:
        try:
            count = sumo.route_vehicles(routes)
        except FileFormatError as exc:
            raise ScenarioError(str(exc), format_path(loc + ("routes",))) from None
        if count == 0:
            raise ScenarioError("the route files insert no vehicle", format_path(loc + ("routes",)))
    run = sumo.SumoRun(Path(net), tuple(Path(r) for r in routes), end=end, begin=begin, step_length=step,
                       seed=src.seed if src.seed is not None else run_seed, options=options)
    return LivePlan(run, timemap, src.backend, int(count), stop)


def _city(src: S.SumoSource, loc: tuple, base_dir: Path) -> tuple[Path, tuple[Path, ...], dict[str, float]]:
    """The generated city of `sumo.city`, built into its cache folder unless already there."""
    keys = src.city
    assert keys is not None
    try:
        spec = sumo.CitySpec(network=keys.network, blocks=(keys.blocks[0], keys.blocks[1]),
                             block_length=keys.block_length,
                             lanes=keys.lanes, vehicles=keys.vehicles, depart_end=keys.depart_end,
                             duration=keys.duration, min_trip=keys.min_trip, seed=keys.seed,
                             step_length=src.step_length or 1.0)
    except ValueError as exc:
        raise ScenarioError(str(exc), format_path(loc)) from None
    cache = (base_dir / src.cache) if src.cache is not None else default_city_cache()
    try:
        city = sumo.build_city(spec, cache)
    except (sumo.SumoFailed, sumo.SumoUnavailable, OSError) as exc:
        raise ScenarioError(f"generating the city failed: {exc}", format_path(loc)) from None
    return city.net, (city.routes,), {"end": spec.duration}


def _configured(src: S.SumoSource, loc: tuple, find: FindFile
                ) -> tuple[Path, tuple[Path, ...], dict[str, float], int | None, Path]:
    """Network, route files, times and seed of a SUMO configuration file."""
    assert src.config is not None
    cfg = find(src.config, loc)
    where = format_path(loc)
    try:
        options = sumo.read_sumo_config(cfg)
    except FileFormatError as exc:
        raise ScenarioError(str(exc), where) from None
    missing = [k for k in ("net-file", "route-files") if k not in options]
    if missing:
        raise ScenarioError(f"{cfg}: the configuration names no {' and no '.join(missing)}", where)

    def named(value: str) -> Path:
        p = Path(value.strip())
        p = p if p.is_absolute() else cfg.parent / p
        if not p.is_file():
            raise ScenarioError(f"{cfg}: file {value.strip()!r} not found (relative paths start at {cfg.parent})",
                                where)
        return p

    net = named(options["net-file"])
    routes = tuple(named(r) for r in options["route-files"].split(",") if r.strip())
    declared = {}
    for key in ("begin", "end", "step-length"):
        if key in options:
            try:
                declared[key] = float(options[key])
            except ValueError:
                raise ScenarioError(f"{cfg}: {key} must be a number of seconds (got {options[key]!r})", where) from None
    cfg_seed = None
    if "seed" in options:
        try:
            cfg_seed = int(options["seed"])
        except ValueError:
            raise ScenarioError(f"{cfg}: seed must be an integer (got {options['seed']!r})", where) from None
    return net, routes, declared, cfg_seed, cfg



# ------------------------------------------------------------------------------------------ learning
def configure_learning(raw: Any, scenario: S.Scenario) -> Any:
    """The validated `learning:` block (ScenarioError naming `learning.<key>`)."""
    if not scenario.regions:
        raise ScenarioError("a learning scenario needs `regions`: data are partitioned over them", "regions")
    from fieldlearn.learning import LearningConfig  # torch is imported only for scenarios that learn

    try:
        return LearningConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise from_validation_error(exc, raw if isinstance(raw, dict) else {}, ("learning",)) from None


