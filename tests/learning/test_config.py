"""fieldlearn.learning.config: the `learning:` block as a pydantic model; every bad value names its key."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from fieldlearn.learning.config import LearningConfig
from fieldlearn.learning.context import ConfigError, parse_config


@pytest.mark.parametrize("raw, key", [
    ({"datset": "digits"}, "datset"),
    ({"partition": "hard-ish"}, "partition"),
    ({"partition": "dirichlet(0)"}, "partition.alpha"),
    ({"partition": {"kind": "dirichlet", "alpah": 1}}, "partition.alpah"),
    ({"model": {"hidden": [32, -1]}}, "model.hidden.1"),
    ({"model": {"kind": "cnn"}}, "model.kind"),
    ({"optimiser": {"kind": "rmsprop"}}, "optimiser.kind"),
    ({"optimiser": {"lr": 0}}, "optimiser.lr"),
    ({"epochs": 1.5}, "epochs"),
    ({"batch_size": True}, "batch_size"),
    ({"samples_per_round": 0}, "samples_per_round"),
    ({"train_fraction": 1.5}, "train_fraction"),
    ({"init": "random"}, "init"),
    ({"eval_precision": "float16"}, "eval_precision"),
])
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key, err.value


def test_config_defaults_and_partition_forms():
    c = LearningConfig.model_validate({})
    assert (c.dataset, c.partition.kind, c.model.hidden, c.epochs, c.batch_size, c.optimiser.lr,
            c.optimiser.weight_decay) == ("digits", "hard", (128,), 2, 32, 1e-3, 1e-4)
    assert LearningConfig.model_validate({"partition": "dirichlet(0.3)"}).partition.alpha == 0.3
    assert LearningConfig.model_validate({"partition": {"kind": "dirichlet", "alpha": 2}}).partition.kind == "dirichlet"
    assert LearningConfig.model_validate({"samples_per_round": None, "model": {"hidden": 16}}).model.hidden == (16,)
    assert LearningConfig.model_validate(None) == LearningConfig()
    with pytest.raises(ValidationError, match="must be a mapping"):
        LearningConfig.model_validate([1])


def test_the_dumped_configuration_validates_to_itself():
    c = LearningConfig.model_validate({"partition": "dirichlet(0.5)", "model": {"hidden": [8, 4]}, "seed": 3})
    assert LearningConfig.model_validate(c.model_dump(mode="json")) == c
