"""fieldlearn.sim.result_folder: a run's results take the place of --out only once complete. Each way of losing or
mixing results is tried on the real command line: a run killed (SIGKILL) while running, while writing and between
the two renames of the swap, Ctrl-C while writing and after, two runs racing into one folder, a figure that cannot
be drawn, a folder whose last run left no summary.json."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fieldlearn.sim.__main__ import main
from fieldlearn.sim.result_folder import OutputBusy, OutputExists, ResultFolder, is_result_file

REPO = Path(__file__).resolve().parents[2]

SLOW = '''\
import os, time
from fieldlearn import sense

def program():
    mark = os.environ.get("FL_MARK")
    if mark:
        open(mark, "a").close()
    time.sleep(float(os.environ.get("FL_SLEEP", "0")))
    hold = os.environ.get("FL_HOLD")
    while hold and os.path.exists(hold):  # the test lets it go on
        time.sleep(0.01)
    return {"v": sense("id") * 1.0}
'''

SCENARIO = '''\
name: s
seed: 1
duration: {rounds: 30}
deployments: [{kind: grid, rows: 3, cols: 3}]
links: {rule: radius, radius: 1.5}
program: slow.py
exports: {values: [v], per_device: [v], figures: {timeseries: true, snapshots: [{value: v, times: [end]}]}}
'''


@pytest.fixture
def here(tmp_path: Path) -> Path:
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)
    env.pop("FL_MARK", None)
    env.update(extra)
    return env


def _cli(here: Path, *args: str, patch: str = "", **env: str) -> subprocess.Popen:
    """`python -m fieldlearn.sim s.yaml ARGS` in `here`, after running `patch` (Python) in that process."""
    code = textwrap.dedent(patch) + "\nimport sys\nfrom fieldlearn.sim.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", code, "s.yaml", "--quiet", *args], cwd=here, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, " ".join(err.split())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started its rounds"
        time.sleep(0.02)


def _complete_run(here: Path, out: Path, *args: str) -> dict[str, bytes]:
    rc, err = _done(_cli(here, "--out", str(out), *args))
    assert rc == 0, err
    files = _files(out)
    assert sorted(files) == sorted(json.loads(files["summary.json"])["files"])
    return files


def test_a_forced_run_killed_while_running_leaves_the_previous_results_intact(here):
    out = here / "out"
    old = _complete_run(here, out)
    proc = _cli(here, "--out", str(out), "--force", "--seed", "2", FL_SLEEP="0.2", FL_MARK=str(here / "mark"))
    _wait_for(here / "mark", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _files(out) == old
    assert [n for n in _beside(out) if ".partial-" in n]  # the killed run's staging folder, never read
    new = _complete_run(here, out, "--force", "--seed", "2")  # the next run cleans it up
    assert new["summary.json"] != old["summary.json"] and _beside(out) == []


def test_a_forced_run_killed_while_writing_its_files_leaves_the_previous_results_intact(here):
    out = here / "out"
    old = _complete_run(here, out)
    kill_on_second_write = '''
        import os, signal
        from fieldlearn.sim import files
        real, calls = files.os.replace, []
        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
        files.os.replace = replace
    '''
    rc, _ = _done(_cli(here, "--out", str(out), "--force", "--seed", "2", patch=kill_on_second_write))
    assert rc == -signal.SIGKILL
    assert _files(out) == old
    staging = [here / n for n in _beside(out) if ".partial-" in n]
    assert len(staging) == 1
    left = sorted(p.name for p in staging[0].iterdir())
    assert left[1:] == ["scenario.yaml"] and left[0].startswith(".metrics.csv.tmp-")  # killed mid-write
    new = _complete_run(here, out, "--force", "--seed", "2")
    assert new != old and _beside(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files in the result folder


def test_a_run_killed_between_the_two_renames_is_put_in_place_by_the_next_one(here):
    out = here / "out"
    _complete_run(here, out)
    kill_before_taking_the_place = f'''
        import os, signal
        from fieldlearn.sim import result_folder
        real = result_folder.os.rename
        def rename(src, dst):
            if str(dst) == {str(out)!r}:
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
        result_folder.os.rename = rename
    '''
    rc, _ = _done(_cli(here, "--out", str(out), "--force", "--seed", "2", patch=kill_before_taking_the_place))
    assert rc == -signal.SIGKILL
    assert not out.exists()  # renamed aside; the new complete run is ready beside it
    assert [n.split("-")[0] for n in _beside(out)] == [".out.lock", ".out.old", ".out.ready"]
    ResultFolder.open(out, force=True).close()  # the next run into --out finishes the swap first
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 2 and sorted(summary["files"]) == sorted(p.name for p in out.iterdir())
    assert _beside(out) == []


def test_a_fresh_run_killed_leaves_no_folder_and_the_same_command_then_works(here):
    out = here / "out"
    proc = _cli(here, "--out", str(out), FL_SLEEP="0.2", FL_MARK=str(here / "mark"))
    _wait_for(here / "mark", proc)
    proc.kill()
    proc.wait(timeout=30)
    assert not out.exists()
    _complete_run(here, out)  # no --force needed: nothing was there
    assert _beside(out) == []


@pytest.mark.parametrize("when, says, intact", [
    ("write", "interrupted; nothing was written: the previous results in out are intact", True),
    ("remove", "interrupted after the results were complete in out", False),
])
def test_ctrl_c_says_truthfully_what_was_written(here, when, says, intact):
    out = here / "out"
    old = _complete_run(here, out)
    interrupt = {
        "write": '''
            import os, signal
            from fieldlearn.sim import files
            real = files.os.replace
            def replace(src, dst):
                if str(dst).endswith("metrics.csv"):
                    os.kill(os.getpid(), signal.SIGINT)
                real(src, dst)
            files.os.replace = replace
        ''',
        "remove": '''
            import os, signal
            from fieldlearn.sim import result_folder
            real = result_folder._remove_results
            def remove(folder):
                os.kill(os.getpid(), signal.SIGINT)
                real(folder)
            result_folder._remove_results = remove
        ''',
    }[when]
    rc, err = _done(_cli(here, "--out", "out", "--force", "--seed", "2", patch=interrupt))
    assert rc == 1 and err == f"error: {says}"
    now = _files(out)
    assert (now == old) is intact
    assert sorted(now) == sorted(json.loads(now["summary.json"])["files"])
    if not intact:
        assert json.loads(now["summary.json"])["seed"] == 2


def test_two_runs_into_one_folder_never_mix(here):
    out = here / "out"
    (here / "hold").touch()
    first = _cli(here, "--out", str(out), FL_MARK=str(here / "mark"), FL_HOLD=str(here / "hold"))
    _wait_for(here / "mark", first)
    rc, err = _done(_cli(here, "--out", str(out), "--seed", "2"))
    assert rc == 2 and f"--out {out}: another run is writing into this folder (process {first.pid})" in err
    assert err.startswith("error: s.yaml: ") and "Traceback" not in err
    rc, err = _done(_cli(here, "--out", str(out), "--seed", "2", "--force"))
    assert rc == 2 and "another run is writing" in err
    (here / "hold").unlink()
    assert _done(first)[0] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 1 and sorted(summary["files"]) == sorted(p.name for p in out.iterdir())
    assert _beside(out) == []  # the lock is gone with the run


def test_force_over_a_folder_without_summary_leaves_no_stale_files(here):
    out = here / "out"
    out.mkdir()
    for name in ("devices.csv", "metrics.csv", "snapshot_7.png", "timeseries.png", ".metrics.csv.tmp-123-abcdef"):
        (out / name).write_text("from a run that never finished")
    rc, err = _done(_cli(here, "--out", str(out), "--set", "exports.per_device=[]"))
    assert rc == 2 and "--force" in err
    new = _complete_run(here, out, "--force", "--set", "exports.per_device=[]", "--set", "exports.figures.snapshots=[]")
    assert sorted(new) == ["metrics.csv", "scenario.yaml", "summary.json", "timeseries.png"]


def test_leftover_temporary_files_are_cleaned_by_the_next_run(here):
    out = here / "out"
    out.mkdir()
    (out / ".summary.json.tmp-99-abcdef").write_text("{")
    _complete_run(here, out)  # nothing but leftovers: no --force needed, and they are gone
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_force_refuses_a_folder_holding_anything_but_results(here, capsys):
    out = here / "out"
    _complete_run(here, out)
    (out / "notes.txt").write_text("mine")
    (out / "runs").mkdir()
    rc, err = _done(_cli(here, "--out", str(out), "--force"))
    assert rc == 2 and "--force replaces a folder of results only, and this one also holds notes.txt, runs" in err
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").is_file()
    rc, err = _done(_cli(here, "--out", ".", "--force"))
    assert rc == 2 and "is the working folder" in err


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_the_run_is_kept(here, monkeypatch, capsys):
    from fieldlearn.sim import export

    def broken(*args, **kw):
        raise OverflowError("cannot draw that")

    monkeypatch.chdir(here)
    monkeypatch.setattr(export, "timeseries_png", broken)
    with pytest.warns(export.DrawingWarning, match="timeseries.png not written: OverflowError: cannot draw that"):
        assert main(["s.yaml", "--quiet", "--out", "out"]) == 0
    summary = json.loads((here / "out" / "summary.json").read_text())
    assert summary["files"] == ["scenario.yaml", "metrics.csv", "devices.csv", "snapshot_v.png", "summary.json"]
    assert sorted(summary["files"]) == sorted(p.name for p in (here / "out").iterdir())
    monkeypatch.undo()
    monkeypatch.chdir(here)
    assert main(["s.yaml", "--quiet", "--out", "out", "--force"]) == 0  # the same command replaces it
    assert "timeseries.png" in json.loads((here / "out" / "summary.json").read_text())["files"]


def test_a_failed_forced_run_leaves_the_previous_results(here, capsys, monkeypatch):
    out = here / "out"
    old = _complete_run(here, out)
    (here / "boom.py").write_text("def program():\n    raise RuntimeError('kaput')\n")
    monkeypatch.chdir(here)
    assert main(["s.yaml", "--quiet", "--out", "out", "--force", "--set", "program=boom.py"]) == 1
    assert "kaput" in capsys.readouterr().err
    assert _files(out) == old and _beside(out) == []


def test_the_lock_is_taken_once_and_released(tmp_path):
    out = tmp_path / "o"
    first = ResultFolder.open(out, force=False)
    with pytest.raises(OutputBusy, match=f"--out {out}: another run is writing into this folder \\(process {os.getpid()}\\)"):
        ResultFolder.open(out, force=False)
    first.close()
    ResultFolder.open(out, force=False).close()
    assert list(tmp_path.iterdir()) == []
    out.write_text("a file")
    with pytest.raises(OutputExists, match="exists and is not a folder"):
        ResultFolder.open(out, force=True)


def test_what_counts_as_a_result_file(tmp_path):
    for name in ("metrics.csv", "figure.png", ".x.tmp-1-ab", "notes.txt", "mine.csv"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    got = {p.name for p in tmp_path.iterdir() if is_result_file(p, frozenset({"mine.csv"}))}
    assert got == {"metrics.csv", "figure.png", ".x.tmp-1-ab", "mine.csv"}


def test_a_link_to_a_result_folder_replaces_the_folder_it_names(here):
    real = here / "real"
    _complete_run(here, real)
    (here / "link").symlink_to(real)
    new = _complete_run(here, here / "link", "--force", "--seed", "2")
    assert (here / "link").is_symlink() and _files(real) == new and json.loads(new["summary.json"])["seed"] == 2


def test_what_a_killed_run_leaves_in_a_sweeps_folder_is_what_the_sweep_cleans(tmp_path):
    from fieldlearn.sweep.store import Store

    store = Store(tmp_path / "sweep")
    store.open()
    run = store.begin("r1")  # the sweep writes a run into runs/.partial-r1-PID-HEX, then renames it
    killed_while_writing = (f"import os, signal\nfrom fieldlearn.sim.result_folder import ResultFolder\n"
                            f"folder = ResultFolder.open({str(run)!r}, force=False)\n"
                            f"(folder.staging / 'metrics.csv').write_text('time')\n"
                            f"os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", killed_while_writing], env=_env(), capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(p.name for p in store.runs.iterdir())  # the lock, the staging folder and the run's folder
    assert len(left) == 3 and all(n.startswith(".partial-r1-") for n in left)
    store.clean()
    assert list(store.runs.iterdir()) == []
