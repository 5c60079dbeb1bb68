"""fieldlearn.sim.learning: the learning block validated with YAML paths, and the adapter that lends a context."""
from __future__ import annotations

import numpy as np
import pytest

from fieldlearn.sim import ScenarioError, load_scenario
from fieldlearn.sim.engine import Engine


def test_learning_settings_are_checked_with_their_yaml_path():
    for sets, path in ((["learning.optimiser.lr=0"], "learning.optimiser.lr: must be > 0"),
                       (["learning.colour=red"], "learning.colour: unknown key"),
                       (["learning.partition=dirichlet(-1)"], "learning.partition"),
                       (["regions=[]"], "regions: a learning scenario needs `regions`"),
                       (["learning=null"], "learning: this program learns")):
        with pytest.raises(ScenarioError, match=path.replace("(", r"\(").replace(")", r"\)")):
            load_scenario("fbfl", sets)


def test_the_adapter_lends_the_context_sets_the_mobile_sensor_and_forgets_crashed_devices():
    engine = Engine(load_scenario("c2fl", ["duration.rounds=3"]))
    ctx = engine.vm.resources["learning"]
    assert ctx.n_devices == engine.capacity and ctx.region_names == ["area0", "area1", "area2", "area3"]
    assert np.array_equal(engine.vm.sensors["mobile"], engine.deployed_mobile) and ctx.mobile.sum() == 16
    engine.run()
    assert ctx.has_model["models"].all() and "models" not in engine.outputs  # models are evaluated, not exported
    engine.crash(np.array([3]))
    assert not ctx.has_model["models"][3]
    assert {"cacc", "adaptation", "forgetting"} <= set(engine.metrics)
