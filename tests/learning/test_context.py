"""fieldlearn.learning.context: data over regions, device parts, recorded models and their evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fieldlearn.learning.context import ConfigError, LearningContext


def test_devices_take_the_slot_of_their_rank_in_their_starting_area():
    config = {"dataset": "digits", "model": {"hidden": [8]}}
    ctx = LearningContext(config, n_devices=7, region_names=["a", "b"], initial_region=[1, 0, 1, 0, 1, -1, 0])
    assert ctx.part_of_device.tolist() == [0, 0, 1, 1, 2, 5, 2]
    assert ctx.data.parts_per_region().tolist() == [3, 3]
    # a device in area b uses its slot of area b's training part; outside every area it has no data
    sets = ctx.samples(np.array([0, 5]), np.array([1, -1]), 0)
    b0 = ctx.data.parts.row(ctx.data.part_offsets[1] + 0)
    assert sets.row(0).tolist() == sorted(b0.tolist()) and sets.row(1).size == 0
    with pytest.raises(ConfigError, match="regions"):
        LearningContext(config, n_devices=2, region_names=[], initial_region=[-1, -1])


def test_evaluate_scores_movers_everywhere_and_static_devices_on_their_own_area():
    config = {"dataset": "digits", "model": {"hidden": [8]}, "eval_samples": 20}
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


def test_eval_precision_bfloat16_scores_in_bfloat16(monkeypatch):
    import fieldlearn.learning.context as context_module
    import fieldlearn.learning.models as models_module

    asked, fast = [], []
    real = context_module.accuracy_matrix
    monkeypatch.setattr(context_module, "accuracy_matrix", lambda *a, **k: asked.append(k["dtype"]) or real(*a, **k))
    logits = models_module.shared_input_logits
    monkeypatch.setattr(models_module, "shared_input_logits", lambda *a: fast.append(1) or logits(*a))
    scored = {}
    for precision in ("float32", "bfloat16"):
        config = {"dataset": "digits", "model": {"hidden": [8]}, "eval_samples": 30, "eval_precision": precision}
        ctx = LearningContext(config, n_devices=3, region_names=["a", "b"], initial_region=[0, 1, 1],
                              mobile=[True, False, False])
        models = ctx.initial_models(np.arange(3))
        ctx.record_rows(np.arange(3), models)
        scored[precision] = ctx.evaluate(region=np.array([0, 1, 1])), ctx.evaluate()
        expected = real(models, ctx.dataset, ctx.eval_sets, dtype=ctx.eval_dtype)
        np.testing.assert_array_equal(scored[precision][1], expected)
    assert asked == [None, None, torch.bfloat16, torch.bfloat16]
    # the configured MLP is scored in bfloat16 by the plain-MLP path: one call per area in each of the three bfloat16
    # scorings (every device fits one chunk)
    assert len(fast) == 2 + 2 + 2
    for low, full in zip(scored["bfloat16"], scored["float32"]):
        np.testing.assert_array_equal(np.isnan(low), np.isnan(full))
        assert np.nanmax(np.abs(low - full)) <= 2 / 30


def test_take_models_records_model_outputs_and_forget_drops_them_with_the_memories():
    ctx = LearningContext({"model": {"hidden": [4]}}, n_devices=3, region_names=["a"], initial_region=[0, 0, 0])
    models = ctx.initial_models(np.arange(3))
    rest = ctx.take_models(np.array([0, 2]), {"models": models[[0, 2]], "regional": models[[0, 2]], "leader": 7})
    assert rest == {"leader": 7} and ctx.has_model["models"].tolist() == [True, False, True]
    assert set(ctx.recorded) == {"models", "regional"}
    store = ctx.replay_store("unbounded")
    ctx.forget(np.array([2]))
    assert ctx.has_model["models"].tolist() == [True, False, False] and store.sizes().tolist() == [0, 0, 0]



def test_a_record_of_every_device_keeps_the_models_without_a_copy_and_a_partial_one_leaves_them_untouched():
    ctx = LearningContext({"model": {"hidden": [4]}}, n_devices=3, region_names=["a"], initial_region=[0, 0, 0])
    first = ctx.initial_models(np.arange(3))
    before = first.clone()
    ctx.record_rows(np.arange(3), first)
    assert ctx.latest.params["0.weight"].data_ptr() == first.params["0.weight"].data_ptr()
    later = ctx.initial_models(np.arange(3)) * 2.0
    ctx.record_rows(np.array([1]), later[[1]])
    for k, v in first.params.items():  # the round's tensors were copied before the write, not written into
        assert torch.equal(v, before.params[k])
        assert torch.equal(ctx.latest.params[k][[0, 2]], before.params[k][[0, 2]])
        assert torch.equal(ctx.latest.params[k][1], later.params[k][1])
    assert ctx.has_model["models"].tolist() == [True, True, True]

def test_the_public_code_data_protocol_13_parts_a_shared_spare_and_fixed_subsets():
    config = {"model": {"hidden": [4]}, "parts_per_region": 13, "mover_part": "spare", "part_fraction": 0.05}
    ctx = LearningContext(config, n_devices=6, region_names=["a", "b"], initial_region=[0, 0, 0, 1, 1, 1],
                          mobile=[False, False, True, False, False, True])
    assert ctx.data.parts_per_region().tolist() == [13, 13]
    assert ctx.part_of_device.tolist() == [0, 1, -1, 0, 1, -1]  # static devices by rank, movers the spare part
    full = LearningContext({"model": {"hidden": [4]}, "parts_per_region": 13}, n_devices=6, region_names=["a", "b"],
                           initial_region=[0, 0, 0, 1, 1, 1])
    for part in range(13):
        kept, whole = ctx.data.parts.row(part), full.data.parts.row(part)
        assert set(kept) <= set(whole) and len(kept) == max(1, int(np.ceil(0.05 * len(whole))))
    # both movers, wherever they are, train on the last part of their area, the same fixed subset every round
    here = np.array([0, 0, 1, 1, 1, 0])
    first, later = ctx.samples(np.arange(6), here, 0), ctx.samples(np.arange(6), here, 7)
    assert first.equals(later)
    assert first.row(2).tolist() == sorted(ctx.data.parts.row(13 + 12).tolist())
    assert first.row(5).tolist() == sorted(ctx.data.parts.row(12).tolist())


def test_history_arrays_are_the_stacked_history_as_it_grows():
    ctx = LearningContext({"dataset": "digits", "model": {"hidden": [4]}, "eval_samples": 5}, n_devices=3,
                          region_names=["a", "b"], initial_region=[0, 1, 1], mobile=[True, False, True])
    acc, where, mobile = ctx.history_arrays()
    assert acc.shape == (0, 3, 2) and where.shape == (0, 3) and mobile.shape == (0, 3)
    models = ctx.initial_models(np.arange(3))
    ctx.record_rows(np.arange(3), models)
    before = None
    for r in range(1, 20):  # past the first room of 8 rows, read after some evaluations and not after others
        ctx.evaluation(r, float(r), np.array([r % 2, 1, (r // 3) % 2]))
        if r % 3 and r != 19:
            continue
        acc, where, mobile = ctx.history_arrays()
        h = ctx.history
        np.testing.assert_array_equal(acc, np.stack([ev.accuracy for ev in h]))
        np.testing.assert_array_equal(where, np.stack([ev.region for ev in h]))
        np.testing.assert_array_equal(mobile, np.stack([ev.mobile for ev in h]))
        if before is not None:  # rows handed out earlier keep their values
            np.testing.assert_array_equal(before, where[: len(before)])
        before = where.copy()
    ctx.history = ctx.history[:4]  # a history that is not the one the rows came from is stacked again
    np.testing.assert_array_equal(ctx.history_arrays()[1], np.stack([ev.region for ev in ctx.history]))
