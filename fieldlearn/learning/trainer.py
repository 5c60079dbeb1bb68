"""How devices train: the dataset they index into, the optimiser settings, and optionally a custom loss and a
parameter mask. Calling a Trainer trains a ModelField of raw tensors on padded sample rows (one batched call)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from fieldlearn.calculus.keyed import keyed_seed

from .data import Dataset, DeviceData
from .models import ModelField
from .samples import unpad
from .train import Loss, train

__all__ = ["Trainer"]

_TRAIN_SALT = 11


@dataclass(frozen=True)
class Trainer:
    """Training settings (a fresh optimiser per call, as the reference methods do): epochs over each device's
    samples, batch size, optimiser, and optionally `loss` (`train.Loss`: `loss(logits, labels, params, extras) ->
    per-sample losses`, written for one device as in a plain torch loop; a per-device term such as a proximal
    penalty may be added as a scalar, it counts once per step) and `trainable` (the names of the parameters that
    train, or a predicate on names; the others stay frozen)."""

    dataset: Dataset
    epochs: int = 2
    batch_size: int = 32
    optimiser: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.0
    seed: int = 0
    loss: Loss | None = None
    trainable: Any = None

    def replace(self, **changes: Any) -> "Trainer":
        """A copy with some settings changed (e.g. `epochs=1, batch_size=16` for a fine-tune pass)."""
        return dataclasses.replace(self, **changes)

    def __call__(self, models: ModelField, samples: Any, salt: tuple = (), extras: dict | None = None) -> ModelField:
        """Train every row of `models` on its row of padded `samples`; rows without samples are unchanged."""
        sets = unpad(samples)
        if sets.nnz == 0:
            return models
        generator = torch.Generator().manual_seed(keyed_seed(0, self.seed, _TRAIN_SALT, *salt))
        result = train(models, DeviceData(self.dataset, sets), epochs=self.epochs, batch_size=self.batch_size,
                       optimiser=self.optimiser, lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum,
                       generator=generator, loss=self.loss, extras=extras, trainable=self.trainable)
        return result.models
