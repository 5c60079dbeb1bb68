"""python -m fieldlearn.sim: every scenario runs shortened, byte-identical reruns, exit codes, result folders."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from fieldlearn.sim.__main__ import main
from fieldlearn.sim.simulate import run_scenario
from fieldlearn.sim.loader import load_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_runs_shortened(path, tmp_path, capsys):
    code = main([str(path), "--set", "duration={rounds: 6}", "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["device_rounds"] > 0
    for name in summary["files"]:
        assert (tmp_path / "r" / name).stat().st_size > 0


@pytest.mark.parametrize("name, sets", [("grid", []), ("mobile", ["duration.rounds=25"]), ("faults", ["duration.rounds=80"])])
def test_same_scenario_and_seed_give_byte_identical_files(name, sets, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        args = [str(REPO / "scenarios" / f"{name}.yaml"), "--out", str(out), "--quiet"]
        for s in sets:
            args += ["--set", s]
        assert main(args) == 0
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) >= 4
    for f in outs[0]:
        assert outs[0][f] == outs[1][f], f
    other = tmp_path / "seed"
    assert main([str(REPO / "scenarios" / f"{name}.yaml"), "--out", str(other), "--quiet", "--seed", "99", *sum([["--set", s] for s in sets], [])]) == 0
    if name == "mobile":
        assert (other / "metrics.csv").read_bytes() != outs[0]["metrics.csv"]


def test_grid_gradient_equals_networkx_shortest_paths():
    result = run_scenario(load_scenario(REPO / "scenarios" / "grid.yaml"))
    e = result.engine
    g = e.graph
    G = nx.Graph()
    G.add_nodes_from(range(e.capacity))
    G.add_weighted_edges_from(zip(g.rows().tolist(), g.neighbours.tolist(), g.distance.tolist()))
    sources = np.flatnonzero(e.sensors["source"]).tolist()
    want = nx.multi_source_dijkstra_path_length(G, sources)
    got = result.output("gradient")
    assert np.allclose(got, [want[i] for i in range(e.capacity)])
    assert result.final["gradient.finite"] == 1.0


def test_bad_input_exit_code_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration: {rounds: 3\n")
    grid = str(REPO / "scenarios" / "grid.yaml")
    cases = [
        [str(tmp_path / "absent.yaml")],
        [str(bad)],
        [grid, "--set", "links.radius=-2"],
        [grid, "--set", "deployments[0].mobility={kind: tour, stops: [X], dwell: 1}"],
        [grid, "--set", "program.name=nowhere"],
    ]
    for args in cases:
        assert main([*args, "--quiet", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    # the real command line, once: exit status and stderr as a user sees them
    proc = subprocess.run([sys.executable, "-m", "fieldlearn.sim", str(bad), "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "not valid YAML at line 2" in " ".join(proc.stderr.split())


def test_messages_name_the_path(tmp_path, capsys):
    assert main([str(REPO / "scenarios" / "grid.yaml"), "--set", "links.radius=-2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "grid.yaml: links.radius: must be > 0" in " ".join(err.split())


def test_runtime_failure_exit_code_1(tmp_path, capsys):
    (tmp_path / "boom.py").write_text("def program():\n    raise RuntimeError('kaput')\n")
    (tmp_path / "s.yaml").write_text(
        "duration: {rounds: 3}\ndeployments: [{kind: grid, rows: 2, cols: 2}]\n"
        "links: {rule: radius, radius: 1.5}\nprogram: boom.py\n"
    )
    assert main([str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "kaput" in err and "failed at time 0" in err


def test_result_folder_never_silently_overwritten(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = str(REPO / "scenarios" / "grid.yaml")
    short = ["--set", "duration.rounds=3"]
    assert main([grid, *short]) == 0
    first = capsys.readouterr().out
    assert "results/grid/" in first and (tmp_path / "results" / "grid" / "metrics.csv").is_file()
    assert main([grid, *short, "--quiet"]) == 0  # default folder taken: a fresh timestamped one
    fresh = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("grid-")]
    assert len(fresh) == 1 and (fresh[0] / "summary.json").is_file()
    out = tmp_path / "results" / "grid"
    assert main([grid, *short, "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    (out / "mine.txt").write_text("keep me")
    forced = [grid, *short, "--out", str(out), "--quiet", "--force", "--set", "exports.figures.snapshots=[]"]
    assert main(forced) == 2  # --force replaces results, never what it did not write
    assert "also holds mine.txt" in " ".join(capsys.readouterr().err.split())
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "mine.txt").unlink()
    assert main(forced) == 0
    assert not (out / "snapshot.png").exists()  # a stale file of the previous run is removed
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # nor beside the folder


def test_device_cuda_without_gpu_is_bad_input(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main([str(REPO / "scenarios" / "grid.yaml"), "--device", "cuda", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_slow_runs_print_their_rate_with_three_digits():
    from fieldlearn.sim.__main__ import _rate

    assert [_rate(x) for x in (0.4, 0.04567, 19.26, 100.4, 14_800_000.0)] == ["0.4", "0.0457", "19.3", "100", "14,800,000"]


def test_the_final_summary_is_a_short_table_without_per_device_columns():
    from fieldlearn.sim.__main__ import summary_lines

    final = {"cacc": 3.2, "dwell.mean": 8.5, "dwell.max": 10, **{f"accuracy.d{d}.area{a}": 0.5 for d in range(16)
                                                                for a in range(4)},
             **{f"area_own.area{a}": 0.9 for a in range(8)}}
    lines = summary_lines(final)
    assert lines == ["cacc      3.2", "dwell     mean 8.5  max 10",
                     "area_own  area0 0.9  area1 0.9  area2 0.9  area3 0.9  area4 0.9  area5 0.9  (+2 more in the CSV)",
                     "(accuracy: 64 per-device columns in the CSV)"]
    assert max(len(line) for line in lines) < 120


def test_bad_program_parameters_exit_2_before_any_output_folder_exists(tmp_path, capsys):
    out = tmp_path / "never"
    code = main([str(REPO / "scenarios" / "grid.yaml"), "--set", "program.params.sourc=x", "--out", str(out),
                 "--quiet"])
    err = " ".join(capsys.readouterr().err.split())  # the message is wrapped for the terminal
    assert code == 2 and "program.params.sourc: unknown parameter (did you mean source?)" in err
    assert "grid.yaml" in err and not out.exists()
    code = main(["fbfl", "--set", "program.params.merge_every=0", "--out", str(out), "--quiet"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "program.params.merge_every: must be >= 1" in err and not out.exists()


def test_a_huge_value_in_a_message_is_cut_in_the_middle(tmp_path, capsys):
    huge = "x" * 100_000
    assert main([str(REPO / "scenarios" / "grid.yaml"), "--quiet", "--out", str(tmp_path / "o"),
                 "--set", f"exports.values=[gradient, {huge}]"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ") and "grid.yaml: exports.values[1]: 'xxx" in err and len(err) < 1300
    assert "characters ...] " in err and err.endswith("nor a sensor (region, source)")


def test_lean_memory_leaves_glibc_its_own_policy_and_the_results_byte_identical(tmp_path, monkeypatch):
    import fieldlearn.calculus

    calls = []
    monkeypatch.setattr(fieldlearn.calculus, "keep_freed_memory", lambda *a: calls.append(a) or True)
    files = []
    for lean in (False, True):
        out = tmp_path / f"lean{int(lean)}"
        args = [str(REPO / "scenarios" / "grid.yaml"), "--set", "duration.rounds=5", "--out", str(out), "--quiet"]
        assert main(args + (["--lean-memory"] if lean else [])) == 0
        assert calls == [()]  # asked for by the default run only
        files.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert files[0] == files[1]
