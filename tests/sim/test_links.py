"""fieldlearn.sim.links: KD-tree graphs equal brute force (also under motion with the Verlet skin, jumps, splices,
crashes), rows in neighbour order whatever the search history; cuts."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.sim.links import Cut, FixedRule, KnnRule, RadiusRule, segments_cross


def brute_radius(pos, alive, r):
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    ok = (d <= r) & alive[:, None] & alive[None]
    np.fill_diagonal(ok, False)
    src, dst = np.nonzero(ok)
    return src, dst, d[src, dst]


@settings(max_examples=40)
@given(st.integers(2, 60), st.floats(0.05, 0.6), st.integers(0, 10_000))
def test_radius_graph_equals_brute_force(n, r, seed):
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2))
    alive = rng.random(n) < 0.9
    indptr, dst, d = RadiusRule(r).links(pos, alive)
    src = np.repeat(np.arange(n), np.diff(indptr))
    order = np.lexsort((dst, src))  # rows are grouped by source; compare in (source, neighbour) order
    src, dst, d = src[order], dst[order], d[order]
    bs, bd, bl = brute_radius(pos, alive, r)
    assert np.array_equal(src, bs) and np.array_equal(dst, bd)
    np.testing.assert_allclose(d, bl)


def test_radius_skin_tracks_motion_exactly():
    rng = np.random.default_rng(3)
    n, r = 200, 0.12
    pos = rng.random((n, 2))
    alive = np.ones(n, dtype=bool)
    rule = RadiusRule(r, skin=0.25 * r)
    for step in range(40):
        pos = np.clip(pos + rng.normal(0, 0.004, (n, 2)), 0, 1)
        if step == 20:
            alive[:10] = False
        indptr, dst, _ = rule.links(pos, alive)
        src = np.repeat(np.arange(n), np.diff(indptr))
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        bs, bd, _ = brute_radius(pos, alive, r)
        assert np.array_equal(src, bs) and np.array_equal(dst, bd)
    assert 1 < rule.searches < 40  # the KD-tree ran again only sometimes


def brute_csr(pos, alive, r):
    """Brute-force radius graph as CSR in (device, neighbour) order, lengths sqrt(dx * dx + dy * dy)."""
    dx = pos[:, None, 0] - pos[None, :, 0]
    dy = pos[:, None, 1] - pos[None, :, 1]
    d2 = dx * dx + dy * dy
    ok = (d2 <= r * r) & alive[:, None] & alive[None]
    np.fill_diagonal(ok, False)
    src, dst = np.nonzero(ok)
    return np.searchsorted(src, np.arange(len(pos) + 1)), dst, np.sqrt(d2[src, dst])


def assert_exact(got, pos, alive, r):
    indptr, dst, length = got
    want = brute_csr(pos, alive, r)
    assert np.array_equal(indptr, want[0]) and np.array_equal(dst, want[1])  # same rows, same order
    assert np.array_equal(length, want[2])  # same lengths, bit for bit


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 150), st.floats(0.04, 0.3), st.sampled_from([0.0, 0.1, 0.25, 0.5]), st.booleans(),
       st.integers(0, 10_000))
def test_radius_rule_exact_in_neighbour_order_under_drift_jumps_and_crashes(n, r, skin, adapt, seed):
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2))
    alive = rng.random(n) < 0.9
    rule = RadiusRule(r, skin=skin * r, adapt=adapt)
    for _ in range(30):
        kind = rng.integers(5)
        if kind == 0:  # everybody drifts a little
            pos = pos + rng.normal(0, 0.004, pos.shape)
        elif kind == 1:  # a few devices jump anywhere
            pos = pos.copy()
            who = rng.random(n) < rng.choice([0.02, 0.1, 0.4])
            pos[who] = rng.random((int(who.sum()), 2))
        elif kind == 2:  # crashes and joins
            alive = alive.copy()
            alive[rng.integers(n, size=3)] ^= True
        elif kind == 3:  # fast motion
            pos = pos + rng.normal(0, 0.03, pos.shape)
        assert_exact(rule.links(pos, alive), pos, alive, r)


def test_radius_rule_splices_jumpers_and_skips_unchanged_positions():
    rng = np.random.default_rng(5)
    n, r = 400, 0.08
    pos = rng.random((n, 2))
    alive = np.ones(n, dtype=bool)
    rule = RadiusRule(r)
    first = rule.links(pos, alive)
    assert rule.links(pos.copy(), alive) is first and rule.searches == 1  # nothing moved: no work at all
    for step in range(10):
        pos = pos.copy()
        pos[rng.choice(n, 5, replace=False)] = rng.random((5, 2))  # a few devices jump
        if step == 4:
            alive[7] = False
        assert_exact(rule.links(pos, alive), pos, alive, r)
    assert rule.searches == 1 and rule.splices == 10  # only the jumpers were searched again
    pos = rng.random((n, 2))  # everybody jumps: one full search
    assert_exact(rule.links(pos, alive), pos, alive, r)
    assert rule.searches == 2


def test_radius_rule_links_do_not_depend_on_the_search_history():
    rng = np.random.default_rng(11)
    n, r = 300, 0.1
    pos = rng.random((n, 2))
    alive = np.ones(n, dtype=bool)
    rules = [RadiusRule(r), RadiusRule(r, skin=0.3 * r), RadiusRule(r, skin=0.1 * r, adapt=False)]
    for step in range(25):
        pos = np.clip(pos + rng.normal(0, 0.005, pos.shape), 0, 1)
        if step % 7 == 3:
            pos[: n // 10] = rng.random((n // 10, 2))
        outs = [rule.links(pos, alive) for rule in rules]
        for out in outs[1:]:
            assert all(np.array_equal(u, v) for u, v in zip(outs[0], out))
    assert len({rule.searches for rule in rules}) > 1  # they did search at different times


@settings(max_examples=30)
@given(st.integers(2, 40), st.integers(1, 6), st.integers(0, 10_000))
def test_knn_graph_equals_brute_force(n, k, seed):
    pos = np.random.default_rng(seed).random((n, 2))
    alive = np.ones(n, dtype=bool)
    src, dst, _ = KnnRule(k).edges(pos, alive)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    np.fill_diagonal(d, np.inf)
    kk = min(k, n - 1)
    near = np.argsort(d, axis=1, kind="stable")[:, :kk]
    want = set()
    for i in range(n):
        for j in near[i]:
            want |= {(i, int(j)), (int(j), i)}
    got = set(zip(src.tolist(), dst.tolist()))
    # ties at the k-th distance may resolve differently; random floats have none
    assert got == want


def test_fixed_rule_drops_dead_ends_and_uses_lengths():
    pos = np.array([[0.0, 0], [3, 4], [6, 8]])
    rule = FixedRule(3, np.array([[0, 1], [1, 2]]), unit_lengths=False)
    src, dst, d = rule.edges(pos, np.array([True, True, True]))
    assert list(zip(src, dst)) == [(0, 1), (1, 0), (1, 2), (2, 1)] and np.allclose(d, 5)
    src, _, _ = rule.edges(pos, np.array([True, True, False]))
    assert len(src) == 2
    assert np.all(FixedRule(3, np.array([[0, 1]]), unit_lengths=True).edges(pos, np.ones(3, bool))[2] == 1)


def test_cuts_pairs_walls_devices():
    pos = np.array([[0.0, 0], [1, 0], [2, 0], [1, 1]])
    src = np.array([0, 1, 1, 2, 1, 3])
    dst = np.array([1, 0, 2, 1, 3, 1])
    assert list(Cut(None, 4, np.array([[1, 0]]), None, None).mask(src, dst, pos)) == [1, 1, 0, 0, 0, 0]
    wall = Cut(None, 4, np.zeros((0, 2)), np.array([[1.5, -1], [1.5, 0.5]]), None)
    assert list(wall.mask(src, dst, pos)) == [0, 0, 1, 1, 0, 0]
    assert list(Cut(None, 4, np.zeros((0, 2)), None, np.array([3])).mask(src, dst, pos)) == [0, 0, 0, 0, 1, 1]


def test_segments_cross_cases():
    p = np.array([[0.0, 0], [0, 0], [0, 0]])
    q = np.array([[2.0, 2], [1, 0], [0.4, 0.4]])
    got = segments_cross(p, q, np.array([0.0, 2]), np.array([2.0, 0]))
    assert list(got) == [True, False, False]
