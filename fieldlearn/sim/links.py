"""Link rules (radius with a Verlet skin, k-nearest, fixed graph) and link cuts, producing sorted edge lists."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort and compare neighbours: numpy 2's hash-based np.unique is slower here)."""
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) > 1 else a


def sorted_unique_edges(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges ordered by (src, dst), self-loops and duplicates removed."""
    key = sorted_unique(src.astype(np.int64) * n + dst.astype(np.int64))
    s, d = np.divmod(key, n)
    keep = s != d
    return s[keep], d[keep]


def _lengths(positions: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    diff = positions[src] - positions[dst]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


class RadiusRule:
    """Devices at distance <= radius are linked both ways.

    Candidate pairs within radius + skin come from a KD-tree and are only re-filtered by distance while no
    device has moved more than skin / 2 since the tree search (a Verlet list): the KD-tree runs again only when
    needed, and the re-filter works on each pair once, with integer gathers only.
    """

    def __init__(self, radius: float, skin: float = 0.0, adapt: bool = True):
        self.radius = float(radius)
        self.skin = float(skin)
        self.adapt = adapt and skin > 0
        self.ref: np.ndarray | None = None
        self.alive_ref: np.ndarray | None = None
        self.searches = 0
        self.steps = 0  # graph updates since the last KD-tree search

    # relative costs (measured): a KD-tree search per candidate pair and per device, against one re-filter per pair
    SEARCH_PER_PAIR, SEARCH_PER_DEVICE = 7.0, 35.0

    def _adapt(self, positions: np.ndarray, alive: np.ndarray) -> None:
        """Choose the skin that minimises the expected work per update, from the speed seen since the last search.

        Work per update ~ search(pairs, devices) * 2v / skin + pairs, with pairs ~ (radius + skin)^2: a wide skin
        re-filters more pairs every update, a narrow one searches more often. Deterministic: it depends only
        on the positions.
        """
        assert self.ref is not None
        moved = positions[alive] - self.ref[alive]
        if self.steps == 0 or len(moved) == 0:
            return
        far = float(np.sqrt(np.einsum("ij,ij->i", moved, moved).max()))
        r = self.radius
        if far > self.skin + r:  # devices jumped: a skin cannot save searches, keep it thin
            self.skin = r / 16
            return
        v = far / self.steps
        if v <= 0:
            return
        pairs0 = len(self.a) / (1 + self.skin / r) ** 2
        n = int(alive.sum())
        best, best_cost = self.skin, np.inf
        for s in r * np.array([1 / 16, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0]):
            pairs = pairs0 * (1 + s / r) ** 2
            cost = (self.SEARCH_PER_PAIR * pairs + self.SEARCH_PER_DEVICE * n) * 2 * v / s + pairs
            if cost < best_cost:
                best, best_cost = float(s), cost
        self.skin = best

    def _search(self, positions: np.ndarray, alive: np.ndarray) -> None:
        if self.adapt and self.ref is not None:
            self._adapt(positions, alive)
        self.steps = 0
        ids = np.flatnonzero(alive)
        n = len(positions)
        if len(ids) > 1:
            pairs = cKDTree(positions[ids]).query_pairs(self.radius + self.skin, output_type="ndarray")
            a, b = ids[pairs[:, 0]], ids[pairs[:, 1]]
        else:
            a = b = np.zeros(0, dtype=np.int64)
        m = len(a)
        # both directions grouped by source (one integer sort of source * 2m + entry; within a row, entry order)
        entries = 2 * m
        key = np.sort(np.concatenate([a, b]) * entries + np.arange(entries))
        entry = key % entries
        self.dst = np.concatenate([b, a])[entry]
        self.pair_of = entry % m if m else entry
        self.indptr = np.searchsorted(key, np.arange(n + 1) * entries)
        self.a, self.b = a, b
        self.ref = positions.copy()
        self.alive_ref = alive.copy()
        self.all_alive = bool(alive.all())
        self.searches += 1

    def _moved_too_far(self, positions: np.ndarray, alive: np.ndarray) -> bool:
        assert self.ref is not None
        moved = positions - self.ref if self.all_alive else positions[alive] - self.ref[alive]
        if len(moved) == 0:
            return False
        limit = (self.skin / 2) ** 2
        return bool(np.einsum("ij,ij->i", moved, moved).max() > limit) if self.skin > 0 else bool(np.any(moved))

    def links(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current links among `alive` devices as CSR: (indptr, neighbours, length)."""
        if self.ref is None or self.alive_ref is None or not np.array_equal(alive, self.alive_ref):
            self._search(positions, alive)
        elif self._moved_too_far(positions, alive):
            self._search(positions, alive)
        self.steps += 1
        x, y = positions[:, 0].copy(), positions[:, 1].copy()  # contiguous: faster gathers
        buf = self._buffers()
        d2, tmp = buf["d2"], buf["tmp"]
        np.take(x, self.a, out=d2)
        np.subtract(d2, np.take(x, self.b, out=tmp), out=d2)
        np.multiply(d2, d2, out=d2)
        np.take(y, self.a, out=tmp)
        np.subtract(tmp, np.take(y, self.b), out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(d2, tmp, out=d2)
        near = np.less_equal(d2, self.radius * self.radius, out=buf["near"])
        idx = np.flatnonzero(np.take(near, self.pair_of, out=buf["link"]))  # sorted: rows by binary search
        dist = np.take(d2, np.take(self.pair_of, idx))
        return np.searchsorted(idx, self.indptr), np.take(self.dst, idx), np.sqrt(dist, out=dist)

    def _buffers(self) -> dict[str, np.ndarray]:
        """Work arrays reused between updates (fresh large arrays every update cost page faults)."""
        m = len(self.a)
        if getattr(self, "_buf_size", -1) != m:
            self._buf = {"d2": np.empty(m), "tmp": np.empty(m), "near": np.empty(m, dtype=bool),
                         "link": np.empty(2 * m, dtype=bool)}
            self._buf_size = m
        return self._buf


def to_csr(n: int, src: np.ndarray, dst: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, neighbours, length) of links sorted by source."""
    return np.searchsorted(src, np.arange(n + 1)), dst, length


class KnnRule:
    """Each alive device links its k nearest alive devices; links are made symmetric."""

    def __init__(self, k: int):
        self.k = int(k)

    def links(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current links as CSR: (indptr, neighbours, length)."""
        return to_csr(len(positions), *self.edges(positions, alive))

    def edges(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.flatnonzero(alive)
        k = min(self.k, len(ids) - 1)
        if k <= 0:
            e = np.zeros(0, dtype=np.int64)
            return e, e, np.zeros(0)
        _, nn = cKDTree(positions[ids]).query(positions[ids], k=k + 1)
        a = np.repeat(ids, k)
        b = ids[nn[:, 1:].reshape(-1)]
        src, dst = sorted_unique_edges(len(positions), np.concatenate([a, b]), np.concatenate([b, a]))
        return src, dst, _lengths(positions, src, dst)


class FixedRule:
    """A fixed set of undirected edges; a link exists while both ends are alive."""

    def __init__(self, n: int, edges: np.ndarray, unit_lengths: bool):
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        self.src, self.dst = sorted_unique_edges(
            n, np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
        )
        self.unit = unit_lengths

    def links(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current links as CSR: (indptr, neighbours, length)."""
        return to_csr(len(positions), *self.edges(positions, alive))

    def edges(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = alive[self.src] & alive[self.dst]
        src, dst = self.src[keep], self.dst[keep]
        length = np.ones(len(src)) if self.unit else _lengths(positions, src, dst)
        return src, dst, length


class Cut:
    """Links removed while the cut is active: listed pairs, links crossing a wall polyline, links of some devices."""

    def __init__(self, name: str | None, n: int, pairs: np.ndarray, wall: np.ndarray | None, devices: np.ndarray | None):
        self.name = name
        self.n = n
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.keys = np.unique(np.concatenate([pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0]]))
        self.wall = None if wall is None else np.asarray(wall, dtype=np.float64).reshape(-1, 2)
        self.devices = None if devices is None else np.unique(np.asarray(devices, dtype=np.int64))

    def mask(self, src: np.ndarray, dst: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """True for the links (src[i], dst[i]) this cut removes."""
        out = np.zeros(len(src), dtype=bool)
        if len(self.keys):
            out |= np.isin(src * self.n + dst, self.keys)
        if self.devices is not None and len(self.devices):
            out |= np.isin(src, self.devices) | np.isin(dst, self.devices)
        if self.wall is not None:
            p, q = positions[src], positions[dst]
            for a, b in zip(self.wall[:-1], self.wall[1:]):
                out |= segments_cross(p, q, a, b)
        return out


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def segments_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each segment p[i]q[i] meets the segment ab (touching counts)."""
    a = np.broadcast_to(a, p.shape)
    b = np.broadcast_to(b, p.shape)
    o1, o2 = _orient(a, b, p), _orient(a, b, q)
    o3, o4 = _orient(p, q, a), _orient(p, q, b)
    boxes = (
        (np.minimum(p[:, 0], q[:, 0]) <= np.maximum(a[:, 0], b[:, 0]))
        & (np.minimum(a[:, 0], b[:, 0]) <= np.maximum(p[:, 0], q[:, 0]))
        & (np.minimum(p[:, 1], q[:, 1]) <= np.maximum(a[:, 1], b[:, 1]))
        & (np.minimum(a[:, 1], b[:, 1]) <= np.maximum(p[:, 1], q[:, 1]))
    )
    return (o1 * o2 <= 0) & (o3 * o4 <= 0) & boxes
