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

    def inbox_links(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The CSR rows of the devices in `batch` (in batch order): (indptr over the batch, neighbours, lengths)."""
        batch = np.asarray(batch, dtype=np.int64)
        n = self.n_devices
        if len(batch) == n and (n == 0 or (batch[0] == 0 and batch[-1] == n - 1 and bool((np.diff(batch) == 1).all()))):
            return self.indptr, self.neighbours, self.distance
        starts = self.indptr[batch]
        counts = self.indptr[batch + 1] - starts
        indptr = np.zeros(len(batch) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        links = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])
        return indptr, self.neighbours[links], self.distance[links]


def graph_from_edges(n: int, src: np.ndarray, dst: np.ndarray, distance: np.ndarray | None = None) -> Graph:
    """CSR graph where device `src[k]` hears device `dst[k]`; self-loops and duplicates removed.

    Links are ordered by (src, dst); of duplicate links the first one given keeps its distance.
    """
    src = np.asarray(src, dtype=np.int64).reshape(-1)
    dst = np.asarray(dst, dtype=np.int64).reshape(-1)
    dist = None if distance is None else np.asarray(distance, dtype=np.float64).reshape(-1)
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must be device ids in [0, {n})")
    keep = src != dst
    if not keep.all():
        src, dst = src[keep], dst[keep]
        dist = None if dist is None else dist[keep]
    key = src * n + dst  # one int64 sort key per link: (src, dst) order
    m = len(key)
    if dist is None:
        key = np.sort(key)
        order = None
    elif m and n * n <= (2**62) // m:
        # a stable sort as one plain integer sort: the entry index rides in the low digits of the key
        packed = np.sort(key * m + np.arange(m))
        order = packed % m
        key = packed // m
    else:
        order = np.argsort(key, kind="stable")
        key = key[order]
    if m > 1:
        first = np.empty(m, dtype=bool)
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        if not first.all():
            key = key[first]
            order = None if order is None else order[first]
    neighbours = key % n if n else key
    indptr = np.searchsorted(key, np.arange(n + 1, dtype=np.int64) * n)
    if dist is None:
        dist = np.ones(len(key))
    else:
        dist = dist[order]
    return Graph(indptr, neighbours, dist)


def radius_graph(positions: np.ndarray, radius: float) -> Graph:
    """Symmetric graph linking devices closer than `radius` (KD-tree search), with Euclidean link lengths."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=np.float64)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    n = len(positions)
    pairs = cKDTree(positions).query_pairs(radius, output_type="ndarray")
    a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    # both directions of unique pairs: no duplicates, so one sort of the keys alone, lengths measured afterwards
    g = graph_from_edges(n, np.concatenate([a, b]), np.concatenate([b, a]))
    rows, d2 = g.rows(), np.zeros(g.n_links)
    for c in range(positions.shape[1]):  # sqrt of the sum of squares, as np.linalg.norm(axis=1) sums them
        x = np.ascontiguousarray(positions[:, c])
        diff = x[rows] - x[g.neighbours]
        d2 += diff * diff
    return Graph(g.indptr, g.neighbours, np.sqrt(d2, out=d2))


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
    g = graph_from_edges(n, np.concatenate([src, dst]), np.concatenate([dst, src]))  # duplicates: same length
    rows, d2 = g.rows(), np.zeros(g.n_links)
    for c in range(positions.shape[1]):
        x = np.ascontiguousarray(positions[:, c])
        diff = x[rows] - x[g.neighbours]
        d2 += diff * diff
    return Graph(g.indptr, g.neighbours, np.sqrt(d2, out=d2))


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
