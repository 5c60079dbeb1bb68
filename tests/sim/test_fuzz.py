"""The command line over a few hundred mutations of every shipped scenario (benchmarks/fuzz.py, seeded): no internal
crash (an exit other than 0/2, or a traceback), no hang over 60 s, and every rejection names the file and a YAML
path. The long run: python benchmarks/fuzz.py --cases 1500."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = 240


def _fuzz():
    name = "fieldlearn_benchmark_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_mutated_scenarios_are_run_or_rejected_cleanly(tmp_path):
    fuzz = _fuzz()
    report = fuzz.fuzz(CASES, seed=11, timeout=60.0, figures=0.1, root=tmp_path)
    shown = "\n".join(f"case {o.case.index} {o.case.scenario}: {o.kind} (exit {o.code}) after "
                      f"{'; '.join(o.case.mutations)}\n{o.err[-1500:]}" for o in report.failures()[:5])
    assert report.failures() == [], shown
    counts = report.counts()
    assert counts["accepted"] + counts["rejected"] + counts["program"] == CASES
    assert counts["accepted"] >= CASES // 10 and counts["rejected"] >= CASES // 3  # the mutations reach both sides
    assert {o.case.scenario for o in report.outcomes} == set(fuzz.shipped())


def test_a_rejection_must_name_the_file_and_a_yaml_path():
    fuzz = _fuzz()
    f = "/x/s.yaml"
    assert fuzz.classify(f, 2, f"error: {f}: deployments[0].mobility.speed: must be > 0\n") == "rejected"
    assert fuzz.classify(f, 2, f"error: {f}: program.params.n: must be an int\n") == "rejected"
    assert fuzz.classify(f, 2, "error: deployments[0]: could not sample\n") == "crash"  # no file
    assert fuzz.classify(f, 2, f"error: {f}: the scenario is bad\n") == "crash"  # no path
    assert fuzz.classify(f, 1, f"Traceback ...\nerror: {f}: the program failed at time 0: ValueError: x\n") == "program"
    assert fuzz.classify(f, 1, f"Traceback ...\nerror: {f}: the run failed: IndexError: x\n") == "crash"
    assert fuzz.classify(f, 3, "") == "crash" and fuzz.classify(f, 0, "") == "accepted"
