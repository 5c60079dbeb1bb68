"""Exact per-round tables for every construct on tiny graphs (3-node line, 4-node line, small grid)."""
import numpy as np
import pytest

from fieldlearn import (
    AlignmentError, FieldError, Network, aggregate, align, branch, constant, distances, exchange, maximum, mid,
    minimum, mux, nbr, nbr_ids, nbr_sense, rep, run, sense, share,
)
from fieldlearn.calculus import MissingSensor

INF = float("inf")


@pytest.fixture
def line3():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    net.sensors["source"] = np.array([True, False, False])
    return net


def hop_share():
    return share(INF, lambda d: mux(sense("source"), 0.0, (d + 1.0).min()))


def hop_rep_nbr():
    return rep(INF, lambda d: mux(sense("source"), 0.0, (nbr(d) + 1.0).min()))


def test_share_hop_gradient_moves_one_hop_per_round(line3):
    table = run(hop_share, line3, rounds=3).series()
    np.testing.assert_array_equal(table, [[0, INF, INF], [0, 1, INF], [0, 1, 2]])


def test_rep_nbr_hop_gradient_takes_twice_as_many_rounds(line3):
    table = run(hop_rep_nbr, line3, rounds=6).series()
    np.testing.assert_array_equal(
        table, [[0, INF, INF], [0, INF, INF], [0, 1, INF], [0, 1, INF], [0, 1, 2], [0, 1, 2]]
    )


def test_nbr_self_entry_is_current_value_share_self_entry_is_previous(line3):
    def prog():
        count = rep(0, lambda c: c + 1)
        own_nbr = nbr(count).self
        own_share = share(-1, lambda n: n.self + 0 * count)  # returns what it received as its own entry
        return own_nbr, own_share

    trace = run(prog, line3, rounds=3)
    cur, prev = zip(*trace.history)
    np.testing.assert_array_equal(np.stack(cur), [[1] * 3, [2] * 3, [3] * 3])
    np.testing.assert_array_equal(np.stack(prev), [[-1] * 3, [-1] * 3, [-1] * 3])

    def counting_share():
        return share(0, lambda n: n.self + 1)

    np.testing.assert_array_equal(run(counting_share, line3, rounds=3).series(), [[1] * 3, [2] * 3, [3] * 3])


def test_nbr_collects_neighbours_latest_exports(line3):
    def prog():
        return nbr(mid() * 10).sum(include_self=True)

    table = run(prog, line3, rounds=2).series()
    # round 0: nobody has exported yet, only the own (current) value counts
    np.testing.assert_array_equal(table[0], [0, 10, 20])
    np.testing.assert_array_equal(table[1], [0 + 10, 10 + 0 + 20, 20 + 10])


def test_rep_counts_rounds_and_keeps_state_per_device(line3):
    line3.sensors["step"] = np.array([1, 2, 3])
    table = run(lambda: rep(0, lambda x: x + sense("step")), line3, rounds=3).series()
    np.testing.assert_array_equal(table, [[1, 2, 3], [2, 4, 6], [3, 6, 9]])


def test_state_under_a_branch_not_taken_is_forgotten():
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["on"] = np.array([True, True])
    prog = lambda: branch(sense("on"), lambda: rep(0, lambda x: x + 1), lambda: -1)
    trace = run(prog, net, rounds=3)
    np.testing.assert_array_equal(trace.last, [3, 3])
    net.sensors["on"] = np.array([False, True])
    trace = run(prog, net, rounds=1, vm=trace.vm)
    np.testing.assert_array_equal(trace.last, [-1, 4])
    net.sensors["on"] = np.array([True, True])
    trace = run(prog, net, rounds=1, vm=trace.vm)
    np.testing.assert_array_equal(trace.last, [1, 5])  # device 0 restarts from init


def test_devices_in_different_branches_do_not_see_each_other():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    net.sensors["left"] = np.array([True, True, False, False])
    prog = lambda: branch(sense("left"), lambda: nbr(1).count(), lambda: nbr(1).count() + 100)
    table = run(prog, net, rounds=2).series()
    np.testing.assert_array_equal(table[1], [1, 1, 101, 101])  # the 1-2 link crosses the split


def test_branch_projects_captured_fields_and_neighbour_fields():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    net.sensors["odd"] = np.array([False, True, False, True])

    def prog():
        ids = mid() * 1.0
        heard = nbr(ids)
        return branch(sense("odd"), lambda: ids + heard.max(include_self=True), lambda: -ids)

    table = run(prog, net, rounds=2).series()
    np.testing.assert_array_equal(table[1], [-0.0, 1 + 2, -2.0, 3 + 3])


def test_branch_sides_with_different_dtypes_promote():
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["c"] = np.array([True, False])
    out = run(lambda: branch(sense("c"), lambda: 1, lambda: 2.5), net, rounds=1).last
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [1.0, 2.5])


def test_duplicate_paths_raise_alignment_error_naming_the_path(line3):
    def prog():
        with align("k"):
            a = nbr(1).sum()
        with align("k"):
            b = nbr(2).sum()
        return a + b

    with pytest.raises(AlignmentError, match=r"\('align', 'k'\)/nbr#0"):
        run(prog, line3, rounds=1)


def test_align_keys_separate_loop_iterations(line3):

    def prog():
        total = constant(0)
        for k in (0, 1):
            with align(k):
                total = total + nbr(mid() + 0).count()
        return total

    np.testing.assert_array_equal(run(prog, line3, rounds=2).last, [2, 4, 2])


def test_loops_align_by_iteration_counter(line3):
    def prog():
        return [nbr(mid() * (i + 1)).sum() for i in range(3)]

    last = run(prog, line3, rounds=2).last
    np.testing.assert_array_equal(last[0], [1, 2, 1])
    np.testing.assert_array_equal(last[2], [3, 6, 3])


def test_python_if_on_a_field_raises_naming_branch_and_mux(line3):
    def prog():
        if sense("source"):
            return 1
        return 0

    with pytest.raises(FieldError, match="mux.*branch"):
        run(prog, line3, rounds=1)


def test_aggregate_functions_align_by_call_site(line3):
    @aggregate
    def counter():
        return rep(0, lambda c: c + 1)

    def prog():
        a = counter()
        b = branch(sense("source"), lambda: counter(), lambda: counter() * 10)
        return a, b

    a, b = run(prog, line3, rounds=2).last
    np.testing.assert_array_equal(a, [2, 2, 2])
    np.testing.assert_array_equal(b, [2, 20, 20])


def test_exchange_sends_a_different_message_to_each_neighbour():
    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    prog = lambda: exchange(-1, lambda n: (n.max(default=-1), mid() * 10 + nbr_ids()))
    table = run(prog, net, rounds=2).series()
    np.testing.assert_array_equal(table[0], [-1, -1, -1, -1])
    np.testing.assert_array_equal(table[1], [10, 21, 32, 23])  # max over neighbours j of 10*j + me


def test_exchange_with_a_plain_field_behaves_like_share(line3):
    ex = lambda: exchange(INF, lambda d: (v := mux(sense("source"), 0.0, (d + 1.0).min()), v))
    np.testing.assert_array_equal(run(ex, line3, rounds=3).series(), run(hop_share, line3, rounds=3).series())


def test_mux_is_pointwise_and_evaluates_both_sides(line3):
    calls = []

    def side(v):
        calls.append(v)
        return constant(v)

    out = run(lambda: mux(sense("source"), side(1), side(2)), line3, rounds=1).last
    np.testing.assert_array_equal(out, [1, 2, 2])
    assert calls == [1, 2]


def test_mux_on_neighbour_fields(line3):
    def prog():
        d = nbr(mid() * 1.0)
        return mux(d > 0.5, d, -d).sum()

    np.testing.assert_array_equal(run(prog, line3, rounds=2).last, [1.0, 0.0 + 2.0, 1.0])


def test_reductions_include_self_and_defaults():
    net = Network.from_edges(4, [(0, 1), (1, 2)])  # device 3 is isolated
    net.sensors["v"] = np.array([5.0, 1.0, 3.0, 7.0])

    def prog():
        v = nbr(sense("v"))
        return {
            "min": v.min(), "min_self": v.min(include_self=True), "max": v.max(default=-1.0),
            "sum": v.sum(), "mean": v.mean(default=0.0), "mean_self": v.mean(include_self=True),
            "any": (v > 4).any(), "all": (v > 2).all(), "argmin": v.argmin(), "argmax_self": v.argmax(include_self=True),
            "count": v.count(),
        }

    r = run(prog, net, rounds=2).last
    np.testing.assert_array_equal(r["min"], [1, 3, 1, INF])
    np.testing.assert_array_equal(r["min_self"], [1, 1, 1, 7])
    np.testing.assert_array_equal(r["max"], [1, 5, 1, -1])
    np.testing.assert_array_equal(r["sum"], [1, 8, 1, 0])
    np.testing.assert_array_equal(r["mean"], [1, 4, 1, 0])
    np.testing.assert_array_equal(r["mean_self"], [3, 3, 2, 7])
    np.testing.assert_array_equal(r["any"], [False, True, False, False])
    np.testing.assert_array_equal(r["all"], [False, True, False, True])
    np.testing.assert_array_equal(r["argmin"], [1, 2, 1, -1])
    np.testing.assert_array_equal(r["argmax_self"], [0, 0, 2, 3])
    np.testing.assert_array_equal(r["count"], [1, 2, 1, 0])


def test_argmin_ties_go_to_the_lowest_id():
    net = Network.from_edges(4, [(0, 3), (0, 1), (0, 2)])
    out = run(lambda: nbr(constant(1.0)).argmin(), net, rounds=2).last
    np.testing.assert_array_equal(out, [1, 0, 0, 0])


def test_distances_and_link_sensors():
    net = Network.from_edges(3, [(0, 1), (1, 2)], distances=[2.0, 0.5])
    r = run(lambda: (distances().sum(), nbr_sense("distance").max(), distances().self), net, rounds=1).last
    np.testing.assert_array_equal(r[0], [2.0, 2.5, 0.5])
    np.testing.assert_array_equal(r[1], [2.0, 2.0, 0.5])
    np.testing.assert_array_equal(r[2], [0, 0, 0])
    with pytest.raises(KeyError, match="no link sensor named 'rssi'"):
        run(lambda: nbr_sense("rssi").sum(), net, rounds=1)


def test_missing_sensor_names_the_known_ones(line3):
    with pytest.raises(KeyError, match="no sensor named 'temp'.*source") as caught:
        run(lambda: sense("temp"), line3, rounds=1)
    assert isinstance(caught.value, MissingSensor) and caught.value.name == "temp"


def test_minimum_maximum_and_numpy_ufuncs_on_fields(line3):
    def prog():
        x = mid() * 1.0
        return minimum(x, 1.5), maximum(1.5, x), np.sqrt(x), np.minimum(x, nbr(x).max())

    a, b, c, d = run(prog, line3, rounds=2).last
    np.testing.assert_array_equal(a, [0, 1, 1.5])
    np.testing.assert_array_equal(b, [1.5, 1.5, 2])
    np.testing.assert_allclose(c, np.sqrt([0, 1, 2]))
    np.testing.assert_array_equal(d, [0, 1, 1])


def test_nested_values_travel_through_share_and_rep(line3):
    def prog():
        pair = share((INF, -1), lambda n: mux(sense("source"), (0.0, mid()), ((n[0] + 1.0).min(), n[1].max())))
        return {"pair": pair, "vec": rep(np.zeros(2), lambda v: v + np.array([1.0, 2.0]))}

    r = run(prog, line3, rounds=3).last
    np.testing.assert_array_equal(r["pair"][0], [0, 1, 2])
    np.testing.assert_array_equal(r["pair"][1], [0, 0, 0])
    np.testing.assert_array_equal(r["vec"], [[3, 6]] * 3)


def test_reducing_is_required_before_returning_a_neighbour_field(line3):
    with pytest.raises(FieldError, match="neighbour field"):
        run(lambda: share(0.0, lambda n: n), line3, rounds=1)


def test_rep_structure_must_not_change(line3):
    with pytest.raises(FieldError, match="structure"):
        run(lambda: rep(0, lambda x: (x, x)), line3, rounds=1)


def test_constructs_outside_a_round_raise():
    with pytest.raises(RuntimeError, match="only inside a round"):
        nbr(1)


def test_a_callable_init_runs_only_when_some_device_has_no_previous_value():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    calls = []

    def init():
        calls.append(1)
        return constant(10)

    prog = lambda: rep(init, lambda c: c + 1)
    trace = run(prog, net, rounds=3)
    np.testing.assert_array_equal(trace.last, [13, 13, 13])
    assert len(calls) == 1
    trace = run(prog, net, schedule=[[0], [1, 2]], vm=trace.vm)
    assert len(calls) == 1
    trace.vm.forget([2])
    trace = run(prog, net, schedule=[[1, 2]], vm=trace.vm)
    np.testing.assert_array_equal(trace.last[1:], [15, 11])  # device 2 restarted from the init
    assert len(calls) == 2


def test_constructs_in_a_callable_init_do_not_shift_the_paths_of_the_function():
    @aggregate
    def counter(step):
        return rep(0, lambda c: c + step)

    net = Network.from_edges(2, [(0, 1)])
    # the init's counter (by 10) runs only in round 1; the function's counter (by 1) must see its own state
    prog = lambda: rep(lambda: counter(10) * 0, lambda s: counter(1))
    table = run(prog, net, rounds=3).series()
    np.testing.assert_array_equal(table, [[1, 1], [2, 2], [3, 3]])


def test_local_functions_see_raw_arrays_of_the_current_domain():
    from fieldlearn import local

    net = Network.from_edges(4, [(0, 1), (2, 3)])
    net.sensors["c"] = np.array([True, False, True, False])
    seen = []

    @local
    def double_rows(x, ids, scale=1):
        seen.append(ids.tolist())
        return {"y": x * 2 * scale, "n": len(ids)}

    def prog():
        x = mid() * 1.0
        return branch(sense("c"), lambda: double_rows(x, mid(), scale=3)["y"], lambda: x)

    np.testing.assert_array_equal(run(prog, net, rounds=1).last, [0, 1, 12, 3])
    assert seen == [[0, 2]]


def test_clock_counts_batches_and_resource_reads_what_the_runner_lent():
    from fieldlearn import Network, clock, constant, resource, run

    net = Network.from_edges(3, [(0, 1), (1, 2)])
    seen = []
    trace = run(lambda: constant(resource("scale") * 10) + (seen.append(clock()) or 0), net, rounds=3,
                schedule="sync", resources={"scale": 2})
    assert seen == [0, 1, 2]
    assert trace.last.tolist() == [20, 20, 20]


def test_a_missing_resource_names_what_is_lent():
    from fieldlearn import Network, resource, run

    net = Network.from_edges(2, [(0, 1)])
    with pytest.raises(LookupError, match=r"'learning'.*provided: other"):
        run(lambda: resource("learning"), net, rounds=1, resources={"other": 1})
