"""fieldlearn.sim.programs: finding programs by name, path or module:function; import errors are bad input."""
from __future__ import annotations

from pathlib import Path

import pytest

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.programs import import_program, locate_program

REPO = Path(__file__).resolve().parents[2]


def test_name_path_and_module_function(tmp_path):
    loc = locate_program("gradient", None, REPO / "scenarios")
    assert loc.file == REPO / "programs" / "gradient.py" and loc.function == "program"
    fn, module = import_program(loc)
    assert callable(fn) and module.__doc__
    (tmp_path / "mine.py").write_text("def main(k=1):\n    return k\n")
    loc2 = locate_program("mine.py", "main", tmp_path)
    assert import_program(loc2)[0](k=3) == 3
    loc3 = locate_program("json:dumps", None, tmp_path)
    assert loc3.module == "json" and import_program(loc3)[0]([1]) == "[1]"


def test_bad_programs_are_scenario_errors(tmp_path):
    (tmp_path / "syntax.py").write_text("def program(:\n")
    with pytest.raises(ScenarioError, match=r"program.name: the program has a syntax error"):
        import_program(locate_program("syntax.py", None, tmp_path))
    (tmp_path / "nofn.py").write_text("x = 1\n")
    with pytest.raises(ScenarioError, match=r"defines no function 'program'"):
        import_program(locate_program("nofn.py", None, tmp_path))
    with pytest.raises(ScenarioError, match=r"program.name: .*not a program name"):
        locate_program("bad name!", None, tmp_path)
    with pytest.raises(ScenarioError, match="expected module:function"):
        locate_program("json:", None, tmp_path)
