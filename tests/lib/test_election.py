"""elect_leaders / sparse_choice: exact small cases, the priority draw, and self-stabilisation of the leader set."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, run, sense
from fieldlearn.lib import Election, elect_leaders, random_priority, sparse_choice, tree_parent
from fieldlearn.testing import (
    Perturbation,
    assert_self_stabilises,
    check_leaders,
    geometric_networks,
    hop_diameter,
    initial_states,
    leaders_oracle,
    networks,
    perturbations,
    schedules,
)

NO_ID = 2**62


def line(n, length=1.0):
    return Network.from_edges(n, [(i, i + 1) for i in range(n - 1)], [length] * (n - 1))


def test_per_round_table_on_a_three_node_line():
    """All devices start as candidates (nobody is within the radius of a leader); the best key wins in its
    neighbourhood; the others step down and follow it."""
    net = line(3)
    net.sensors["prio"] = np.array([0.2, 0.9, 0.5])
    trace = run(lambda: sparse_choice(4.0, priority=sense("prio")), net, rounds=4)
    leaders = [h.is_leader.tolist() for h in trace.history]
    assert leaders == [
        [True, True, True],  # round 1: no leader heard, everyone a candidate
        [False, True, False],  # round 2: 0 and 2 hear 1's better key within radius / 2 and step down
        [False, True, False],
        [False, True, False],
    ]
    last = trace.last
    assert last.leader.tolist() == [1, 1, 1]
    assert last.distance.tolist() == [1.0, 0.0, 1.0]
    assert last.lead_id.tolist() == [1, 1, 1]


def test_leaders_are_about_radius_apart_on_a_line():
    # priorities fall along the line, so 0 leads at once; its distance field grows one hop per round, and the
    # devices beyond radius = 4 become candidates (5 to 8 at once); 5, the best of them, stays; 6 to 8 follow it
    net = line(9)
    net.sensors["prio"] = 1.0 - net.ids / 10.0
    trace = run(lambda: sparse_choice(4.0, priority=sense("prio")), net, rounds=20)
    leaders = [np.flatnonzero(h.is_leader).tolist() for h in trace.history[:8]]
    assert leaders == [list(range(9)), [0], [0], [0], [0], [0, 5, 6, 7, 8], [0, 5], [0, 5]]
    last = trace.last
    assert last.leader.tolist() == [0, 0, 0, 5, 5, 5, 5, 5, 5]  # the nearest leader (3 is 2 from 5, 3 from 0)
    assert last.distance.tolist() == [0, 1, 2, 2, 1, 0, 1, 2, 3]
    # the key followed: only within radius / 2 of a leader; in the band beyond, nobody's
    assert last.lead_id.tolist() == [0, 0, NO_ID, NO_ID, 5, 5, 5, NO_ID, NO_ID]


def test_a_better_key_within_half_the_radius_makes_a_leader_step_down_even_through_others():
    # 0 - 1 - 2 with 0 best: 2 is 2 away, within radius / 2 = 2.5, so it cannot stay a leader
    net = line(3)
    net.sensors["prio"] = np.array([0.9, 0.1, 0.5])
    last = run(lambda: elect_leaders(5.0, priority=sense("prio")), net, rounds=10).last
    assert isinstance(last, Election)
    assert last.leader.tolist() == [0, 0, 0]


def test_equal_priorities_break_ties_by_the_lowest_id():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3), (3, 0)])
    net.sensors["prio"] = np.full(4, 0.5)
    last = run(lambda: elect_leaders(10.0, priority=sense("prio")), net, rounds=10).last
    assert last.leader.tolist() == [0, 0, 0, 0]


def test_random_priority_is_drawn_once_per_device_deterministically_from_id_and_seed():
    net = Network.grid(5, 5, spacing=1.0, radius=1.5)
    net.sensors["seed"] = 3
    a = run(lambda: random_priority(sense("seed")), net, rounds=2)
    assert np.all((a.last > 0) & (a.last < 1)) and len(np.unique(a.last)) == 25
    assert np.array_equal(run(lambda: random_priority(3), net, rounds=1).last, a.last)
    assert not np.array_equal(run(lambda: random_priority(4), net, rounds=1).last, a.last)
    net.sensors["seed"] = 99  # drawn once: a later change of the seed does not redraw
    assert np.array_equal(run(lambda: random_priority(sense("seed")), net, rounds=3, vm=a.vm).last, a.last)


def test_default_priorities_elect_a_valid_and_seed_dependent_set():
    net = Network.grid(8, 8, spacing=1.0, radius=1.5)
    results = {}
    for seed in (0, 1):
        last = run(lambda seed=seed: elect_leaders(3.0, seed=seed), net, rounds=40).last
        assert check_leaders(net, last.leader, last.distance, 3.0) is None
        results[seed] = frozenset(np.flatnonzero(last.leader == net.ids).tolist())
    assert results[0] != results[1]


def test_election_runs_on_the_torch_backend():
    pytest.importorskip("torch")
    net = Network.grid(6, 6, spacing=1.0, radius=1.5)
    a = run(lambda: elect_leaders(3.0), net, rounds=30).last
    b = run(lambda: elect_leaders(3.0), net, rounds=30, backend="torch").last
    assert a.leader.tolist() == b.leader.tolist()
    np.testing.assert_allclose(a.distance, b.distance, rtol=1e-6)


# -- self-stabilisation ------------------------------------------------------------------------------------
def election_within(radius):
    """Stated bound: 2 (hop diameter + radius / shortest link) + 5 rounds (observed: at most about half of it)."""

    def within(n):
        shortest = float(n.graph.distance.min()) if n.graph.n_links else 1.0
        return 2 * (hop_diameter(n) + int(np.ceil(radius / shortest))) + 5

    return within


@settings(max_examples=25, deadline=None)
@given(
    networks(2, 20), st.sampled_from([0.5, 1.0, 2.0, 4.0]), initial_states(), schedules(("sync", "batches", "bursty")),
    perturbations(("drop_links", "move_devices")),
)
def test_elect_leaders_self_stabilises_to_a_sparse_choice(net, radius, initial, schedule, perturb):
    """From any state the leaders settle within the bound so that every device names its nearest leader and the
    distance to it, all are within radius of a leader, leaders are at least radius / 2 apart, nothing changes
    any more, and the same holds again after links drop or devices move."""
    assert_self_stabilises(
        lambda: elect_leaders(radius), net, leaders_oracle(radius), within=election_within(radius), hold=8,
        schedule=schedule, initial=initial, perturb=perturb,
    )


@settings(max_examples=6, deadline=None)
@given(networks(2, 9), st.sampled_from([1.0, 3.0]), initial_states(), schedules(("sequential", "sweeps")))
def test_elect_leaders_self_stabilises_one_device_at_a_time(net, radius, initial, schedule):
    assert_self_stabilises(
        lambda: elect_leaders(radius), net, leaders_oracle(radius), within=election_within(radius), hold=5,
        schedule=schedule, initial=initial, perturb=Perturbation("drop_links", 7),
    )


@settings(max_examples=8, deadline=None)
@given(geometric_networks(4, 16), initial_states())
def test_a_leader_that_fails_is_replaced(net, initial):
    """Cutting the leaders off (their links removed) makes the others elect new leaders among themselves."""
    radius = 1.5
    program = lambda: elect_leaders(radius)
    report = assert_self_stabilises(program, net, leaders_oracle(radius), within=election_within(radius), hold=3, initial=initial)
    leaders = np.flatnonzero(report.last.leader == net.ids)
    g = net.to_networkx()
    g.remove_edges_from([e for e in list(g.edges) if e[0] in leaders or e[1] in leaders])
    cut = Network.from_networkx(g)
    assert_self_stabilises(program, cut, leaders_oracle(radius), within=election_within(radius), hold=3, initial=report.vm)


@settings(max_examples=10, deadline=None)
@given(networks(2, 16), st.sampled_from([1.0, 3.0]), initial_states())
def test_every_round_only_leaders_name_themselves(net, radius, initial):
    """Invariant in every round, settled or not: a device names itself as leader exactly when it leads (follows
    its own key), and then its distance is 0; stale entries never make a follower name itself."""
    program = lambda: sparse_choice(radius)
    vm = initial.prepare(program, net)
    for _ in range(12):
        choice = run(program, net, rounds=1, vm=vm).last
        leads = choice.lead_id == net.ids
        assert np.array_equal(choice.is_leader, leads)
        assert np.array_equal(choice.leader == net.ids, leads)
        assert np.all(choice.distance[leads] == 0)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["sync", "random", "sequential"]))
def test_the_elections_parent_is_the_tree_parent_of_its_distance_and_leader(seed, schedule):
    # the parent the election finds from the neighbour fields it read equals nbr-based tree_parent every round,
    # whatever the firing order, from the first round on and after the network changes under a running VM
    n = 40
    first = Network.random_geometric(n, mean_degree=5, seed=seed % 1000)

    def prog():
        c = sparse_choice(0.3, tree=True)
        assert sparse_choice(0.3).parent is None  # found only when asked for
        return c.parent, tree_parent(c.distance, c.leader)

    trace = run(prog, first, rounds=10, schedule=schedule, seed=seed)
    moved = Network.random_geometric(n, mean_degree=5, seed=seed % 1000 + 1)
    later = run(prog, moved, rounds=6, schedule=schedule, seed=seed + 1, vm=trace.vm)
    for mine, found in trace.history + later.history:
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(found))
    assert (np.asarray(later.last[0]) >= 0).any()  # some device has a parent: the check compares real trees
