"""The result store: complete only via done.json with the right hash, atomic commits, partial folders ignored and
cleaned, one sweep per folder; and sweeps resuming from what a store holds."""
from __future__ import annotations

import json

import pytest

from fieldlearn.sweep import sweep
from fieldlearn.sweep.grid import SweepError, make_plan
from fieldlearn.sweep.store import Store

from .helpers import log_lines, write_tiny

RESULT = {"columns": ["time", "x"], "rows": [[0.0, 1.5], [1.0, float("nan")]], "final": {"time": 2.0, "x": 0.1},
          "period": 1.0, "end_time": 2.0, "files": []}


def test_commit_status_and_load(tmp_path):
    s = Store(tmp_path / "out")
    s.open()
    assert s.status("r1", "h1") == "missing"
    tmp = s.begin("r1")
    (tmp / "metrics.csv").write_text("time\n0\n")
    assert s.status("r1", "h1") == "missing"  # being written: not visible
    final = s.commit(tmp, "r1", "h1", RESULT)
    assert final == s.run_dir("r1") and not tmp.exists()
    assert s.status("r1", "h1") == "complete"
    assert s.status("r1", "other") == "stale"
    got = s.load("r1")
    assert got["rows"][0] == [0.0, 1.5] and got["rows"][1][1] != got["rows"][1][1]  # NaN kept
    done = json.loads((final / "done.json").read_text())
    assert done["config_hash"] == "h1" and "metrics.csv" in done["files"] and "result.json" in done["files"]


def test_partial_results_are_never_complete(tmp_path):
    s = Store(tmp_path)
    s.open()
    # a folder with the results but no done marker (e.g. copied by hand, or from an older layout)
    d = s.run_dir("r1")
    d.mkdir()
    (d / "result.json").write_text(json.dumps(RESULT))
    assert s.status("r1", "h") == "missing"
    # a done marker whose result file is gone, or unreadable
    (d / "done.json").write_text(json.dumps({"format": 1, "config_hash": "h"}))
    (d / "result.json").unlink()
    assert s.status("r1", "h") == "stale"
    (d / "done.json").write_text("{trunc")
    assert s.status("r1", "h") == "missing"
    # a run killed while writing leaves a .partial- folder: not a run, removed on the next start
    tmp = s.begin("r2")
    (tmp / "result.json").write_text(json.dumps(RESULT))
    (tmp / "done.json").write_text(json.dumps({"format": 1, "config_hash": "h"}))
    assert s.status("r2", "h") == "missing"
    assert s.clean() == 1 and not tmp.exists()


def test_commit_replaces_a_stale_result(tmp_path):
    s = Store(tmp_path)
    s.open()
    t = s.begin("r")
    (t / "old.txt").write_text("old")
    s.commit(t, "r", "h1", RESULT)
    t = s.begin("r")
    s.commit(t, "r", "h2", dict(RESULT, rows=[]))
    assert s.status("r", "h2") == "complete" and not (s.run_dir("r") / "old.txt").exists()
    assert [p.name for p in s.runs.iterdir()] == ["r"]


def test_failures_are_recorded_and_cleared_by_success(tmp_path):
    s = Store(tmp_path)
    s.open()
    s.record_failure("r", "Traceback ...\nValueError: no")
    assert "ValueError" in s.failure_text("r")
    s.commit(s.begin("r"), "r", "h", RESULT)
    assert s.failure_text("r") is None


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not a sweep's results"):
        Store(tmp_path).open()
    (tmp_path / "f").write_text("")
    with pytest.raises(SweepError, match="not a folder"):
        Store(tmp_path / "f").open()


def test_one_sweep_at_a_time_per_folder(tmp_path):
    s = Store(tmp_path)
    with s.lock():
        with pytest.raises(SweepError, match="another sweep is running"):
            with Store(tmp_path).lock():
                pass
    with Store(tmp_path).lock():  # released
        pass


def test_resume_runs_only_missing_runs_and_ignores_partials(tmp_path):
    log = tmp_path / "log.txt"
    scen = write_tiny(tmp_path, log=log)
    out = tmp_path / "out"
    args = dict(seeds="0-1", grid={"program.params.tag": ["a", "b"]}, workers=2, out=out, progress=False)
    first = sweep(scen, **args)
    assert len(log_lines(log)) == 4 and first.ran == 4 and not first.failures
    # simulate an interrupted sweep: one run lost, another half-written (no done.json)
    plan = make_plan(scen, "0-1", {"program.params.tag": ["a", "b"]})
    lost, half = plan.runs[1].id, plan.runs[2].id
    store = Store(out)
    import shutil

    shutil.rmtree(store.run_dir(lost))
    (store.run_dir(half) / "done.json").unlink()
    store.run_dir(half).rename(store.runs / f".partial-{half}-1-x")
    log.unlink()
    again = sweep(scen, **args)
    assert log_lines(log) == ["a 1", "b 0"] and again.ran == 2 and again.reused == 2
    assert again.to_csv() == first.to_csv()
    assert not [p for p in store.runs.iterdir() if p.name.startswith(".")]
    # nothing left to do
    log.unlink()
    third = sweep(scen, **args)
    assert not log.exists() and third.ran == 0 and third.to_csv() == first.to_csv()
    # a changed configuration is not mistaken for the stored one
    changed = sweep(scen, **dict(args, sets=["duration.rounds=3"]))
    assert len(log_lines(log)) == 4 and changed.ran == 4 and max(changed.column("round")) == 3


def _complete_sweep(folder, marker_state="complete"):
    """A folder that looks like a sweep's: a manifest (with `state`) and one committed run."""
    s = Store(folder)
    s.open()
    s.commit(s.begin("r"), "r", "h", RESULT)
    (folder / "sweep.json").write_text(json.dumps({"format": 2, "state": marker_state, "name": folder.name}))
    return s


def test_a_replacement_takes_the_folders_place_whole(tmp_path):
    out = Store(tmp_path / "out")
    _complete_sweep(out.root)
    (out.root / "results.csv").write_text("old\n")
    staging = out.replacement()
    assert staging.root == tmp_path / ".out.replace"
    _complete_sweep(staging.root)
    (staging.root / "results.csv").write_text("new\n")
    with out.lock(), staging.lock():
        out.replace_with(staging)
    assert (out.root / "results.csv").read_text() == "new\n" and out.status("r", "h") == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, no old folder left


def test_recover_finishes_a_replacement_killed_between_its_renames(tmp_path):
    out = Store(tmp_path / "out")
    staging = out.replacement()
    _complete_sweep(staging.root)
    old = _complete_sweep(tmp_path / ".out.old-123-abcd")  # the previous sweep, renamed aside
    assert not out.root.exists()
    assert out.recover() is True
    assert out.status("r", "h") == "complete" and not staging.root.exists() and not old.root.exists()
    assert out.recover() is False  # nothing left to do


def test_recover_leaves_an_unfinished_replacement_and_the_folder_alone(tmp_path):
    out = Store(tmp_path / "out")
    _complete_sweep(out.root)
    staging = out.replacement()
    _complete_sweep(staging.root, marker_state="running")
    assert out.recover() is False
    assert out.status("r", "h") == "complete" and staging.status("r", "h") == "complete"
    out.root.rename(tmp_path / "elsewhere")  # the folder gone, the replacement unfinished: not moved in
    assert out.recover() is False and not out.root.exists() and staging.root.is_dir()


def test_recover_waits_for_a_replacement_in_progress(tmp_path):
    out = Store(tmp_path / "out")
    staging = out.replacement()
    _complete_sweep(staging.root)
    with staging.lock():  # its sweep is between the two renames
        with pytest.raises(SweepError, match="another sweep is running"):
            out.recover()
    assert staging.root.is_dir() and not out.root.exists()
