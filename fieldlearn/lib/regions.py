"""Self-organising coordination regions (S -> G -> C -> G) as one composable value."""
from __future__ import annotations

from typing import Any, NamedTuple

from ..calculus import Field, NbrField, aggregate, mux, tree_flatten, tree_unflatten
from ._util import NO_ID
from .collect import collect
from .election import sparse_choice
from .spreading import broadcast

__all__ = ["Region", "regions"]


class Region(NamedTuple):
    """A device's region: its `leader` id, its `potential` (distance to the leader), whether it `is_leader`, and its
    `parent` towards the leader (-1 for none; None: each helper finds it).

    The helpers keep every link inside the region (neighbours with the same leader), so values never
    cross region borders: `region.broadcast(region.collect_mean(x))` gives every device its region's mean.
    """

    leader: Field
    potential: Field
    is_leader: Field
    parent: Field | None = None  # this round's `tree_parent(potential, leader)` (the election's), for all the helpers

    @property
    def leader_id(self) -> Field:
        """The leader's id, or -1 while the device follows no leader yet (before an election settles): what a
        program outputs, so that the election's internal placeholder never reaches exports or figures."""
        return mux(self.leader >= NO_ID, -1, self.leader)

    def collect_sum(self, value: Any, multipath: bool = False) -> Any:
        """Sum of `value` over the region, complete at the leader (C towards the leader)."""
        return collect(self.potential, value, "sum", multipath, group=self.leader, parent=self.parent)

    def collect_mean(self, value: Any, weight: Any = None, multipath: bool = False) -> Any:
        """Mean of `value` over the region (weighted by `weight`, e.g. sample counts, if given), complete at the leader."""
        if weight is None:
            return collect(self.potential, value, "mean", multipath, group=self.leader, parent=self.parent)
        return _weighted_mean(self.potential, value, weight, multipath, self.leader, self.parent)

    def collect_min(self, value: Any) -> Any:
        """Minimum of `value` over the region, complete at the leader."""
        return collect(self.potential, value, "min", group=self.leader, parent=self.parent)

    def collect_max(self, value: Any) -> Any:
        """Maximum of `value` over the region, complete at the leader."""
        return collect(self.potential, value, "max", group=self.leader, parent=self.parent)

    def broadcast(self, value: Any) -> Any:
        """The leader's `value`, spread down the potential to every device of the region (G from the leader)."""
        return broadcast(self.potential, value, group=self.leader, parent=self.parent)


@aggregate
def _weighted_mean(potential: Any, value: Any, weight: Any, multipath: bool, group: Any, parent: Any) -> Any:
    """Sum of weight * value over the sum of weights, collected towards the potential's minima."""
    leaves, treedef = tree_flatten(value)
    weighted = tree_unflatten(treedef, [leaf * weight for leaf in leaves])
    total, mass = collect(potential, (weighted, weight * 1.0), "sum", multipath, group=group, parent=parent)
    safe = mux(mass > 0, mass, 1.0)
    out, _ = tree_flatten(total)
    return tree_unflatten(treedef, [leaf / safe for leaf in out])


@aggregate
def regions(radius: float, priority: Any = None, metric: NbrField | None = None, seed: Any = 0) -> Region:
    """Partition the network into regions of about `radius` around elected leaders (S + G), as a `Region`.

    Leaders come from `sparse_choice` (random priority drawn once per device from its id and `seed`); the
    potential is the distance to the nearest leader and a device's region is that leader's.
    """
    choice = sparse_choice(radius, priority, metric, seed, tree=True)
    return Region(choice.leader, choice.distance, choice.is_leader, choice.parent)
