"""Gossip: every device learns the network-wide maximum and minimum of a sensor, forgetting values that left."""
from fieldlearn import sense
from fieldlearn.lib import gossip_max, gossip_min


def program(sensor: str = "temperature", period: int = 30, replicas: int = 3) -> dict:
    """Outputs `max` and `min` of `sensor` over the network (self-stabilising replicated gossip)."""
    value = sense(sensor)
    return {"max": gossip_max(value, period, replicas), "min": gossip_min(value, period, replicas)}
