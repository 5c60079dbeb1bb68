"""Running a scenario end to end: engine, recorder, result folder; the API behind `python -m fieldlearn.sim`."""
from __future__ import annotations

import json
import time as _time
from pathlib import Path
from typing import Any, Callable

from .engine import Engine
from .errors import ScenarioError
from .export import write_results
from .loader import LoadedScenario
from .recording import Recorder
from .result import Result
from .watch import Watch


class OutputExists(ScenarioError):
    """The chosen result folder already holds files and --force was not given."""


def default_out_dir(scenario: LoadedScenario, root: Path = Path("results")) -> Path:
    """`results/NAME` if free or empty, else a fresh `results/NAME-YYYYmmdd-HHMMSS[-k]` (never reuses results)."""
    name = scenario.name or "scenario"
    base = root / name
    if not base.exists() or (base.is_dir() and not any(base.iterdir())):
        return base
    stamp = _time.strftime("%Y%m%d-%H%M%S")
    cand = root / f"{name}-{stamp}"
    k = 2
    while cand.exists():
        cand = root / f"{name}-{stamp}-{k}"
        k += 1
    return cand


def prepare_out_dir(out: Path, force: bool) -> None:
    """Create `out`; refuse a non-empty folder unless `force`, then remove only the files a previous run listed."""
    if out.exists() and not out.is_dir():
        raise OutputExists(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputExists(
                f"--out {out}: the folder already holds files; results are never overwritten silently. "
                "Pass --force to replace the previous results there, or choose another --out (without --out a "
                "fresh folder under results/ is used)"
            )
        old = out / "summary.json"
        try:
            listed = json.loads(old.read_text()).get("files", []) if old.is_file() else []
        except (OSError, ValueError):
            listed = []
        for name in listed:
            p = out / str(name)
            if p.parent == out and p.is_file():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


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
    memory). `program` (called with no arguments) replaces the scenario's own, e.g. a function under test."""
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        prepare_out_dir(out_path, force)
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
    if out_path is not None:
        files = write_results(out_path, recorder, summary, scenario.to_yaml())
    result = Result(scenario, engine, recorder.columns or [], recorder.rows, recorder.final, summary, out_path, files,
                    wall, watch.recording)
    if out_path is not None:  # drawn after the data results are complete; a failure to draw is only a warning
        result.files += watch.write(out_path, result)
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
