"""ModelField: construction, per-device forward, selection, arithmetic, pytree registration, neighbour averages."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from fieldlearn.calculus.pytree import tree_flatten, tree_map, tree_unflatten
from fieldlearn.learning.models import ModelField, blend_models, neighbour_average, where


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def with_norm() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_from_factory_matches_modules_built_after_seeding():
    field = ModelField.from_factory(mlp, 5, seed=123)
    torch.manual_seed(123)
    modules = [mlp() for _ in range(5)]
    for i, m in enumerate(modules):
        for name, p in m.named_parameters():
            assert torch.equal(field.params[name][i], p.detach())
    assert not torch.equal(field.params["0.weight"][0], field.params["0.weight"][1])  # fresh per device


def test_from_factory_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    a = ModelField.from_factory(mlp, 300, seed=1)  # more than one build chunk
    assert torch.equal(torch.rand(1), expected_next)
    b = ModelField.from_factory(mlp, 300, seed=1)
    c = ModelField.from_factory(mlp, 300, seed=2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    d, e = ModelField.from_factory(mlp, 3, generator=g1), ModelField.from_factory(mlp, 3, generator=g2)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
        assert not torch.equal(a.params[k], c.params[k])
        assert torch.equal(d.params[k], e.params[k])


def test_replicate_and_module_round_trip():
    base = mlp()
    field = ModelField.replicate(base, 4)
    assert len(field) == 4
    for i in range(4):
        copy = field.module(i)
        for (_, p), (_, q) in zip(base.named_parameters(), copy.named_parameters()):
            assert torch.equal(p, q)
    field.params["0.weight"][0] += 1  # rows are independent storage
    assert not torch.equal(field.params["0.weight"][0], field.params["0.weight"][1])


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_forward_equals_each_module(chunk):
    field = ModelField.from_factory(mlp, 5, seed=0, chunk_size=chunk)
    x = torch.randn(5, 7, 4)
    shared = torch.randn(6, 4)
    own = field(x)
    common = field(shared, shared=True)
    assert own.shape == (5, 7, 2) and common.shape == (5, 6, 2)
    for i in range(5):
        m = field.module(i).eval()
        assert torch.allclose(own[i], m(x[i]), atol=1e-6)
        assert torch.allclose(common[i], m(shared), atol=1e-6)
    rechunked = field.with_chunk_size(4)
    assert rechunked.chunk_size == 4 and rechunked.params is field.params
    assert torch.allclose(rechunked(x), own, atol=1e-6)
    with pytest.raises(ValueError, match="rows"):
        field(torch.randn(4, 7, 4))


def test_buffers_are_stacked_and_used_in_eval_forward():
    field = ModelField.from_factory(with_norm, 3, seed=0)
    assert set(field.buffers) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    field.buffers["1.running_mean"][1] = torch.tensor([1.0, -2.0, 0.5])
    x = torch.randn(3, 5, 4)
    out = field(x)
    for i in range(3):
        assert torch.allclose(out[i], field.module(i).eval()(x[i]), atol=1e-6)


def test_selection_and_functional_set():
    field = ModelField.from_factory(mlp, 6, seed=0)
    w = field.params["0.weight"]
    assert torch.equal(field[2].params["0.weight"], w[2:3])
    assert torch.equal(field[-1].params["0.weight"], w[5:6])
    assert torch.equal(field[1:4].params["0.weight"], w[1:4])
    mask = np.array([True, False, True, False, False, True])
    assert torch.equal(field[mask].params["0.weight"], w[[0, 2, 5]])
    assert torch.equal(field[[4, 0]].params["0.weight"], w[[4, 0]])
    other = ModelField.from_factory(mlp, 2, seed=9)
    updated = field.set([1, 3], other)
    assert torch.equal(updated.params["0.weight"][[1, 3]], other.params["0.weight"])
    assert torch.equal(updated.params["0.weight"][[0, 2, 4, 5]], w[[0, 2, 4, 5]])
    assert torch.equal(field.params["0.weight"], w)  # functional: the original is untouched
    one = field.set(mask, other[0])  # a single row broadcasts
    assert torch.equal(one.params["0.bias"][[0, 2, 5]], other.params["0.bias"][0].expand(3, -1))
    with pytest.raises(IndexError):
        field[6]
    with pytest.raises(TypeError, match="truth value"):
        bool(field)


def test_where_clone_and_to():
    a = ModelField.from_factory(mlp, 4, seed=1)
    b = ModelField.from_factory(mlp, 4, seed=2)
    mask = torch.tensor([True, False, False, True])
    c = where(mask, a, b)
    for k in a.params:
        assert torch.equal(c.params[k][mask], a.params[k][mask])
        assert torch.equal(c.params[k][~mask], b.params[k][~mask])
    d = a.clone()
    d.params["0.weight"].zero_()
    assert not torch.equal(a.params["0.weight"], d.params["0.weight"])
    e = a.to(dtype=torch.float64)
    assert e.dtype == torch.float64 and e.device.type == "cpu"
    assert torch.allclose(e.params["2.bias"].float(), a.params["2.bias"])


def test_arithmetic_matches_tensor_arithmetic():
    a = ModelField.from_factory(with_norm, 3, seed=1)
    b = ModelField.from_factory(with_norm, 3, seed=2)
    a.buffers["1.running_mean"].normal_()
    b.buffers["1.num_batches_tracked"].fill_(7)
    w = torch.tensor([0.5, 2.0, -1.0])
    checks = {
        "a+b": (a + b, lambda x, y: x + y),
        "a-b": (a - b, lambda x, y: x - y),
        "a*0.25": (a * 0.25, lambda x, y: x * 0.25),
        "w*a": (w * a, lambda x, y: w.view(-1, *([1] * (x.dim() - 1))) * x),
        "a*w": (a * w, lambda x, y: x * w.view(-1, *([1] * (x.dim() - 1)))),
        "a/w": (a / w, lambda x, y: x / w.view(-1, *([1] * (x.dim() - 1)))),
        "-a": (-a, lambda x, y: -x),
        "sum": (sum([a, b]), lambda x, y: x + y),
    }
    for label, (got, fn) in checks.items():
        for k in a.params:
            assert torch.allclose(got.params[k], fn(a.params[k], b.params[k])), label
        assert torch.allclose(got.buffers["1.running_mean"], fn(a.buffers["1.running_mean"],
                                                                b.buffers["1.running_mean"])), label
        assert torch.equal(got.buffers["1.num_batches_tracked"], a.buffers["1.num_batches_tracked"]), label
    with pytest.raises(ValueError, match="architectures"):
        a + ModelField.from_factory(mlp, 3)
    with pytest.raises(ValueError, match="entries"):
        a * torch.ones(4)


def test_blend_and_mean():
    a = ModelField.from_factory(mlp, 4, seed=1)
    b = ModelField.from_factory(mlp, 4, seed=2)
    alpha = torch.tensor([0.0, 0.3, 0.7, 1.0])
    c = blend_models(a, b, alpha)
    for k in a.params:
        view = alpha.view(-1, *([1] * (a.params[k].dim() - 1)))
        assert torch.allclose(c.params[k], (1 - view) * a.params[k] + view * b.params[k], atol=1e-7)
        assert torch.equal(c.params[k][0], a.params[k][0])  # exact at the ends
        assert torch.equal(c.params[k][3], b.params[k][3])
        assert torch.allclose(blend_models(a, b, 0.25).params[k], 0.75 * a.params[k] + 0.25 * b.params[k], atol=1e-7)
    m = a.mean()
    weights = torch.tensor([1.0, 0.0, 3.0, 0.0])
    wm = a.mean(weights)
    assert len(m) == 1 and len(wm) == 1
    for k in a.params:
        assert torch.allclose(m.params[k][0], a.params[k].mean(0))
        assert torch.allclose(wm.params[k][0], (a.params[k][0] + 3 * a.params[k][2]) / 4, atol=1e-7)
    spread = a - a.mean()  # one-device fields broadcast
    assert len(spread) == 4
    assert torch.allclose(m.expand(4).params["0.bias"], a.params["0.bias"].mean(0).expand(4, -1))


def test_pytree_round_trip_and_foreign_leaves():
    a = ModelField.from_factory(with_norm, 3, seed=1)
    leaves, treedef = tree_flatten(a)
    assert len(leaves) == len(a.params) + len(a.buffers)
    assert all(isinstance(t, torch.Tensor) for t in leaves)
    back = tree_unflatten(treedef, leaves)
    assert isinstance(back, ModelField)
    for k, v in a.tensors().items():
        assert back.tensors()[k] is v
    # the calculus may rebuild the node around leaves of its own (e.g. neighbour fields)
    odd = tree_unflatten(treedef, [f"leaf{i}" for i in range(len(leaves))])
    assert odd.params["0.weight"] == "leaf0"
    doubled = tree_map(lambda t: t * 2 if t.is_floating_point() else t, a)
    assert torch.equal(doubled.params["2.bias"], a.params["2.bias"] * 2)
    # two fields of one architecture share their structure; different ones do not
    assert tree_flatten(ModelField.from_factory(with_norm, 5, seed=9))[1] == treedef
    assert tree_flatten(ModelField.from_factory(mlp, 3))[1] != treedef
    summed = tree_map(lambda x, y: x + y, a, a)
    assert torch.equal(summed.params["0.weight"], 2 * a.params["0.weight"])


def test_neighbour_average_equals_dense_product():
    a = ModelField.from_factory(with_norm, 5, seed=3)
    a.buffers["1.num_batches_tracked"].copy_(torch.tensor([2, 4, 6, 8, 10]))
    rng = np.random.default_rng(0)
    dense = rng.random((3, 5)) * (rng.random((3, 5)) < 0.6)
    dense[2] = 0.0
    dense[2, 4] = 1.0
    dense = dense / dense.sum(1, keepdims=True)
    for weights in (sp.csr_matrix(dense), sp.coo_matrix(dense), torch.tensor(dense).to_sparse(), dense):
        out = neighbour_average(weights, a)
        assert len(out) == 3
        for k, v in a.params.items():
            expected = (torch.tensor(dense, dtype=torch.float32) @ v.reshape(5, -1)).reshape(3, *v.shape[1:])
            assert torch.allclose(out.params[k], expected, atol=1e-6), k
        assert torch.allclose(out.buffers["1.running_var"], torch.tensor(dense, dtype=torch.float32)
                              @ a.buffers["1.running_var"])
        assert out.buffers["1.num_batches_tracked"].dtype == torch.long
        assert out.buffers["1.num_batches_tracked"][2] == 10
    with pytest.raises(ValueError, match="sending"):
        neighbour_average(sp.csr_matrix(np.ones((2, 4))), a)


def test_neighbour_models_reduce_like_neighbour_fields_and_weighted_means_follow_the_weights():
    from fieldlearn import Inbox, Network, RoundVM, local, mid, nbr, sense

    net = Network.from_edges(3, [(0, 1), (1, 2)])  # a line: 1 hears 0 and 2
    base = ModelField.from_factory(lambda: torch.nn.Linear(2, 1), 3, seed=4)
    net.sensors["w"] = np.array([1.0, 2.0, 5.0])

    def program():
        models = ModelField.from_spec(base.spec, {k: local(lambda i, t=v: t[i])(mid()) for k, v in base.params.items()})
        near = nbr(models)
        return {"mean": near.mean(include_self=True), "sum": near.sum(), "wmean": near.weighted_mean(nbr(sense("w"))),
                "own": near.own}

    vm = RoundVM(program, backend="torch")
    vm.sensors = net.sensors
    ids = np.arange(3)
    inbox = Inbox(*(torch.as_tensor(a) for a in net.graph.inbox_links(ids)[:2]), {})
    vm.round(ids, inbox)
    out = vm.round(ids, inbox)  # the second round: every neighbour has exported its model
    w = base.params["weight"]
    assert torch.allclose(out["mean"].params["weight"][1], w.mean(0))
    assert torch.allclose(out["sum"].params["weight"][1], w[0] + w[2])
    assert torch.allclose(out["wmean"].params["weight"][1], (1 * w[0] + 5 * w[2]) / 6)
    assert torch.allclose(out["wmean"].params["weight"][0], w[1])  # one neighbour: its model
    assert torch.equal(out["own"].params["weight"], w)
