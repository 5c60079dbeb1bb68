"""The learning context: configuration checks that name their key, device parts, evaluation and its summaries."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fieldlearn.learning.context import ConfigError, Evaluation, LearningConfig, LearningContext


@pytest.mark.parametrize("raw, key", [
    ({"datset": "digits"}, "datset"),
    ({"partition": "hard-ish"}, "partition"),
    ({"partition": "dirichlet(0)"}, "partition"),
    ({"partition": {"kind": "dirichlet", "alpah": 1}}, "partition.alpah"),
    ({"model": {"hidden": [32, -1]}}, "model.hidden"),
    ({"model": {"kind": "cnn"}}, "model.kind"),
    ({"optimiser": {"kind": "rmsprop"}}, "optimiser.kind"),
    ({"optimiser": {"lr": 0}}, "optimiser.lr"),
    ({"epochs": 1.5}, "epochs"),
    ({"batch_size": True}, "batch_size"),
    ({"samples_per_round": 0}, "samples_per_round"),
    ({"train_fraction": 1.5}, "train_fraction"),
    ({"init": "random"}, "init"),
])
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        LearningConfig.parse(raw)
    assert err.value.key == key


def test_config_defaults_and_partition_forms():
    c = LearningConfig.parse({})
    assert (c.dataset, c.partition, c.hidden, c.epochs, c.batch_size, c.lr, c.weight_decay) == (
        "digits", "hard", (128,), 2, 32, 1e-3, 1e-4)
    assert LearningConfig.parse({"partition": "dirichlet(0.3)"}).alpha == 0.3
    assert LearningConfig.parse({"partition": {"kind": "dirichlet", "alpha": 2}}).partition == "dirichlet"
    assert LearningConfig.parse({"samples_per_round": None, "model": {"hidden": 16}}).hidden == (16,)


def test_devices_take_the_slot_of_their_rank_in_their_starting_area():
    config = LearningConfig(dataset="digits", hidden=(8,))
    ctx = LearningContext(config, n_devices=7, region_names=["a", "b"], initial_region=[1, 0, 1, 0, 1, -1, 0])
    assert ctx.part_of_device.tolist() == [0, 0, 1, 1, 2, 5, 2]
    assert ctx.data.parts_per_region().tolist() == [3, 3]
    # a device in area b uses its slot of area b's training part; outside every area it has no data
    sets = ctx.samples(np.array([0, 5]), np.array([1, -1]), 0)
    b0 = ctx.data.parts.row(ctx.data.part_offsets[1] + 0)
    assert sets.row(0).tolist() == sorted(b0.tolist()) and sets.row(1).size == 0
    with pytest.raises(ConfigError, match="regions"):
        LearningContext(config, n_devices=2, region_names=[], initial_region=[-1, -1])


def test_evaluation_summaries():
    acc = np.array([[0.9, 0.1, np.nan], [0.2, 0.8, 0.5], [np.nan, 0.7, np.nan], [np.nan] * 3])
    ev = Evaluation(10, 9.0, acc, np.array([0, 1, 1, 0]), np.array([True, True, False, False]))
    # mover 0 has a NaN area (no evaluation there): only complete rows count towards CAcc
    assert ev.cacc() == pytest.approx(1.5)
    assert ev.own() == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert ev.own(np.array([2])) == pytest.approx(0.7)
    per = ev.per_region()
    assert per[0] == pytest.approx(0.9) and per[1] == pytest.approx(0.75) and math.isnan(per[2])


def test_evaluate_scores_movers_everywhere_and_static_devices_on_their_own_area():
    config = LearningConfig(dataset="digits", hidden=(8,), eval_samples=20)
    ctx = LearningContext(config, n_devices=3, region_names=["a", "b"], initial_region=[0, 1, 1],
                          mobile=[True, False, False])
    models = ctx.initial_models(np.arange(3))
    ctx.record_rows(np.arange(3), models)
    acc = ctx.evaluate(region=np.array([0, 1, 1]))
    assert not np.isnan(acc[0]).any() and np.isnan(acc[1:, 0]).all() and not np.isnan(acc[1:, 1]).any()
    assert ctx.eval_sets.lengths().tolist() == [20, 20]
    full = ctx.evaluate()
    assert np.allclose(full[:, 1], acc[:, 1]) and np.allclose(full[0], acc[0])
    assert torch.equal(ctx.latest.params["0.weight"][0], models.params["0.weight"][0])
