"""Blocks that are NOT self-stabilising (they never forget a past input); use `fieldlearn.lib` in programs."""
from .gossip import gossip_max, gossip_min

__all__ = ["gossip_max", "gossip_min"]
