"""The strategies draw what they promise: connected networks, fair schedules, real random histories, safe perturbations."""
import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, run, sense
from fieldlearn.lib import distance_to
from fieldlearn.testing import (
    Perturbation,
    Schedule,
    Scramble,
    connected_graphs,
    device_sets,
    geometric_networks,
    initial_states,
    networks,
    perturbations,
    schedules,
    scrambled_network,
    sensor_values,
)


def connected(net):
    return nx.is_connected(net.to_networkx())


def symmetric(net):
    links = set(net.graph.edge_list())
    return all((b, a) in links for a, b in links)


@settings(max_examples=40, deadline=None)
@given(geometric_networks(2, 25, min_link=0.25))
def test_geometric_networks_are_connected_with_no_short_links(net):
    assert 2 <= net.n_devices <= 25
    assert connected(net) and symmetric(net)
    assert net.graph.distance.min() >= 0.25 - 1e-12
    assert net.positions is not None and len(np.unique(net.positions, axis=0)) == net.n_devices
    # link lengths are the Euclidean distances
    rows, cols = net.graph.rows(), net.graph.neighbours
    np.testing.assert_allclose(net.graph.distance, np.linalg.norm(net.positions[rows] - net.positions[cols], axis=1))


@settings(max_examples=40, deadline=None)
@given(connected_graphs(1, 20, lengths=(0.5, 2.0)))
def test_connected_graphs_are_connected_with_lengths_in_range(net):
    assert 1 <= net.n_devices <= 20
    assert connected(net) and symmetric(net)
    if net.graph.n_links:
        assert net.graph.distance.min() >= 0.5 and net.graph.distance.max() <= 2.0


@settings(max_examples=30, deadline=None)
@given(st.data(), networks(3, 12))
def test_device_sets_and_sensor_values(data, net):
    mask = data.draw(device_sets(net, 1, 2))
    assert mask.dtype == bool and mask.shape == (net.n_devices,) and 1 <= mask.sum() <= 2
    values = data.draw(sensor_values(net))
    assert values.shape == (net.n_devices,) and np.all(values == np.round(values))


@settings(max_examples=60, deadline=None)
@given(schedules(), st.integers(1, 15), st.integers(0, 5))
def test_schedules_are_fair_sweeps_of_distinct_devices(schedule, n, k):
    batches = schedule.sweep(k, n)
    fired = np.concatenate(batches)
    assert set(fired.tolist()) == set(range(n))  # everyone at least once
    assert all(len(b) == len(np.unique(b)) and len(b) > 0 for b in batches)  # a batch is a set
    if schedule.kind in ("sync", "sequential", "sweeps", "batches"):
        assert len(fired) == n  # exactly once
    assert schedule.sweep(k, n)[0].tolist() == batches[0].tolist()  # deterministic


def test_schedule_kinds_differ_as_documented():
    assert [b.tolist() for b in Schedule("sync").sweep(0, 3)] == [[0, 1, 2]]
    assert [b.tolist() for b in Schedule("sequential").sweep(4, 3)] == [[0], [1], [2]]
    sweeps = Schedule("sweeps", seed=1)
    orders = {tuple(np.concatenate(sweeps.sweep(k, 6)).tolist()) for k in range(10)}
    assert len(orders) > 1  # a fresh order each sweep
    assert any(len(Schedule("bursty", s).sweep(0, 10)) and len(np.concatenate(Schedule("bursty", s).sweep(0, 10))) > 10 for s in range(20))


def test_unknown_kinds_are_errors():
    import pytest

    with pytest.raises(ValueError, match="unknown schedule kind"):
        Schedule("chaos")
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturbation("earthquake")


@settings(max_examples=20, deadline=None)
@given(networks(2, 12), initial_states(max_rounds=6))
def test_scrambles_are_deterministic_histories_of_the_program_itself(net, scramble):
    net.sensors["source"] = net.ids == 0
    program = lambda: distance_to(sense("source"))
    a, b = scramble.prepare(program, net), scramble.prepare(program, net)
    assert a.clock == b.clock <= scramble.rounds
    # the program continues from there on the real network, the same way from the same seed
    np.testing.assert_array_equal(run(program, net, rounds=1, vm=a).last, run(program, net, rounds=1, vm=b).last)


def test_a_scramble_can_put_values_below_the_truth():
    """One round after a random history, some device of a unit line reads a distance below the truth: the state
    really is arbitrary (a fresh start can only over-estimate)."""
    net = Network.from_edges(6, [(i, i + 1) for i in range(5)], [1.0] * 5)
    net.sensors["source"] = net.ids == 0
    program = lambda: distance_to(sense("source"))
    truth = np.arange(6.0)
    below = sum(
        int(np.sum(run(program, net, rounds=1, vm=Scramble(seed, 5).prepare(program, net)).last < truth))
        for seed in range(20)
    )
    assert below > 0
    assert np.all(run(program, net, rounds=1).last >= truth)


def test_scrambled_network_randomises_links_and_sensors():
    net = Network.grid(4, 4)
    net.sensors["flag"] = net.ids == 0
    net.sensors["level"] = np.arange(16.0)
    net.sensors["k"] = 3
    fake = scrambled_network(net, np.random.default_rng(0))
    assert fake.n_devices == 16
    assert fake.sensors["k"] == 3 and fake.sensors["flag"].dtype == bool
    assert not np.array_equal(fake.sensors["level"], net.sensors["level"])


@settings(max_examples=40, deadline=None)
@given(networks(2, 16), perturbations())
def test_perturbations_keep_the_devices_and_connectivity(net, perturb):
    net.sensors["source"] = net.ids < 2
    changed = perturb(net)
    assert changed.n_devices == net.n_devices
    assert connected(changed) and symmetric(changed)
    assert changed.sensors["source"].sum() == net.sensors["source"].sum()
    assert net.sensors["source"].tolist() == (net.ids < 2).tolist()  # the original is untouched
    if perturb.kind == "drop_links":
        assert set(changed.graph.edge_list()) <= set(net.graph.edge_list())
    if perturb.kind == "move_sensor":
        assert changed.graph is net.graph
