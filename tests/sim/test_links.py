"""fieldlearn.sim.links: the radius rule's graphs equal a from-scratch build (calculus radius_graph) and brute force,
bit for bit and in CSR order, under drift, jumps, crashes and joins, with or without skin, dense or sparse cells,
whatever the search history; the cell list; k-nearest and fixed rules; cuts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.calculus.network import Graph, radius_graph
from fieldlearn.sim.links import (
    CellList,
    Cut,
    FixedRule,
    KnnRule,
    RadiusRule,
    filter_links,
    segments_cross,
    symmetric_csr,
)


def brute_csr(pos, alive, r):
    """Brute-force radius graph as CSR in (device, neighbour) order, lengths sqrt(dx * dx + dy * dy)."""
    dx = pos[:, None, 0] - pos[None, :, 0]
    dy = pos[:, None, 1] - pos[None, :, 1]
    d2 = dx * dx + dy * dy
    ok = (d2 <= r * r) & alive[:, None] & alive[None]
    np.fill_diagonal(ok, False)
    src, dst = np.nonzero(ok)
    return np.searchsorted(src, np.arange(len(pos) + 1)), dst, np.sqrt(d2[src, dst])


def from_scratch(pos, alive, r):
    """The calculus' own radius graph of the alive devices, renumbered to all device ids (an independent build)."""
    ids = np.flatnonzero(alive)
    g = radius_graph(pos[ids], r) if len(ids) else None
    n = len(pos)
    indptr = np.zeros(n + 1, dtype=np.int64)
    if g is None:
        return indptr, np.zeros(0, dtype=np.int64), np.zeros(0)
    indptr[ids + 1] = g.degree()
    return np.cumsum(indptr), ids[g.neighbours], g.distance


def assert_exact(got: Graph, pos, alive, r):
    assert isinstance(got, Graph)
    want = brute_csr(pos, alive, r)
    assert np.array_equal(got.indptr, want[0]) and np.array_equal(got.neighbours, want[1])  # same rows, same order
    assert np.array_equal(got.distance, want[2])  # same lengths, bit for bit
    # the calculus' KD-tree build rounds the radius test its own way: compare away from the boundary
    if r > 0 and not np.any(np.isclose(np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1)), r, rtol=1e-12)):
        ref = from_scratch(pos, alive, r)
        assert all(np.array_equal(u, v) for u, v in zip(ref, (got.indptr, got.neighbours, got.distance)))


def test_radius_rule_equals_the_calculus_radius_graph_at_scale():
    rng = np.random.default_rng(0)
    n = 20_000
    pos = rng.random((n, 2)) * np.sqrt(n)
    g = radius_graph(pos, 1.8)
    got = RadiusRule(1.8).links(pos, np.ones(n, dtype=bool))
    assert np.array_equal(got.indptr, g.indptr) and np.array_equal(got.neighbours, g.neighbours)
    assert np.array_equal(got.distance, g.distance)
    assert got.neighbours.dtype == np.int64 and got.indptr.dtype == np.int64


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.floats(0.05, 0.6), st.integers(0, 10_000))
def test_radius_graph_equals_brute_force(n, r, seed):
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2))
    alive = rng.random(n) < 0.9
    assert_exact(RadiusRule(r).links(pos, alive), pos, alive, r)


# one update of a moving world: how it moves and who crashes or joins
moves = st.tuples(
    st.sampled_from(["drift", "fast", "jump_few", "jump_many", "crash_join", "still", "scale"]),
    st.integers(0, 2**31 - 1),
)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 120), st.floats(0.03, 0.4), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]), st.booleans(),
       st.sampled_from(["uniform", "clustered", "line", "duplicates"]), st.lists(moves, min_size=1, max_size=25),
       st.integers(0, 2**31 - 1))
def test_radius_rule_equals_a_full_rebuild_after_any_moves(n, r, skin, adapt, layout, steps, seed):
    """Property: after any sequence of moves, crashes and joins, the links (CSR order and lengths included) are
    those of a from-scratch build at that update's positions."""
    rng = np.random.default_rng(seed)
    if layout == "uniform":
        pos = rng.random((n, 2))
    elif layout == "clustered":  # far-apart clusters: the cell table is sparse
        pos = rng.random((n, 2)) * 0.2 + rng.integers(0, 3, (n, 1)) * 1e4
    elif layout == "line":
        pos = np.column_stack([rng.random(n) * 5, np.zeros(n)])
    else:  # several devices at the same place
        pos = np.repeat(rng.random((max(n // 3, 1), 2)), 3, axis=0)[:n]
        n = len(pos)
    alive = rng.random(n) < 0.9
    rule = RadiusRule(r, skin=skin * r, adapt=adapt)
    assert_exact(rule.links(pos, alive), pos, alive, r)
    for kind, s in steps:
        g = np.random.default_rng(s)
        pos = pos.copy()
        if kind == "drift":  # everybody moves a little
            pos += g.normal(0, 0.01 * r, pos.shape)
        elif kind == "fast":  # everybody moves up to a third of the radius
            angle = g.random(n) * 2 * np.pi
            pos += (g.random(n) * r / 3)[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
        elif kind in ("jump_few", "jump_many"):
            who = g.random(n) < (0.05 if kind == "jump_few" else 0.5)
            pos[who] = g.random((int(who.sum()), 2))
        elif kind == "crash_join":
            alive = alive.copy()
            alive[g.integers(n, size=3)] ^= True
        elif kind == "scale":  # a few devices wander some radii away
            pos[g.integers(n, size=2)] += g.normal(0, 3 * r, (2, 2))
        assert_exact(rule.links(pos, alive), pos, alive, r)


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
        assert_exact(rule.links(pos, alive), pos, alive, r)
    assert 1 < rule.searches < 40  # the cell list ran again only sometimes


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


def test_radius_rule_drops_the_skin_when_devices_move_a_third_of_the_radius_per_update():
    rng = np.random.default_rng(8)
    n, r = 2_000, 0.05
    pos = rng.random((n, 2))
    alive = np.ones(n, dtype=bool)
    rule = RadiusRule(r, skin=0.25 * r)
    heading = rng.random(n) * 2 * np.pi
    step = (r / 3) * np.column_stack([np.cos(heading), np.sin(heading)])
    for _ in range(6):
        pos = pos + step
        assert_exact(rule.links(pos, alive), pos, alive, r)
    assert rule.skin == 0.0 and rule.searches == 6  # every update searches: no candidates to re-test
    slow = RadiusRule(r, skin=0.25 * r)
    for _ in range(6):
        pos = pos + step / 100
        assert_exact(slow.links(pos, alive), pos, alive, r)
    assert slow.skin > 0 and slow.searches < 6  # slow drift: candidates re-tested between searches


def test_radius_rule_links_do_not_depend_on_the_search_history():
    rng = np.random.default_rng(11)
    n, r = 300, 0.1
    pos = rng.random((n, 2))
    alive = np.ones(n, dtype=bool)
    rules = [RadiusRule(r), RadiusRule(r, skin=0.3 * r), RadiusRule(r, skin=0.1 * r, adapt=False)]
    for step in range(25):
        pos = np.clip(pos + rng.normal(0, 0.001, pos.shape), 0, 1)
        if step % 7 == 3:
            pos[: n // 10] = rng.random((n // 10, 2))
        outs = [rule.links(pos, alive) for rule in rules]
        for out in outs[1:]:
            assert all(np.array_equal(u, v) for u, v in zip((outs[0].indptr, outs[0].neighbours, outs[0].distance),
                                                             (out.indptr, out.neighbours, out.distance)))
    assert len({rule.searches for rule in rules}) > 1  # they did search at different times


@pytest.mark.parametrize("dense", [True, False])
def test_cell_list_finds_exactly_the_devices_within_reach(dense, monkeypatch):
    if not dense:
        monkeypatch.setattr(CellList, "MAX_DENSE_CELLS_PER_DEVICE", -1000)  # always binary search
    rng = np.random.default_rng(2)
    pos = rng.random((500, 2)) * 10
    ids = np.flatnonzero(rng.random(500) < 0.8)
    cells = CellList(pos, ids, 0.7)
    assert cells.dense == dense
    who = ids[::3]
    counts, found, d2 = cells.near(who, 0.7 ** 2, block=16)
    rows = np.repeat(who, counts)
    got = sorted(zip(rows.tolist(), found.tolist(), d2.tolist()))
    dx = pos[who][:, None] - pos[ids][None]
    dd = dx[..., 0] * dx[..., 0] + dx[..., 1] * dx[..., 1]
    i, j = np.nonzero((dd <= 0.7 ** 2) & (who[:, None] != ids[None]))
    assert got == sorted(zip(who[i].tolist(), ids[j].tolist(), dd[i, j].tolist()))


def test_cell_list_with_nobody_and_with_one_device():
    pos = np.zeros((3, 2))
    counts, found, d2 = CellList(pos, np.zeros(0, dtype=np.int64), 1.0).near(np.zeros(0, dtype=np.int64), 1.0)
    assert len(counts) == len(found) == len(d2) == 0
    counts, found, _ = CellList(pos, np.array([1]), 1.0).near(np.array([1]), 1.0)
    assert counts.tolist() == [0] and len(found) == 0
    assert RadiusRule(1.0).links(pos, np.zeros(3, dtype=bool)).n_links == 0


def test_symmetric_csr_sorts_every_row():
    # links 0-1 (value 1), 0-2 (2), 1-2 (3), 2-4 (4) listed row by row in any order; device 3 has none
    rows = np.array([0, 1, 2, 4])
    counts = np.array([2, 2, 3, 1])
    neighbours = np.array([2, 1, 2, 0, 1, 4, 0, 2])
    values = np.array([2.0, 1.0, 3.0, 1.0, 3.0, 4.0, 2.0, 4.0])
    indptr, nbrs, vals = symmetric_csr(5, rows, counts, neighbours, values)
    assert indptr.tolist() == [0, 2, 4, 7, 7, 8] and nbrs.tolist() == [1, 2, 0, 2, 0, 1, 4, 2]
    assert vals.tolist() == [1.0, 2.0, 1.0, 3.0, 2.0, 3.0, 4.0, 4.0] and nbrs.dtype == np.int64


def test_filter_links():
    indptr = np.array([0, 2, 3, 5])
    keep = np.array([True, False, False, True, True])
    assert list(filter_links(indptr, keep)) == [0, 1, 1, 3]


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
    g = KnnRule(k).links(pos, alive)
    assert set(zip(g.rows().tolist(), g.neighbours.tolist())) == want


def test_fixed_rule_drops_dead_ends_and_uses_lengths():
    pos = np.array([[0.0, 0], [3, 4], [6, 8]])
    rule = FixedRule(3, np.array([[0, 1], [1, 2]]), unit_lengths=False)
    src, dst, d = rule.edges(pos, np.array([True, True, True]))
    assert list(zip(src, dst)) == [(0, 1), (1, 0), (1, 2), (2, 1)] and np.allclose(d, 5)
    src, _, _ = rule.edges(pos, np.array([True, True, False]))
    assert len(src) == 2
    assert np.all(FixedRule(3, np.array([[0, 1]]), unit_lengths=True).edges(pos, np.ones(3, bool))[2] == 1)
    g = rule.links(pos, np.array([True, True, True]))
    assert g.indptr.tolist() == [0, 1, 3, 4] and g.neighbours.tolist() == [1, 0, 2, 1]


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
