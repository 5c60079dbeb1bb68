"""programs/psfl.py: clusters elected on model dissimilarity follow the data, not the geometry."""
from __future__ import annotations

import numpy as np
import pytest

from fieldlearn.sim import ScenarioError, load_scenario, run_scenario


def clusters(*sets: str):
    e = run_scenario(load_scenario("psfl", list(sets))).engine
    return e.outputs["leader"].astype(int), e.region, e


@pytest.mark.slow
def test_loss_dissimilarity_finds_one_cluster_per_area_of_a_connected_network():
    leader, area, e = clusters()  # 30 rounds, 36 devices: a few seconds
    assert e.graph.n_links > 0 and len(np.unique(leader)) == 3
    for k in range(3):
        assert len(set(leader[area == k].tolist())) == 1  # one cluster per area, none spanning two
    ctx = e.vm.resources["learning"]
    assert ctx.history[-1].per_region().min() > 0.85  # each device's blended model, on its own area


def test_a_small_threshold_keeps_every_device_apart():
    leader, _, _ = clusters("duration.rounds=6", "program.params.dissimilarity=parameters",
                            "program.params.threshold=0.01")
    assert len(np.unique(leader)) == len(leader)


def test_parameters_are_checked():
    with pytest.raises(ScenarioError, match="program.params.dissimilarity"):
        clusters("program.params.dissimilarity=cosine")
    with pytest.raises(ScenarioError, match="program.params.threshold: must be > 0"):
        clusters("program.params.threshold=0")
