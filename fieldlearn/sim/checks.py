"""Cross-block checks of a validated Scenario (names defined, ids in range, sizes), with YAML paths: pure checks,
nothing is built or read here (the loader builds graphs and reads traces)."""
from __future__ import annotations

from typing import Any, Sequence

from . import scenario as S
from .errors import ScenarioError, format_path


def check_scenario(s: "S.Scenario", counts: Sequence[int]) -> None:
    """Raise ScenarioError for the first cross-reference problem of `s` (pydantic checked each block alone);
    `counts` are the devices of every deployment (initial ones, then joins)."""
    regions = _check_regions(s)
    if not (s.end_time < 1e15):
        raise ScenarioError(f"the run would end at time {s.end_time:g}; choose fewer rounds or a shorter period", "duration")
    joins = [i for i, f in enumerate(s.faults) if isinstance(f, S.JoinFault)]
    locs = [("deployments", i) for i in range(len(s.deployments))] + [("faults", i, "deployment") for i in joins]
    for loc, d, n in zip(locs, s.all_deployments(), counts):
        _check_deployment(d, loc, regions, n)
        if isinstance(d, S.VehiclesDeployment) and s.mobility_step is not None:
            raise ScenarioError("mobility_step does not apply to vehicles: they move with their trace or SUMO's steps "
                                "(map time with the deployment's `time`)", "mobility_step")
    total = int(sum(counts))
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


def _check_deployment(d: Any, loc: tuple, regions: list[str], n: int) -> None:
    if isinstance(d, S.RandomDeployment) and d.region is not None:
        _need_region(d.region, loc + ("region",), regions)
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
