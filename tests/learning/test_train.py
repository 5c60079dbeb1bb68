"""Batched training equals one torch.optim loop per device, and a device only ever learns from its own samples."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from fieldlearn.learning.data import Dataset, DeviceData, IndexSets
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.train import (OptimiserState, _chunk_plan, batch_schedule, cross_entropy, proximal_loss,
                                      train)

N_FEATURES, N_CLASSES = 6, 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def factory() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, 5), nn.Tanh(), nn.Linear(5, N_CLASSES)).double()


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, N_FEATURES, generator=g, dtype=torch.float64)
    y = torch.randint(0, N_CLASSES, (120,), generator=g)
    return Dataset(x, y, N_CLASSES, "toy")


def uneven_sets() -> IndexSets:
    # 10, 3, 0, 41, 1 and 7 samples (some shared between devices): several batch counts, a zero-sample device
    return IndexSets.from_lists([np.arange(0, 10), [50, 51, 52], [], np.arange(60, 101), [5], np.arange(3, 10)])


class FixedOrder(Sampler):
    """Replays a given order: a DataLoader(shuffle=True) whose shuffle we know."""

    def __init__(self, order: np.ndarray):
        self.order = [int(i) for i in order]

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def seeded_orders(sets: IndexSets, seed: int):
    """An `order` hook: positions into sets.indices, each device's segment permuted, recorded per epoch."""
    made: dict[int, np.ndarray] = {}

    def order(epoch: int) -> np.ndarray:
        if epoch not in made:
            rng = np.random.default_rng([seed, epoch])
            out = np.arange(sets.nnz)
            for i in range(len(sets)):
                a, b = sets.indptr[i], sets.indptr[i + 1]
                out[a:b] = a + rng.permutation(b - a)
            made[epoch] = out
        return made[epoch]

    return order


def reference(module: nn.Module, opt: torch.optim.Optimizer, data: Dataset, sets: IndexSets, device: int, order,
              *, epochs: int | None = None, steps: int | None = None, batch: int) -> tuple[float, int]:
    """A plain PyTorch loop over DataLoader(drop_last=False) batches in the given order; returns (loss sum, count)."""
    own = sets.row(device)
    if own.size == 0:
        return 0.0, 0
    local = TensorDataset(data.inputs[own], data.labels[own])
    done, loss_sum, seen, epoch = 0, 0.0, 0, 0
    limit = steps if steps is not None else epochs * -(-own.size // batch)
    while done < limit:
        a, b = sets.indptr[device], sets.indptr[device + 1]
        perm = order(epoch)[a:b] - a
        for x, y in DataLoader(local, batch_size=batch, sampler=FixedOrder(perm), drop_last=False):
            if done == limit:
                break
            opt.zero_grad()
            loss = nn.functional.cross_entropy(module(x), y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            done += 1
        epoch += 1
    return loss_sum, seen


def assert_same_models(trained: ModelField, modules: list[nn.Module], atol: float = 1e-10) -> None:
    for i, m in enumerate(modules):
        got = trained.module(i)
        for (name, p), q in zip(m.named_parameters(), got.parameters()):
            assert torch.allclose(p, q, atol=atol, rtol=0), f"device {i} parameter {name} differs"


OPTIMISERS = [
    ("sgd", dict(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.5, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, nesterov=True)),
    ("adam", dict(lr=0.01, weight_decay=1e-3, fused=False),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3)),
    ("adam", dict(lr=0.01, weight_decay=1e-3, fused=True),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3)),
]


@pytest.mark.parametrize("kind,kwargs,make_opt", OPTIMISERS)
def test_epochs_equal_per_device_torch_loops(dataset, kind, kwargs, make_opt):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=3)
    order = seeded_orders(sets, seed=11)
    result = train(models, DeviceData(dataset, sets), epochs=3, batch_size=4, optimiser=kind, order=order,
                   chunk_size=2, **kwargs)
    modules, losses = [], []
    for i in range(len(sets)):
        m = models.module(i)
        loss_sum, seen = reference(m, make_opt(m.parameters()), dataset, sets, i, order, epochs=3, batch=4)
        modules.append(m)
        losses.append(loss_sum / seen if seen else float("nan"))
    assert_same_models(result.models, modules)
    np.testing.assert_allclose(result.loss.numpy(), np.array(losses), rtol=1e-5)
    assert torch.isnan(result.loss[2])


@pytest.mark.parametrize("kind,kwargs,make_opt", [OPTIMISERS[1], OPTIMISERS[3]])
def test_steps_cross_epochs_like_a_repeated_dataloader(dataset, kind, kwargs, make_opt):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=4)
    order = seeded_orders(sets, seed=12)
    result = train(models, DeviceData(dataset, sets), steps=7, batch_size=4, optimiser=kind, order=order, **kwargs)
    modules = []
    for i in range(len(sets)):
        m = models.module(i)
        reference(m, make_opt(m.parameters()), dataset, sets, i, order, steps=7, batch=4)
        modules.append(m)
    assert_same_models(result.models, modules)


@pytest.mark.parametrize("fused", [False, True])
def test_kept_adam_state_continues_like_one_optimiser(dataset, fused):
    # round 1 and round 2 use different sets, so in round 2 the devices' step counts differ
    first = IndexSets.from_lists([np.arange(0, 8), np.arange(8, 11), [], np.arange(20, 33)])
    second = IndexSets.from_lists([np.arange(40, 45), np.arange(45, 57), np.arange(60, 62), []])
    models = ModelField.from_factory(factory, 4, seed=5)
    o1, o2 = seeded_orders(first, 1), seeded_orders(second, 2)
    r1 = train(models, DeviceData(dataset, first), epochs=2, batch_size=4, lr=0.02, fresh_optimiser=False,
               order=o1, fused=fused)
    assert r1.state.step.tolist() == [4, 2, 0, 8]
    r2 = train(r1.models, DeviceData(dataset, second), epochs=1, batch_size=4, lr=0.02, fresh_optimiser=False,
               state=r1.state, order=o2, fused=fused, chunk_size=3)
    assert r2.state.step.tolist() == [6, 5, 1, 8]
    modules = []
    for i in range(4):
        m = models.module(i)
        opt = torch.optim.Adam(m.parameters(), lr=0.02)
        reference(m, opt, dataset, first, i, o1, epochs=2, batch=4)
        reference(m, opt, dataset, second, i, o2, epochs=1, batch=4)
        modules.append(m)
    assert_same_models(r2.models, modules)


def test_fresh_optimiser_is_a_new_adam_each_round(dataset):
    sets = IndexSets.from_lists([np.arange(0, 9), np.arange(9, 14)])
    models = ModelField.from_factory(factory, 2, seed=6)
    o = seeded_orders(sets, 3)
    r1 = train(models, DeviceData(dataset, sets), epochs=1, batch_size=4, lr=0.02, order=o)
    r2 = train(r1.models, DeviceData(dataset, sets), epochs=1, batch_size=4, lr=0.02, order=o)
    assert r1.state is None and r2.state is None
    modules = []
    for i in range(2):
        m = models.module(i)
        for _ in range(2):
            reference(m, torch.optim.Adam(m.parameters(), lr=0.02), dataset, sets, i, o, epochs=1, batch=4)
        modules.append(m)
    assert_same_models(r2.models, modules)


def test_full_batch_needs_no_order(dataset):
    # with one batch covering all samples the shuffle does not matter: plain full-batch gradient descent
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=7)
    result = train(models, DeviceData(dataset, sets), epochs=5, batch_size=64, optimiser="sgd", lr=0.3,
                   generator=torch.Generator().manual_seed(0))
    for i in range(len(sets)):
        m = models.module(i)
        own = sets.row(i)
        opt = torch.optim.SGD(m.parameters(), lr=0.3)
        for _ in range(5 if own.size else 0):
            opt.zero_grad()
            nn.functional.cross_entropy(m(dataset.inputs[own]), dataset.labels[own]).backward()
            opt.step()
        assert_same_models(result.models[i], [m])


def test_a_device_never_learns_from_other_devices_samples(dataset):
    sets = IndexSets.from_lists([np.arange(0, 7), np.arange(30, 60), np.arange(60, 61), np.arange(70, 100)])
    models = ModelField.from_factory(factory, 4, seed=8)
    clean = train(models, DeviceData(dataset, sets), epochs=2, batch_size=8, generator=torch.Generator().manual_seed(1))
    # poison every sample that device 0 does not own: NaN inputs and shuffled labels
    poisoned_x = dataset.inputs.clone()
    poisoned_y = dataset.labels.clone()
    others = np.setdiff1d(np.arange(len(dataset)), sets.row(0))
    poisoned_x[others] = float("nan")
    poisoned_y[others] = (poisoned_y[others] + 1) % N_CLASSES
    poisoned = Dataset(poisoned_x, poisoned_y, N_CLASSES)
    dirty = train(models, DeviceData(poisoned, sets), epochs=2, batch_size=8,
                  generator=torch.Generator().manual_seed(1))
    for k in models.params:
        assert torch.equal(clean.models.params[k][0], dirty.models.params[k][0])
        assert torch.isfinite(dirty.models.params[k][0]).all()
        assert not torch.equal(models.params[k][0], dirty.models.params[k][0])
    assert clean.loss[0] == dirty.loss[0]


def test_zero_sample_devices_and_their_state_are_untouched(dataset):
    sets = IndexSets.from_lists([[], np.arange(0, 5), []])
    models = ModelField.from_factory(factory, 3, seed=9)
    state = OptimiserState.zeros("adam", models)
    state.slots["exp_avg"]["0.weight"][0] = 0.5
    result = train(models, DeviceData(dataset, sets), epochs=2, batch_size=2, fresh_optimiser=False, state=state,
                   generator=torch.Generator().manual_seed(0))
    for k in models.params:
        assert torch.equal(result.models.params[k][[0, 2]], models.params[k][[0, 2]])
        assert not torch.equal(result.models.params[k][1], models.params[k][1])
    assert result.state.step.tolist() == [0, 6, 0]
    assert torch.equal(result.state.slots["exp_avg"]["0.weight"][0], state.slots["exp_avg"]["0.weight"][0])
    assert torch.isnan(result.loss[[0, 2]]).all() and torch.isfinite(result.loss[1])


def test_generator_makes_training_deterministic(dataset):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=10)
    runs = [train(models, DeviceData(dataset, sets), epochs=2, batch_size=3, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    for k in models.params:
        assert torch.equal(runs[0].models.params[k], runs[1].models.params[k])
    assert not torch.equal(runs[0].models.params["0.weight"][0], runs[2].models.params["0.weight"][0])
    # the input models are never modified
    assert torch.equal(models.params["0.weight"], ModelField.from_factory(factory, len(sets), seed=10).params["0.weight"])


def test_schedule_shuffles_each_device_within_its_own_samples():
    sets = uneven_sets()
    total, per_epoch, ptr, stream = batch_schedule(sets, 4, epochs=2, generator=torch.Generator().manual_seed(0))
    assert total.tolist() == [6, 2, 0, 22, 2, 4]
    assert per_epoch.tolist() == [3, 1, 0, 11, 1, 2]
    for i in range(len(sets)):
        n = sets.lengths()[i]
        for e in range(2):
            epoch = stream[ptr[i] + e * n : ptr[i] + (e + 1) * n]
            assert sorted(epoch.tolist()) == sorted(sets.row(i).tolist())


def test_rejects_batch_norm_and_bad_arguments(dataset):
    bn = ModelField.from_factory(lambda: nn.Sequential(nn.Linear(N_FEATURES, 4), nn.BatchNorm1d(4)).double(), 2)
    sets = IndexSets.from_lists([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="batch normalisation"):
        train(bn, DeviceData(dataset, sets), epochs=1)
    models = ModelField.from_factory(factory, 2)
    with pytest.raises(ValueError, match="exactly one"):
        train(models, DeviceData(dataset, sets), epochs=1, steps=2)
    with pytest.raises(ValueError, match="fresh_optimiser"):
        train(models, DeviceData(dataset, sets), epochs=1, state=OptimiserState.zeros("adam", models))
    with pytest.raises(ValueError, match="index sets"):
        train(models, DeviceData(dataset, IndexSets.from_lists([[0]])), epochs=1)
    with pytest.raises(ValueError, match="within each device"):
        train(models, DeviceData(dataset, sets), epochs=1, order=lambda e: np.array([2, 1, 0, 3]))


def test_training_ignores_an_outer_no_grad(dataset):
    # aggregate programs may evaluate rounds under no_grad / inference_mode; training must still learn
    sets = IndexSets.from_lists([np.arange(0, 10), np.arange(10, 20)])
    models = ModelField.from_factory(factory, 2, seed=2)
    plain = train(models, DeviceData(dataset, sets), epochs=1, batch_size=4, generator=torch.Generator().manual_seed(0))
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            inside = train(models, DeviceData(dataset, sets), epochs=1, batch_size=4,
                           generator=torch.Generator().manual_seed(0))
        assert torch.equal(inside.models.params["0.weight"], plain.models.params["0.weight"])


# --------------------------------------------------------------------------------------------------
# pluggable training: a custom loss with per-device extras, and frozen parameters


def custom_reference(module: nn.Module, opt: torch.optim.Optimizer, data: Dataset, sets: IndexSets, device: int,
                     order, loss_of, *, epochs: int, batch: int) -> None:
    """A plain torch loop whose batch loss is `loss_of(module, x, y)` (a scalar, as one writes it by hand)."""
    own = sets.row(device)
    if own.size == 0:
        return
    local = TensorDataset(data.inputs[own], data.labels[own])
    a, b = sets.indptr[device], sets.indptr[device + 1]
    for epoch in range(epochs):
        perm = order(epoch)[a:b] - a
        for x, y in DataLoader(local, batch_size=batch, sampler=FixedOrder(perm), drop_last=False):
            opt.zero_grad()
            loss_of(module, x, y).backward()
            opt.step()


def generic(loss):
    """The same loss hidden behind a plain function: train cannot recognise it and runs it vmapped."""
    return lambda logits, labels, params, extras: loss(logits, labels, params, extras)


@pytest.mark.parametrize("wrap", [lambda f: f, generic], ids=["proximal_loss", "as-a-plain-function"])
@pytest.mark.parametrize("kind,make_opt", [
    ("adam", lambda p: torch.optim.Adam(p, lr=0.02, weight_decay=1e-3)),
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3)),
])
def test_fedprox_with_a_per_device_anchor_equals_a_torch_loop(dataset, kind, make_opt, wrap):
    mu = 0.3
    sets = uneven_sets()  # uneven counts reorder the devices: the anchors must follow their devices
    models = ModelField.from_factory(factory, len(sets), seed=13)
    anchors = ModelField.from_factory(factory, len(sets), seed=14)
    order = seeded_orders(sets, seed=15)
    opts = dict(lr=0.02, weight_decay=1e-3) if kind == "adam" else dict(lr=0.05, momentum=0.9, weight_decay=1e-3)
    result = train(models, DeviceData(dataset, sets), epochs=3, batch_size=4, optimiser=kind, order=order,
                   chunk_size=2, loss=wrap(proximal_loss(mu)), extras=anchors, **opts)
    modules = []
    for i in range(len(sets)):
        m, anchor = models.module(i), anchors.module(i)

        def fedprox(module, x, y, anchor=anchor):
            penalty = sum(((p - q.detach()) ** 2).sum() for p, q in zip(module.parameters(), anchor.parameters()))
            return nn.functional.cross_entropy(module(x), y) + mu / 2 * penalty

        custom_reference(m, make_opt(m.parameters()), dataset, sets, i, order, fedprox, epochs=3, batch=4)
        modules.append(m)
    assert_same_models(result.models, modules)
    plain = train(models, DeviceData(dataset, sets), epochs=3, batch_size=4, optimiser=kind, order=order, **opts)
    assert not torch.allclose(plain.models.params["0.weight"], result.models.params["0.weight"])


def test_the_proximal_fast_path_reports_the_loss_of_the_generic_one(dataset):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=28)
    anchors = ModelField.from_factory(factory, len(sets), seed=29)
    order = seeded_orders(sets, seed=30)
    kwargs = dict(epochs=2, batch_size=4, order=order, extras=anchors, weight_decay=1e-2)
    for frozen in (None, ["2.weight", "2.bias"]):
        fast = train(models, DeviceData(dataset, sets), loss=proximal_loss(0.5), trainable=frozen, **kwargs)
        slow = train(models, DeviceData(dataset, sets), loss=generic(proximal_loss(0.5)), trainable=frozen, **kwargs)
        torch.testing.assert_close(fast.loss, slow.loss, equal_nan=True, rtol=1e-12, atol=0)
        for k in models.params:
            torch.testing.assert_close(fast.models.params[k], slow.models.params[k], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"extras\['0.bias'\] has shape \(6, 4\), the parameter \(6, 5\)"):
        train(models, DeviceData(dataset, sets), epochs=1, loss=proximal_loss(0.5),
              extras={**anchors.params, "0.bias": torch.zeros(6, 4, dtype=torch.float64)})
    with pytest.raises(ValueError, match="mu must be >= 0"):
        proximal_loss(-1.0)


def test_one_anchor_row_is_every_devices_anchor(dataset):
    # FedProx towards one global model: a one-device ModelField as extras
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=31)
    glob = ModelField.from_factory(factory, 1, seed=32)
    order = seeded_orders(sets, seed=33)
    kwargs = dict(epochs=2, batch_size=4, order=order, loss=proximal_loss(0.4), chunk_size=4)
    one = train(models, DeviceData(dataset, sets), extras=glob, **kwargs)
    every = train(models, DeviceData(dataset, sets), extras=glob.expand(len(sets)), **kwargs)
    for k in models.params:
        assert torch.equal(one.models.params[k], every.models.params[k])


def test_a_loss_reads_non_model_extras_row_by_row(dataset):
    # a per-device scale of the cross-entropy: extras need not be models, and a scalar row broadcasts
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=16)
    scale = torch.tensor([0.5, 2.0, 1.0, 0.1, 3.0, 1.5], dtype=torch.float64)
    order = seeded_orders(sets, seed=17)

    def scaled(logits, labels, params, extras):
        return extras["scale"] * cross_entropy(logits, labels, params, extras)

    result = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, optimiser="sgd", lr=0.1, order=order,
                   loss=scaled, extras={"scale": scale}, chunk_size=4)
    modules = []
    for i in range(len(sets)):
        m = models.module(i)
        custom_reference(m, torch.optim.SGD(m.parameters(), lr=0.1), dataset, sets, i, order,
                         lambda mod, x, y, s=scale[i]: s * nn.functional.cross_entropy(mod(x), y), epochs=2, batch=4)
        modules.append(m)
    assert_same_models(result.models, modules)


def test_the_cross_entropy_loss_function_matches_the_built_in(dataset):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=18)
    order = seeded_orders(sets, seed=19)
    built_in = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, order=order)
    given = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, order=order, loss=cross_entropy)
    for k in models.params:
        torch.testing.assert_close(given.models.params[k], built_in.models.params[k], rtol=0, atol=1e-12)
    torch.testing.assert_close(given.loss, built_in.loss, equal_nan=True)


@pytest.mark.parametrize("kind,kwargs,make_opt", [
    ("adam", dict(lr=0.02, weight_decay=1e-2, fused=True), lambda p: torch.optim.Adam(p, lr=0.02, weight_decay=1e-2)),
    ("adam", dict(lr=0.02, weight_decay=1e-2, fused=False), lambda p: torch.optim.Adam(p, lr=0.02, weight_decay=1e-2)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2)),
])
def test_a_frozen_body_fine_tune_equals_a_torch_loop_over_the_head(dataset, kind, kwargs, make_opt):
    sets = uneven_sets()
    models = ModelField.from_factory(factory, len(sets), seed=20)
    order = seeded_orders(sets, seed=21)
    state = OptimiserState.zeros(kind, models)
    for slot in state.slots.values():
        slot["0.weight"].fill_(0.25)  # a frozen parameter's state must come back exactly as it went in
    result = train(models, DeviceData(dataset, sets), epochs=3, batch_size=4, optimiser=kind, order=order,
                   chunk_size=2, trainable=["2.weight", "2.bias"], fresh_optimiser=False, state=state, **kwargs)
    modules = []
    for i in range(len(sets)):
        m = models.module(i)
        for p in m[0].parameters():
            p.requires_grad_(False)
        custom_reference(m, make_opt(m[2].parameters()), dataset, sets, i, order,
                         lambda mod, x, y: nn.functional.cross_entropy(mod(x), y), epochs=3, batch=4)
        modules.append(m)
    assert_same_models(result.models, modules)
    for k in ("0.weight", "0.bias"):
        assert torch.equal(result.models.params[k], models.params[k])
        for name, slot in result.state.slots.items():
            assert torch.equal(slot[k], state.slots[name][k])
    assert result.state.step.tolist() == [9, 3, 0, 33, 3, 6]
    # a predicate selects the same parameters
    again = train(models, DeviceData(dataset, sets), epochs=3, batch_size=4, optimiser=kind, order=order,
                  chunk_size=2, trainable=lambda name: name.startswith("2."), fresh_optimiser=False, state=state,
                  **kwargs)
    for k in models.params:
        assert torch.equal(again.models.params[k], result.models.params[k])


def test_fedprox_with_a_frozen_body_trains_only_the_head_towards_its_anchor(dataset):
    sets = IndexSets.from_lists([np.arange(0, 12), np.arange(12, 17)])
    models = ModelField.from_factory(factory, 2, seed=22)
    anchors = ModelField.from_factory(factory, 2, seed=23)
    order = seeded_orders(sets, seed=24)
    result = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, order=order, lr=0.05,
                   loss=proximal_loss(1.0), extras=anchors, trainable="2.weight")
    for i in range(2):
        m, anchor = models.module(i), anchors.module(i)
        head = m[2].weight

        def prox(module, x, y, anchor=anchor):
            penalty = sum(((p - q) ** 2).sum() for p, q in zip(module.parameters(), anchor.parameters()))
            return nn.functional.cross_entropy(module(x), y) + 0.5 * penalty

        custom_reference(m, torch.optim.Adam([head], lr=0.05), dataset, sets, i, order, prox, epochs=2, batch=4)
        assert_same_models(result.models[i], [m])
    assert torch.equal(result.models.params["2.bias"], models.params["2.bias"])


def test_a_step_computes_only_the_batch_slots_some_device_of_its_chunk_fills(dataset):
    # 40 and 10 samples at batch 32 (one chunk): step 0 fills 32 and 10 slots, step 1 only the first device's last 8;
    # 5 and 3 samples: one step of 5. A padded slot weighs 0, so computing it is work that changes nothing.
    widths = []

    def recording(logits, labels, params, extras):
        widths.append(labels.shape[0])
        return nn.functional.cross_entropy(logits, labels, reduction="none")

    models = ModelField.from_factory(factory, 2)
    for lists, expected in (([np.arange(40), np.arange(40, 50)], [32, 8]), ([np.arange(5), [7, 8, 9]], [5])):
        widths.clear()
        train(models, DeviceData(dataset, IndexSets.from_lists(lists)), epochs=1, batch_size=32, loss=recording,
              chunk_size=2)
        assert widths == expected


def test_bad_loss_extras_and_trainable_are_named(dataset):
    sets = IndexSets.from_lists([[0, 1, 2], [3, 4]])
    models = ModelField.from_factory(factory, 2)
    data = DeviceData(dataset, sets)
    with pytest.raises(ValueError, match=r"loss= must return one loss per sample.*\[3\], got shape \[\]"):
        train(models, data, epochs=1, loss=lambda lg, y, p, e: nn.functional.cross_entropy(lg, y))
    with pytest.raises(ValueError, match=r"loss= must return one loss per sample.*got shape \[3, 4\]"):
        train(models, data, epochs=1, loss=lambda lg, y, p, e: lg)
    with pytest.raises(ValueError, match=r"loss= must return.*got float"):
        train(models, data, epochs=1, loss=lambda lg, y, p, e: 1.0)
    with pytest.raises(TypeError, match="loss= must be a function"):
        train(models, data, epochs=1, loss="mse")
    with pytest.raises(ValueError, match=r"trainable= names unknown parameters \['2.weigth'\]"):
        train(models, data, epochs=1, trainable=["2.weigth", "2.bias"])
    with pytest.raises(ValueError, match="trainable= selects no parameter"):
        train(models, data, epochs=1, trainable=lambda name: False)
    with pytest.raises(ValueError, match=r"extras\['anchor'\] has shape \(3, 4\); it needs one row per device \(2\)"):
        train(models, data, epochs=1, extras={"anchor": torch.zeros(3, 4)})
    with pytest.raises(TypeError, match=r"extras= must be a dict"):
        train(models, data, epochs=1, extras=[torch.zeros(2)])
    with pytest.raises(ValueError, match="extras lack the anchor's parameters"):
        train(models, data, epochs=1, loss=proximal_loss(0.1))
    with pytest.raises(ValueError, match="does not depend on every trainable parameter"):
        train(models, data, epochs=1, loss=lambda lg, y, p, e: y.double() * 0 + p["2.bias"].sum(),
              trainable=["0.weight", "2.bias"])


# --------------------------------------------------------------------------------------------------
# in-place training: the same numbers, no second copy


@pytest.mark.parametrize("fused", [False, True])
def test_inplace_training_updates_the_given_tensors_to_the_same_values(dataset, fused):
    sets = uneven_sets()  # uneven counts: chunks are gathered and scattered back
    models = ModelField.from_factory(factory, len(sets), seed=25)
    state = OptimiserState.zeros("adam", models)
    order = seeded_orders(sets, seed=26)
    copy = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, order=order, fresh_optimiser=False,
                 state=state, fused=fused, chunk_size=4)
    # the default leaves its inputs untouched
    fresh = ModelField.from_factory(factory, len(sets), seed=25)
    assert all(torch.equal(models.params[k], fresh.params[k]) for k in models.params)
    assert state.step.tolist() == [0] * len(sets) and not state.slots["exp_avg"]["0.weight"].any()
    mine = models.clone()
    before = {k: v.data_ptr() for k, v in mine.params.items()}
    inplace = train(mine, DeviceData(dataset, sets), epochs=2, batch_size=4, order=order, fresh_optimiser=False,
                    state=state, fused=fused, chunk_size=4, inplace=True)
    for k in models.params:
        assert inplace.models.params[k] is mine.params[k] and mine.params[k].data_ptr() == before[k]
        assert torch.equal(mine.params[k], copy.models.params[k])
        for slot in state.slots:
            assert torch.equal(state.slots[slot][k], copy.state.slots[slot][k])
    assert inplace.state is state and state.step.tolist() == copy.state.step.tolist()
    assert torch.equal(inplace.loss, copy.loss) or torch.allclose(inplace.loss, copy.loss, equal_nan=True)


def test_inplace_training_in_step_order_needs_no_gather(dataset):
    # equal counts: every chunk trains on its own rows directly
    sets = IndexSets.from_lists([np.arange(i * 8, i * 8 + 8) for i in range(5)])
    models = ModelField.from_factory(factory, 5, seed=27)
    g = torch.Generator
    copy = train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, generator=g().manual_seed(3), chunk_size=2)
    mine = models.clone()
    train(mine, DeviceData(dataset, sets), epochs=2, batch_size=4, generator=g().manual_seed(3), chunk_size=2,
          inplace=True)
    for k in models.params:
        assert torch.equal(mine.params[k], copy.models.params[k])


def test_inplace_refuses_inference_tensors_and_copying_accepts_them(dataset):
    sets = IndexSets.from_lists([np.arange(0, 6), np.arange(6, 12)])
    with torch.inference_mode():
        made = ModelField.from_factory(factory, 2, seed=34) * 1.0
    plain = train(made, DeviceData(dataset, sets), epochs=1, generator=torch.Generator().manual_seed(0))
    assert not plain.models.params["0.weight"].is_inference()
    with pytest.raises(ValueError, match="inplace=True on tensors made under torch.inference_mode"):
        train(made, DeviceData(dataset, sets), epochs=1, inplace=True)


NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(0, 11), min_size=1, max_size=6), chunk=st.integers(1, 4),
       kind=st.sampled_from(["adam", "sgd"]), mask=st.lists(st.booleans(), min_size=4, max_size=4),
       seed=st.integers(0, 2**20), prox=st.booleans())
def test_inplace_equals_copy_and_frozen_or_idle_rows_stay_bit_identical(dataset, lengths, chunk, kind, mask, seed,
                                                                       prox):
    if not any(mask):
        mask = [False, False, True, True]
    trainable = [k for k, keep in zip(NAMES, mask) if keep]
    rng = np.random.default_rng(seed)
    sets = IndexSets.from_lists([rng.choice(len(dataset), size, replace=False) for size in lengths])
    models = ModelField.from_factory(factory, len(sets), seed=seed % 97)
    state = OptimiserState.zeros(kind, models)
    extra = dict(loss=proximal_loss(0.2), extras=ModelField.from_factory(factory, len(sets), seed=1)) if prox else {}
    kwargs = dict(epochs=2, batch_size=3, optimiser=kind, chunk_size=chunk, trainable=trainable, lr=0.05,
                  fresh_optimiser=False, **extra)
    copy = train(models, DeviceData(dataset, sets), state=state, generator=torch.Generator().manual_seed(seed),
                 **kwargs)
    mine, mine_state = models.clone(), state.clone()
    train(mine, DeviceData(dataset, sets), state=mine_state, generator=torch.Generator().manual_seed(seed),
          inplace=True, **kwargs)
    idle = np.asarray(lengths) == 0
    for k in NAMES:
        assert torch.equal(mine.params[k], copy.models.params[k])
        for slot in state.slots:
            assert torch.equal(mine_state.slots[slot][k], copy.state.slots[slot][k])
        if k not in trainable:
            assert torch.equal(copy.models.params[k], models.params[k])
            assert all(not copy.state.slots[slot][k].any() for slot in state.slots)
        assert torch.equal(copy.models.params[k][idle], models.params[k][idle])
    assert mine_state.step.tolist() == copy.state.step.tolist()


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("sizes", [(9, 5, 16), (8, 8, 8)], ids=["gathered", "in-step-order"])
def test_non_contiguous_parameters_train_like_contiguous_ones(dataset, inplace, sizes):
    # the fused Adam kernel walks memory in order: working rows must all share one (contiguous) layout
    ends = np.cumsum((0,) + sizes)
    sets = IndexSets.from_lists([np.arange(a, b) for a, b in zip(ends[:-1], ends[1:])])
    models = ModelField.from_factory(factory, 3, seed=35)
    strided = {k: (v.transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v.clone())
               for k, v in models.params.items()}
    odd = ModelField(strided, models.buffers, models.template)
    assert not odd.params["0.weight"].is_contiguous()
    kwargs = dict(epochs=2, batch_size=4, fused=True)
    want = train(models, DeviceData(dataset, sets), generator=torch.Generator().manual_seed(4), **kwargs)
    got = train(odd, DeviceData(dataset, sets), generator=torch.Generator().manual_seed(4), inplace=inplace, **kwargs)
    for k in models.params:
        assert torch.equal(got.models.params[k], want.models.params[k])


def test_stacked_linear_layers_train_like_nn_linear_in_float32(dataset, monkeypatch):
    """The fast path (stacked linear layers) against the plain vmapped nn.Linear: float32 models after two epochs of
    Adam agree to 1e-6 (the weight gradients are the same sums, taken in another order)."""
    import importlib

    train_module = importlib.import_module("fieldlearn.learning.train")  # the module (the package exports the function)

    sets = uneven_sets()
    data = DeviceData(Dataset(dataset.inputs.float(), dataset.labels, N_CLASSES, "toy32"), sets)
    models = ModelField.from_factory(lambda: factory().float(), len(sets), seed=4)
    fast = train(models, data, epochs=2, batch_size=4, weight_decay=1e-4, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(train_module, "training_template", lambda template: template)
    slow = train(models, data, epochs=2, batch_size=4, weight_decay=1e-4, generator=torch.Generator().manual_seed(3))
    for k in models.params:
        torch.testing.assert_close(fast.models.params[k], slow.models.params[k], rtol=0, atol=1e-6)
    assert not torch.equal(fast.models.params["0.weight"], models.params["0.weight"])


def plain_mlp(hidden: list[int], bias: bool, dtype: torch.dtype):
    sizes = [N_FEATURES, *hidden, N_CLASSES]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
    return lambda: nn.Sequential(*layers[:-1]).to(dtype)


@settings(max_examples=30, deadline=None)
@given(hidden=st.lists(st.integers(1, 7), max_size=2), bias=st.booleans(),
       lengths=st.lists(st.integers(0, 13), min_size=1, max_size=7), kind=st.sampled_from(["sgd", "adam"]),
       part=st.sampled_from([None, "head", "body"]), kept=st.booleans(), prox=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 999))
def test_a_plain_mlp_trains_without_autograd_to_the_bits_of_the_autograd_path(dataset, hidden, bias, lengths, kind,
                                                                              part, kept, prox, dtype, seed):
    import importlib
    from unittest import mock

    train_module = importlib.import_module("fieldlearn.learning.train")
    rng = np.random.default_rng(seed)
    sets = IndexSets.from_lists([rng.choice(len(dataset), size, replace=False) for size in lengths])
    data = DeviceData(Dataset(dataset.inputs.to(dtype), dataset.labels, N_CLASSES, "toy"), sets)
    factory_ = plain_mlp(hidden, bias, dtype)
    models = ModelField.from_factory(factory_, len(sets), seed=seed % 97)
    last = str(2 * len(hidden))  # the output layer's name (a one-layer model has no body)
    trainable = {None: None, "head": lambda name: name.startswith(last + "."),
                 "body": lambda name: not name.startswith(last + ".")}[part if hidden or part != "body" else None]
    extra = dict(loss=proximal_loss(0.2), extras=ModelField.from_factory(factory_, len(sets), seed=1)) if prox else {}
    runs = []
    for direct in (True, False):
        state = dict(fresh_optimiser=False, state=OptimiserState.zeros(kind, models)) if kept else {}
        with mock.patch.object(train_module, "plain_mlp_layers", train_module.plain_mlp_layers if direct else
                               lambda template: None):
            runs.append(train(models, data, epochs=2, batch_size=3, optimiser=kind, lr=0.05, weight_decay=1e-3,
                              chunk_size=3, trainable=trainable, generator=torch.Generator().manual_seed(seed),
                              **state, **extra))
    fast, slow = runs
    for k in models.params:
        assert torch.equal(fast.models.params[k], slow.models.params[k]), k
    torch.testing.assert_close(fast.loss, slow.loss, rtol=0, atol=0, equal_nan=True)
    if kept:
        for slot in fast.state.slots:
            for k in models.params:
                assert torch.equal(fast.state.slots[slot][k], slow.state.slots[slot][k])


def test_a_plain_mlp_takes_no_autograd_step_and_other_models_do(dataset):
    from unittest import mock

    data = DeviceData(dataset, uneven_sets())
    with mock.patch("torch.autograd.grad", side_effect=AssertionError("autograd")):
        trained = train(ModelField.from_factory(plain_mlp([5], True, torch.float64), 6, seed=2), data, epochs=1)
        assert torch.isfinite(trained.loss[[0, 1, 3, 4, 5]]).all()
        with pytest.raises(AssertionError, match="autograd"):
            train(ModelField.from_factory(factory, 6, seed=2), data, epochs=1)  # a tanh layer: the vmapped path
        with pytest.raises(AssertionError, match="autograd"):  # a loss of one's own: the vmapped path
            train(ModelField.from_factory(plain_mlp([5], True, torch.float64), 6, seed=2), data, epochs=1,
                  loss=cross_entropy)


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.integers(1, 9), min_size=1, max_size=6), chunk=st.integers(1, 7), idle=st.integers(0, 4),
       seed=st.integers(0, 99))
def test_a_chunk_of_consecutive_rows_is_trained_where_it_lies(runs, chunk, idle, seed):
    # a step order made of runs of consecutive rows, in shuffled storage places: a chunk within one run is a span
    # (its rows are views, no gather), any other chunk is gathered; the chunks cut the active devices in order
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(runs)[:-1]])
    pieces = [np.arange(a, a + n) for a, n in zip(starts, runs)]
    idle_rows = [np.arange(sum(runs), sum(runs) + idle)]
    perm = np.concatenate([pieces[i] for i in rng.permutation(len(pieces))] + idle_rows)
    active = sum(runs)
    chunks, spans = _chunk_plan(perm, active, chunk)
    assert chunks == [(c0, min(c0 + chunk, active)) for c0 in range(0, active, chunk)]
    for c0, c1 in chunks:
        rows = perm[c0:c1]
        consecutive = bool(np.all(np.diff(rows) == 1))
        assert (c0 in spans) == consecutive
        if consecutive:
            assert spans[c0] == rows[0]
    assert _chunk_plan(None, active, chunk) == (chunks, {})


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's thread count inside the block (this module runs on one thread otherwise)."""
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(1)


@settings(max_examples=12, deadline=None)
@given(lengths=st.lists(st.integers(0, 13), min_size=2, max_size=9), chunk=st.integers(1, 3),
       kind=st.sampled_from(["adam", "sgd"]), kept=st.booleans(), prox=st.booleans(), threads=st.sampled_from([2, 3]),
       seed=st.integers(0, 2**20))
def test_chunks_trained_by_several_workers_give_the_bits_of_one(dataset, lengths, chunk, kind, kept, prox, threads,
                                                                 seed):
    rng = np.random.default_rng(seed)
    sets = IndexSets.from_lists([rng.choice(len(dataset), size, replace=False) for size in lengths])
    models = ModelField.from_factory(factory, len(sets), seed=seed % 89)
    extra = dict(loss=proximal_loss(0.3), extras=ModelField.from_factory(factory, len(sets), seed=2)) if prox else {}
    kwargs = dict(epochs=2, batch_size=3, optimiser=kind, chunk_size=chunk, lr=0.05, **extra)
    runs = []
    for count in (1, threads):
        state = dict(fresh_optimiser=False, state=OptimiserState.zeros(kind, models)) if kept else {}
        with torch_threads(count):
            runs.append(train(models, DeviceData(dataset, sets), generator=torch.Generator().manual_seed(seed),
                              **state, **kwargs))
            assert torch.get_num_threads() == count  # the workers' one thread each is undone
    one, many = runs
    for k in models.params:
        assert torch.equal(one.models.params[k], many.models.params[k])
    torch.testing.assert_close(one.loss, many.loss, rtol=0, atol=0, equal_nan=True)  # NaN: a device without samples
    if kept:
        assert one.state.step.tolist() == many.state.step.tolist()
        for slot in one.state.slots:
            for k in models.params:
                assert torch.equal(one.state.slots[slot][k], many.state.slots[slot][k])


@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_chunks_run_on_several_threads_where_torch_has_several(dataset, optimiser):
    # the sleep lets another worker step (in place) while this one's backward pass still holds its rows
    import threading
    import time

    ran_on = set()

    def slow_cross_entropy(logits, labels, params, extras):
        ran_on.add(threading.get_ident())
        time.sleep(0.002)  # hands the interpreter to the other worker
        return cross_entropy(logits, labels, params, extras)

    sets = IndexSets.from_lists([np.arange(i, i + 8) for i in range(12)])
    models = ModelField.from_factory(factory, 12, seed=3)
    for count, workers in ((1, 0), (2, 2)):
        ran_on.clear()
        with torch_threads(count):
            train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, chunk_size=1, loss=slow_cross_entropy,
                  optimiser=optimiser, generator=torch.Generator().manual_seed(0))
        assert len(ran_on - {threading.get_ident()}) == workers  # with several, the main thread takes one gradient


def test_a_model_that_draws_random_numbers_trains_its_chunks_in_order_on_every_thread_count(dataset):
    # dropout draws from torch's generator: workers would draw in the order they happen to run
    def dropping() -> nn.Module:
        return nn.Sequential(nn.Linear(N_FEATURES, 5), nn.Dropout(0.5), nn.Linear(5, N_CLASSES)).double()

    sets = uneven_sets()
    models = ModelField.from_factory(dropping, len(sets), seed=5)
    runs = []
    for count in (1, 2):
        with torch_threads(count):
            runs.append(train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, chunk_size=1,
                              generator=torch.Generator().manual_seed(8)).models)
    for k in models.params:
        assert torch.equal(runs[0].params[k], runs[1].params[k])
    assert not torch.equal(runs[0].params["0.weight"], models.params["0.weight"])


def test_an_error_in_a_worker_reaches_the_caller_and_the_rest_is_not_trained(dataset):
    import threading

    calls, main = [], threading.get_ident()

    def failing(logits, labels, params, extras):
        calls.append(threading.get_ident())
        if calls[-1] != main and len(calls) >= 4:
            raise RuntimeError("the loss failed on a worker")
        return cross_entropy(logits, labels, params, extras)

    sets = IndexSets.from_lists([np.arange(i, i + 8) for i in range(40)])
    models = ModelField.from_factory(factory, 40, seed=3)
    with torch_threads(2):
        with pytest.raises(RuntimeError, match="failed on a worker"):
            train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, chunk_size=1, loss=failing,
                  generator=torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 2
    assert len(calls) < 1 + 40 * 4  # the probe, then 4 steps per chunk had all 40 chunks run


@pytest.mark.parametrize("threads", [1, 2])
def test_nothing_of_a_training_call_waits_for_the_garbage_collector(dataset, threads):
    # a worker or plan left in a reference cycle would hold its chunk buffers (and the models) until gc runs
    import gc
    import importlib

    train_module = importlib.import_module("fieldlearn.learning.train")
    sets = IndexSets.from_lists([np.arange(i, i + 8) for i in range(12)])
    models = ModelField.from_factory(factory, 12, seed=3)
    gc.collect()
    gc.disable()
    try:
        with torch_threads(threads):
            train(models, DeviceData(dataset, sets), epochs=2, batch_size=4, chunk_size=2,
                  generator=torch.Generator().manual_seed(0))
        left = [o for o in gc.get_objects() if type(o) in (train_module._Lane, train_module._Plan)]
    finally:
        gc.enable()
    assert left == []
