"""Running a plan into a result folder: what is already complete there, the runs still to make (on a backend), then
the tables, the figure and the manifest; a sweep of another scenario is refused there unless asked to replace it."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .backends import LocalBackend, Outcome, RunSpec
from .grid import Plan, SweepError
from .manifest import COMPLETE, MARKER, RUNNING, manifest_text, other_scenario, read_manifest
from .report import (
    SweepTable,
    Table,
    comparison_png,
    failures_table,
    metric_columns,
    runs_table,
    summarise,
    tidy_table,
)
from ..sim.files import write_atomic
from .store import Store

Say = Callable[[str], None]


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


def default_out(plan: Plan) -> Path:
    """results/NAME-sweep: fixed, so that the same command started again resumes in the same folder."""
    return Path("results") / f"{plan.source.name}-sweep"


def run_plan(plan: Plan, backend: Any, out: str | Path | None, *, rounds_at: Any = None, metric: str | None = None,
             fresh: bool = False, replace: bool = False, progress: bool = True, log: Say | None = None) -> SweepTable:
    """Run a plan (from `make_plan`) on a backend (from `make_backend`) into `out` (None: a temporary folder).

    `out` holding the sweep of another scenario is refused (SweepError) unless `replace`: then the new sweep is made
    beside it and takes its place only when complete, so that an interruption leaves the old sweep as it was."""
    rounds = parse_rounds(rounds_at, plan)
    check_metric(metric, plan)
    say = log or (lambda s: None)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="fieldlearn-sweep-") as tmp:
            store = Store(tmp)
            store.open()
            with store.lock():
                return _run(plan, backend, store, rounds, metric, fresh, progress, say).moved_to(None)
    store = Store(out)
    if store.recover():
        say(f"{store.root}: finished replacing its sweep (the replacement was complete when it was interrupted)")
    store.open()
    with store.lock():
        other = other_scenario(read_manifest(store.root), plan)
        if other is None:
            return _run(plan, backend, store, rounds, metric, fresh, progress, say)
        if not replace:
            raise SweepError(
                f"--out {store.root}: the folder holds the sweep of another scenario, {other}; this sweep is of "
                f"{plan.source.name} ({plan.source.file or plan.source.label}), and its runs would replace those "
                "results. Pass --replace (replace=True) to replace them (the old sweep stays until the new one is "
                "complete), or choose another --out")
        staging = store.replacement()
        if other_scenario(read_manifest(staging.root), plan) is not None:
            shutil.rmtree(staging.root)  # an unfinished replacement by a third scenario: nothing to reuse
        staging.open()
        with staging.lock():
            say(f"{store.root}: replacing the sweep of {other}; the new runs are made in {staging.root}, which "
                "takes its place when complete")
            table = _run(plan, backend, staging, rounds, metric, fresh, progress, say)
            store.replace_with(staging)
        return table.moved_to(store.root)


def _run(plan: Plan, backend: Any, store: Store, rounds: list[float | str], metric: str | None, fresh: bool,
         progress: bool, say: Say) -> SweepTable:
    """Make the runs without a complete result in `store` (all with `fresh`), then write the tables."""
    status, todo, reused = _survey(plan, backend, store, fresh, say)
    errors: dict[str, str] = {}
    started = time.perf_counter()
    warm = _warm_figure_imports() if todo else None
    _make(plan, backend, store, todo, len(plan.runs) - len(todo), status, errors, progress, say)
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
    runs = runs_table(plan, status, walls, errors)
    failures = failures_table(plan, errors)
    files = _write_tables(store, table, summary, runs, failures)
    if warm is not None:
        warm.join()
    if _write_figure(store, plan, table, metric if metric in metrics else None, say):
        files.insert(3, "comparison.png")
    write_atomic(store.root / MARKER, manifest_text(plan, backend.describe(), status, errors, files, COMPLETE))
    if metric is not None and metric not in metrics and table.rows:
        raise SweepError(f"--metric {metric}: no run recorded it; the results have {', '.join(metrics)} "
                         f"(the tables are in {store.root})")
    return SweepTable(table, summary=summary, runs=runs, failures=failures.rows, out=store.root, file_names=files,
                      metric=metric, rounds_at=rounds, plan=plan, ran=len(todo), reused=reused, wall_seconds=wall)


def _survey(plan: Plan, backend: Any, store: Store, fresh: bool, say: Say) -> tuple[dict[str, str], list[Any], int]:
    """Clean what an interrupted sweep left, find each run's status and the runs to make; say so and record it."""
    cleaned = store.clean()
    if cleaned:
        say(f"removed {cleaned} partial result folder{'s' if cleaned != 1 else ''} left by an interrupted sweep")
    status = {r.id: store.status(r.id, plan.hashes[r.id]) for r in plan.runs}
    todo = [r for r in plan.runs if fresh or status[r.id] != "complete"]
    reused = len(plan.runs) - len(todo)
    stale = sum(1 for r in todo if status[r.id] == "stale")
    write_atomic(store.root / MARKER, manifest_text(plan, backend.describe(), status, {}, [], RUNNING))
    parts = [f"{_count(len(plan.runs), 'run')} ({_count(len(plan.variants), 'variant')} x "
             f"{_count(len(plan.seeds), 'seed')})"]
    if reused:
        parts.append(f"{reused} already complete")
    if stale:
        parts.append(f"{stale} with results of another configuration of this scenario, rerun")
    say(f"{plan.source.name}: " + ", ".join(parts) + (f"; running {len(todo)} on {backend.describe()}" if todo else ""))
    return status, todo, reused


def _make(plan: Plan, backend: Any, store: Store, todo: list[Any], done: int, status: dict[str, str],
          errors: dict[str, str], progress: bool, say: Say) -> None:
    """Make `todo` on the backend, recording each outcome as it comes (and the manifest when they stop)."""
    if not todo:
        return
    if isinstance(backend, LocalBackend):
        backend.start(plan.figures, plan.learning)  # the fork server imports while the parent prepares
    specs = [RunSpec(r.id, plan.scenario(r), plan.hashes[r.id], plan.device) for r in todo]
    bar = _bar(len(plan.runs), done, plan.source.name, progress)
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
        write_atomic(store.root / MARKER, manifest_text(plan, backend.describe(), status, errors, [], RUNNING))


def _write_tables(store: Store, table: Table, summary: Table, runs: Table, failures: Table) -> list[str]:
    """results.csv, summary.csv, runs.csv and failures.csv (only when some run failed: an earlier one is removed);
    returns the names written."""
    root = store.root
    table.to_csv(root / "results.csv")
    summary.to_csv(root / "summary.csv")
    runs.to_csv(root / "runs.csv")
    if not failures.rows:
        (root / "failures.csv").unlink(missing_ok=True)
        return ["results.csv", "summary.csv", "runs.csv"]
    failures.to_csv(root / "failures.csv")
    return ["results.csv", "summary.csv", "runs.csv", "failures.csv"]


def _write_figure(store: Store, plan: Plan, table: Table, metric: str | None, say: Say) -> bool:
    """comparison.png of `metric` (none without a metric or rows: an earlier one is removed), after the tables: a
    figure that cannot be drawn is a warning, never a lost sweep. Returns whether it was written."""
    path = store.root / "comparison.png"
    if metric is not None and table.rows:
        try:
            write_atomic(path, comparison_png(plan, table, metric))
            return True
        except Exception as exc:  # matplotlib refusing the data (e.g. values near the float limits)
            say(f"warning: comparison.png of {metric} could not be drawn ({type(exc).__name__}: {exc}); "
                "the tables are complete")
    path.unlink(missing_ok=True)
    return False


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


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
