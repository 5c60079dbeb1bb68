"""Decentralised FedAvg by gossip: devices train locally and, every `every` rounds, replace their model by the mean
of their own and their neighbours' models (one sparse product per parameter tensor)."""
from fieldlearn import mux, nbr, rep
from fieldlearn.calculus import tree_map
from fieldlearn.learning.blocks import train_locally
from fieldlearn.learning.context import (
    context,
    engine_metrics,
    fresh_models,
    keep_latest,
    round_number,
    sensed_samples,
    setup_engine,
)
from fieldlearn.sim import ScenarioError

metrics = engine_metrics()


def setup(engine) -> None:
    """Build the learning context from the scenario's `learning:` block; check `every`."""
    setup_engine(engine, ScenarioError)
    every = engine.scenario.program.params.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ScenarioError(f"must be an integer >= 1, got {every!r}", "program.params.every")


def program(every: int = 1) -> dict:
    """One round: local training, then (every `every`-th round) the mean over the device and its neighbours."""
    ctx = context()
    averaging = (round_number() % every) == every - 1

    def step(theta):
        trained = train_locally(theta, sensed_samples(), ctx.trainer)
        mean = tree_map(lambda leaf: leaf.mean(include_self=True), nbr(trained))
        return mux(averaging, mean, trained)

    keep_latest(rep(fresh_models, step))
    return {"averaged": averaging}
