"""Field and NbrField arithmetic, projection and misuse errors."""
import numpy as np
import pytest

from fieldlearn import Field, FieldError, Network, branch, mid, mux, nbr, nbr_ids, run, sense, share
from fieldlearn.calculus import fields as fields_module
from fieldlearn.calculus.backend import NumpyBackend
from fieldlearn.calculus.fields import Domain

INF = float("inf")


def _field(values):
    dom = Domain(np.arange(len(values)), NumpyBackend())
    return Field(np.asarray(values), dom), dom


def test_arithmetic_and_comparisons_are_pointwise():
    f, dom = _field([1.0, 2.0, 3.0])
    g = Field(np.array([3.0, 2.0, 1.0]), dom)
    np.testing.assert_array_equal((f + g).values, [4, 4, 4])
    np.testing.assert_array_equal((2 * f - 1).values, [1, 3, 5])
    np.testing.assert_array_equal((1 / f).values, [1, 0.5, 1 / 3])
    np.testing.assert_array_equal((f < g).values, [True, False, False])
    np.testing.assert_array_equal(((f > 1) & (g > 1)).values, [False, True, False])
    np.testing.assert_array_equal((~(f == 2)).values, [True, False, True])
    np.testing.assert_array_equal((-f).values, [-1, -2, -3])
    np.testing.assert_array_equal(abs(f - 2).values, [1, 0, 1])


def test_per_device_vectors_broadcast_row_by_row():
    dom = Domain(np.arange(2), NumpyBackend())
    vec = Field(np.array([[1.0, 2.0], [3.0, 4.0]]), dom)
    scale = Field(np.array([10.0, 100.0]), dom)
    np.testing.assert_array_equal((vec * scale).values, [[10, 20], [300, 400]])
    np.testing.assert_array_equal((vec + np.array([1.0, -1.0])).values, [[2, 1], [4, 3]])
    np.testing.assert_array_equal(vec[1].values, [2, 4])


def test_bool_and_iteration_of_a_field_raise():
    f, _ = _field([1, 2])
    with pytest.raises(FieldError, match="branch"):
        bool(f)
    with pytest.raises(FieldError):
        list(f)


def test_fields_from_sibling_branches_cannot_mix():
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["c"] = np.array([True, False])
    leaked = {}

    def prog():
        branch(sense("c"), lambda: leaked.setdefault("then", mid()), lambda: mid())
        return branch(~sense("c"), lambda: mid() + leaked["then"], lambda: mid())

    with pytest.raises(FieldError, match="another round or another branch"):
        run(prog, net, rounds=1)


def test_neighbour_field_arithmetic_keeps_only_links_aligned_in_both_operands():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    net.sensors["c"] = np.array([True, True, False])

    def prog():
        everyone = nbr(mid() * 1.0)
        return (everyone + 0).count(), branch(sense("c"), lambda: (everyone * nbr(1.0)).count(), lambda: everyone.count())

    a, b = run(prog, net, rounds=2).last
    np.testing.assert_array_equal(a, [1, 2, 1])
    np.testing.assert_array_equal(b, [1, 1, 1])


def test_repr_shows_values():
    f, _ = _field([1, 2])
    assert repr(f) == "Field(array([1, 2]))"


# -- large values (models): never copied per link ---------------------------------------------------------------


def _big_network(n=25, seed=4):
    net = Network.random_geometric(n, mean_degree=5, seed=seed)
    rng = np.random.default_rng(seed)
    net.sensors["big"] = rng.normal(size=(n, 8, 16))  # 128 floats per device: large
    net.sensors["w"] = rng.random(n)
    net.sensors["side"] = rng.random(n) < 0.5
    return net


def _per_link_reference(net):
    """Per device: the list of its neighbours (all aligned after a synchronous round)."""
    g = net.graph
    return [g.neighbours[g.indptr[i]:g.indptr[i + 1]] for i in range(net.n_devices)]


def _large_program():
    big, w, side = sense("big"), sense("w"), sense("side")
    nb = nbr(big)
    nw = nbr(w)
    chosen = mux(nw > 0.5, nb, 0.0)  # a pending gather over the rows of both sides
    mixed = mux(nw > 0.5, nb, big * 2.0)  # a field's value on every link
    inside = branch(side, lambda: nb.sum(), lambda: nb.max())  # projected onto the sides
    kept = share(big, lambda n: n.self * 0.5 + n.sum(where=nbr_ids() >= 0) * 0.0)  # own entries read from the store
    return (nb.sum(), nb.mean(include_self=True), nb.weighted_sum(nw), nb.sum(where=nbr_ids() < mid()),
            nb.min(), nb.max(include_self=True), chosen.sum(), mixed.sum(), inside, kept)


def test_reductions_of_large_neighbour_values_equal_the_per_link_arithmetic(monkeypatch):
    monkeypatch.setattr(fields_module, "CHUNK_BYTES", 3 * 128 * 8)  # min/max gather three links at a time
    net = _big_network()
    big, w, side = net.sensors["big"], net.sensors["w"], net.sensors["side"]
    got = run(_large_program, net, rounds=3).last
    hood = _per_link_reference(net)
    ids = np.arange(net.n_devices)
    want = [
        [big[h].sum(0) for h in hood],
        [(big[h].sum(0) + big[i]) / (len(h) + 1) for i, h in enumerate(hood)],
        [(big[h] * w[h][:, None, None]).sum(0) for h in hood],
        [big[h[h < i]].sum(0) for i, h in enumerate(hood)],
        [big[h].min(0) if len(h) else np.full((8, 16), np.inf) for h in hood],
        [np.maximum(big[h].max(0), big[i]) if len(h) else big[i] for i, h in enumerate(hood)],
        [big[h[w[h] > 0.5]].sum(0) for h in hood],
        [np.where((w[h] > 0.5)[:, None, None], big[h], 2 * big[i]).sum(0) for i, h in enumerate(hood)],
        [big[h].sum(0) if side[i] else (big[h].max(0) if len(h) else np.full((8, 16), -np.inf))
         for i, h in enumerate(hood)],  # an outer neighbour field keeps all of a device's links inside a branch
        [big[i] * 0.5 ** 3 for i in ids],
    ]
    for k, (g, e) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, np.stack(e), rtol=1e-12, atol=1e-12, err_msg=f"result {k}")


def test_large_neighbour_values_are_never_gathered_once_per_link(monkeypatch):
    # sums, means, weighted sums, where-sums, mux, branches and share's own entries gather no large row per link;
    # min and max gather at most CHUNK_BYTES of them at once (here: one device's links)
    monkeypatch.setattr(fields_module, "CHUNK_BYTES", 128 * 8)
    net = _big_network()
    take = NumpyBackend.take
    gathered = []

    def recording_take(self, src, idx):
        if src.ndim > 1 and src[0].size >= 64:
            gathered.append(len(idx))
        return take(self, src, idx)

    monkeypatch.setattr(NumpyBackend, "take", recording_take)
    # all but `mixed` (a per-device field beside a neighbour field: each link holds its receiver's row, by nature)
    run(lambda: tuple(r for k, r in enumerate(_large_program()) if k != 7), net, rounds=2)
    assert gathered and max(gathered) <= max(int(net.graph.degree().max()), net.n_devices)
    assert net.graph.n_links > 2 * max(int(net.graph.degree().max()), net.n_devices)


def test_where_selects_the_neighbours_a_reduction_runs_over():
    net = Network.from_edges(4, [(0, 1), (0, 2), (0, 3), (1, 2)])
    net.sensors["v"] = np.array([1.0, 2.0, 4.0, 8.0])

    def prog():
        v = nbr(sense("v"))
        odd = nbr_ids() % 2 == 1
        return (v.sum(where=odd), v.min(where=odd, default=None), v.max(where=odd, default=-1.0),
                v.count(where=odd), v.mean(where=odd), (v > 3).any(where=odd))

    s, lo, hi, c, mean, big = run(prog, net, rounds=2).last
    assert s.tolist() == [10.0, 0.0, 2.0, 0.0] and lo.tolist() == [2.0, INF, 2.0, INF]
    assert hi.tolist() == [8.0, -1.0, 2.0, -1.0] and c.tolist() == [2, 0, 1, 0]
    np.testing.assert_array_equal(mean, [5.0, np.nan, 2.0, np.nan])
    assert big.tolist() == [True, False, False, False]
    with pytest.raises(FieldError, match="one boolean per neighbour"):
        run(lambda: nbr(sense("v")).sum(where=nbr(sense("v"))), net, rounds=1)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("large", [False, True])
def test_sum_with_initial_is_initial_plus_the_sum_bit_for_bit(backend, large):
    # for large values initial is added into the sparse product's own array; the values must be those of initial + sum
    net = _big_network(n=30, seed=5)
    net.sensors["v"] = net.sensors["big"] if large else net.sensors["w"]
    own_values = net.sensors["v"] * 3.0
    own_values[np.random.default_rng(5).random(own_values.shape) < 0.3] = -0.0  # signed zeros must add as they do
    net.sensors["own"] = own_values

    def prog():
        v, sel = nbr(sense("v")), nbr_ids() < mid()
        own = sense("own")
        return (v.sum(where=sel, default=None, initial=own), own + v.sum(where=sel, default=None),
                v.sum(initial=own), own + v.sum(), v.sum(where=sel, initial=2.0), 2.0 + v.sum(where=sel),
                v.sum(where=sel, initial=own), own + v.sum(where=sel), own)

    fused, plain, fused_all, plain_all, const, const_plain, fused_sel, plain_sel, own = (
        np.asarray(r) for r in run(prog, net, rounds=2, backend=backend).last)
    for a, b in ((fused, plain), (fused_all, plain_all), (const, const_plain), (fused_sel, plain_sel)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))  # bit for bit, signs of zero included
    v = net.sensors["v"].astype(fused.dtype)
    want = np.stack([own[i] + sum((v[j] for j in h if j < i), np.zeros_like(v[0]))
                     for i, h in enumerate(_per_link_reference(net))])
    np.testing.assert_allclose(fused, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("default", [None, 0, 0.0, 5.0])
def test_a_large_sum_with_an_initial_field_hands_it_to_the_product_or_adds_it_in_place(default):
    # collect's step (default=None) and any identity default: initial goes into the product; another default: the
    # product is this call's own array, so initial is added into it; either way no array the size of the models more
    from unittest import mock

    from fieldlearn.calculus.backend import TorchBackend

    net = _big_network(n=30, seed=5)
    net.sensors["own"] = net.sensors["big"] * 3.0
    given, added = [], []
    product = TorchBackend.sparse_rows_times

    def spy(self, *args):
        given.append(len(args) > 5 and args[5] is not None)
        return product(self, *args)

    def prog():
        return nbr(sense("big")).sum(where=nbr_ids() < mid(), default=default, initial=sense("own"))

    real_add = fields_module.Field.__add__

    def counting_add(self, other):
        added.append(True)
        return real_add(self, other)

    with mock.patch.object(TorchBackend, "sparse_rows_times", spy), \
            mock.patch.object(fields_module.Field, "__add__", counting_add), \
            mock.patch.object(fields_module.Field, "__radd__", counting_add):
        run(prog, net, rounds=1, backend="torch")
    assert given == [default in (None, 0, 0.0)]
    assert not added


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("large", [False, True])
def test_pick_is_the_selected_neighbours_value_or_otherwise(backend, large):
    net = _big_network(n=30, seed=7)
    rng = np.random.default_rng(7)
    hood = _per_link_reference(net)
    # each device names one target: a neighbour, or (for some) an id that is no neighbour of it
    target = np.array([rng.choice(h) if len(h) and rng.random() < 0.7 else -5 for h in hood])
    net.sensors["target"] = target
    net.sensors["v"] = net.sensors["big"] if large else net.sensors["w"]
    net.sensors["own"] = -net.sensors["v"]

    def prog():
        v, own, sel = nbr(sense("v")), sense("own"), nbr_ids() == sense("target")
        return v.pick(sel, own), mux(sel.any(), v.sum(where=sel), own), nbr(sense("v") > 0.5).pick(sel, own > 0)

    got, composed, flags = (np.asarray(r) for r in run(prog, net, rounds=2, backend=backend).last)
    v = net.sensors["v"]
    want = np.stack([v[t] if t >= 0 else -v[i] for i, t in enumerate(target)]).astype(got.dtype)  # torch: float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(composed, want, rtol=0, atol=0)
    vt = v.astype(got.dtype)
    np.testing.assert_array_equal(flags, np.stack([vt[t] > 0.5 if t >= 0 else -vt[i] > 0 for i, t in enumerate(target)]))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("n", [40, 900])
def test_argmin_and_argmax_where_are_the_best_selected_neighbour_lowest_id_on_ties(backend, n):
    # 900 devices have over 4096 links: a sparse selection is reduced over its own links only
    net = Network.random_geometric(n, mean_degree=6, seed=3)
    rng = np.random.default_rng(3)
    net.sensors["v"] = rng.integers(0, 4, n).astype(float)  # many ties
    net.sensors["k"] = rng.integers(0, 5, n)

    def prog():
        v, sel = nbr(sense("v")), nbr(sense("k")) == 0
        return (v.argmin(where=sel), v.argmax(where=sel, default=-7), v.argmin(where=sel, include_self=True),
                v.min(where=sel))

    lo, hi, lo_self, least = (np.asarray(r) for r in run(prog, net, rounds=2, backend=backend).last)
    v, k = net.sensors["v"], net.sensors["k"]
    for i, h in enumerate(_per_link_reference(net)):
        chosen = sorted(int(j) for j in h if k[j] == 0)
        best = min(chosen, key=lambda j: (v[j], j)) if chosen else -1
        assert lo[i] == best and hi[i] == (max(chosen, key=lambda j: (v[j], -j)) if chosen else -7)
        assert least[i] == (v[best] if chosen else INF)
        with_self = min(chosen + [i], key=lambda j: (v[j], j))
        assert lo_self[i] == with_self


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_pick_over_thousands_of_links_takes_each_devices_first_selected_link(backend):
    # above 4096 links the first selected link of every device is found from the selected links alone
    net = Network.random_geometric(900, mean_degree=8, seed=2)
    rng = np.random.default_rng(0)
    net.sensors["v"] = rng.normal(size=(900, 3))
    net.sensors["t"] = rng.integers(0, 900, 900)
    assert net.graph.n_links > 4096
    got = np.asarray(run(lambda: nbr(sense("v")).pick(nbr_ids() > sense("t"), sense("v") * 2.0), net, rounds=2,
                         backend=backend).last)
    v, t = net.sensors["v"], net.sensors["t"]
    want = np.stack([next((v[j] for j in h if j > t[i]), v[i] * 2.0) for i, h in enumerate(_per_link_reference(net))])
    np.testing.assert_allclose(got, want.astype(got.dtype), rtol=0, atol=0)


def test_pick_with_nothing_selected_is_otherwise_and_a_constant_otherwise_is_a_mux():
    net = _big_network(n=6, seed=1)
    got = run(lambda: nbr(sense("big")).pick(nbr_ids() < 0, sense("big") * 2.0), net, rounds=1).last
    np.testing.assert_allclose(np.asarray(got), net.sensors["big"] * 2.0, rtol=0, atol=0)
    nothing = run(lambda: nbr(sense("big")).pick(nbr_ids() < 0, 7.0), net, rounds=1).last
    np.testing.assert_array_equal(np.asarray(nothing), np.full((6, 8, 16), 7.0))
    lowest = np.array([h.min() if len(h) else -1 for h in _per_link_reference(net)])
    net.sensors["lowest"] = lowest

    def prog():
        v, sel = nbr(sense("big")), nbr_ids() == sense("lowest")
        return v.pick(sel, 7.0), mux(sel.any(), v.sum(where=sel), 7.0)

    picked, composed = (np.asarray(r) for r in run(prog, net, rounds=2).last)
    np.testing.assert_array_equal(picked, composed)
    want = np.stack([net.sensors["big"][t] if t >= 0 else np.full((8, 16), 7.0) for t in lowest])
    np.testing.assert_array_equal(picked, want)
