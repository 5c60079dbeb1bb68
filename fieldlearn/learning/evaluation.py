"""An evaluation of the devices' latest models (accuracy of every device on every region at one point of a run) and
its summaries: CAcc, own-area, per-area and global accuracy."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
import numpy as np

from .data import as_index_array

__all__ = ["Evaluation", "Moment"]


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
