"""Finding the program a scenario names, and importing it. The trust model: a scenario runs only declared aggregate
programs, i.e. a program shipped with fieldlearn (`program: c2fl`), a `programs/NAME.py` or `.py` file beside the
scenario (as trusted as the scenario itself), or `module:function` where the function is marked `@program`."""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fieldlearn.calculus import Program
from fieldlearn.calculus import program as program_decorator

from .errors import ScenarioError

__all__ = ["ProgramRef", "locate_program", "SHIPPED"]

SHIPPED = "fieldlearn.programs"
_NAME = re.compile(r"[A-Za-z_]\w*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class ProgramRef:
    """Where a program lives (a file, or an importable module) and which function of it (None: the module's
    declared program); `load()` imports it. Small and picklable, so a sweep's workers import it themselves."""

    file: Path | None
    module: str | None
    function: str | None

    def label(self) -> str:
        """The program as a person would name it (`c2fl`, `path/to/prog.py`, `pkg.mod:fn`)."""
        where = str(self.file) if self.file is not None else str(self.module)
        if self.module is not None and self.module.startswith(SHIPPED + "."):
            where = self.module[len(SHIPPED) + 1:]
        return where if self.function is None else f"{where}:{self.function}"

    def source_file(self) -> Path | None:
        """The program's source file (its contents decide whether stored sweep results are still valid)."""
        if self.file is not None:
            return self.file
        try:
            spec = importlib.util.find_spec(str(self.module))
        except (ImportError, ValueError):
            return None
        return Path(spec.origin) if spec is not None and spec.origin and Path(spec.origin).is_file() else None

    def load(self) -> Program:
        """Import the program's module (the only user code a scenario runs) and return the declared program."""
        module = _import(self)
        declared = self.module is None or self.module.startswith(SHIPPED + ".")
        if self.function is not None:
            fn = getattr(module, self.function, None)
            if fn is None:
                raise ScenarioError(f"{self.label()}: the module defines no {self.function!r}",
                                    "program.function" if self.module is None else "program.name")
        else:
            fn = _declared_in(module, self)
        if isinstance(fn, Program):
            return fn
        if declared and callable(fn):
            return Program(fn)  # a plain function in a file beside the scenario: declared by its place
        raise ScenarioError(f"{self.label()} is not a declared aggregate program: only functions marked "
                            "@fieldlearn.program can be named as module:function (see the README's trust model)",
                            "program.name")


def _declared_in(module: ModuleType, ref: ProgramRef) -> Any:
    """The module's program: its `program` attribute if declared, else the one Program it defines, else (files
    only) a plain function called `program`."""
    found = getattr(module, "program", None)
    if isinstance(found, Program):
        return found
    programs = [v for v in vars(module).values() if isinstance(v, Program) and v.fn.__module__ == module.__name__]
    if len(programs) == 1:
        return programs[0]
    if len(programs) > 1:
        names = ", ".join(p.name for p in programs)
        raise ScenarioError(f"{ref.label()} declares several programs ({names}): choose one with program.function",
                            "program.function")
    if ref.file is not None and callable(found) and found is not program_decorator:
        return found
    raise ScenarioError(f"{ref.label()} declares no program (mark one function with @fieldlearn.program, or name "
                        "it with program.function)", "program.name")


def _import(ref: ProgramRef) -> ModuleType:
    try:
        if ref.module is not None:
            return importlib.import_module(ref.module)
        assert ref.file is not None
        name = "fieldlearn_program_" + re.sub(r"\W", "_", ref.file.stem) + f"_{zlib.crc32(str(ref.file).encode()):08x}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, ref.file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {ref.file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except SyntaxError as exc:
        raise ScenarioError(f"the program {ref.label()} has a syntax error: {exc}", "program.name") from None
    except ImportError as exc:
        raise ScenarioError(f"cannot import the program {ref.label()}: {exc}", "program.name") from None


def _shipped_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(f"{SHIPPED}.{name}")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec is not None and spec.origin else None


def shipped_programs() -> list[str]:
    """The names of the programs shipped with fieldlearn."""
    spec = importlib.util.find_spec(SHIPPED)
    if spec is None or not spec.submodule_search_locations:
        return []
    names = set()
    for folder in spec.submodule_search_locations:
        names |= {p.stem for p in Path(folder).glob("*.py") if _NAME.fullmatch(p.stem) and p.stem != "__init__"}
    return sorted(names)


def locate_program(name: str, function: str | None, base_dir: Path) -> ProgramRef:
    """Resolve a program name without running it; ScenarioError (path `program.name`) when it cannot be found.

    `NAME`: `programs/NAME.py` beside the scenario (or in its parent folder), else the shipped program NAME;
    `PATH.py`: that file, relative to the scenario's folder; `module:function`: a declared program of a module.
    """
    if len(name) > 1000:
        raise ScenarioError("the program name is longer than 1000 characters", "program.name")
    if ":" in name and not name.endswith(".py") and not re.match(r"^[A-Za-z]:[\\/]", name):
        module, _, fn = name.partition(":")
        if not _DOTTED.fullmatch(module) or not _NAME.fullmatch(fn):
            raise ScenarioError(f"expected module:function, got {name!r}", "program.name")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise ScenarioError(f"module {module!r} not found ({exc})", "program.name") from None
        if spec is None:
            raise ScenarioError(f"module {module!r} not found", "program.name")
        return ProgramRef(None, module, function or fn)
    if name.endswith(".py") or "/" in name or "\\" in name:
        p = Path(name)
        candidate = p if p.is_absolute() else base_dir / p
        try:
            found = candidate.is_file()
        except OSError as exc:
            raise ScenarioError(f"program file {name[:80]!r}: not a usable path ({exc.strerror or exc})",
                                "program.name") from None
        if not found:
            raise ScenarioError(f"program file {name!r} not found (relative paths start at {base_dir})",
                                "program.name")
        return ProgramRef(candidate.resolve(), None, function)
    if not _NAME.fullmatch(name):
        raise ScenarioError(f"{name!r} is not a program name (use NAME, a .py path or module:function)", "program.name")
    shipped = _shipped_file(name)
    for folder in (base_dir / "programs", base_dir.parent / "programs"):
        f = folder / f"{name}.py"
        try:
            beside = f.is_file()
        except OSError:  # e.g. a name longer than a file name may be: no such file
            beside = False
        if beside:
            if shipped is not None and f.resolve() == shipped:
                break  # the shipped program itself (a checkout's programs/ folder)
            return ProgramRef(f.resolve(), None, function)
    if shipped is not None:
        return ProgramRef(None, f"{SHIPPED}.{name}", function)
    known = ", ".join(shipped_programs()) or "none"
    raise ScenarioError(f"program {name!r} not found: no programs/{name}.py beside the scenario ({base_dir}) and no "
                        f"shipped program of that name (shipped: {known})", "program.name")
