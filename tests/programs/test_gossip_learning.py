"""programs/gossip_learning.py: neighbour averaging without leaders (uniform, or weighted by model age)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldlearn.sim import load_scenario, run_scenario

REPO = Path(__file__).resolve().parents[2]
FBFL = REPO / "scenarios" / "fbfl.yaml"


def run_with(program: str, *sets: str):
    return run_scenario(load_scenario(FBFL, [f"program={program}", "exports.values=[]", *sets])).engine


def spread(engine, area: int = 0) -> float:
    """Largest distance of an area's first-layer weights from their mean over the area's devices."""
    ids = np.flatnonzero(engine.region == area)
    w = engine.vm.resources["learning"].latest.params["0.weight"][ids]
    return float((w - w.mean(0)).norm(dim=(1, 2)).max())


def test_gossip_learning_averages_with_the_neighbours_every_k_rounds():
    # every 2 rounds (rounds 1, 3, ...): each device takes the mean of its model and its neighbours' (exported
    # the round before, as nbr gives them); in a clique the models then nearly agree
    gossip = "{name: gossip_learning, params: {every: 2}}"
    after_mean = [spread(run_with(gossip, f"duration.rounds={r}")) for r in (2, 4)]
    after_training = [spread(run_with(gossip, f"duration.rounds={r}")) for r in (3, 5)]
    alone = spread(run_with("local", "duration.rounds=4"))
    assert max(after_mean) < 0.25 * min(after_training) and max(after_mean) < 0.1 * alone


def test_age_is_the_number_of_samples_a_model_has_been_trained_on():
    aged = run_with("{name: gossip_learning, params: {every: 1, weighting: age}}", "duration.rounds=3")
    ctx = aged.vm.resources["learning"]
    per_round = np.array([len(ctx.samples(np.array([d]), aged.region[[d]], 0).row(0)) for d in range(aged.capacity)])
    assert aged.outputs["age"].tolist() == (3 * per_round).tolist()


@pytest.mark.parametrize("bad, path", [("program.params.every=0", "program.params.every"),
                                       ("program.params.weighting=size", "program.params.weighting")])
def test_parameters_are_checked(bad, path):
    from fieldlearn.sim import ScenarioError

    with pytest.raises(ScenarioError, match=path):
        run_with("gossip_learning", "duration.rounds=1", bad)
