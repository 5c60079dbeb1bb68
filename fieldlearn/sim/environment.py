"""The simulated world: device positions and liveness, regions, and the neighbour graph (a calculus CSR `Graph`)."""
from __future__ import annotations

import numpy as np

from fieldlearn.calculus.network import Graph

from .links import Cut, FixedRule, KnnRule, RadiusRule, filter_links
from .regions import Regions


class LazyRegion:
    """The `region` sensor handed to the VM: computed from positions only when a program senses it."""

    ndim = 1

    def __init__(self, env: "Environment"):
        self.env = env

    @property
    def shape(self) -> tuple[int]:
        return (self.env.capacity,)

    def __len__(self) -> int:
        return self.env.capacity

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        arr = self.env.region
        return arr if dtype is None else arr.astype(dtype)

    def __getitem__(self, index: object) -> np.ndarray:
        return self.env.region[index]


class Environment:
    """Positions, alive devices, regions and link rule; rebuilds the graph only after positions or links change."""

    def __init__(self, capacity: int, regions: Regions, rule: RadiusRule | KnnRule | FixedRule):
        self.capacity = capacity
        self.positions = np.zeros((capacity, 2))
        self.alive = np.zeros(capacity, dtype=bool)
        self.regions = regions
        self._region = np.full(capacity, -1, dtype=np.int64)
        self._region_stale = False
        self.rule = rule
        self.cuts: list[Cut] = []
        self._graph: Graph | None = None
        self.rebuilds = 0

    @property
    def region(self) -> np.ndarray:
        """Index of the region each device is in (-1: none), recomputed only when read after a move."""
        if self._region_stale:
            self._region[:] = self.regions.index_of(self.positions)
            self._region_stale = False
        return self._region

    # -- changes ---------------------------------------------------------------------------------------------
    def set_positions(self, ids: np.ndarray | slice, xy: np.ndarray) -> None:
        """Move devices `ids` to `xy`; the graph and region sensor follow lazily/immediately."""
        if isinstance(ids, slice):
            where: slice | np.ndarray = ids
            count = len(range(*ids.indices(self.capacity)))
        else:
            where = np.asarray(ids, dtype=np.int64)
            count = len(where)
        if count == 0:
            return
        xy = np.asarray(xy, dtype=np.float64).reshape(count, 2)
        if np.array_equal(self.positions[where], xy, equal_nan=True):  # NaN: an absent device (no position)
            return
        self.positions[where] = xy
        self._region_stale = len(self.regions) > 0
        self._graph = None

    def set_alive(self, ids: np.ndarray, alive: bool) -> None:
        self.alive[np.asarray(ids, dtype=np.int64)] = alive
        self._graph = None

    def add_cut(self, cut: Cut) -> None:
        self.cuts.append(cut)
        self._graph = None

    def restore(self, name: str | None) -> int:
        """Remove the cuts called `name` (all cuts when None); returns how many were removed."""
        before = len(self.cuts)
        self.cuts = [c for c in self.cuts if name is not None and c.name != name]
        self._graph = None
        return before - len(self.cuts)

    # -- graph -----------------------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The current link graph (rebuilt here if anything changed since the last build)."""
        if self._graph is None:
            g = self.rule.links(self.positions, self.alive)
            if self.cuts:
                src = g.rows()
                cut = np.zeros(len(src), dtype=bool)
                for c in self.cuts:
                    cut |= c.mask(src, g.neighbours, self.positions)
                keep = ~cut
                g = Graph(filter_links(g.indptr, keep), g.neighbours[keep], g.distance[keep])
            self._graph = g
            self.rebuilds += 1
        return self._graph
