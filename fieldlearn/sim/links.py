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


def _stable_order(ids: np.ndarray, n: int) -> np.ndarray:
    """Stable argsort of device ids in [0, n): numpy's radix sort on 16-bit digits (one or two passes)."""
    if n <= 1 << 16:
        return np.argsort(ids.astype(np.uint16), kind="stable")
    if n > 1 << 32:
        return np.argsort(ids, kind="stable")
    low = np.argsort((ids & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((ids[low] >> 16).astype(np.uint16), kind="stable")]


class RadiusRule:
    """Devices at distance <= radius are linked both ways (squared distance dx*dx + dy*dy <= radius * radius).

    A Verlet list: candidate pairs are the pairs whose reference positions are within radius + skin (a KD-tree
    search), and every update re-tests only the candidates. Each device has its own reference position; while
    no device is more than skin / 2 from its reference, the candidates hold every link. Devices that go
    further (or jump, or appear, or vanish) are re-searched alone and spliced in when they are few; a full
    KD-tree search re-references everybody. Candidates are kept as CSR rows in (device, neighbour) order, so
    every update's links come out in that order too: the graph of a round depends only on the positions of that
    round, never on when the searches ran.
    """

    # relative costs (measured at 10,000 devices, in units of re-testing one candidate pair): a full search per
    # pair and per device
    SEARCH_PER_PAIR, SEARCH_PER_DEVICE = 6.0, 10.0
    # devices that jumped (or appeared, or vanished) are re-searched alone while at most 1 in this many
    SPLICE_AT_MOST = 8

    def __init__(self, radius: float, skin: float = 0.0, adapt: bool = True):
        self.radius = float(radius)
        self.skin = float(skin)
        self.adapt = adapt and skin > 0
        self.ref: np.ndarray | None = None
        self.alive_ref: np.ndarray | None = None
        self.searches = 0  # full KD-tree searches
        self.splices = 0  # updates that re-searched only some devices
        self.steps = 0  # graph updates since the last full search
        self._last: tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._buf_size = -1
        self._rows: tuple | None = None  # the previous update's links, patched by the next one

    # -- public ----------------------------------------------------------------------------------------------
    def links(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current links among `alive` devices as CSR: (indptr, neighbours, length), neighbours ascending."""
        positions = np.asarray(positions, dtype=np.float64)
        alive = np.asarray(alive, dtype=bool)
        if self.ref is None or self.alive_ref is None or len(self.ref) != len(positions):
            self._search(positions, alive)
        else:
            last = self._last
            if last is not None and np.array_equal(alive, self.alive_ref) and np.array_equal(positions, last[0]):
                return last[1]
            redo, drift = self._far(positions, alive)
            np.logical_or(redo, alive != self.alive_ref, out=redo)
            k = int(np.count_nonzero(redo))
            if k:
                if not drift and k * self.SPLICE_AT_MOST <= max(int(np.count_nonzero(alive)), 1):
                    self._splice(redo, positions, alive)
                else:
                    self._search(positions, alive)
        self.steps += 1
        out = self._filter(positions)
        self._last = (positions.copy(), out)
        return out

    # -- candidates ------------------------------------------------------------------------------------------
    def _query_radius(self, points: np.ndarray) -> float:
        """radius + skin, a hair wider: the tree's own rounding (relative to the radius and to the coordinates)
        never loses a pair that the exact test would keep."""
        reach = self.radius + self.skin
        scale = float(np.abs(points).max()) if points.size else 0.0
        return reach + 1e-9 * (reach + scale)

    def _far(self, positions: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, bool]:
        """Alive devices that may have links outside the candidates (moved more than skin / 2 from their reference),
        and whether some of them drift (moved at most the skin: continuous motion, rather than jumps)."""
        assert self.ref is not None
        if self.skin > 0:
            moved = positions - self.ref
            d2 = np.einsum("ij,ij->i", moved, moved)
            far = d2 > (self.skin / 2) ** 2
            np.logical_and(far, alive, out=far)
            drift = bool(far.any()) and bool(np.any(d2[far] <= self.skin ** 2))
        else:
            far = np.any(positions != self.ref, axis=1)
            np.logical_and(far, alive, out=far)
            drift = False
        return far, drift

    def _search(self, positions: np.ndarray, alive: np.ndarray) -> None:
        """Candidates of everybody from where they are now (one KD-tree search); the skin adapts first."""
        if self.adapt and self.ref is not None:
            self._adapt(positions, alive)
        ids = np.flatnonzero(alive)
        n = len(positions)
        if len(ids) > 1:
            points = positions[ids]
            tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
            pairs = tree.query_pairs(self._query_radius(points), output_type="ndarray")
            key = np.sort(ids[pairs[:, 0]] * n + ids[pairs[:, 1]])  # ids ascending: first < second
        else:
            key = np.zeros(0, dtype=np.int64)
        self.ref = positions.copy()
        self.alive_ref = alive.copy()
        self._set_candidates(n, key)
        self.steps = 0
        self.searches += 1

    def _splice(self, redo: np.ndarray, positions: np.ndarray, alive: np.ndarray) -> None:
        """Re-search the devices `redo` (mask) from where they are now; everybody else keeps their candidates."""
        assert self.ref is not None
        n = len(positions)
        self.ref[redo] = positions[redo]
        keep = ~(redo[self.a] | redo[self.b])
        key = self.a[keep] * n + self.b[keep]
        q = np.flatnonzero(redo & alive)
        ids = np.flatnonzero(alive)
        if len(q) and len(ids) > 1:
            points = self.ref[ids]
            tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
            found = cKDTree(self.ref[q]).sparse_distance_matrix(tree, self._query_radius(points),
                                                                output_type="ndarray")
            i, j = q[found["i"]], ids[found["j"]]
            ok = (i != j) & (~redo[j] | (i < j))  # a pair of two re-searched devices is found from both ends
            i, j = i[ok], j[ok]
            new = np.sort(np.minimum(i, j) * n + np.maximum(i, j))
            key = np.insert(key, np.searchsorted(key, new), new)
        self.alive_ref = alive.copy()
        self._set_candidates(n, key)
        self.splices += 1

    def _set_candidates(self, n: int, key: np.ndarray) -> None:
        """Candidate pairs (sorted keys a * n + b, a < b) as pair arrays and CSR rows over both directions.

        Row d lists first its pairs (a, d) by ascending a, then its pairs (d, b) by ascending b: every row is in
        ascending neighbour order. `pair_of` maps each row entry to its pair.
        """
        a = key // n if n else key
        b = key - a * n
        m = len(key)
        up = np.bincount(a, minlength=n)  # entries (a -> b) of each row
        lo = np.bincount(b, minlength=n)  # entries (b -> a) of each row
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(up + lo, out=indptr[1:])
        perm = _stable_order(b, n)  # pairs in (b, a) order: a stable sort by b of pairs in (a, b) order
        arange = np.arange(m)
        start_up = np.cumsum(up) - up
        start_lo = np.cumsum(lo) - lo
        at_up = (indptr[:-1] + lo - start_up)[a] + arange
        at_lo = (indptr[:-1] - start_lo)[b[perm]] + arange
        dst = np.empty(2 * m, dtype=np.int64)
        pair_of = np.empty(2 * m, dtype=np.int64)
        dst[at_up] = b
        dst[at_lo] = a[perm]
        pair_of[at_up] = arange
        pair_of[at_lo] = perm
        ent_lo = np.empty(m, dtype=np.int64)
        ent_lo[perm] = at_lo
        self.a, self.b = a, b
        self.indptr, self.dst, self.pair_of = indptr, dst, pair_of
        self.ent_up, self.ent_lo = at_up, ent_lo  # the row entries of each pair
        self._rows = None

    def _adapt(self, positions: np.ndarray, alive: np.ndarray) -> None:
        """Choose the skin that minimises the expected work per update, from the speed seen since the last search.

        Work per update ~ search(pairs, devices) * 2v / skin + pairs, with pairs ~ (radius + skin)^2: a wide skin
        re-tests more pairs every update, a narrow one searches more often. Devices that went further than
        radius + skin jumped (a skin cannot save their searches) and do not count for the speed; when most
        moves are jumps, no skin. Deterministic: it depends only on the positions (and the skin affects only
        the cost, never the links).
        """
        assert self.ref is not None and self.alive_ref is not None
        live = alive & self.alive_ref
        moved = positions[live] - self.ref[live]
        if self.steps == 0 or len(moved) == 0:
            return
        d2 = np.einsum("ij,ij->i", moved, moved)
        d2 = d2[d2 > 0]
        if len(d2) == 0:
            return  # nobody moved
        r = self.radius
        drift = d2[d2 <= (self.skin + r) ** 2]
        if 2 * len(drift) < len(d2):  # most moves were jumps: no skin
            self.skin = 0.0
            return
        v = float(np.sqrt(drift.max())) / self.steps
        pairs0 = len(self.a) / (1 + self.skin / r) ** 2
        n = int(alive.sum())
        best, best_cost = self.skin, np.inf
        for s in r * np.array([1 / 16, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0]):
            pairs = pairs0 * (1 + s / r) ** 2
            cost = (self.SEARCH_PER_PAIR * pairs + self.SEARCH_PER_DEVICE * n) * 2 * v / s + pairs
            if cost < best_cost:
                best, best_cost = float(s), cost
        self.skin = best

    # -- the exact test ----------------------------------------------------------------------------------------
    def _filter(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Links among the candidates at `positions`: squared distances per pair, then rows in candidate order.

        The rows are carried over from the previous update and patched where pairs crossed the radius (most
        updates flip few pairs), or rebuilt when the candidates changed or many pairs flipped.
        """
        # (x, y) rows gathered as single complex numbers; d2 = dx * dx + dy * dy exactly as written
        z = np.ascontiguousarray(positions).view(np.complex128).reshape(-1)
        buf = self._buffers()
        d2, za, zb = buf["d2"], buf["za"], buf["zb"]
        np.take(z, self.a, out=za)
        np.subtract(za, np.take(z, self.b, out=zb), out=za)
        f = za.view(np.float64)  # dx, dy interleaved
        np.multiply(f, f, out=f)
        np.add(f[0::2], f[1::2], out=d2)
        near = np.less_equal(d2, self.radius * self.radius)
        rows = self._rows
        if rows is not None:  # patch the previous rows: pairs that became links or stopped being links
            prev, link, indptr, dst, idx = rows
            flip = np.flatnonzero(near != prev)
            if len(flip) * 16 > len(dst):
                rows = None
            elif len(flip):
                on, off = flip[near[flip]], flip[~near[flip]]
                link[self.ent_up[on]] = True
                link[self.ent_lo[on]] = True
                link[self.ent_up[off]] = False
                link[self.ent_lo[off]] = False
                n = len(indptr) - 1
                delta = np.bincount(np.concatenate([self.a[on], self.b[on]]), minlength=n) - np.bincount(
                    np.concatenate([self.a[off], self.b[off]]), minlength=n)
                step = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(delta, out=step[1:])
                indptr = indptr + step
                idx = np.flatnonzero(link)
                dst = np.take(self.dst, idx)
        if rows is None and near.all():  # every candidate is a link (typically: no skin)
            link, idx = np.ones(len(self.dst), dtype=bool), None
            indptr, dst = self.indptr.copy(), self.dst.copy()
        elif rows is None:  # rebuild the rows from the candidates
            link = np.take(near, self.pair_of)
            idx = np.flatnonzero(link)  # ascending: rows by binary search
            indptr, dst = np.searchsorted(idx, self.indptr), np.take(self.dst, idx)
        self._rows = (near, link, indptr, dst, idx)
        dist = np.take(d2, self.pair_of if idx is None else np.take(self.pair_of, idx))
        return indptr, dst, np.sqrt(dist, out=dist)

    def _buffers(self) -> dict[str, np.ndarray]:
        """Work arrays reused between updates (fresh large arrays every update cost page faults)."""
        m = len(self.a)
        if self._buf_size != m:
            self._buf = {"d2": np.empty(m), "za": np.empty(m, dtype=np.complex128),
                         "zb": np.empty(m, dtype=np.complex128)}
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
