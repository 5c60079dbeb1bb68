"""The sweep's description of its folder, `sweep.json`: which scenario, sets, grid, seeds, device and backend, each
run's status and the `--set` overrides that remake it alone with `python -m fieldlearn.sim`, the files written, and
whether the sweep finished (`state`). A sweep reads it back to refuse, unless asked to replace them, the results of
another scenario."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .grid import FORMAT, Plan, value_text

MARKER = "sweep.json"
RUNNING, COMPLETE = "running", "complete"


def manifest_text(plan: Plan, backend: str, status: Mapping[str, str], errors: Mapping[str, str],
                  files: Sequence[str], state: str) -> str:
    """The JSON document (`backend`: how the runs were made; `state`: running, or complete once the tables are)."""
    runs = []
    for r in plan.runs:
        item: dict[str, Any] = {"run": r.id, "params": r.params, "seed": r.seed, "set": plan.overrides[r.id],
                                "status": status.get(r.id, "missing")}
        if r.id in errors:
            item["error"] = errors[r.id]
        runs.append(item)
    source = plan.source
    doc = {
        "format": FORMAT,
        "state": state,
        "scenario": source.label,
        "scenario_file": str(source.file) if source.file is not None else None,
        "name": source.name,
        "sets": plan.sets,
        "grid": [[k, v] for k, v in plan.grid],
        "seeds": plan.seeds,
        "device": plan.device,
        "backend": backend,
        "files": list(files),
        "runs": runs,
    }
    return json.dumps(doc, indent=2, default=value_text) + "\n"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in `folder` (None when there is none, or it cannot be read)."""
    try:
        doc = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_complete(doc: Mapping[str, Any] | None) -> bool:
    """Whether a manifest says its sweep wrote all its tables."""
    return doc is not None and doc.get("state") == COMPLETE


def other_scenario(doc: Mapping[str, Any] | None, plan: Plan) -> str | None:
    """How to name the scenario whose sweep `doc` describes when it is not `plan`'s (None when it is the same, or
    there is no manifest): scenarios are the same file, or, where one was a mapping, have the same name."""
    if doc is None:
        return None
    theirs, mine = doc.get("scenario_file"), plan.source.file
    if theirs is not None and mine is not None:
        same = Path(str(theirs)) == mine
    else:
        same = doc.get("name") == plan.source.name
    if same:
        return None
    label = str(doc.get("scenario_file") or doc.get("scenario") or "?")
    return f"{doc.get('name', '?')} ({label})"
