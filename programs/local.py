"""Local learning: every device trains its own model on the data of the region it is in; no communication at all."""
from fieldlearn import rep
from fieldlearn.learning.blocks import sample_counts, train_locally
from fieldlearn.learning.context import context, engine_metrics, fresh_models, keep_latest, sensed_samples, setup_engine
from fieldlearn.sim import ScenarioError

metrics = engine_metrics()


def setup(engine) -> None:
    """Build the learning context from the scenario's `learning:` block."""
    setup_engine(engine, ScenarioError)


def program() -> dict:
    """One round of local training (all devices of the batch at once); outputs `samples` per device."""
    ctx = context()
    now = sensed_samples()
    keep_latest(rep(fresh_models, lambda theta: train_locally(theta, now, ctx.trainer)))
    return {"samples": sample_counts(now)}
