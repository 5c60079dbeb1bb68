"""Every snippet of the README runs as shown: Python blocks on their own (a block that starts with `# continues`
runs after the one before it), `# file: NAME` blocks are written where the text says, and the `python -m
fieldlearn.sim` commands (with the `NAME=value` variables before them) run in that folder. The set-up commands (pip,
pytest) are left to CI."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
SIM_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*python -m fieldlearn\.sim ")


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text())]


def test_the_readme_has_the_snippets_it_promises():
    kinds = [k for k, _ in blocks()]
    assert kinds.count("python") >= 6 and "yaml" in kinds
    assert any(code.startswith("# file: neighbour_averaging.py") for _, code in blocks())


def test_every_readme_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    ran = 0
    for kind, code in blocks():
        first = code.splitlines()[0] if code.strip() else ""
        if first.startswith("# file: "):
            (tmp_path / first[len("# file: "):].strip()).write_text(code)
        elif kind == "python":
            if not first.startswith("# continues"):
                namespace = {"__name__": "readme_snippet"}
            exec(compile(code, f"README.md snippet {ran}", "exec"), namespace)
            for name, fn in list(namespace.items()):
                if name.startswith("test_") and callable(fn):
                    fn()
            ran += 1
        elif kind == "bash":
            for line in code.splitlines():
                if SIM_COMMAND.match(line) and "&&" not in line:
                    words = shlex.split(line, comments=True)
                    env = dict(os.environ)
                    while words[0] != "python":  # `NAME=value python -m ...` runs with NAME set
                        name, _, value = words.pop(0).partition("=")
                        env[name] = value
                    # a scenario the README wrote runs where it was written, a repository path from the root;
                    # results go to a fresh folder either way
                    here = tmp_path if (tmp_path / words[3]).exists() else REPO
                    cmd = [sys.executable] + words[1:] + ["--out", str(tmp_path / f"out{ran}")]
                    done = subprocess.run(cmd, cwd=here, capture_output=True, text=True, timeout=600, env=env)
                    assert done.returncode == 0, f"{line}\n{done.stderr}"
                    ran += 1
    assert ran >= 6
