"""Dwell time and move detection (`changed` of the leader): exact per-round tables; regions for mobile devices keep their leaders."""
import numpy as np

from fieldlearn import Network, mid, run, sense
from fieldlearn.lib import changed, dwell_time, mobile_regions


def single():
    return Network.from_edges(1, [])


def test_dwell_time_restarts_at_one_exactly_when_the_leader_changes():
    # leader per round: 5 5 5 7 7 5 5 5 9 ; dwell: 1 2 3 1 2 1 2 3 1 ; moved: F F F T F T F F T
    leaders = [5, 5, 5, 7, 7, 5, 5, 5, 9]
    net = single()
    net.sensors["leader"] = np.array([leaders[0]])
    trace = None
    dwell, move = [], []
    for value in leaders:
        net.sensors["leader"] = np.array([value])
        trace = run(lambda: (dwell_time(sense("leader")), changed(sense("leader"))), net, rounds=1,
                    vm=trace.vm if trace else None)
        d, m = trace.last
        dwell.append(int(d[0]))
        move.append(bool(m[0]))
    assert dwell == [1, 2, 3, 1, 2, 1, 2, 3, 1]
    assert move == [False, False, False, True, False, True, False, False, True]


def test_dwell_time_is_per_device_and_starts_at_one_on_a_device_first_round():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    net.sensors["leader"] = np.array([0, 0, 2])
    trace = run(lambda: dwell_time(sense("leader")), net, rounds=4)
    assert trace.series().tolist() == [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]
    net.sensors["leader"] = np.array([0, 2, 2])  # device 1 changes region
    trace = run(lambda: dwell_time(sense("leader")), net, rounds=2, vm=trace.vm)
    assert trace.series().tolist() == [[5, 1, 5], [6, 2, 6]]
    # a device that has never run starts at 1 whatever the others do (only device 2 fires first; the trace shows
    # 0 for devices without a result yet)
    fresh = run(lambda: dwell_time(mid() * 0), Network.from_edges(3, []), rounds=2, schedule=[[2], [0, 1, 2]])
    assert fresh.series().tolist() == [[0, 0, 1], [1, 1, 2]]


def two_areas():
    """Two areas of 6 devices 100 apart (spacing 2, radius 10: each a clique); device 5 moves from A to B later."""
    a = [(x, y) for x in (0.0, 2.0, 4.0) for y in (0.0, 2.0)]
    b = [(x + 100.0, y) for x, y in a]
    return a + b


def test_mobile_regions_keep_their_static_leaders_when_a_device_moves_in():
    pos = two_areas()
    mobile = np.zeros(12, dtype=bool)
    mobile[[5, 11]] = True
    # priorities: the moving devices would win everywhere if they could lead
    def net_at(points):
        net = Network.from_positions(points, radius=10.0)
        net.sensors["mobile"] = mobile
        return net

    program = lambda: mobile_regions(20.0, sense("mobile"), seed=3)
    trace = run(program, net_at(pos), rounds=8)
    leader = np.asarray(trace.last.leader)
    assert len(set(leader[:6])) == 1 and len(set(leader[6:])) == 1 and leader[0] != leader[6]
    assert not mobile[leader[0]] and not mobile[leader[6]]
    a_leader, b_leader = leader[0], leader[6]
    moved_pos = list(pos)
    moved_pos[5] = (101.0, 1.0)  # device 5 jumps into area B, carrying A's leader key
    net = net_at(moved_pos)
    history = []
    for _ in range(6):
        trace = run(program, net, rounds=1, vm=trace.vm)
        history.append(np.asarray(trace.last.leader).copy())
    # area B never follows A's stale key; the newcomer takes B's leader after one round
    for leader in history:
        assert (leader[6:] == b_leader).all() and (leader[:5] == a_leader).all()
    assert all(h[5] == b_leader for h in history[1:])


def test_mobile_regions_elect_on_the_metric_they_are_given():
    import numpy as np

    from fieldlearn import Network, mux, nbr_ids, run, sense
    from fieldlearn.lib import mobile_regions

    # a line of 6 devices 1 apart; a metric that makes the link between devices 2 and 3 very long splits it in two
    net = Network.from_edges(6, [(i, i + 1) for i in range(5)])
    net.sensors["cut"] = np.array([0, 0, 1, 1, 0, 0], dtype=bool)

    def program():
        far = mux(sense("cut") & ((nbr_ids() == 2) | (nbr_ids() == 3)), 100.0, 1.0)
        return mobile_regions(10.0, metric=far, min_link=1.0).leader

    leaders = run(program, net, rounds=30).last
    assert len(set(leaders[:3].tolist())) == 1 and len(set(leaders[3:].tolist())) == 1 and leaders[0] != leaders[5]
