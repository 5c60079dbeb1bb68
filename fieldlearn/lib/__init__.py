"""Self-stabilising building blocks (G, C, S, T, gossip and regions), written only with the public constructs."""
from ._util import NO_ID
from .collect import collect, parent_of, tree_parent
from .dwell import dwell_time, mobile_regions
from .election import Choice, Election, elect_leaders, random_priority, sparse_choice
from .gossip import gossip_max, gossip_min, replicated_gossip, shared_clock
from .regions import Region, regions
from .spreading import broadcast, channel, distance_between, distance_to, distance_to_bis, hop_count
from .time import changed, countdown, counter, decay, rounds_since, timer

__all__ = [
    "NO_ID", "Choice", "Election", "Region", "broadcast", "changed", "channel", "collect", "countdown", "counter",
    "decay",
    "distance_between", "distance_to", "distance_to_bis", "dwell_time", "elect_leaders", "gossip_max", "gossip_min",
    "hop_count", "mobile_regions", "parent_of", "random_priority", "regions", "replicated_gossip", "rounds_since", "shared_clock",
    "sparse_choice", "timer", "tree_parent",
]
