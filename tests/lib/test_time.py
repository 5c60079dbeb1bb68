"""Timers, decay and counters: exact per-round tables and recovery from corrupted state."""
import numpy as np

from fieldlearn import Network, run, sense
from fieldlearn.lib import changed, countdown, counter, decay, rounds_since, timer

INF = np.inf


def single():
    return Network.from_edges(1, [])


def pair():
    return Network.from_edges(2, [(0, 1)])


def test_timer_counts_down_by_decay_to_the_floor():
    series = run(lambda: timer(3.0), single(), rounds=5).series()[:, 0]
    assert series.tolist() == [2.0, 1.0, 0.0, 0.0, 0.0]
    series = run(lambda: timer(10.0, decay=4.0, floor=1.0), single(), rounds=4).series()[:, 0]
    assert series.tolist() == [6.0, 2.0, 1.0, 1.0]


def test_countdown_shows_every_value_from_length_to_zero():
    series = run(lambda: countdown(3), single(), rounds=6).series()[:, 0]
    assert series.tolist() == [3, 2, 1, 0, 0, 0]


def test_timer_restarts_with_a_new_length_and_clamps_corrupted_state():
    net = single()
    net.sensors["len"] = 100.0
    trace = run(lambda: timer(sense("len")), net, rounds=3)  # 99, 98, 97
    net.sensors["len"] = 5.0  # the stored 97 is now out of range: clamped to the length at once
    series = run(lambda: timer(sense("len")), net, rounds=7, vm=trace.vm).series()[:, 0]
    assert series.tolist() == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0]


def test_decay_holds_peaks_and_fades_them_geometrically():
    net = single()
    net.sensors["x"] = 8.0
    trace = run(lambda: decay(sense("x"), 0.5), net, rounds=1)
    net.sensors["x"] = 1.0
    series = run(lambda: decay(sense("x"), 0.5), net, rounds=5, vm=trace.vm).series()[:, 0]
    assert series.tolist() == [4.0, 2.0, 1.0, 1.0, 1.0]


def test_counter_counts_each_devices_own_rounds():
    net = pair()
    trace = run(lambda: counter(), net, schedule=[[0, 1], [0], [0], [0, 1]])
    assert [h.tolist() for h in trace.history] == [[0, 0], [1, 0], [2, 0], [3, 1]]
    assert run(lambda: counter(10), single(), rounds=2).series()[:, 0].tolist() == [10, 11]


def test_rounds_since_an_event():
    net = single()
    net.sensors["e"] = np.array([False])
    trace = run(lambda: rounds_since(sense("e")), net, rounds=2)
    net.sensors["e"] = np.array([True])
    trace2 = run(lambda: rounds_since(sense("e")), net, rounds=1, vm=trace.vm)
    net.sensors["e"] = np.array([False])
    trace3 = run(lambda: rounds_since(sense("e")), net, rounds=3, vm=trace2.vm)
    seen = [h[0] for t in (trace, trace2, trace3) for h in t.history]
    assert seen == [INF, INF, 0.0, 1.0, 2.0, 3.0]


def test_changed_follows_a_changing_value_and_is_false_on_the_first_round():
    net = single()
    values = [5, 5, 7, 7, 7, 5]
    vm = None
    seen = []
    for v in values:
        net.sensors["x"] = np.array([v])
        trace = run(lambda: changed(sense("x")), net, rounds=1, vm=vm)
        vm = trace.vm
        seen.append(bool(trace.last[0]))
    assert seen == [False, False, True, False, False, True]
