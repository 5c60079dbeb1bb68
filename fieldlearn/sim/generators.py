"""Calling a networkx generator for a graph deployment without letting it grow past the limits: for the common
generators the size is estimated from the parameters and refused before anything is built; every generator that
takes `create_using` builds into a bounded graph that stops at the first node or edge too many; the few others are
size-checked after they are built."""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import networkx as nx

from . import scenario as S

#: At most this many edges in a generated graph (networkx holds each in two dicts: about 0.5 GB per million).
MAX_GRAPH_EDGES = 5_000_000


class GraphTooLarge(Exception):
    """A generator would build more nodes or edges than a graph deployment may have."""


def _too_many_nodes(n: float) -> GraphTooLarge:
    return GraphTooLarge(f"more than {S.MAX_DEVICES:,} nodes (the most a scenario may have)"
                         + (f": about {n:,.0f}" if math.isfinite(n) else ""))


def _too_many_edges(m: float) -> GraphTooLarge:
    return GraphTooLarge(f"more than {MAX_GRAPH_EDGES:,} edges (the most a graph deployment may have)"
                         + (f": up to {m:,.0f}" if math.isfinite(m) else ""))


class _Bounded:
    """A networkx graph that raises GraphTooLarge as soon as it holds one node too many or receives one edge too many
    (edges are counted as they are added, repeated ones too: a generator is stopped before it spends the memory)."""

    def __init__(self, incoming_graph_data: Any = None, **attr: Any):
        self.edges_added = 0
        self.bulk = 0
        super().__init__(incoming_graph_data, **attr)  # type: ignore[call-arg]

    def _nodes_ok(self) -> None:
        if len(self) > S.MAX_DEVICES:  # type: ignore[arg-type]
            raise _too_many_nodes(math.inf)

    def _edge_ok(self) -> None:
        self.edges_added += 1
        if self.edges_added > MAX_GRAPH_EDGES:
            raise _too_many_edges(math.inf)

    def _nodes(self, nodes: Any) -> Any:
        for n in nodes:
            self._nodes_ok()
            yield n
        self._nodes_ok()

    def _edges(self, edges: Any) -> Any:
        for e in edges:
            self._edge_ok()
            self._nodes_ok()
            yield e
        self._nodes_ok()

    def add_node(self, node: Any, **attr: Any) -> None:
        super().add_node(node, **attr)  # type: ignore[misc]
        self._nodes_ok()

    def add_nodes_from(self, nodes: Any, **attr: Any) -> None:
        super().add_nodes_from(self._nodes(nodes), **attr)  # type: ignore[misc]

    def add_edge(self, u: Any, v: Any, *args: Any, **attr: Any) -> Any:
        if not self.bulk:  # a multigraph's add_edges_from calls add_edge: count once
            self._edge_ok()
        out = super().add_edge(u, v, *args, **attr)  # type: ignore[misc]
        self._nodes_ok()
        return out

    def add_edges_from(self, edges: Any, **attr: Any) -> Any:
        self.bulk += 1
        try:
            return super().add_edges_from(self._edges(edges), **attr)  # type: ignore[misc]
        finally:
            self.bulk -= 1


class BoundedGraph(_Bounded, nx.Graph):
    """nx.Graph, bounded."""


class BoundedDiGraph(_Bounded, nx.DiGraph):
    """nx.DiGraph, bounded."""


class BoundedMultiGraph(_Bounded, nx.MultiGraph):
    """nx.MultiGraph, bounded."""


class BoundedMultiDiGraph(_Bounded, nx.MultiDiGraph):
    """nx.MultiDiGraph, bounded."""


BOUNDED = {nx.Graph: BoundedGraph, nx.DiGraph: BoundedDiGraph, nx.MultiGraph: BoundedMultiGraph,
           nx.MultiDiGraph: BoundedMultiDiGraph}
DIRECTED = {nx.Graph: nx.DiGraph, nx.MultiGraph: nx.MultiDiGraph}

#: What the generators that take create_using build when not told otherwise, where it is not nx.Graph (networkx 3).
DEFAULT_TYPES: dict[str, type] = {
    "configuration_model": nx.MultiGraph, "random_clustered_graph": nx.MultiGraph,
    "margulis_gabber_galil_graph": nx.MultiGraph, "chordal_cycle_graph": nx.MultiGraph,
    "directed_configuration_model": nx.MultiDiGraph, "directed_havel_hakimi_graph": nx.DiGraph,
    "paley_graph": nx.DiGraph, "gn_graph": nx.DiGraph, "gnc_graph": nx.DiGraph, "gnr_graph": nx.DiGraph,
}


def _count(n: Any) -> int:
    """A node count given as a number or as the nodes themselves (networkx's `nodes_or_number`)."""
    if isinstance(n, bool):
        raise TypeError("not a count")
    if isinstance(n, (int, float)):
        return max(int(n), 0)
    return len(n)


def _pairs(n: float) -> float:
    return n * (n - 1) / 2


def _prob(*ps: Any) -> float:
    """The largest of some probabilities (nested lists too), at most 1."""
    flat: list[float] = []
    for p in ps:
        flat += [float(x) for x in (sum(p, []) if p and isinstance(p[0], list) else p)] if isinstance(p, list) else [float(p)]
    return min(1.0, max(flat, default=1.0))


def _likely(pairs: float, p: float) -> float:
    """Most edges of `pairs` pairs each linked with probability at most `p`, but for odds below one in a million."""
    mean = pairs * p
    return min(pairs, mean + 5 * math.sqrt(mean) + 5)


def _geometric(a: dict) -> tuple[float, float]:
    n = _count(a["n"])
    share = 1.0 if a.get("pos") is not None else min(1.0, (2 * float(a["radius"])) ** int(a.get("dim", 2)))
    return n, _likely(_pairs(n), share)  # points in the unit cube: a ball of radius r fits in a cube of side 2r


def _grid(a: dict) -> tuple[float, float]:
    sizes = [_count(d) for d in a["dim"]]
    n = math.prod(sizes)
    return n, n * len(sizes)


def _tree(r: int, h: int) -> float:
    """Nodes of a balanced r-ary tree of height h."""
    return float(h + 1) if r == 1 else (float(r) ** (h + 1) - 1) / max(r - 1, 1)


def _gnp(a: dict) -> tuple[float, float]:
    n = _count(a["n"])
    return n, _likely(_pairs(n) * (2 if a.get("directed") else 1), _prob(a["p"]))


def _gnm(a: dict) -> tuple[float, float]:
    n = _count(a["n"])
    return n, min(float(a["m"]), _pairs(n) * (2 if a.get("directed") else 1))


#: (nodes, most edges) from the bound arguments: the common generators (refused at once, before anything is built;
#: those that take create_using are also stopped while building, at the first node or edge too many).
ESTIMATES: dict[str, Callable[[dict], tuple[float, float]]] = {
    "empty_graph": lambda a: (_count(a["n"]), 0),
    "complete_graph": lambda a: (_count(a["n"]), _pairs(_count(a["n"]))),
    "complete_bipartite_graph": lambda a: (_count(a["n1"]) + _count(a["n2"]), _count(a["n1"]) * _count(a["n2"])),
    "path_graph": lambda a: (_count(a["n"]), _count(a["n"])),
    "cycle_graph": lambda a: (_count(a["n"]), _count(a["n"])),
    "star_graph": lambda a: (_count(a["n"]) + 1, _count(a["n"])),
    "wheel_graph": lambda a: (_count(a["n"]), 2 * _count(a["n"])),
    "grid_2d_graph": lambda a: (_count(a["m"]) * _count(a["n"]), 2 * _count(a["m"]) * _count(a["n"])),
    "ladder_graph": lambda a: (2 * a["n"], 3 * a["n"]),
    "circular_ladder_graph": lambda a: (2 * a["n"], 3 * a["n"]),
    "barbell_graph": lambda a: (2 * a["m1"] + a["m2"], 2 * _pairs(a["m1"]) + a["m2"] + 1),
    "lollipop_graph": lambda a: (_count(a["m"]) + _count(a["n"]), _pairs(_count(a["m"])) + _count(a["n"])),
    "balanced_tree": lambda a: (_tree(a["r"], a["h"]), _tree(a["r"], a["h"])),
    "full_rary_tree": lambda a: (a["n"], a["n"]),
    "binomial_tree": lambda a: (2.0 ** a["n"], 2.0 ** a["n"]),
    "gnp_random_graph": _gnp,
    "erdos_renyi_graph": _gnp,
    "binomial_graph": _gnp,
    "fast_gnp_random_graph": _gnp,
    "gnm_random_graph": _gnm,
    "dense_gnm_random_graph": _gnm,
    "barabasi_albert_graph": lambda a: (a["n"], a["n"] * a["m"]),
    "dual_barabasi_albert_graph": lambda a: (a["n"], a["n"] * max(a["m1"], a["m2"])),
    "extended_barabasi_albert_graph": lambda a: (a["n"], a["n"] * a["m"] * 2),
    "powerlaw_cluster_graph": lambda a: (a["n"], a["n"] * a["m"]),
    "watts_strogatz_graph": lambda a: (a["n"], a["n"] * a["k"] / 2),
    "connected_watts_strogatz_graph": lambda a: (a["n"], a["n"] * a["k"] / 2),
    "newman_watts_strogatz_graph": lambda a: (a["n"], a["n"] * a["k"]),
    "random_regular_graph": lambda a: (a["n"], a["n"] * a["d"] / 2),
    "triangular_lattice_graph": lambda a: ((a["m"] + 1) * (a["n"] + 1), 3 * (a["m"] + 1) * (a["n"] + 1)),
    "hexagonal_lattice_graph": lambda a: (2 * (a["m"] + 1) * (a["n"] + 1), 3 * (a["m"] + 1) * (a["n"] + 1)),
    "dorogovtsev_goltsev_mendes_graph": lambda a: (3.0 ** a["n"], 3.0 ** (a["n"] + 1)),
    "circulant_graph": lambda a: (_count(a["n"]), _count(a["n"]) * len(a["offsets"])),
    "random_geometric_graph": _geometric,
    "soft_random_geometric_graph": _geometric,
    "thresholded_random_geometric_graph": _geometric,
    "waxman_graph": lambda a: (_count(a["n"]), _likely(_pairs(_count(a["n"])), _prob(a["beta"]))),
    "geographical_threshold_graph": lambda a: (_count(a["n"]), _pairs(_count(a["n"]))),
    "navigable_small_world_graph": lambda a: (a["n"] ** a["dim"], a["n"] ** a["dim"] * ((2 * a["p"] + 1) ** a["dim"] + a["q"])),
    "grid_graph": _grid,
    "hypercube_graph": lambda a: (2.0 ** a["n"], 2.0 ** a["n"] * a["n"] / 2),
    "caveman_graph": lambda a: (a["l"] * a["k"], a["l"] * _pairs(a["k"])),
    "connected_caveman_graph": lambda a: (a["l"] * a["k"], a["l"] * _pairs(a["k"])),
    "relaxed_caveman_graph": lambda a: (a["l"] * a["k"], a["l"] * _pairs(a["k"])),
    "ring_of_cliques": lambda a: (a["num_cliques"] * a["clique_size"], a["num_cliques"] * (_pairs(a["clique_size"]) + 1)),
    "windmill_graph": lambda a: (a["n"] * (a["k"] - 1) + 1, a["n"] * _pairs(a["k"])),
    "turan_graph": lambda a: (a["n"], _pairs(a["n"])),
    "random_partition_graph": lambda a: (sum(a["sizes"]), _likely(_pairs(sum(a["sizes"])), _prob(a["p_in"], a["p_out"]))),
    "planted_partition_graph": lambda a: (a["l"] * a["k"], _likely(_pairs(a["l"] * a["k"]), _prob(a["p_in"], a["p_out"]))),
    "gaussian_random_partition_graph": lambda a: (a["n"], _likely(_pairs(a["n"]), _prob(a["p_in"], a["p_out"]))),
    "stochastic_block_model": lambda a: (sum(a["sizes"]), _likely(_pairs(sum(a["sizes"])), _prob(a["p"]))),
    "kneser_graph": lambda a: (math.comb(a["n"], a["k"]), math.comb(a["n"], a["k"]) * math.comb(max(a["n"] - a["k"], 0), a["k"]) / 2),
    "mycielski_graph": lambda a: (3 * 2.0 ** (a["n"] - 2), 3 * 2.0 ** (a["n"] - 2) * a["n"]),
    "sudoku_graph": lambda a: (a["n"] ** 4, a["n"] ** 4 * 3 * a["n"] ** 2 / 2),
    "random_k_out_graph": lambda a: (a["n"], a["n"] * a["k"]),
    "scale_free_graph": lambda a: (a["n"], 2 * a["n"] / max(a["alpha"] + a["gamma"], 1e-9) + 10),  # an edge a step
    "LFR_benchmark_graph": lambda a: (a["n"], a["n"] * (a["max_degree"] or a["n"]) / 2),
    "random_internet_as_graph": lambda a: (a["n"], 4 * a["n"]),  # a sparse graph: about 1.5 edges a node
    "random_cograph": lambda a: (2.0 ** a["n"], _pairs(2.0 ** a["n"])),
    "random_labeled_tree": lambda a: (a["n"], a["n"]),
    "random_labeled_rooted_tree": lambda a: (a["n"], a["n"]),
    "random_labeled_rooted_forest": lambda a: (a["n"], a["n"]),
    "random_unlabeled_tree": lambda a: (a["n"] * (a["number_of_trees"] or 1), a["n"] * (a["number_of_trees"] or 1)),
    "random_unlabeled_rooted_tree": lambda a: (a["n"] * (a["number_of_trees"] or 1), a["n"] * (a["number_of_trees"] or 1)),
    "random_unlabeled_rooted_forest": lambda a: (a["n"] * (a["number_of_forests"] or 1), a["n"] * (a["number_of_forests"] or 1)),
    "random_powerlaw_tree_sequence": lambda a: (a["n"], a["n"]),
    "number_of_nonisomorphic_trees": lambda a: (a["order"], a["order"]),
    "expected_degree_graph": lambda a: (len(a["w"]), min(_pairs(len(a["w"])), 2 * sum(a["w"]) + len(a["w"]))),
    "random_degree_sequence_graph": lambda a: (len(a["sequence"]), sum(a["sequence"]) / 2),
    "general_random_intersection_graph": lambda a: (a["n"] + a["m"], _pairs(a["n"]) + a["n"] * a["m"]),
    "uniform_random_intersection_graph": lambda a: (a["n"] + a["m"], _pairs(a["n"]) + a["n"] * a["m"]),
    "k_random_intersection_graph": lambda a: (a["n"] + a["m"], _pairs(a["n"]) + a["n"] * a["m"]),
    "visibility_graph": lambda a: (len(a["series"]), _pairs(len(a["series"]))),
    "interval_graph": lambda a: (len(a["intervals"]), _pairs(len(a["intervals"]))),
    "joint_degree_graph": lambda a: (sum(sum(v.values()) for v in a["joint_degrees"].values()),
                                     sum(sum(v.values()) for v in a["joint_degrees"].values())),
    "directed_joint_degree_graph": lambda a: (len(a["in_degrees"]), sum(a["out_degrees"])),
}


def estimate(name: str, fn: Callable, params: dict[str, Any]) -> tuple[float, float] | None:
    """(nodes, most edges) that `fn(**params)` would build, for the generators of ESTIMATES; None when unknown (or
    the parameters are not even numbers: the generator then refuses them itself)."""
    how = ESTIMATES.get(name)
    if how is None:
        return None
    try:
        bound = inspect.signature(fn).bind(**params)
        bound.apply_defaults()
        nodes, edges = how(dict(bound.arguments))
        return float(nodes), float(edges)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError):
        return None


def bounded_call(name: str, fn: Callable, params: dict[str, Any]) -> Any:
    """`fn(**params)`, stopped with GraphTooLarge before it builds more than the limits allow."""
    known = estimate(name, fn, params)
    if known is not None:
        nodes, edges = known
        if nodes > S.MAX_DEVICES:
            raise _too_many_nodes(nodes)
        if edges > MAX_GRAPH_EDGES:
            raise _too_many_edges(edges)
    try:
        takes = "create_using" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes = False
    if not takes:
        return fn(**params)
    kind = DEFAULT_TYPES.get(name, nx.Graph)
    if params.get("directed") is True:
        kind = DIRECTED.get(kind, kind)
    return fn(**params, create_using=BOUNDED[kind])
