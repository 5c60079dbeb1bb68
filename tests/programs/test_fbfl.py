"""programs/fbfl.py on the digits scenario: one region per area, regional models accurate on their own area."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fieldlearn.sim import ScenarioError, load_scenario, run_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "fbfl.yaml"


def fbfl(*sets: str):
    return run_scenario(load_scenario(SCENARIO, list(sets)))


@pytest.mark.slow
def test_fbfl_forms_one_region_per_area_and_its_regional_models_learn_their_area():
    result = fbfl()  # 30 rounds, already short (about 10 s)
    e = result.engine
    leader = e.outputs["leader"]
    area = e.region
    for k in range(3):
        members = leader[area == k]
        assert len(set(members.tolist())) == 1 and area[members[0]] == k  # one leader, inside its own area
    ctx = e.vm.resources["learning"]
    ev = ctx.history[-1]
    assert ev.round == 30
    per_area = ev.per_region("regional")
    assert (per_area >= 0.85).all(), per_area  # measured about 0.95 (seed 1)
    # the members of an area hold the same regional model: the leader's average of the previous round, spread
    # back (one hop per round, so the leader itself already holds this round's average)
    regional = ctx.recorded["regional"]
    for k in range(3):
        ids = np.flatnonzero((area == k) & (np.arange(len(area)) != leader))
        for t in regional.params.values():
            assert torch.allclose(t[ids], t[ids[0]].expand_as(t[ids]), atol=1e-6)
    assert result.final["regional_accuracy"] == pytest.approx(ev.own(name="regional"))


def test_merge_happens_every_merge_every_rounds_only():
    result = fbfl("duration.rounds=10", "exports.values=[merged]", "exports.stats=[mean]")
    merged = result.column("merged.mean")
    assert merged.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_fbfl_parameters_are_checked():
    with pytest.raises(ScenarioError, match="program.params.merge_every"):
        fbfl("program.params.merge_every=0")
    with pytest.raises(ScenarioError, match="program.params.weighting"):
        fbfl("program.params.weighting=size")
