"""Sweep speed-up: a 20-run sweep on the local backend with 2 workers against the same 20 runs one after another.

The runs: scenarios/mobile.yaml (walkers and wanderers among a grid; every seed moves them differently) for 1000
rounds (about 3 s each), links.radius in {4.0, 4.5} x seeds 0-9, without per-run figures. Each into a fresh folder:
  sequential   one process, the runs one after another (load_scenario + run_scenario with result files): no
               process start-up and the simulator already imported: the strictest baseline
  sweep, 2     fieldlearn.sweep with two workers (a fresh process per run)
  sweep, 1     (--one-worker) the same with one worker
Every wall time counts everything the call does (the sweep's fork server start-up and imports included). The
results of the three are checked to be identical. The target (issue 5): sweep with 2 workers <= 0.6 x sequential.
The machine is shared: check `uptime` first; the load average, and how much faster two CPU-bound processes run
than one (2.00 on two free cores), are printed at the start and the end.

    python benchmarks/sweep.py [--runs 20] [--rounds 1000] [--workers 2] [--repeat 1] [--one-worker] [--run-figures]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "mobile.yaml"
RADII = [4.0, 4.5]
NO_FIGURES = ["exports.figures.timeseries=false", "exports.figures.snapshots=[]"]


def sequential(sets: list[str], seeds: list[int], out: Path) -> tuple[float, dict[tuple[float, int], bytes]]:
    """The same runs in this process, one after another; returns the wall time and each run's metrics.csv."""
    from fieldlearn.sim import load_scenario, run_scenario

    t0 = time.perf_counter()
    got = {}
    for r in RADII:
        for s in seeds:
            sc = load_scenario(SCENARIO, sets + [f"links.radius={r}", f"seed={s}"])
            folder = out / f"r{r}-s{s}"
            run_scenario(sc, folder)
            got[(r, s)] = (folder / "metrics.csv").read_bytes()
    return time.perf_counter() - t0, got


def swept(sets: list[str], seeds: list[int], out: Path, workers: int) -> tuple[float, dict[tuple[float, int], bytes]]:
    from fieldlearn.sweep import sweep

    t0 = time.perf_counter()
    table = sweep(SCENARIO, seeds=seeds, grid={"links.radius": RADII}, sets=sets, workers=workers, out=out,
                  progress=False)
    wall = time.perf_counter() - t0
    assert not table.failures, table.failures
    got = {}
    for run in table.plan.runs:
        got[(run.params["links.radius"], run.seed)] = (out / "runs" / run.id / "metrics.csv").read_bytes()
    return wall, got


SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(6_000_000):\n    x += i\nprint(time.perf_counter() - t)"


def cores_available() -> float:
    """How much parallelism this shared machine gives right now: 2 x (time of one CPU-bound process alone) /
    (time of two at once): 2.0 on two idle cores, about 1 when other work keeps one core busy."""
    import subprocess
    import sys

    def spin(k: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return max(float(p.communicate()[0]) for p in procs)

    one = spin(1)
    two = spin(2)
    return 2 * one / two


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="total runs (two radii x runs/2 seeds; default 20)")
    p.add_argument("--rounds", type=int, default=1000, help="rounds per run (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep (default 2)")
    p.add_argument("--repeat", type=int, default=1, help="trials (sequential, then sweep), to see the noise")
    p.add_argument("--one-worker", action="store_true", help="also time the sweep with one worker")
    p.add_argument("--run-figures", action="store_true", help="keep each run's own figures (slower)")
    args = p.parse_args()
    seeds = list(range(max(1, args.runs // len(RADII))))
    sets = [f"duration.rounds={args.rounds}"] + ([] if args.run_figures else NO_FIGURES)
    n = len(seeds) * len(RADII)

    load0 = os.getloadavg()
    avail0 = cores_available()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"load average at start {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} (1/5/15 min); "
          f"two CPU-bound processes ran {avail0:.2f}x as fast as one (2.00 = two free cores)")
    print(f"{n} runs of {SCENARIO.name}: {args.rounds} rounds, links.radius in {RADII} x seeds 0-{seeds[-1]}"
          f"{'' if args.run_figures else ', no per-run figures'}\n")
    import fieldlearn.sim  # noqa: F401  (the sequential baseline starts with the simulator imported)

    print(f"| trial | {'how':<26} | workers | runs | wall (s) | per run (s) | vs sequential |")
    print(f"|-------|{'-' * 28}|---------|------|----------|-------------|---------------|")
    ratios = []
    for trial in range(1, args.repeat + 1):
        root = Path(tempfile.mkdtemp(prefix="fieldlearn-bench-sweep-"))
        try:
            rows = []
            t_seq, ref = sequential(sets, seeds, root / "seq")
            rows.append(("sequential (one process)", 1, t_seq))
            tk, gotk = swept(sets, seeds, root / f"sweep{args.workers}", args.workers)
            assert gotk == ref, "the parallel sweep's results differ from the sequential runs"
            rows.append(("sweep, local backend", args.workers, tk))
            ratios.append(tk / t_seq)
            if args.one_worker:
                t1, got1 = swept(sets, seeds, root / "sweep1", 1)
                assert got1 == ref, "the 1-worker sweep's results differ from the sequential runs"
                rows.append(("sweep, local backend", 1, t1))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for name, w, t in rows:
            print(f"| {trial:>5} | {name:<26} | {w:>7} | {n:>4} | {t:>8.2f} | {t / n:>11.3f} | {t / t_seq:>13.2f} |",
                  flush=True)
    load1 = os.getloadavg()
    avail1 = cores_available()
    met = sum(1 for r in ratios if r <= 0.6 + 1e-9)
    verdict = f"{met} of {len(ratios)} trials meet" if len(ratios) > 1 else ("meets" if met else "MISSES")
    print(f"\n{args.workers} workers: {', '.join(f'{r:.2f}' for r in ratios)} x the sequential time "
          f"({verdict} the <= 0.6 target); results identical to the sequential runs")
    print(f"load average at end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} (1/5/15 min); two CPU-bound "
          f"processes ran {avail1:.2f}x as fast as one")
    if min(avail0, avail1) < 1.8:
        print("note: other work was using the cores (see above), so the parallel sweep could not get two of them; "
              "run again when `uptime` shows a low load")


if __name__ == "__main__":
    main()
