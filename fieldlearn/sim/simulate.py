"""Running a scenario end to end: engine, recorder, result folder; the API behind `python -m fieldlearn.sim`."""
from __future__ import annotations

import time as _time
from pathlib import Path
from typing import Any, Callable

from .engine import Engine
from .errors import ScenarioError
from .export import write_results
from .loader import LoadedScenario
from .recording import Recorder
from .result import Result
from .result_folder import OutputExists, ResultFolder
from .watch import Watch

__all__ = ["OutputExists", "default_out_dir", "make_summary", "prepare_out_dir", "run_scenario"]


def default_out_dir(scenario: LoadedScenario, root: Path = Path("results")) -> Path:
    """`results/NAME` if free or empty, else a fresh `results/NAME-YYYYmmdd-HHMMSS[-k]` (never reuses results)."""
    name = scenario.name or "scenario"
    base = root / name
    if _free(base):
        return base
    stamp = _time.strftime("%Y%m%d-%H%M%S")
    cand = root / f"{name}-{stamp}"
    k = 2
    while not _free(cand):
        cand = root / f"{name}-{stamp}-{k}"
        k += 1
    return cand


def _free(folder: Path) -> bool:
    """No results there, nor beside it (a run killed while taking its place, or still writing it)."""
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        return False
    parent = folder.parent
    return not parent.is_dir() or not any(p.name.startswith(f".{folder.name}.") for p in parent.iterdir())


def prepare_out_dir(out: Path, force: bool) -> ResultFolder:
    """The result folder of a run into `out`, locked and checked (`ResultFolder.open`): refuses a folder that holds
    files unless `force`, and with `force` one that holds anything but results."""
    return ResultFolder.open(out, force)


def run_scenario(
    scenario: LoadedScenario,
    out: str | Path | None = None,
    *,
    force: bool = False,
    device: str = "cpu",
    progress: Callable[[float], None] | None = None,
    program: Callable[[], Any] | None = None,
) -> Result:
    """Run a loaded scenario (`load_scenario`); write its result files into `out` when given (None: keep results in
    memory). `program` (called with no arguments) replaces the scenario's own, e.g. a function under test.

    The files are written beside `out` and take its place only once complete (`result_folder`): an interrupted or
    failed run leaves what `out` held before; a figure that cannot be drawn is a DrawingWarning, not a lost run."""
    out_path = Path(out) if out is not None else None
    folder = None
    try:
        folder = prepare_out_dir(out_path, force) if out_path is not None else None
        result = _run(scenario, folder, out_path, device, progress, program)
        if folder is not None:
            folder.commit()
        return result
    except ScenarioError as exc:
        raise exc.with_source(scenario.source) if exc.source is None and scenario.source else exc from None
    except KeyboardInterrupt:
        if folder is None:
            raise
        raise folder.interrupted() from None
    finally:
        if folder is not None:
            folder.close()


def _run(scenario: LoadedScenario, folder: ResultFolder | None, out: Path | None, device: str,
         progress: Callable[[float], None] | None, program: Callable[[], Any] | None) -> Result:
    engine = Engine(scenario, program, device=device)
    recorder = Recorder(engine)
    watch = Watch(engine)  # frames for exports.animation / exports.viewer (records nothing unless asked)
    started = _time.perf_counter()
    engine.run(progress=progress)
    recorder.finish(engine)
    watch.finish(engine)
    wall = _time.perf_counter() - started
    summary = make_summary(scenario, engine, recorder)
    files: list[str] = []
    if folder is not None:
        files = write_results(folder.staging, recorder, summary, scenario.to_yaml())
    result = Result(scenario, engine, recorder.columns or [], recorder.rows, recorder.final, summary, out, files,
                    wall, watch.recording)
    if folder is not None:  # drawn after the data results are complete; a failure to draw is only a warning
        result.files += watch.write(folder.staging, result)
    return result


def make_summary(loaded: LoadedScenario, e: Engine, rec: Recorder) -> dict[str, Any]:
    """The JSON summary: what ran, how much, the faults, and the final statistics (no wall-clock values)."""
    scenario = loaded.scenario
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "program": scenario.program.name,
        "devices": e.capacity,
        "alive_at_end": int(e.alive.sum()),
        "end_time": e.end_time,
        "device_rounds": e.device_rounds,
        "batches": e.batches,
        "graph_builds": e.env.rebuilds,
        "rows": len(rec.rows),
        "faults": [{"time": f.time, "kind": f.kind, "count": f.count} for f in e.faults_log],
        "final": rec.final,
    }
