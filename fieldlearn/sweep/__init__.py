"""Sweeps: many seeds and variants of one scenario, on local processes or Ray, resumable, summarised.

    from fieldlearn.sweep import sweep
    table = sweep("scenarios/grid.yaml", seeds="0-4", grid={"links.radius": [1.5, 2.5]}, out="results/radius")
    table.summary.where(metric="gradient.mean")      # mean and std per variant at the chosen rounds
    table.to_csv("radius.csv")

`fieldlearn.sweep(...)` (the module called as a function) is the same as `fieldlearn.sweep.sweep(...)`.
The command line is `python -m fieldlearn.sweep SCENARIO.yaml --seeds 0-9 --grid key=a,b ...` (see __main__).
The parts: `grid` (arguments -> a Plan, each variant's scenario resolved once), `backends` (where runs execute),
`store` (the resumable result folder), `driver` (a plan run into a folder), `report` (the tables and the figure),
`manifest` (sweep.json).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .backends import LocalBackend, RayBackend, make_backend
from .driver import default_out, run_plan
from .grid import Plan, SweepError, make_plan, parse_grid_arg, parse_seeds
from .report import SweepTable, Table

__all__ = ["sweep", "run_plan", "make_plan", "make_backend", "Plan", "Table", "SweepTable", "SweepError",
           "LocalBackend", "RayBackend", "parse_seeds", "parse_grid_arg", "default_out"]


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
    replace: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SweepTable:
    """Run every variant x seed of `scenario` and return the tidy table (one row per run and recorded round).

    scenario: a YAML file, a shipped scenario's name, or a raw scenario mapping. seeds: `"0-9"`, `"0,3,5-7"`, an
    int or a list (default: the scenario's seed). grid: `{"key.path": [values...]}` (a non-list is one value), or
    `["key=a,b"]` strings. sets: fixed overrides, `["key=value"]` or `{"key": value}`. workers: parallel runs
    (default: the cores). ray: None/False local processes; True or "local" a local Ray instance;
    "auto"/"HOST:PORT"/"ray://..." a cluster. out: the result folder, resumable (None: a temporary folder, removed
    afterwards). rounds_at: rounds for the summary (default "end"). metric: the figure's metric (default the first
    one). timeout: seconds per run. run_figures=False skips each run's own figures (faster). fresh=True reruns
    complete runs too. replace=True replaces the sweep of another scenario found in `out` (refused otherwise).

    The returned SweepTable has `.summary`, `.runs` (one row per run: status and wall seconds), `.failures` (list
    of {run, params..., seed, error}), `.out` and `.files`. Failed runs do not raise: they are listed in
    `.failures` (and failures.csv); SweepError means bad arguments. In a script, call it under
    `if __name__ == "__main__":` (the worker processes import the main module).
    """
    backend = make_backend(ray, workers, timeout)
    plan = make_plan(scenario, seeds, grid, sets, device, run_figures)
    return run_plan(plan, backend, out, rounds_at=rounds_at, metric=metric, fresh=fresh, replace=replace,
                    progress=progress, log=log)


class _CallableModule(types.ModuleType):
    """Lets `fieldlearn.sweep(...)` call `fieldlearn.sweep.sweep(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepTable:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
