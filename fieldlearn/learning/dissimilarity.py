"""How different two neighbours' models are, as neighbour fields usable as the `metric` of `regions` /
`mobile_regions` (elect leaders among devices whose models are alike, as PSFL-style clustering does).

A metric is read by the receiving device: the value on link i <- j is i's view of j. `parameter_distance` is
symmetric. `neighbour_loss` (j's model on i's samples) is not: the distance gradient of an election then runs over
directed links (i's distance grows by i's view of the link). It still self-stabilises (Bellman-Ford on a directed
graph), but i may join a leader whose members would not count i as close, and regions are less compact than
under a symmetric metric.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fieldlearn.calculus import Field, NbrField, aggregate, local, nbr

from .context import learning_context
from .models import ModelField

__all__ = ["parameter_distance", "neighbour_loss"]


@aggregate
def parameter_distance(models: ModelField) -> NbrField:
    """The Euclidean distance between a device's parameters and each aligned neighbour's (0 to itself)."""
    def distance(mine: dict, theirs: dict, receivers: Any) -> torch.Tensor:
        total = None
        for k, a in mine.items():
            d = (a - theirs[k]).reshape(a.shape[0], -1)
            part = (d * d).sum(1, dtype=torch.float64)
            total = part if total is None else total + part
        return total.sqrt()

    return nbr(models).map_links(distance)


@aggregate
def neighbour_loss(models: ModelField, samples: Field) -> NbrField:
    """The mean cross-entropy of each aligned neighbour's model on this device's `samples` (a sample field, e.g. a
    held-out part of its data), per link; the self entry is the device's own model on its own samples. A device
    without samples sees 0 on every link."""
    ctx = learning_context()
    spec = models.spec
    if spec.buffer_names:
        raise NotImplementedError("neighbour_loss: models with buffers (e.g. normalisation statistics) are not "
                                  "supported yet")
    rows = local(lambda s: s.reshape(s.shape[0], -1))(samples).values

    def loss(mine: dict, theirs: dict, receivers: Any) -> torch.Tensor:
        return mean_cross_entropy(ModelField.from_spec(spec, theirs), ctx.dataset, rows[receivers])

    return nbr(models).map_links(loss)


def mean_cross_entropy(models: ModelField, dataset: Any, sample_rows: torch.Tensor) -> torch.Tensor:
    """Each row's model on its row of padded sample indices (-1: none): the mean cross-entropy (0 without samples)."""
    valid = sample_rows >= 0
    if sample_rows.shape[1] == 0:
        return torch.zeros(sample_rows.shape[0], dtype=torch.float64, device=sample_rows.device)
    safe = sample_rows.clamp(min=0)
    x, y = dataset.inputs[safe], dataset.labels[safe]
    with torch.no_grad():
        logits = models.forward(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(valid)
    count = valid.sum(1)
    total = (ce * valid).sum(1, dtype=torch.float64)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
