"""Plain gossip that is NOT self-stabilising: kept for comparison and for demonstrating why replication is needed."""
from __future__ import annotations

from typing import Any

from ...calculus import Field, aggregate, share
from .._util import combine

__all__ = ["gossip_max", "gossip_min"]


@aggregate
def gossip_max(value: Any) -> Field:
    """Largest `value` ever heard (own included): converges fast but never forgets a value that left the network."""
    return share(value, lambda n: combine("max", value, n.max(include_self=True)))


@aggregate
def gossip_min(value: Any) -> Field:
    """Smallest `value` ever heard (own included): converges fast but never forgets a value that left the network."""
    return share(value, lambda n: combine("min", value, n.min(include_self=True)))
