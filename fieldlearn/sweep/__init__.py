"""Sweeps: many seeds and variants of one scenario, on local processes or Ray, resumable, summarised.

    from fieldlearn.sweep import sweep
    table = sweep("scenarios/grid.yaml", seeds="0-4", grid={"links.radius": [1.5, 2.5]}, out="results/radius")
    table.summary.where(metric="gradient.mean")      # mean and std per variant at the chosen rounds
    table.to_csv("radius.csv")

`fieldlearn.sweep(...)` (the module called as a function) is the same as `fieldlearn.sweep.sweep(...)`.
The command line is `python -m fieldlearn.sweep SCENARIO.yaml --seeds 0-9 --grid key=a,b ...` (see __main__).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .backends import LocalBackend, Outcome, RayBackend, RunSpec, make_backend
from .grid import FORMAT, Plan, SweepError, make_plan, parse_grid_arg, parse_seeds, value_text
from .report import (
    Table,
    comparison_png,
    failures_table,
    metric_columns,
    runs_table,
    summarise,
    summary_text,
    tidy_table,
)
from .store import MARKER, Store, write_atomic

__all__ = ["sweep", "run_plan", "make_plan", "make_backend", "Table", "SweepError", "LocalBackend", "RayBackend",
           "parse_seeds", "parse_grid_arg", "default_out"]

FILES = ("results.csv", "summary.csv", "runs.csv", "comparison.png", "failures.csv")
NO_RUN_FIGURES = ["exports.figures.timeseries=false", "exports.figures.snapshots=[]"]


def parse_rounds(rounds_at: Any, plan: Plan) -> list[float | str]:
    """`"30,60,end"` or a list -> rounds (numbers or 'end'), each within the longest variant's duration."""
    if rounds_at is None:
        return ["end"]
    items: list[Any]
    if isinstance(rounds_at, str):
        items = [p.strip() for p in rounds_at.split(",")]
    elif isinstance(rounds_at, (int, float)) and not isinstance(rounds_at, bool):
        items = [rounds_at]
    else:
        items = list(rounds_at)
    longest = max(plan.rounds.values()) if plan.rounds else 0.0
    out: list[float | str] = []
    for it in items:
        if it == "end":
            val: float | str = "end"
        else:
            try:
                val = float(it) if not isinstance(it, bool) else float("nan")
            except (TypeError, ValueError):
                raise SweepError(f"--rounds-at {rounds_at}: {it!r} is not a round number (e.g. 30,60,end)") from None
            if not (val >= 0) or val == float("inf"):
                raise SweepError(f"--rounds-at {rounds_at}: {it!r} must be a round number >= 0")
            if val > longest + 1e-9:
                raise SweepError(f"--rounds-at {rounds_at}: round {it} is after the end of the runs "
                                 f"({longest:g} rounds); the table records rounds 0 to {longest:g}")
            val = int(val) if float(val).is_integer() else val
        if val not in out:
            out.append(val)
    if not out:
        raise SweepError(f"--rounds-at {rounds_at}: no rounds given")
    return out


def check_metric(metric: str | None, plan: Plan) -> None:
    """Refuse, before running, a metric the scenario cannot produce (exports.values x stats, or exports.metrics)."""
    if metric is None:
        return
    known: list[str] = []
    prefixes: list[str] = []
    for vi, cols in plan.columns.items():
        known += [c for c in cols if c not in known]
        prefixes += plan.metric_prefixes.get(vi, [])
    if metric in known or any(metric.startswith(p + ".") for p in prefixes):
        return
    listed = ", ".join(known) or "none (the scenario exports no values or metrics)"
    raise SweepError(f"--metric {metric}: the runs do not record it; their columns are {listed} "
                     "(exports.values x exports.stats, and exports.metrics)")


def sweep(
    scenario: str | Path | Mapping[str, Any],
    seeds: Any = None,
    grid: Mapping[str, Any] | Sequence[Any] | None = None,
    sets: Mapping[str, Any] | Sequence[str] | None = None,
    workers: int | None = None,
    ray: bool | str | None = None,
    out: str | Path | None = None,
    *,
    rounds_at: Any = None,
    metric: str | None = None,
    timeout: float | None = None,
    device: str = "cpu",
    run_figures: bool = True,
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Table:
    """Run every variant x seed of `scenario` and return the tidy table (one row per run and recorded round).

    scenario: a YAML file (or a raw scenario mapping). seeds: `"0-9"`, `"0,3,5-7"`, an int or a list (default: the
    scenario's seed). grid: `{"key.path": [values...]}` (a non-list is one value), or `["key=a,b"]` strings.
    sets: fixed overrides, `["key=value"]` or `{"key": value}`. workers: parallel runs (default: the cores).
    ray: None/False local processes; True or "local" a local Ray instance; "auto"/"HOST:PORT"/"ray://..." a
    cluster. out: the result folder, resumable (None: a temporary folder, removed afterwards). rounds_at: rounds
    for the summary (default "end"). metric: the figure's metric (default the first one). timeout: seconds per
    run. run_figures=False skips each run's own figures (faster). fresh=True reruns complete runs too.

    The returned Table has `.summary`, `.runs` (one row per run: status and wall seconds), `.failures` (list of {run, params..., seed, error}), `.out` and `.files`.
    Failed runs do not raise: they are listed in `.failures` (and failures.csv); SweepError means bad arguments.
    In a script, call it under `if __name__ == "__main__":` (the worker processes import the main module).
    """
    backend = make_backend(ray, workers, timeout)
    check_device(device)
    plan = make_plan(scenario, seeds, grid, sets, device, [] if run_figures else NO_RUN_FIGURES)
    return run_plan(plan, backend, out, rounds_at=rounds_at, metric=metric, device=device, fresh=fresh,
                    progress=progress, log=log)


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise SweepError(f"--device {device}: expected cpu or cuda")


def default_out(plan: Plan) -> Path:
    """results/NAME-sweep: fixed, so that the same command started again resumes in the same folder."""
    return Path("results") / f"{plan.source.name}-sweep"


def run_plan(plan: Plan, backend: Any, out: str | Path | None, *, rounds_at: Any = None, metric: str | None = None,
             device: str = "cpu", fresh: bool = False, progress: bool = True,
             log: Callable[[str], None] | None = None) -> Table:
    """Run a plan (from `make_plan`) on a backend (from `make_backend`) into `out` (None: a temporary folder)."""
    rounds = parse_rounds(rounds_at, plan)
    check_metric(metric, plan)
    say = log or (lambda s: None)
    if isinstance(backend, LocalBackend):
        backend.figures = plan.figures
    tmp_root = None
    if out is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="fieldlearn-sweep-"))
        root = tmp_root
    else:
        root = Path(out)
    store = Store(root)
    try:
        store.open()
        with store.lock():
            table = _run(plan, backend, store, rounds, metric, device, fresh, progress, say)
    finally:
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)
    if tmp_root is not None:
        table.out, table.files = None, {}
        if table.summary is not None:
            table.summary.out = None
    return table


def _manifest(plan: Plan, backend: Any, device: str, status: Mapping[str, str], errors: Mapping[str, str],
              files: Sequence[str]) -> str:
    runs = []
    for r in plan.runs:
        item: dict[str, Any] = {"run": r.id, "params": r.params, "seed": r.seed, "status": status.get(r.id, "missing")}
        if r.id in errors:
            item["error"] = errors[r.id]
        runs.append(item)
    doc = {
        "format": FORMAT,
        "scenario": plan.source.label,
        "name": plan.source.name,
        "sets": plan.sets,
        "grid": [[k, v] for k, v in plan.grid],
        "seeds": plan.seeds,
        "device": device,
        "backend": backend.describe(),
        "files": list(files),
        "runs": runs,
    }
    return json.dumps(doc, indent=2, default=value_text) + "\n"


def _run(plan: Plan, backend: Any, store: Store, rounds: list[float | str], metric: str | None, device: str,
         fresh: bool, progress: bool, say: Callable[[str], None]) -> Table:
    cleaned = store.clean()
    if cleaned:
        say(f"removed {cleaned} partial result folder{'s' if cleaned != 1 else ''} left by an interrupted sweep")
    status = {r.id: store.status(r.id, plan.hashes[r.id]) for r in plan.runs}
    todo = [r for r in plan.runs if fresh or status[r.id] != "complete"]
    reused = len(plan.runs) - len(todo)
    stale = sum(1 for r in todo if status[r.id] == "stale")
    errors: dict[str, str] = {}
    write_atomic(store.root / MARKER, _manifest(plan, backend, device, status, errors, []))
    parts = [f"{len(plan.runs)} run{'s' if len(plan.runs) != 1 else ''} ({len(plan.variants)} "
             f"variant{'s' if len(plan.variants) != 1 else ''} x "
             f"{len(plan.seeds)} seed{'s' if len(plan.seeds) != 1 else ''})"]
    if reused:
        parts.append(f"{reused} already complete")
    if stale:
        parts.append(f"{stale} with results of another configuration, rerun")
    say(f"{plan.source.name}: " + ", ".join(parts) + (f"; running {len(todo)} on {backend.describe()}" if todo else ""))
    source = plan.source
    if todo and isinstance(backend, LocalBackend):
        backend.start(plan.figures)  # the fork server imports while the parent prepares
    specs = [RunSpec(r.id, source.data, source.base_dir, source.name, source.label, plan.overrides[r.id],
                     plan.hashes[r.id], device) for r in todo]
    started = time.perf_counter()
    warm = _warm_figure_imports() if specs else None
    if specs:
        bar = _bar(len(plan.runs), reused, plan.source.name, progress)
        try:
            for outcome in backend.run(specs, store):
                if outcome.ok:
                    status[outcome.run_id] = "complete"
                else:
                    errors[outcome.run_id] = outcome.error or "failed"
                    status[outcome.run_id] = "failed"
                    store.record_failure(outcome.run_id, _error_text(outcome))
                if bar is not None:
                    bar.clear()
                say(f"  {outcome.run_id}: " + ("complete" if outcome.ok else f"FAILED ({outcome.error})")
                    + f" in {outcome.wall:.1f} s")
                if bar is not None:
                    bar.update(1)
                    if errors:
                        bar.set_postfix_str(f"{len(errors)} failed", refresh=False)
        finally:
            if bar is not None:
                bar.close()
            write_atomic(store.root / MARKER, _manifest(plan, backend, device, status, errors, []))
    wall = time.perf_counter() - started
    results, walls = {}, {}
    for r in plan.runs:
        if store.status(r.id, plan.hashes[r.id]) == "complete":
            results[r.id] = store.load(r.id)
            walls[r.id] = store.wall(r.id)
            status[r.id] = "complete"
    table = tidy_table(plan, results)
    summary = summarise(plan, table, rounds, errors)
    metrics = metric_columns(table, plan.keys)
    if metric is None and metrics:
        metric = metrics[0]
    files: dict[str, Path] = {}
    table.to_csv(store.root / "results.csv")
    files["results.csv"] = store.root / "results.csv"
    summary.to_csv(store.root / "summary.csv")
    files["summary.csv"] = store.root / "summary.csv"
    runs = runs_table(plan, status, walls, errors)
    runs.to_csv(store.root / "runs.csv")
    files["runs.csv"] = store.root / "runs.csv"
    fig = store.root / "comparison.png"
    if warm is not None:
        warm.join()
    if metric is not None and metric in metrics and table.rows:
        write_atomic(fig, comparison_png(plan, table, metric))
        files["comparison.png"] = fig
    else:
        fig.unlink(missing_ok=True)
    fail = store.root / "failures.csv"
    failures = failures_table(plan, errors)
    if errors:
        failures.to_csv(fail)
        files["failures.csv"] = fail
    else:
        fail.unlink(missing_ok=True)
    write_atomic(store.root / MARKER, _manifest(plan, backend, device, status, errors, list(files)))
    table.summary = summary
    table.runs = runs
    table.failures = failures.rows
    table.out = store.root
    table.files = files
    table.wall_seconds = wall
    table.ran = len(specs)
    table.reused = reused
    table.metric = metric
    table.rounds_at = rounds
    table.plan = plan
    if metric is not None and metric not in metrics and table.rows:
        raise SweepError(f"--metric {metric}: no run recorded it; the results have {', '.join(metrics)} "
                         f"(the tables are in {store.root})")
    return table


def _warm_figure_imports() -> Any:
    """Import matplotlib in a background thread while the runs go (about a second, otherwise spent after the last
    run before the comparison figure can be drawn)."""
    import threading

    def imports() -> None:
        try:
            import matplotlib.figure  # noqa: F401
            from matplotlib.backends import backend_agg  # noqa: F401
        except Exception:
            pass

    t = threading.Thread(target=imports, name="sweep-warm-matplotlib", daemon=True)
    t.start()
    return t


def _error_text(o: Outcome) -> str:
    text = o.error or "failed"
    if o.details:
        text = o.details.rstrip() + ("\n" + o.error if o.error and o.error not in o.details else "")
    return text


def _bar(total: int, initial: int, name: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="run", desc=name, file=sys.stderr, dynamic_ncols=True,
                leave=False, mininterval=0.2)


class _CallableModule(types.ModuleType):
    """Lets `fieldlearn.sweep(...)` call `fieldlearn.sweep.sweep(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Table:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
