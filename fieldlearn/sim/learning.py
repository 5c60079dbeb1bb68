"""The simulator's side of learning: the adapter that builds the learning context of a run from the engine's public state, lends it to the program, records the models the program
returns, forgets crashed devices and reads the learning metrics. The only code that knows both the engine and the
learning layer (which itself knows nothing of the simulator)."""
from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from fieldlearn.learning import METRICS, RESOURCE, ConfigError, LearningConfig, LearningContext, Moment

from . import scenario as S
from .errors import ScenarioError

__all__ = ["LearningAdapter", "LearningHost"]


class LearningHost(Protocol):
    """What the adapter reads and hooks into on the engine (its public state and hooks)."""

    sensors: dict[str, Any]
    deployed_mobile: Any
    scenario: S.Scenario
    capacity: int
    regions: Any
    region: Any
    seed: int
    period: float
    device: str
    base_dir: Any
    vm: Any
    result_hooks: list
    crash_hooks: list
    rounds: Any
    time: float


class LearningAdapter:
    """Attaches a learning context to an engine: the `mobile` sensor (deployments that move, unless the scenario
    sets one), the resource "learning", a result hook that records the returned models, a crash hook, metrics."""

    def __init__(self, engine: LearningHost, config: LearningConfig):
        sensors = engine.sensors
        mobile = np.asarray(sensors["mobile"], dtype=bool) if "mobile" in sensors else engine.deployed_mobile.copy()
        wanted = set(engine.scenario.exports.metrics)
        try:
            self.context = LearningContext(config, n_devices=engine.capacity, region_names=engine.regions.names,
                                           initial_region=np.asarray(engine.region), mobile=mobile,
                                           seed=engine.seed, period=engine.period, device=engine.device,
                                           base_dir=engine.base_dir, score_everywhere="global_accuracy" in wanted)
        except ConfigError as exc:
            raise ScenarioError(exc.message, f"learning.{exc.key}" if exc.key else "learning") from None
        if config.threads is not None and self.context.device.type == "cpu":
            import torch

            torch.set_num_threads(config.threads)
        engine.vm.sensors["mobile"] = mobile
        engine.vm.resources[RESOURCE] = self.context
        engine.result_hooks.append(self.context.take_models)
        engine.crash_hooks.append(self.context.forget)

    def metrics(self) -> dict[str, Callable[[LearningHost], Any]]:
        """The learning metrics (`fieldlearn.learning.METRICS`) as functions of the engine."""
        ctx = self.context

        def reading(fn: Callable[[Any, Moment], Any]) -> Callable[[LearningHost], Any]:
            return lambda e: fn(ctx, Moment(int(e.rounds.max()) if len(e.rounds) else 0, e.time, e.region))

        return {name: reading(fn) for name, fn in METRICS.items()}
