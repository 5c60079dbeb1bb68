"""Oracles against hand-computed answers, and the leader check catching each kind of violation."""
import numpy as np
import pytest

from fieldlearn import Network
from fieldlearn.testing import (
    Expect,
    Mismatch,
    Satisfies,
    check_leaders,
    compare,
    components,
    dag_collect,
    gossip_oracle,
    gradient_bound,
    gradient_oracle,
    hop_diameter,
    shortest_distances,
    shortest_path_hops,
    tree_broadcast,
    tree_collect,
    tree_height,
    tree_parents,
)

INF = np.inf


def diamond():
    # 0 -1- 1 -1- 3 and 0 -1- 2 -3- 3, plus an isolated device 4
    return Network.from_edges(5, [(0, 1), (1, 3), (0, 2), (2, 3)], [1.0, 1.0, 1.0, 3.0])


def test_shortest_distances_hops_and_components():
    net = diamond()
    src = net.ids == 0
    assert shortest_distances(net, src).tolist() == [0, 1, 1, 2, INF]
    assert shortest_distances(net, src, hops=True).tolist() == [0, 1, 1, 2, INF]
    net.sensors["source"] = net.ids == 3
    assert shortest_distances(net, "source").tolist() == [2, 1, 3, 0, INF]
    assert shortest_distances(net, lambda n: n.ids == 2).tolist() == [1, 2, 0, 3, INF]
    assert components(net).tolist() == [0, 0, 0, 0, 1]


def test_directed_links_follow_the_flow_of_messages():
    # device 1 hears 0, but 0 does not hear 1: distance flows from 0 to 1 only
    net = Network.from_edges(2, [(1, 0)], directed=True)
    assert shortest_distances(net, net.ids == 0).tolist() == [0, 1]
    assert shortest_distances(net, net.ids == 1).tolist() == [INF, 0]


def test_tree_parents_break_ties_by_lowest_id_and_respect_groups():
    net = Network.from_edges(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    pot = np.array([0.0, 1.0, 1.0, 2.0])
    assert tree_parents(net, pot).tolist() == [-1, 0, 0, 1]
    assert tree_parents(net, pot, group=np.array([0, 0, 1, 1])).tolist() == [-1, 0, -1, 2]


def test_tree_collect_and_broadcast():
    net = Network.from_edges(5, [(0, 1), (0, 2), (1, 3), (1, 4)])
    pot = np.array([0.0, 1.0, 1.0, 2.0, 2.0])
    v = np.array([5.0, -1.0, 3.0, 8.0, 2.0])
    assert tree_collect(net, pot, v).tolist() == [17, 9, 3, 8, 2]
    assert tree_collect(net, pot, v, "max").tolist() == [8, 8, 3, 8, 2]
    assert tree_collect(net, pot, v, "min").tolist() == [-1, -1, 3, 8, 2]
    assert tree_collect(net, pot, v, "mean").tolist() == pytest.approx([17 / 5, 3, 3, 8, 2])
    assert tree_broadcast(net, pot, v).tolist() == [5] * 5
    assert tree_height(net, pot) == 2


def test_dag_collect_splits_by_potential_drop():
    net = Network.from_edges(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    pot = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 0.0, 0.0, 3.0])
    assert dag_collect(net, pot, v).tolist() == pytest.approx([3.0, 2.0, 1.0, 3.0])
    assert dag_collect(net, pot, v, "max").tolist() == [3, 3, 3, 3]
    assert tree_height(net, pot, multipath=True) == 2  # 3 -> 2 -> 0 (or 3 -> 1 -> 0)
    # vectors work leaf by leaf
    vec = np.stack([v, 2 * v], axis=1)
    assert dag_collect(net, pot, vec)[0].tolist() == pytest.approx([3.0, 6.0])


def test_bounds():
    line = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)], [0.5, 1.0, 2.0])
    line.sensors["source"] = line.ids == 0
    assert hop_diameter(line) == 3
    assert shortest_path_hops(line, "source").tolist() == [0, 1, 2, 3]
    # h = 3, D = 3.5, shortest link 0.5: max(3, 7) + 1
    assert gradient_bound(line, "source") == 8
    assert gradient_bound(line, "source", hops=True) == 4
    assert gradient_bound(line, "source", speed=1.0, slack=0.5) == 5


def test_compare_handles_nan_inf_nesting_and_shapes():
    assert compare(np.array([1.0, INF, np.nan]), np.array([1.0 + 1e-12, INF, np.nan])) is None
    miss = compare(np.array([1.0, INF, 2.0]), np.array([1.0, 5.0, -INF]))
    assert miss.devices.tolist() == [1, 2]
    assert miss.expected == ["inf", "2.0"] and miss.got == ["5.0", "-inf"]
    nested = compare((np.array([1, 2]), np.array([True, False])), (np.array([1, 2]), np.array([True, True])))
    assert nested.devices.tolist() == [1] and nested.expected == ["(2, False)"] and nested.got == ["(2, True)"]
    assert "shape" in compare(np.zeros(3), np.zeros(4)).reason
    assert "structure" in compare((np.zeros(3), np.zeros(3)), np.zeros(3)).reason
    rows = compare(np.zeros((2, 3)), np.array([[0, 0, 0], [0, 1, 0]], dtype=float))
    assert rows.devices.tolist() == [1]


def test_mismatch_describes_devices_expected_and_got():
    text = Mismatch(np.arange(12), [str(i) for i in range(12)], ["x"] * 12).describe(20, limit=3)
    assert text.splitlines()[0] == "12 of 20 devices differ from the oracle, first 3:"
    assert text.splitlines()[1] == "  device 0: expected 0, got x"
    assert len(text.splitlines()) == 4


def test_expect_and_satisfies_and_ready_made_oracles():
    net = diamond()
    net.sensors["source"] = net.ids == 0
    net.sensors["v"] = np.array([1.0, 5.0, 2.0, 4.0, 9.0])
    assert gradient_oracle().check(net, np.array([0, 1, 1, 2, INF])) is None
    assert gradient_oracle().check(net, np.array([0, 1, 1, 3, INF])).devices.tolist() == [3]
    assert gradient_oracle(select=lambda r: r[0]).check(net, (np.array([0, 1, 1, 2, INF]), None)) is None
    assert gossip_oracle("v", "max").check(net, np.array([5, 5, 5, 5, 9.0])) is None
    assert gossip_oracle("v", "min").check(net, np.array([1, 1, 1, 1, 9.0])) is None
    positive = Satisfies(lambda n, r: r > 0, "positive")
    assert positive.check(net, np.ones(5)) is None
    assert positive.check(net, np.array([1, -1, 1, 1, 1])).devices.tolist() == [1]
    assert Expect(lambda n: np.zeros(5)).check(net, np.zeros(5)) is None


def grid_leaders():
    net = Network.grid(5, 1, spacing=1.0, radius=1.1)  # a line of 5, unit links
    return net


def test_check_leaders_accepts_a_valid_choice():
    net = grid_leaders()
    assert check_leaders(net, np.array([0, 0, 0, 4, 4]), np.array([0, 1, 2, 1, 0.0]), radius=4.0) is None


@pytest.mark.parametrize(
    "leader, distance, radius, bad, words",
    [
        ([1, 1, 1, 1, 1], [1, 0, 1, 2, 3], 2.0, [4], "within radius"),  # 4 is 3 from the only leader
        ([0, 0, 2, 2, 2], [0, 1, 0, 1, 2], 6.0, [2], "apart"),  # leaders 0 and 2 only 2 apart (< 3)
        ([0, 0, 0, 0, 4], [0, 1, 2, 3, 0], 8.0, [3], "nearest"),  # 3 names 0 but 4 is nearer
        ([0, 0, 0, 4, 4], [0, 1, 2, 1, 5], 4.0, [4], "distance"),  # wrong distance
        ([0, 3, 0, 4, 4], [0, 1, 2, 1, 0], 4.0, [1], "not a leader"),  # 3 is not a leader
        ([1, 2, 3, 4, 0], [1, 1, 1, 1, 1], 4.0, [0, 1, 2, 3, 4], "component"),  # nobody leads
    ],
)
def test_check_leaders_catches_each_violation(leader, distance, radius, bad, words):
    miss = check_leaders(grid_leaders(), np.array(leader), np.array(distance, dtype=float), radius)
    assert miss is not None and bad[0] in miss.devices.tolist()
    assert words in miss.describe() or words in " ".join(miss.expected + miss.got)
