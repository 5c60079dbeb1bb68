"""Small helpers shared by the blocks, written only with the public constructs and field operations."""
from __future__ import annotations

from typing import Any

from ..calculus import Field, NbrField, aggregate, mux, nbr, tree_flatten, tree_unflatten

INF = float("inf")
NO_ID = 2**62  # "no device": larger than any device id, so it loses every lowest-id tie-break
_M31 = 2147483647  # 2^31 - 1, the Park-Miller modulus


def fold(op: str, nf: NbrField, sel: NbrField) -> Field:
    """Reduce `nf` with `op` (sum, min, max) over the neighbours where `sel` holds; the identity where none does.

    A sum of booleans is their logical or (so that collecting flags tells whether any is set)."""
    if op == "sum":
        if nf.kind == "b":
            return nf.any(where=sel)
        return nf.sum(where=sel, default=None)
    return nf.min(where=sel, default=None) if op == "min" else nf.max(where=sel, default=None)


def tree_fold(op: str, tree: Any, sel: NbrField) -> Any:
    """`fold` leaf by leaf over a nested value of neighbour fields."""
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(treedef, [fold(op, leaf, sel) for leaf in leaves])


def paired_leaves(value: Any, nbrs: Any) -> tuple[list, list, Any]:
    """The leaves of a value and of the neighbour fields of its structure (the neighbours' tree may be another node
    type of the same leaves), and the value's structure to rebuild the result in."""
    lv, dv = tree_flatten(value)
    ln, dn = tree_flatten(nbrs)
    if len(lv) != len(ln):
        raise TypeError(f"values of different structures: {dv} and {dn}")
    return lv, ln, dv


def tree_fold_onto(op: str, value: Any, parts: Any, sel: NbrField) -> Any:
    """`combine(op, value, fold(op, parts, sel))` leaf by leaf (collect's step); a sum of numbers adds `value` into
    the neighbours' sum (`NbrField.sum(initial=)`: for models, no second array the size of all of them)."""
    lv, lp, dv = paired_leaves(value, parts)
    out = [p.sum(where=sel, default=None, initial=v) if op == "sum" and p.kind != "b" else combine(op, v, fold(op, p, sel))
           for v, p in zip(lv, lp)]
    return tree_unflatten(dv, out)


def pick_or(tree: Any, sel: NbrField, otherwise: Any) -> Any:
    """Leaf by leaf, the value of the (at most one) neighbour where `sel` holds, and `otherwise`'s where it holds
    for none (`NbrField.pick`: one gather)."""
    others, leaves, other_def = paired_leaves(otherwise, tree)
    return tree_unflatten(other_def, [leaf.pick(sel, other) for leaf, other in zip(leaves, others)])


def combine(op: str, a: Any, b: Any) -> Any:
    """Pointwise `op` (sum, min, max) of two fields or numbers."""
    if op == "sum":
        return a + b
    if op == "min":
        return mux(b < a, b, a)
    return mux(b > a, b, a)


def tree_combine(op: str, a: Any, b: Any) -> Any:
    """`combine` leaf by leaf over two nested values of the same structure."""
    la, da = tree_flatten(a)
    lb, db = tree_flatten(b)
    if da != db:
        raise TypeError(f"values of different structures: {da} and {db}")
    return tree_unflatten(da, [combine(op, x, y) for x, y in zip(la, lb)])


def lex_min(primary: NbrField, secondary: NbrField, default_primary: Any = INF, default_secondary: Any = NO_ID,
            where: NbrField | None = None) -> tuple[Field, Field]:
    """Lexicographic minimum of (primary, secondary) pairs over the neighbours (self excluded; only where `where`
    holds, if given), and the defaults where there are none. `secondary` must be at most `default_secondary`."""
    best = primary.min(where=where, default=default_primary)
    tie = primary == best if where is None else where & (primary == best)
    second = secondary.min(where=tie, default=None)  # the identity, above default_secondary, where there is no tie
    return best, mux(second < default_secondary, second, default_secondary)


def lex_less(a1: Any, a2: Any, b1: Any, b2: Any) -> Any:
    """Whether the pair (a1, a2) is lexicographically smaller than (b1, b2), pointwise."""
    return (a1 < b1) | ((a1 == b1) & (a2 < b2))


def uniform_hash(ids: Field, seed: Any = 0) -> Field:
    """A deterministic pseudo-random number in (0, 1) per device, from its id and a seed (Park-Miller steps)."""
    x = (ids % _M31) * 40503 + (seed % _M31) * 69069 + 12345
    x = x % (_M31 - 1) + 1
    for _ in range(3):  # alternate a linear and a quadratic step (x < 2^31, so x * x fits in int64)
        x = (x * 48271) % _M31
        x = (x * x + 7) % (_M31 - 1) + 1
    return x / float(_M31)


def parent_of(potential_nbrs: NbrField, potential: Any, group_nbrs: NbrField | None = None, group: Any = None) -> Field:
    """The parent rule of collect and broadcast: the neighbour of least potential (lowest id on ties) if lower than one's own, else -1."""
    same = None if group_nbrs is None else group_nbrs == group
    parent = potential_nbrs.argmin(where=same, default=-1)
    return mux(potential_nbrs.min(where=same, default=INF) < potential, parent, -1)


@aggregate
def tree_parent(potential: Any, group: Any = None) -> Field:
    """This round's parent of the device in the tree of `collect` and `broadcast` over `potential` (and `group`):
    the id of its neighbour of least potential (lowest id on ties, same group only) if lower than its own, else -1."""
    return parent_of(nbr(potential), potential, None if group is None else nbr(group), group)
