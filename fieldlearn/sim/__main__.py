"""`python -m fieldlearn.sim SCENARIO.yaml [--seed N] [--set key.path=value ...] [--out DIR] [--device cpu|cuda]
[--quiet] [--force]`: run a scenario, write its results, print a short summary.

Exit codes: 0 done; 2 bad input (scenario file, YAML, schema, override, program not found, occupied --out, another
run writing into --out), printed as one paragraph naming the scenario file, without a traceback; 1 the simulation
failed while running (the program raised or exited) or was interrupted. The results take the place of --out only
once complete: a failed, interrupted or killed run leaves what --out held before.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import textwrap
import time
import traceback
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fieldlearn.sim",
        description="Run a fieldlearn scenario (YAML) with the discrete-event simulator and write CSV, JSON and "
        "PNG results. Only the program the scenario names is run as code; the YAML is read with a safe loader.",
    )
    p.add_argument("scenario", nargs="?", help="the scenario file (e.g. scenarios/grid.yaml) or the name of a shipped "
                                               "scenario (e.g. grid; see --list)")
    p.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a scenario value, e.g. --set duration.rounds=10 --set links.radius=2 (repeatable)")
    p.add_argument("--out", help="result folder (default: results/NAME, or a fresh results/NAME-TIMESTAMP if that "
                                 "one holds results already)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where rounds run (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--lean-memory", action="store_true",
                   help="give freed memory back to the system instead of keeping it for reuse: under glibc's "
                        "malloc a lower peak RSS (1,024 C2FL models: 3.5 GB instead of 3.6-6.6) for slower rounds "
                        "(about 1.35x there), as every new model-sized array is zeroed again by the kernel; "
                        "preloading jemalloc (LD_PRELOAD=libjemalloc.so.2) keeps freed memory without the spread")
    p.add_argument("--force", action="store_true", help="replace the previous results in a non-empty --out folder (a folder of results only: the new ones take its place once complete)")
    p.add_argument("--animate", nargs="?", const="gif", choices=["gif", "mp4"],
                   help="also write run.gif (or run.mp4, which needs ffmpeg): sets exports.animation.format")
    p.add_argument("--viewer", action="store_true", help="also write viewer.html, an interactive page of the run "
                                                         "that opens offline in a browser: sets exports.viewer")
    return p


def _asks_viewer(overrides: list[str]) -> bool:
    """Whether a --set already configures exports.viewer (then --viewer must not replace it with `true`)."""
    return any(o.split("=", 1)[0].strip().startswith("exports.viewer") for o in overrides)


MAX_MESSAGE = 1200  # characters of an error message shown (a 100k-character value is cut in the middle)


def _fail(code: int, message: str) -> int:
    if len(message) > MAX_MESSAGE:
        head, tail = MAX_MESSAGE - 300, 200
        message = f"{message[:head]} [... {len(message) - head - tail:,} characters ...] {message[-tail:]}"
    print(textwrap.fill(f"error: {message}", width=100, break_long_words=False, break_on_hyphens=False), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    # OpenMP threads that sleep while they wait instead of spinning: with torch's two threads on a busy machine a
    # spinning thread made one Adam step take 4-78 ms instead of 1 (benchmarks/learning.py --thread-policy); it must
    # be set before torch starts its thread pool, i.e. before the first learning scenario imports torch
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.lean_memory:
        from fieldlearn.calculus import keep_freed_memory

        keep_freed_memory()  # freed round-sized arrays are reused, not re-mapped and zeroed by the kernel every round
    if args.list:
        return _list()
    if args.scenario is None:
        parser.error("the scenario is required (a file, or a shipped scenario's name: see --list)")
    from .engine import SimulationError
    from .errors import ScenarioError
    from .loader import load_scenario
    from .result_folder import RunInterrupted
    from .simulate import default_out_dir, run_scenario

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    overrides += ([f"exports.animation.format={args.animate}"] if args.animate else []) + (
        ["exports.viewer=true"] if args.viewer and not _asks_viewer(args.overrides) else [])
    try:
        scenario = load_scenario(args.scenario, overrides)
        out = Path(args.out) if args.out else default_out_dir(scenario)
        bar = _progress(scenario, args.quiet)
        try:
            result = run_scenario(scenario, out, force=args.force, device=args.device, progress=bar.update if bar else None)
        finally:
            if bar:
                bar.close()
    except ScenarioError as exc:
        return _fail(2, str(exc))
    except SimulationError as exc:
        traceback.print_exception(exc.error, file=sys.stderr)
        return _fail(1, f"{args.scenario}: {exc}")
    except RunInterrupted as exc:
        return _fail(1, str(exc))
    except KeyboardInterrupt:
        return _fail(1, "interrupted; no results were written")
    except SystemExit as exc:  # only the program's own code can exit here (the arguments were parsed above)
        return _fail(1, f"{args.scenario}: the program exited (SystemExit: {exc.code!r}) before the run was done; no "
                        "results were written")
    except Exception as exc:  # a bug or an environment failure: show everything
        traceback.print_exc(file=sys.stderr)
        return _fail(1, f"{args.scenario}: the run failed: {type(exc).__name__}: {exc}")
    if not args.quiet:
        _print_summary(result)
    return 0


class _Bar:
    """A tqdm bar in rounds (time / period), refreshed at most every 0.2 s, shown only on runs longer than 1 s."""

    def __init__(self, total: float, period: float):
        from tqdm import tqdm

        self.period = period
        self.bar = tqdm(total=int(math.ceil(total)), unit="round", delay=1.0, mininterval=0.2, dynamic_ncols=True,
                        file=sys.stderr, leave=False)
        self.done = 0
        self.last = 0.0

    def update(self, t: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        n = int(t / self.period) + 1
        if n > self.done:
            self.bar.update(n - self.done)
            self.done = n

    def close(self) -> None:
        self.bar.close()


def _progress(loaded: Any, quiet: bool) -> _Bar | None:
    if quiet:
        return None
    s = loaded.scenario
    return _Bar(s.end_time / s.period, s.period)


def _list() -> int:
    from .shipped import describe, shipped_scenarios

    found = shipped_scenarios()
    if not found:
        print("no shipped scenarios found (is fieldlearn installed with its package data?)")
        return 1
    width = max(len(n) for n in found)
    print("shipped scenarios (run one with: python -m fieldlearn.sim NAME):")
    for name, path in found.items():
        print(f"  {name:<{width}}  {describe(path)}")
    return 0


def _print_summary(result: Any) -> None:
    s = result.scenario.scenario
    e = result.engine
    rounds = s.end_time / s.period
    rate = rounds / result.wall_seconds if result.wall_seconds > 0 else float("inf")
    print(f"{s.name}: {e.capacity} devices, {rounds:g} rounds (t = {s.end_time:g}) in {result.wall_seconds:.2f} s "
          f"({_rate(rate)} rounds/s, {_rate(e.device_rounds / max(result.wall_seconds, 1e-9))} device-rounds/s)")
    if e.faults_log:
        print("faults: " + ", ".join(f"{f.kind}@{f.time:g}({f.count})" for f in e.faults_log))
    final = {k: v for k, v in result.final.items() if k != "time"}
    if final:
        print(f"final (t = {s.end_time:g}):")
        for line in summary_lines(final):
            print("  " + line)
    if result.out is not None:
        print(f"results in {result.out}/: " + ", ".join(result.files))


PER_DEVICE = re.compile(r"(^|\.)d\d+(\.|$)")
ITEMS_PER_LINE = 6


def summary_lines(final: dict[str, Any]) -> list[str]:
    """The final values as a short table: one line per value or per group of `name.key` columns (at most a few
    keys each), per-device columns (`name.d<id>...`) counted, not shown (they are in the CSV)."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    per_device: dict[str, int] = {}
    for key, value in final.items():
        head, _, rest = key.partition(".")
        if PER_DEVICE.search(rest):
            per_device[head] = per_device.get(head, 0) + 1
            continue
        groups.setdefault(head, []).append((rest, value))
    width = max((len(k) for k in groups), default=0)
    lines = []
    for head, items in groups.items():
        if len(items) == 1 and items[0][0] == "":
            text = _short(items[0][1])
        else:
            shown = [f"{k} {_short(v)}" for k, v in items[:ITEMS_PER_LINE]]
            more = len(items) - ITEMS_PER_LINE
            text = "  ".join(shown) + (f"  (+{more} more in the CSV)" if more > 0 else "")
        lines.append(f"{head:<{width}}  {text}")
    lines += [f"({name}: {count} per-device columns in the CSV)" for name, count in per_device.items()]
    return lines


def _rate(x: float) -> str:
    """A rate with three significant digits below 100 (a Fashion run does 0.4 rounds/s, not 0)."""
    return f"{x:,.0f}" if x >= 100 or not math.isfinite(x) else f"{x:.3g}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
