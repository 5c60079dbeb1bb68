"""Evaluations of the devices' latest models and the learning metrics computed from them (CAcc, own-area and
global accuracy, per-area means), shared by the simulator and the standalone runner."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .data import as_index_array

if TYPE_CHECKING:
    from .context import LearningContext

__all__ = ["Evaluation", "Moment", "METRICS", "due_evaluation", "metric_names"]


@dataclass
class Evaluation:
    """Accuracy of every device's latest model on every region's evaluation set after `round` rounds.

    `accuracy` is `[devices, regions]` (NaN where a device has no model or was not scored there: static devices
    are scored on their own region only, unless the global accuracy is asked for); `region` is where each device
    was; `others` holds the same for other recorded models (e.g. `regional`: the region's model each device holds);
    `sizes` are the regions' evaluation set sizes (for the global accuracy).
    """

    round: int
    time: float
    accuracy: np.ndarray
    region: np.ndarray
    mobile: np.ndarray
    others: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: np.ndarray | None = None

    def cacc(self) -> float:
        """Mean over mobile devices (with a model) of their summed accuracy over the regions."""
        acc = self.accuracy[self.mobile]
        acc = acc[~np.isnan(acc).any(axis=1)]
        return float(acc.sum(axis=1).mean()) if len(acc) else math.nan

    def own(self, devices: np.ndarray | None = None, name: str | None = None) -> float:
        """Mean accuracy of the selected devices (default: all with a model) on the region they are in (of their
        `name`d model, default their own)."""
        acc = self.accuracy if name is None else self.others[name]
        sel = np.arange(len(self.region)) if devices is None else as_index_array(devices)
        sel = sel[(self.region[sel] >= 0)]
        vals = acc[sel, self.region[sel]]
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if len(vals) else math.nan

    def per_region(self, name: str | None = None) -> np.ndarray:
        """For every region, the mean accuracy on it of the (`name`d) models of the devices in it (NaN if none)."""
        acc = self.accuracy if name is None else self.others[name]
        out = np.full(acc.shape[1], math.nan)
        for r in range(acc.shape[1]):
            vals = acc[self.region == r, r]
            vals = vals[~np.isnan(vals)]
            if len(vals):
                out[r] = vals.mean()
        return out

    def global_per_device(self) -> np.ndarray:
        """Every device's accuracy on all regions' evaluation sets together (NaN unless scored on every region)."""
        sizes = np.ones(self.accuracy.shape[1]) if self.sizes is None else np.asarray(self.sizes, dtype=np.float64)
        return (self.accuracy * sizes).sum(axis=1) / max(float(sizes.sum()), 1.0)

    def global_accuracy(self) -> float:
        """Mean over the devices with a complete evaluation of their global accuracy."""
        vals = self.global_per_device()
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if len(vals) else math.nan


@dataclass(frozen=True)
class Moment:
    """Where a run stands when a metric is read: rounds completed (the most of any device), time, regions."""

    rounds: int
    time: float
    region: np.ndarray


def due_evaluation(ctx: "LearningContext", now: Moment) -> Evaluation | None:
    """The latest evaluation, made now if an evaluation point (a multiple of `eval_every` rounds completed) has been
    reached since the last one: exactly at it when metrics are read every round, else at the first reading after
    it (the evaluation's `round` says when), so that rows read less often never miss every evaluation."""
    every = ctx.config.eval_every
    due = now.rounds - now.rounds % every
    if due > 0 and (not ctx.history or ctx.history[-1].round < due):
        ctx.evaluation(now.rounds, now.time, now.region)
    return ctx.history[-1] if ctx.history else None


def _value(fn: Callable[[Evaluation], float]) -> Callable[["LearningContext", Moment], float]:
    def metric(ctx: "LearningContext", now: Moment) -> float:
        ev = due_evaluation(ctx, now)
        return fn(ev) if ev is not None else math.nan

    return metric


def _per_region(name: str | None) -> Callable[["LearningContext", Moment], dict[str, float]]:
    def metric(ctx: "LearningContext", now: Moment) -> dict[str, float]:
        ev = due_evaluation(ctx, now)
        if ev is None or (name is not None and name not in ev.others):
            return {r: math.nan for r in ctx.region_names}
        return dict(zip(ctx.region_names, ev.per_region(name).tolist()))

    return metric


def _accuracy_columns(ctx: "LearningContext", now: Moment) -> dict[str, float]:
    ev = due_evaluation(ctx, now)
    movers = np.flatnonzero(ctx.mobile)
    return {f"d{d}.{r}": (float(ev.accuracy[d, k]) if ev is not None else math.nan)
            for d in movers for k, r in enumerate(ctx.region_names)}


def _memory(ctx: "LearningContext", now: Moment) -> float:
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
#: models of the devices in it, on it).
METRICS: dict[str, Callable[["LearningContext", Moment], Any]] = {
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
}


def metric_names() -> list[str]:
    """The names of the learning metrics, in a stable order."""
    return list(METRICS)
