"""fieldlearn.sim.timing: sync ticks, Dirac combs with phases, exponential clocks, one class per schedule kind."""
from __future__ import annotations

import numpy as np

from fieldlearn.sim import scenario as S
from fieldlearn.sim.timing import ROUND_TIMES, DiracTimes, PoissonTimes, Ticks


def test_sync_ticks_are_exact_multiples():
    s = ROUND_TIMES.build(S.SyncSchedule(period=0.1), 4, np.random.default_rng(0))
    ids = np.arange(4)
    t = s.start(ids, 0.0)
    assert np.all(t == 0.0)
    for k in range(1, 50):
        t = s.next(ids, float(t[0]))
        assert np.all(t == k * 0.1)
    late = s.start(np.array([2]), 0.25)
    assert late[0] == 3 * 0.1


def test_dirac_phases_and_quantised_slots():
    s = ROUND_TIMES.build(S.DiracSchedule(kind="dirac", period=2.0), 100, np.random.default_rng(1))
    t0 = s.start(np.arange(100), 0.0)
    assert np.all((t0 >= 0) & (t0 < 2.0)) and len(np.unique(t0)) == 100
    assert np.allclose(s.next(np.arange(100), 0.0) - t0, 2.0)
    q = ROUND_TIMES.build(S.DiracSchedule(kind="dirac", period=1.0, phases=4), 100, np.random.default_rng(1))
    assert set(q.start(np.arange(100), 0.0)) <= {0.0, 0.25, 0.5, 0.75}


def test_exponential_mean():
    s = ROUND_TIMES.build(S.ExponentialSchedule(kind="exponential", rate=4.0), 20000, np.random.default_rng(2))
    gaps = s.next(np.arange(20000), 1.0) - 1.0
    assert abs(gaps.mean() - 0.25) < 0.01 and np.all(gaps > 0)


def test_each_schedule_kind_builds_its_own_round_times():
    rng = np.random.default_rng(0)
    assert type(ROUND_TIMES.build(S.SyncSchedule(), 3, rng)) is Ticks
    assert type(ROUND_TIMES.build(S.DiracSchedule(kind="dirac"), 3, rng)) is DiracTimes
    assert type(ROUND_TIMES.build(S.ExponentialSchedule(kind="exponential"), 3, rng)) is PoissonTimes


def test_sync_ticks_draw_nothing_and_dirac_draws_one_phase_per_device():
    rng = np.random.default_rng(5)
    ROUND_TIMES.build(S.SyncSchedule(period=0.5), 10, rng)
    assert rng.random() == np.random.default_rng(5).random()
    d = ROUND_TIMES.build(S.DiracSchedule(kind="dirac", period=0.5), 10, np.random.default_rng(5))
    assert np.array_equal(d.phase, np.random.default_rng(5).random(10) * 0.5)
