"""fieldlearn.sim.recording: statistics of the exported values, what a value name may be, and metrics by name."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.loader import resolve_scenario
from fieldlearn.sim.metrics import register_metric
from fieldlearn.sim.recording import summarise
from fieldlearn.sim.simulate import run_scenario
from .sim_helpers import BASE, gradient_program, scenario


def test_summarise_skips_non_finite_and_counts():
    v = np.array([1.0, 3.0, np.inf, 5.0])
    valid = np.array([True, True, True, False])
    s = summarise(v, valid, ["mean", "min", "max", "count", "finite", "sum", "std"])
    assert s == {"mean": 2.0, "min": 1.0, "max": 3.0, "count": 3, "finite": 2 / 3, "sum": 4.0, "std": 1.0}
    empty = summarise(v, np.zeros(4, bool), ["mean", "count", "finite"])
    assert math.isnan(empty["mean"]) and empty["count"] == 0 and math.isnan(empty["finite"])


def test_unknown_export_value_names_its_path():
    s = scenario(exports={"values": ["gradient", "nope"]})
    with pytest.raises(ScenarioError, match=r"exports.values\[1\]: 'nope' is neither a program output"):
        run_scenario(s, program=gradient_program)
    with pytest.raises(ScenarioError, match=r"exports.metrics\[0\]: unknown metric 'zzz'"):
        run_scenario(scenario(exports={"metrics": ["zzz"]}), program=gradient_program)


def test_registered_metrics_and_a_program_file_beside_the_scenario(tmp_path):
    register_metric("far", lambda e: {"n": int((e.outputs["gradient"] > 1).sum()), "t": e.time})
    s = scenario(exports={"metrics": ["far"]})
    r = run_scenario(s, program=gradient_program)
    assert r.columns == ["time", "far.n", "far.t"] and r.column("far.n")[-1] == 6
    register_metric("alive_sum", lambda e: float(e.alive.sum()))
    (tmp_path / "prog.py").write_text(
        "from fieldlearn import sense\n"
        "def program(scale: float = 1.0):\n    return sense('source') * scale\n"
    )
    data = copy.deepcopy(BASE)
    data.update(program={"name": "prog.py", "params": {"scale": 2}},
                exports={"values": ["value"], "stats": ["sum"], "metrics": ["alive_sum"]})
    r2 = run_scenario(resolve_scenario(data, tmp_path))
    assert r2.column("alive_sum")[0] == 9.0 and r2.column("value.sum")[0] == 2.0
