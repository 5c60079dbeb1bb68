"""assert_self_stabilises: passes what stabilises, and fails with a message naming phase, round and devices."""
import numpy as np
import pytest
from hypothesis import given, settings

from fieldlearn import Network, aggregate, mux, run, sense
from fieldlearn.lib import broadcast, counter, distance_to
from fieldlearn.testing import (
    Perturbation,
    Satisfies,
    Schedule,
    Scramble,
    SelfStabilisationError,
    assert_self_stabilises,
    geometric_networks,
    gradient_bound,
    gradient_oracle,
    initial_states,
    rounds_to_stabilise,
    shortest_distances,
    tree_height,
)


def line(n):
    net = Network.from_edges(n, [(i, i + 1) for i in range(n - 1)])
    net.sensors["source"] = net.ids == 0
    return net


def gradient():
    return distance_to(sense("source"))


def test_a_stabilising_program_passes_and_reports_when_it_settled():
    report = assert_self_stabilises(gradient, line(5), gradient_oracle(), within=5, hold=3)
    assert report.rounds == [5] and report.bounds == [5]  # the far end is right from round 5
    assert report.last.tolist() == [0, 1, 2, 3, 4]
    # a plain function of the network works as the oracle too
    report = assert_self_stabilises(gradient, line(5), lambda n: np.arange(5.0), within=5, hold=1)
    assert report.rounds == [5]


def test_not_reaching_the_oracle_in_time_names_the_round_and_the_devices():
    with pytest.raises(SelfStabilisationError) as err:
        assert_self_stabilises(gradient, line(5), gradient_oracle(), within=3, hold=2)
    text = str(err.value)
    assert "did not self-stabilise from the initial state" in text and "bound 3 rounds" in text
    assert "At round 3, 2 of 5 devices differ from the oracle" in text
    assert "device 3: expected 3.0, got inf" in text and "device 4: expected 4.0, got inf" in text


@aggregate
def blink():
    """Right (0) only at rounds 3 and 4 of each device, then wrong again."""
    c = counter()
    return mux((c == 2) | (c == 3), 0.0, 1.0)


def test_leaving_the_oracle_during_the_hold_is_a_failure():
    net = line(3)
    with pytest.raises(SelfStabilisationError) as err:
        assert_self_stabilises(blink, net, lambda n: np.zeros(3), within=4, hold=3)
    text = str(err.value)
    assert "It matched the oracle from round 3 but left it at round 5" in text
    assert "device 0: expected 0.0, got 1.0" in text


def test_a_result_that_keeps_changing_fails_a_steady_property():
    net = line(3)
    nonnegative = Satisfies(lambda n, r: r >= 0, "non-negative")
    with pytest.raises(SelfStabilisationError, match="kept changing") as err:
        assert_self_stabilises(counter, net, nonnegative, within=3, hold=3)
    assert "It matched the oracle from round 3 but left it at round 4" in str(err.value)
    assert "device 0: was 2, now 3" in str(err.value)
    assert assert_self_stabilises(counter, net, nonnegative, within=3, hold=3, steady=False).rounds == [1]


def test_each_perturbation_is_a_phase_of_its_own():
    net = line(4)

    def move_source(n):
        moved = Network(n.graph, n.positions, dict(n.sensors))
        moved.sensors["source"] = n.ids == 3
        return moved

    report = assert_self_stabilises(gradient, net, gradient_oracle(), within=6, hold=2, perturb=[move_source, Perturbation("drop_links", 0)])
    assert len(report.rounds) == 3
    assert report.last.tolist() == [3, 2, 1, 0]
    # the rising-value problem: values rise by one link a round after the source moves to the far end, so 2
    # rounds are not enough the second time
    tight = lambda n: 4 if n.sensors["source"][0] else 2
    with pytest.raises(SelfStabilisationError, match=r"after perturbation 1 \(move_source\)"):
        assert_self_stabilises(gradient, net, gradient_oracle(), within=tight, hold=2, perturb=move_source)


def test_schedules_initial_states_and_bounds_as_functions():
    net = line(6)
    bound = lambda n: gradient_bound(n, "source")
    for schedule in ("sync", "sequential", "random", Schedule("batches", 3), lambda k, n: [np.arange(n)]):
        assert_self_stabilises(gradient, net, gradient_oracle(), within=bound, hold=2, schedule=schedule)
    assert_self_stabilises(gradient, net, gradient_oracle(), within=bound, hold=2, initial=Scramble(5, 6))
    started = run(gradient, net, rounds=2).vm
    report = assert_self_stabilises(gradient, net, gradient_oracle(), within=4, hold=2, initial=started)
    assert report.rounds == [4]  # 2 rounds already done
    report = assert_self_stabilises(gradient, net, gradient_oracle(), within=6, hold=2, initial=lambda p, n: run(p, n, rounds=1).vm)
    assert report.rounds == [5]


def test_an_unfair_schedule_is_refused():
    with pytest.raises(ValueError, match="not fair"):
        assert_self_stabilises(gradient, line(3), gradient_oracle(), within=5, schedule=lambda k, n: [np.array([0])])


def test_rounds_to_stabilise():
    assert rounds_to_stabilise(gradient, line(7), gradient_oracle(), max_rounds=10) == 7
    assert rounds_to_stabilise(gradient, line(7), gradient_oracle(), max_rounds=5) is None


def test_the_torch_backend_can_be_checked_too():
    pytest.importorskip("torch")
    report = assert_self_stabilises(gradient, line(4), gradient_oracle(atol=1e-6), within=4, hold=2, backend="torch")
    assert report.rounds == [4]


# -- the README example: a user's own block, property-tested ------------------------------------------------
@aggregate
def my_channel(source, target, width):
    """Devices within `width` of a shortest path from source to target."""
    to_source, to_target = distance_to(source), distance_to(target)
    return to_source + to_target <= broadcast(to_source, to_target) + width


@settings(max_examples=10, deadline=None)
@given(geometric_networks(max_devices=15), initial_states())
def test_readme_example_channel(net, initial):
    net.sensors["source"] = net.ids == 0
    net.sensors["target"] = net.ids == net.n_devices - 1

    def expected(n):
        ds, dt = shortest_distances(n, "source"), shortest_distances(n, "target")
        return ds + dt <= dt[0] + 0.5

    def within(n):
        pot = shortest_distances(n, "source")
        return max(gradient_bound(n, "source"), gradient_bound(n, "target")) + tree_height(n, pot) + 1

    assert_self_stabilises(
        lambda: my_channel(sense("source"), sense("target"), 0.5), net, expected, within=within, hold=5,
        initial=initial, perturb=Perturbation("drop_links", seed=1),
    )
