"""FBFL: field-based federated learning. Devices form self-organising coordination regions (leader election with a
radius, potential towards the leader); every round each device trains locally, the region collects the models to
its leader, which averages them (uniformly, or weighted by sample counts), and the average flows back; every
`merge_every` rounds every device replaces its model by the `mix` of its own and its region's."""
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Interval

from fieldlearn import evolving, mux, program
from fieldlearn.learning import (
    blend,
    current_samples,
    fresh_models,
    is_mobile,
    round_number,
    sample_counts,
    train_locally,
)
from fieldlearn.lib import mobile_regions


@program(needs="learning")
def fbfl(radius: Annotated[float, Gt(0)] = 20.0, merge_every: Annotated[int, Ge(1)] = 5,
         mix: Annotated[float, Interval(ge=0, le=1)] = 0.5, weighting: Literal["uniform", "samples"] = "uniform",
         stable_leaders: bool = True, min_link: Annotated[float, Gt(0)] | None = None, seed: int = 0) -> dict:
    """One FBFL round; outputs `models`, the `regional` model every device holds (metrics `regional_accuracy`,
    `area_accuracy`), `leader` and `merged`."""
    merging = (round_number() % merge_every) == merge_every - 1
    region = mobile_regions(radius, is_mobile(), stable_leaders, min_link, seed)
    now = current_samples()
    weight = sample_counts(now) * 1.0 if weighting == "samples" else None

    def step(theta):
        trained = train_locally(theta, now)
        regional = region.broadcast(region.collect_mean(trained, weight=weight))
        return blend(trained, regional, mux(merging, mix, 0.0)), regional

    models, regional = evolving(fresh_models, step)
    return {"models": models, "regional": regional, "leader": region.leader_id, "merged": merging}
