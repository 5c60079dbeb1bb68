"""Running a plan into a folder: the runs use the scenario as planned, the device travels in the plan, a folder
holding another scenario's sweep is refused unless replacing it is asked for, and a replacement takes the folder's
place only when it is complete (a replacement interrupted after that is finished by the next sweep)."""
from __future__ import annotations

import json

import pytest

from fieldlearn.sweep import make_backend, run_plan, sweep
from fieldlearn.sweep.grid import SweepError, make_plan

from .helpers import GRID, log_lines, write_tiny


def test_the_runs_use_the_scenario_as_the_plan_resolved_it(tmp_path):
    scen = write_tiny(tmp_path)
    plan = make_plan(scen, "0-1", {"program.params.tag": ["a", "b"]})
    scen.write_text(scen.read_text().replace("rounds: 4", "rounds: 9"))  # edited after planning
    table = run_plan(plan, make_backend(workers=2), tmp_path / "out", progress=False)
    assert not table.failures and max(table.column("round")) == 4
    stored = (tmp_path / "out" / "runs" / plan.runs[3].id / "scenario.yaml").read_text()
    assert stored == plan.scenario(plan.runs[3]).to_yaml() and "seed: 1\n" in stored


def test_the_device_travels_in_the_plan_and_its_hashes():
    grid = dict(seeds="0", sets=["duration.rounds=3"])
    cpu, cuda = make_plan(GRID, device="cpu", **grid), make_plan(GRID, device="cuda:1", **grid)
    assert (cpu.device, cuda.device) == ("cpu", "cuda:1")
    assert cpu.hashes.keys() == cuda.hashes.keys() and not set(cpu.hashes.values()) & set(cuda.hashes.values())
    for bad in ("tpu", "cuda:x", "", 3):
        with pytest.raises(SweepError, match="--device"):
            make_plan(GRID, device=bad, **grid)


def test_another_scenarios_sweep_is_refused_naming_the_folder_and_both(tmp_path):
    a, b = write_tiny(tmp_path / "a", tag="a"), write_tiny(tmp_path / "b", tag="b")
    out = tmp_path / "out"
    first = sweep(a, seeds="0-1", out=out, run_figures=False, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(SweepError) as err:
        sweep(b, seeds="0-1", out=out, run_figures=False, progress=False)
    msg = str(err.value)
    assert f"--out {out}" in msg and str(a.resolve()) in msg and str(b.resolve()) in msg and "--replace" in msg
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    again = sweep(a, seeds="0-1", out=out, run_figures=False, progress=False)  # the same scenario: resumes
    assert again.ran == 0 and again == first


def test_replace_makes_the_new_sweep_beside_and_swaps_it_in_whole(tmp_path):
    log = tmp_path / "log.txt"
    a, b = write_tiny(tmp_path / "a", tag="a", log=log), write_tiny(tmp_path / "b", tag="b", log=log)
    out = tmp_path / "out"
    sweep(a, seeds="0-2", out=out, run_figures=False, progress=False)
    said: list[str] = []
    table = sweep(b, seeds="0-1", out=out, run_figures=False, progress=False, replace=True, log=said.append)
    assert log_lines(log) == ["a 0", "a 1", "a 2", "b 0", "b 1"] and table.ran == 2 and table.out == out
    assert any("replacing the sweep of tiny" in s for s in said)
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["scenario_file"] == str(b.resolve()) and manifest["state"] == "complete"
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r.id for r in table.plan.runs)
    assert list(table.files) == ["results.csv", "summary.csv", "runs.csv", "comparison.png"]
    assert all(p.parent == out and p.is_file() for p in table.files.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "log.txt", "out"]  # nothing left beside


def test_a_replacement_interrupted_after_it_was_complete_is_finished_by_the_next_sweep(tmp_path):
    a, b = write_tiny(tmp_path / "a"), write_tiny(tmp_path / "b")
    out = tmp_path / "out"
    sweep(a, seeds="0", out=out, run_figures=False, progress=False)
    replacement = sweep(b, seeds="0-1", out=tmp_path / ".out.replace", run_figures=False, progress=False)
    out.rename(tmp_path / ".out.old-1-ab")  # killed between the swap's two renames
    said: list[str] = []
    table = sweep(b, seeds="0-1", out=out, run_figures=False, progress=False, log=said.append)
    assert table.ran == 0 and table.reused == 2 and table == replacement
    assert any("finished replacing its sweep" in s for s in said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]


def test_a_figure_that_cannot_be_drawn_is_a_warning_after_complete_tables(tmp_path, monkeypatch):
    import fieldlearn.sweep.driver as driver

    def broken(*args, **kwargs):
        raise OverflowError("cannot draw")

    out, scen = tmp_path / "out", write_tiny(tmp_path)
    assert "comparison.png" in sweep(scen, seeds="0", out=out, run_figures=False, progress=False).files
    monkeypatch.setattr(driver, "comparison_png", broken)
    said: list[str] = []
    table = sweep(scen, seeds="0", out=out, run_figures=False, progress=False, log=said.append)
    assert list(table.files) == ["results.csv", "summary.csv", "runs.csv"]
    assert not (out / "comparison.png").exists()  # the earlier call's figure is not left beside the new tables
    assert any("warning: comparison.png of gradient.mean could not be drawn (OverflowError" in s for s in said)
    assert json.loads((out / "sweep.json").read_text())["state"] == "complete" and len(table) == 5
