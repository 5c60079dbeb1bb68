"""The discrete-event simulator: YAML scenarios, the event engine, mobility, faults and result exports.

    from fieldlearn.sim import load_scenario, run_scenario
    result = run_scenario(load_scenario("grid", ["duration.rounds=20"]), out="results/grid")

A scenario is a file or the name of a shipped one (`python -m fieldlearn.sim --list`); see fieldlearn/sim/README.md
for the way a scenario takes through the simulator.
"""
from .animation import animate
from .engine import Engine, SimulationError
from .errors import ScenarioError
from .loader import LoadedScenario, load_scenario, resolve_scenario
from .metrics import register_metric
from .scenario import Scenario
from .shipped import shipped_scenarios
from .result import Result
from .simulate import OutputExists, default_out_dir, run_scenario

__all__ = [
    "Engine",
    "LoadedScenario",
    "animate",
    "OutputExists",
    "Result",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "default_out_dir",
    "load_scenario",
    "register_metric",
    "resolve_scenario",
    "run_scenario",
    "shipped_scenarios",
]
