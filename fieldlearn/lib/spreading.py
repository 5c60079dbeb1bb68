"""G blocks: gradients (distance to a source), information spreading down a potential, and channels.

All of them use `share`, so information moves one hop per round. They are self-stabilising on a fixed
network with strictly positive link lengths: from any initial state they reach the value the inputs
determine, and again after the inputs or the topology change (see each block for how fast).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..calculus import Field, NbrField, aggregate, distances, mux, nbr_ids, share
from ._util import INF, lex_min, pick_or, tree_parent

__all__ = ["broadcast", "channel", "distance_between", "distance_to", "distance_to_bis", "hop_count"]


@aggregate
def distance_to(source: Any, metric: NbrField | None = None) -> Field:
    """Distance to the nearest `source` device along links (share-based Bellman-Ford): the classic gradient.

    `metric` gives the length of the link to every neighbour (default: `distances()`). Falls to the right
    value in as many rounds as the shortest paths have hops; a value that must *rise* (a source vanished,
    a link broke) climbs by at least the shortest link length per round (the rising-value problem; see
    `distance_to_bis` for a bounded variant). Devices with no source in reach keep rising towards infinity.
    """
    m = distances() if metric is None else metric
    return share(INF, lambda d: mux(source, 0.0, (d + m).min(default=INF)))


@aggregate
def distance_to_bis(source: Any, speed: float, metric: NbrField | None = None, slack: float = 0.0) -> Field:
    """Gradient bounding the rising-value problem as in BIS (bounded information speed): stale values rise >= `speed`/round.

    Every estimate travels with its age in relays `t` (one round per hop under synchronous rounds); an
    estimate relayed `t` times is at least `speed * t - slack`. A fresh estimate that came along a shortest
    path of `h` hops and length `D` is exact when `speed * h - slack <= D` (always true when `speed` is at most
    the shortest link length), while stale information, which no source refreshes, ages by one every round
    and so rises by at least `speed` per round however short the links are. A larger `speed` heals faster and
    over-estimates paths whose links are shorter than `speed` on average (by at most `speed * h - slack - D`).
    """
    m = distances() if metric is None else metric

    def step(n: tuple[NbrField, NbrField]) -> tuple[Any, Any]:
        d, t = n
        relayed = t + 1.0
        estimate = np.maximum(d + m, relayed * speed - slack)
        best, age = lex_min(estimate, relayed, INF, INF)
        return mux(source, (0.0, 0.0), (best, age))

    return share((INF, INF), step)[0]


@aggregate
def hop_count(source: Any) -> Field:
    """Number of hops to the nearest `source` (inf where none is in reach): a gradient with unit links."""
    return share(INF, lambda d: mux(source, 0.0, (d + 1.0).min(default=INF)))


@aggregate
def broadcast(potential: Any, value: Any, group: Any = None, parent: Any = None) -> Any:
    """The `value` of the source at the bottom of `potential`, flowing down it (each device copies its parent's).

    The parent of a device is its neighbour of least potential (ties to the lowest id) if that is lower
    than its own; a device with no such neighbour (a source: a local minimum) spreads its own `value`.
    With `group` (e.g. a region's leader id), only neighbours of the same group count, so a value never
    leaks across region borders. `value` may be nested (tuples, dicts of fields). Once `potential` is
    stable, a device `h` hops down from its source holds the source's value after `h` rounds. The parent is
    `tree_parent(potential, group)`; `parent`, if given, is that field (e.g. `Region.parent`), found once for
    several collects and broadcasts over one tree.
    """
    parent = tree_parent(potential, group) if parent is None else parent
    # a 1-tuple: a callable value (a model field) must not read as a lazy init
    return share((value,), lambda n: (pick_or(n[0], nbr_ids() == parent, value),))[0]


@aggregate
def distance_between(source: Any, target: Any, metric: NbrField | None = None) -> Field:
    """Distance from the nearest `source` to the nearest `target`, known at every device (broadcast from the source)."""
    to_source = distance_to(source, metric)
    return broadcast(to_source, distance_to(target, metric))


@aggregate
def channel(source: Any, target: Any, width: float, metric: NbrField | None = None) -> Field:
    """Whether a device lies on a shortest path from `source` to `target`, give or take `width` (a redundant channel)."""
    to_source = distance_to(source, metric)
    to_target = distance_to(target, metric)
    between = broadcast(to_source, to_target)
    return to_source + to_target <= between + width
