"""FedProx inside self-organising regions: each device starts the round from its region's model, trains with a
proximal term (mu / 2) ||w - w_region||^2 that keeps it near that model (a custom loss of the batched trainer),
and the region's leader averages the trained models into the next regional model (FedAvg within the region)."""
from typing import Annotated, Literal

import torch.nn.functional as F
from annotated_types import Ge, Gt

from fieldlearn import evolving, program
from fieldlearn.learning import current_samples, fresh_models, is_mobile, sample_counts, train_locally
from fieldlearn.lib import mobile_regions


def proximal(mu: float):
    """The FedProx loss of one device: cross-entropy plus (mu / 2) times the squared distance of its parameters to
    its `anchor` (per-device extras `anchor.<name>`); the penalty is a per-device scalar, so it counts once per step."""
    def loss(logits, labels, params, extras):
        penalty = sum(((p - extras[f"anchor.{k}"]) ** 2).sum() for k, p in params.items())
        return F.cross_entropy(logits, labels, reduction="none") + 0.5 * mu * penalty
    return loss


@program(needs="learning")
def regional_fedprox(radius: Annotated[float, Gt(0)] = 20.0, mu: Annotated[float, Ge(0)] = 0.01,
                     weighting: Literal["samples", "uniform"] = "samples", stable_leaders: bool = True,
                     min_link: Annotated[float, Gt(0)] | None = None, seed: int = 0) -> dict:
    """One round; outputs `models` (the regional model each device holds), `trained` is evaluated as `local`, and
    the `leader`."""
    region = mobile_regions(radius, is_mobile(), stable_leaders, min_link, seed)
    now = current_samples()
    weight = sample_counts(now) * 1.0 if weighting == "samples" else None
    loss = proximal(mu)

    def step(theta):
        anchor = {f"anchor.{k}": v for k, v in theta.params.items()}
        trained = train_locally(theta, now, loss=loss, extras=anchor)
        return region.broadcast(region.collect_mean(trained, weight=weight)), trained

    models, trained = evolving(fresh_models, step)
    return {"models": models, "local": trained, "leader": region.leader}
