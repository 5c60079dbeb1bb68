"""PSFL-style clustered learning: devices group by how alike their models are, not by where they are. Every round
each device trains locally, measures how far its neighbours' models are from its own (parameter distance, or the
loss of each neighbour's model on its own samples), and leaders are elected over that dissimilarity: a region
gathers devices within `threshold` of its leader in model space. The region's average model is blended in every
`merge_every` rounds, so devices whose data agree learn together and the others stay apart."""
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Interval

from fieldlearn import evolving, mux, program
from fieldlearn.learning import (
    blend,
    current_samples,
    fresh_models,
    neighbour_loss,
    parameter_distance,
    round_number,
    sample_counts,
    train_locally,
)
from fieldlearn.lib import regions


@program(needs="learning")
def psfl(threshold: Annotated[float, Gt(0)] = 1.0, dissimilarity: Literal["parameters", "loss"] = "parameters",
         mix: Annotated[float, Interval(ge=0, le=1)] = 0.5, merge_every: Annotated[int, Ge(1)] = 1,
         seed: int = 0) -> dict:
    """One round; outputs `models`, the `regional` model of each device's cluster and the cluster `leader`."""
    merging = (round_number() % merge_every) == merge_every - 1
    now = current_samples()
    weight = sample_counts(now) * 1.0

    def step(theta):
        trained = train_locally(theta, now)
        distance = parameter_distance(trained) if dissimilarity == "parameters" else neighbour_loss(trained, now)
        cluster = regions(threshold, metric=distance, seed=seed)
        regional = cluster.broadcast(cluster.collect_mean(trained, weight=weight))
        return blend(trained, regional, mux(merging, mix, 0.0)), (regional, cluster.leader_id)

    models, (regional, leader) = evolving(fresh_models, step)
    return {"models": models, "regional": regional, "leader": leader}
