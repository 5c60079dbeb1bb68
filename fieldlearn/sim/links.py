"""Link rules (radius over a cell list with a Verlet skin, k-nearest, fixed graph) and link cuts.

Every rule gives the current links as a CSR `Graph` (`fieldlearn.calculus.network.Graph`): rows by device id,
each row's neighbours ascending, one entry per direction of a link.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from fieldlearn.calculus.network import Graph


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


def _as_complex(positions: np.ndarray) -> np.ndarray:
    """(x, y) rows as complex numbers x + iy (a view when contiguous): one gather moves both coordinates."""
    return np.ascontiguousarray(positions, dtype=np.float64).view(np.complex128).reshape(-1)


def _squared_lengths(diff: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dx * dx + dy * dy of complex differences dx + i dy, exactly as written (in place in `diff`)."""
    f = diff.view(np.float64)
    np.multiply(f, f, out=f)
    return np.add(f[0::2], f[1::2], out=out)


def _index_dtype(n: int) -> type:
    """Device ids as int32 while they fit: scipy's sparse routines take them as they are, without a copy."""
    return np.int32 if n < 2**31 - 1 else np.int64


class CellList:
    """Alive devices bucketed in square cells of side >= reach / PER_REACH, cells in row-major order.

    A device within `reach` of another lies at most PER_REACH cells away in each direction, and the cells of one
    row are consecutive: the devices that may be within reach of one device are one run of consecutive slots per
    row of cells (two in its own row, split around itself). Cells are a dense table when the devices fill their
    bounding box, and found by binary search among the occupied cells otherwise (same runs, slower lookups).
    """

    PER_REACH = 2
    MAX_DENSE_CELLS_PER_DEVICE = 16

    def __init__(self, positions: np.ndarray, ids: np.ndarray, reach: float):
        k = self.PER_REACH
        n = len(positions)
        self.ids = ids.astype(_index_dtype(n))
        x = np.ascontiguousarray(positions[ids, 0])
        y = np.ascontiguousarray(positions[ids, 1])
        lo_x, lo_y = (float(x.min()), float(y.min())) if len(ids) else (0.0, 0.0)
        span = max(float(x.max()) - lo_x, float(y.max()) - lo_y) if len(ids) else 0.0
        scale = max(abs(lo_x), abs(lo_y), abs(lo_x + span), abs(lo_y + span))
        # a hair wider than reach: rounding in the cell coordinates (relative to the coordinates' size) never moves
        # a device out of the cells searched for a pair that the exact test would keep; at most 2^24 cells a side
        side = max((reach * (1 + 1e-6) + 1e-12 * scale) / k, span / 2**24, 1e-300)
        self.stencil = _stencil(k)
        e = max(h for _, h in self.stencil)
        cx = ((x - lo_x) * (1 / side)).astype(np.int64)
        cy = ((y - lo_y) * (1 / side)).astype(np.int64)
        width = int(cx.max(initial=0)) + 1 + 2 * e
        height = int(cy.max(initial=0)) + 1 + 2 * k
        self.width = width
        key = (cy + k) * width + (cx + e)
        m = len(ids)
        self.dense = width * height <= self.MAX_DENSE_CELLS_PER_DEVICE * m + 4096
        if self.dense:
            # a stable counting sort by cell: scipy's CSR -> CSC conversion of the (device x cell) incidence
            cells = csr_matrix((np.arange(m, dtype=np.int32), key.astype(np.int32), np.arange(m + 1, dtype=np.int32)),
                               shape=(m, width * height)).tocsc()
            order = cells.data.astype(np.int64)
            self.start = cells.indptr.astype(np.int64)  # first slot of every cell, and the end
        else:
            order = np.argsort(key, kind="stable")
            self.sorted_keys = key[order]
        self.key = np.empty(n, dtype=np.int64)  # cell of every alive device (by id)
        self.key[ids] = key
        self.slot = np.empty(n, dtype=np.int64)  # place of every alive device in cell order (by id)
        self.slot[ids[order]] = np.arange(m)
        self.slot_ids = self.ids[order]  # ids in cell order
        self.z_by_id = _as_complex(positions)
        self.z = self.z_by_id[ids[order]]  # positions in cell order

    def _first_slots(self, keys: np.ndarray, after: bool) -> np.ndarray:
        """The first slot of cell `keys` (of the cell after it when `after`)."""
        if self.dense:
            return self.start[keys + 1] if after else self.start[keys]
        return np.searchsorted(self.sorted_keys, keys, side="right" if after else "left")

    def runs(self, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each device of `who` (alive ids): the runs of slots [begin, end) that may be within reach, one column
        per run (its own row of cells twice, split around its own slot)."""
        w = self.width
        key = self.key[who][:, None]
        first = self._first_slots(key + np.array([q * w - h for q, h in self.stencil]), after=False)
        last = self._first_slots(key + np.array([q * w + h for q, h in self.stencil]), after=True)
        own = self.PER_REACH  # the column of row q = 0
        slot = self.slot[who]
        begin = np.insert(first, own + 1, slot + 1, axis=1)
        end = np.insert(last, own, slot, axis=1)
        return begin, end

    def near(self, who: np.ndarray, reach2: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The devices with squared distance <= reach2 from each device of `who` (alive ids): (count per device,
        neighbour ids grouped by device in `who` order, their squared distances dx * dx + dy * dy)."""
        begin, end = self.runs(who)
        length = end - begin
        per_device = length.sum(axis=1)
        z_who = self.z_by_id[who]
        counts, found, found_d2 = [], [], []
        steps = np.arange(int(per_device[:block].sum()) if len(who) else 0)
        for s in range(0, len(who), block):  # blocks of devices: the candidate arrays stay in the cache
            run_length = length[s:s + block].reshape(-1)
            per = per_device[s:s + block]
            shift = np.cumsum(run_length)
            total = int(shift[-1])
            shift -= run_length
            np.subtract(begin[s:s + block].reshape(-1), shift, out=shift)
            if len(steps) < total:
                steps = np.arange(total)
            other = np.repeat(shift, run_length)
            other += steps[:total]  # the candidate slots: the runs laid end to end
            diff = np.repeat(z_who[s:s + block], per)
            diff -= self.z[other]
            d2 = _squared_lengths(diff)
            near = d2 <= reach2
            hit = np.flatnonzero(near)
            found.append(self.slot_ids[other[hit]])
            found_d2.append(d2[hit])
            seen = np.zeros(total + 1, dtype=np.int64)  # hits among the candidates before each one
            np.cumsum(near, out=seen[1:])
            ends = np.zeros(len(per) + 1, dtype=np.int64)
            np.cumsum(per, out=ends[1:])
            counts.append(np.diff(seen[ends]))
        if not counts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.astype(self.ids.dtype), np.zeros(0)
        return np.concatenate(counts), np.concatenate(found), np.concatenate(found_d2)


def _stencil(k: int) -> list[tuple[int, int]]:
    """Rows q = -k..k of the cells (side reach / k) that may hold a device within reach, with their half-width h in
    cells: a cell dx columns away is included while the gap between the cells, (|dx| - 1, |q| - 1) cells, is
    shorter than k cells."""
    out = []
    for q in range(-k, k + 1):
        gap_y = max(abs(q) - 1, 0)
        h = 0
        while h * h + gap_y * gap_y < k * k:
            h += 1
        out.append((q, h))
    return out


def symmetric_csr(n: int, rows: np.ndarray, counts: np.ndarray, neighbours: np.ndarray,
                  values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR over n devices with every row's neighbours ascending, from symmetric links with symmetric values listed
    row by row (`counts` links for each device of `rows`, ascending ids), each row in any order: (indptr,
    neighbours, values).

    scipy's CSR -> CSC conversion is a stable counting sort by column: each column lists its rows in ascending
    order. The links are symmetric, so the CSC of their matrix is its CSR with sorted rows (one linear pass).
    """
    itype = _index_dtype(max(n, len(neighbours)))
    indptr = np.zeros(n + 1, dtype=itype)
    indptr[rows + 1] = counts
    np.cumsum(indptr, out=indptr)
    m = csr_matrix((values, neighbours.astype(itype, copy=False), indptr), shape=(n, n)).tocsc()
    return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data


def filter_links(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The indptr of a CSR after dropping the links where `keep` is False."""
    cs = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=cs[1:])
    return cs[indptr]


class RadiusRule:
    """Devices at distance <= radius are linked both ways (squared distance dx*dx + dy*dy <= radius * radius).

    A Verlet list over a cell list. Candidates are the pairs whose reference positions are within radius + skin,
    found with a `CellList` (its cost grows with the devices searched, not with a tree over everybody). Each device
    has its own reference position; while no device is more than skin / 2 from its reference, the candidates hold
    every link and an update only re-tests them. Devices that go further (or jump, or appear, or vanish) are
    searched again alone and merged into the candidates when they are few; otherwise everybody is searched again.
    With no skin (the adaptive choice when devices move a good part of the radius every round) the candidates are
    the links themselves: an update searches again what moved, or everybody when most did. Candidates are CSR rows
    in (device, neighbour) order, and so are every update's links: the graph of an update depends only on the
    positions of that update, never on when the searches ran.
    """

    # relative costs (measured at 10,000 and 100,000 devices, in units of re-testing one candidate link): a
    # search per candidate link found and per device searched
    SEARCH_PER_LINK, SEARCH_PER_DEVICE = 4.5, 20.0
    # devices that jumped (or appeared, or vanished) are re-searched alone while at most 1 in this many
    SPLICE_AT_MOST = 8

    def __init__(self, radius: float, skin: float = 0.0, adapt: bool = True):
        self.radius = float(radius)
        self.skin = float(skin)
        self.adapt = adapt and skin > 0
        self.ref: np.ndarray | None = None
        self.alive_ref: np.ndarray | None = None
        self.searches = 0  # searches of every device
        self.splices = 0  # updates that searched only some devices
        self.steps = 0  # graph updates since the last search of every device
        # candidates at the reference positions: indptr, neighbours, squared lengths (at no skin: the links)
        self._candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._rows: np.ndarray | None = None  # the receiving device of every candidate
        self._links: Graph | None = None  # at no skin: the candidates as a graph
        self._last: tuple[np.ndarray, np.ndarray, Graph] | None = None
        self._buf: dict[str, np.ndarray] = {}

    # -- public ----------------------------------------------------------------------------------------------
    def links(self, positions: np.ndarray, alive: np.ndarray) -> Graph:
        """The current links among `alive` devices (CSR rows by device, neighbours ascending, Euclidean lengths)."""
        positions = np.asarray(positions, dtype=np.float64)
        alive = np.asarray(alive, dtype=bool)
        last = self._last
        if last is not None and np.array_equal(alive, last[1]) and np.array_equal(positions, last[0]):
            return last[2]
        if self.ref is None or self.alive_ref is None or len(self.ref) != len(positions):
            self._search(positions, alive)
        else:
            redo, drift = self._far(positions, alive)
            np.logical_or(redo, alive != self.alive_ref, out=redo)
            k = int(np.count_nonzero(redo))
            if k:
                if not drift and k * self.SPLICE_AT_MOST <= max(int(np.count_nonzero(alive)), 1):
                    self._splice(redo, positions, alive)
                else:
                    self._search(positions, alive)
        self.steps += 1
        graph = self._exact(positions)
        self._last = (positions.copy(), alive.copy(), graph)
        return graph

    # -- candidates ------------------------------------------------------------------------------------------
    def _reach(self, positions: np.ndarray, ids: np.ndarray) -> tuple[float, float]:
        """Search distance and its square: radius + skin, a hair wider with a skin (so rounding never loses a pair
        that may come within the radius before a device leaves its skin); exactly the radius without."""
        if self.skin == 0:
            return self.radius, self.radius * self.radius
        reach = self.radius + self.skin
        scale = float(np.abs(positions[ids]).max()) if len(ids) else 0.0
        reach += 1e-9 * (reach + scale)
        return reach, reach * reach

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
            far = np.not_equal(_as_complex(positions), _as_complex(self.ref))  # moved at all (x or y)
            np.logical_and(far, alive, out=far)
            drift = False
        return far, drift

    def _search(self, positions: np.ndarray, alive: np.ndarray) -> None:
        """Candidates of everybody from where they are now (one cell-list search); the skin adapts first."""
        if self.adapt and self.ref is not None:
            self._adapt(positions, alive)
        ids = np.flatnonzero(alive)
        reach, reach2 = self._reach(positions, ids)
        counts, neighbours, d2 = CellList(positions, ids, reach).near(ids, reach2)
        self.ref = positions.copy()
        self.alive_ref = alive.copy()
        self._set_candidates(symmetric_csr(len(positions), ids, counts, neighbours, d2))
        self.steps = 0
        self.searches += 1

    def _splice(self, redo: np.ndarray, positions: np.ndarray, alive: np.ndarray) -> None:
        """Search the devices `redo` (mask) again from where they are now and merge their candidates into the rows
        of everybody else, which stay as they are (no sort of the candidates: their order is kept)."""
        assert self.ref is not None and self._candidates is not None
        n = len(positions)
        self.ref[redo] = positions[redo]
        indptr, neighbours, d2 = self._candidates
        rows = self._candidate_rows()
        keep = ~(redo[rows] | redo[neighbours])
        kept = np.flatnonzero(keep)
        q = np.flatnonzero(redo & alive)
        ids = np.flatnonzero(alive)
        keys, new_d2 = np.zeros(0, dtype=np.int64), np.zeros(0)
        if len(q) and len(ids) > 1:
            reach, reach2 = self._reach(self.ref, ids)
            counts, other, found_d2 = CellList(self.ref, ids, reach).near(q, reach2)
            mine = np.repeat(q, counts)
            other = other.astype(np.int64)
            back = ~redo[other]  # a device not searched again gets the link in its own row too
            keys = np.concatenate([mine * n + other, other[back] * n + mine[back]])
            new_d2 = np.concatenate([found_d2, found_d2[back]])
            order = np.argsort(keys)
            keys, new_d2 = keys[order], new_d2[order]
        kept_rows = rows[kept]
        at = np.searchsorted(kept_rows * n + neighbours[kept], keys)  # where the new ones go among the kept
        new_rows, new_neighbours = np.divmod(keys, n)
        added = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(new_rows, minlength=n), out=added[1:])
        self.alive_ref = alive.copy()
        self._set_candidates((filter_links(indptr, keep) + added, np.insert(neighbours[kept], at, new_neighbours),
                              np.insert(d2[kept], at, new_d2)), rows=np.insert(kept_rows, at, new_rows))
        self.splices += 1

    def _set_candidates(self, candidates: tuple[np.ndarray, np.ndarray, np.ndarray],
                        rows: np.ndarray | None = None) -> None:
        self._candidates = candidates
        self._rows = rows
        self._links = None
        self._buf = {}  # the re-test's work arrays, sized for the candidates (none needed without a skin)

    def _candidate_rows(self) -> np.ndarray:
        """The receiving device of every candidate."""
        if self._rows is None:
            assert self._candidates is not None
            indptr = self._candidates[0]
            self._rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        return self._rows

    def _adapt(self, positions: np.ndarray, alive: np.ndarray) -> None:
        """Choose the skin that minimises the expected work per update, from the speed seen since the last search.

        A skin s needs a search every s / 2v updates (v: the fastest drift per update) and re-tests ~(r + s)^2
        candidates every update; no skin searches every update that moves, and re-tests nothing. Devices that went
        further than radius + skin jumped (a skin cannot save their searches) and do not count for the speed;
        when most moves are jumps, no skin. Deterministic: it depends only on the positions (and the skin affects
        only the cost, never the links).
        """
        assert self.ref is not None and self.alive_ref is not None and self._candidates is not None
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
        links0 = len(self._candidates[1]) / (1 + self.skin / r) ** 2  # candidates there would be without a skin
        n = int(alive.sum())

        def search(s: float) -> float:
            return self.SEARCH_PER_LINK * links0 * (1 + s / r) ** 2 + self.SEARCH_PER_DEVICE * n

        best, best_cost = 0.0, search(0.0)
        for s in r * np.array([1 / 16, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0]):
            every = s / (2 * v)  # updates between searches
            if every >= 1:
                cost = search(s) / every + links0 * (1 + s / r) ** 2
                if cost < best_cost:
                    best, best_cost = float(s), cost
        self.skin = best

    # -- the exact test ----------------------------------------------------------------------------------------
    def _exact(self, positions: np.ndarray) -> Graph:
        """The links at `positions`: the candidates themselves without a skin (everybody is at their reference),
        else the candidates within the radius (squared distances re-tested, rows kept in candidate order)."""
        assert self._candidates is not None
        indptr, neighbours, d2 = self._candidates
        if self.skin == 0:
            if self._links is None:
                self._links = Graph(indptr, neighbours, np.sqrt(d2))
            return self._links
        z = _as_complex(positions)
        m = len(neighbours)
        if not self._buf:  # kept until the candidates change: fresh large arrays cost page faults
            self._buf = {"diff": np.empty(m, dtype=np.complex128), "other": np.empty(m, dtype=np.complex128),
                         "d2": np.empty(m), "near": np.empty(m, dtype=bool)}
        buf = self._buf
        diff = np.take(z, self._candidate_rows(), out=buf["diff"], mode="clip")
        np.subtract(diff, np.take(z, neighbours, out=buf["other"], mode="clip"), out=diff)
        lengths = _squared_lengths(diff, out=buf["d2"])
        near = np.less_equal(lengths, self.radius * self.radius, out=buf["near"])
        hit = np.flatnonzero(near)
        return Graph(filter_links(indptr, near), neighbours[hit], np.sqrt(lengths[hit]))


def to_csr(n: int, src: np.ndarray, dst: np.ndarray, length: np.ndarray) -> Graph:
    """The CSR graph of links sorted by source."""
    return Graph(np.searchsorted(src, np.arange(n + 1)), dst, length)


class KnnRule:
    """Each alive device links its k nearest alive devices; links are made symmetric."""

    def __init__(self, k: int):
        self.k = int(k)

    def links(self, positions: np.ndarray, alive: np.ndarray) -> Graph:
        """The current links as a CSR graph."""
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

    def links(self, positions: np.ndarray, alive: np.ndarray) -> Graph:
        """The current links as a CSR graph."""
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
