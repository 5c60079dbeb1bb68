"""Drawing coordinates that shrink long empty stretches of an axis (areas far apart, as in C2FL's four areas 100
apart), so that pictures show the devices rather than the space between them. A monotone piecewise-linear map."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GapAxis:
    """Maps true coordinates to drawing ones: identity inside occupied stretches, each long gap shrunk to `width`."""

    knots: np.ndarray  # true coordinates of the stretch ends, increasing
    drawn: np.ndarray  # their drawing coordinates
    gaps: tuple[float, ...] = ()  # drawing coordinates of the middle of each shrunk gap (for break marks)

    @classmethod
    def identity(cls) -> "GapAxis":
        return cls(np.array([0.0, 1.0]), np.array([0.0, 1.0]))

    @classmethod
    def fit(cls, coords: np.ndarray, extents: np.ndarray | None = None, width: float = 0.1) -> "GapAxis":
        """Shrink the empty stretches between consecutive `coords` that are long: longer than twice the median
        extent of the areas on this axis (`extents`, e.g. the regions' widths), or, without areas, longer than a
        quarter of the span and five times the median step. Each shrinks to `width` x the occupied length."""
        c = np.unique(np.asarray(coords, dtype=np.float64)[np.isfinite(coords)])
        if len(c) < 2:
            return cls.identity()
        steps = np.diff(c)
        span = c[-1] - c[0]
        if extents is not None and len(extents):
            big = steps > 2 * float(np.median(extents))
        else:
            big = (steps > 0.25 * span) & (steps > 5 * float(np.median(steps)))
        if not big.any() or span - steps[big].sum() < 0.05 * span:
            return cls.identity()  # nothing to shrink, or isolated points with nothing but gaps between them
        w = width * max(span - steps[big].sum(), 1e-12)
        knots, drawn, gaps = [c[0]], [c[0]], []
        pos = c[0]
        for k in np.flatnonzero(big):
            left, right = c[k], c[k + 1]
            pos += left - knots[-1]
            knots.append(left)
            drawn.append(pos)
            gaps.append(float(pos + w / 2))
            pos += w
            knots.append(right)
            drawn.append(pos)
        pos += c[-1] - knots[-1]
        knots.append(c[-1])
        drawn.append(pos)
        return cls(np.array(knots), np.array(drawn), tuple(gaps))

    @property
    def shrinks(self) -> bool:
        return len(self.gaps) > 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Drawing coordinates of true ones (linear beyond the ends; NaN stays NaN)."""
        x = np.asarray(x, dtype=np.float64)
        if not self.shrinks:
            return x
        k, d = self.knots, self.drawn
        out = np.interp(x, k, d)
        out = np.where(x < k[0], d[0] + (x - k[0]), out)
        return np.where(x > k[-1], d[-1] + (x - k[-1]), out)

    def ticks(self) -> list[tuple[float, str]]:
        """(drawing position, true-value label) pairs: the ends of every occupied stretch."""
        if not self.shrinks:
            return []
        return [(float(d), f"{k:g}") for k, d in zip(self.knots, self.drawn)]
