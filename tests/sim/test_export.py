"""fieldlearn.sim.export: number formatting, CSV documents and the result files of a run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fieldlearn import sense

from fieldlearn.sim.export import csv_text, fmt
from fieldlearn.sim.simulate import run_scenario
from .sim_helpers import gradient_program, scenario


def test_fmt_and_csv_are_exact():
    assert [fmt(x) for x in (1, np.int64(2), True, 0.1, 1 / 3, math.inf, None)] == \
        ["1", "2", "1", "0.1", "0.3333333333333333", "inf", ""]
    assert csv_text(["a", "b"], [[1, 0.5]]) == "a,b\n1,0.5\n"


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


def test_summary_json_is_standard_json_with_null_for_non_finite_values(tmp_path):
    s = scenario(exports={"values": ["x"], "stats": ["mean", "count"]})
    r = run_scenario(s, tmp_path / "o", program=lambda: {"x": np.float64(math.nan) + 0 * sense("id")})
    text = (tmp_path / "o" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert summary["final"] == {"time": 5.0, "x.mean": None, "x.count": 9}
    assert summary["files"] == r.files and r.files[0] == "scenario.yaml" and r.files[-1] == "summary.json"
    assert (tmp_path / "o" / "metrics.csv").read_text().splitlines()[1] == "0.0,nan,9"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(summary["files"])
