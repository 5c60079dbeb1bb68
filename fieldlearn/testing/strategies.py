"""Hypothesis strategies for property tests of aggregate programs: networks, schedules, initial states, perturbations.

Everything drawn here is a plain value with a readable `repr` (so a failing example prints usefully) and
shrinks towards small networks, short histories and simple schedules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import strategies as st

from ..calculus import Network, RoundVM, run

__all__ = [
    "Perturbation", "Schedule", "Scramble", "connected_graphs", "device_sets", "geometric_networks", "initial_states",
    "networks", "perturbations", "schedules", "scrambled_network", "sensor_values",
]


# -- networks -------------------------------------------------------------------------------------------
def _bottleneck(positions: np.ndarray) -> float:
    """The smallest radius that connects all points: the longest edge of a Euclidean minimum spanning tree."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    if len(positions) < 2:
        return 0.0
    mst = minimum_spanning_tree(squareform(pdist(positions)))
    return float(mst.data.max()) if mst.nnz else 0.0


@st.composite
def geometric_networks(
    draw: Any, min_devices: int = 2, max_devices: int = 20, radius: float = 1.0, min_link: float = 0.25, spread: float = 2.5
) -> Network:
    """Connected random geometric networks: devices at distinct points of a lattice of step `min_link`, linked within a radius.

    Links are never shorter than `min_link` (which bounds how slowly a gradient's stale values rise). The
    radius is `radius`, raised just enough to connect the network where the points fall apart; `spread`
    sets the lattice's side to about `spread * sqrt(n)` steps (larger: sparser networks, longer paths).
    """
    n = draw(st.integers(min_devices, max_devices))
    side = max(2, math.ceil(spread * math.sqrt(n)))
    cell = st.tuples(st.integers(0, side), st.integers(0, side))
    cells = draw(st.lists(cell, min_size=n, max_size=n, unique=True))
    positions = np.asarray(cells, dtype=np.float64) * min_link
    r = max(radius, _bottleneck(positions) * (1 + 1e-9) + 1e-12)
    return Network.from_positions(positions, r)


@st.composite
def connected_graphs(
    draw: Any, min_devices: int = 2, max_devices: int = 20, max_extra_links: int = 20, lengths: tuple[float, float] = (0.5, 2.0)
) -> Network:
    """Connected random graphs (a random spanning tree plus extra links) with random link lengths in `lengths`."""
    n = draw(st.integers(min_devices, max_devices))
    parents = [draw(st.integers(0, i - 1)) for i in range(1, n)]
    order = draw(st.permutations(range(n)))
    edges = {(min(order[i], order[p]), max(order[i], order[p])) for i, p in zip(range(1, n), parents)}
    if n > 2:
        pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] != e[1])
        for a, b in draw(st.lists(pair, max_size=max_extra_links)):
            edges.add((min(a, b), max(a, b)))
    edges_list = sorted(edges)
    lo, hi = lengths
    grain = st.integers(0, 1000).map(lambda k: lo + (hi - lo) * k / 1000)
    dist = draw(st.lists(grain, min_size=len(edges_list), max_size=len(edges_list)))
    return Network.from_edges(n, edges_list, dist)


def networks(min_devices: int = 2, max_devices: int = 20) -> st.SearchStrategy[Network]:
    """Connected networks of either kind: geometric (unit-disk) or random graphs with random link lengths."""
    return st.one_of(
        geometric_networks(min_devices, max_devices), connected_graphs(min_devices, max_devices)
    )


def device_sets(network: Network, min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[np.ndarray]:
    """Boolean masks over the devices of `network` with between `min_size` and `max_size` devices set (e.g. sources)."""
    n = network.n_devices
    hi = n if max_size is None else min(max_size, n)

    def mask(ids: list[int]) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[ids] = True
        return out

    return st.lists(st.integers(0, n - 1), min_size=min(min_size, n), max_size=hi, unique=True).map(mask)


def sensor_values(network: Network, elements: st.SearchStrategy | None = None) -> st.SearchStrategy[np.ndarray]:
    """One value per device of `network` (default: integers in [-100, 100] as floats, exact under sums)."""
    elements = st.integers(-100, 100).map(float) if elements is None else elements
    n = network.n_devices
    return st.lists(elements, min_size=n, max_size=n).map(np.asarray)


# -- schedules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """A fair activation schedule, sweep by sweep: every device fires at least once in every sweep.

    kinds: `sync` (all devices at once), `sequential` (one at a time, by id), `sweeps` (one at a time in a
    fresh random order each sweep), `batches` (a random order cut into random simultaneous batches) and
    `bursty` (random batches plus extra firings of random devices within the sweep).
    """

    kind: str = "sync"
    seed: int = 0

    KINDS = ("sync", "sequential", "sweeps", "batches", "bursty")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}: use one of {', '.join(self.KINDS)}")

    def sweep(self, k: int, n: int) -> list[np.ndarray]:
        """The batches (arrays of distinct device ids, fired one after another) of sweep number `k`."""
        ids = np.arange(n)
        if self.kind == "sync":
            return [ids]
        if self.kind == "sequential":
            return [ids[i : i + 1] for i in range(n)]
        rng = np.random.default_rng([self.seed, k])
        order = rng.permutation(n)
        if self.kind == "sweeps":
            return [order[i : i + 1] for i in range(n)]
        cuts = np.flatnonzero(rng.random(n - 1) < 0.4) + 1 if n > 1 else np.zeros(0, dtype=int)
        batches = [b for b in np.split(order, cuts) if len(b)]
        if self.kind == "bursty":
            for _ in range(int(rng.integers(0, n // 2 + 1))):
                extra = np.unique(rng.choice(n, size=int(rng.integers(1, max(2, n // 3) + 1)), replace=True))
                batches.insert(int(rng.integers(0, len(batches) + 1)), extra)
        return batches


def schedules(kinds: Sequence[str] = Schedule.KINDS) -> st.SearchStrategy[Schedule]:
    """Fair schedules of the given kinds (shrinking towards `sync`), each with its own random seed."""
    return st.builds(Schedule, st.sampled_from(list(kinds)), st.integers(0, 2**16))


# -- initial states -------------------------------------------------------------------------------------
def _scramble_sensor(value: Any, n: int, rng: np.random.Generator) -> Any:
    if callable(value) or np.ndim(value) == 0:
        return value
    arr = np.asarray(value)
    if arr.shape[0] != n:
        return value
    if arr.dtype == bool:
        return rng.random(arr.shape) < 0.3
    if arr.dtype.kind in "iu":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 1)
        return rng.integers(lo - 2, hi + 3, size=arr.shape).astype(arr.dtype)
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = max(hi - lo, 1.0)
        return rng.uniform(lo - span, hi + span, size=arr.shape)
    return value


def scrambled_network(network: Network, rng: np.random.Generator) -> Network:
    """A random network on the same devices (random links and lengths, often disconnected) with randomised sensors."""
    n = network.n_devices
    longest = float(network.graph.distance.max()) if network.graph.n_links else 1.0
    k = int(rng.integers(0, max(1, 2 * n) + 1))
    src = rng.integers(0, n, size=k)
    dst = rng.integers(0, n, size=k)
    keep = src != dst
    edges = list(zip(src[keep].tolist(), dst[keep].tolist()))
    lengths = rng.uniform(0.0, 2.0 * longest, size=len(edges))
    fake = Network.from_edges(n, edges, lengths)
    fake.positions = network.positions
    fake.sensors = {name: _scramble_sensor(v, n, rng) for name, v in network.sensors.items()}
    return fake


@dataclass(frozen=True)
class Scramble:
    """A random history to start a test from: `rounds` rounds of the program on a scrambled copy of the network.

    The copy has random links with random lengths and randomised sensors, and in every round only a random
    subset of devices fires, so the test starts from arbitrary state and stored messages at the real
    program's own paths (some devices with no state at all).
    """

    seed: int = 0
    rounds: int = 5

    def prepare(self, program: Callable[[], Any], network: Network, backend: str = "numpy", device: Any = None) -> RoundVM:
        """A VM that has run this random history of `program`; continue it with `run(..., vm=vm)`."""
        rng = np.random.default_rng(self.seed)
        vm = RoundVM(program, backend=backend, device=device)
        n = network.n_devices
        for _ in range(self.rounds):
            fake = scrambled_network(network, rng)
            firing = np.flatnonzero(rng.random(n) < rng.uniform(0.3, 1.0))
            if len(firing):
                run(program, fake, schedule=[firing], vm=vm)
        return vm


def initial_states(max_rounds: int = 8) -> st.SearchStrategy[Scramble]:
    """Random initial states and stored messages, as `Scramble`s (shrinking towards no history at all)."""
    return st.builds(Scramble, st.integers(0, 2**16), st.integers(0, max_rounds))


# -- perturbations --------------------------------------------------------------------------------------
def _with_graph(network: Network, graph_net: Network) -> Network:
    graph_net.positions = network.positions
    graph_net.sensors = dict(network.sensors)
    return graph_net


def _spanning_tree_links(network: Network, rng: np.random.Generator) -> set[tuple[int, int]]:
    """Links of a random spanning forest of `network` (randomised Kruskal)."""
    rows, cols = network.graph.rows(), network.graph.neighbours
    order = rng.permutation(len(rows))
    parent = list(range(network.n_devices))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kept: set[tuple[int, int]] = set()
    for k in order:
        a, b = int(rows[k]), int(cols[k])
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            kept.add((min(a, b), max(a, b)))
    return kept


@dataclass(frozen=True)
class Perturbation:
    """A change applied to a network mid-test: `drop_links`, `move_devices` or `move_sensor` (a boolean sensor moves).

    Connectivity is preserved: `drop_links` keeps a random spanning tree, `move_devices` re-links with a
    radius large enough to connect, and `move_sensor` leaves the links alone.
    """

    kind: str = "drop_links"
    seed: int = 0
    sensor: str = "source"

    KINDS = ("drop_links", "move_devices", "move_sensor")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown perturbation {self.kind!r}: use one of {', '.join(self.KINDS)}")

    def __call__(self, network: Network) -> Network:
        rng = np.random.default_rng(self.seed)
        if self.kind == "move_sensor":
            return self._move_sensor(network, rng)
        if self.kind == "move_devices" and network.positions is not None:
            return self._move_devices(network, rng)
        return self._drop_links(network, rng)

    def _drop_links(self, network: Network, rng: np.random.Generator) -> Network:
        g = network.graph
        keep = _spanning_tree_links(network, rng)
        lengths: dict[tuple[int, int], float] = {}
        for a, b, d in zip(g.rows().tolist(), g.neighbours.tolist(), g.distance.tolist()):
            e = (min(a, b), max(a, b))
            lengths[e] = d
            if rng.random() < 0.5:
                keep.add(e)
        kept = sorted(keep)
        return _with_graph(network, Network.from_edges(network.n_devices, kept, [lengths[e] for e in kept]))

    def _move_devices(self, network: Network, rng: np.random.Generator) -> Network:
        pos = np.array(network.positions, dtype=np.float64)
        n = len(pos)
        longest = float(network.graph.distance.max()) if network.graph.n_links else 1.0
        shortest = float(network.graph.distance.min()) if network.graph.n_links else 0.1
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        for dev in rng.choice(n, size=max(1, n // 4), replace=False):
            for _ in range(50):
                cand = rng.uniform(lo, hi)
                others = np.delete(pos, dev, axis=0)
                if len(others) == 0 or np.min(np.linalg.norm(others - cand, axis=1)) >= shortest:
                    pos[dev] = cand
                    break
        radius = max(longest, _bottleneck(pos) * (1 + 1e-9) + 1e-12)
        moved = Network.from_positions(pos, radius)
        moved.sensors = dict(network.sensors)
        return moved

    def _move_sensor(self, network: Network, rng: np.random.Generator) -> Network:
        n = network.n_devices
        if self.sensor not in network.sensors:
            raise KeyError(f"move_sensor: the network has no sensor {self.sensor!r} (sensors: {sorted(network.sensors)})")
        old = np.asarray(network.sensors[self.sensor], dtype=bool)
        count = max(1, int(old.sum()))
        new = np.zeros(n, dtype=bool)
        new[rng.choice(n, size=min(count, n), replace=False)] = True
        moved = Network(network.graph, network.positions, dict(network.sensors))
        moved.sensors[self.sensor] = new
        return moved


def perturbations(kinds: Sequence[str] = Perturbation.KINDS, sensor: str = "source") -> st.SearchStrategy[Perturbation]:
    """Topology changes and moved sources, as `Perturbation`s to pass to `assert_self_stabilises(perturb=...)`."""
    return st.builds(Perturbation, st.sampled_from(list(kinds)), st.integers(0, 2**16), st.just(sensor))
