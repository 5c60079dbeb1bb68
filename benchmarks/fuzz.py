"""Fuzzing the simulator's command line with mutations of every shipped scenario.

    python benchmarks/fuzz.py [--cases 1500] [--seed 0] [--timeout 60] [--figures 0.25] [--show 20]

Each case takes a shipped scenario, shortened (`shorten`: 2 rounds, tiny models and samples for the learning ones),
applies 1-3 random mutations (`Mutator`: a value replaced by an odd one of any type, a number pushed to an edge, a
key removed or added, a list emptied or repeated, a block spliced in from another scenario or from `DONORS`, which
hold every kind the schema has), writes it as YAML and runs `python -m fieldlearn.sim FILE --out DIR --quiet` in
this process (`fieldlearn.sim.__main__.main`), with a timer, from a folder holding a link to this checkout's
`programs/` (so that the programs are this checkout's, not those of another installed copy). Each outcome is one of:

  accepted   exit 0
  rejected   exit 2, one message naming the file and a YAML path, no traceback
  program    exit 1 because the scenario's program failed on the values it was given ("the program failed at time")
  crash      anything else: another exit code, a traceback, an exception out of main, an exit 2 whose message does
             not name the file and a YAML path
  hang       not done within --timeout seconds

and a table of counts is printed (overall and per scenario), then the first --show crashes and hangs with their
mutations. tests/sim/test_fuzz.py runs a few hundred cases of the same generator in the suite.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

#: What a rejection must start with after the file name: a YAML path (`a.b[0].c`), then ": ".
YAML_PATH = re.compile(r"^[^\s.\[\]:][^\s.\[\]:]*(?:\.[^\s.\[\]:]+|\[\d+\])*: ")

TRACE_CSV = "time,device,x,y\n0,0,0.0,0.0\n5,0,3.0,4.0\n0,1,1.0,1.0\n9,1,2.0,0.5\n"

#: Blocks of every kind the schema has, spliced in by the mutator (where a key of the same name is).
DONORS: dict[str, list[Any]] = {
    "deployments": [
        [{"kind": "grid", "rows": 3, "cols": 4, "jitter": 0.2}],
        [{"kind": "random", "count": 12, "box": [0, 0, 5, 5]}],
        [{"kind": "random", "count": 8, "polygon": [[0, 0], [4, 0], [2, 3]]}],
        [{"kind": "points", "points": [[0, 0], [1, 0], [2, 0]]}],
        [{"kind": "graph", "generator": "cycle_graph", "params": {"n": 8}, "layout": "circular"}],
        [{"kind": "graph", "generator": "grid_2d_graph", "params": {"m": 3, "n": 3}}],
        [{"kind": "graph", "generator": "complete_graph", "params": {"n": 60000}}],
        [{"kind": "grid", "rows": 2, "cols": 2, "mobility": {"kind": "trace", "file": "trace.csv"}}],
    ],
    "mobility": [
        {"kind": "static"},
        {"kind": "tour", "stops": [[0, 0], [5, 5]], "dwell": 2, "speed": 1.0},
        {"kind": "tour", "stops": [[0, 0], [1, 1]], "dwell_time": 1.0e-17},
        {"kind": "random_waypoint", "box": [0, 0, 10, 10], "speed": [0.5, 1.5], "pause": 1},
        {"kind": "random_waypoint", "box": [0, 0, 1, 1], "speed": 1.0e12},
        {"kind": "trace", "file": "trace.csv"},
        {"kind": "trace", "file": "missing.csv"},
    ],
    "links": [
        {"rule": "radius", "radius": 1.5, "retention": 2.0, "loss": 0.1},
        {"rule": "knn", "k": 3},
        {"rule": "fixed", "edges": [[0, 1], [1, 2]], "lengths": "unit"},
        {"rule": "radius", "radius": 1e12},
        {"rule": "knn", "k": 2**62},
    ],
    "schedule": [
        {"kind": "sync", "period": 1.0},
        {"kind": "dirac", "period": 1.0, "phases": 3},
        {"kind": "exponential", "rate": 2.0},
    ],
    "faults": [
        [{"at": 0, "kind": "crash", "devices": {"ids": [5]}}],
        [{"at": 1, "kind": "crash", "devices": {"all": True}, "restart": 1}],
        [{"at": 1, "kind": "join", "deployment": {"kind": "grid", "rows": 2, "cols": 2, "origin": [3, 3]}}],
        [{"at": 1, "kind": "move", "devices": {"nearest": [0, 0], "count": 2}, "by": [1, 1]}],
        [{"at": 0.5, "kind": "sensor", "devices": {"box": [0, 0, 2, 2]}, "sensor": "source", "value": True}],
        [{"at": 1, "kind": "cut", "name": "w", "wall": [[0.5, -1], [0.5, 9]]}, {"at": 1.5, "kind": "restore", "name": "w"}],
        [{"at": 1, "kind": "cut", "devices": {"ids": [0]}}],
    ],
    "regions": [
        [{"name": "A", "box": [0, 0, 5, 5]}, {"name": "B", "polygon": [[5, 0], [9, 0], [7, 4]]}],
        [{"name": "s", "polygon": [[0, 0], [10, 10], [10, 10.0000001]]}],
    ],
    "sensors": [
        {"source": {"default": False, "set": [{"devices": {"ids": [0]}, "value": True}]}},
        {"temperature": 20.0, "target": False, "source": False},
        {},
    ],
    "exports": [
        {"values": ["gradient"], "stats": ["mean", "max", "finite"], "metrics": ["devices", "links", "components"],
         "per_device": ["gradient"], "interval": 1.0},
        {"figures": {"timeseries": True, "snapshots": [{"times": [0, "end"], "cmap": "tab10"}]}},
        {"animation": {"every": 1}},
        {"interval": 1e-17, "values": ["gradient"]},
        {"viewer": {"every": 1e-4}},
    ],
    "mobility_step": [1e-17, 0.5, 3],
    "duration": [{"rounds": 2}, {"time": 1.5}, {"rounds": 0}, {"time": -1}],
}

ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 7, 10_000, 2**31, 2**63, -(2**63), 0.5, -0.5, 1e-17, 1e-300, 1e12, 1e13, 1e155,
    1e308, -1e308, math.inf, -math.inf, math.nan, "", "x", "end", "source", "gradient", "A", "area0", "../..",
    "/etc/passwd", "x" * 300, "é漢字", "1e3", "true", "null", [], [0], [0, 0], [1, 2, 3], [[0, 0]], {}, {"kind": "x"},
    {"a": 1}, ["end"],
]


def shipped() -> dict[str, dict[str, Any]]:
    """Every shipped scenario's raw mapping, by name."""
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(SCENARIOS.glob("*.yaml"))}


def shorten(data: dict[str, Any]) -> dict[str, Any]:
    """The scenario run for 2 rounds, its learning (if any) on a tiny model and a few samples."""
    data = copy.deepcopy(data)
    data["duration"] = {"rounds": 2}
    learning = data.get("learning")
    if isinstance(learning, dict):
        learning.update(epochs=1, samples_per_round=8, eval_samples=16, eval_every=1, batch_size=8, downsample=4)
        learning["model"] = {"hidden": [4]}
    return data


def _clamp_run(data: dict[str, Any]) -> None:
    """Keep a mutated scenario's run short, where it stays valid: a long run is not a hang."""
    d = data.get("duration")
    if isinstance(d, dict):
        r, t = d.get("rounds"), d.get("time")
        if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 3:
            d["rounds"] = 3
        if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 3:
            d["time"] = 3.0
    s = data.get("schedule")
    if isinstance(s, dict) and isinstance(d, dict) and d.get("time") is not None:
        for key, scale in (("period", 1.0), ("rate", -1.0)):  # at most ~10 rounds per device
            v = s.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v):
                s[key] = max(v, 0.3) if scale > 0 else min(v, 3.0)
    learning = data.get("learning")
    if isinstance(learning, dict):  # also a block spliced in whole from a full-size scenario
        # batch_size too: training allocates batch_size slots per device however few its samples (2**31: 77 GB,
        # a failure of fieldlearn.learning reported apart, not the simulator's to fix)
        for key, most in (("epochs", 2), ("samples_per_round", 32), ("eval_samples", 32), ("parts_per_region", 8),
                          ("batch_size", 64)):
            v = learning.get(key)
            if v is None or (isinstance(v, int) and not isinstance(v, bool) and v > most):
                learning[key] = min(most, 8) if v is None else most
        learning.setdefault("downsample", 4)
        model = learning.setdefault("model", {"hidden": [4]})
        if isinstance(model, dict) and isinstance(model.get("hidden"), list):
            model["hidden"] = [min(h, 16) if isinstance(h, int) and not isinstance(h, bool) else h for h in model["hidden"]]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a mapping/list tree (the root excluded)."""
    out: list[tuple] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _label(path: tuple) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text


class Mutator:
    """Random mutations of a scenario mapping (seeded), each described in words."""

    def __init__(self, rng: random.Random, pool: dict[str, list[Any]]):
        self.rng = rng
        self.pool = pool  # blocks by key name: DONORS plus the shipped scenarios' own blocks

    def odd(self, old: Any) -> Any:
        rng = self.rng
        if isinstance(old, (int, float)) and not isinstance(old, bool) and rng.random() < 0.5:
            x = float(old)
            return rng.choice([-x, 0, x * 1e6, x / 1e6 if x else 1e-6, x + 1, x - 1, math.nan, math.inf,
                               int(x) if math.isfinite(x) else 0, x * 1e300])
        if isinstance(old, str) and rng.random() < 0.3:
            return rng.choice([old + "x", old[:-1], old.upper(), old * 50, " " + old, old + "/.."])
        return copy.deepcopy(rng.choice(ODD_VALUES))

    def mutate(self, data: dict[str, Any]) -> str:
        rng = self.rng
        paths = _paths(data)
        path = rng.choice(paths) if paths else ()
        parent = _get(data, path[:-1]) if path else data
        key = path[-1] if path else None
        where = _label(path) or "(root)"
        op = rng.random()
        if key is not None and op < 0.45:
            new = self.odd(parent[key])
            parent[key] = new
            return f"{where} = {_short(new)}"
        if key is not None and op < 0.55:
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
            return f"del {where}"
        if op < 0.62:
            target = _get(data, path) if path and isinstance(_get(data, path), dict) else data
            name = rng.choice(["zz", "name", "kind", "sensors", "mobility", "params", "seed", "retention"])
            target[name] = self.odd(None)
            return f"{_label(path) or '(root)'}.{name} = {_short(target[name])}"
        if key is not None and op < 0.72 and isinstance(parent[key], list):
            lst = parent[key]
            if lst and rng.random() < 0.5:
                lst.append(copy.deepcopy(rng.choice(lst)))
                return f"{where} += a copy of an item"
            parent[key] = []
            return f"{where} = []"
        named = [p for p in paths if isinstance(p[-1], str) and p[-1] in self.pool]
        if named:
            p = rng.choice(named)
            block = copy.deepcopy(rng.choice(self.pool[p[-1]]))
            _get(data, p[:-1])[p[-1]] = block
            return f"{_label(p)} = {_short(block)}"
        top = rng.choice(list(self.pool))
        data[top] = copy.deepcopy(rng.choice(self.pool[top]))
        return f"{top} = {_short(data[top])}"


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 70 else text[:67] + "..."


def donor_pool(scenarios: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """DONORS plus every block of the shipped scenarios, by key name."""
    pool = {k: list(v) for k, v in DONORS.items()}
    for data in scenarios.values():
        for path in _paths(data):
            if isinstance(path[-1], str) and path[-1] in ("mobility", "links", "schedule", "faults", "sensors",
                                                          "exports", "program", "learning", "regions", "deployments"):
                pool.setdefault(path[-1], []).append(copy.deepcopy(_get(data, path)))
    return pool


@dataclass
class Case:
    """One fuzz case: which scenario, which mutations, the YAML written."""

    index: int
    scenario: str
    mutations: list[str]
    data: dict[str, Any]


@dataclass
class Outcome:
    case: Case
    kind: str  # accepted, rejected, program, crash, hang
    code: Any
    err: str
    seconds: float


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(o.kind for o in self.outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in ("crash", "hang")]


def cases(n: int, seed: int, figures: float = 0.25) -> list[Case]:
    """`n` mutated scenarios, the same for the same seed: the shipped ones in turn, 1-3 mutations each; a share
    `figures` keeps their figures (drawing is slow), the others draw none."""
    rng = random.Random(seed)
    base = shipped()
    pool = donor_pool(base)
    mutator = Mutator(rng, pool)
    names = sorted(base)
    out = []
    for k in range(n):
        name = names[k % len(names)]
        data = shorten(base[name])
        if rng.random() >= figures:
            data.setdefault("exports", {})
            if isinstance(data["exports"], dict):
                data["exports"]["figures"] = {"timeseries": False, "snapshots": []}
        muts = [mutator.mutate(data) for _ in range(rng.choice([1, 1, 2, 3]))]
        _clamp_run(data)
        out.append(Case(k, name, muts, data))
    return out


class _Hang(BaseException):
    """A case ran past its time (raised by the timer; not an Exception, so nothing inside catches it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang


def classify(file: str, code: Any, err: str) -> str:
    """What an exit code and stderr mean (see the module's docstring)."""
    text = " ".join(err.split())
    if code == 0 and "Traceback" not in err:
        return "accepted"
    if code == 2 and "Traceback" not in err:
        head = f"error: {file}: "
        return "rejected" if text.startswith(head) and YAML_PATH.match(text[len(head):]) else "crash"
    if code == 1 and f"error: {file}: the program failed at time" in text:
        return "program"
    return "crash"


def run_case(case: Case, folder: Path, timeout: float) -> Outcome:
    """Write the case beside a trace file and run the command line on it in this process."""
    from fieldlearn.sim.__main__ import main

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trace.csv").write_text(TRACE_CSV)
    (folder / "programs").symlink_to(REPO / "programs")  # this checkout's programs (found beside the scenario)
    file = folder / f"{case.scenario}.yaml"
    try:
        text = yaml.safe_dump(case.data, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = repr(case.data)
    file.write_text(text, encoding="utf-8")
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("always")
                code: Any = main([str(file), "--out", str(folder / "out"), "--quiet"])
    except _Hang:
        code = "hang"
    except BaseException as exc:  # noqa: BLE001 - anything out of main is a crash
        import traceback

        code = f"raised {type(exc).__name__}"
        err.write("Traceback (out of main):\n" + "".join(traceback.format_exception(exc)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - started
    kind = "hang" if code == "hang" else classify(str(file), code, err.getvalue())
    shutil.rmtree(folder, ignore_errors=True)
    return Outcome(case, kind, code, err.getvalue(), seconds)


def fuzz(n: int, seed: int = 0, timeout: float = 60.0, figures: float = 0.25, root: Path | None = None) -> Report:
    """Run `n` cases; each in its own folder under `root` (a temporary one by default)."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        base = Path(root) if root is not None else Path(tmp)
        for case in cases(n, seed, figures):
            report.outcomes.append(run_case(case, base / f"case{case.index}", timeout))
    return report


KINDS = ("accepted", "rejected", "program", "crash", "hang")


def table(report: Report) -> str:
    rows = [("scenario", "cases", *KINDS, "slowest s")]
    by: dict[str, list[Outcome]] = {}
    for o in report.outcomes:
        by.setdefault(o.case.scenario, []).append(o)
    for name, outs in [*sorted(by.items()), ("all", report.outcomes)]:
        c = Counter(o.kind for o in outs)
        rows.append((name, str(len(outs)), *(str(c[k]) for k in KINDS), f"{max(o.seconds for o in outs):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                     for r in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds after which a case counts as a hang")
    p.add_argument("--figures", type=float, default=0.25, help="share of the cases that draw their figures")
    p.add_argument("--show", type=int, default=20, help="crashes and hangs shown in full")
    args = p.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    report = fuzz(args.cases, args.seed, args.timeout, args.figures)
    wall = time.perf_counter() - started
    print(f"{args.cases} cases (seed {args.seed}, timeout {args.timeout:g} s) in {wall:.0f} s")
    print(table(report))
    for o in report.failures()[: args.show]:
        print(f"\n--- case {o.case.index} ({o.case.scenario}): {o.kind}, exit {o.code}, {o.seconds:.1f} s")
        print("mutations: " + "; ".join(o.case.mutations))
        print("\n".join(o.err.strip().splitlines()[-12:]))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
