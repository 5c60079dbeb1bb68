"""A tiny scenario and a test program that can fail, sleep or kill its own process, and logs each run it starts."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GRID = REPO / "scenarios" / "grid.yaml"

PROGRAM = '''
"""Gradient, plus ways to misbehave chosen by params (for the sweep tests): in a run's first round it logs
`TAG SEED` (and its thread environment), sleeps, or kills its own process."""
import os
import signal
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from fieldlearn import sense
from fieldlearn.lib import distance_to

_runs = weakref.WeakSet()  # the engines already seen (a Ray worker process makes several runs)


def _engine():
    """The engine running this round, found among the callers (a test's trick: programs do not see the seed)."""
    frame = sys._getframe(1)
    while frame is not None:
        found = frame.f_locals.get("self")
        if type(found).__name__ == "Engine":
            return found
        frame = frame.f_back
    raise RuntimeError("no engine among the callers")


def program(tag: Any = "a", mode="ok", log=None, sleep=0.0, kill_tag=None, kill_seed=None, marker=None,
            environ=None):
    if mode == "fail":
        raise ValueError("this variant fails on purpose")
    engine = _engine()
    if engine not in _runs:
        _runs.add(engine)
        if log:
            with open(log, "a") as fh:
                fh.write(f"{tag} {engine.seed}\\n")
        if environ:  # as the process started (what a library reads when it loads), not as set since
            start = dict(v.split("=", 1) for v in Path("/proc/self/environ").read_text().split("\\0") if "=" in v)
            with open(environ, "a") as fh:
                fh.write(f"{start.get('OMP_WAIT_POLICY')} {start.get('OMP_NUM_THREADS')}\\n")
        if sleep:
            time.sleep(sleep)
        if kill_tag == tag and kill_seed == engine.seed and Path(marker).exists():
            os.kill(os.getpid(), signal.SIGKILL)
    return {"gradient": distance_to(sense("source"))}
'''

TINY = {
    "name": "tiny",
    "seed": 1,
    "duration": {"rounds": 4},
    "sensors": {"source": {"default": False, "set": [{"devices": {"ids": [0]}, "value": True}]}},
    "deployments": [{"kind": "grid", "rows": 3, "cols": 3, "spacing": 1.0}],
    "links": {"rule": "radius", "radius": 1.1},
    "program": {"name": "misbehave", "params": {}},
    "exports": {"values": ["gradient"], "stats": ["mean", "max"], "metrics": ["devices"],
                "figures": {"timeseries": False}},
}


def write_tiny(folder: Path, **params) -> Path:
    """tiny.yaml and programs/misbehave.py in `folder`; `params` become the program's fixed params."""
    (folder / "programs").mkdir(parents=True, exist_ok=True)
    (folder / "programs" / "misbehave.py").write_text(PROGRAM)
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["program"]["params"] = {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def log_lines(path: Path) -> list[str]:
    return sorted(path.read_text().split("\n")[:-1]) if path.exists() else []
