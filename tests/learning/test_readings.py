"""fieldlearn.learning.readings: the learning metrics, evaluated when due, and movers' adaptation and forgetting."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fieldlearn.learning.context import LearningContext
from fieldlearn.learning.evaluation import Evaluation, Moment
from fieldlearn.learning.readings import METRICS, due_evaluation


def test_metrics_evaluate_at_every_eval_point_and_repeat_in_between():
    ctx = LearningContext({"model": {"hidden": [4]}, "eval_every": 3, "eval_samples": 10}, n_devices=2,
                          region_names=["a", "b"], initial_region=[0, 1], mobile=[True, False],
                          score_everywhere=True)
    ctx.record_rows(np.arange(2), ctx.initial_models(np.arange(2)))
    here = np.array([0, 1])
    assert due_evaluation(ctx, Moment(2, 1.0, here)) is None and math.isnan(METRICS["cacc"](ctx, Moment(2, 1.0, here)))
    first = METRICS["cacc"](ctx, Moment(3, 2.0, here))
    assert len(ctx.history) == 1 and ctx.history[-1].round == 3
    assert METRICS["cacc"](ctx, Moment(4, 3.0, here)) == first and len(ctx.history) == 1
    METRICS["global_accuracy"](ctx, Moment(7, 6.0, here))  # a late reading catches up with the point it passed
    assert ctx.history[-1].round == 7 and not np.isnan(ctx.history[-1].accuracy).any()
    cols = METRICS["accuracy"](ctx, Moment(7, 6.0, here))
    assert list(cols) == ["d0.a", "d0.b"]


def synthetic(accuracy_by_eval, regions_by_eval, mobile):
    """A context whose history is the given evaluations (rounds 5, 10, ...) and whose arrivals are observed."""
    n = len(mobile)
    ctx = LearningContext({"model": {"hidden": [4]}, "eval_every": 5}, n_devices=n, region_names=["a", "b"],
                          initial_region=regions_by_eval[0], mobile=mobile)
    for k, (acc, where) in enumerate(zip(accuracy_by_eval, regions_by_eval)):
        ctx.observe(5 * k + 1, np.asarray(where))
        ctx.history.append(Evaluation(5 * (k + 1), 5.0 * (k + 1), np.asarray(acc, dtype=float), np.asarray(where),
                                      np.asarray(mobile)))
    return ctx


def test_adaptation_follows_a_mover_into_the_region_it_entered():
    nan = np.nan
    # device 0 moves a -> b before the 2nd evaluation; device 1 is static in b (own accuracy 0.8 there)
    accs = [[[0.9, 0.1], [nan, 0.8]], [[0.9, 0.5], [nan, 0.8]], [[0.8, 0.6], [nan, 0.8]], [[0.7, 0.75], [nan, 0.8]],
            [[0.7, 0.7], [nan, 0.8]], [[0.6, 0.74], [nan, 0.8]]]
    where = [[0, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]]
    ctx = synthetic(accs, where, [True, False])
    assert ctx.arrivals == [(0, 6, 1)]
    got = METRICS["adaptation"](ctx, Moment(30, 29.0, np.array([1, 1])))
    # evaluations at or after round 6: rounds 10 (0.5), 15 (0.6), 20 (0.75), 25, 30; 90% of 0.8 is 0.72, first met
    # at round 20: 14 rounds after arriving
    assert got == {"after1": 0.5, "after3": 0.75, "after5": 0.74, "rounds_to_90": 14.0, "reached_90": 1.0}


def test_forgetting_and_backward_transfer_of_a_region_left_behind():
    nan = np.nan
    accs = [[[0.6, 0.1], [nan, 0.8]], [[0.9, 0.1], [nan, 0.8]], [[0.7, 0.5], [nan, 0.8]], [[0.5, 0.7], [nan, 0.8]]]
    where = [[0, 1], [0, 1], [1, 1], [1, 1]]
    ctx = synthetic(accs, where, [True, False])
    got = METRICS["forgetting"](ctx, Moment(20, 19.0, np.array([1, 1])))
    # on region a (left after the 2nd evaluation): best 0.9, now 0.5; backward transfer 0.5 - 0.9
    assert got["a"] == pytest.approx(0.4) and got["bwt"] == pytest.approx(-0.4) and math.isnan(got["b"])


def _adaptation_by_loops(ctx):
    """The adaptation metric arrival by arrival and evaluation by evaluation: the oracle of the array version."""
    after, rounds_to, reached = {1: [], 3: [], 5: []}, [], 0
    for device, arrived, region in ctx.arrivals:
        later = [ev for ev in ctx.history if ev.round >= arrived]
        for k in after:
            if len(later) >= k and later[k - 1].region[device] == region:
                after[k].append(later[k - 1].accuracy[device, region])
        for ev in later:
            if ev.region[device] != region:
                break
            static = ~ev.mobile & (ev.region == region)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                target = np.nanmean(ev.accuracy[static, region]) if static.any() else math.nan
            if math.isfinite(target) and ev.accuracy[device, region] >= 0.9 * target:
                rounds_to.append(ev.round - arrived)
                reached += 1
                break
    out = {f"after{k}": float(np.nanmean(v)) if v else math.nan for k, v in after.items()}
    out["rounds_to_90"] = float(np.mean(rounds_to)) if rounds_to else math.nan
    out["reached_90"] = reached / len(ctx.arrivals) if ctx.arrivals else math.nan
    return out


def _bwt_by_loops(ctx):
    """Backward transfer mover by mover and stay by stay: the oracle of the array version."""
    last_ev = ctx.history[-1]
    transfer = []
    for d in np.flatnonzero(last_ev.mobile):
        regions = [int(ev.region[d]) for ev in ctx.history]
        for k in range(len(regions) - 1):
            r = regions[k]
            if r != regions[k + 1] and r >= 0 and r != last_ev.region[d]:
                t = ctx.history[-1].accuracy[d, r] - ctx.history[k].accuracy[d, r]
                if math.isfinite(t):
                    transfer.append(t)
    return float(np.mean(transfer)) if transfer else math.nan


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")  # a region never scored: NaN
@pytest.mark.parametrize("seed", range(12))
def test_adaptation_and_backward_transfer_equal_plain_loops_on_random_histories(seed):
    rng = np.random.default_rng(seed)
    n, evals = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    mobile = rng.random(n) < 0.6
    mobile[0] = True
    where = np.where(mobile, rng.integers(-1, 2, (evals, n)), rng.integers(0, 2, n))  # movers wander, -1: nowhere
    acc = np.round(rng.random((evals, n, 2)), 2)
    acc[rng.random(acc.shape) < 0.2] = np.nan
    ctx = synthetic(acc.tolist(), where.tolist(), mobile.tolist())
    now = Moment(5 * evals, 5.0 * evals - 1, where[-1])
    got = METRICS["adaptation"](ctx, now)
    want = _adaptation_by_loops(ctx)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], nan_ok=True, abs=0, rel=0), key
    bwt = METRICS["forgetting"](ctx, now)["bwt"]
    assert bwt == pytest.approx(_bwt_by_loops(ctx), nan_ok=True, abs=0, rel=0)
