"""A static network of devices for running programs without the simulator: CSR neighbour lists and link lengths."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np


@dataclass(frozen=True)
class Graph:
    """Directed neighbour lists in CSR form: the neighbours of device i are `neighbours[indptr[i]:indptr[i+1]]`."""

    indptr: np.ndarray
    neighbours: np.ndarray
    distance: np.ndarray

    @property
    def n_devices(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_links(self) -> int:
        return len(self.neighbours)

    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self) -> np.ndarray:
        """The receiving device of every link."""
        return np.repeat(np.arange(self.n_devices), self.degree())

    def edge_list(self) -> list[tuple[int, int]]:
        return list(zip(self.rows().tolist(), self.neighbours.tolist()))


def graph_from_edges(n: int, src: np.ndarray, dst: np.ndarray, distance: np.ndarray | None = None) -> Graph:
    """CSR graph where device `src[k]` hears device `dst[k]`; self-loops and duplicates removed."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    dist = np.ones(len(src)) if distance is None else np.asarray(distance, dtype=np.float64)
    if len(src) and (src.min() < 0 or dst.min() < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must be device ids in [0, {n})")
    keep = src != dst
    src, dst, dist = src[keep], dst[keep], dist[keep]
    order = np.lexsort((dst, src))
    src, dst, dist = src[order], dst[order], dist[order]
    if len(src):
        first = np.ones(len(src), dtype=bool)
        first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
        src, dst, dist = src[first], dst[first], dist[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return Graph(indptr, dst, dist)


def radius_graph(positions: np.ndarray, radius: float) -> Graph:
    """Symmetric graph linking devices closer than `radius` (KD-tree search), with Euclidean link lengths."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=np.float64)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    pairs = cKDTree(positions).query_pairs(radius, output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dist = np.linalg.norm(positions[src] - positions[dst], axis=1) if len(src) else np.zeros(0)
    return graph_from_edges(len(positions), src, dst, dist)


def knn_graph(positions: np.ndarray, k: int) -> Graph:
    """Symmetrised k-nearest-neighbour graph (KD-tree search) with Euclidean link lengths."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    k = min(k, n - 1)
    if k <= 0:
        return graph_from_edges(n, np.zeros(0), np.zeros(0))
    _, idx = cKDTree(positions).query(positions, k=k + 1)
    src = np.repeat(np.arange(n), k)
    dst = idx[:, 1:].reshape(-1)
    src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    dist = np.linalg.norm(positions[src] - positions[dst], axis=1)
    return graph_from_edges(n, src, dst, dist)


@dataclass
class Network:
    """Devices, their links and their sensors: what `run` needs to execute a program without a simulator."""

    graph: Graph
    positions: np.ndarray | None = None
    sensors: dict[str, Any] = field(default_factory=dict)

    @property
    def n_devices(self) -> int:
        return self.graph.n_devices

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.n_devices)

    @classmethod
    def from_positions(cls, positions: Iterable, radius: float) -> "Network":
        """Devices at `positions` linked when closer than `radius`."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2:
            raise ValueError(f"positions must be an (n, dims) array, got shape {positions.shape}")
        return cls(radius_graph(positions, radius), positions)

    @classmethod
    def grid(cls, width: int, height: int, spacing: float = 1.0, radius: float = 1.5) -> "Network":
        """A width x height grid of devices `spacing` apart, linked within `radius`; ids run row by row."""
        xs, ys = np.meshgrid(np.arange(width) * spacing, np.arange(height) * spacing)
        return cls.from_positions(np.column_stack([xs.ravel(), ys.ravel()]), radius)

    @classmethod
    def random_geometric(cls, n: int, mean_degree: float = 8.0, seed: int = 0) -> "Network":
        """`n` devices uniform in a unit square, radius chosen for the given mean degree."""
        rng = np.random.default_rng(seed)
        positions = rng.random((n, 2))
        radius = float(np.sqrt(mean_degree / (np.pi * max(n - 1, 1))))
        return cls.from_positions(positions, radius)

    @classmethod
    def from_edges(
        cls, n: int, edges: Iterable[tuple[int, int]], distances: Iterable[float] | None = None, directed: bool = False
    ) -> "Network":
        """Devices 0..n-1 linked by `edges` (both ways unless `directed`), each of length 1 unless given."""
        edges = np.asarray(list(edges), dtype=np.int64).reshape(-1, 2)
        dist = np.ones(len(edges)) if distances is None else np.asarray(list(distances), dtype=np.float64)
        src, dst = edges[:, 0], edges[:, 1]
        if not directed:
            src, dst, dist = np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([dist, dist])
        return cls(graph_from_edges(n, src, dst, dist))

    @classmethod
    def from_networkx(cls, g: Any, weight: str = "weight") -> "Network":
        """Devices are the nodes of a networkx graph (relabelled 0..n-1 in node order); link length from `weight` or 1."""
        nodes = list(g.nodes)
        index = {v: i for i, v in enumerate(nodes)}
        edges = [(index[u], index[v]) for u, v in g.edges]
        dist = [float(d.get(weight, 1.0)) for _, _, d in g.edges(data=True)]
        net = cls.from_edges(len(nodes), edges, dist, directed=g.is_directed())
        pos = [g.nodes[v].get("pos") for v in nodes]
        if nodes and all(p is not None for p in pos):
            net.positions = np.asarray(pos, dtype=np.float64)
        return net

    def to_networkx(self) -> Any:
        """The network as a networkx graph with link lengths as `weight`."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.n_devices))
        rows = self.graph.rows()
        g.add_weighted_edges_from(zip(rows.tolist(), self.graph.neighbours.tolist(), self.graph.distance.tolist()))
        return g
