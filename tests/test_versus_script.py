"""benchmarks/versus.py compares two versions in one process and says whether they give the same results."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "versus.py"


def test_versus_times_a_commit_against_the_working_tree_and_checks_their_results():
    done = subprocess.run([sys.executable, str(SCRIPT), "HEAD", "--sizes", "30,60", "--programs", "gradient,SCR",
                           "--repeats", "1", "--budget", "0.05"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| gradient") or line.startswith("| SCR")]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0 and cells[4].endswith("x") and cells[5] == "yes"


def test_versus_refuses_an_unknown_program_and_a_commit_that_does_not_exist():
    bad = subprocess.run([sys.executable, str(SCRIPT), "HEAD", "--programs", "gossip"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--programs: unknown gossip" in bad.stderr
    missing = subprocess.run([sys.executable, str(SCRIPT), "no-such-commit"], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 1 and "versus: cannot export a commit" in missing.stderr


def test_versus_times_the_learning_steps_and_refuses_them_on_too_many_devices():
    done = subprocess.run([sys.executable, str(SCRIPT), "HEAD", "--sizes", "12", "--programs", "train,model-sum",
                           "--repeats", "1", "--budget", "0.01"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| train", "| model-sum"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "12" and float(cells[2]) > 0 and float(cells[3]) > 0 and cells[5] == "yes"
    big = subprocess.run([sys.executable, str(SCRIPT), "HEAD", "--programs", "train", "--sizes", "5000"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert big.returncode == 2 and "at most 4,096 devices" in big.stderr
