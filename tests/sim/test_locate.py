"""fieldlearn.sim.locate: finding programs (shipped by name, files beside the scenario, declared module:function) and
the trust model: nothing else can run; import errors are bad input."""
from __future__ import annotations

from pathlib import Path

import pytest

from fieldlearn import Program
from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.locate import locate_program, shipped_programs

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_and_an_installed_package_give_the_same_shipped_program(tmp_path):
    beside = locate_program("gradient", None, REPO / "scenarios")
    anywhere = locate_program("gradient", None, tmp_path)
    assert beside == anywhere and beside.module == "fieldlearn.programs.gradient" and beside.file is None
    program = beside.load()
    assert isinstance(program, Program) and program.name == "gradient" and list(program.parameters) == ["source"]
    assert {"c2fl", "fbfl", "gradient", "gossip_learning", "psfl", "regional_fedprox"} <= set(shipped_programs())


def test_files_beside_the_scenario_may_hold_plain_or_declared_programs(tmp_path):
    (tmp_path / "programs").mkdir()
    (tmp_path / "programs" / "gradient.py").write_text("def program(k=1):\n    return k\n")
    own = locate_program("gradient", None, tmp_path)
    assert own.file == (tmp_path / "programs" / "gradient.py").resolve()
    assert own.load()(k=3) == 3  # a local file shadows the shipped program of the same name
    (tmp_path / "two.py").write_text("from fieldlearn import program\n@program\ndef a():\n    return 1\n"
                                     "@program\ndef b():\n    return 2\n")
    with pytest.raises(ScenarioError, match=r"program.function: .*declares several programs \(a, b\)"):
        locate_program("two.py", None, tmp_path).load()
    assert locate_program("two.py", "b", tmp_path).load()() == 2


def test_only_declared_programs_run_from_modules(tmp_path):
    with pytest.raises(ScenarioError, match=r"program.name: os:system is not a declared aggregate program"):
        locate_program("os:system", None, tmp_path).load()
    with pytest.raises(ScenarioError, match=r"program.name: json:dumps is not a declared aggregate program"):
        locate_program("json:dumps", None, tmp_path).load()
    declared = locate_program("fieldlearn.programs.c2fl:c2fl", None, tmp_path).load()
    assert declared.needs == ("learning",)


def test_bad_programs_are_scenario_errors(tmp_path):
    (tmp_path / "syntax.py").write_text("def program(:\n")
    with pytest.raises(ScenarioError, match=r"program.name: the program .*syntax.py has a syntax error"):
        locate_program("syntax.py", None, tmp_path).load()
    (tmp_path / "nofn.py").write_text("x = 1\n")
    with pytest.raises(ScenarioError, match=r"declares no program"):
        locate_program("nofn.py", None, tmp_path).load()
    with pytest.raises(ScenarioError, match=r"program.name: .*not a program name"):
        locate_program("bad name!", None, tmp_path)
    with pytest.raises(ScenarioError, match="expected module:function"):
        locate_program("json:", None, tmp_path)
    with pytest.raises(ScenarioError, match=r"program 'nope' not found: .*shipped: .*c2fl"):
        locate_program("nope", None, tmp_path)
    with pytest.raises(ScenarioError, match=r"program file .* not found"):
        locate_program("programs/missing.py", None, tmp_path)


def test_a_program_name_longer_than_a_file_name_is_not_found(tmp_path):
    from fieldlearn.sim.errors import ScenarioError
    from fieldlearn.sim.locate import locate_program

    (tmp_path / "programs").mkdir()
    with pytest.raises(ScenarioError, match="program 'xxxxx.* not found") as err:
        locate_program("x" * 300, None, tmp_path)
    assert err.value.path == "program.name"
