"""Cross-block checks of a validated Scenario (names defined, ids in range, sizes), with YAML paths: pure checks,
nothing is built or read here (the loader builds graphs and reads traces)."""
from __future__ import annotations

from typing import Any, Sequence

from . import scenario as S
from .errors import ScenarioError, format_path


#: The shortest leg of a mobility model, in rounds: at most 100 legs (stops, waypoints) per device per round.
MIN_LEG_ROUNDS = 0.01


def check_scenario(s: "S.Scenario", counts: Sequence[int]) -> None:
    """Raise ScenarioError for the first cross-reference problem of `s` (pydantic checked each block alone);
    `counts` are the devices of every deployment (initial ones, then joins)."""
    regions = _check_regions(s)
    _check_areas(s)
    if not (s.end_time < 1e15):
        raise ScenarioError(f"the run would end at time {s.end_time:g}; choose fewer rounds or a shorter period", "duration")
    for loc, d, n in zip(S.deployment_paths(s), s.all_deployments(), counts):
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


def _check_areas(s: "S.Scenario") -> None:
    """Every area that random points are drawn from (random deployments, tour stops, waypoints, move faults) covers
    enough of its bounding box, and no mobility model makes more than 1 / MIN_LEG_ROUNDS legs per round."""
    polygons = {r.name: r.points() for r in s.regions}
    for loc, d in zip(S.deployment_paths(s), s.all_deployments()):
        if isinstance(d, S.RandomDeployment):
            _sampled(d.region, d.polygon, polygons, loc)
        m, mloc = d.mobility, loc + ("mobility",)
        if isinstance(m, S.Tour):
            if m.placement == "random":
                for j, stop in enumerate(m.stops):
                    if isinstance(stop, str) and stop in polygons:
                        _sampled(stop, None, polygons, mloc + ("stops", j), "region " + repr(stop))
            _check_dwell(m, mloc, s.period)
        if isinstance(m, S.RandomWaypoint):
            _sampled(m.region, m.polygon, polygons, mloc)
            _check_waypoints(m, mloc, s.period, polygons)
    for i, f in enumerate(s.faults):
        if isinstance(f, S.MoveFault) and f.region is not None:
            _sampled(f.region, None, polygons, ("faults", i))


def _sampled(region: str | None, polygon: list | None, polygons: dict[str, list], loc: tuple,
             what: str | None = None) -> None:
    from shapely.geometry import Polygon

    from .regions import MIN_FILL, fill_ratio

    points = polygons.get(region) if region is not None else polygon
    if points is None:
        return  # a box (a rectangle fills its bounding box), or an undefined region (reported by the other checks)
    ratio = fill_ratio(Polygon(points))
    if ratio < MIN_FILL:
        where = loc + (("region",) if region is not None and what is None else ("polygon",) if what is None else ())
        raise ScenarioError(f"{what or ('region ' + repr(region) if region else 'the polygon')} covers {ratio:.2g} of "
                            f"its bounding box; random points are drawn inside it by rejection, which needs at least "
                            f"{MIN_FILL:g}: use a wider area", format_path(where))


def _check_dwell(m: "S.Tour", loc: tuple, period: float) -> None:
    rounds, name = (m.dwell, "dwell") if m.dwell is not None else (m.dwell_time, "dwell_time")
    values = rounds if isinstance(rounds, list) else [rounds]
    least = MIN_LEG_ROUNDS if name == "dwell" else MIN_LEG_ROUNDS * period
    for j, v in enumerate(values):
        if v is not None and v < least:
            at = loc + ((name, j) if isinstance(rounds, list) else (name,))
            unit = "of a round" if name == "dwell" else f"of the period {period:g}"
            raise ScenarioError(f"must be >= {least:g} (a hundredth {unit}): shorter stays make more legs per round than "
                                "a run can compute", format_path(at))


def _check_waypoints(m: "S.RandomWaypoint", loc: tuple, period: float, polygons: dict[str, list]) -> None:
    """A waypoint about a third of the area's extent away, at the top speed, plus the shortest pause: a leg."""
    from shapely.geometry import Polygon

    points = polygons.get(m.region) if m.region is not None else m.polygon
    if m.box is not None:
        points = S.box_polygon(m.box)
    if points is None:
        return
    x0, y0, x1, y1 = Polygon(points).bounds
    speed = max(m.speed) if isinstance(m.speed, list) else m.speed
    pause = m.pause if m.pause is not None else m.pause_time
    least_pause = (min(pause) if isinstance(pause, list) else pause or 0.0) * (period if m.pause is not None else 1.0)
    leg = max(x1 - x0, y1 - y0) / 3 / speed + least_pause
    if leg < MIN_LEG_ROUNDS * period:
        raise ScenarioError(f"at this speed a device reaches a waypoint about every {leg:.3g} time units, more than "
                            f"{1 / MIN_LEG_ROUNDS:g} waypoints per round (period {period:g}); lower the speed or add a "
                            "pause", format_path(loc + ("speed",)))


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


#: The most rows (metrics.csv, or per device in devices.csv) and frames (animation, viewer) a run may record when
#: asked to record more often than once a round (once a round, the rounds bound them).
MAX_ROWS = 1_000_000
MAX_FRAMES = 10_000


def _check_intervals(s: "S.Scenario") -> None:
    e = s.exports
    asked = [("exports.interval", e.interval, MAX_ROWS, "rows"),
             ("exports.per_device_interval", e.per_device_interval, MAX_ROWS, "rows per device"),
             ("exports.animation.every", e.animation.every if e.animation is not None else None, MAX_FRAMES, "frames"),
             ("exports.viewer.every", getattr(e.viewer, "every", None), MAX_FRAMES, "frames")]
    for where, every, most, what in asked:
        if every is not None and every < s.period and s.end_time / every > most:
            n = s.end_time / every
            count = f"{n:,.0f}" if n < 1e12 else f"{n:.2g}"
            raise ScenarioError(f"every {every:g} records {count} {what} over the run (at most "
                                f"{most:,} when more often than once a round): choose a larger interval", where)


def _check_exports(s: "S.Scenario") -> None:
    _check_intervals(s)
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
