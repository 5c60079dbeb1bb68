"""fieldlearn.sim.parameters: program.params bound to the program's typed signature before anything runs."""
from __future__ import annotations

from typing import Annotated, Literal

import pytest
from annotated_types import Ge, Gt

from fieldlearn import ParameterError, program
from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.parameters import bind_parameters


@program
def sample(source: str = "source", radius: Annotated[float, Gt(0)] = 2.0, rounds: Annotated[int, Ge(1)] = 3,
           mode: Literal["fast", "slow"] = "fast", cap=None, untyped=1.5):
    return source


@sample.check
def _fast_needs_a_cap(params: dict) -> None:
    if params["mode"] == "slow" and params["cap"] is None:
        raise ParameterError("cap", "a slow run needs a cap")


def test_parameters_are_bound_with_defaults_and_numbers_widened():
    got = bind_parameters(sample, {"radius": 5, "untyped": 2})
    assert got == {"source": "source", "radius": 5.0, "rounds": 3, "mode": "fast", "cap": None, "untyped": 2.0}
    assert isinstance(got["radius"], float) and isinstance(got["untyped"], float)


@pytest.mark.parametrize("params, message", [
    ({"sourc": "x"}, "program.params.sourc: unknown parameter (did you mean source?)"),
    ({"zzz": 1}, "program.params.zzz: unknown parameter (sample takes source, radius, rounds, mode, cap, untyped)"),
    ({"radius": -1}, "program.params.radius: must be > 0"),
    ({"radius": "far"}, "program.params.radius: "),
    ({"rounds": True}, "program.params.rounds: "),
    ({"mode": "medium"}, "program.params.mode: "),
    ({"source": 5}, "program.params.source: "),
    ({"mode": "slow"}, "program.params.cap: a slow run needs a cap"),
])
def test_bad_parameters_name_their_yaml_path(params, message):
    with pytest.raises(ScenarioError) as err:
        bind_parameters(sample, params)
    assert str(err.value).startswith(message), str(err.value)
