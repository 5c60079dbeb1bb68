"""regions: the S -> G -> C -> G pattern as one value; region-wide aggregates reach every member and never leak."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn import Network, constant, run, sense
from fieldlearn.lib import Region, broadcast, collect, regions
from fieldlearn.testing import (
    Mismatch,
    Satisfies,
    assert_self_stabilises,
    check_leaders,
    hop_diameter,
    initial_states,
    networks,
    perturbations,
    sensor_values,
)


def two_clusters():
    """Two 3x2 grids (spacing 1) 10 apart: no links between them."""
    left = [(x, y) for y in range(2) for x in range(3)]
    right = [(x + 10.0, y) for y in range(2) for x in range(3)]
    return Network.from_positions(left + right, radius=1.5)


def test_each_cluster_becomes_one_region_with_its_own_consensus():
    net = two_clusters()
    net.sensors["v"] = np.arange(12.0)

    def program():
        region = regions(5.0)
        mean = region.broadcast(region.collect_mean(sense("v")))
        size = region.broadcast(region.collect_sum(constant(1)))
        top = region.broadcast(region.collect_max(sense("v")))
        low = region.broadcast(region.collect_min(sense("v")))
        return region, mean, size, top, low

    region, mean, size, top, low = run(program, net, rounds=25).last
    assert isinstance(region, Region)
    leaders = np.flatnonzero(region.is_leader)
    assert len(leaders) == 2 and leaders[0] < 6 <= leaders[1]
    assert region.leader.tolist() == [leaders[0]] * 6 + [leaders[1]] * 6
    assert mean.tolist() == [2.5] * 6 + [8.5] * 6
    assert size.tolist() == [6] * 12
    assert top.tolist() == [5] * 6 + [11] * 6 and low.tolist() == [0] * 6 + [6] * 6


def test_weighted_mean_uses_the_weights():
    net = two_clusters()
    net.sensors["v"] = np.arange(12.0)
    net.sensors["w"] = np.where(np.arange(12) % 2 == 0, 3.0, 1.0)

    def program():
        region = regions(5.0)
        return region.broadcast(region.collect_mean(sense("v"), weight=sense("w")))

    got = run(program, net, rounds=25).last
    v, w = np.arange(12.0), net.sensors["w"]
    expected = [np.sum(v[:6] * w[:6]) / w[:6].sum()] * 6 + [np.sum(v[6:] * w[6:]) / w[6:].sum()] * 6
    assert got.tolist() == pytest.approx(expected)


def test_values_never_cross_a_region_border():
    # leader 0 -- 1 -- 2 -- 3 -0.5- 4 -2.0- 5 -- 6 -- 7 leader (unit links unless marked): 4 is 3.5 from 0 and
    # 4 from 7, so it belongs to 0's region, yet its neighbour of least potential is 5 (2 from 7), in 7's region
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    net = Network.from_edges(8, edges, [1, 1, 1, 0.5, 2, 1, 1])
    net.sensors["prio"] = np.array([1.0, 0, 0, 0, 0, 0, 0, 0.9])
    net.sensors["v"] = np.array([1.0, 1, 1, 1, 1, 100, 100, 100])

    def program():
        region = regions(8.0, priority=sense("prio"))
        inside = region.broadcast(region.collect_mean(sense("v")))
        leaky = broadcast(region.potential, collect(region.potential, sense("v"), "mean"))
        return region, inside, leaky

    region, inside, leaky = run(program, net, rounds=30).last
    assert region.leader.tolist() == [0, 0, 0, 0, 0, 7, 7, 7]
    assert region.potential.tolist() == [0, 1, 2, 3, 3.5, 2, 1, 0]
    assert inside.tolist() == [1.0] * 5 + [100.0] * 3
    # without the region's group, 4 reports to (and hears from) 5 across the border
    assert leaky[4] == pytest.approx((100 * 3 + 1) / 4) and leaky[0] == 1.0


def region_consensus(radius):
    """Leaders form a valid sparse choice, and every device holds the mean of v over the devices naming its leader."""

    def predicate(network, result):
        region, mean = result
        bad = check_leaders(network, region.leader, region.potential, radius)
        if bad is not None:
            return bad
        v = np.asarray(network.sensors["v"], dtype=float)
        expected = np.array([v[region.leader == region.leader[i]].mean() for i in range(network.n_devices)])
        wrong = np.flatnonzero(~np.isclose(mean, expected, rtol=1e-9, atol=1e-9))
        if len(wrong):
            return Mismatch(wrong, [f"{expected[i]:.6g}" for i in wrong], [f"{mean[i]:.6g}" for i in wrong], "region means")
        return None

    return Satisfies(predicate, "region consensus")


@settings(max_examples=12, deadline=None)
@given(st.data(), networks(2, 16), st.sampled_from([1.0, 2.0, 4.0]), initial_states(), perturbations(("drop_links", "move_devices")))
def test_region_consensus_self_stabilises(data, net, radius, initial, perturb):
    """S -> G -> C -> G: every device ends up with its region's mean, regions are a valid sparse choice, and both
    settle again after the topology changes."""
    net.sensors["v"] = data.draw(sensor_values(net), label="v")

    def program():
        region = regions(radius)
        return region, region.broadcast(region.collect_mean(sense("v")))

    def within(n):
        shortest = float(n.graph.distance.min()) if n.graph.n_links else 1.0
        return 2 * (hop_diameter(n) + int(np.ceil(radius / shortest))) + 2 * n.n_devices + 5

    assert_self_stabilises(program, net, region_consensus(radius), within=within, hold=5, initial=initial, perturb=perturb)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_regions_on_the_torch_backend():
    pytest.importorskip("torch")
    net = two_clusters()
    net.sensors["v"] = np.arange(12.0)

    def program():
        region = regions(5.0)
        return region.leader, region.broadcast(region.collect_mean(sense("v"), multipath=True))

    leader, mean = run(program, net, rounds=25, backend="torch").last
    expected_leader, _ = run(program, net, rounds=25).last
    assert leader.tolist() == expected_leader.tolist()
    np.testing.assert_allclose(mean, [2.5] * 6 + [8.5] * 6, rtol=1e-6)


_CLIQUE_UNDER_A_LIMIT = r"""
import resource, sys
import numpy as np, torch
from fieldlearn import Network, run, sense
from fieldlearn.lib import regions

torch.set_num_threads(1)
n, size = 64, 300_000                      # a per-link copy: 64 * 63 links * 1.2 MB = 4.8 GB
a, b = np.triu_indices(n, 1)
net = Network.from_edges(n, np.column_stack([a, b]))
net.sensors["model"] = torch.arange(n, dtype=torch.float32)[:, None] + torch.linspace(0, 1, size)[None, :]
def _program():
    region = regions(3.0)
    return region.broadcast(region.collect_mean(sense("model")))

small = Network.from_edges(4, [(0, 1), (1, 2), (2, 3), (0, 3)])
small.sensors["model"] = torch.zeros(4, size)
run(_program, small, rounds=2, backend="torch")  # warm up (imports, first allocations) before the limit
pages = int(open("/proc/self/statm").read().split()[0])
limit = pages * resource.getpagesize() + int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
out = run(_program, net, rounds=10, backend="torch").last
want = net.sensors["model"].double().mean(0).numpy()
assert np.allclose(out, want[None, :], rtol=1e-5, atol=1e-4), float(np.abs(out - want).max())
print("ok")
"""


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_regional_mean_of_model_sized_values_stays_within_devices_times_values(tmp_path):
    """A 64-device clique, each device holding 300,000 floats (1.2 MB), through regions -> collect_mean -> broadcast
    on the torch backend, under an address-space limit of 1.5 GB above the warmed-up process: about 20 copies of
    all devices' values (77 MB) fit, one copy per link (4.8 GB) does not."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    script = tmp_path / "clique.py"
    script.write_text(_CLIQUE_UNDER_A_LIMIT)
    done = subprocess.run([sys.executable, str(script), "1536"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_leader_id_never_shows_the_placeholder_of_a_device_without_a_leader():
    from fieldlearn import Network, constant, mid, mux, run
    from fieldlearn.lib import NO_ID, Region, regions

    net = Network.from_edges(4, [(0, 1), (1, 2), (2, 3)])
    # device 1 follows no leader (the election's placeholder): reported as -1, the others as their leader's id
    shown = run(lambda: Region(mux(mid() == 1, NO_ID, mid()), constant(0.0), constant(False)).leader_id, net,
                rounds=1).last
    assert shown.tolist() == [0, -1, 2, 3]
    assert (run(lambda: regions(1.5).leader_id, net, rounds=20).last >= 0).all()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["sync", "random", "sequential"]))
def test_the_shared_tree_parent_gives_what_each_helper_finds_alone(seed, schedule):
    # Region.parent is the election's (found from the neighbour fields its share read); collect and broadcast given
    # it must equal what they find alone (tree_parent: nbr of potential and leader), whatever the firing order,
    # also after the network changes under them
    rng = np.random.default_rng(seed)
    n = 40
    first = Network.random_geometric(n, mean_degree=5, seed=seed % 1000)
    x = rng.normal(size=n)
    first.sensors["x"] = x

    def prog():
        r = regions(0.3)
        alone = Region(r.leader, r.potential, r.is_leader)  # no parent: every helper finds its own
        v = sense("x")
        return (r.collect_sum(v), alone.collect_sum(v), r.collect_mean(v, weight=v * v), alone.collect_mean(v, weight=v * v),
                r.collect_max(v), alone.collect_max(v), r.broadcast(r.collect_sum(1.0)), alone.broadcast(alone.collect_sum(1.0)))

    trace = run(prog, first, rounds=12, schedule=schedule, seed=seed)
    moved = Network.random_geometric(n, mean_degree=5, seed=seed % 1000 + 1)
    moved.sensors["x"] = x
    last = run(prog, moved, rounds=6, schedule=schedule, seed=seed + 1, vm=trace.vm).last
    for shared, alone in zip(last[0::2], last[1::2]):
        np.testing.assert_array_equal(np.asarray(shared), np.asarray(alone))
