"""collect: exact per-round tables (single- and multi-path, every op) and self-stabilisation towards tree/DAG sums."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, constant, run, sense
from fieldlearn.lib import collect, distance_to
from fieldlearn.testing import (
    assert_self_stabilises,
    collect_oracle,
    dag_collect,
    device_sets,
    gradient_bound,
    initial_states,
    networks,
    perturbations,
    schedules,
    sensor_values,
    shortest_distances,
    tree_collect,
    tree_height,
)


def line(n):
    return Network.from_edges(n, [(i, i + 1) for i in range(n - 1)])


def test_single_path_sum_on_a_line_one_level_per_round():
    net = line(3)
    net.sensors["p"] = np.array([0.0, 1.0, 2.0])
    net.sensors["v"] = np.array([1.0, 2.0, 4.0])
    series = run(lambda: collect(sense("p"), sense("v")), net, rounds=5).series()
    assert series.tolist() == [
        [1, 2, 4],  # round 1: nobody heard yet
        [1, 2, 4],  # round 2: parents chosen, not yet heard by the parents
        [3, 6, 4],  # round 3: 0 adds 1's part, 1 adds 2's
        [7, 6, 4],  # round 4: the root holds the total
        [7, 6, 4],
    ]


def test_every_op_on_a_small_tree():
    # 0 is the root; 1 and 2 its children; 3 and 4 children of 1
    net = Network.from_edges(5, [(0, 1), (0, 2), (1, 3), (1, 4)])
    net.sensors["p"] = np.array([0.0, 1.0, 1.0, 2.0, 2.0])
    net.sensors["v"] = np.array([5.0, -1.0, 3.0, 8.0, 2.0])
    results = {op: run(lambda op=op: collect(sense("p"), sense("v"), op), net, rounds=6).last for op in ("sum", "mean", "min", "max")}
    assert results["sum"].tolist() == [17, 9, 3, 8, 2]
    assert results["mean"].tolist() == pytest.approx([17 / 5, 3, 3, 8, 2])
    assert results["min"].tolist() == [-1, -1, 3, 8, 2]
    assert results["max"].tolist() == [8, 8, 3, 8, 2]


def test_integer_and_nested_values_keep_their_types():
    net = line(3)
    net.sensors["p"] = np.array([0.0, 1.0, 2.0])
    net.sensors["k"] = np.array([1, 2, 3])
    total, count = run(lambda: collect(sense("p"), (sense("k"), constant(1))), net, rounds=5).last
    assert total.tolist() == [6, 5, 3] and total.dtype.kind == "i"
    assert count.tolist() == [3, 2, 1]


def test_parent_ties_go_to_the_lowest_id():
    # 3 hears 1 and 2, both at potential 1: it reports to 1 only
    net = Network.from_edges(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    net.sensors["p"] = np.array([0.0, 1.0, 1.0, 2.0])
    last = run(lambda: collect(sense("p"), constant(1.0)), net, rounds=6).last
    assert last.tolist() == [4, 2, 1, 1]


def test_multi_path_splits_sums_in_proportion_to_the_potential_drop():
    # 3 (potential 3) feeds 1 (potential 1, drop 2) and 2 (potential 2, drop 1): 2/3 and 1/3 of it
    net = Network.from_edges(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    net.sensors["p"] = np.array([0.0, 1.0, 2.0, 3.0])
    net.sensors["v"] = np.array([0.0, 0.0, 0.0, 3.0])
    series = run(lambda: collect(sense("p"), sense("v"), multipath=True), net, rounds=5).series()
    assert series[-1].tolist() == pytest.approx([3.0, 2.0, 1.0, 3.0])
    assert series[2].tolist() == pytest.approx([0.0, 2.0, 1.0, 3.0])  # round 3: the split has reached 1 and 2
    mx = run(lambda: collect(sense("p"), sense("v"), "max", multipath=True), net, rounds=5).last
    assert mx.tolist() == [3, 3, 3, 3]  # max goes whole to every lower neighbour


def test_groups_keep_collection_inside_each_group():
    net = line(4)
    net.sensors["p"] = np.array([0.0, 1.0, 1.0, 0.0])
    net.sensors["g"] = np.array([0, 0, 1, 1])
    net.sensors["v"] = np.array([1.0, 2.0, 4.0, 8.0])
    single = run(lambda: collect(sense("p"), sense("v"), group=sense("g")), net, rounds=5).last
    multi = run(lambda: collect(sense("p"), sense("v"), multipath=True, group=sense("g")), net, rounds=5).last
    assert single.tolist() == [3, 2, 4, 12]
    assert multi.tolist() == [3, 2, 4, 12]


def test_large_values_such_as_models_are_summed_exactly():
    net = Network.grid(4, 3, spacing=1.0, radius=1.5)
    net.sensors["source"] = net.ids == 5
    rng = np.random.default_rng(0)
    weights = rng.integers(-5, 5, size=(12, 8, 8)).astype(np.float64)
    net.sensors["w"] = weights
    got = run(lambda: collect(distance_to(sense("source")), sense("w")), net, rounds=15).last
    expected = tree_collect(net, shortest_distances(net, "source"), weights)
    np.testing.assert_array_equal(got, expected)
    assert got[5].tolist() == weights.sum(axis=0).tolist()
    mean = run(lambda: collect(distance_to(sense("source")), sense("w"), "mean", multipath=True), net, rounds=15).last
    np.testing.assert_allclose(mean[5], weights.mean(axis=0), atol=1e-12)


def test_unknown_op_is_an_error():
    net = line(2)
    with pytest.raises(ValueError, match="unknown collect op"):
        run(lambda: collect(constant(0.0), constant(1.0), "median"), net, rounds=1)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_collect_on_the_torch_backend():
    pytest.importorskip("torch")
    net = Network.grid(4, 3, spacing=1.0, radius=1.5)
    net.sensors["source"] = net.ids == 0
    net.sensors["v"] = np.arange(12.0)

    def program():
        d = distance_to(sense("source"))
        return collect(d, sense("v")), collect(d, sense("v"), "max", multipath=True), collect(d, sense("v"), multipath=True)

    single, mx, multi = run(program, net, rounds=15, backend="torch").last
    pot = shortest_distances(net, "source")
    np.testing.assert_allclose(single, tree_collect(net, pot, np.arange(12.0)), rtol=1e-6)
    np.testing.assert_allclose(mx, dag_collect(net, pot, np.arange(12.0), "max"), rtol=1e-6)
    np.testing.assert_allclose(multi, dag_collect(net, pot, np.arange(12.0)), rtol=1e-5)


# -- self-stabilisation ------------------------------------------------------------------------------------
def collect_within(multipath):
    def within(n):
        pot = shortest_distances(n, "source")
        return gradient_bound(n, "source") + tree_height(n, pot, multipath=multipath) + 1

    return within


@settings(max_examples=20, deadline=None)
@given(
    st.data(), networks(2, 16), initial_states(), st.sampled_from(["sum", "mean", "min", "max"]),
    schedules(("sync", "batches")), perturbations(("drop_links", "move_sensor")),
)
def test_single_path_collect_self_stabilises_to_tree_aggregates(data, net, initial, op, schedule, perturb):
    """collect(distance_to(source), v, op) reaches the parent-tree aggregate of every subtree (exact on integers)
    within the gradient bound plus the tree height plus one round, holds, and again after a change."""
    net.sensors["source"] = data.draw(device_sets(net, 1, 3), label="source")
    net.sensors["v"] = data.draw(sensor_values(net), label="v")
    assert_self_stabilises(
        lambda: collect(distance_to(sense("source")), sense("v"), op), net, collect_oracle("v", op=op),
        within=collect_within(False), hold=4, schedule=schedule, initial=initial, perturb=perturb,
    )


@settings(max_examples=15, deadline=None)
@given(st.data(), networks(2, 16), initial_states(), st.sampled_from(["sum", "max"]), perturbations(("drop_links", "move_sensor")))
def test_multi_path_collect_self_stabilises_to_dag_aggregates(data, net, initial, op, perturb):
    """Multi-path collect reaches the DAG split (sum) or DAG max within the gradient bound plus the longest
    descending chain plus one round; sums are conserved: the sources together hold the network's total."""
    net.sensors["source"] = data.draw(device_sets(net, 1, 3), label="source")
    net.sensors["v"] = data.draw(sensor_values(net), label="v")
    report = assert_self_stabilises(
        lambda: collect(distance_to(sense("source")), sense("v"), op, multipath=True), net,
        collect_oracle("v", op=op, multipath=True, atol=1e-7, rtol=1e-9), within=collect_within(True), hold=4,
        initial=initial, perturb=perturb, atol=1e-7,
    )
    if op == "sum":
        sources = report.network.sensors["source"]
        assert report.last[sources].sum() == pytest.approx(report.network.sensors["v"].sum(), abs=1e-6)
