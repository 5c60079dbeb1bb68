"""The straight way in: YAML -> overrides -> schema -> checks -> one resolved scenario.

    loaded = load_scenario("scenarios/grid.yaml", ["duration.rounds=20"])   # or load_scenario("grid")
    loaded.scenario        # the validated schema (defaults filled in)
    loaded.program         # the declared program, its parameters bound and checked in loaded.params
    loaded.graphs, loaded.traces, loaded.counts   # what the checks built and read (networkx graphs, trace rows)
    loaded.vehicles, loaded.streets               # vehicle deployments' plans (trace read, SUMO run planned), streets

Everything a run needs that can be wrong is found here, before any result folder exists; every error is a
ScenarioError naming the file and the YAML path of the bad value.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml
from pydantic import ValidationError

from fieldlearn.calculus import Program

from . import scenario as S
from .checks import check_scenario
from .inputs import (build_generator_graph, configure_learning, read_streets, read_trace, regions_from_file,
                     resolve_file, resolve_vehicles)
from .errors import ScenarioError, from_validation_error
from .files import json_plain
from .locate import ProgramRef, locate_program
from .overrides import apply_overrides
from .parameters import bind_parameters
from .shipped import scenario_path
from .streets import StreetNetwork
from .yaml_reader import YamlLimitError, read_yaml

__all__ = ["LoadedScenario", "load_scenario", "resolve_scenario", "read_scenario_file", "RESOURCES"]

#: The resources a program may declare in `needs`, and the scenario block that configures each.
RESOURCES = {"learning": "learning"}


@dataclass(frozen=True)
class LoadedScenario:
    """A scenario ready to run: the validated schema, where it came from, its program (located, imported, parameters
    bound), the configuration of every resource the program needs, and what the checks built or read."""

    scenario: S.Scenario
    base_dir: Path
    source: str | None
    program_ref: ProgramRef
    params: dict[str, Any]
    resources: dict[str, Any]
    counts: tuple[int, ...]
    graphs: dict[int, Any] = field(default_factory=dict)
    traces: dict[int, np.ndarray] = field(default_factory=dict)
    vehicles: dict[int, Any] = field(default_factory=dict)  # vehicle deployments: an inputs.ReplayPlan or LivePlan
    streets: StreetNetwork | None = None  # the street network the scenario names (drawn behind the devices)

    def resolved(self, i: int) -> Any:
        """What was built or read for deployment `i` (id order): a graph deployment's networkx graph, a vehicle
        deployment's plan; None for the others."""
        return self.graphs.get(i, self.vehicles.get(i))

    @property
    def program(self) -> Program:
        """The declared program (imported on first use, e.g. again in a sweep's worker)."""
        return self.program_ref.load()

    @property
    def name(self) -> str:
        return self.scenario.name or "scenario"

    @property
    def capacity(self) -> int:
        """Number of device ids ever used: initial deployments, then joins in the order listed."""
        return int(sum(self.counts))

    @property
    def n_initial(self) -> int:
        return int(sum(self.counts[: len(self.scenario.deployments)]))

    def with_seed(self, seed: int) -> "LoadedScenario":
        """The same scenario with another seed (nothing else depends on the seed at load time)."""
        return replace(self, scenario=self.scenario.model_copy(update={"seed": int(seed)}))

    def to_yaml(self) -> str:
        """The resolved scenario as YAML: defaults filled in, the program's parameters bound, every resource's
        configuration validated (what ran, for `scenario.yaml` and a sweep's configuration hash)."""
        data = self.scenario.model_dump(mode="json", exclude_none=True)
        data["program"]["params"] = json_plain(self.params)
        for name, config in self.resources.items():
            data[RESOURCES[name]] = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def read_scenario_file(path: str | Path) -> tuple[dict[str, Any], Path, str]:
    """The raw mapping of a scenario file (or a shipped scenario's name, e.g. `grid`), its folder and its name."""
    p = scenario_path(str(path))
    try:
        found = p.is_file()
    except OSError as exc:
        raise ScenarioError(f"{str(path)[:80]}: not a usable path ({exc.strerror or exc})") from None
    if not found:
        raise ScenarioError(f"{path}: no such scenario file (nor a shipped scenario: python -m fieldlearn.sim --list)"
                            if not p.exists() else f"{path}: not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read it ({exc})") from None
    try:
        data = read_yaml(text)
    except YamlLimitError as exc:
        raise ScenarioError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario must be a mapping of keys to values, got {type(data).__name__}")
    return data, p.resolve().parent, re.sub(r"[^\w.-]", "_", p.stem) or "scenario"


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> LoadedScenario:
    """Read a scenario file (or a shipped scenario by name), apply `key.path=value` overrides and resolve it."""
    try:
        data, base_dir, name = read_scenario_file(path)
        return resolve_scenario(apply_overrides(data, list(overrides)), base_dir, name=name, source=str(path))
    except ScenarioError as exc:
        raise exc.with_source(str(path)) if exc.source is None else exc from None


def resolve_scenario(data: Mapping[str, Any], base_dir: str | Path | None = None, *, name: str | None = None,
                     source: str | None = None) -> LoadedScenario:
    """Validate a raw scenario mapping and resolve everything it names (ScenarioError naming the YAML path)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    scenario = _validate(data, name)
    if isinstance(scenario.regions, S.RegionsFile):
        scenario = scenario.model_copy(update={"regions": regions_from_file(scenario.regions.from_file, base)})
    deps = scenario.all_deployments()
    graphs = {i: build_generator_graph(d, S.deployment_path(scenario, i)) for i, d in enumerate(deps)
              if isinstance(d, S.GraphDeployment)}
    find = lambda name, loc: resolve_file(name, base, loc)  # noqa: E731
    vehicles = {i: resolve_vehicles(d, S.deployment_path(scenario, i), base, find, scenario.end_time)
                for i, d in enumerate(deps) if isinstance(d, S.VehiclesDeployment)}
    counts = tuple(graphs[i].number_of_nodes() if i in graphs else vehicles[i].count if i in vehicles else d.n_devices
                   for i, d in enumerate(deps))
    check_scenario(scenario, counts)
    streets = read_streets(scenario.streets, base) if scenario.streets is not None else None
    traces = {}
    for i, d in enumerate(deps):
        if isinstance(d.mobility, S.TraceSpec):
            loc = S.deployment_path(scenario, i) + ("mobility", "file")
            traces[i] = read_trace(resolve_file(d.mobility.file, base, loc), counts[i], loc)
    ref = locate_program(scenario.program.name, scenario.program.function, base)
    program = ref.load()
    params = bind_parameters(program, dict(scenario.program.params))
    resources = {}
    for need in program.needs:
        if need not in RESOURCES:
            raise ScenarioError(f"the program needs {need!r}, which the simulator cannot provide (it provides: "
                                f"{', '.join(RESOURCES)})", "program.name")
        resources[need] = _configure(need, getattr(scenario, RESOURCES[need]), scenario)
    return LoadedScenario(scenario, base, source, ref, params, resources, counts, graphs, traces, vehicles, streets)


def _validate(data: Mapping[str, Any], name: str | None) -> S.Scenario:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"a scenario must be a mapping of keys to values, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ScenarioError(f"{bad[0]!r}: keys must be strings")
    try:
        scenario = S.Scenario.model_validate(copy.deepcopy(dict(data)))
    except ValidationError as exc:
        raise from_validation_error(exc, data) from None
    except RecursionError:
        raise ScenarioError("the scenario is nested too deeply") from None
    if scenario.name is None and name:
        scenario = scenario.model_copy(update={"name": re.sub(r"^[^\w]+", "", name)[:100] or "scenario"})
    return scenario


def _configure(need: str, raw: Any, scenario: S.Scenario) -> Any:
    """The validated configuration of a resource the program needs (its scenario block)."""
    block = RESOURCES[need]
    if raw is None:
        raise ScenarioError(f"this program learns: the scenario needs a `{block}:` block (dataset, partition, ...)",
                            block)
    if need == "learning":
        return configure_learning(raw, scenario)
    raise AssertionError(need)  # pragma: no cover - RESOURCES lists only what is handled here
