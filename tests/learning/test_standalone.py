"""fieldlearn.learning.standalone: a learning program on a Network from a script gives the simulator's numbers."""
from __future__ import annotations

import numpy as np
import pytest

from fieldlearn import Network, program, rep
from fieldlearn.learning import current_samples, fresh_models, run_learning, train_locally
from fieldlearn.programs.fbfl import fbfl
from fieldlearn.sim import load_scenario, run_scenario

METRICS = ("eval_round", "own_accuracy", "regional_accuracy", "global_accuracy", "area_own")


def test_the_same_scenario_gives_the_same_metrics_as_the_simulator():
    loaded = load_scenario("fbfl", ["duration.rounds=10", "exports.values=[]", f"exports.metrics=[{', '.join(METRICS)}]"])
    sim = run_scenario(loaded)
    e = sim.engine
    net = Network.from_positions(e.positions, loaded.scenario.links.radius)
    out = run_learning(fbfl, net, 10, config=loaded.resources["learning"], regions=e.region,
                       region_names=e.regions.names, params=loaded.params, seed=loaded.scenario.seed, metrics=METRICS)
    assert out.columns[2:] == sim.columns[1:]
    for name in sim.columns[1:]:
        assert np.array_equal(sim.column(name), out.column(name), equal_nan=True), name
    # hard split: a regional model knows its own area's classes only, so far less of the whole test set
    assert out.last["eval_round"] == 10 and 0.1 < out.last["global_accuracy"] < 0.5 < out.last["own_accuracy"]


@program(needs="learning")
def alone() -> dict:
    samples = current_samples()
    return {"models": rep(fresh_models, lambda theta: train_locally(theta, samples))}


def test_regions_may_change_over_the_rounds_and_such_devices_count_as_mobile():
    net = Network.from_edges(4, [])
    config = {"model": {"hidden": [8]}, "eval_every": 2, "batch_size": 8}
    # device 3 moves from region 0 to region 1 at round 2: it is mobile and scored on both regions
    out = run_learning(alone, net, 4, config=config, regions=lambda r: np.array([0, 0, 1, 1 if r >= 2 else 0]),
                       metrics=("cacc", "accuracy"))
    assert out.context.mobile.tolist() == [False, False, False, True]
    assert out.columns == ["round", "time", "cacc", "accuracy.d3.r0", "accuracy.d3.r1"]
    assert np.isnan(out.column("cacc")[0]) and 0 < out.column("cacc")[-1] <= 2
    assert out.context.history[-1].region.tolist() == [0, 0, 1, 1]


def test_bad_arguments_say_what_is_wrong():
    net = Network.from_edges(2, [])
    with pytest.raises(ValueError, match=r"unknown metrics \['zzz'\]"):
        run_learning(alone, net, 1, regions=[0, 0], metrics=("zzz",))
    with pytest.raises(ValueError, match="regions give 3 values for 2 devices"):
        run_learning(alone, net, 1, regions=[0, 0, 1])
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        run_learning(alone, net, 0, regions=[0, 0])
