"""FBFL: field-based federated learning. Devices form self-organising coordination regions (leader election with a
radius, potential towards the leader); every round each device trains locally, the region collects the models to
its leader, which averages them (uniformly, or weighted by sample counts), and the average flows back; every
`merge_every` rounds every device replaces its model by the 0.5/0.5 mix of its own and its region's."""
from fieldlearn import mux, rep
from fieldlearn.learning.blocks import blend, sample_counts, train_locally
from fieldlearn.learning.context import (
    context,
    engine_metrics,
    fresh_models,
    is_mobile,
    keep_latest,
    round_number,
    sensed_samples,
    setup_engine,
)
from fieldlearn.lib import mobile_regions
from fieldlearn.sim import ScenarioError

metrics = engine_metrics()


def setup(engine) -> None:
    """Build the learning context from the scenario's `learning:` block; check the parameters."""
    setup_engine(engine, ScenarioError)
    p = engine.scenario.program.params
    every = p.get("merge_every", 5)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ScenarioError(f"must be an integer >= 1, got {every!r}", "program.params.merge_every")
    if p.get("weighting", "uniform") not in ("uniform", "samples"):
        raise ScenarioError(f"must be uniform or samples, got {p['weighting']!r}", "program.params.weighting")


def program(radius: float = 20.0, merge_every: int = 5, mix: float = 0.5, weighting: str = "uniform",
            stable_leaders: bool = True, min_link=None, seed: int = 0) -> dict:
    """One FBFL round; outputs `leader` and `merged`. The regional model every device holds is recorded as
    `regional` (metrics `regional_accuracy`, `area_accuracy`)."""
    ctx = context()
    merging = (round_number() % merge_every) == merge_every - 1
    out = {}

    def step(theta):
        region = mobile_regions(radius, is_mobile(), stable_leaders, min_link, seed)
        now = sensed_samples()
        trained = train_locally(theta, now, ctx.trainer)
        weight = sample_counts(now) * 1.0 if weighting == "samples" else None
        regional = region.broadcast(region.collect_mean(trained, weight=weight))
        keep_latest(regional, "regional")
        out.update(leader=region.leader, merged=merging)
        return blend(trained, regional, mux(merging, mix, 0.0))

    keep_latest(rep(fresh_models, step))
    return out
