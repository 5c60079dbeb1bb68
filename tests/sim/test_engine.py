"""fieldlearn.sim.engine: batching, retention, loss, positions at event times, link rules, determinism."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from fieldlearn import sense
from fieldlearn.sim.engine import Engine, SimulationError
from .sim_helpers import gradient_program, heard_program, scenario


def spy(engine):
    """Record (time, batch, inbox) of every vm.round call."""
    calls = []
    inner = engine.vm.round

    def round_(batch, inbox):
        calls.append((engine.time, np.array(batch), inbox))
        return inner(batch, inbox)

    engine.vm.round = round_
    return calls


def test_sync_rounds_form_one_batch_per_tick():
    e = Engine(scenario(), gradient_program)
    calls = spy(e)
    e.run()
    assert [c[0] for c in calls] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(len(c[1]) == 9 for c in calls)
    assert e.device_rounds == 45 and e.batches == 5


def test_dirac_batches_and_quantised_phases():
    e = Engine(scenario(schedule={"kind": "dirac", "period": 1.0}), gradient_program)
    calls = spy(e)
    e.run()
    assert all(len(c[1]) == 1 for c in calls) and len(calls) == 45
    q = Engine(scenario(schedule={"kind": "dirac", "period": 1.0, "phases": 2}), gradient_program)
    qc = spy(q)
    q.run()
    assert len(qc) <= 10 and sum(len(c[1]) for c in qc) == 45
    times = [c[0] for c in qc]
    assert len(times) == len(set(times))  # one batch per instant


def test_join_devices_batch_with_the_others_at_the_same_instant():
    s = scenario(faults=[{"at": 2, "kind": "join", "deployment": {"kind": "points", "points": [[1, 1.5]]}}])
    e = Engine(s, gradient_program)
    calls = spy(e)
    e.run()
    sizes = [len(c[1]) for c in calls]
    assert sizes == [9, 9, 10, 10, 10]
    assert e.alive[9] and e.rounds[9] == 3


def test_gradient_equals_networkx_shortest_paths():
    s = scenario(duration={"rounds": 12}, deployments=[{"kind": "grid", "rows": 4, "cols": 5, "jitter": 0.2}],
                 links={"rule": "radius", "radius": 1.6})
    e = Engine(s, gradient_program)
    e.run()
    g = e.graph
    G = nx.Graph()
    G.add_nodes_from(range(20))
    G.add_weighted_edges_from(zip(g.rows().tolist(), g.neighbours.tolist(), g.distance.tolist()))
    want = nx.single_source_dijkstra_path_length(G, 0)
    got = e.outputs["gradient"]
    for i in range(20):
        assert got[i] == pytest.approx(want.get(i, np.inf))


@pytest.mark.parametrize("retention, heard", [(0.5, 0), (1.0, None), (None, None)])
def test_retention_on_sync_ticks(retention, heard):
    e = Engine(scenario(links={"rule": "radius", "radius": 1.1, "retention": retention}), heard_program)
    e.run()
    degree = np.diff(e.graph.indptr)
    assert np.array_equal(e.outputs["heard"], degree if heard is None else np.zeros(9))


def test_retention_drops_exactly_the_stale_senders():
    s = scenario(duration={"rounds": 30}, schedule={"kind": "exponential", "rate": 1.0},
                 links={"rule": "radius", "radius": 1.5, "retention": 1.3})
    e = Engine(s, heard_program)
    seen = []
    inner = e.vm.round

    def check(batch, inbox):
        g = e.graph
        t = e.time
        for row, d in enumerate(batch):
            got = set(inbox.neighbours[inbox.indptr[row]:inbox.indptr[row + 1]].tolist())
            nbrs = g.neighbours[g.indptr[d]:g.indptr[d + 1]]
            want = {int(j) for j in nbrs if e.last_round[j] >= t - 1.3}
            assert got == want
            seen.append(len(nbrs) - len(want))
        return inner(batch, inbox)

    e.vm.round = check
    e.run()
    assert sum(seen) > 0  # some messages did expire


def test_loss_is_seeded_bernoulli_per_link_and_round():
    def run(seed, loss):
        s = scenario(seed=seed, duration={"rounds": 200}, deployments=[{"kind": "grid", "rows": 6, "cols": 6}],
                     links={"rule": "radius", "radius": 1.5, "loss": loss})
        e = Engine(s, heard_program)
        total = []
        e.round_hooks.append(lambda eng, ids, outs: total.append(outs["heard"].sum()))
        e.run()
        return np.array(total[1:]), e.graph.n_links

    got, links = run(1, 0.3)
    assert abs(got.mean() / links - 0.7) < 0.02
    assert np.array_equal(run(1, 0.3)[0], got)
    assert not np.array_equal(run(2, 0.3)[0], got)
    assert np.all(run(1, 0.0)[0] == links)


def test_positions_evaluated_at_each_round_time():
    s = scenario(
        duration={"rounds": 9},
        schedule={"kind": "sync", "period": 0.5},
        regions=[{"name": "A", "box": [0, 0, 5, 5]}, {"name": "B", "box": [10, 0, 15, 5]}],
        deployments=[{"kind": "points", "points": [[1, 1]],
                      "mobility": {"kind": "tour", "stops": [[1.0, 1.0], [11.0, 1.0]], "dwell_time": 2.0, "speed": 5.0}}],
    )
    e = Engine(s, lambda: {"pos": sense("position"), "region": sense("region"), "t": sense("time") + 0 * sense("id")})
    got = []
    e.round_hooks.append(lambda eng, ids, outs: got.append((float(outs["t"][0]), outs["pos"][0].tolist(),
                                                            int(outs["region"][0]))))
    e.run()
    expect_x = {0.0: 1, 1.0: 1, 2.0: 1, 2.5: 3.5, 3.0: 6, 4.0: 11, 4.5: 11}
    for t, pos, region in got:
        if t in expect_x:
            assert pos[0] == pytest.approx(expect_x[t]), t
        assert region == (0 if pos[0] <= 5 else 1 if pos[0] >= 10 else -1)


def test_same_seed_same_everything_and_program_errors_wrapped():
    s = scenario(duration={"rounds": 20}, schedule={"kind": "exponential"}, links={"rule": "radius", "radius": 1.5,
                                                                                    "loss": 0.2})
    a, b = Engine(s, gradient_program), Engine(s, gradient_program)
    a.run()
    b.run()
    assert np.array_equal(a.outputs["gradient"], b.outputs["gradient"]) and a.batches == b.batches

    def broken():
        raise ZeroDivisionError("boom")

    with pytest.raises(SimulationError, match="at time 0: ZeroDivisionError: boom"):
        Engine(scenario(), broken).run()


def test_mobility_step_moves_devices_only_at_update_instants():
    s = scenario(
        duration={"rounds": 8},
        mobility_step=2.0,
        deployments=[{"kind": "points", "points": [[0, 0]],
                      "mobility": {"kind": "tour", "stops": [[0.0, 0.0], [8.0, 0.0]], "dwell_time": 0.5, "speed": 1.0}}],
    )
    e = Engine(s, lambda: {"pos": sense("position")})
    xs = []
    e.round_hooks.append(lambda eng, ids, outs: xs.append(float(outs["pos"][0][0])))
    e.run()
    # exact motion would be x = t - 0.5 from t = 0.5; updates at 0, 2, 4, 6 hold for two rounds each
    assert xs == [0.0, 0.0, 1.5, 1.5, 3.5, 3.5, 5.5, 5.5]


def test_inboxes_are_the_exact_radius_graph_of_each_round_under_mixed_mobility():
    """Touring jumpers, waypoint walkers and static devices, with a crash and a move: every round's inbox is the
    brute-force radius graph of that round's positions, rows in neighbour order, lengths bit for bit."""
    s = scenario(
        duration={"rounds": 40},
        regions=[{"name": "W", "box": [0, 0, 5, 10]}, {"name": "E", "box": [5, 0, 10, 10]}],
        deployments=[{"kind": "random", "count": 60, "box": [0, 0, 10, 10]},
                     {"kind": "random", "count": 30, "box": [0, 0, 10, 10],
                      "mobility": {"kind": "tour", "stops": ["W", "E"], "dwell": 6, "start": "spread"}},
                     {"kind": "random", "count": 30, "box": [0, 0, 10, 10],
                      "mobility": {"kind": "random_waypoint", "box": [0, 0, 10, 10], "speed": [0.05, 0.3],
                                   "pause": [0, 3]}}],
        links={"rule": "radius", "radius": 1.6},
        faults=[{"at": 11, "kind": "crash", "devices": {"ids": [3, 70, 100]}},
                {"at": 17, "kind": "move", "devices": {"ids": [5]}, "to": [9.5, 9.5]}],
    )
    e = Engine(s, gradient_program)
    calls = spy(e)
    checked = []

    def check(eng, ids, outs):
        _, batch, inbox = calls[-1]
        pos, alive, r = eng.positions, eng.alive, 1.6
        dx = pos[:, None, 0] - pos[None, :, 0]
        dy = pos[:, None, 1] - pos[None, :, 1]
        d2 = dx * dx + dy * dy
        ok = (d2 <= r * r) & alive[:, None] & alive[None]
        np.fill_diagonal(ok, False)
        ok = ok[batch]
        src, dst = np.nonzero(ok)
        assert np.array_equal(inbox.indptr, np.searchsorted(src, np.arange(len(batch) + 1)))
        assert np.array_equal(inbox.neighbours, dst)
        assert np.array_equal(inbox.edge_data["distance"], np.sqrt(d2[batch][src, dst]))
        checked.append(eng.time)

    e.round_hooks.append(check)
    e.run()
    assert len(checked) == 40 and e.env.rule.searches > 1


# -- failures of the program or the scenario, as the command line reports them ---------------------------------
GRID = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "scenarios" / "grid.yaml")


def _tiny(tmp_path, program_text: str, extra: str = "", file: str = "p.py") -> str:
    (tmp_path / file).write_text(program_text)
    (tmp_path / "s.yaml").write_text("duration: {rounds: 3}\ndeployments: [{kind: grid, rows: 3, cols: 3}]\n"
                                     f"links: {{rule: radius, radius: 1.5}}\nprogram: {file}\n" + extra)
    return str(tmp_path / "s.yaml")


def test_a_crash_before_the_first_round_is_a_crash(tmp_path, capsys):
    from fieldlearn.sim.__main__ import main

    args = [GRID, "--quiet", "--out", str(tmp_path / "o"), "--set", "faults=[{at: 0, kind: crash, devices: {ids: [5]}}]"]
    assert main(args) == 0, capsys.readouterr().err
    e = Engine(scenario(faults=[{"at": 0, "kind": "crash", "devices": {"ids": [5]}}]), gradient_program)
    e.run()
    assert e.rounds.tolist() == [5] * 5 + [0] + [5] * 3 and not e.alive[5]


def test_a_program_that_exits_is_a_failure_of_the_program(tmp_path, capsys):
    from fieldlearn.sim.__main__ import main

    s = _tiny(tmp_path, "import sys\ndef program():\n    sys.exit(3)\n")
    assert main([s, "--quiet", "--out", str(tmp_path / "o")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.endswith(f"error: {s}: the program failed at time 0: SystemExit: 3") and not (tmp_path / "o").exists()
    s = _tiny(tmp_path, "import sys\nsys.exit(4)\ndef program():\n    return 1.0\n", file="q.py")  # at import
    assert main([s, "--quiet", "--out", str(tmp_path / "o")]) == 1
    assert "the program exited (SystemExit: 4)" in " ".join(capsys.readouterr().err.split())


def test_nan_outputs_are_said_once_with_the_output_the_device_and_the_time(tmp_path):
    from fieldlearn.sim.engine import NanOutputWarning
    from fieldlearn.sim.loader import load_scenario

    s = _tiny(tmp_path, "from fieldlearn import mux, sense\ndef program():\n    t = sense('time') + 0 * sense('id')\n"
                        "    return {'ok': t, 'v': mux((sense('id') >= 4) & (t >= 1), float('nan'), t)}\n")
    with pytest.warns(NanOutputWarning) as seen:
        e = Engine(load_scenario(s))
        e.run()
    assert [str(w.message) for w in seen] == [
        "the program's output 'v' is NaN on device 4 at time 1 (the first NaN of this run; it is recorded as it is)"]
    assert np.isnan(e.outputs["v"][4:]).all() and not np.isnan(e.outputs["v"][:4]).any()


def test_a_sensor_no_one_sets_is_bad_input_naming_it(tmp_path, capsys):
    from fieldlearn.sim.__main__ import main

    s = _tiny(tmp_path, "from fieldlearn import sense\ndef program():\n    return sense('temperature')\n",
              "sensors: {source: false}\n")
    assert main([s, "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"error: {s}: sensors: the program senses 'temperature', which no device has (sensors set: id, "
                   "position, region, source, time); give it a value under `sensors:` or in a deployment's `sensors:`")
    s = _tiny(tmp_path, "def program():\n    raise KeyError('no sensor named here')\n", file="q.py")  # the program's own KeyError
    assert main([s, "--quiet", "--out", str(tmp_path / "o")]) == 1
