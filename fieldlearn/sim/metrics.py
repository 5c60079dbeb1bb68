"""Per-row metrics: built-in ones, those of the resources a program uses (e.g. learning), and a registry through
which users add their own."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import ScenarioError

if TYPE_CHECKING:
    from .engine import Engine

Metric = Callable[["Engine"], Any]
"""A metric receives the engine (positions, alive, outputs, sensors, graph, time, vm...) and returns a number
or a dict of numbers (written as columns `name.key`)."""

_REGISTRY: dict[str, Metric] = {}


def register_metric(name: str, fn: Metric | None = None) -> Any:
    """Make metric `name` available to scenarios' `exports.metrics`; usable as a decorator."""

    def add(f: Metric) -> Metric:
        _REGISTRY[name] = f
        return f

    return add(fn) if fn is not None else add


def _mean_degree(e: "Engine") -> float:
    n = int(e.alive.sum())
    return e.graph.n_links / n if n else 0.0


BUILTIN: dict[str, Metric] = {
    "devices": lambda e: int(e.alive.sum()),
    "crashed": lambda e: int(e.crashed.sum()),
    "present": lambda e: int(e.present.sum()),
    "departed": lambda e: int(e.departed.sum()),
    "links": lambda e: int(e.graph.n_links),
    "degree": _mean_degree,
    "device_rounds": lambda e: int(e.device_rounds),
    "batches": lambda e: int(e.batches),
    "graph_builds": lambda e: int(e.env.rebuilds),
    "connected": lambda e: _components(e) == 1,
    "sent_bytes": lambda e: _sent_bytes(e),
    "components": lambda e: _components(e),
}


def _sent_bytes(e: "Engine") -> float:
    """Mean over the alive devices of the bytes each exported in its latest round (its broadcast to its neighbours)."""
    ids = np.flatnonzero(e.alive & (e.rounds > 0))
    return float(e.vm.sent_bytes(ids).mean()) if len(ids) else 0.0


def _components(e: "Engine") -> int:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.flatnonzero(e.alive)
    if len(ids) == 0:
        return 0
    g = e.graph
    m = csr_matrix((np.ones(g.n_links), g.neighbours, g.indptr), shape=(e.capacity, e.capacity))
    sub = m[ids][:, ids]
    return int(connected_components(sub, directed=False)[0])


def resolve_metric(name: str, engine: "Engine", path: str) -> Metric:
    """The metric called `name`: the engine's (from the resources its program uses) first, then registered ones,
    then built-in ones."""
    for table in (engine.metrics, _REGISTRY, BUILTIN):
        if name in table:
            return table[name]
    known = sorted(set(BUILTIN) | set(_REGISTRY) | set(engine.metrics))
    raise ScenarioError(f"unknown metric {name!r} (available: {', '.join(known)})", path)
