"""The learning metrics a run reads (in the simulator's `exports.metrics`, or `run_learning`): each a function of the
learning context and the moment of the reading, evaluating the latest models when an evaluation point is due."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .context import LearningContext
from .evaluation import Evaluation, Moment

__all__ = ["METRICS", "due_evaluation", "metric_names"]


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
    after = {k: [] for k in (1, 3, 5)}
    rounds_to, reached, counted = [], 0, 0
    for device, arrived, region in ctx.arrivals:
        later = [ev for ev in ctx.history if ev.round >= arrived]
        for k in after:
            if len(later) >= k and later[k - 1].region[device] == region:
                after[k].append(later[k - 1].accuracy[device, region])
        counted += 1
        for ev in later:
            if ev.region[device] != region:
                break
            static = ~ev.mobile & (ev.region == region)
            target = np.nanmean(ev.accuracy[static, region]) if static.any() else math.nan
            if math.isfinite(target) and ev.accuracy[device, region] >= 0.9 * target:
                rounds_to.append(ev.round - arrived)
                reached += 1
                break
    out = {f"after{k}": float(np.nanmean(v)) if v else math.nan for k, v in after.items()}
    out["rounds_to_90"] = float(np.mean(rounds_to)) if rounds_to else math.nan
    out["reached_90"] = reached / counted if counted else math.nan
    return out


def _visits(ctx: LearningContext, device: int) -> list[tuple[int, int]]:
    """(region, index of the last evaluation while there) of every stay of a device that has ended."""
    stays, current, last = [], None, None
    for k, ev in enumerate(ctx.history):
        r = int(ev.region[device])
        if current is not None and r != current:
            stays.append((current, last))
        if r != current:
            current = r
        last = k
    return [(r, k) for r, k in stays if r >= 0]


def _forgetting(ctx: LearningContext, now: Moment) -> dict[str, float]:
    """Per region, over the movers not in it now: their best past accuracy on it minus their current one; and `bwt`,
    the backward transfer: current accuracy on each region a mover has left minus its accuracy there at the last
    evaluation before leaving (mean over movers and left regions; negative when the past is forgotten)."""
    ev = due_evaluation(ctx, now)
    names = ctx.region_names
    if ev is None or len(ctx.history) < 2:
        return {**{r: math.nan for r in names}, "bwt": math.nan}
    acc = np.stack([e.accuracy for e in ctx.history])  # [evaluations, devices, regions]
    movers = np.flatnonzero(ev.mobile)
    out = {}
    for k, name in enumerate(names):
        away = movers[ev.region[movers] != k]
        best = np.nanmax(acc[:-1, away, k], axis=0) if len(away) else np.zeros(0)
        drop = best - acc[-1, away, k]
        out[name] = float(np.nanmean(drop)) if np.isfinite(drop).any() else math.nan
    transfer = [acc[-1, d, r] - acc[k, d, r] for d in movers for r, k in _visits(ctx, int(d))
                if r != ev.region[d] and k < len(ctx.history) - 1]
    transfer = [t for t in transfer if math.isfinite(t)]
    out["bwt"] = float(np.mean(transfer)) if transfer else math.nan
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


def metric_names() -> list[str]:
    """The names of the learning metrics, in a stable order."""
    return list(METRICS)
