"""Shared helpers for simulator tests: a minimal valid scenario dict and tiny programs written with the constructs."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fieldlearn import distances, mux, nbr, sense, share
from fieldlearn.sim.loader import LoadedScenario, resolve_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

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


def scenario(**changes: Any) -> LoadedScenario:
    """BASE with some top-level blocks replaced, resolved (programs by name, files beside the shipped scenarios)."""
    data = copy.deepcopy(BASE)
    data.update(changes)
    return resolve_scenario(data, SCENARIOS)


def gradient_program(source: str = "source") -> dict:
    """Share-based gradient written with the constructs only (independent of fieldlearn.lib)."""
    src = sense(source)
    return {"gradient": share(float("inf"), lambda d: mux(src, 0.0, (d + distances()).min()))}


def heard_program() -> dict:
    """How many neighbours' messages each device received this round (aligned neighbours of one nbr)."""
    return {"heard": nbr(1.0).sum()}


CITY: dict[str, Any] = {
    "name": "city",
    "seed": 1,
    "duration": {"rounds": 40},
    "regions": {"from_file": "data/city-6x6/districts.json"},
    "streets": "data/city-6x6/streets.json",
    "sensors": {"source": {"default": False, "set": [{"devices": {"deployment": "rsu"}, "value": True}]}},
    "deployments": [{"name": "vehicles", "kind": "vehicles", "trace": "data/city-6x6/fcd.xml.gz"},
                    {"name": "rsu", "kind": "points", "points": [[150.0, 150.0]]}],
    "links": {"rule": "radius", "radius": 100.0},
    "program": {"name": "gradient"},
}


def city(**changes: Any) -> LoadedScenario:
    """The shipped 6x6 city's vehicles (replayed) and one road-side unit, districts as regions, streets drawn."""
    data = copy.deepcopy(CITY)
    data.update(changes)
    return resolve_scenario(data, SCENARIOS)
