"""Per-region accuracy of stacked models, CAcc, own-region accuracy and forgetting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fieldlearn.learning.data import Dataset, DeviceData, IndexSets
from fieldlearn.learning.metrics import accuracy_matrix, cacc, forgetting, mean_forgetting, own_region_accuracy
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.train import train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_accuracy_matrix_equals_a_per_model_loop():
    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.randn(90, 5, generator=g), torch.randint(0, 3, (90,), generator=g), 3)
    models = ModelField.from_factory(lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)), 7, seed=1)
    regions = IndexSets.from_lists([np.arange(0, 40), np.arange(40, 45), [], np.arange(45, 90)])
    acc = accuracy_matrix(models, data, regions, sample_chunk=16, chunk_size=3)
    assert acc.shape == (7, 4)
    for d in range(7):
        m = models.module(d).eval()
        for r in (0, 1, 3):
            idx = regions.row(r)
            expected = (m(data.inputs[idx]).argmax(1) == data.labels[idx]).double().mean().item()
            assert acc[d, r] == pytest.approx(expected)
    assert np.isnan(acc[:, 2]).all()
    some = accuracy_matrix(models, data, regions, devices=[5, 1])
    np.testing.assert_array_equal(some, acc[[5, 1]])


def test_accuracy_of_a_constant_classifier_is_its_class_share():
    class Always(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([0.0, 5.0]))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 2)

    labels = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1])
    data = Dataset(torch.zeros(8, 1), labels, 2)
    acc = accuracy_matrix(ModelField.replicate(Always(), 2), data, IndexSets.from_lists([[0, 1, 2, 3], [4, 5, 6]]))
    np.testing.assert_allclose(acc, [[0.75, 0.0], [0.75, 0.0]])


def test_cacc_own_region_and_forgetting_on_hand_made_numbers():
    acc = np.array([
        [0.9, 0.0, 0.1, 0.0],   # device 0: sum 1.0
        [0.5, 0.5, 0.5, 0.5],   # device 1: sum 2.0
        [0.0, 0.0, 0.8, 0.4],   # device 2: sum 1.2
    ])
    assert cacc(acc) == pytest.approx((1.0 + 2.0 + 1.2) / 3)
    assert cacc(acc, devices=[0, 2]) == pytest.approx(1.1)
    assert np.isnan(cacc(acc, devices=[]))
    regions = np.array([0, 3, 2])
    assert own_region_accuracy(acc, regions) == pytest.approx((0.9 + 0.5 + 0.8) / 3)
    assert own_region_accuracy(acc, regions, devices=[1]) == pytest.approx(0.5)
    history = np.array([
        [[0.2, 0.0], [0.1, 0.1]],
        [[0.9, 0.1], [0.3, 0.2]],
        [[0.4, 0.6], [0.3, 0.5]],
    ])  # [time, devices, regions]
    # best earlier minus last; negative where a region improved at the end
    np.testing.assert_allclose(forgetting(history), [[0.5, -0.5], [0.0, -0.3]])
    np.testing.assert_allclose(forgetting(history[:, 0]), [0.5, -0.5])
    assert mean_forgetting(history) == pytest.approx(-0.075)
    assert mean_forgetting(history, devices=[1]) == pytest.approx(-0.15)
    assert (forgetting(history[:1]) == 0).all()


def test_needed_pairs_equal_a_per_device_loop_and_leave_the_rest_nan():
    # the CAcc setting in small: movers scored on every region, static devices on their own only
    g = torch.Generator().manual_seed(1)
    data = Dataset(torch.randn(120, 5, generator=g), torch.randint(0, 3, (120,), generator=g), 3)
    models = ModelField.from_factory(lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)), 11, seed=2)
    regions = IndexSets.from_lists([np.arange(0, 30), np.arange(30, 75), [], np.arange(75, 120)])
    devices = np.array([9, 0, 1, 2, 3, 7, 8, 10])  # some consecutive runs, some not
    region_of = np.array([0, 1, 3, 0, 1, 3, 0, 1])
    mobile = np.array([True, False, False, True, False, False, True, False])
    needed = mobile[:, None] | (region_of[:, None] == np.arange(4))
    acc = accuracy_matrix(models, data, regions, devices=devices, needed=needed, sample_chunk=20, chunk_size=3)
    for chunk in (1, 4, 8):  # runs of consecutive devices as slices, short ones gathered, or all gathered together
        again = accuracy_matrix(models, data, regions, devices=devices, needed=needed, sample_chunk=20,
                                chunk_size=chunk)
        np.testing.assert_array_equal(again, acc)
    for j, d in enumerate(devices):
        m = models.module(d).eval()
        for r in range(4):
            idx = regions.row(r)
            if not needed[j, r] or idx.size == 0:
                assert np.isnan(acc[j, r])
                continue
            hits = int((m(data.inputs[idx]).argmax(1) == data.labels[idx]).sum())
            assert acc[j, r] == hits / idx.size  # exact: the same count of correct answers
    full = accuracy_matrix(models, data, regions, devices=devices)
    np.testing.assert_array_equal(acc[needed], full[needed])
    with pytest.raises(ValueError, match=r"needed must be a bool array of shape \(8, 4\)"):
        accuracy_matrix(models, data, regions, devices=devices, needed=needed[:, :3])
    with pytest.raises(IndexError, match="devices out of range"):
        accuracy_matrix(models, data, regions, devices=[11])


def test_a_bfloat16_evaluation_rounds_the_logits_and_float32_changes_nothing():
    # two logits 1 and 1 + 2^-10 for one input: float32 tells them apart (the label, class 1, wins), bfloat16
    # (8 bits of mantissa) rounds both to 1 and the tie goes to class 0
    layer = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0], [1.0 + 2.0**-10]]))
    models = ModelField.replicate(layer, 3)
    data = Dataset(torch.ones(4, 1), torch.ones(4, dtype=torch.long), 2)
    regions = IndexSets.from_lists([[0, 1], [2, 3]])
    np.testing.assert_array_equal(accuracy_matrix(models, data, regions), np.ones((3, 2)))
    np.testing.assert_array_equal(accuracy_matrix(models, data, regions, dtype=torch.bfloat16), np.zeros((3, 2)))
    assert models.dtype == torch.float32  # the field itself is not cast
    with pytest.raises(TypeError, match="dtype must be a floating type"):
        accuracy_matrix(models, data, regions, dtype=torch.int32)


def test_a_bfloat16_evaluation_of_trained_models_agrees_with_float32_but_for_near_ties():
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 20, generator=g) * 2
    labels = torch.randint(0, 4, (400,), generator=g)
    data = Dataset(centres[labels] + torch.randn(400, 20, generator=g), labels, 4)
    models = ModelField.from_factory(lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4)), 6, seed=4)
    sets = IndexSets.from_lists([np.arange(d * 50, d * 50 + 150) % 400 for d in range(6)])
    models = train(models, DeviceData(data, sets), epochs=3, batch_size=16,
                   generator=torch.Generator().manual_seed(5)).models
    regions = IndexSets.from_lists([np.arange(0, 200), np.arange(200, 400)])
    needed = np.array([[True, True], [True, False], [False, True], [True, True], [True, False], [True, True]])
    full = accuracy_matrix(models, data, regions, needed=needed)
    low = accuracy_matrix(models, data, regions, needed=needed, dtype=torch.bfloat16)
    np.testing.assert_array_equal(np.isnan(low), ~needed)
    assert np.nanmax(np.abs(low - full)) <= 2 / 200  # at most two samples of 200 change their answer
    np.testing.assert_array_equal(accuracy_matrix(models, data, regions, needed=needed, dtype=torch.float32), full)


def test_a_bfloat16_evaluation_casts_each_scored_model_once_whatever_the_regions_it_is_scored_on(monkeypatch):
    cast_rows = []
    real_to = ModelField.to
    monkeypatch.setattr(ModelField, "to", lambda self, *a, **k: cast_rows.append(len(self)) or real_to(self, *a, **k))
    g = torch.Generator().manual_seed(6)
    data = Dataset(torch.randn(90, 5, generator=g), torch.randint(0, 3, (90,), generator=g), 3)
    models = ModelField.from_factory(lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)), 10, seed=7)
    regions = IndexSets.from_lists([np.arange(0, 30), np.arange(30, 60), np.arange(60, 90)])
    mobile = np.array([True, False, False, True, True, False, False, False, True, False])
    needed = mobile[:, None] | (np.arange(10)[:, None] % 3 == np.arange(3))
    needed[7] = False  # a device scored nowhere is not cast either
    low = accuracy_matrix(models, data, regions, needed=needed, dtype=torch.bfloat16, chunk_size=4)
    assert sorted(cast_rows) == [2, 3, 4]  # the 9 devices scored somewhere, once each: 0-6 in pieces of 4 and 3, 8-9
    cast_rows.clear()
    per_region = np.full((10, 3), np.nan)
    for r in range(3):  # one region at a time: the movers are cast once per region
        only = needed & (np.arange(3) == r)
        per_region[:, r] = accuracy_matrix(models, data, regions, needed=only, dtype=torch.bfloat16, chunk_size=4)[:, r]
    np.testing.assert_array_equal(low, per_region)
    assert sum(cast_rows) == int(needed.sum())
