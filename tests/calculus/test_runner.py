"""The standalone runner: schedules expand as documented, traces hold every round, runs continue from a VM."""
import numpy as np
import pytest

from fieldlearn import Network, mux, rep, run, sense, share
from fieldlearn.calculus.runner import inbox_of, schedule_batches


def test_schedules_expand_into_batches():
    assert [len(r) for r in schedule_batches("sync", 4, 2, 0)] == [1, 1]
    seq = schedule_batches("sequential", 3, 1, 0)[0]
    assert [b.tolist() for b in seq] == [[0], [1], [2]]
    rnd = schedule_batches("random", 5, 2, 7)
    assert all(sorted(int(b[0]) for b in r) == list(range(5)) for r in rnd)
    assert schedule_batches("random", 5, 1, 7)[0][0] == rnd[0][0]
    explicit = schedule_batches([[0, 2], [1]], 3, None, 0)
    assert [r[0].tolist() for r in explicit] == [[0, 2], [1]]


@pytest.mark.parametrize("bad", [[[0, 0]], [[5]], [[]]])
def test_explicit_schedules_are_validated(bad):
    with pytest.raises(ValueError, match=r"schedule\[0\]"):
        schedule_batches(bad, 3, None, 0)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_batches("whenever", 3, 1, 0)


def test_inbox_of_a_batch_lists_its_rows_in_batch_order():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)], distances=[1.0, 2.0, 3.0])
    inbox = inbox_of(net.graph, np.array([2, 0]))
    assert inbox.indptr.tolist() == [0, 2, 3]
    assert inbox.neighbours.tolist() == [1, 3, 1]
    assert inbox.edge_data["distance"].tolist() == [2.0, 3.0, 1.0]


def test_sequential_rounds_spread_a_gradient_in_one_sweep_when_in_order():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    net.sensors["source"] = np.arange(4) == 0
    prog = lambda: share(float("inf"), lambda d: mux(sense("source"), 0.0, (d + 1.0).min()))
    np.testing.assert_array_equal(run(prog, net, rounds=1, schedule="sequential").last, [0, 1, 2, 3])
    reverse = [[3], [2], [1], [0]]
    np.testing.assert_array_equal(run(prog, net, schedule=reverse).last, [0, np.inf, np.inf, np.inf])


def test_trace_keeps_history_and_last_and_devices_not_fired_yet():
    net = Network.from_edges(3, [(0, 1)])
    trace = run(lambda: rep(0, lambda c: c + 1), net, schedule=[[0], [0, 1]])
    assert trace.rounds == 2
    np.testing.assert_array_equal(trace.series(), [[1, 0, 0], [2, 1, 0]])
    np.testing.assert_array_equal(trace.fired, [True, True, False])


def test_a_continued_run_runs_the_program_it_is_given():
    from fieldlearn import constant, mid

    net = Network.from_edges(2, [(0, 1)])
    trace = run(lambda: mid() * 1, net, rounds=1)
    np.testing.assert_array_equal(run(lambda: constant(42), net, rounds=1, vm=trace.vm).last, [42, 42])


def test_trace_repr_is_compact_whatever_the_history():
    net = Network.grid(30, 30)
    net.sensors["source"] = net.ids == 0
    prog = lambda: {"g": share(float("inf"), lambda d: mux(sense("source"), 0.0, (d + 1.0).min())), "s": sense("source")}
    trace = run(prog, net, rounds=40)
    assert repr(trace) == "Trace(900 devices, 40 rounds, last: g: float64[900] 0..29, s: bool[900] 0..1)"
    assert repr(run(prog, net, rounds=0)) == "Trace(900 devices, no round yet)"
