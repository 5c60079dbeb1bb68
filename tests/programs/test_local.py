"""programs/local.py and programs/gossip_fedavg.py: training without communication, and neighbour averaging."""
from __future__ import annotations

from pathlib import Path

import numpy as np
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
    for k, t in linked.learning.latest.params.items():
        assert torch.equal(t, alone.learning.latest.params[k])
    # and they learn their own area
    ev = run_with("local", "duration.rounds=10").learning.history[-1]
    assert ev.own() > 0.5


def spread(engine, area: int = 0) -> float:
    """Largest distance of an area's first-layer weights from their mean over the area's devices."""
    ids = np.flatnonzero(engine.region == area)
    w = engine.learning.latest.params["0.weight"][ids]
    return float((w - w.mean(0)).norm(dim=(1, 2)).max())


def test_gossip_fedavg_averages_with_the_neighbours_every_k_rounds():
    # every 2 rounds (rounds 1, 3, ...): each device takes the mean of its model and its neighbours' (exported
    # the round before, as nbr gives them); in a clique the models then nearly agree
    gossip = "{name: gossip_fedavg, params: {every: 2}}"
    after_mean = [spread(run_with(gossip, f"duration.rounds={r}")) for r in (2, 4)]
    after_training = [spread(run_with(gossip, f"duration.rounds={r}")) for r in (3, 5)]
    alone = spread(run_with("local", "duration.rounds=4"))
    assert max(after_mean) < 0.25 * min(after_training) and max(after_mean) < 0.1 * alone
