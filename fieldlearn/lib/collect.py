"""C block: aggregate values towards the minimum of a potential (sum, mean, min, max; single- or multi-path)."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..calculus import aggregate, mid, minimum, mux, share, tree_flatten, tree_unflatten
from ._util import parent_of, tree_combine, tree_fold, tree_fold_onto, tree_parent

__all__ = ["collect", "parent_of", "tree_parent"]

Op = Literal["sum", "mean", "min", "max"]
_OPS = ("sum", "mean", "min", "max")
_BIG = float(np.finfo(np.float32).max) / 4  # stands in for an infinite potential in differences (fits float32)


@aggregate
def collect(potential: Any, value: Any, op: Op = "sum", multipath: bool = False, group: Any = None,
            parent: Any = None) -> Any:
    """Aggregate `value` with `op` up `potential` towards its minima: each device holds its part, a minimum the whole.

    Single-path (default): a device's parent is its neighbour of least potential (ties to the lowest id) if
    lower than its own; every device holds `op` of its own value and its children's results, so a root (a
    device with no lower neighbour, e.g. a leader) holds the aggregate of its whole tree.
    Multi-path: a device feeds *all* its lower neighbours, splitting sums (and the counts of `mean`) in
    proportion to the potential drop towards each, while min and max go whole to all of them; it is less
    sensitive to a changing tree, single-path is exact on integers. `mean` is the sum over the device count.
    `group` (e.g. the leader id of a region) keeps only the links between devices of the same group.
    `value` may be nested; large float values (models) are summed as sparse products. Once `potential` is
    stable the result is exact after as many rounds as the tree (or DAG) is deep. Single-path collects find the
    parent with `tree_parent(potential, group)`; `parent`, if given, is that field (e.g. `Region.parent`), so that
    several collects and broadcasts over one tree find it once.
    """
    if op not in _OPS:
        raise ValueError(f"unknown collect op {op!r}: use one of {', '.join(_OPS)}")
    if op == "mean":
        total, count = collect(potential, (value, 1.0), "sum", multipath, group, parent)
        safe = mux(count > 0, count, 1.0)
        leaves, treedef = tree_flatten(total)
        return tree_unflatten(treedef, [leaf / safe for leaf in leaves])
    if multipath:
        return _collect_multi(potential, value, op, group)
    return _collect_single(potential, value, op, group, parent)


def _collect_single(potential: Any, value: Any, op: str, group: Any, parent: Any) -> Any:
    me = mid()
    parent = tree_parent(potential, group) if parent is None else parent

    def step(n: tuple) -> tuple:
        parents, parts = n
        return parent, tree_fold_onto(op, value, parts, parents == me)

    return share((parent, value), step)[-1]


def _collect_multi(potential: Any, value: Any, op: str, group: Any) -> Any:
    keyed = group is not None
    mine = minimum(potential, _BIG)

    def step(n: tuple) -> tuple:
        if keyed:
            pot, grp, drops, parts = n
            same = grp == group
        else:
            pot, drops, parts = n
            same = pot == pot
        theirs = minimum(pot, _BIG)
        downhill = same & (pot < potential)  # neighbours I feed
        uphill = same & (pot > potential)  # neighbours that feed me
        my_drop = mux(downhill, mine - theirs, 0.0).sum(default=0.0)
        if op == "sum":
            share_of_theirs = mux(uphill & (drops > 0), (theirs - mine) / mux(drops > 0, drops, 1.0), 0.0)
            leaves, treedef = tree_flatten(parts)
            incoming = tree_unflatten(treedef, [leaf.weighted_sum(share_of_theirs) for leaf in leaves])
        else:
            incoming = tree_fold(op, parts, uphill)
        result = tree_combine(op, value, incoming)
        return (potential, group, my_drop, result) if keyed else (potential, my_drop, result)

    init = (potential, group, 0.0, value) if keyed else (potential, 0.0, value)
    return share(init, step)[-1]
