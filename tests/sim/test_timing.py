"""fieldlearn.sim.timing: sync ticks, Dirac combs with phases, exponential clocks."""
from __future__ import annotations

import numpy as np

from fieldlearn.sim import scenario as S
from fieldlearn.sim.timing import Schedule


def test_sync_ticks_are_exact_multiples():
    s = Schedule(S.SyncSchedule(period=0.1), 4, np.random.default_rng(0))
    ids = np.arange(4)
    t = s.start(ids, 0.0)
    assert np.all(t == 0.0)
    for k in range(1, 50):
        t = s.next(ids, float(t[0]))
        assert np.all(t == k * 0.1)
    late = s.start(np.array([2]), 0.25)
    assert late[0] == 3 * 0.1


def test_dirac_phases_and_quantised_slots():
    s = Schedule(S.DiracSchedule(kind="dirac", period=2.0), 100, np.random.default_rng(1))
    t0 = s.start(np.arange(100), 0.0)
    assert np.all((t0 >= 0) & (t0 < 2.0)) and len(np.unique(t0)) == 100
    assert np.allclose(s.next(np.arange(100), 0.0) - t0, 2.0)
    q = Schedule(S.DiracSchedule(kind="dirac", period=1.0, phases=4), 100, np.random.default_rng(1))
    assert set(q.start(np.arange(100), 0.0)) <= {0.0, 0.25, 0.5, 0.75}


def test_exponential_mean():
    s = Schedule(S.ExponentialSchedule(kind="exponential", rate=4.0), 20000, np.random.default_rng(2))
    gaps = s.next(np.arange(20000), 1.0) - 1.0
    assert abs(gaps.mean() - 0.25) < 0.01 and np.all(gaps > 0)
