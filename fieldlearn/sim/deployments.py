"""Where a deployment's devices start: grid (with jitter), random inside an area, explicit points, networkx graph
layouts; one function per `deployments:` kind, built by `PLACEMENTS.build(spec, rng, regions, graph)` (`place`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from . import scenario as S
from .kinds import Kinds
from .regions import Regions, generator_uniform, sample_in_polygon

PLACEMENTS = Kinds("deployment")


@dataclass
class Placement:
    """Positions of a deployment's devices and, for graph deployments, their edges (local indices)."""

    positions: np.ndarray
    edges: np.ndarray  # (m, 2) int64, local indices


def area_polygon(region: str | None, polygon: list | None, box: list | None, regions: Regions) -> Polygon:
    """The polygon named by a region / polygon / box triple (exactly one of them is set)."""
    if region is not None:
        return regions.polygon(region)
    if polygon is not None:
        return Polygon(polygon)
    return Polygon(S.box_polygon(box))  # type: ignore[arg-type]


def place(dep: S.GridDeployment | S.RandomDeployment | S.PointsDeployment | S.GraphDeployment,
          rng: np.random.Generator, regions: Regions, graph: Any = None) -> Placement:
    """Where the devices of one deployment start (`graph`: a graph deployment's built networkx graph)."""
    return PLACEMENTS.build(dep, rng, regions, graph)


_NO_EDGES = np.zeros((0, 2), dtype=np.int64)
_NO_EDGES.flags.writeable = False


@PLACEMENTS.register(S.GridDeployment)
def _grid(dep: S.GridDeployment, rng: np.random.Generator, regions: Regions, graph: Any) -> Placement:
    rows, cols = dep.shape()
    n = dep.n_devices
    k = np.arange(n)
    pos = np.column_stack([k % cols, k // cols]).astype(np.float64) * dep.spacing + np.asarray(dep.origin)
    if dep.jitter > 0:
        pos += rng.uniform(-dep.jitter, dep.jitter, size=(n, 2))
    return Placement(pos, _NO_EDGES)


@PLACEMENTS.register(S.RandomDeployment)
def _random(dep: S.RandomDeployment, rng: np.random.Generator, regions: Regions, graph: Any) -> Placement:
    poly = area_polygon(dep.region, dep.polygon, dep.box, regions)
    return Placement(sample_in_polygon(poly, dep.count, generator_uniform(rng, dep.count)), _NO_EDGES)


@PLACEMENTS.register(S.PointsDeployment)
def _points(dep: S.PointsDeployment, rng: np.random.Generator, regions: Regions, graph: Any) -> Placement:
    return Placement(np.asarray(dep.points, dtype=np.float64).reshape(-1, 2), _NO_EDGES)


@PLACEMENTS.register(S.GraphDeployment)
def _graph(dep: S.GraphDeployment, rng: np.random.Generator, regions: Regions, g: Any) -> Placement:
    import networkx as nx

    nodes = list(g.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.asarray([(index[u], index[v]) for u, v in g.edges], dtype=np.int64).reshape(-1, 2)
    layout = graph_layout(dep, g)
    seed = int(rng.integers(2**31))
    if layout == "pos":
        pos = np.asarray([g.nodes[v]["pos"][:2] for v in nodes], dtype=np.float64)
    elif layout == "grid":
        pos = np.asarray([(v[1], v[0]) for v in nodes], dtype=np.float64)
    elif layout == "spring":
        lay = nx.spring_layout(g, seed=seed)
        pos = np.asarray([lay[v] for v in nodes], dtype=np.float64)
    elif layout == "random":
        pos = rng.random((len(nodes), 2))
    else:
        fn = {"circular": nx.circular_layout, "shell": nx.shell_layout, "spectral": nx.spectral_layout,
              "kamada_kawai": nx.kamada_kawai_layout}[layout]
        lay = fn(g) if len(nodes) > 2 or layout != "spectral" else nx.circular_layout(g)
        pos = np.asarray([lay[v] for v in nodes], dtype=np.float64)
    pos = pos.reshape(-1, 2) * dep.scale + np.asarray(dep.origin)
    return Placement(pos, edges)


LAYOUT_LIMITS = {"spring": 5_000, "kamada_kawai": 1_000, "spectral": 100_000}


def graph_layout(dep: S.GraphDeployment, g: Any) -> str:
    """The layout a graph deployment uses: its own, or for `auto` the nodes' `pos`, a (row, col) grid, else spring."""
    if dep.layout != "auto":
        return dep.layout
    if all("pos" in a for _, a in g.nodes(data=True)):
        return "pos"
    if all(isinstance(v, tuple) and len(v) == 2 for v in g.nodes):
        return "grid"
    return "spring"
