"""Gossip: every device learns the network-wide maximum and minimum of a sensor, forgetting values that left."""
from typing import Annotated

from annotated_types import Ge

from fieldlearn import program, sense
from fieldlearn.lib import gossip_max, gossip_min


@program
def gossip_extremes(sensor: str = "temperature", period: Annotated[int, Ge(1)] = 30, replicas: Annotated[int, Ge(1)] = 3) -> dict:
    """Outputs `max` and `min` of `sensor` over the network (self-stabilising replicated gossip)."""
    value = sense(sensor)
    return {"max": gossip_max(value, period, replicas), "min": gossip_min(value, period, replicas)}
