"""fieldlearn.calculus.program: declared programs, their parameters, their needs and their checks."""
from __future__ import annotations

import pytest

from fieldlearn import Network, ParameterError, Program, program, run, sense


def test_a_declared_program_is_its_function_with_a_signature_and_needs():
    @program
    def gradient(source: str = "source", scale: float = 1.0):
        """A program."""
        return sense(source) * scale

    @program(needs="learning")
    def learner(every: int = 1):
        return every

    assert isinstance(gradient, Program) and gradient.name == "gradient" and gradient.needs == ()
    assert list(gradient.parameters) == ["source", "scale"] and gradient.__doc__ == "A program."
    assert learner.needs == ("learning",) and program(learner) is learner
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["source"] = net.ids == 0
    assert run(lambda: gradient(scale=2.0), net, rounds=1).last.tolist() == [2.0, 0.0]


def test_checks_refuse_parameters_with_their_name():
    @program
    def p(mode: str = "a", cap: int | None = None):
        return 0

    @p.check
    def _needs_cap(params):
        if params["mode"] == "b" and params["cap"] is None:
            raise ParameterError("cap", "mode b needs a cap")

    p.validate({"mode": "a", "cap": None})
    with pytest.raises(ParameterError, match="cap: mode b needs a cap"):
        p.validate({"mode": "b", "cap": None})


def test_parameters_are_named_never_positional_only_or_variadic():
    with pytest.raises(TypeError, match="parameter 'args' must be an ordinary named parameter"):
        program(lambda *args: 0)
    with pytest.raises(TypeError, match="marks a function"):
        Program(3)
