"""Regions of the environment (shapely polygons): which region a point is in, and sampling points inside one."""
from __future__ import annotations

from typing import Callable

import numpy as np
import shapely
from shapely.geometry import Polygon


class Regions:
    """The named polygons of a scenario; `index_of` gives the first containing region (-1 when none)."""

    def __init__(self, names: list[str], polygons: list[list[list[float]]]):
        self.names = list(names)
        self.polygons = [Polygon(p) for p in polygons]
        for p in self.polygons:
            shapely.prepare(p)
        # axis-aligned rectangles (the common case) are tested with bounds alone
        self.rectangles = [abs(p.area - shapely.box(*p.bounds).area) <= 1e-12 * max(p.area, 1.0) for p in self.polygons]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def polygon(self, name: str) -> Polygon:
        return self.polygons[self.names.index(name)]

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """Region index of each (x, y) point: the first region in scenario order containing it, else -1."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(points), -1, dtype=np.int64)
        for i in range(len(self.polygons) - 1, -1, -1):
            if self.rectangles[i]:
                x0, y0, x1, y1 = self.polygons[i].bounds
                x, y = points[:, 0], points[:, 1]
                inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            else:
                inside = covers_xy(self.polygons[i], points)
            out[inside] = i
        return out


def covers_xy(poly: Polygon, points: np.ndarray) -> np.ndarray:
    """Whether each point lies in the polygon or on its boundary (vectorised, prepared geometry)."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    x0, y0, x1, y1 = poly.bounds
    box = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    out = np.zeros(len(points), dtype=bool)
    if box.any():
        sub = points[box]
        out[box] = shapely.intersects_xy(poly, sub[:, 0], sub[:, 1])
    return out


def sample_in_polygon(poly: Polygon, n: int, uniform: Callable[[int, int], np.ndarray], what: str = "polygon") -> np.ndarray:
    """`n` points uniform inside `poly` by rejection from its bounding box.

    `uniform(attempt, component)` returns n uniforms for that attempt, so a counter-based source makes each
    point depend only on its own counters.
    """
    x0, y0, x1, y1 = poly.bounds
    rectangle = is_rectangle(poly)
    out = np.empty((n, 2))
    todo = np.arange(n)
    for attempt in range(10_000):
        if len(todo) == 0:
            return out
        u = uniform(attempt, 0)
        v = uniform(attempt, 1)
        if len(todo) < n:
            u, v = u[todo], v[todo]
        cand = np.column_stack([x0 + u * (x1 - x0), y0 + v * (y1 - y0)])
        if rectangle:  # the interior of an axis-aligned rectangle: strictly inside its bounds
            cx, cy = cand[:, 0], cand[:, 1]
            ok = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
        else:
            ok = shapely.contains_xy(poly, cand[:, 0], cand[:, 1])
        if ok.all() and len(todo) == n:
            return cand
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    raise ValueError(f"could not sample points inside the {what}: it fills too little of its bounding box")


#: The least share of its bounding box an area that random points are drawn from must cover: rejection sampling
#: then fails with probability below 1e-40 per point (10,000 attempts), and takes 100 attempts at most on average.
MIN_FILL = 0.01


def fill_ratio(poly: Polygon) -> float:
    """The share of its bounding box that `poly` covers (the acceptance rate of `sample_in_polygon`)."""
    x0, y0, x1, y1 = poly.bounds
    box = (x1 - x0) * (y1 - y0)
    return float(poly.area / box) if box > 0 else 0.0


def is_rectangle(poly: Polygon) -> bool:
    """Whether the polygon is exactly an axis-aligned rectangle: its four corners in turn, no holes."""
    if len(poly.interiors) or poly.is_empty:
        return False
    ring = np.asarray(poly.exterior.coords)
    if len(ring) != 5:
        return False
    x0, y0, x1, y1 = poly.bounds
    if not (x0 < x1 and y0 < y1):
        return False
    corners = ring[:4]
    on_x = (corners[:, 0] == x0) | (corners[:, 0] == x1)
    on_y = (corners[:, 1] == y0) | (corners[:, 1] == y1)
    which = 2 * (corners[:, 0] == x1) + (corners[:, 1] == y1)  # the four distinct corners
    step = np.diff(ring, axis=0)
    axis_aligned = (step[:, 0] == 0) != (step[:, 1] == 0)  # every edge moves along exactly one axis
    return bool(on_x.all() and on_y.all() and len(set(which.tolist())) == 4 and axis_aligned.all())


def generator_uniform(rng: np.random.Generator, n: int) -> Callable[[int, int], np.ndarray]:
    """A `uniform(attempt, component)` source for `sample_in_polygon` drawing from a numpy Generator."""
    return lambda attempt, component: rng.random(n)
