"""How a recorded value colours devices, shared by the animation and the viewer so both show the same colours.

Identifiers (leader ids, regions, booleans) get a categorical palette; numbers a colour map with limits fixed over
the whole run. Each device's colour is reduced to a small integer code (0..254 along the colour map, or a palette
slot), so that a viewer can carry one byte per device and frame; `NONE` is a device that holds no value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NONE = 255  # the code of a device without a (finite) value
NONE_COLOUR = "#d9d9d9"
STEPS = 254  # codes 0..STEPS span a continuous colour map
PALETTE = (  # tab10 and its light variants without the greys (grey means "no value"), then two of tab20b
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#637939",
)


def is_categorical(name: str, dtype: np.dtype) -> bool:
    """Whether a value names things rather than measures them: booleans, `region`, and integers whose name says they
    are ids (`leader`, `...id`). Other integers (counts, hops, dwell times) are numbers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return True
    low = name.lower()
    return dtype.kind in "iu" and (low == "region" or "leader" in low or low.endswith("id"))


@dataclass(frozen=True)
class Colouring:
    """Value -> colour for one recorded value: `categorical` (palette slot = value mod 20) or a colour map `cmap`
    between the run's limits `lo` and `hi`."""

    name: str
    categorical: bool
    lo: float = 0.0
    hi: float = 1.0
    cmap: str = "viridis"

    @classmethod
    def for_values(cls, name: str, categorical: bool, samples: list[np.ndarray], cmap: str = "viridis") -> "Colouring":
        """The colouring of `name` with limits over every finite value in `samples` (one array per frame)."""
        if categorical:
            return cls(name, True, cmap=cmap)
        lo, hi = math.inf, -math.inf
        for v in samples:
            f = v[np.isfinite(v)]
            if len(f):
                lo, hi = min(lo, float(f.min())), max(hi, float(f.max()))
        if lo > hi:
            lo, hi = 0.0, 1.0
        elif lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return cls(name, False, lo, hi, cmap)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """One uint8 code per device: a palette slot or a step along the colour map; `NONE` where not finite (or, for
        identifiers, negative)."""
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        out = np.full(v.shape, NONE, dtype=np.uint8)
        if self.categorical:
            ok &= v >= 0  # e.g. region -1: outside every region
            out[ok] = np.mod(v[ok], len(PALETTE)).astype(np.uint8)
        else:
            x = (v[ok] - self.lo) / (self.hi - self.lo)
            out[ok] = np.rint(np.clip(x, 0.0, 1.0) * STEPS).astype(np.uint8)
        return out

    def colours(self) -> list[str]:
        """The hex colour of every code 0..NONE (the table both renderers use)."""
        if self.categorical:
            table = list(PALETTE) + [NONE_COLOUR] * (NONE + 1 - len(PALETTE))
        else:
            from matplotlib import colormaps
            from matplotlib.colors import to_hex

            cm = colormaps[self.cmap]
            table = [to_hex(cm(k / STEPS)) for k in range(STEPS + 1)] + [NONE_COLOUR] * (NONE - STEPS)
        return table

    def rgba(self, values: np.ndarray) -> np.ndarray:
        """An (n, 4) float array of device colours, for matplotlib."""
        from matplotlib.colors import to_rgba_array

        return to_rgba_array(self.colours())[self.codes(values)]

    def ticks(self, count: int = 6) -> list[tuple[float, str]]:
        """Nice values inside the limits, for a colour bar: (value, label) pairs."""
        from matplotlib.ticker import MaxNLocator

        values = [float(t) for t in MaxNLocator(count).tick_values(self.lo, self.hi) if self.lo <= t <= self.hi]
        return [(t, f"{t:.4g}") for t in values]

    def code_of(self, value: float) -> float:
        """Where `value` falls on the code axis (for colour-bar ticks)."""
        return (value - self.lo) / (self.hi - self.lo) * STEPS
