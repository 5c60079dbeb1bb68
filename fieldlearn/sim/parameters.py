"""Binding a scenario's `program.params` to the program's typed signature, before anything runs: unknown names,
wrong types and out-of-range values are errors naming `program.params.<name>`."""
from __future__ import annotations

import difflib
import inspect
import typing
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from fieldlearn.calculus import ParameterError, Program

from .errors import ScenarioError, from_validation_error

__all__ = ["bind_parameters"]

_PATH = ("program", "params")
_INFERRED = (bool, int, float, str)


def _annotation(p: inspect.Parameter, hints: dict[str, Any]) -> Any:
    """The parameter's declared type; without one, the type of its default (a float default takes numbers)."""
    if p.name in hints:
        return hints[p.name]
    if p.default is not inspect.Parameter.empty and type(p.default) in _INFERRED:
        return float if type(p.default) is float else type(p.default)
    return Any


def _model(program: Program) -> Any:
    try:
        hints = typing.get_type_hints(program.fn, include_extras=True)
    except Exception as exc:  # an annotation that does not resolve: the program's own mistake
        raise ScenarioError(f"{program.name}: cannot read the parameter types ({type(exc).__name__}: {exc})",
                            "program.name") from None
    fields = {}
    for p in program.parameters.values():
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (_annotation(p, hints), default)
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)
    return create_model(f"{program.name}_params", __config__=config, **fields)


def bind_parameters(program: Program, params: dict[str, Any]) -> dict[str, Any]:
    """`params` checked against the program's signature, with the defaults of the others filled in."""
    names = list(program.parameters)

    def unknown(err: dict) -> str:
        key = str(err["loc"][-1]) if err["loc"] else ""
        close = difflib.get_close_matches(key, names, n=1)
        if close:
            return f"unknown parameter (did you mean {close[0]}?)"
        return f"unknown parameter ({program.name} takes {', '.join(names) or 'no parameters'})"

    try:
        bound = _model(program).model_validate(params)
    except ValidationError as exc:
        raise from_validation_error(exc, params, _PATH, {"extra_forbidden": unknown}) from None
    values = {name: getattr(bound, name) for name in names}
    try:
        program.validate(dict(values))
    except ParameterError as exc:
        raise ScenarioError(exc.message, f"program.params.{exc.name}") from None
    return values
