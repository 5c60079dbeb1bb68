"""The example notebooks run top to bottom (nbclient, short settings) and show what they promise."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def execute(name: str):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    path = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {"FIELDLEARN_SHORT": "1", "PYTHONPATH": os.pathsep.join(path)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def outputs(nb, kind: str) -> list[str]:
    """Every output of the notebook of the given MIME type (or stream text)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if kind == "stream" and o.get("output_type") == "stream":
                out.append(o["text"])
            elif kind in o.get("data", {}):
                out.append(o["data"][kind])
    return out


def test_write_and_property_test_a_block():
    nb = execute("01-write-and-test-a-block.ipynb")
    text = " ".join(outputs(nb, "text/plain"))
    assert "Trace(240 devices, 12 rounds, last: channel: bool[240]" in text
    html = " ".join(outputs(nb, "text/html"))
    assert html.count("data:image/png;base64") == 6  # matplotlib's player: rounds 2, 4, ..., 12
    assert "my_channel self-stabilises on every generated network" in " ".join(outputs(nb, "stream"))


def test_run_and_watch_c2fl():
    nb = execute("02-run-and-watch-c2fl.ipynb")
    text = " ".join(outputs(nb, "text/plain"))
    assert "<Result c2fl: 48 devices, t = 10" in text and "6 frames recorded" in text
    html = outputs(nb, "text/html")
    assert any(h.startswith("<iframe srcdoc=") and "plotly" in h for h in html)  # the viewer
    assert any("<img" in h for h in html)  # the animation
    assert outputs(nb, "image/png")  # the CAcc plot
