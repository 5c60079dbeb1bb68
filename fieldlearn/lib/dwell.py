"""Regions under mobility: dwell time (rounds a device has followed the same leader, C2FL's `s`) and coordination
regions whose election copes with devices that move between areas."""
from __future__ import annotations

from typing import Any

from ..calculus import Field, NbrField, aggregate, distances, maximum, mux, rep
from .election import random_priority
from .regions import Region, regions
from .time import changed

__all__ = ["dwell_time", "mobile_regions"]


@aggregate
def dwell_time(leader: Any) -> Field:
    """Rounds since this device's `leader` last changed, this round included: 1 on the device's first round and on
    every round where `leader` differs from its value in the device's previous round, then 2, 3, ...

    This is C2FL's dwell time `s`: a device detects that it moved to another region by itself, from its leader
    (`changed`). Kept with `rep`, no messages.
    """
    moved = changed(leader)
    return rep(0, lambda count: mux(moved, 1, count + 1))


@aggregate
def mobile_regions(radius: float, mobile: Any = False, stable_leaders: bool = True, min_link: float | None = None,
                   seed: Any = 0, metric: NbrField | None = None) -> Region:
    """Self-organising coordination regions (`regions`) tuned for networks where some devices move:

    - static devices lead: their priority is raised by 1 above the moving ones' (`mobile` true) when
      `stable_leaders`, so a region keeps its leader while devices come and go (a moving leader would also keep its
      own id as its leader in the next area, and so never see that it moved);
    - links count as at least `min_link` (default `radius / 4`) in the election's distances: a stale leader key
      that a device carries into another area then rises out of reach within a round or two, instead of creeping
      up along very short links for many rounds (the rising-value problem) and pulling a whole area after it.

    `metric` (default: the link lengths) is what the election measures distances in, e.g. a model dissimilarity
    (`fieldlearn.learning.parameter_distance`); the floor applies to it as well.
    """
    priority = random_priority(seed) + mux(mobile, 0.0, 1.0) if stable_leaders else None
    floor = radius / 4.0 if min_link is None else float(min_link)
    return regions(radius, priority=priority, metric=maximum(distances() if metric is None else metric, floor),
                   seed=seed)
