"""The learning metrics a run reads (in the simulator's `exports.metrics`, or `run_learning`): each a function of the
learning context and the moment of the reading, evaluating the latest models when an evaluation point is due."""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from .context import LearningContext
from .evaluation import Evaluation, Moment

__all__ = ["METRICS", "due_evaluation"]


def due_evaluation(ctx: LearningContext, now: Moment) -> Evaluation | None:
    """The latest evaluation, made now if an evaluation point (a multiple of `eval_every` rounds completed) has been
    reached since the last one: exactly at it when metrics are read every round, else at the first reading after
    it (the evaluation's `round` says when), so that rows read less often never miss every evaluation. Each reading
    also notes where the devices are (arrivals of mobile devices in a region, for the adaptation metrics)."""
    ctx.observe(now.rounds, now.region)
    every = ctx.config.eval_every
    due = now.rounds - now.rounds % every
    if due > 0 and (not ctx.history or ctx.history[-1].round < due):
        ctx.evaluation(now.rounds, now.time, now.region)
    return ctx.history[-1] if ctx.history else None


def _value(fn: Callable[[Evaluation], float]) -> Callable[[LearningContext, Moment], float]:
    def metric(ctx: LearningContext, now: Moment) -> float:
        ev = due_evaluation(ctx, now)
        return fn(ev) if ev is not None else math.nan

    return metric


def _per_region(name: str | None) -> Callable[[LearningContext, Moment], dict[str, float]]:
    def metric(ctx: LearningContext, now: Moment) -> dict[str, float]:
        ev = due_evaluation(ctx, now)
        if ev is None or (name is not None and name not in ev.others):
            return {r: math.nan for r in ctx.region_names}
        return dict(zip(ctx.region_names, ev.per_region(name).tolist()))

    return metric


def _accuracy_columns(ctx: LearningContext, now: Moment) -> dict[str, float]:
    ev = due_evaluation(ctx, now)
    movers = np.flatnonzero(ctx.mobile)
    return {f"d{d}.{r}": (float(ev.accuracy[d, k]) if ev is not None else math.nan)
            for d in movers for k, r in enumerate(ctx.region_names)}


def _adaptation(ctx: LearningContext, now: Moment) -> dict[str, float]:
    """Movers on the region they just entered: accuracy there 1, 3 and 5 evaluations after each arrival (means over
    the arrivals that far along, still in that region), the mean rounds from arrival to 90% of that region's static
    devices' own accuracy (over the arrivals that reached it) and the share of arrivals that reached it."""
    due_evaluation(ctx, now)
    out = {"after1": math.nan, "after3": math.nan, "after5": math.nan, "rounds_to_90": math.nan, "reached_90": math.nan}
    if not ctx.arrivals:
        return out
    device, arrived, region = np.asarray(ctx.arrivals, dtype=np.int64).T  # one entry per arrival
    if not ctx.history:
        return {**out, "reached_90": 0.0}
    rounds = np.array([ev.round for ev in ctx.history])
    acc, where, mobile = ctx.history_arrays()
    first = np.searchsorted(rounds, arrived)  # the first evaluation at or after each arrival
    for k in (1, 3, 5):
        at = first + k - 1
        ok = at < len(rounds)
        at, d, r = at[ok], device[ok], region[ok]
        still = where[at, d] == r
        values = acc[at[still], d[still], r[still]]
        out[f"after{k}"] = float(np.nanmean(values)) if values.size else math.nan
    target = np.full((len(rounds), acc.shape[2]), math.nan)  # [evaluations, regions]: static devices' own accuracy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a region whose static devices were not scored: NaN
        for r in np.unique(region):
            target[:, r] = np.nanmean(np.where(~mobile & (where == r), acc[:, :, r], math.nan), axis=1)
    later = np.arange(len(rounds))[None, :] >= first[:, None]  # [arrivals, evaluations]
    there = where[:, device].T == region[:, None]
    gone = later & ~there
    left = np.where(gone.any(axis=1), gone.argmax(axis=1), len(rounds))  # the first evaluation after leaving
    goal = target[:, region].T
    hit = (later & (np.arange(len(rounds))[None, :] < left[:, None]) & np.isfinite(goal)
           & (acc[:, device, region].T >= 0.9 * goal))
    reached = hit.any(axis=1)
    if reached.any():
        out["rounds_to_90"] = float(np.mean(rounds[hit.argmax(axis=1)[reached]] - arrived[reached]))
    out["reached_90"] = int(reached.sum()) / len(device)
    return out


def _forgetting(ctx: LearningContext, now: Moment) -> dict[str, float]:
    """Per region, over the movers not in it now: their best past accuracy on it minus their current one; and `bwt`,
    the backward transfer: current accuracy on each region a mover has left minus its accuracy there at the last
    evaluation before leaving (mean over movers and left regions; negative when the past is forgotten)."""
    ev = due_evaluation(ctx, now)
    names = ctx.region_names
    if ev is None or len(ctx.history) < 2:
        return {**{r: math.nan for r in names}, "bwt": math.nan}
    acc, where, _ = ctx.history_arrays()
    movers = np.flatnonzero(ev.mobile)
    out = {}
    for k, name in enumerate(names):
        away = movers[ev.region[movers] != k]
        best = np.nanmax(acc[:-1, away, k], axis=0) if len(away) else np.zeros(0)
        drop = best - acc[-1, away, k]
        out[name] = float(np.nanmean(drop)) if np.isfinite(drop).any() else math.nan
    d, last = np.nonzero((where[:-1] != where[1:]).T)  # every ended stay: device, its last evaluation there
    r = where[last, d]
    keep = ev.mobile[d] & (r >= 0) & (r != ev.region[d])
    d, last, r = d[keep], last[keep], r[keep]
    transfer = acc[-1, d, r] - acc[last, d, r]
    transfer = transfer[np.isfinite(transfer)]
    out["bwt"] = float(np.mean(transfer)) if transfer.size else math.nan
    return out


def _memory(ctx: LearningContext, now: Moment) -> float:
    if not ctx.mobile.any():
        return math.nan
    return float(ctx.memory_sizes()[ctx.mobile].mean())


#: The learning metrics a scenario's `exports.metrics` may name (evaluated every `eval_every` rounds; readings in
#: between repeat the latest evaluation): `eval_round`; `cacc` (mobile devices, summed over the regions);
#: `accuracy` (columns `d<id>.<region>`: every mobile device on every region); `static_accuracy` (static devices, own
#: region); `own_accuracy` (all devices, own region); `global_accuracy` (every device on all regions' evaluation sets
#: together: costs a pass of every model over every region); `memory` (mean replay memory size of the mobile
#: devices); `regional_accuracy` (the region's model every device holds, where the program outputs one as
#: `regional`, on the device's region); `area_accuracy` and `area_own` (columns per region: the regional / own
#: models of the devices in it, on it); `adaptation` (movers on the region they just entered: `after1`, `after3`,
#: `after5` evaluations, `rounds_to_90` of the region's static accuracy, `reached_90`); `forgetting` (per region:
#: the movers' best past accuracy on it minus their current one; `bwt`: backward transfer).
METRICS: dict[str, Callable[[LearningContext, Moment], Any]] = {
    "eval_round": _value(lambda ev: ev.round),
    "cacc": _value(Evaluation.cacc),
    "accuracy": _accuracy_columns,
    "static_accuracy": _value(lambda ev: ev.own(np.flatnonzero(~ev.mobile))),
    "own_accuracy": _value(lambda ev: ev.own()),
    "global_accuracy": _value(Evaluation.global_accuracy),
    "memory": _memory,
    "regional_accuracy": _value(lambda ev: ev.own(name="regional") if "regional" in ev.others else math.nan),
    "area_accuracy": _per_region("regional"),
    "area_own": _per_region(None),
    "adaptation": _adaptation,
    "forgetting": _forgetting,
}

