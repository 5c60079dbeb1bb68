"""Gradients, broadcast, distance_between and channel: exact per-round tables and self-stabilisation properties."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, mid, run, sense
from fieldlearn.lib import broadcast, channel, distance_between, distance_to, distance_to_bis, hop_count
from fieldlearn.testing import (
    Perturbation,
    assert_self_stabilises,
    broadcast_oracle,
    device_sets,
    gradient_bound,
    gradient_oracle,
    initial_states,
    networks,
    perturbations,
    schedules,
    sensor_values,
    shortest_distances,
    tree_height,
)

INF = np.inf


def line(n, lengths=None):
    """Devices 0 - 1 - ... - n-1 with the given link lengths (1 by default)."""
    return Network.from_edges(n, [(i, i + 1) for i in range(n - 1)], lengths)


# -- exact tables ------------------------------------------------------------------------------------------
def test_hop_count_on_a_three_node_line_moves_one_hop_per_round():
    net = line(3)
    net.sensors["source"] = net.ids == 0
    series = run(lambda: hop_count(sense("source")), net, rounds=3).series()
    assert series.tolist() == [[0, INF, INF], [0, 1, INF], [0, 1, 2]]


def test_distance_to_uses_link_lengths_and_picks_the_shorter_route():
    # 0 --2.0-- 1 --0.5-- 2, and a shortcut 0 --1.0-- 3 --1.0-- 2
    net = Network.from_edges(4, [(0, 1), (1, 2), (0, 3), (3, 2)], [2.0, 0.5, 1.0, 1.0])
    net.sensors["source"] = net.ids == 0
    series = run(lambda: distance_to(sense("source")), net, rounds=4).series()
    assert series.tolist() == [
        [0, INF, INF, INF],
        [0, 2.0, INF, 1.0],
        [0, 2.0, 2.0, 1.0],  # 2 hears 1 (2.0 + 0.5) and 3 (1.0 + 1.0)
        [0, 2.0, 2.0, 1.0],
    ]


def test_distance_to_takes_the_nearest_of_several_sources_and_a_custom_metric():
    net = line(5)
    net.sensors["source"] = (net.ids == 0) | (net.ids == 4)
    last = run(lambda: distance_to(sense("source")), net, rounds=5).last
    assert last.tolist() == [0, 1, 2, 1, 0]
    doubled = run(lambda: distance_to(sense("source"), metric=_doubled()), net, rounds=5).last
    assert doubled.tolist() == [0, 2, 4, 2, 0]


def _doubled():
    from fieldlearn import distances

    return distances() * 2.0


def test_the_rising_value_problem_and_bis_bounding_it():
    # 0 --0.1-- 1 --0.1-- 2 --5.0-- 3(source): while 0 is also a source, 1 and 2 are close to it; then 0 stops
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)], [0.1, 0.1, 5.0])
    net.sensors["source"] = (net.ids == 0) | (net.ids == 3)
    classic = run(lambda: distance_to(sense("source")), net, rounds=10)
    bis = run(lambda: distance_to_bis(sense("source"), speed=1.0), net, rounds=10)
    assert classic.last.tolist() == pytest.approx([0, 0.1, 0.2, 0])
    assert bis.last.tolist() == pytest.approx([0, 1.0, 2.0, 0])  # speed 1 over 0.1-long links over-estimates
    net.sensors["source"] = net.ids == 3
    truth = [5.2, 5.1, 5.0, 0]
    classic = run(lambda: distance_to(sense("source")), net, rounds=60, vm=classic.vm).series()
    bis = run(lambda: distance_to_bis(sense("source"), speed=1.0), net, rounds=60, vm=bis.vm).series()
    settled = lambda s: next(r for r in range(len(s)) if np.allclose(s[r:], truth)) + 1
    # classic: 0 and 1 bounce values 0.1 apart, rising by about 0.2 every 2 rounds up to 5.2
    assert settled(classic) > 40
    # BIS: stale values rise by at least 1 a round, so they cross 5.2 within about 6 rounds
    assert settled(bis) <= 8
    assert classic[-1].tolist() == pytest.approx(truth) and bis[-1].tolist() == pytest.approx(truth)


def test_bis_is_exact_when_speed_is_at_most_the_shortest_link():
    net = Network.grid(5, 4, spacing=1.0, radius=1.5)
    net.sensors["source"] = net.ids == 7
    got = run(lambda: distance_to_bis(sense("source"), speed=1.0), net, rounds=12).last
    np.testing.assert_array_equal(got, shortest_distances(net, "source"))


def test_broadcast_flows_one_hop_per_round_down_the_potential():
    net = line(4)
    net.sensors["p"] = np.array([0.0, 1.0, 2.0, 3.0])
    net.sensors["v"] = np.array([10.0, 11.0, 12.0, 13.0])
    series = run(lambda: broadcast(sense("p"), sense("v")), net, rounds=4).series()
    assert series.tolist() == [
        [10, 11, 12, 13],  # no neighbour heard yet: everyone is a root
        [10, 10, 11, 12],  # each copies its parent's previous value
        [10, 10, 10, 11],
        [10, 10, 10, 10],
    ]


def test_broadcast_ties_go_to_the_lowest_id_and_nested_values_travel_together():
    # 3 has two parents of equal potential (1 and 2): it takes 1's value
    net = Network.from_edges(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    net.sensors["p"] = np.array([0.0, 1.0, 1.0, 2.0])
    net.sensors["v"] = np.array([5.0, 6.0, 7.0, 8.0])

    def program():
        return broadcast(sense("p"), (sense("v"), mid(), sense("v") > 5))

    rounds = run(program, net, rounds=2).history
    value, ident, flag = rounds[1]
    assert value.tolist() == [5, 5, 5, 6] and ident.tolist() == [0, 0, 0, 1] and flag.tolist() == [False, False, False, True]


def test_broadcast_within_groups_never_crosses_a_border():
    net = line(4)
    net.sensors["p"] = np.array([0.0, 1.0, 1.5, 0.5])  # 2's least neighbour is 3 (0.5) but 3 is in another group
    net.sensors["g"] = np.array([0, 0, 0, 1])
    net.sensors["v"] = np.array([10.0, 11.0, 12.0, 13.0])
    free = run(lambda: broadcast(sense("p"), sense("v")), net, rounds=5).last
    grouped = run(lambda: broadcast(sense("p"), sense("v"), group=sense("g")), net, rounds=5).last
    assert free.tolist() == [10, 10, 13, 13]
    assert grouped.tolist() == [10, 10, 10, 13]


def test_distance_between_and_channel_on_a_grid():
    net = Network.grid(5, 3, spacing=1.0, radius=1.01)  # 4-neighbour grid, ids row by row
    net.sensors["source"] = net.ids == 0
    net.sensors["target"] = net.ids == 4
    between = run(lambda: distance_between(sense("source"), sense("target")), net, rounds=12).last
    assert between.tolist() == [4.0] * 15
    ch = run(lambda: channel(sense("source"), sense("target"), 0.5), net, rounds=12).last
    assert ch.reshape(3, 5).tolist() == [[True] * 5, [False] * 5, [False] * 5]
    wide = run(lambda: channel(sense("source"), sense("target"), 2.0), net, rounds=12).last
    assert wide.reshape(3, 5).tolist() == [[True] * 5, [True] * 5, [False] * 5]


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_blocks_run_on_the_torch_backend():
    pytest.importorskip("torch")
    net = Network.grid(4, 3, spacing=1.0, radius=1.5)
    net.sensors["source"] = net.ids == 0
    net.sensors["v"] = np.arange(12.0)

    def program():
        d = distance_to(sense("source"))
        return d, hop_count(sense("source")), broadcast(d, sense("v")), distance_to_bis(sense("source"), 1.0)

    d, h, b, bis = run(program, net, rounds=10, backend="torch").last
    expected = shortest_distances(net, "source")
    np.testing.assert_allclose(d, expected, rtol=1e-6)
    np.testing.assert_allclose(bis, expected, rtol=1e-6)
    np.testing.assert_array_equal(h, shortest_distances(net, "source", hops=True))
    assert b.tolist() == [0.0] * 12


# -- self-stabilisation properties -------------------------------------------------------------------------
def with_sources(data, net, name="source", most=3):
    net.sensors[name] = data.draw(device_sets(net, 1, most), label=name)
    return net


def gradient_within(net):
    return gradient_bound(net, "source")


@settings(max_examples=30, deadline=None)
@given(st.data(), networks(2, 20), initial_states(), schedules(("sync", "batches", "bursty")), perturbations())
def test_distance_to_self_stabilises_within_the_gradient_bound(data, net, initial, schedule, perturb):
    """From any state, on any fair schedule, distance_to is Dijkstra's after max(h, D/s) + 1 rounds, holds, and
    again after links drop, devices move or the sources move."""
    with_sources(data, net)
    assert_self_stabilises(
        lambda: distance_to(sense("source")), net, gradient_oracle(), within=gradient_within, hold=5,
        schedule=schedule, initial=initial, perturb=perturb,
    )


@settings(max_examples=8, deadline=None)
@given(st.data(), networks(2, 8), initial_states(), schedules(("sequential", "sweeps")))
def test_distance_to_self_stabilises_under_one_device_at_a_time(data, net, initial, schedule):
    with_sources(data, net)
    assert_self_stabilises(
        lambda: distance_to(sense("source")), net, gradient_oracle(), within=gradient_within, hold=3,
        schedule=schedule, initial=initial, perturb=Perturbation("move_sensor", 1),
    )


@settings(max_examples=12, deadline=None)
@given(st.data(), networks(2, 16), initial_states(), perturbations(("drop_links", "move_sensor")))
def test_hop_count_self_stabilises(data, net, initial, perturb):
    with_sources(data, net)
    assert_self_stabilises(
        lambda: hop_count(sense("source")), net, gradient_oracle(hops=True),
        within=lambda n: gradient_bound(n, "source", hops=True), hold=3,
        initial=initial, perturb=perturb,
    )


@settings(max_examples=12, deadline=None)
@given(st.data(), networks(2, 16), initial_states(), st.sampled_from([1.0, 2.0, 4.0]))
def test_bis_heals_at_its_speed_and_is_exact_with_a_slow_enough_speed(data, net, initial, factor):
    """With speed = the shortest link (times `factor`, slack covering the excess) BIS settles within
    max(h, (D + slack) / speed) + 1 rounds."""
    with_sources(data, net)
    shortest = float(net.graph.distance.min())
    speed = shortest * factor
    slack = (speed - shortest) * (net.n_devices - 1)  # so speed * h - slack <= D on every path of h hops
    assert_self_stabilises(
        lambda: distance_to_bis(sense("source"), speed, slack=slack), net, gradient_oracle(atol=1e-9),
        within=lambda n: gradient_bound(n, "source", speed=speed, slack=slack), hold=3, initial=initial,
        perturb=Perturbation("move_sensor", 3),
    )


@settings(max_examples=15, deadline=None)
@given(st.data(), networks(2, 16), initial_states(), perturbations(("drop_links", "move_sensor")))
def test_broadcast_self_stabilises_down_the_gradient(data, net, initial, perturb):
    """broadcast(distance_to(source), v) gives every device the v of the source at the root of its parent tree,
    within the gradient bound plus the tree's height plus one round."""
    with_sources(data, net)
    net.sensors["v"] = data.draw(sensor_values(net), label="v")

    def within(n):
        return gradient_bound(n, "source") + tree_height(n, shortest_distances(n, "source")) + 1

    assert_self_stabilises(
        lambda: broadcast(distance_to(sense("source")), sense("v")), net, broadcast_oracle("v"), within=within,
        hold=4, initial=initial, perturb=perturb,
    )


@settings(max_examples=10, deadline=None)
@given(st.data(), networks(2, 14), initial_states())
def test_channel_self_stabilises_to_its_definition(data, net, initial):
    net.sensors["source"] = data.draw(device_sets(net, 1, 1), label="source")
    net.sensors["target"] = data.draw(device_sets(net, 1, 1), label="target")
    width = 0.5

    def oracle(n):
        ds, dt = shortest_distances(n, "source"), shortest_distances(n, "target")
        return ds + dt <= dt[np.flatnonzero(n.sensors["source"])[0]] + width

    def within(n):
        bound = max(gradient_bound(n, "source"), gradient_bound(n, "target"))
        return bound + tree_height(n, shortest_distances(n, "source")) + 1

    assert_self_stabilises(
        lambda: channel(sense("source"), sense("target"), width), net, oracle, within=within, hold=3, initial=initial,
    )


@settings(max_examples=12, deadline=None)
@given(st.data(), networks(2, 14), initial_states(max_rounds=8), st.sampled_from([2.0, 4.0]))
def test_bis_values_rise_at_least_at_its_speed(data, net, initial, factor):
    """BIS's guarantee, round by round from any state: a value is either at least the true distance or at least
    speed * rounds - slack (stale information cannot linger below that line); the classic gradient breaks it."""
    with_sources(data, net)
    speed = float(net.graph.distance.min()) * factor
    program = lambda: distance_to_bis(sense("source"), speed)
    vm = initial.prepare(program, net)
    truth = shortest_distances(net, "source")
    for r in range(1, 3 * net.n_devices):
        got = run(program, net, rounds=1, vm=vm).last
        floor = np.minimum(truth, speed * r)
        assert np.all(got >= floor - 1e-9), f"round {r}: {got} below {floor}"
