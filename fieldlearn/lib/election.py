"""S block: sparse-choice leader election with a radius (one leader per area of about `radius`)."""
from __future__ import annotations

from typing import Any, NamedTuple

from ..calculus import Field, NbrField, aggregate, distances, mid, mux, rep, share
from ._util import INF, NO_ID, lex_less, lex_min, parent_of, uniform_hash

__all__ = ["Election", "elect_leaders", "random_priority", "sparse_choice"]


class Election(NamedTuple):
    """Result of `elect_leaders`: the id of the device's (nearest) leader and the distance to it."""

    leader: Field
    distance: Field


class Choice(NamedTuple):
    """Everything `sparse_choice` computes: leader status, distance and id of the nearest leader, competing key, and
    the device's `parent` in its leader's tree (what `tree_parent(distance, leader)` gives; None unless asked for)."""

    is_leader: Field
    distance: Field
    leader: Field
    lead_priority: Field
    lead_id: Field
    parent: Field | None = None


@aggregate
def random_priority(seed: Any = 0) -> Field:
    """A pseudo-random number in (0, 1) drawn once per device (kept by `rep`) from its id and `seed` (a number or a sensor)."""
    return rep(lambda: uniform_hash(mid(), seed), lambda drawn: drawn)  # drawn in a device's first round only


@aggregate
def sparse_choice(radius: float, priority: Any = None, metric: NbrField | None = None, seed: Any = 0,
                  tree: bool = False) -> Choice:
    """Sparse choice as in self-organising coordination regions: leaders about `radius` apart, each device near one.

    Each device has a key (priority, id): a higher priority is better, the lower id breaks ties; the
    priority defaults to `random_priority(seed)`, drawn once. Every round a device reads its neighbours'
    distances to their nearest leader and the keys they follow, and then:
    - if it led last round, it keeps leading unless a neighbour `j` with `distance_j + link < radius / 2`
      offers a better key, in which case it steps down and follows that key;
    - otherwise it becomes a candidate (and leads) when it is farther than `radius` from any leader; within
      `radius / 2` it follows the best key offered by such neighbours; in between it follows no one.
    Its `distance` is then 0 if it leads, else the least `distance_j + link`, and `leader` is the id of that
    nearest leader (ties to the lowest id). At a fixed point every device is within `radius` of a leader and
    two leaders are at least `radius / 2` apart (a better key within `radius / 2` always reaches the worse
    leader along the shortest path between them). A device ignores echoes of its own key and never takes its
    own id from a neighbour, and distances to a vanished leader rise, so stale information fades and the
    election recovers after leaders fail or move. `lead_priority`/`lead_id` give the key followed (-inf and
    2**62 for none). With `tree`, `parent` is the neighbour of least distance (lowest id on ties) that follows the
    same leader, if it is nearer to it than the device (-1 otherwise): the tree that collect and broadcast run
    along, found from the neighbours' distances and leaders the election has read anyway (no messages of its own).
    """
    m = distances() if metric is None else metric
    me = mid()
    mine = random_priority(seed) if priority is None else priority
    key = -mine  # lower is better from here on: (key, id) pairs are compared lexicographically
    half = radius / 2.0

    def step(n: tuple) -> tuple:
        lead_key, lead_id, dist, nearest = n
        was_leader = (lead_key.self == key) & (lead_id.self == me)
        # G: distance to the nearest leader through the neighbours, and that leader's id (entries naming me are
        # stale unless I lead, so they never give me my own id; they still count for the distance and fade)
        through = dist + m
        echo = nearest == me
        g_best, g_id = lex_min(mux(echo, INF, through), nearest)
        echoed = through.min(where=echo, default=INF)  # the few entries naming me: a sparse reduction
        g_dist = mux(echoed < g_best, echoed, g_best)  # the least of all entries, without a pass over all of them
        before = mux(was_leader, 0.0, g_dist)
        # competition: the best key offered within radius / 2, ignoring echoes of my own key (a leader keeps
        # its key unless a better one is offered; a follower keeps nothing of its own from round to round)
        reach = (through < half) & (lead_id != me)
        best_key, best_id = lex_min(lead_key, lead_id, where=reach)
        stay = was_leader & lex_less(key, me, best_key, best_id)
        leads = stay | (before > radius)
        d = mux(leads, 0.0, g_dist)
        near = mux(leads, me, mux(g_best < INF, g_id, NO_ID))
        followed = d < half
        new_key = mux(leads, key, mux(followed, best_key, INF))
        new_id = mux(leads, me, mux(followed, best_id, NO_ID))
        if tree:  # from the neighbours' exports that nbr(d) and nbr(near) would read
            parents.append(parent_of(dist, d, nearest, near))
        return new_key, new_id, d, near

    parents: list[Field] = []  # the step's parent: a result of this round's step, not part of the shared state
    new_key, new_id, d, near = share((INF, NO_ID, INF, NO_ID), step)
    return Choice(near == me, d, near, -new_key, new_id, parents[-1] if tree else None)


@aggregate
def elect_leaders(radius: float, priority: Any = None, metric: NbrField | None = None, seed: Any = 0) -> Election:
    """Elect leaders about `radius` apart (sparse choice, see `sparse_choice`); returns (leader id, distance to it).

    A device is a leader where `leader == mid()`. Self-stabilising: from any state, on a fixed network, the
    leaders settle with every device within `radius` of one and any two at least `radius / 2` apart.
    """
    choice = sparse_choice(radius, priority, metric, seed)
    return Election(choice.leader, choice.distance)
