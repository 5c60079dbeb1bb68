"""The field calculus: fields, alignment, the round VM and the constructs (numpy only; torch tensors handled lazily)."""
from .constructs import (
    aggregate,
    align,
    branch,
    clock,
    constant,
    distances,
    evolving,
    exchange,
    local,
    maximum,
    mid,
    minimum,
    mux,
    nbr,
    nbr_ids,
    nbr_sense,
    rep,
    resource,
    sense,
    share,
    uid,
)
from .allocator import keep_freed_memory
from .fields import Domain, Field, FieldError, NbrField
from .network import Graph, Network, graph_from_edges, knn_graph, radius_graph
from .paths import AlignmentError
from .program import ParameterError, Program, program
from .pytree import register_pytree_node, tree_flatten, tree_map, tree_unflatten
from .runner import Trace, run
from .vm import Inbox, MissingSensor, RoundVM

__all__ = [
    "AlignmentError", "Domain", "Field", "FieldError", "Graph", "Inbox", "MissingSensor", "NbrField", "Network", "ParameterError", "Program",
    "RoundVM", "Trace",
    "aggregate", "align", "branch", "clock", "constant", "distances", "evolving", "exchange", "graph_from_edges",
    "keep_freed_memory", "local", "knn_graph", "maximum",
    "mid", "minimum", "mux", "nbr", "nbr_ids", "nbr_sense", "program", "radius_graph", "register_pytree_node", "rep",
    "resource", "run",
    "sense", "share", "tree_flatten", "tree_map", "tree_unflatten", "uid",
]
