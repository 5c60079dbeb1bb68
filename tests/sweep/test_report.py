"""The tidy table, the summary statistics (exact), the comparison figure and the console summary."""
from __future__ import annotations

import math
import statistics

import pytest

from fieldlearn.sweep.grid import make_plan
from fieldlearn.sweep.report import (
    SweepTable,
    Table,
    comparison_png,
    failures_table,
    stats,
    summarise,
    summary_text,
    tidy_table,
)

from .helpers import GRID


def fake_results(plan, values, period=1.0):
    """Runs whose metric `m` at rows t=0,1,2 (and the final state at t=3) is given by values[(variant, seed)]."""
    out = {}
    for run in plan.runs:
        base = values[(run.variant.index, run.seed)]
        rows = [[t * period, base + t, 7] for t in range(3)]
        out[run.id] = {"columns": ["time", "m", "k"], "rows": rows, "final": {"time": 3 * period, "m": base + 10, "k": 7},
                       "period": period, "end_time": 3 * period}
    return out


@pytest.fixture
def plan():
    return make_plan(GRID, "0-2", {"links.radius": [1.5, 2.5]}, ["duration.rounds=3"])


VALUES = {(0, 0): 1.0, (0, 1): 2.0, (0, 2): 4.0, (1, 0): 10.0, (1, 1): 10.0, (1, 2): float("nan")}


def test_tidy_table_has_one_row_per_run_and_round(plan):
    t = tidy_table(plan, fake_results(plan, VALUES))
    assert t.columns == ["run", "links.radius", "seed", "time", "round", "m", "k"]
    assert len(t) == 6 * 4
    first = t[0]
    assert first == {"run": plan.runs[0].id, "links.radius": 1.5, "seed": 0, "time": 0.0, "round": 0, "m": 1.0, "k": 7}
    assert [r["round"] for r in t.where(seed=1, **{"links.radius": 2.5})] == [0, 1, 2, 3]
    assert t.where(seed=0, round=3)[0]["m"] == 11.0  # the final state closes each run
    csv = t.to_csv()
    assert csv.splitlines()[0] == "run,links.radius,seed,time,round,m,k"
    assert csv.splitlines()[1] == f"{plan.runs[0].id},1.5,0,0.0,0,1.0,7"
    back = Table.from_csv(csv)
    assert back.columns == t.columns and back.rows[5] == t.rows[5]


def test_rounds_follow_the_period(plan):
    t = tidy_table(plan, fake_results(plan, VALUES, period=0.5))
    assert [r["time"] for r in t][:4] == [0.0, 0.5, 1.0, 1.5] and [r["round"] for r in t][:4] == [0, 1, 2, 3]


def test_missing_runs_are_left_out_and_columns_unite(plan):
    res = fake_results(plan, VALUES)
    del res[plan.runs[0].id]
    extra = res[plan.runs[5].id]
    extra["columns"] = ["time", "m", "k", "z"]
    extra["rows"] = [r + [1] for r in extra["rows"]]
    t = tidy_table(plan, res)
    assert len(t) == 5 * 4 and t.columns[-1] == "z"
    assert t[0]["run"] == plan.runs[1].id and "z" not in t[0] and t.to_csv().splitlines()[1].endswith(",")


def test_summary_mean_and_sample_std_exactly(plan):
    t = tidy_table(plan, fake_results(plan, VALUES))
    failed = {plan.runs[5].id: "boom"}
    s = summarise(plan, t, [1, "end"], failed)
    assert s.columns == ["links.radius", "round", "metric", "runs", "failed", "n", "mean", "std", "min", "max"]
    row = s.where(**{"links.radius": 1.5}, round=1, metric="m")[0]
    vals = [2.0, 3.0, 5.0]
    assert row["n"] == 3 and row["runs"] == 3 and row["failed"] == 0
    assert row["mean"] == pytest.approx(statistics.mean(vals), abs=0)
    assert row["std"] == pytest.approx(statistics.stdev(vals), rel=1e-15)
    assert (row["min"], row["max"]) == (2.0, 5.0)
    end = s.where(**{"links.radius": 1.5}, round="end", metric="m")[0]
    assert end["mean"] == pytest.approx(statistics.mean([11.0, 12.0, 14.0]))
    # the NaN of seed 2 is skipped: n counts finite values; a single value has no std
    r2 = s.where(**{"links.radius": 2.5}, round=1, metric="m")[0]
    assert (r2["n"], r2["mean"], r2["std"], r2["failed"]) == (2, 11.0, 0.0, 1)
    assert stats([3.0]) == {"n": 1, "mean": 3.0, "std": None, "min": 3.0, "max": 3.0}
    assert stats([])["mean"] is None


def test_summary_between_recorded_rounds_takes_the_last_row_before(plan):
    res = fake_results(plan, VALUES, period=1.0)
    for r in res.values():  # rows only every 2 rounds
        r["rows"] = [row for row in r["rows"] if row[0] in (0.0, 2.0)]
    t = tidy_table(plan, res)
    s = summarise(plan, t, [1, 2.5, 3], {})
    got = {row["round"]: row["mean"] for row in s.where(metric="m", **{"links.radius": 1.5})}
    assert got == {1: pytest.approx(7 / 3), 2.5: pytest.approx(4 + 1 / 3), 3: pytest.approx(12 + 1 / 3)}


def test_failures_table(plan):
    f = failures_table(plan, {plan.runs[4].id: "ValueError: x"})
    assert f.columns == ["run", "links.radius", "seed", "error"]
    assert f.rows == [{"run": plan.runs[4].id, "links.radius": 2.5, "seed": 1, "error": "ValueError: x"}]


def test_comparison_figure_is_a_deterministic_png(plan):
    t = tidy_table(plan, fake_results(plan, VALUES))
    a = comparison_png(plan, t, "m")
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and len(a) > 5000
    assert comparison_png(plan, t, "m") == a
    assert comparison_png(plan, Table(t.columns), "m")[:4] == b"\x89PNG"  # no data: empty axes, no error


def test_summary_text(plan):
    t = tidy_table(plan, fake_results(plan, VALUES))
    s = summarise(plan, t, [1, "end"], {plan.runs[5].id: "boom"})
    text = summary_text(plan, s, "m", [1, "end"])
    lines = text.splitlines()
    assert lines[0].split() == ["variant", "runs", "round", "1", "round", "end"]
    assert lines[1].startswith("radius=1.5") and "3.333 ± 1.528" in lines[1]
    assert "(1 failed)" in lines[2] and "11 ± 0" in lines[2]


def test_table_cells():
    t = Table(["a", "b"], [{"a": True, "b": [1, 2]}, {"a": None, "b": "x,y"}, {"a": math.inf, "b": 2.5}])
    assert t.to_csv() == 'a,b\ntrue,"[1, 2]"\n,"x,y"\ninf,2.5\n'
    with pytest.raises(KeyError, match="no column 'c'"):
        t.column("c")
    assert t == Table(["a", "b"], t.rows) and len(t) == 3 and "3 rows" in repr(t)


def test_lists_and_mappings_survive_a_round_trip_through_csv():
    rows = [{"p": {"method": "cl", "gamma": 0.1}, "q": [1, "a"]}, {"p": "[not yaml", "q": None}]
    back = Table.from_csv(Table(["p", "q"], rows).to_csv())
    assert back.rows == rows


def test_a_sweep_table_is_its_tidy_table_with_the_others(plan, tmp_path):
    t = tidy_table(plan, fake_results(plan, VALUES))
    s = summarise(plan, t, ["end"], {})
    runs = Table(["run"], [{"run": r.id} for r in plan.runs])
    st = SweepTable(t, summary=s, runs=runs, failures=[], out=tmp_path, file_names=["results.csv", "summary.csv"],
                    metric="m", rounds_at=["end"], plan=plan, ran=4, reused=2, wall_seconds=1.5)
    assert isinstance(st, Table) and st == t and st.columns == t.columns and len(st) == len(t)
    assert st.files == {"results.csv": tmp_path / "results.csv", "summary.csv": tmp_path / "summary.csv"}
    moved = st.moved_to(tmp_path / "elsewhere")
    assert moved.files["summary.csv"] == tmp_path / "elsewhere" / "summary.csv" and moved == st
    assert (moved.summary, moved.runs, moved.plan, moved.ran, moved.reused) == (s, runs, plan, 4, 2)
    gone = st.moved_to(None)
    assert gone.out is None and gone.files == {} and gone.metric == "m"


def test_complete_runs_pairs_each_complete_run_with_its_own_rows(plan):
    t = tidy_table(plan, fake_results(plan, VALUES))
    ids = [r.id for r in plan.runs]
    status = ["complete", "failed", "complete", "complete", "complete", "complete"]
    runs = Table(["run", "status"], [{"run": i, "status": st} for i, st in zip(ids, status)])
    runs.rows.append({"run": "not-in-the-tidy-table", "status": "complete"})
    st = SweepTable(t, summary=Table([]), runs=runs, failures=[], out=None, file_names=[], metric="m",
                    rounds_at=["end"], plan=plan, ran=6, reused=0, wall_seconds=0.0)
    got = st.complete_runs()
    assert [info["run"] for info, _ in got] == [i for i, s_ in zip(ids, status) if s_ == "complete"]
    for info, rows in got:
        assert rows == [r for r in t.rows if r["run"] == info["run"]] and len(rows) == 4  # 3 recorded + final
