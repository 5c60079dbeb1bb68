"""Where runs execute: a pool of local processes (default; one fresh process per run) or Ray tasks.

Both backends run the same function (`simulate`) on the same run description (`RunSpec`: the run's scenario as the
plan resolved it), so a sweep gives the same table on either (the simulator is deterministic per seed). A local run
commits its own folder into the store; a Ray task returns its files to the driver, which commits them (Ray workers
may be on machines without the driver's disk). Both report each run as an `Outcome` as soon as it ends, in
completion order. Every run's process starts with the sweep's thread policy in its environment
(`worker_environment`)."""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..sim.loader import LoadedScenario
from ..sim.files import json_plain
from .grid import SweepError
from .store import Store

THREADS_ENV = "FIELDLEARN_SWEEP_THREADS"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")
WAIT_POLICY = "OMP_WAIT_POLICY"
RAY_INSTALL = "pip install 'fieldlearn[ray]'  (or: pip install 'ray>=2.9')"
_PRELOAD = ["fieldlearn.sim.simulate", "fieldlearn.sweep.backends"]
_PRELOAD_FIGURES = ["matplotlib.figure", "matplotlib.backends.backend_agg", "fieldlearn.sim.figures"]
_PRELOAD_LEARNING = ["fieldlearn.learning", "fieldlearn.sim.learning"]  # torch: seconds per run otherwise


@dataclass
class RunSpec:
    """Everything a worker needs to make one run (picklable): the run's resolved scenario (the plan's, with the
    run's seed; the program is imported again in the worker), its configuration hash and device."""

    run_id: str
    scenario: LoadedScenario
    config_hash: str
    device: str = "cpu"
    cwd: str = field(default_factory=os.getcwd)
    store_root: str | None = None


@dataclass
class Outcome:
    """How one run ended: ok, or the error (one line) and its details (the traceback)."""

    run_id: str
    ok: bool
    error: str | None = None
    details: str | None = None
    wall: float = 0.0


# ------------------------------------------------------------------------------------------------ the worker
def thread_count() -> int:
    """Threads per run: one (a sweep's parallelism is across runs, as with Ray tasks), or $FIELDLEARN_SWEEP_THREADS."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "1")))
    except ValueError:
        return 1


def worker_environment() -> dict[str, str]:
    """The environment variables of every run's process: the thread limit of each numeric library, and OpenMP
    threads that sleep instead of spinning while they wait (`OMP_WAIT_POLICY=PASSIVE`, unless already set): with
    several runs per machine a spinning thread takes the core another run needs (a 1 ms step can take 4-78 ms)."""
    n = str(thread_count())
    env = {var: n for var in _THREAD_VARS}
    env[WAIT_POLICY] = os.environ.get(WAIT_POLICY, "PASSIVE")
    return env


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`env` set in this process while the block runs (processes started in it inherit it), then restored."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def limit_threads() -> int:
    """Apply the thread policy in this (worker) process: its environment for libraries loaded from now on, and the
    thread pools already loaded (numpy's BLAS, torch); returns the threads per run."""
    env = worker_environment()
    os.environ.update(env)
    n = int(env[_THREAD_VARS[0]])
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:  # threadpoolctl missing or a library it cannot handle
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:
            pass
    from ..calculus import keep_freed_memory

    keep_freed_memory()  # as the simulator's command line: round-sized arrays are reused, not re-mapped
    return n


def simulate(spec: RunSpec, out_dir: str | Path) -> dict[str, Any]:
    """Make one run, writing the simulator's files into `out_dir` (empty); return its rows for the sweep table."""
    from ..sim.simulate import run_scenario

    limit_threads()
    old = os.getcwd()
    out_dir = Path(out_dir).resolve()
    if spec.cwd and os.path.isdir(spec.cwd):
        os.chdir(spec.cwd)  # the program sees the sweep's working folder, as with the simulator's command line
    try:
        result = run_scenario(spec.scenario, out_dir, device=spec.device)
    finally:
        os.chdir(old)
    scenario = spec.scenario.scenario
    return {
        "run": spec.run_id,
        "columns": list(result.columns),
        "rows": json_plain(result.rows),
        "final": json_plain(result.final),
        "summary": json_plain(result.summary),
        "period": float(scenario.period),
        "end_time": float(scenario.end_time),
        "files": list(result.files),
    }


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(one line, full text) for a failed run: the program's traceback for a simulation error."""
    from ..sim.engine import SimulationError
    from ..sim.errors import ScenarioError

    if isinstance(exc, SimulationError):
        tb = "".join(traceback.format_exception(exc.error))
        return str(exc), tb + f"\n{exc}\n"
    if isinstance(exc, ScenarioError):
        return f"{type(exc).__name__}: {exc}", f"{exc}\n"
    line = f"{type(exc).__name__}: {exc}".strip()
    return line.splitlines()[0] if line else type(exc).__name__, "".join(traceback.format_exception(exc))


def _watch_parent(conn: Any, finishing: Any) -> None:
    """Exit as soon as the sweep's end of the pipe closes (the sweep was killed): no orphan run goes on using a core
    (what it wrote stays a `.partial-` folder, removed by the next sweep)."""
    import threading

    def watch() -> None:
        try:
            while not conn.poll(None):
                pass
        except Exception:
            pass
        if not finishing.is_set():
            os._exit(1)

    threading.Thread(target=watch, name="sweep-parent-watch", daemon=True).start()


def _local_child(spec: RunSpec, conn: Any) -> None:
    """A pool process: make the run, commit it into the store, report ('ok', wall) or ('error', line, details)."""
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the children
    finishing = threading.Event()
    _watch_parent(conn, finishing)
    store = Store(spec.store_root or ".")
    started = time.perf_counter()
    tmp = None
    try:
        conn.send(("started",))
        tmp = store.begin(spec.run_id)
        simulated = time.perf_counter()
        result = simulate(spec, tmp)
        store.commit(tmp, spec.run_id, spec.config_hash, result, time.perf_counter() - simulated)
        tmp = None
        finishing.set()
        conn.send(("ok", time.perf_counter() - started))
    except BaseException as exc:
        finishing.set()
        if tmp is not None:
            store.discard(tmp)
        line, details = describe_error(exc)
        try:
            conn.send(("error", line, details))
        except Exception:
            pass
        conn.close()
        os._exit(1)
    conn.close()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _context(figures: bool = True, learning: bool = False) -> Any:
    """A fork server that has imported the simulator once (each run then starts in milliseconds, in a fresh
    process without the parent's threads, CUDA context or memory); spawn where there is no fork server.
    `figures`: also preload matplotlib (when the runs draw figures); `learning`: also torch and the learning
    package (when the runs' programs learn)."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD + (_PRELOAD_FIGURES if figures else [])
                                   + (_PRELOAD_LEARNING if learning else []))
        return ctx
    return mp.get_context("spawn")


class LocalBackend:
    """At most `workers` runs at a time, each in a fresh process (a crash, a leak or global state of one run cannot
    touch another); a run past `timeout` seconds is killed and reported as failed."""

    name = "local"

    def __init__(self, workers: int | None = None, timeout: float | None = None):
        self.workers = workers or default_workers()
        self.timeout = timeout
        self._ctx: Any = None

    def describe(self) -> str:
        return f"{self.workers} local process{'es' if self.workers != 1 else ''}"

    def start(self, figures: bool = True, learning: bool = False) -> None:
        """Start the fork server now (its imports then overlap with the sweep's own preparations), preloading what
        the runs need (see `_context`); it and every run's process have the worker environment
        (`worker_environment`) from their start. A later call changes nothing (the fork server is started once)."""
        if self._ctx is None:
            self._ctx = _context(figures, learning)
            if self._ctx.get_start_method() == "forkserver":
                from multiprocessing import forkserver

                with _environment(worker_environment()):
                    forkserver.ensure_running()

    def run(self, specs: Sequence[RunSpec], store: Store) -> Iterator[Outcome]:
        from multiprocessing.connection import wait

        self.start()
        ctx = self._ctx
        pending = deque(specs)
        running: dict[str, dict[str, Any]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    spec = pending.popleft()
                    spec.store_root = str(store.root.resolve())
                    recv, send = ctx.Pipe(duplex=True)  # the run also watches it to notice the sweep dying
                    proc = ctx.Process(target=_local_child, args=(spec, send), name=f"sweep-{spec.run_id}", daemon=True)
                    with _environment(worker_environment()):  # for spawn, where there is no fork server
                        proc.start()
                    send.close()
                    running[spec.run_id] = {"proc": proc, "conn": recv, "msg": None, "start": None,
                                            "queued": time.monotonic()}
                wait_for: list[Any] = []
                for r in running.values():
                    wait_for.append(r["proc"].sentinel)
                    if r["conn"] is not None:
                        wait_for.append(r["conn"])
                timeout = 1.0
                if self.timeout is not None:
                    now = time.monotonic()
                    ends = [r["start"] + self.timeout - now for r in running.values() if r["start"] is not None]
                    timeout = max(0.0, min([timeout] + ends))
                wait(wait_for, timeout=timeout)
                for run_id in list(running):
                    r = running[run_id]
                    self._receive(r)
                    proc = r["proc"]
                    late = self.timeout is not None and r["start"] is not None and time.monotonic() - r["start"] > self.timeout
                    if proc.exitcode is None and late:
                        proc.kill()
                        proc.join()
                        r["msg"] = ("error", f"timed out after {self.timeout:g} s (killed)", None)
                    if proc.exitcode is None:
                        continue
                    proc.join()
                    self._receive(r)
                    if r["conn"] is not None:
                        r["conn"].close()
                    del running[run_id]
                    yield self._outcome(run_id, proc.exitcode, r["msg"], time.monotonic() - (r["start"] or r["queued"]))
        finally:
            for r in running.values():
                if r["proc"].exitcode is None:
                    r["proc"].kill()
            for r in running.values():
                r["proc"].join(timeout=5)
                if r["conn"] is not None:
                    r["conn"].close()

    @staticmethod
    def _receive(r: dict[str, Any]) -> None:
        """Read what the run's process said: ('started',) when it begins, then its result or error."""
        conn = r["conn"]
        while conn is not None and r["msg"] is None:
            try:
                if not conn.poll():
                    return
                m = conn.recv()
            except (EOFError, OSError):
                conn.close()
                r["conn"] = None
                return
            if isinstance(m, tuple) and m and m[0] == "started":
                r["start"] = time.monotonic()
            else:
                r["msg"] = m

    @staticmethod
    def _outcome(run_id: str, code: int | None, msg: Any, wall: float) -> Outcome:
        if isinstance(msg, tuple) and msg and msg[0] == "ok" and code == 0:
            return Outcome(run_id, True, wall=float(msg[1]))
        if isinstance(msg, tuple) and msg and msg[0] == "error":
            return Outcome(run_id, False, msg[1], msg[2], wall)
        if code is not None and code < 0:
            return Outcome(run_id, False, f"the worker process was killed by {_signal_name(-code)}", None, wall)
        return Outcome(run_id, False, f"the worker process exited with code {code} without a result", None, wall)


# ------------------------------------------------------------------------------------------------------- Ray
def ray_task(spec: RunSpec) -> tuple:
    """A Ray task: make the run in a private temporary folder and return its rows and files (as bytes)."""
    tmp = tempfile.mkdtemp(prefix="fieldlearn-sweep-")
    started = time.perf_counter()
    try:
        result = simulate(spec, tmp)
        wall = time.perf_counter() - started
        files = {name: (Path(tmp) / name).read_bytes() for name in result["files"]}
        return ("ok", result, files, wall)
    except BaseException as exc:
        line, details = describe_error(exc)
        return ("error", line, details, time.perf_counter() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError(f"--ray: Ray is not installed; install it with {RAY_INSTALL}") from None
    return ray


class RayBackend:
    """Runs as Ray tasks (one CPU each) on a local Ray instance (`address` None or 'local') or an existing cluster
    (`auto`, `HOST:PORT`, `ray://HOST:PORT`); at most `workers` tasks in flight (default: the cluster's CPUs).

    On a cluster, every node needs fieldlearn installed and the scenario's folder (and programs) at the same path,
    e.g. a shared file system; results come back to the driver, which writes them."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, timeout: float | None = None):
        self.address = None if address in (None, "", "local") else address
        self.workers = workers
        self.timeout = timeout
        self.ray = import_ray()

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return f"Ray tasks on {where}" + (f" ({self.workers} at a time)" if self.workers else "")

    def run(self, specs: Sequence[RunSpec], store: Store) -> Iterator[Outcome]:
        import logging

        ray = self.ray
        started_here = False
        if not ray.is_initialized():
            self._check_reachable()
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.workers or default_workers()
            try:
                ray.init(address=self.address, **kwargs)
            except Exception as exc:
                arg = f"--ray {self.address}" if self.address else "--ray"
                what = f"cannot connect to the Ray cluster at {self.address}" if self.address else "cannot start Ray"
                raise SweepError(f"{arg}: {what}: {type(exc).__name__}: {exc}") from None
            started_here = True
        limit = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=0, runtime_env={"env_vars": worker_environment()})(ray_task)
        pending = deque(specs)
        inflight: dict[Any, tuple[RunSpec, float]] = {}
        try:
            while pending or inflight:
                while pending and len(inflight) < limit:
                    spec = pending.popleft()
                    inflight[task.remote(spec)] = (spec, time.monotonic())
                wait_s = 1.0
                if self.timeout is not None:
                    now = time.monotonic()
                    wait_s = max(0.01, min([wait_s] + [t + self.timeout - now for _, t in inflight.values()]))
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=wait_s)
                for ref in done:
                    spec, t0 = inflight.pop(ref)
                    yield self._collect(ray, ref, spec, store, time.monotonic() - t0)
                if self.timeout is not None:
                    now = time.monotonic()
                    for ref, (spec, t0) in list(inflight.items()):
                        if now - t0 > self.timeout:
                            ray.cancel(ref, force=True)
                            del inflight[ref]
                            yield Outcome(spec.run_id, False, f"timed out after {self.timeout:g} s (cancelled)", None,
                                          now - t0)
        finally:
            for ref in inflight:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            if started_here:
                ray.shutdown()

    def _check_reachable(self, timeout: float = 5.0) -> None:
        """Fail fast (instead of Ray's minutes of retries) when a HOST:PORT address does not answer."""
        import re
        import socket

        m = re.fullmatch(r"(?:ray://)?([\w.-]+):(\d+)", self.address or "")
        if not m:
            return
        try:
            socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
        except OSError as exc:
            raise SweepError(f"--ray {self.address}: cannot reach the Ray cluster there ({exc}); start one with "
                             "`ray start --head` or give its address") from None

    @staticmethod
    def _collect(ray: Any, ref: Any, spec: RunSpec, store: Store, wall: float) -> Outcome:
        try:
            got = ray.get(ref)
        except Exception as exc:  # the worker died, the node was lost, the task was cancelled
            line = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
            return Outcome(spec.run_id, False, f"the Ray task failed: {line}", str(exc), wall)
        if got[0] != "ok":
            return Outcome(spec.run_id, False, got[1], got[2], wall)
        _, result, files, run_wall = got
        try:
            store.write_payload(spec.run_id, spec.config_hash, result, files, float(run_wall))
        except OSError as exc:
            return Outcome(spec.run_id, False, f"cannot write the run's results: {exc}", None, wall)
        return Outcome(spec.run_id, True, wall=float(run_wall))


def make_backend(ray: Any = None, workers: int | None = None, timeout: float | None = None) -> Any:
    """`ray` None/False: local processes; True or 'local': a local Ray instance; a string: that Ray address."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"--workers {workers}: must be a whole number >= 1")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
        raise SweepError(f"--timeout {timeout}: must be a number of seconds > 0")
    if ray is None or ray is False:
        return LocalBackend(workers, timeout)
    if ray is True:
        return RayBackend(None, workers, timeout)
    if not isinstance(ray, str):
        raise SweepError(f"ray: expected True, 'local' or an address such as 'auto' or 'HOST:PORT', got {ray!r}")
    import re

    addr = ray.strip()
    if addr not in ("local", "auto") and not re.fullmatch(r"(ray://)?[\w.-]+:\d{1,5}", addr):
        raise SweepError(f"--ray {ray}: not a Ray address; give nothing (a local instance), auto, HOST:PORT or "
                         "ray://HOST:PORT (put --ray after the scenario file)")
    return RayBackend(addr, workers, timeout)
