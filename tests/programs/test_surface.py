"""The shipped programs use nothing but the documented public API: every name they import from fieldlearn is in
its package's `__all__`, none starts with `_`, none comes from the calculus VM or the simulator, and no attribute
they read on fieldlearn objects is private. The three learning examples are held to it by name."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
EXAMPLES = ("gossip_learning", "psfl", "regional_fedprox")
PUBLIC = ("fieldlearn", "fieldlearn.lib", "fieldlearn.learning")
OUTSIDE = ("typing", "annotated_types", "torch", "torch.nn.functional", "numpy", "math", "__future__")


def imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [(node.module or "", a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names]
    return found


def private_attributes(path: Path) -> list[str]:
    return [n.attr for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")]


@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.py") if p.stem != "__init__"))
def test_programs_import_only_the_public_api(name):
    path = PROGRAMS / f"{name}.py"
    for module, item in imports(path):
        if module.split(".")[0] != "fieldlearn":
            assert module in OUTSIDE, f"{name} imports {module}"
            continue
        assert module in PUBLIC, f"{name} imports from {module} (use {', '.join(PUBLIC)})"
        assert item and not item.startswith("_") and item in importlib.import_module(module).__all__, (
            f"{name} imports {item!r} from {module}, which is not in its __all__")
    assert private_attributes(path) == [], name


def test_the_three_examples_are_learning_programs_declared_with_their_needs():
    for name in EXAMPLES:
        module = importlib.import_module(f"fieldlearn.programs.{name}")
        declared = [v for v in vars(module).values() if type(v).__name__ == "Program"]
        assert len(declared) == 1 and declared[0].needs == ("learning",), name
