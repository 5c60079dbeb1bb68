"""Aggregate learning blocks: sample fields, per-device training, blend, replay, replay mixing, fine-tune."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fieldlearn import Inbox, Network, RoundVM, local, rep, run, sense
from fieldlearn.learning.blocks import (
    blend,
    class_counts,
    classifier_names,
    classwise_regional_mean,
    count_weighted_blend,
    current_samples,
    finetune,
    fresh_models,
    paper_alpha,
    replay,
    sample_counts,
    train_locally,
    with_replay,
)
from fieldlearn.learning.config import LearningConfig
from fieldlearn.learning.context import RESOURCE, LearningContext
from fieldlearn.learning.data import IndexSets
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.replay import ReplayStore
from fieldlearn.learning.samples import pad_sets, unpad
from fieldlearn.lib import regions


def rows(*lists):
    return IndexSets.from_lists([np.asarray(r, dtype=np.int64) for r in lists])


def digits_context(n=4, regions=(0, 0, 1, 1), hidden=(8,), **kw):
    config = LearningConfig.model_validate({"dataset": "digits", "model": {"hidden": list(hidden)}, "batch_size": 8,
                                            **kw})
    return LearningContext(config, n_devices=n, region_names=["a", "b"], initial_region=np.asarray(regions), seed=3)


def learning_run(program, ctx, net, rounds):
    """Run `program` for synchronous `rounds` on `net` (torch backend, `ctx` lent as the learning resource); the
    last round's results as raw tensors."""
    vm = RoundVM(program, backend="torch", resources={RESOURCE: ctx})
    vm.sensors = net.sensors
    ids = np.arange(net.n_devices)
    inbox = Inbox(*(torch.as_tensor(a) for a in net.graph.inbox_links(ids)[:2]),
                  {"distance": torch.as_tensor(net.graph.distance)})
    result = None
    for _ in range(rounds):
        result = vm.round(ids, inbox)
    return result


def clique(n=4, regions=(0, 0, 1, 1)):
    net = Network.from_edges(n, [(i, j) for i in range(n) for j in range(i + 1, n)])
    net.sensors["region"] = np.asarray(regions)
    net.sensors["time"] = 0.0
    net.sensors["mobile"] = np.zeros(n, dtype=bool)
    return net


# --------------------------------------------------------------------------------------------- sample fields


def test_sample_counts_counts_real_entries_only():
    net = clique()
    net.sensors["s"] = np.array([[3, 4, -1], [-1, -1, -1], [1, 2, 3], [0, -1, -1]])
    trace = run(lambda: sample_counts(sense("s")), net, rounds=1, backend="torch")
    assert trace.last.tolist() == [2, 0, 3, 1]


# ---------------------------------------------------------------------------------------------- training


def test_train_locally_is_the_trainer_on_every_device_at_once_and_skips_devices_without_samples():
    ctx = digits_context()
    net = clique()
    samples = rows(np.arange(0, 20), np.arange(20, 30), [], np.arange(40, 64))
    net.sensors["s"] = pad_sets(samples).numpy()

    def program():
        start = fresh_models()
        return {"start": start, "models": train_locally(start, sense("s"), ctx.trainer, key=4)}

    out = learning_run(program, ctx, net, rounds=1)
    start = out["start"]
    expected = ctx.trainer(start, pad_sets(samples), salt=(0, 4))  # clock 0, the block's key
    for k, t in out["models"].params.items():
        assert torch.equal(t, expected.params[k])
    # device 2 had no samples: its model is untouched; the others moved
    for k, t in out["models"].params.items():
        assert torch.equal(t[2], start.params[k][2])
        assert not torch.equal(t[0], start.params[k][0])


def test_blend_is_exact_at_zero_and_one_and_a_per_device_mix_in_between():
    ctx = digits_context()
    net = clique()
    net.sensors["alpha"] = np.array([0.0, 1.0, 0.25, 0.5])

    def program():
        a = fresh_models()
        b = train_locally(a, current_samples())
        return {"a": a, "b": b, "models": blend(a, b, sense("alpha"))}

    last = learning_run(program, ctx, net, rounds=1)
    a, b, out = last["a"], last["b"], last["models"]
    alpha = torch.tensor([0.0, 1.0, 0.25, 0.5])
    for k in out.params:
        assert torch.equal(out.params[k][0], a.params[k][0])
        assert torch.equal(out.params[k][1], b.params[k][1])
        mix = (1 - alpha.view(-1, *[1] * (a.params[k].dim() - 1))) * a.params[k] + alpha.view(
            -1, *[1] * (a.params[k].dim() - 1)) * b.params[k]
        assert torch.allclose(out.params[k][2:], mix[2:], atol=1e-6)


def test_class_counts_count_each_devices_samples_per_label():
    net = clique()
    labels = torch.tensor([0, 2, 2, 1, 0, 2])
    net.sensors["s"] = np.array([[1, 2, 5], [-1, -1, -1], [0, 4, 3], [3, -1, -1]])
    trace = run(lambda: class_counts(sense("s"), labels, 3), net, rounds=1, backend="torch")
    assert trace.last.tolist() == [[0, 0, 3], [0, 0, 0], [2, 1, 0], [0, 1, 0]]


def test_classwise_regional_mean_averages_each_class_row_over_the_devices_that_saw_the_class():
    ctx = digits_context(hidden=(8,))
    net = Network.from_edges(4, [(0, 1), (2, 3)])  # two regions: {0, 1} and {2, 3}
    for k, v in clique().sensors.items():
        net.sensors[k] = v
    counts = torch.zeros(4, 10)
    counts[0, 3], counts[1, 3], counts[1, 5], counts[2, 7] = 2.0, 6.0, 4.0, 1.0
    net.sensors["counts"] = counts.numpy()
    net.sensors["weight"] = np.array([1.0, 3.0, 2.0, 2.0])
    net.sensors["scale"] = np.array([1.0, -2.0, 0.5, 3.0])

    def program():
        # the same distinct models every round (a regional value lags a round behind its inputs)
        trained = local(lambda m, k: m * k)(fresh_models(), sense("scale"))
        head = classifier_names(trained, 10)
        region = regions(10.0)
        merged = classwise_regional_mean(region, trained, sense("counts"), head, weight=sense("weight"))
        return {"leader": region.leader, "trained": trained, "models": merged}

    last = learning_run(program, ctx, net, rounds=6)  # the election settles within a few rounds
    assert last["leader"].tolist() in ([0, 0, 2, 2], [0, 0, 3, 3], [1, 1, 2, 2], [1, 1, 3, 3])
    m, out = last["trained"], last["models"]
    head = classifier_names(m, 10)
    assert head == ["2.weight", "2.bias"]
    w = torch.tensor([1.0, 3.0, 2.0, 2.0])
    for region in ([0, 1], [2, 3]):
        for name, t in m.params.items():
            mean = sum(w[d] * t[d] for d in region) / w[region].sum()
            want = mean.clone()
            if name in head:
                for c in range(10):
                    mass = counts[region, c].sum()
                    if mass > 0:
                        want[c] = sum(counts[d, c] * t[d, c] for d in region) / mass
            for d in region:
                assert torch.allclose(out.params[name][d], want, atol=1e-6), (name, d)
    # class 3 in region {0, 1}: 2 and 6 samples; class 5 only device 1's row; class 0 nobody's: the plain mean
    t = m.params["2.bias"]
    assert torch.allclose(out.params["2.bias"][0, 3], (2 * t[0, 3] + 6 * t[1, 3]) / 8, atol=1e-6)
    assert torch.allclose(out.params["2.bias"][0, 5], t[1, 5], atol=1e-6)
    assert torch.allclose(out.params["2.bias"][0, 0], (t[0, 0] + 3 * t[1, 0]) / 4, atol=1e-6)


def test_classifier_names_need_an_output_layer_with_one_row_per_class():
    ctx = digits_context(hidden=(8,))
    models = ModelField.replicate(ctx.make_module(), 2)
    assert classifier_names(models, 10) == ["2.weight", "2.bias"]
    with pytest.raises(ValueError, match="one per class"):
        classifier_names(models, 7)


def test_finetune_touches_only_the_selected_devices():
    ctx = digits_context()
    net = clique()
    net.sensors["sel"] = np.array([True, False, True, False])

    def program():
        a = fresh_models()
        return {"a": a, "models": finetune(a, current_samples(), where=sense("sel"))}

    last = learning_run(program, ctx, net, rounds=1)
    a, out = last["a"], last["models"]
    for k in out.params:
        for d, changed in enumerate([True, False, True, False]):
            assert torch.equal(out.params[k][d], a.params[k][d]) != changed



def test_finetune_where_equals_a_branch_that_tunes_the_selected_devices_alone():
    from fieldlearn import branch

    ctx = digits_context(samples_per_round=12)
    net = clique()
    net.sensors["sel"] = np.array([True, False, True, True])

    def program():
        a = fresh_models()
        seen = current_samples()
        alone = branch(sense("sel"), lambda: finetune(a, seen), lambda: a)
        return {"alone": alone, "models": finetune(a, seen, where=sense("sel"))}

    last = learning_run(program, ctx, net, rounds=2)
    for k in last["models"].params:
        assert torch.equal(last["models"].params[k], last["alone"].params[k])

def test_paper_alpha_is_min_of_gamma_and_dwell_over_horizon():
    net = Network.from_edges(5, [])
    net.sensors["s"] = np.array([1, 3, 9, 10, 60])
    trace = run(lambda: paper_alpha(sense("s"), 0.3, 30), net, rounds=1)
    assert np.allclose(trace.last, [1 / 30, 0.1, 0.3, 0.3, 0.3])


# ------------------------------------------------------------------------------------------------ replay


def test_replay_block_fills_memory_when_the_leader_changes():
    store = ReplayStore(2, "unbounded")
    net = Network.from_edges(2, [])
    net.sensors["enabled"] = np.array([True, False])
    sizes, trace = [], None
    for leader in [0, 0, 0, 1, 1]:
        net.sensors["leader"] = np.array([leader, leader])
        net.sensors["s"] = np.array([[leader * 10 + len(sizes)], [100 + len(sizes)]])
        program = lambda: sample_counts(replay(sense("s"), sense("leader"), store, enabled=sense("enabled")))
        trace = run(program, net, rounds=1, backend="torch", vm=trace.vm if trace else None)
        sizes.append(trace.last.tolist())
    # device 0 saw samples 0, 1, 2 under leader 0; on the change (round 3) they enter its memory
    assert sizes == [[0, 0], [0, 0], [0, 0], [3, 0], [3, 0]]
    assert store.memory.indices(0).tolist() == [0, 1, 2]


def test_with_replay_unites_current_samples_with_a_bounded_draw_of_the_memory():
    net = Network.from_edges(2, [])
    net.sensors["now"] = np.array([[1, 2], [3, -1]])
    net.sensors["mem"] = np.array([list(range(100, 140)), [200] + [-1] * 39])
    trace = run(lambda: with_replay(sense("now"), sense("mem"), per_round=10, seed=0), net, rounds=1, backend="torch")
    got = unpad(trace.last)
    first, second = got.row(0), got.row(1)
    assert {1, 2} <= set(first.tolist()) and len(first) == 12 and set(first.tolist()) - {1, 2} <= set(range(100, 140))
    assert second.tolist() == [3, 200]
    whole = run(lambda: with_replay(sense("now"), sense("mem"), seed=0), net, rounds=1, backend="torch")
    assert len(unpad(whole.last).row(0)) == 42


# ------------------------------------------------------------------------------------------------ context


def test_current_samples_come_from_the_device_region_part_and_per_round_draws_are_bounded():
    ctx = digits_context(samples_per_round=5)
    net = clique()
    got = unpad(learning_run(lambda: current_samples(), ctx, net, rounds=1))
    assert got.lengths().tolist() == [5, 5, 5, 5]
    for d, region in enumerate([0, 0, 1, 1]):
        part = ctx.data.parts.row(ctx.data.part_offsets[region] + ctx.part_of_device[d])
        assert set(got.row(d).tolist()) <= set(part.tolist())
    labels = ctx.dataset.labels.numpy()
    assert set(labels[got.row(0)]) <= {0, 1, 2, 3, 4} and set(labels[got.row(3)]) <= {5, 6, 7, 8, 9}


def test_fresh_models_are_one_shared_initialisation_and_kept_by_rep():
    ctx = digits_context()
    net = clique()

    def program():
        return {"models": rep(fresh_models, lambda theta: theta)}

    models = learning_run(program, ctx, net, rounds=2)["models"]
    for t in models.params.values():
        assert all(torch.equal(t[0], t[d]) for d in range(1, 4))
    assert isinstance(models, ModelField)


def test_a_replay_policy_names_the_store_the_context_keeps_for_the_run():
    ctx = digits_context()
    net = clique()
    net.sensors["leader"] = np.array([0, 0, 1, 1])
    learning_run(lambda: replay(current_samples(), sense("leader"), "reservoir:7"), ctx, net, rounds=2)
    assert list(ctx.stores) == ["reservoir:7"] and ctx.stores["reservoir:7"].policy.capacity == 7


def test_blocks_outside_a_learning_run_say_how_to_get_a_context():
    with pytest.raises(LookupError, match=r'needs a learning context: declare it with @program\(needs="learning"\)'):
        run(lambda: current_samples(), clique(), rounds=1, backend="torch")


def test_the_learning_package_exports_the_blocks_programs_compose():
    import fieldlearn.learning as learning
    from fieldlearn.learning import blocks, models

    assert learning.blend is blocks.blend and learning.blend_models is models.blend_models
    for name in ("train_locally", "finetune", "replay", "with_replay", "paper_alpha", "classwise_regional_mean"):
        assert getattr(learning, name) is getattr(blocks, name) and name in learning.__all__



def test_count_weighted_blend_moves_each_head_row_by_the_regions_share_of_that_class():
    ctx = digits_context(n=2, regions=(0, 0))
    net = clique(2, regions=(0, 0))
    own = torch.zeros(2, 10)
    own[0, 3], own[0, 5] = 9.0, 1.0  # device 0 knows class 3 well, class 5 a little
    region = torch.zeros(2, 10)
    region[:, 3], region[:, 5] = 1.0, 3.0  # the region the other way round
    net.sensors["own"], net.sensors["region_counts"] = own.numpy(), region.numpy()
    net.sensors["scale"] = np.array([1.0, -1.0])

    def program():
        a = local(lambda m, k: m * k)(fresh_models(), sense("scale"))
        b = local(lambda m: m * 3.0)(a)
        return {"a": a, "b": b, "models": count_weighted_blend(a, b, sense("own"), sense("region_counts"),
                                                              ["2.weight", "2.bias"], 0.25)}

    out = learning_run(program, ctx, net, rounds=1)
    a, b, m = out["a"], out["b"], out["models"]
    share = region / (own + region).clamp(min=1e-12)
    share[(own + region) == 0] = 0.0
    for name, t in m.params.items():
        if name in ("2.weight", "2.bias"):
            w = share.reshape(share.shape + (1,) * (t.dim() - 2))
            want = a.params[name] + (b.params[name] - a.params[name]) * w
        else:
            want = a.params[name] + (b.params[name] - a.params[name]) * 0.25
        assert torch.allclose(t, want, atol=1e-6), name
    # class 3: device 0 keeps 90% of its own row; class 5: it takes 75% of the region's; unseen classes stay its own
    assert torch.allclose(m.params["2.bias"][0, 3], a.params["2.bias"][0, 3] * 0.9 + b.params["2.bias"][0, 3] * 0.1)
    assert torch.equal(m.params["2.bias"][0, 0], a.params["2.bias"][0, 0])
