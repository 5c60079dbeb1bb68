"""Self-stabilising gossip of the network-wide min or max, by time-replicated gossip with bounded lifetimes.

Plain max-gossip (`fieldlearn.lib.unstable.gossip_max`) never forgets: once the largest value leaves the
network, every device keeps it for ever. Here `replicas` copies of the plain gossip run side by side, started
`stride = ceil(period / (replicas - 1))` rounds apart on a shared clock (`shared_clock`); each copy restarts
from the current values when its turn comes, and a device reports the oldest copy, which has run at least
`period` rounds. A device's clock lags the most advanced one by at most its distance in hops, so `period`
must be at least twice the network's diameter in rounds; then a value that left the network is forgotten
within `replicas * stride + diameter` rounds. Rounds are ticks of the shared clock: one per round under
synchronous rounds or fair sweeps where every device fires once; more where some device fires more often.
"""
from __future__ import annotations

import math
from typing import Any

from ..calculus import Field, aggregate, align, maximum, mux, share
from ._util import combine, fold

__all__ = ["gossip_max", "gossip_min", "replicated_gossip", "shared_clock"]


@aggregate
def shared_clock() -> Field:
    """A round counter kept in step across the network: one more than its own last value, or the largest heard.

    It ticks once per round of the most active device (synchronous rounds: once per round) and never runs
    ahead along a chain of devices firing one after another.
    """
    return share(0, lambda c: maximum(c.self + 1, c.max(default=0)))


@aggregate
def replicated_gossip(value: Any, op: str, period: int, replicas: int = 2) -> Field:
    """Gossip of `op` ('min' or 'max') of `value` over the network, forgetting values gone for more than `replicas * stride` rounds.

    `period` must be at least twice the rounds information needs to cross the network (its diameter in hops
    under synchronous rounds); `replicas` >= 2 copies run `stride = ceil(period / (replicas - 1))` rounds apart,
    so more replicas forget sooner (after about `period * replicas / (replicas - 1)` rounds) at more cost.
    """
    if op not in ("min", "max"):
        raise ValueError(f"gossip op must be 'min' or 'max', got {op!r}")
    if replicas < 2:
        raise ValueError(f"replicated gossip needs at least 2 replicas, got {replicas}")
    if period < 1:
        raise ValueError(f"period must be at least one round, got {period}")
    stride = max(1, math.ceil(period / (replicas - 1)))
    clock = shared_clock()
    now = clock // stride  # the newest replica's generation
    out = None
    for slot in range(replicas):
        generation = now - ((now - slot) % replicas)  # the newest generation that lives in this slot
        with align(("replica", slot)):
            level = _gossip_generation(value, op, generation)
        oldest = ((now + 1) % replicas) == slot
        out = level if out is None else mux(oldest, level, out)
    return out


def _gossip_generation(value: Any, op: str, generation: Field) -> Field:
    def step(n: tuple) -> tuple:
        gen, level = n
        heard = fold(op, level, gen == generation)  # neighbours in this generation
        mine = mux(gen.self == generation, combine(op, level.self, heard), heard)  # and my own level, if mine is
        return generation, combine(op, value, mine)

    return share((generation, value), step)[1]


@aggregate
def gossip_max(value: Any, period: int, replicas: int = 2) -> Field:
    """Network-wide maximum of `value`, self-stabilising (forgets vanished values); see `replicated_gossip`."""
    return replicated_gossip(value, "max", period, replicas)


@aggregate
def gossip_min(value: Any, period: int, replicas: int = 2) -> Field:
    """Network-wide minimum of `value`, self-stabilising (forgets vanished values); see `replicated_gossip`."""
    return replicated_gossip(value, "min", period, replicas)
