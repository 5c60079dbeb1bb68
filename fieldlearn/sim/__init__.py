"""The discrete-event simulator: YAML scenarios, the event engine, mobility, faults and result exports.

    from fieldlearn.sim import load_scenario, run_scenario
    result = run_scenario(load_scenario("scenarios/grid.yaml", ["duration.rounds=20"]), out="results/grid")
"""
from .animation import animate
from .engine import Engine, SimulationError
from .errors import ScenarioError
from .hooks import register_metric
from .runner import OutputExists, Result, default_out_dir, run_scenario
from .scenario import Scenario, load_scenario, parse_scenario

__all__ = [
    "Engine",
    "animate",
    "OutputExists",
    "Result",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "default_out_dir",
    "load_scenario",
    "parse_scenario",
    "register_metric",
    "run_scenario",
]
