"""fieldlearn.sim.export: statistics, number formatting, atomic files, recorder values and metric hooks."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.export import csv_text, fmt, summarise, write_atomic
from fieldlearn.sim.metrics import register_metric
from fieldlearn.sim.simulate import run_scenario
from fieldlearn.sim.loader import resolve_scenario
from .sim_helpers import BASE, gradient_program

SCEN = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return resolve_scenario(data, SCEN)


def test_summarise_skips_non_finite_and_counts():
    v = np.array([1.0, 3.0, np.inf, 5.0])
    valid = np.array([True, True, True, False])
    s = summarise(v, valid, ["mean", "min", "max", "count", "finite", "sum", "std"])
    assert s == {"mean": 2.0, "min": 1.0, "max": 3.0, "count": 3, "finite": 2 / 3, "sum": 4.0, "std": 1.0}
    empty = summarise(v, np.zeros(4, bool), ["mean", "count", "finite"])
    assert math.isnan(empty["mean"]) and empty["count"] == 0 and math.isnan(empty["finite"])


def test_fmt_and_csv_are_exact():
    assert [fmt(x) for x in (1, np.int64(2), True, 0.1, 1 / 3, math.inf, None)] == \
        ["1", "2", "1", "0.1", "0.3333333333333333", "inf", ""]
    assert csv_text(["a", "b"], [[1, 0.5]]) == "a,b\n1,0.5\n"


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    f = tmp_path / "x.csv"
    write_atomic(f, "one")
    write_atomic(f, b"two")
    assert f.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_rows_values_per_device_and_summary(tmp_path):
    s = scenario(exports={"values": ["gradient", "source"], "stats": ["mean", "max"], "per_device": ["gradient"],
                          "metrics": ["devices", "links", "degree", "connected"], "interval": 2.0})
    r = run_scenario(s, tmp_path / "o", program=gradient_program)
    assert r.columns == ["time", "gradient.mean", "gradient.max", "source.mean", "source.max", "devices", "links",
                         "degree", "connected"]
    assert r.column("time").tolist() == [0.0, 2.0, 4.0]
    assert r.column("source.mean")[0] == pytest.approx(1 / 9)
    lines = (tmp_path / "o" / "devices.csv").read_text().splitlines()
    assert lines[0] == "time,device,x,y,gradient" and len(lines) == 1 + 3 * 9
    assert lines[1] == "0.0,0,0.0,0.0,0.0"
    assert r.summary["final"]["gradient.max"] == 4.0  # Manhattan distance to the far corner
    assert set(r.files) >= {"metrics.csv", "devices.csv", "summary.json", "scenario.yaml", "timeseries.png"}


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
