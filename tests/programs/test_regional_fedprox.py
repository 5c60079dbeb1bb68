"""programs/regional_fedprox.py: FedProx inside regions; the proximal term keeps local models near the region's."""
from __future__ import annotations

import numpy as np
import pytest

from fieldlearn.sim import ScenarioError, load_scenario, run_scenario


def fedprox(*sets: str):
    return run_scenario(load_scenario("fedprox", ["duration.rounds=6", *sets])).engine


def spread(engine, name: str) -> float:
    """Mean distance of an area's first-layer weights from their mean over the area's devices (over the areas)."""
    w = engine.vm.resources["learning"].recorded[name].params["0.weight"]
    out = []
    for k in range(3):
        ids = np.flatnonzero(engine.region == k)
        out.append(float((w[ids] - w[ids].mean(0)).norm(dim=(1, 2)).mean()))
    return float(np.mean(out))


def test_a_larger_mu_keeps_the_local_models_nearer_their_regional_model():
    free, held = fedprox("program.params.mu=0.0"), fedprox("program.params.mu=50.0")
    assert spread(held, "local") < 0.5 * spread(free, "local")
    # every device holds its region's model: one model per area (the leader's average, spread back)
    models = held.vm.resources["learning"].latest.params["0.weight"]
    leader = held.outputs["leader"]
    for k in range(3):
        ids = np.flatnonzero((held.region == k) & (np.arange(held.capacity) != leader))
        assert np.allclose(models[ids].numpy(), models[ids[0]].numpy(), atol=1e-6)


def test_parameters_are_checked():
    with pytest.raises(ScenarioError, match="program.params.mu: must be >= 0"):
        fedprox("program.params.mu=-1")
