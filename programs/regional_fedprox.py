"""FedProx inside self-organising regions: each device starts the round from its region's model, trains with a
proximal term (mu / 2) ||w - w_region||^2 that keeps it near that model (a custom loss of the batched trainer, the
region's model passed as the per-device extras it reads), and the region's leader averages the trained models into
the next regional model (FedAvg within the region)."""
from typing import Annotated, Literal

from annotated_types import Ge, Gt

from fieldlearn import evolving, program
from fieldlearn.learning import current_samples, fresh_models, is_mobile, proximal_loss, sample_counts, train_locally
from fieldlearn.lib import mobile_regions


@program(needs="learning")
def regional_fedprox(radius: Annotated[float, Gt(0)] = 20.0, mu: Annotated[float, Ge(0)] = 0.01,
                     weighting: Literal["samples", "uniform"] = "samples", stable_leaders: bool = True,
                     min_link: Annotated[float, Gt(0)] | None = None, seed: int = 0) -> dict:
    """One round; outputs `models` (the regional model each device holds, evaluated as every device's model),
    `local` (each device's model after its proximal training, evaluated under that name) and the `leader`."""
    region = mobile_regions(radius, is_mobile(), stable_leaders, min_link, seed)
    now = current_samples()
    weight = sample_counts(now) * 1.0 if weighting == "samples" else None
    loss = proximal_loss(mu)  # cross-entropy + (mu / 2) ||w - anchor||^2, the anchor in extras by parameter name

    def step(theta):
        trained = train_locally(theta, now, loss=loss, extras=theta.params)
        return region.broadcast(region.collect_mean(trained, weight=weight)), trained

    models, trained = evolving(fresh_models, step)
    return {"models": models, "local": trained, "leader": region.leader_id}
