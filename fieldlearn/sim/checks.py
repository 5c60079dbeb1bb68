"""Cross-field checks of a validated Scenario (names defined, ids in range, files present), with YAML paths."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from . import scenario as S
from .errors import ScenarioError, format_path
from .programs import locate_program


def check_scenario(s: "S.Scenario") -> None:
    """Raise ScenarioError for the first cross-reference problem of `s` (pydantic checked each block alone)."""
    regions = _check_regions(s)
    if not (s.end_time < 1e15):
        raise ScenarioError(f"the run would end at time {s.end_time:g}; choose fewer rounds or a shorter period", "duration")
    for i, d in enumerate(s.deployments):
        _check_deployment(d, ("deployments", i), regions, s)
    for i, f in enumerate(s.faults):
        if isinstance(f, S.JoinFault):
            _check_deployment(f.deployment, ("faults", i, "deployment"), regions, s)
    total = s.capacity
    if total > S.MAX_DEVICES:
        raise ScenarioError(f"too many devices in all ({total} > {S.MAX_DEVICES})", "deployments")
    _check_sensors(s, regions, total)
    if isinstance(s.links, S.FixedLinks):
        for j, (a, b) in enumerate(s.links.edges):
            if max(a, b) >= total:
                raise ScenarioError(f"device id {max(a, b)} out of range (there are {total} devices)", f"links.edges[{j}]")
    cuts: list[str] = []
    for i, f in enumerate(s.faults):
        base = ("faults", i)
        for name in ("devices",):
            sel = getattr(f, name, None)
            if sel is not None:
                _check_selector(sel, base + (name,), regions, s, total)
        if isinstance(f, S.MoveFault) and f.region is not None:
            _need_region(f.region, base + ("region",), regions)
        if isinstance(f, S.CutFault):
            for j, (a, b) in enumerate(f.pairs):
                if max(a, b) >= total:
                    raise ScenarioError(f"device id {max(a, b)} out of range (there are {total} devices)", format_path(base + ("pairs", j)))
            if f.name is not None:
                cuts.append(f.name)
        if isinstance(f, S.RestoreFault) and f.name is not None and f.name not in cuts:
            raise ScenarioError(f"no cut named {f.name!r} before it", format_path(base + ("name",)))
        if isinstance(f, S.SensorFault) and f.sensor not in s.sensor_names():
            known = ", ".join(s.sensor_names()) or "none"
            raise ScenarioError(f"unknown sensor {f.sensor!r} (scenario sensors: {known})", format_path(base + ("sensor",)))
    _check_exports(s)
    s._program_location = locate_program(s.program.name, s.program.function, s.base_dir)


def _check_regions(s: "S.Scenario") -> list[str]:
    names: list[str] = []
    for i, r in enumerate(s.regions):
        if r.name in names:
            raise ScenarioError(f"duplicate region name {r.name!r}", f"regions[{i}].name")
        names.append(r.name)
    return names


def _need_region(name: str, loc: tuple, regions: list[str]) -> None:
    if name not in regions:
        known = ", ".join(regions) if regions else "no regions are defined"
        raise ScenarioError(f"region {name!r} is not defined ({known})", format_path(loc))


def _check_deployment(d: Any, loc: tuple, regions: list[str], s: "S.Scenario") -> None:
    if isinstance(d, S.RandomDeployment) and d.region is not None:
        _need_region(d.region, loc + ("region",), regions)
    if isinstance(d, S.GraphDeployment):
        d._graph = build_generator_graph(d, loc)
    n = d.n_devices
    for name, v in d.sensors.items():
        if name in S.RESERVED_SENSORS:
            raise ScenarioError(f"{name!r} is a built-in sensor and cannot be set", format_path(loc + ("sensors", name)))
        if isinstance(v, list) and len(v) != n:
            raise ScenarioError(f"{len(v)} values for {n} devices", format_path(loc + ("sensors", name)))
    m = d.mobility
    mloc = loc + ("mobility",)
    if isinstance(m, S.Tour):
        for j, stop in enumerate(m.stops):
            if isinstance(stop, str):
                _need_region(stop, mloc + ("stops", j), regions)
        for name in ("dwell", "dwell_time"):
            v = getattr(m, name)
            if isinstance(v, list) and len(v) != len(m.stops):
                raise ScenarioError(f"{len(v)} dwell values for {len(m.stops)} stops", format_path(mloc + (name,)))
    if isinstance(m, S.RandomWaypoint) and m.region is not None:
        _need_region(m.region, mloc + ("region",), regions)
    if isinstance(m, S.Trace):
        m._data = read_trace(resolve_file(m.file, s.base_dir, mloc + ("file",)), n, mloc + ("file",))


def resolve_file(name: str, base_dir: Path, loc: tuple) -> Path:
    """A data file named in the scenario, relative to the scenario's folder (then the working folder)."""
    p = Path(name)
    for c in ([p] if p.is_absolute() else [base_dir / p, Path.cwd() / p]):
        if c.is_file():
            return c
    raise ScenarioError(f"file {name!r} not found (relative paths start at {base_dir})", format_path(loc))


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


_ALLOWED_GENERATOR_MODULES = ("networkx.generators.", "networkx.algorithms.bipartite.generators")


def build_generator_graph(d: "S.GraphDeployment", loc: tuple) -> Any:
    """Call the networkx generator named by a graph deployment (only functions of networkx.generators)."""
    import networkx as nx

    fn = getattr(nx, d.generator, None) if not d.generator.startswith("_") else None
    module = getattr(fn, "__module__", "") or ""
    if fn is None or not callable(fn) or not module.startswith(_ALLOWED_GENERATOR_MODULES):
        raise ScenarioError(f"{d.generator!r} is not a networkx graph generator", format_path(loc + ("generator",)))
    try:
        g = fn(**d.params)
    except Exception as exc:  # third-party code fed user parameters: any failure is a bad input
        raise ScenarioError(f"{d.generator}(**params) failed: {type(exc).__name__}: {exc}", format_path(loc + ("params",))) from None
    if not isinstance(g, nx.Graph):
        raise ScenarioError(f"{d.generator} did not return a graph", format_path(loc + ("generator",)))
    if g.number_of_nodes() == 0:
        raise ScenarioError("the generated graph has no nodes", format_path(loc + ("params",)))
    if g.number_of_nodes() > S.MAX_DEVICES:
        raise ScenarioError(f"too many nodes ({g.number_of_nodes()})", format_path(loc + ("params",)))
    if d.layout == "pos" and not all("pos" in a for _, a in g.nodes(data=True)):
        raise ScenarioError("layout 'pos' needs a 'pos' attribute on every node", format_path(loc + ("layout",)))
    if d.layout == "grid" and not all(isinstance(v, tuple) and len(v) == 2 for v in g.nodes):
        raise ScenarioError("layout 'grid' needs nodes labelled (row, col)", format_path(loc + ("layout",)))
    return g


def _check_selector(sel: "S.Selector", loc: tuple, regions: list[str], s: "S.Scenario", total: int) -> None:
    if sel.region is not None:
        _need_region(sel.region, loc + ("region",), regions)
    if sel.ids is not None:
        for j, i in enumerate(sel.ids):
            if i >= total:
                raise ScenarioError(f"device id {i} out of range (there are {total} devices)", format_path(loc + ("ids", j)))
    if sel.deployment is not None:
        deps = s.deployments
        if isinstance(sel.deployment, int) and sel.deployment >= len(deps):
            raise ScenarioError(f"there are {len(deps)} deployments", format_path(loc + ("deployment",)))
        if isinstance(sel.deployment, str) and sel.deployment not in [d.name for d in deps]:
            raise ScenarioError(f"no deployment named {sel.deployment!r}", format_path(loc + ("deployment",)))


def _check_sensors(s: "S.Scenario", regions: list[str], total: int) -> None:
    for name, spec in s.sensors.items():
        loc = ("sensors", name)
        if name in S.RESERVED_SENSORS:
            raise ScenarioError(f"{name!r} is a built-in sensor and cannot be set", format_path(loc))
        if isinstance(spec, S.SensorSpec):
            for j, item in enumerate(spec.set):
                _check_selector(item.devices, loc + ("set", j, "devices"), regions, s, total)


def _check_exports(s: "S.Scenario") -> None:
    e = s.exports
    for j, snap in enumerate(e.figures.snapshots):
        try:
            import matplotlib

            matplotlib.colormaps[snap.cmap]
        except KeyError:
            raise ScenarioError(f"unknown colour map {snap.cmap!r}", f"exports.figures.snapshots[{j}].cmap") from None
    files = [snap.file for snap in e.figures.snapshots if snap.file]
    for j, f in enumerate(files):
        if f in files[:j] or f in ("timeseries.png",):
            raise ScenarioError(f"file name {f!r} used twice", f"exports.figures.snapshots[{j}].file")
    for field in ("values", "per_device"):
        names = getattr(e, field)
        for j, n in enumerate(names):
            if n in names[:j]:
                raise ScenarioError(f"{n!r} listed twice", f"exports.{field}[{j}]")
            if n == "position":
                raise ScenarioError("'position' is not a per-device scalar; per-device CSV rows always hold x and y", f"exports.{field}[{j}]")
