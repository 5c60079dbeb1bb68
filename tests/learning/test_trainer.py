"""fieldlearn.learning.trainer: a Trainer trains padded sample rows with its settings, its loss and its mask."""
from __future__ import annotations

import numpy as np
import torch

from fieldlearn.learning.data import IndexSets, load_digits
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.samples import pad_sets
from fieldlearn.learning.train import proximal_loss
from fieldlearn.learning.trainer import Trainer


def models(n=3):
    return ModelField.from_factory(lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(),
                                                               torch.nn.Linear(8, 10)), n, seed=0)


def test_rows_without_samples_are_unchanged_and_the_salt_decides_the_shuffle():
    trainer = Trainer(load_digits(), epochs=1, batch_size=4, seed=3)
    start = models()
    rows = pad_sets(IndexSets.from_lists([np.arange(10), np.zeros(0, dtype=np.int64), np.arange(20, 28)]))
    a, b, c = trainer(start, rows, salt=(0,)), trainer(start, rows, salt=(0,)), trainer(start, rows, salt=(1,))
    w = "0.weight"
    assert torch.equal(a.params[w], b.params[w]) and not torch.equal(a.params[w], c.params[w])
    assert torch.equal(a.params[w][1], start.params[w][1]) and not torch.equal(a.params[w][0], start.params[w][0])
    assert trainer(start, pad_sets(IndexSets.empty(3))) is start


def test_a_frozen_body_and_a_proximal_loss_reach_train():
    data = load_digits()
    start = models()
    rows = pad_sets(IndexSets.from_lists([np.arange(12), np.arange(12, 24), np.arange(24, 36)]))
    head_only = Trainer(data, epochs=1, batch_size=4, trainable=["2.weight", "2.bias"])(start, rows)
    assert torch.equal(head_only.params["0.weight"], start.params["0.weight"])
    assert not torch.equal(head_only.params["2.weight"], start.params["2.weight"])
    far = start.params
    free = Trainer(data, epochs=3, batch_size=4, lr=0.05)(start, rows)
    held = Trainer(data, epochs=3, batch_size=4, lr=0.05, loss=proximal_loss(100.0))(start, rows, extras=far)
    moved = lambda m: float(sum((m.params[k] - far[k]).norm() for k in far))  # noqa: E731
    assert moved(held) < 0.5 * moved(free)
    assert Trainer(data).replace(epochs=1, batch_size=16).epochs == 1
