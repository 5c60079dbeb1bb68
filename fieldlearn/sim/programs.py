"""Finding and importing the program a scenario names: `programs/NAME.py`, a .py file, or `module:function`."""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from .errors import ScenarioError

_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ProgramLocation:
    """Where a program lives: a file path or an importable module, and the function to call."""

    file: Path | None
    module: str | None
    function: str


def search_dirs(base_dir: Path) -> list[Path]:
    """Folders searched for `programs/NAME.py`: beside the scenario, its parent, the working folder, the repository."""
    out: list[Path] = []
    for d in (base_dir / "programs", base_dir.parent / "programs", Path.cwd() / "programs", _REPO_ROOT / "programs"):
        d = d.resolve()
        if d not in out:
            out.append(d)
    return out


def locate_program(name: str, function: str | None, base_dir: Path) -> ProgramLocation:
    """Resolve a program name without running it; ScenarioError (path `program.name`) when it cannot be found."""
    if ":" in name and not name.endswith(".py") and not re.match(r"^[A-Za-z]:[\\/]", name):
        module, _, fn = name.partition(":")
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module) or not re.fullmatch(r"[A-Za-z_]\w*", fn):
            raise ScenarioError(f"expected module:function, got {name!r}", "program.name")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise ScenarioError(f"module {module!r} not found ({exc})", "program.name") from None
        if spec is None:
            raise ScenarioError(f"module {module!r} not found", "program.name")
        return ProgramLocation(None, module, function or fn)
    if name.endswith(".py") or "/" in name or "\\" in name:
        p = Path(name)
        candidates = [p] if p.is_absolute() else [base_dir / p, Path.cwd() / p]
        for c in candidates:
            if c.is_file():
                return ProgramLocation(c.resolve(), None, function or "program")
        raise ScenarioError(f"program file {name!r} not found (looked in {', '.join(str(c.parent) for c in candidates)})", "program.name")
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ScenarioError(f"{name!r} is not a program name (use NAME, a .py path or module:function)", "program.name")
    dirs = search_dirs(base_dir)
    for d in dirs:
        f = d / f"{name}.py"
        if f.is_file():
            return ProgramLocation(f, None, function or "program")
    raise ScenarioError(
        f"program {name!r} not found: no {name}.py in {', '.join(str(d) for d in dirs)}", "program.name"
    )


def import_program(loc: ProgramLocation) -> tuple[Callable[..., Any], ModuleType]:
    """Import the program's module (this is the only user code a scenario runs) and return (function, module)."""
    try:
        if loc.module is not None:
            module = importlib.import_module(loc.module)
        else:
            assert loc.file is not None
            mod_name = "fieldlearn_program_" + re.sub(r"\W", "_", loc.file.stem) + f"_{zlib.crc32(str(loc.file).encode()):08x}"
            if mod_name in sys.modules:
                module = sys.modules[mod_name]
            else:
                spec = importlib.util.spec_from_file_location(mod_name, loc.file)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {loc.file}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[mod_name]
                    raise
    except SyntaxError as exc:
        raise ScenarioError(f"the program has a syntax error: {exc}", "program.name") from None
    except ImportError as exc:
        raise ScenarioError(f"cannot import the program: {exc}", "program.name") from None
    fn = getattr(module, loc.function, None)
    if not callable(fn):
        where = loc.file or loc.module
        raise ScenarioError(f"{where} defines no function {loc.function!r}", "program.function" if loc.function != "program" else "program.name")
    return fn, module
