"""fieldlearn.learning.dissimilarity: model distances and losses between neighbours, against per-link oracles."""
from __future__ import annotations

import numpy as np
import torch

from fieldlearn import Inbox, Network, RoundVM, local, mid
from fieldlearn.learning.context import RESOURCE, LearningContext
from fieldlearn.learning.dissimilarity import mean_cross_entropy, neighbour_loss, parameter_distance
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.samples import pad_sets


def one_round(program, net, ctx=None):
    """The (self, links) values `program` computes in its second round (every neighbour's model then exported)."""
    seen = []
    vm = RoundVM(lambda: seen.append(program()) or 0, backend="torch", resources={RESOURCE: ctx} if ctx else {})
    vm.sensors = net.sensors
    ids = np.arange(net.n_devices)
    indptr, nbrs, dist = net.graph.inbox_links(ids)
    inbox = Inbox(torch.as_tensor(indptr), torch.as_tensor(nbrs), {"distance": torch.as_tensor(dist)})
    vm.round(ids, inbox)
    vm.round(ids, inbox)
    return seen[-1]


def test_parameter_distance_is_the_euclidean_distance_on_every_link():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3), (0, 3)])
    base = ModelField.from_factory(lambda: torch.nn.Linear(3, 2), 4, seed=1)

    def program():
        models = ModelField.from_spec(base.spec, {k: local(lambda i, t=v: t[i])(mid()) for k, v in base.params.items()})
        d = parameter_distance(models)
        return d.self_value, d.values

    own, links = one_round(program, net)
    flat = torch.cat([t.reshape(4, -1) for t in base.params.values()], 1).double()
    rows, nbrs = net.graph.rows(), net.graph.neighbours
    want = (flat[rows] - flat[nbrs]).norm(dim=1)
    assert torch.allclose(links, want) and torch.equal(own, torch.zeros(4, dtype=torch.float64))


def test_neighbour_loss_is_each_neighbours_model_on_my_samples():
    ctx = LearningContext({"model": {"hidden": [4]}}, n_devices=3, region_names=["a"], initial_region=[0, 0, 0])
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    base = ModelField.from_factory(ctx.make_module, 3, seed=2)
    rows = pad_sets(ctx.samples(np.arange(3), np.zeros(3, dtype=np.int64), 0))
    net.sensors["s"] = rows.numpy()

    def program():
        from fieldlearn import sense

        models = ModelField.from_spec(base.spec, {k: local(lambda i, t=v: t[i])(mid()) for k, v in base.params.items()})
        loss = neighbour_loss(models, sense("s"))
        return loss.self_value, loss.values

    own, links = one_round(program, net, ctx)
    r, nbrs = net.graph.rows(), net.graph.neighbours
    for k in range(len(r)):
        theirs = base[int(nbrs[k])]
        want = mean_cross_entropy(theirs, ctx.dataset, rows[int(r[k])][None])
        assert torch.allclose(links[k], want[0])
    assert torch.allclose(own, mean_cross_entropy(base, ctx.dataset, rows))
    # asymmetric: j's model on i's samples differs from i's model on j's
    assert not torch.allclose(links[0], links[1])
