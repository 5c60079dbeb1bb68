"""Declared aggregate programs: a function marked `@program`, whose typed signature is its parameters and which names
the resources its runner must lend it (e.g. `needs="learning"`).

    @program
    def gradient(source: str = "source") -> dict:
        return {"gradient": distance_to(sense(source))}

A runner (the simulator, `fieldlearn.learning.run_learning`) binds and checks the parameters against the signature
before anything runs, and provides every resource in `needs` through `RoundVM.resources` (read with `resource`).
Only declared programs can be named by `module:function` in a scenario, so a scenario cannot run arbitrary code.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable

__all__ = ["Program", "ParameterError", "program"]


class ParameterError(ValueError):
    """A program parameter value that its program refuses (raised by a check, see `Program.check`)."""

    def __init__(self, name: str, message: str):
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


class Program:
    """An aggregate program: the function, its name, its parameters (the signature) and the resources it needs."""

    def __init__(self, fn: Callable[..., Any], needs: Iterable[str] = ()):
        self.checks: list[Callable[[dict], None]] = []
        if not callable(fn):
            raise TypeError(f"@program marks a function, got {type(fn).__name__}")
        self.fn = fn
        self.name = getattr(fn, "__name__", "program")
        self.needs = tuple(dict.fromkeys(needs))
        self.signature = inspect.signature(fn)
        for p in self.signature.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"program {self.name}: parameter {p.name!r} must be an ordinary named parameter "
                                "(scenarios pass parameters by name)")
        functools.update_wrapper(self, fn)

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The program's parameters by name, in signature order."""
        return dict(self.signature.parameters)

    def check(self, fn: Callable[[dict], None]) -> Callable[[dict], None]:
        """Register a check across parameters (a decorator): `fn(params)` gets every parameter by name, defaults
        filled in, and raises ParameterError(name, message) to refuse them; runners call it before anything runs."""
        self.checks.append(fn)
        return fn

    def validate(self, params: dict) -> None:
        """Run the registered checks on complete parameters (ParameterError on the first refusal)."""
        for check in self.checks:
            check(params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        needs = f", needs={list(self.needs)}" if self.needs else ""
        return f"Program({self.name}{self.signature}{needs})"


def program(fn: Callable[..., Any] | None = None, *, needs: str | Iterable[str] = ()) -> Any:
    """Declare `fn` as an aggregate program (usable bare, `@program`, or with `@program(needs="learning")`)."""
    wanted = (needs,) if isinstance(needs, str) else tuple(needs)

    def mark(f: Callable[..., Any]) -> Program:
        if not isinstance(f, Program):
            return Program(f, wanted)
        if not wanted or wanted == f.needs:
            return f  # already declared: kept as it is
        again = Program(f.fn, wanted)
        again.checks = list(f.checks)
        return again

    return mark(fn) if fn is not None else mark
