"""benchmarks/gpu.sh runs end to end on the CPU in CI-sized settings (on a lent GPU machine it runs with cuda)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_script_runs_every_step_on_the_cpu(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=os.environ.get("PYTHON", "python"))
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--device", "cpu", "--small"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout
    table = (tmp_path / "gpu.md").read_text()
    for section in ("## Calculus", "## Training", "## C2FL at city scale", "## CUDA tests"):
        assert section in table
    assert "gradient" in table and "S+C (SCR)" in table and "'devices': 1024" in table and "passed" in table
