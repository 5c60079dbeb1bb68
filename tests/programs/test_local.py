"""programs/local.py: training without any communication."""
from __future__ import annotations

from pathlib import Path

import torch

from fieldlearn.sim import load_scenario, run_scenario

REPO = Path(__file__).resolve().parents[2]
FBFL = REPO / "scenarios" / "fbfl.yaml"


def run_with(program: str, *sets: str):
    return run_scenario(load_scenario(FBFL, [f"program={program}", "exports.values=[]", *sets])).engine


def test_local_models_do_not_depend_on_the_neighbours():
    # the same devices and data with and without links: identical models (nothing is exchanged)
    linked = run_with("local", "duration.rounds=4")
    alone = run_with("local", "duration.rounds=4", "links.radius=0.5")
    assert alone.graph.n_links == 0 and linked.graph.n_links > 0
    a, b = linked.vm.resources["learning"], alone.vm.resources["learning"]
    for k, t in a.latest.params.items():
        assert torch.equal(t, b.latest.params[k])
    # and they learn their own area
    ev = run_with("local", "duration.rounds=10").vm.resources["learning"].history[-1]
    assert ev.own() > 0.5
