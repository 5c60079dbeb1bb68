"""Gossip: the replicated (self-stabilising) min/max forgets values that left; the naive one never does."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, mid, run, sense
from fieldlearn.lib import gossip_max, gossip_min, replicated_gossip, shared_clock
from fieldlearn.lib import unstable
from fieldlearn.testing import (
    SelfStabilisationError,
    assert_self_stabilises,
    gossip_oracle,
    hop_diameter,
    initial_states,
    networks,
    perturbations,
    schedules,
    sensor_values,
)


def line(n):
    return Network.from_edges(n, [(i, i + 1) for i in range(n - 1)])


def test_shared_clock_catches_up_with_the_fastest_device():
    net = line(3)
    trace = run(lambda: shared_clock(), net, schedule=[[0], [0], [0], [0, 1, 2], [0, 1, 2], [0, 1, 2]])
    assert [h.tolist() for h in trace.history] == [
        [1, 0, 0], [2, 0, 0], [3, 0, 0],
        [4, 3, 1],  # 1 takes 0's clock 3 (ahead of its own 0 + 1); 2 hears nobody yet, it ticks
        [5, 4, 3],  # 2 now takes 1's 3
        [6, 5, 4],  # one round behind per hop: in step from here on, as 0 stays ahead
    ]
    trace = run(lambda: shared_clock(), net, rounds=3, vm=trace.vm)
    assert [h.tolist() for h in trace.history] == [
        [7, 6, 5], [8, 7, 6], [9, 8, 7],
    ]


def test_naive_gossip_spreads_one_hop_per_round_and_never_forgets():
    net = line(4)
    net.sensors["v"] = np.array([1.0, 2.0, 3.0, 9.0])
    trace = run(lambda: unstable.gossip_max(sense("v")), net, rounds=4)
    assert trace.series().tolist() == [[1, 2, 3, 9], [2, 3, 9, 9], [3, 9, 9, 9], [9, 9, 9, 9]]
    net.sensors["v"] = np.array([1.0, 2.0, 3.0, 4.0])
    later = run(lambda: unstable.gossip_max(sense("v")), net, rounds=50, vm=trace.vm).last
    assert later.tolist() == [9, 9, 9, 9]  # 9 left the network long ago


def test_replicated_gossip_forgets_within_replicas_times_stride():
    net = line(4)
    net.sensors["v"] = np.array([1.0, 2.0, 3.0, 9.0])
    program = lambda: gossip_max(sense("v"), period=6)  # 2 replicas, stride 6: the reported one is 6 to 11 rounds old
    trace = run(program, net, rounds=15)
    assert trace.last.tolist() == [9, 9, 9, 9]
    net.sensors["v"] = np.array([1.0, 2.0, 3.0, 4.0])
    series = run(program, net, rounds=20, vm=trace.vm).series()
    settled = next(r for r in range(len(series)) if (series[r:] == 4).all()) + 1
    assert 1 < settled <= 2 * 6 + 3  # replicas * stride + diameter
    assert series[-1].tolist() == [4, 4, 4, 4]


def test_gossip_min_and_more_replicas():
    net = line(5)
    net.sensors["v"] = np.array([5.0, 2.0, 7.0, 3.0, 8.0])
    lo = run(lambda: gossip_min(sense("v"), period=6, replicas=3), net, rounds=20).last
    assert lo.tolist() == [2.0] * 5
    ints = run(lambda: replicated_gossip(mid(), "max", period=6), net, rounds=20).last
    assert ints.tolist() == [4] * 5 and ints.dtype.kind == "i"


def test_bad_parameters_are_errors():
    net = line(2)
    with pytest.raises(ValueError, match="at least 2 replicas"):
        run(lambda: gossip_max(mid(), period=3, replicas=1), net, rounds=1)
    with pytest.raises(ValueError, match="'min' or 'max'"):
        run(lambda: replicated_gossip(mid(), "sum", period=3), net, rounds=1)


def test_the_naive_gossip_fails_the_self_stabilisation_check():
    net = line(5)
    net.sensors["v"] = np.arange(5.0)

    def lower_the_max(n):
        moved = Network(n.graph, n.positions, dict(n.sensors))
        moved.sensors["v"] = np.arange(5.0) - 10 * (np.arange(5) == 4)
        return moved

    with pytest.raises(SelfStabilisationError, match="after perturbation 1"):
        assert_self_stabilises(
            lambda: unstable.gossip_max(sense("v")), net, gossip_oracle("v", "max"), within=20,
            hold=3, perturb=lower_the_max,
        )
    report = assert_self_stabilises(
        lambda: gossip_max(sense("v"), period=8), net, gossip_oracle("v", "max"), within=30, hold=3, perturb=lower_the_max,
    )
    assert report.rounds[1] <= 2 * 8 + 4  # replicas * stride + diameter


def gossip_within(period, replicas):
    stride = -(-period // (replicas - 1))

    def within(n):
        return hop_diameter(n) + (replicas + 1) * stride + 2

    return within


@settings(max_examples=15, deadline=None)
@given(
    st.data(), networks(2, 16), initial_states(), st.sampled_from(["min", "max"]), st.sampled_from([2, 3]),
    schedules(("sync", "batches", "sweeps")), perturbations(("drop_links", "move_devices")),
)
def test_replicated_gossip_self_stabilises(data, net, initial, op, replicas, schedule, perturb):
    """From any state, gossip reaches the network's min/max within diameter + (replicas + 1) * stride + 2 rounds,
    holds it, and again after the topology changes or the extreme value changes place and size."""
    net.sensors["v"] = data.draw(sensor_values(net), label="v")
    period = 2 * net.n_devices  # at least twice the hop diameter, before and after the perturbation
    program = lambda: replicated_gossip(sense("v"), op, period, replicas)

    def new_values(n):
        changed = perturb(n)
        changed.sensors["v"] = np.roll(n.sensors["v"], 1) * 0.5  # the old extreme disappears
        return changed

    assert_self_stabilises(
        program, net, gossip_oracle("v", op), within=gossip_within(period, replicas), hold=4, schedule=schedule,
        initial=initial, perturb=new_values,
    )


def test_gossip_on_the_torch_backend():
    pytest.importorskip("torch")
    net = line(5)
    net.sensors["v"] = np.array([5.0, 2.0, 7.0, 3.0, 8.0])
    hi = run(lambda: gossip_max(sense("v"), period=10), net, rounds=25, backend="torch").last
    assert hi.tolist() == [8.0] * 5
