"""The round VM: batches equal one-by-one evaluation, stores grow, exports are snapshots, backends agree."""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import FieldError, Network, RoundVM, branch, distances, mid, mux, nbr, rep, run, sense, share
from fieldlearn.calculus.runner import inbox_of

INF = float("inf")


def mixed_program():
    """A program touching every stateful construct, with per-device branching."""
    src = sense("source")
    d = share(INF, lambda n: mux(src, 0.0, (n + distances()).min()))
    count = rep(0, lambda c: c + 1)
    side = branch(mid() % 2 == 0, lambda: nbr(d).min(include_self=True), lambda: rep(0.0, lambda x: x + nbr(1.0).sum()))
    return d, count, side, nbr(mid()).max(default=-1)


@st.composite
def graph_and_batches(draw):
    n = draw(st.integers(2, 9))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    net = Network.from_edges(n, edges, distances=[1.0 + (a * 7 + b) % 3 for a, b in edges])
    net.sensors["source"] = np.arange(n) == draw(st.integers(0, n - 1))
    warmup = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=1, unique=True), max_size=6))
    batch = draw(st.lists(st.integers(0, n - 1), min_size=1, unique=True))
    return net, warmup, batch


def _stores(vm):
    return {k: (s.values.copy(), s.stamp.copy()) for k, s in {**vm.exports, **vm.state}.items()}


@settings(max_examples=60)
@given(graph_and_batches())
def test_a_batch_equals_its_devices_fired_one_by_one_at_that_instant(case):
    net, warmup, batch = case
    vm = RoundVM(mixed_program)
    vm.sensors = net.sensors
    for b in warmup:
        vm.round(np.array(b), inbox_of(net.graph, np.array(b)))
    singles = []
    for d in batch:
        solo = copy.deepcopy(vm)
        out = solo.round(np.array([d]), inbox_of(net.graph, np.array([d])))
        singles.append((d, out, _stores(solo)))
    together = vm.round(np.array(batch), inbox_of(net.graph, np.array(batch)))
    stores = _stores(vm)
    for i, (d, out, solo_stores) in enumerate(singles):
        for got, want in zip(together, out):
            np.testing.assert_array_equal(got[i], want[0])
        for key, (values, stamp) in solo_stores.items():
            assert stamp[d] == stores[key][1][d], key
            if stamp[d] == vm.clock - 1:
                np.testing.assert_array_equal(stores[key][0][d], values[d])


@settings(max_examples=25)
@given(st.integers(5, 40), st.integers(0, 1000))
def test_torch_backend_equals_numpy_backend(n, seed):
    pytest.importorskip("torch")
    net = Network.random_geometric(n, mean_degree=4, seed=seed)
    net.sensors["source"] = net.ids == seed % n
    a = run(mixed_program, net, rounds=6)
    b = run(mixed_program, net, rounds=6, backend="torch")
    for x, y in zip(a.last, b.last):
        np.testing.assert_allclose(x, y.astype(x.dtype), rtol=1e-6)


def test_stores_grow_when_devices_join():
    prog = lambda: share(INF, lambda n: mux(sense("source"), 0.0, (n + 1.0).min()))
    small = Network.from_edges(2, [(0, 1)])
    small.sensors["source"] = np.array([True, False])
    trace = run(prog, small, rounds=2)
    big = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    big.sensors["source"] = np.array([True, False, False, False])
    trace = run(prog, big, rounds=2, vm=trace.vm)
    np.testing.assert_array_equal(trace.last, [0, 1, 2, 3])


def test_forget_restarts_a_device_from_its_initial_state():
    net = Network.from_edges(2, [(0, 1)])
    trace = run(lambda: rep(0, lambda c: c + 1), net, rounds=3)
    trace.vm.forget([1])
    trace = run(lambda: rep(0, lambda c: c + 1), net, rounds=1, vm=trace.vm)
    np.testing.assert_array_equal(trace.last, [4, 1])


def test_forget_before_the_first_round_drops_nothing_and_the_run_proceeds():
    # issue 11: a crash fault at time 0 reaches forget while the VM holds no device arrays yet
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    vm = RoundVM(lambda: rep(0, lambda c: c + 1))
    vm.forget([1, 5])
    trace = run(lambda: rep(0, lambda c: c + 1), net, rounds=2, vm=vm)
    np.testing.assert_array_equal(trace.last, [2, 2, 2])
    vm.forget(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="device ids must be >= 0"):
        vm.forget([-1])


def test_a_forgotten_device_is_not_aligned_with_its_neighbours():
    net = Network.from_edges(2, [(0, 1)])
    trace = run(lambda: nbr(1).count(), net, rounds=2)
    trace.vm.forget([1])
    trace = run(lambda: nbr(1).count(), net, rounds=1, schedule=[[0]], vm=trace.vm)
    assert trace.last[0] == 0


def test_exports_are_snapshots_later_mutation_does_not_leak():
    net = Network.from_edges(2, [(0, 1)])
    held = {}

    def prog():
        f = mid() * 1.0
        out = nbr(f).sum()
        held["f"] = f
        return out

    trace = run(prog, net, rounds=1)
    held["f"].values[:] = 99.0
    trace = run(prog, net, rounds=1, vm=trace.vm)
    np.testing.assert_array_equal(trace.last, [1.0, 0.0])


def test_dtype_widens_across_rounds_and_shape_changes_are_errors():
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["v"] = np.array([1, 2])
    trace = run(lambda: nbr(sense("v")).sum(), net, rounds=1)
    net.sensors["v"] = np.array([0.5, 1.5])
    trace = run(lambda: nbr(sense("v")).sum(), net, rounds=2, vm=trace.vm)
    np.testing.assert_array_equal(trace.history[0], [2, 1])  # the neighbours' previous (integer) exports
    np.testing.assert_array_equal(trace.history[1], [1.5, 0.5])
    net.sensors["v"] = np.ones((2, 3))
    with pytest.raises(FieldError, match="changed shape"):
        run(lambda: nbr(sense("v")).sum(), net, rounds=1, vm=trace.vm)


def test_weighted_sum_of_large_values_is_a_sparse_product():
    net = Network.random_geometric(30, mean_degree=5, seed=3)
    rng = np.random.default_rng(0)
    net.sensors["model"] = rng.normal(size=(30, 8, 16))
    net.sensors["w"] = rng.random(30)

    def prog():
        m = nbr(sense("model"))
        w = nbr(sense("w"))
        return m.weighted_sum(w), m.sum(), (m * w).sum(), m.mean(include_self=True)

    ws, s, dense, mean = run(prog, net, rounds=2).last
    np.testing.assert_allclose(ws, dense, atol=1e-12)
    g = net.graph
    want = np.stack([net.sensors["model"][g.neighbours[g.indptr[i]:g.indptr[i + 1]]].sum(0) for i in range(30)])
    np.testing.assert_allclose(s, want, atol=1e-12)
    counts = g.degree() + 1
    np.testing.assert_allclose(mean, (want + net.sensors["model"]) / counts[:, None, None], atol=1e-12)


def test_inbox_must_match_the_batch():
    vm = RoundVM(lambda: mid())
    from fieldlearn import Inbox

    with pytest.raises(ValueError, match="indptr"):
        vm.round(np.array([0, 1]), Inbox(np.array([0, 0]), np.array([], dtype=np.int64)))


def test_sent_bytes_counts_what_each_device_exported_in_its_latest_round():
    import numpy as np

    from fieldlearn import Network, branch, mid, nbr, share
    from fieldlearn.calculus import Inbox, RoundVM

    net = Network.from_edges(3, [(0, 1), (1, 2)])

    def program():
        nbr(np.zeros(3))  # 3 float64 per device: 24 bytes
        return branch(mid() == 0, lambda: share(0.0, lambda n: n.min(include_self=True)), lambda: 0.0)  # 8 more

    vm = RoundVM(program)
    assert vm.sent_bytes(np.arange(3)).tolist() == [0, 0, 0]
    for batch in (np.arange(3), np.array([1])):
        indptr, nbrs, dist = net.graph.inbox_links(batch)
        vm.round(batch, Inbox(indptr, nbrs, {"distance": dist}))
    assert vm.sent_bytes(np.arange(3)).tolist() == [32, 24, 24]


def _rounds(net, schedule, rounds=4, hint=True):
    """Every round's results of mixed_program under `schedule` (a list of batches per round), through vm.round."""
    vm = RoundVM(mixed_program)
    vm.sensors = net.sensors
    out = []
    for _ in range(rounds):
        for batch in schedule:
            inbox = inbox_of(net.graph, np.asarray(batch))
            if not hint:
                inbox.n_devices = None
            out.append(vm.round(np.asarray(batch), inbox))
    return out


@settings(max_examples=20)
@given(st.integers(3, 30), st.integers(0, 1000))
def test_fast_paths_of_whole_batches_give_the_results_of_the_general_ones(n, seed):
    # a batch 0..n-1 reads and writes by slicing and skips stamp comparisons after a batch of every device; the same
    # devices in another order, or split in two batches, take the general paths; no n_devices hint: a scan of links
    net = Network.random_geometric(n, mean_degree=4, seed=seed)
    net.sensors["source"] = net.ids == seed % n
    perm = np.random.default_rng(seed).permutation(n)
    ordered = _rounds(net, [np.arange(n)])
    permuted = _rounds(net, [perm])
    unhinted = _rounds(net, [np.arange(n)], hint=False)
    inverse = np.argsort(perm)
    for a, b, c in zip(ordered, permuted, unhinted):
        for x, y, z in zip(a, b, c):
            np.testing.assert_array_equal(x, y[inverse])
            np.testing.assert_array_equal(x, z)


def test_links_are_recounted_when_the_rows_of_the_inbox_change():
    # the VM reuses an inbox's receiving rows and segments while its indptr is the same; here it changes in place
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    vm = RoundVM(lambda: (nbr(1).count(), nbr(mid()).max(default=-1)))
    ids = np.arange(4)
    indptr, nbrs, dist = net.graph.inbox_links(ids)
    indptr, nbrs = indptr.copy(), nbrs.copy()
    from fieldlearn import Inbox

    first = vm.round(ids, Inbox(indptr, nbrs, {"distance": dist}))
    indptr[:] = [0, 3, 4, 5, 6]  # 0 hears 1, 2, 3; the others hear 0
    nbrs[:] = [1, 2, 3, 0, 0, 0]
    second = vm.round(ids, Inbox(indptr, nbrs, {"distance": np.ones(6)}))
    assert first[0].tolist() == [0, 0, 0, 0] and first[1].tolist() == [-1, -1, -1, -1]  # nobody exported yet
    assert second[0].tolist() == [3, 1, 1, 1] and second[1].tolist() == [3, 0, 0, 0]


def test_a_device_that_joins_after_a_whole_batch_is_not_aligned_yet():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    trace = run(lambda: nbr(1).count(), net, rounds=2)
    bigger = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    trace = run(lambda: nbr(1).count(), bigger, rounds=2, vm=trace.vm)
    # round 1 on the bigger network: 2 does not hear the newcomer 3 yet (3 never exported), 3 hears 2
    assert trace.history[0].tolist() == [1, 2, 1, 1] and trace.history[1].tolist() == [1, 2, 2, 1]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_large_rows_written_by_everyone_are_kept_uncopied_and_copied_before_a_partial_write(backend):
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])

    def program():
        grown = rep(lambda: sense("zeros"), lambda x: x + 1.0)
        return grown, nbr(grown).sum()

    vm = RoundVM(program, backend=backend)
    vm.sensors = {"zeros": np.zeros((4, 100))}
    everyone = np.arange(4)
    first, _ = vm.round(everyone, inbox_of(net.graph, everyone))
    second, around = vm.round(everyone, inbox_of(net.graph, everyone))
    assert (np.asarray(first) == 1.0).all() and (np.asarray(second) == 2.0).all()
    assert np.asarray(around)[:, 0].tolist() == [1.0, 2.0, 2.0, 1.0]  # the neighbours' exports of round 1
    some = np.array([1, 3])
    partial, _ = vm.round(some, inbox_of(net.graph, some))
    assert (np.asarray(partial) == 3.0).all()
    # the partial write did not reach into the rows that earlier rounds returned
    assert (np.asarray(first) == 1.0).all() and (np.asarray(second) == 2.0).all()
    third, around = vm.round(everyone, inbox_of(net.graph, everyone))
    assert np.asarray(third)[:, 0].tolist() == [3.0, 4.0, 3.0, 4.0]
    assert np.asarray(around)[:, 0].tolist() == [3.0, 4.0, 6.0, 2.0]  # 1 and 3 exported 3.0 last, 0 and 2 2.0


def test_a_local_function_cannot_write_into_the_previous_rounds_large_rows():
    from fieldlearn import local

    net = Network.from_edges(3, [(0, 1)])

    def bump(x):
        x += 1.0  # in place: the rows are the store's own (numpy marks them read-only)
        return x

    vm = RoundVM(lambda: rep(lambda: sense("zeros"), local(bump)))
    vm.sensors = {"zeros": np.zeros((3, 100))}
    everyone = np.arange(3)
    vm.round(everyone, inbox_of(net.graph, everyone))
    with pytest.raises(ValueError, match="read-only"):
        vm.round(everyone, inbox_of(net.graph, everyone))
