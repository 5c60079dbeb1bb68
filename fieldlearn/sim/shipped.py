"""The scenarios shipped with fieldlearn (installed as package data of `fieldlearn.scenarios`): a scenario can be
named instead of given as a path, e.g. `python -m fieldlearn.sim grid`, from any folder."""
from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["scenario_path", "shipped_scenarios", "shipped_folder"]

PACKAGE = "fieldlearn.scenarios"


def shipped_folder() -> Path | None:
    """The folder of the shipped scenarios (None if the package data is missing)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def shipped_scenarios() -> dict[str, Path]:
    """Every shipped scenario by name (its file stem), in name order."""
    folder = shipped_folder()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def scenario_path(name: str) -> Path:
    """`name` as a path when it names a file (or looks like a path); else the shipped scenario of that name."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name or "\\" in name:
        return p
    try:
        if p.exists():
            return p
    except OSError:
        return p
    return shipped_scenarios().get(name, p)


def describe(path: Path) -> str:
    """A scenario file's `description:` (one line), or "" when it has none or cannot be read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description") or "") if isinstance(data, dict) else ""
