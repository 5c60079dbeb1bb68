"""Shared helpers for simulator tests: a minimal valid scenario dict and tiny programs written with the constructs."""
from __future__ import annotations

from typing import Any

from fieldlearn import distances, mux, nbr, sense, share

BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 1,
    "duration": {"rounds": 5},
    "regions": [{"name": "A", "box": [0, 0, 5, 5]}],
    "sensors": {"source": {"default": False, "set": [{"devices": {"ids": [0]}, "value": True}]}},
    "deployments": [{"kind": "grid", "rows": 3, "cols": 3, "spacing": 1.0}],
    "links": {"rule": "radius", "radius": 1.1},
    "program": {"name": "gradient"},
}


def gradient_program(source: str = "source") -> dict:
    """Share-based gradient written with the constructs only (independent of fieldlearn.lib)."""
    src = sense(source)
    return {"gradient": share(float("inf"), lambda d: mux(src, 0.0, (d + distances()).min()))}


def heard_program() -> dict:
    """How many neighbours' messages each device received this round (aligned neighbours of one nbr)."""
    return {"heard": nbr(1.0).sum()}
