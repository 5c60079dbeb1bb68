"""Backends: local processes and Ray give identical tables; a killed or hung worker fails only its run, and the
next sweep with the same arguments reruns only that run; Ray missing or misnamed is a clear input error."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from fieldlearn.sweep import sweep
from fieldlearn.sweep.backends import LocalBackend, RayBackend, make_backend, worker_environment
from fieldlearn.sweep.grid import SweepError

from .helpers import GRID, log_lines, write_tiny

HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for this module's Ray sweeps (they use a running instance and leave it running)."""
    if not HAVE_RAY:
        yield None
        return
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'fieldlearn[ray]'); CI installs it")
def test_local_and_ray_backends_give_identical_tables(tmp_path, ray_instance):
    args = dict(seeds="0-1", grid={"links.radius": [1.5, 2.5]}, sets={"duration": {"rounds": 5}}, workers=2,
                rounds_at="2,end", run_figures=False, progress=False)
    local = sweep(GRID, out=tmp_path / "local", **args)
    ray = sweep(GRID, ray=True, out=tmp_path / "ray", **args)
    assert not local.failures and not ray.failures
    assert len(local) == 4 * 6 and local.columns[:5] == ["run", "links.radius", "seed", "time", "round"]
    assert local.to_csv() == ray.to_csv()
    assert local.summary.to_csv() == ray.summary.to_csv()
    for run in {r["run"] for r in local}:
        for name in ("metrics.csv", "summary.json", "scenario.yaml", "result.json", "done.json"):
            a = (tmp_path / "local" / "runs" / run / name).read_bytes()
            assert a == (tmp_path / "ray" / "runs" / run / name).read_bytes(), (run, name)
    assert (tmp_path / "ray" / "comparison.png").read_bytes() == (tmp_path / "local" / "comparison.png").read_bytes()


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads a process's environment from /proc")
def test_every_run_starts_with_the_thread_policy(tmp_path, ray_instance):
    expected = f"{os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')} {os.environ.get('FIELDLEARN_SWEEP_THREADS', '1')}"
    env = tmp_path / "env.txt"
    scen = write_tiny(tmp_path, environ=env)
    sweep(scen, seeds="0-1", workers=2, run_figures=False, progress=False)
    assert env.read_text().splitlines() == [expected] * 2
    if ray_instance is not None:  # its workers started with the environment of this process (no policy)
        sweep(scen, seeds="2", ray=True, workers=1, run_figures=False, progress=False)
        assert env.read_text().splitlines() == [expected] * 3


def test_a_killed_worker_fails_only_its_run_and_the_rerun_makes_only_it(tmp_path):
    log, marker = tmp_path / "log.txt", tmp_path / "kill-me"
    marker.write_text("")
    scen = write_tiny(tmp_path, log=log, kill_tag="b", kill_seed=1, marker=marker)
    args = dict(seeds="0-1", grid={"program.params.tag": ["a", "b"]}, workers=2, out=tmp_path / "out", progress=False)
    first = sweep(scen, **args)
    assert log_lines(log) == ["a 0", "a 1", "b 0", "b 1"]
    assert [(f["program.params.tag"], f["seed"]) for f in first.failures] == [("b", 1)]
    assert "killed by SIGKILL" in first.failures[0]["error"]
    assert sorted({(r["program.params.tag"], r["seed"]) for r in first}) == [("a", 0), ("a", 1), ("b", 0)]
    assert "failures.csv" in first.files and "SIGKILL" in first.files["failures.csv"].read_text()
    summary_b = [r for r in first.summary if r["program.params.tag"] == "b"]
    assert summary_b and all(r["runs"] == 1 and r["failed"] == 1 for r in summary_b)
    assert [(r["program.params.tag"], r["seed"], r["status"]) for r in first.runs] == [
        ("a", 0, "complete"), ("a", 1, "complete"), ("b", 0, "complete"), ("b", 1, "failed")]
    assert [r["wall_s"] is None for r in first.runs] == [False, False, False, True]
    assert "SIGKILL" in first.runs[3]["error"]

    marker.unlink()
    log.unlink()
    second = sweep(scen, **args)
    assert log_lines(log) == ["b 1"]  # only the run without a complete result
    assert not second.failures and second.ran == 1 and second.reused == 3
    assert len({r["run"] for r in second}) == 4 and "failures.csv" not in second.files
    assert not (tmp_path / "out" / "failures.csv").exists()
    assert [r["status"] for r in second.runs] == ["complete"] * 4
    assert [r["wall_s"] for r in second.runs][:3] == [r["wall_s"] for r in first.runs][:3]  # kept from disk


def test_runs_table_records_each_runs_simulation_wall_time(tmp_path):
    scen = write_tiny(tmp_path)
    table = sweep(scen, seeds="0", grid={"program.params.sleep": [0, 1.5]}, workers=2, out=tmp_path / "out",
                  run_figures=False, progress=False)
    quick, slow = table.runs
    assert (quick["program.params.sleep"], slow["program.params.sleep"]) == (0, 1.5)
    assert 0 < quick["wall_s"] < 1.5 <= slow["wall_s"] < 10
    assert table.files["runs.csv"].read_text().splitlines()[0] == "run,program.params.sleep,seed,status,wall_s,error"


def test_a_run_past_the_timeout_is_killed_and_reported(tmp_path):
    scen = write_tiny(tmp_path)
    table = sweep(scen, seeds="0", grid={"program.params.sleep": [0, 60]}, workers=2, timeout=2, progress=False)
    assert len(table.failures) == 1 and "timed out after 2 s" in table.failures[0]["error"]
    assert {r["program.params.sleep"] for r in table} == {0}


def test_ray_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(SweepError, match=r"pip install 'fieldlearn\[ray\]'"):
        make_backend(ray=True)
    with pytest.raises(SweepError, match=r"--ray: Ray is not installed"):
        sweep(GRID, ray="auto", progress=False)


def test_backend_arguments():
    assert isinstance(make_backend(), LocalBackend) and make_backend(workers=3).workers == 3
    assert make_backend().workers >= 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SweepError, match="--workers"):
            make_backend(workers=bad)
    with pytest.raises(SweepError, match="--timeout"):
        make_backend(timeout=0)
    with pytest.raises(SweepError, match="not a Ray address"):
        make_backend(ray="scenarios/grid.yaml")
    if HAVE_RAY:
        assert make_backend(ray=True).address is None and make_backend(ray="local").address is None
        assert make_backend(ray="10.0.0.1:6379").address == "10.0.0.1:6379"
        assert isinstance(make_backend(ray="ray://head:10001"), RayBackend)


def test_the_worker_environment_keeps_a_wait_policy_the_user_set(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("FIELDLEARN_SWEEP_THREADS", raising=False)
    env = worker_environment()
    assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("FIELDLEARN_SWEEP_THREADS", "3")
    env = worker_environment()
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    monkeypatch.setenv("FIELDLEARN_SWEEP_THREADS", "many")
    assert worker_environment()["OMP_NUM_THREADS"] == "1"
