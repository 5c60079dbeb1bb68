"""python -m fieldlearn.sweep: the files it writes, exit codes and messages, a failing variant, and a sweep killed
mid-way (the whole process group) resumed by the same command."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fieldlearn.sweep
from fieldlearn.sim.__main__ import main as sim_main
from fieldlearn.sweep.__main__ import main
from fieldlearn.sweep.grid import make_plan
from fieldlearn.sweep.report import Table

from .helpers import GRID, REPO, log_lines, write_tiny


def test_cli_writes_the_tidy_table_summary_and_figure(tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(GRID), "--seeds", "0-1", "--grid", "links.radius=1.5,2.5", "--set", "duration.rounds=5",
            "--out", str(out), "--rounds-at", "2,end", "--metric", "gradient.max", "--workers", "2", "--no-run-figures"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "gradient.max (mean ± std over seeds):" in printed and "radius=2.5" in printed and "results in" in printed
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert len(rows) == 4 * 6
    assert list(rows[0])[:5] == ["run", "links.radius", "seed", "time", "round"]
    assert {(r["links.radius"], r["seed"]) for r in rows} == {("1.5", "0"), ("1.5", "1"), ("2.5", "0"), ("2.5", "1")}
    summary = Table.from_csv(out / "summary.csv")
    assert {(r["links.radius"], r["round"]) for r in summary} == {(1.5, 2), (1.5, "end"), (2.5, 2), (2.5, "end")}
    assert all(r["runs"] == 2 and r["failed"] == 0 for r in summary)
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["complete"] * 4 and manifest["seeds"] == [0, 1]
    assert not (out / "runs" / rows[0]["run"] / "timeseries.png").exists()  # --no-run-figures
    # a run's `set` in the manifest remakes it alone with the simulator: the same metrics, byte for byte
    one = manifest["runs"][3]
    again = tmp_path / "again"
    assert sim_main([str(GRID), *(a for s in one["set"] for a in ("--set", s)), "--out", str(again), "--quiet"]) == 0
    assert (again / "metrics.csv").read_bytes() == (out / "runs" / one["run"] / "metrics.csv").read_bytes()
    # the same command again: nothing to run, same table
    before = (out / "results.csv").read_bytes()
    assert main(args + ["--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == before


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--seeds", "5-1"], "--seeds 5-1"),
        (["--grid", "links.radius"], "--grid links.radius: expected key.path=value"),
        (["--grid", "links.radius=1.5,abc"], "--grid links.radius=1.5,abc: the value 'abc'"),
        (["--grid", "links.nosuch=1"], "links.nosuch"),
        (["--set", "duration.rounds=x"], "duration.rounds"),
        (["--rounds-at", "99"], "--rounds-at 99: round 99 is after the end"),
        (["--rounds-at", "ten"], "--rounds-at ten"),
        (["--metric", "nope"], "--metric nope: the runs do not record it"),
        (["--ray", "not an address"], "--ray not an address: not a Ray address"),
        (["--ray", "127.0.0.1:1"], "--ray"),  # nothing listens there (or Ray is not installed)
        (["--workers", "0"], "--workers 0"),
        (["--device", "tpu"], "--device tpu"),
    ],
)
def test_bad_input_exits_2_naming_the_argument(extra, words, tmp_path, capsys):
    code = main([str(GRID), "--set", "duration.rounds=5", "--out", str(tmp_path / "o"), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert words in " ".join(err.split()), err


def test_bad_files_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "none.yaml"), "--quiet"]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("x")
    assert main([str(GRID), "--out", str(tmp_path / "taken"), "--quiet"]) == 2
    assert "not a sweep's results" in capsys.readouterr().err


def test_a_failing_variant_is_reported_and_the_others_complete(tmp_path, capsys):
    scen = write_tiny(tmp_path)
    out = tmp_path / "out"
    code = main([str(scen), "--seeds", "0-2", "--grid", "program.params.mode=ok,fail", "--out", str(out),
                 "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "failed runs (3):" in printed and "this variant fails on purpose" in printed
    fails = list(csv.DictReader(io.StringIO((out / "failures.csv").read_text())))
    assert [(f["program.params.mode"], f["seed"]) for f in fails] == [("fail", "0"), ("fail", "1"), ("fail", "2")]
    assert fails[0]["error"] == "the program failed at time 0: ValueError: this variant fails on purpose"
    tb = (out / "errors" / f"{fails[0]['run']}.txt").read_text()
    assert "Traceback" in tb and "misbehave.py" in tb and "raise ValueError" in tb
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {r["program.params.mode"] for r in rows} == {"ok"} and len({r["run"] for r in rows}) == 3
    summary = Table.from_csv(out / "summary.csv")
    assert {(r["program.params.mode"], r["runs"], r["failed"]) for r in summary} == {("ok", 3, 0), ("fail", 0, 3)}
    manifest = json.loads((out / "sweep.json").read_text())
    assert sorted(r["status"] for r in manifest["runs"]) == ["complete"] * 3 + ["failed"] * 3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_a_killed_sweep_resumes_with_only_the_missing_runs(tmp_path):
    log = tmp_path / "log.txt"
    scen = write_tiny(tmp_path, log=log, sleep=0.4)
    out = tmp_path / "out"
    args = [str(scen), "--seeds", "0-2", "--grid", "program.params.tag=a,b", "--out", str(out), "--workers", "1",
            "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "fieldlearn.sweep", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    pids: list[int] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            partial = list(out.glob("runs/.partial-*"))
            if len(list(out.glob("runs/*/done.json"))) >= 2 and partial:
                pids = [int(p.name.split("-")[-2]) for p in partial]  # .partial-ID-PID-TOKEN
                break
            time.sleep(0.02)
    finally:
        proc.kill()  # the sweep process only: the run it was waiting for must stop by itself
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids and not any(_alive(pid) for pid in pids), "a run outlived the killed sweep"
    os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None
    complete = {p.parent.name for p in out.glob("runs/*/done.json")}
    assert 2 <= len(complete) < 6
    log.unlink()
    assert main(args) == 0
    plan = make_plan(scen, "0-2", ["program.params.tag=a,b"])
    name = {r.id: f"{r.params['program.params.tag']} {r.seed}" for r in plan.runs}
    assert log_lines(log) == sorted(name[i] for i in name if i not in complete)  # exactly the missing runs
    table = Table.from_csv(out / "results.csv")
    assert len({r["run"] for r in table}) == 6
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def test_the_module_is_callable(tmp_path):
    table = fieldlearn.sweep(str(GRID), seeds=[0], sets={"duration.rounds": 3}, run_figures=False, progress=False)
    assert isinstance(table, Table) and len(table) == 4 and table.out is None and table.files == {}
    assert table.summary is not None and table.summary[0]["round"] == "end"


def test_default_out_folder_is_stable_so_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [str(GRID), "--set", "duration.rounds=3", "--no-run-figures"]
    assert main(args) == 0
    assert (tmp_path / "results" / "grid-sweep" / "results.csv").is_file()
    assert main(args) == 0
    assert "1 already complete" in capsys.readouterr().out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a result folder by relative path (the lock file, which names the last holder, aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_a_killed_replacement_leaves_the_previous_sweep_intact_and_resumes(tmp_path, capsys):
    log = tmp_path / "log.txt"
    a, b = write_tiny(tmp_path / "a"), write_tiny(tmp_path / "b", tag="b", log=log, sleep=0.4)
    out = tmp_path / "out"
    assert main([str(a), "--seeds", "0-1", "--out", str(out), "--quiet", "--no-run-figures"]) == 0
    before = _files(out)
    args = [str(b), "--seeds", "0-3", "--out", str(out), "--workers", "1", "--quiet", "--no-run-figures"]
    proc = subprocess.Popen([sys.executable, "-m", "fieldlearn.sweep", *args, "--replace"], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staging = tmp_path / ".out.replace"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if list(staging.glob("runs/*/done.json")) and list(staging.glob("runs/.partial-*")):
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its runs
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert _files(out) == before  # the previous sweep, byte for byte
    made = {p.parent.name for p in staging.glob("runs/*/done.json")}
    assert 1 <= len(made) < 4
    capsys.readouterr()
    assert main(args) == 2  # still another scenario's folder
    err = " ".join(capsys.readouterr().err.split())
    assert f"--out {out}" in err and str(a.resolve()) in err and str(b.resolve()) in err and "--replace" in err
    log.unlink()
    assert main(args + ["--replace"]) == 0
    plan = make_plan(b, "0-3")
    assert log_lines(log) == sorted(f"b {r.seed}" for r in plan.runs if r.id not in made)  # resumed, not redone
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["scenario_file"] == str(b.resolve()) and manifest["state"] == "complete"
    assert len(Table.from_csv(out / "results.csv")) == 4 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "log.txt", "out"]


def test_two_sweeps_racing_into_one_folder_leave_one_complete_sweep(tmp_path):
    out = tmp_path / "out"
    scenarios = {tag: write_tiny(tmp_path / tag, sleep=0.3) for tag in ("a", "b")}
    procs = {tag: subprocess.Popen([sys.executable, "-m", "fieldlearn.sweep", str(path), "--seeds", "0-1",
                                    "--grid", f"program.params.tag={tag}", "--out", str(out), "--quiet",
                                    "--no-run-figures", "--workers", "2"],
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for tag, path in scenarios.items()}
    codes = {tag: p.wait(timeout=120) for tag, p in procs.items()}
    errors = {tag: " ".join(p.stderr.read().decode().split()) for tag, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], errors
    winner = next(tag for tag, code in codes.items() if code == 0)
    loser = "b" if winner == "a" else "a"
    assert "another sweep is running" in errors[loser] or "another scenario" in errors[loser], errors[loser]
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["scenario_file"] == str(scenarios[winner].resolve()) and manifest["state"] == "complete"
    runs = {r["run"] for r in Table.from_csv(out / "results.csv")}
    assert len(runs) == 2 and all(r.startswith(f"tag={winner}_") for r in runs)
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(runs)
