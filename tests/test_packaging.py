"""The wheel and the sdist ship the programs and the scenarios: after a plain wheel install into a fresh environment,
`python -m fieldlearn.sim NAME` runs a shipped scenario (a learning one included) from an empty folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_package_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "fieldlearn").rglob("__init__.py")}
    found |= set(config["package-dir"])
    assert listed == found


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the files git would ship (tracked, and untracked but not ignored): no stale build folder."""
    tree = tmp_path_factory.mktemp("source")
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    return tree


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, source) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    return next(out.glob("fieldlearn-*.whl"))


def test_the_wheel_and_the_sdist_hold_the_programs_and_scenarios(wheel, source, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("fieldlearn/programs/c2fl.py", "fieldlearn/programs/gossip_learning.py",
                 "fieldlearn/scenarios/grid.yaml", "fieldlearn/scenarios/c2fl.yaml",
                 "fieldlearn/scenarios/data/city-6x6/fcd.xml.gz"):
        assert name in names, name
    assert not any(n.startswith("fieldlearn/") and n.endswith("programs.py") for n in names)  # nothing stale
    code = ("from setuptools import build_meta; import os; os.chdir(r'%s'); print(build_meta.build_sdist(r'%s'))"
            % (source, tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    members = tarfile.open(next(tmp_path.glob("fieldlearn-*.tar.gz"))).getnames()
    assert any(m.endswith("/programs/c2fl.py") for m in members)
    assert any(m.endswith("/scenarios/fbfl.yaml") for m in members)


def test_a_plain_wheel_install_runs_a_shipped_learning_scenario_from_an_empty_folder(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300,
                   capture_output=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import fieldlearn.programs; print(fieldlearn.programs.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where
    listing = subprocess.run([str(python), "-m", "fieldlearn.sim", "--list"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "fbfl" in listing.stdout and "grid" in listing.stdout
    run = subprocess.run([str(python), "-m", "fieldlearn.sim", "fbfl", "--set", "duration.rounds=5", "--quiet",
                          "--out", "out"], cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (empty / "out" / "metrics.csv").is_file() and (empty / "out" / "summary.json").is_file()
