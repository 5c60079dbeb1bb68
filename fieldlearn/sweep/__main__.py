"""`python -m fieldlearn.sweep SCENARIO.yaml --seeds 0-9 --grid program.params.method=c2fl,cl,fl,local
[--grid other.key=a,b] [--set key=value ...] [--workers K] [--ray [ADDRESS]] [--out DIR] [--rounds-at 30,60,end]
[--metric NAME] [--replace]`: run every variant x seed of a scenario, write results.csv (tidy: one row per run
and round), summary.csv (mean and std per variant at the chosen rounds), runs.csv (each run: status, wall seconds,
error) and comparison.png.

Exit codes: 0 every run complete; 1 some run failed (listed in failures.csv, the others complete); 2 bad input
(one paragraph naming the argument, no traceback; also --out holding the sweep of another scenario, without
--replace); 130 interrupted (start the same command again to resume).
"""
from __future__ import annotations

import argparse
import sys

from ..sim.__main__ import _fail


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fieldlearn.sweep",
        description="Run many seeds and variants of a fieldlearn scenario on local processes or Ray, resumably, and "
        "write a tidy results table, a summary per variant and a comparison figure.",
        epilog="Started again with the same arguments (and --out), a sweep runs only the runs without a complete "
        "result. Example: python -m fieldlearn.sweep scenarios/grid.yaml --seeds 0-4 --grid links.radius=1.5,2.5 "
        "--set duration.rounds=30 --rounds-at 10,end",
    )
    p.add_argument("scenario", help="the scenario file, e.g. scenarios/grid.yaml")
    p.add_argument("--seeds", help="seeds: a range and/or list, e.g. 0-9 or 0,3,5-7 (default: the scenario's seed)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                   help="a swept scenario value; its values are YAML like --set values; several --grid options "
                        "make a cartesian product (repeatable)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="a fixed override for every run, e.g. --set duration.rounds=30 (repeatable)")
    p.add_argument("--workers", type=int, metavar="K", help="runs at a time (default: the number of cores)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray: a local instance (no address) or a cluster (auto, HOST:PORT, ray://HOST:PORT); "
                        "needs pip install 'fieldlearn[ray]'")
    p.add_argument("--out", help="result folder (default: results/NAME-sweep); a sweep resumes in it")
    p.add_argument("--rounds-at", metavar="R1,R2,...", help="rounds for the summary, numbers or end (default: end)")
    p.add_argument("--metric", help="the metric of the figure and the printed summary (default: the first column)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="kill a run after this long (it counts as failed)")
    p.add_argument("--device", default="cpu", help="where rounds run: cpu or cuda (default cpu)")
    p.add_argument("--no-run-figures", action="store_true",
                   help="skip each run's own figures (timeseries, snapshots): faster for many short runs")
    p.add_argument("--fresh", action="store_true", help="rerun runs that are already complete in --out")
    p.add_argument("--replace", action="store_true",
                   help="replace the sweep of another scenario in --out (refused without it); the old results stay "
                        "until the new sweep is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    from ..sim.errors import ScenarioError
    from .backends import make_backend
    from .driver import default_out, run_plan
    from .grid import SweepError, make_plan
    from .report import summary_text

    out = args.out
    quiet = args.quiet
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr))
    try:
        backend = make_backend(args.ray, args.workers, args.timeout)
        plan = make_plan(args.scenario, args.seeds, args.grid, args.sets, args.device, not args.no_run_figures)
        out = str(out or default_out(plan))
        table = run_plan(plan, backend, out, rounds_at=args.rounds_at, metric=args.metric, fresh=args.fresh,
                         replace=args.replace, progress=not quiet, log=log)
    except (SweepError, ScenarioError) as exc:
        return _fail(2, str(exc))
    except KeyboardInterrupt:
        if out is None:
            return _fail(130, "interrupted")
        return _fail(130, f"interrupted; the complete runs are kept in {out}/runs: start the same command again "
                          "to run only the others")
    failures = table.failures
    if not quiet:
        plan = table.plan
        print(f"{plan.source.name}: {len(plan.runs)} runs: {table.ran} made in {table.wall_seconds:.1f} s"
              + (f", {table.reused} already complete" if table.reused else "")
              + (f", {len(failures)} failed" if failures else ""))
        if table.metric is not None:
            print(f"{table.metric} (mean ± std over seeds):")
            print(summary_text(plan, table.summary, table.metric, table.rounds_at))
        if failures:
            print(f"failed runs ({len(failures)}):")
            for f in failures[:20]:
                print(f"  {f['run']}: {f['error']}")
            if len(failures) > 20:
                print(f"  ... and {len(failures) - 20} more")
            print(f"  (tracebacks in {table.out}/errors/; start the same command again to rerun only these)")
        print(f"results in {table.out}/: " + ", ".join(table.files))
    elif failures:
        for f in failures:
            print(f"failed: {f['run']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
