"""Oracles: what a block's result must be on a given network, computed centrally (networkx, plain numpy).

An oracle is an `Oracle` whose `check(network, result)` returns None when the result is right and a
`Mismatch` (which devices, expected what, got what) when it is not. `Expect(fn)` turns any function
`fn(network) -> expected values` into one; `Satisfies(fn)` checks a property instead of exact values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..calculus import Network, tree_flatten

__all__ = [
    "Expect", "Mismatch", "Oracle", "Satisfies", "broadcast_oracle", "check_leaders", "collect_oracle", "compare",
    "components", "dag_collect", "gossip_oracle", "gradient_bound", "gradient_oracle", "hop_diameter", "leaders_oracle",
    "shortest_distances", "shortest_path_hops", "tree_broadcast", "tree_collect", "tree_height", "tree_parents",
]

INF = float("inf")
_BIG = float(np.finfo(np.float32).max) / 4


# -- mismatches and comparison --------------------------------------------------------------------------
def _fmt(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return np.array2string(x, precision=6, threshold=8, separator=", ")
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, (np.integer, np.bool_)):
        return repr(x.item())
    return repr(x)


@dataclass
class Mismatch:
    """Devices whose result is wrong, with what was expected and what they hold (or why, for properties)."""

    devices: np.ndarray
    expected: list = field(default_factory=list)
    got: list = field(default_factory=list)
    reason: str = ""

    def describe(
        self, n_devices: int | None = None, limit: int = 8, what: str = "differ from the oracle",
        expected_label: str = "expected", got_label: str = "got",
    ) -> str:
        """A few lines naming the wrong devices, expected against got."""
        total = f" of {n_devices}" if n_devices is not None else ""
        head = f"{len(self.devices)}{total} devices {what}"
        if self.reason:
            head += f" ({self.reason})"
        lines = [head + (f", first {limit}:" if len(self.devices) > limit else ":")]
        for k, dev in enumerate(self.devices[:limit]):
            exp = self.expected[k] if k < len(self.expected) else "?"
            got = self.got[k] if k < len(self.got) else "?"
            lines.append(f"  device {int(dev)}: {expected_label} {exp}, {got_label} {got}")
        return "\n".join(lines)


def _leaf_ok(exp: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """Per device: whether `got` matches `exp` (NaN matches NaN, infinities must match exactly)."""
    if exp.dtype.kind in "fc" or got.dtype.kind in "fc":
        e, g = exp.astype(np.float64), got.astype(np.float64)
        with np.errstate(invalid="ignore"):
            close = np.isclose(g, e, atol=atol, rtol=rtol) | (np.isnan(e) & np.isnan(g))
        close &= ~(np.isinf(e) ^ np.isinf(g))
    else:
        close = exp == got
    return close.reshape(len(close), -1).all(axis=1) if close.ndim > 1 else close


def compare(expected: Any, got: Any, atol: float = 1e-9, rtol: float = 1e-9) -> Mismatch | None:
    """Compare two per-device results (arrays or nested tuples/dicts of arrays, leading axis = devices)."""
    e_leaves, e_def = tree_flatten(expected)
    g_leaves, g_def = tree_flatten(got)
    if len(e_leaves) != len(g_leaves):
        return Mismatch(np.arange(0), reason=f"the result has structure {g_def}, the oracle {e_def}")
    es = [np.asarray(x) for x in e_leaves]
    gs = [np.asarray(x) for x in g_leaves]
    n = len(gs[0]) if gs and gs[0].ndim else 0
    ok = np.ones(n, dtype=bool)
    for e, g in zip(es, gs):
        if e.ndim == 0:
            e = np.broadcast_to(e, g.shape)
        if e.shape != g.shape:
            return Mismatch(np.arange(0), reason=f"the result has shape {g.shape}, the oracle {e.shape}")
        ok &= _leaf_ok(e, g, atol, rtol)
    if ok.all():
        return None
    bad = np.flatnonzero(~ok)
    pack = (lambda leaves, i: _fmt(leaves[0][i])) if len(es) == 1 else (lambda leaves, i: "(" + ", ".join(_fmt(x[i]) for x in leaves) + ")")
    return Mismatch(bad, [pack(es, i) for i in bad], [pack(gs, i) for i in bad])


# -- the oracle protocol --------------------------------------------------------------------------------
class Oracle:
    """What a program's result must be on a network. `steady`: the result must also stop changing."""

    steady: bool = True

    def check(self, network: Network, result: Any) -> Mismatch | None:
        raise NotImplementedError

    def __call__(self, network: Network, result: Any) -> Mismatch | None:
        return self.check(network, result)


class Expect(Oracle):
    """Exact values: `expected(network)` (an array, or nested like the result) compared within `atol`/`rtol`.

    `select` picks the part of the result to compare (e.g. `lambda r: r[0]`).
    """

    def __init__(self, expected: Callable[[Network], Any], atol: float = 1e-9, rtol: float = 1e-9, select: Callable[[Any], Any] | None = None):
        self.expected, self.atol, self.rtol, self.select = expected, atol, rtol, select

    def check(self, network: Network, result: Any) -> Mismatch | None:
        got = self.select(result) if self.select is not None else result
        return compare(self.expected(network), got, self.atol, self.rtol)

    def __repr__(self) -> str:
        return f"Expect({getattr(self.expected, '__name__', self.expected)!r})"


class Satisfies(Oracle):
    """A property: `predicate(network, result)` returns a Mismatch, a boolean mask of good devices, or None/True if all good."""

    def __init__(self, predicate: Callable[[Network, Any], Any], description: str = "", steady: bool = True):
        self.predicate, self.description, self.steady = predicate, description, steady

    def check(self, network: Network, result: Any) -> Mismatch | None:
        out = self.predicate(network, result)
        if out is None or out is True:
            return None
        if isinstance(out, Mismatch):
            return out
        good = np.asarray(out, dtype=bool)
        if good.all():
            return None
        bad = np.flatnonzero(~good)
        return Mismatch(bad, [self.description or "the property"] * len(bad), ["violates it"] * len(bad))

    def __repr__(self) -> str:
        return f"Satisfies({self.description or self.predicate!r})"


# -- graph computations ---------------------------------------------------------------------------------
def _sensor(network: Network, what: Any) -> np.ndarray:
    """A sensor name, a function of the network, or an array, as a per-device array."""
    if isinstance(what, str):
        value = network.sensors[what]
    elif callable(what):
        value = what(network)
    else:
        value = what
    value = np.asarray(value)
    return np.broadcast_to(value, (network.n_devices,) + value.shape) if value.ndim == 0 else value


def _adjacency(network: Network) -> list[list[tuple[int, float]]]:
    g = network.graph
    adj: list[list[tuple[int, float]]] = [[] for _ in range(network.n_devices)]
    for a, b, d in zip(g.rows().tolist(), g.neighbours.tolist(), g.distance.tolist()):
        adj[a].append((b, d))
    return adj


def shortest_distances(network: Network, sources: Any, hops: bool = False) -> np.ndarray:
    """Dijkstra (networkx) distance from every device to the nearest source (inf where none is reachable).

    `sources` is a boolean mask, a sensor name, or a function of the network; `hops=True` counts links instead.
    Links are followed the way messages flow: device `i` hears `j` when `j` is in `i`'s inbox.
    """
    import networkx as nx

    mask = _sensor(network, sources).astype(bool)
    g = nx.DiGraph()
    g.add_nodes_from(range(network.n_devices))
    gr = network.graph
    for a, b, d in zip(gr.rows().tolist(), gr.neighbours.tolist(), gr.distance.tolist()):
        g.add_edge(b, a, weight=1.0 if hops else d)  # information flows from the sender b to the receiver a
    out = np.full(network.n_devices, INF)
    src = np.flatnonzero(mask).tolist()
    if src:
        for node, dist in nx.multi_source_dijkstra_path_length(g, src, weight="weight").items():
            out[node] = dist
    return out


def components(network: Network) -> np.ndarray:
    """The connected component of every device (as an index), treating links as undirected."""
    import networkx as nx

    comp = np.zeros(network.n_devices, dtype=np.int64)
    for k, nodes in enumerate(nx.connected_components(network.to_networkx())):
        comp[list(nodes)] = k
    return comp


def tree_parents(network: Network, potential: Any, group: Any = None) -> np.ndarray:
    """Each device's parent under the blocks' rule: the neighbour of least potential (lowest id on ties) if lower than its own, else -1."""
    pot = _sensor(network, potential).astype(np.float64)
    grp = None if group is None else _sensor(network, group)
    parents = np.full(network.n_devices, -1, dtype=np.int64)
    for i, links in enumerate(_adjacency(network)):
        cands = [(pot[j], j) for j, _ in links if grp is None or grp[j] == grp[i]]
        if cands:
            best = min(cands)
            if best[0] < pot[i]:
                parents[i] = best[1]
    return parents


def _op(op: str) -> Callable[[Any, Any], Any]:
    return {"sum": np.add, "min": np.minimum, "max": np.maximum}[op]


def tree_collect(network: Network, potential: Any, values: Any, op: str = "sum", group: Any = None) -> np.ndarray:
    """Single-path collect: every device's `op` over its subtree of the parent tree (`mean`: subtree sum / size)."""
    vals = _sensor(network, values).astype(np.float64)
    if op == "mean":
        total = tree_collect(network, potential, vals, "sum", group)
        count = tree_collect(network, potential, np.ones(network.n_devices), "sum", group)
        return total / count.reshape((-1,) + (1,) * (total.ndim - 1))
    parents = tree_parents(network, potential, group)
    pot = _sensor(network, potential).astype(np.float64)
    out = vals.copy()
    f = _op(op)
    for i in np.argsort(-pot, kind="stable"):  # children (higher potential) before parents
        p = parents[i]
        if p >= 0:
            out[p] = f(out[p], out[i])
    return out


def dag_collect(network: Network, potential: Any, values: Any, op: str = "sum", group: Any = None) -> np.ndarray:
    """Multi-path collect: sums split among all lower neighbours in proportion to the potential drop; min/max go whole."""
    vals = _sensor(network, values).astype(np.float64)
    if op == "mean":
        total = dag_collect(network, potential, vals, "sum", group)
        count = dag_collect(network, potential, np.ones(network.n_devices), "sum", group)
        return total / count.reshape((-1,) + (1,) * (total.ndim - 1))
    pot = _sensor(network, potential).astype(np.float64)
    grp = None if group is None else _sensor(network, group)
    clipped = np.minimum(pot, _BIG)
    adj = _adjacency(network)
    out = vals.copy()
    f = _op(op)
    for i in np.argsort(-pot, kind="stable"):  # every uphill device is final before its downhill ones
        lower = [j for j, _ in adj[i] if pot[j] < pot[i] and (grp is None or grp[j] == grp[i])]
        if not lower:
            continue
        if op == "sum":
            drops = np.array([clipped[i] - clipped[j] for j in lower])
            total = drops.sum()
            for j, d in zip(lower, drops):
                if total > 0:
                    out[j] = out[j] + out[i] * (d / total)
        else:
            for j in lower:
                out[j] = f(out[j], out[i])
    return out


def tree_broadcast(network: Network, potential: Any, values: Any, group: Any = None) -> np.ndarray:
    """Every device gets the value of the root it reaches by following parents down the potential."""
    vals = _sensor(network, values)
    parents = tree_parents(network, potential, group)
    out = np.array(vals, copy=True)
    pot = _sensor(network, potential).astype(np.float64)
    for i in np.argsort(pot, kind="stable"):  # parents (lower potential) before children
        if parents[i] >= 0:
            out[i] = out[parents[i]]
    return out


# -- ready-made oracles ---------------------------------------------------------------------------------
def gradient_oracle(sources: Any = "source", hops: bool = False, atol: float = 1e-9, select: Callable | None = None) -> Expect:
    """The result is the shortest-path distance (or hop count) to the nearest of `sources` (a sensor name or mask)."""

    def expected(network: Network) -> np.ndarray:
        return shortest_distances(network, sources, hops)

    expected.__name__ = f"shortest_distances({sources!r}{', hops' if hops else ''})"
    return Expect(expected, atol=atol, rtol=1e-9, select=select)


def broadcast_oracle(values: Any, sources: Any = "source", group: Any = None, atol: float = 1e-9, select: Callable | None = None) -> Expect:
    """The result is `values` of the root reached down the shortest-distance potential to `sources`."""

    def expected(network: Network) -> np.ndarray:
        return tree_broadcast(network, shortest_distances(network, sources), values, group)

    expected.__name__ = f"tree_broadcast({values!r} from {sources!r})"
    return Expect(expected, atol=atol, select=select)


def collect_oracle(
    values: Any, sources: Any = "source", op: str = "sum", multipath: bool = False, hops: bool = False,
    atol: float = 1e-9, rtol: float = 1e-9, select: Callable | None = None,
) -> Expect:
    """The result is collect's `op` of `values` up the shortest-distance potential to `sources` (tree or DAG)."""

    def expected(network: Network) -> np.ndarray:
        pot = shortest_distances(network, sources, hops)
        return (dag_collect if multipath else tree_collect)(network, pot, values, op)

    expected.__name__ = f"{'dag' if multipath else 'tree'}_collect({op}, {values!r} towards {sources!r})"
    return Expect(expected, atol=atol, rtol=rtol, select=select)


def gossip_oracle(values: Any, op: str = "max", select: Callable | None = None) -> Expect:
    """The result is `op` (min or max) of `values` over each device's connected component."""

    def expected(network: Network) -> np.ndarray:
        vals = _sensor(network, values)
        comp = components(network)
        out = np.array(vals, copy=True)
        for c in np.unique(comp):
            members = comp == c
            out[members] = vals[members].max() if op == "max" else vals[members].min()
        return out

    expected.__name__ = f"gossip_{op}({values!r})"
    return Expect(expected, select=select)


def check_leaders(network: Network, leader: Any, distance: Any, radius: float, atol: float = 1e-9) -> Mismatch | None:
    """Sparse-choice properties: leaders lead themselves, every device names a nearest leader and its distance, every
    device is within `radius` of a leader, and any two leaders are at least `radius / 2` apart."""
    leader = np.asarray(leader)
    distance = np.asarray(distance, dtype=np.float64)
    n = network.n_devices
    ids = np.arange(n)
    is_leader = leader == ids
    leaders = np.flatnonzero(is_leader)
    problems: dict[int, tuple[str, str]] = {}

    def flag(i: int, expected: str, got: str) -> None:
        problems.setdefault(int(i), (expected, got))

    comp = components(network)
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        if not is_leader[members].any():
            for i in members:
                flag(i, "a leader in its component", "none in the component")
    if len(leaders):
        from_leader = {int(l): shortest_distances(network, ids == l) for l in leaders}
        nearest = shortest_distances(network, is_leader)
        for i in range(n):
            if not (0 <= leader[i] < n) or not is_leader[leader[i]]:
                flag(i, "a leader's id", f"{leader[i]!r}, not a leader")
                continue
            via = from_leader[int(leader[i])][i]
            if not (via == nearest[i] or abs(via - nearest[i]) <= atol):
                flag(i, f"a nearest leader (at {nearest[i]:.6g})", f"leader {leader[i]} at {via:.6g}")
            if not np.isclose(distance[i], nearest[i], atol=atol, rtol=1e-9) and not (np.isinf(distance[i]) and np.isinf(nearest[i])):
                flag(i, f"distance {nearest[i]:.6g} to the nearest leader", f"{distance[i]:.6g}")
            if nearest[i] > radius + atol:
                flag(i, f"a leader within radius {radius}", f"the nearest at {nearest[i]:.6g}")
        for a in leaders:
            for b in leaders:
                if a < b and from_leader[int(a)][b] < radius / 2 - atol:
                    flag(b, f"leaders at least {radius / 2} apart", f"leaders {a} and {b} at {from_leader[int(a)][b]:.6g}")
    if not problems:
        return None
    devs = np.array(sorted(problems))
    return Mismatch(devs, [problems[d][0] for d in devs], [problems[d][1] for d in devs], reason="sparse-choice properties")


def leaders_oracle(radius: float, select: Callable[[Any], tuple[Any, Any]] | None = None, atol: float = 1e-9) -> Satisfies:
    """The result (leader id, distance) is a valid sparse choice with `radius` (see `check_leaders`) and stops changing."""

    def predicate(network: Network, result: Any) -> Mismatch | None:
        leader, distance = (select(result) if select is not None else result)[:2]
        return check_leaders(network, leader, distance, radius, atol)

    return Satisfies(predicate, f"sparse choice with radius {radius}", steady=True)


# -- bounds on stabilisation time -----------------------------------------------------------------------
def hop_diameter(network: Network) -> int:
    """The largest hop count between two connected devices (0 for a single device)."""
    h = 0
    for i in range(network.n_devices):
        d = shortest_distances(network, np.arange(network.n_devices) == i, hops=True)
        finite = d[np.isfinite(d)]
        h = max(h, int(finite.max()) if finite.size else 0)
    return h


def shortest_path_hops(network: Network, sources: Any) -> np.ndarray:
    """For every device, the fewest hops among its shortest (by length) paths from a source (-1 where unreachable)."""
    dist = shortest_distances(network, sources)
    hops = np.full(network.n_devices, -1, dtype=np.int64)
    mask = _sensor(network, sources).astype(bool)
    hops[mask] = 0
    adj = _adjacency(network)
    for i in np.argsort(dist, kind="stable"):
        if mask[i] or not np.isfinite(dist[i]):
            continue
        preds = [hops[j] for j, m in adj[i] if hops[j] >= 0 and dist[j] + m == dist[i]]
        hops[i] = min(preds) + 1 if preds else -1
    return hops


def gradient_bound(network: Network, sources: Any, speed: float | None = None, slack: float = 0.0, hops: bool = False) -> int:
    """Rounds within which a share-based gradient settles from any state with non-negative values, on a network
    where every device reaches a source: max(h, ceil(D / s)) + 1, where h is the largest hop count of the shortest
    paths, D the largest distance and s the shortest link (or BIS's `speed`, with D + slack); `hops=True` for a
    hop count (every link of length 1).

    Why: a value that came from a source along a shortest path of h hops is exact after h rounds; a value that
    came from the initial state has been relayed once per round, gaining at least s each time, so after
    D / s rounds it can no longer undercut the true distance.
    """
    dist = shortest_distances(network, sources, hops)
    finite = dist[np.isfinite(dist)]
    far = float(finite.max()) if finite.size else 0.0
    h = int(far) if hops else int(shortest_path_hops(network, sources).max(initial=0))
    shortest = 1.0 if hops or not network.graph.n_links else float(network.graph.distance.min())
    step = speed if speed is not None else shortest
    return max(h, int(np.ceil((far + slack) / step))) + 1


def tree_height(network: Network, potential: Any, group: Any = None, multipath: bool = False) -> int:
    """Hops of the longest chain of parents (or, multi-path, of strictly descending links) down `potential`."""
    pot = _sensor(network, potential).astype(np.float64)
    grp = None if group is None else _sensor(network, group)
    parents = tree_parents(network, potential, group)
    adj = _adjacency(network)
    depth = np.zeros(network.n_devices, dtype=np.int64)  # longest chain of devices feeding into each one
    for i in np.argsort(-pot, kind="stable"):
        if multipath:
            for j, _ in adj[i]:
                if pot[j] < pot[i] and (grp is None or grp[j] == grp[i]):
                    depth[j] = max(depth[j], depth[i] + 1)
        elif parents[i] >= 0:
            depth[parents[i]] = max(depth[parents[i]], depth[i] + 1)
    return int(depth.max(initial=0))
