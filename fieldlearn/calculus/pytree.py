"""Nested containers of per-device arrays (tuples, lists, dicts, registered classes) as flat leaf lists."""
from __future__ import annotations

from typing import Any, Callable

_NODES: dict[type, tuple[Callable[[Any], tuple[list, Any]], Callable[[Any, list], Any]]] = {}


def register_pytree_node(
    cls: type, flatten: Callable[[Any], tuple[list, Any]], unflatten: Callable[[Any, list], Any]
) -> None:
    """Let values of `cls` travel through constructs: `flatten(x) -> (children, aux)`, `unflatten(aux, children) -> x`."""
    _NODES[cls] = (flatten, unflatten)


def _is_leaf(x: Any) -> bool:
    """A quick answer for values that are never containers (most values a round meets)."""
    t = type(x)
    return t not in _NODES and not (t is tuple or t is list or t is dict or isinstance(x, (tuple, list, dict)))


def _children(x: Any) -> tuple[list, Any] | None:
    if type(x) in _NODES:
        return _NODES[type(x)][0](x)
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return list(x), None
    if isinstance(x, tuple):  # namedtuple
        return list(x), None
    if isinstance(x, list):
        return list(x), None
    if isinstance(x, dict):
        keys = sorted(x)
        return [x[k] for k in keys], keys
    return None


def _rebuild(kind: type, aux: Any, children: list) -> Any:
    if kind in _NODES:
        return _NODES[kind][1](aux, children)
    if kind is tuple or kind is list:
        return kind(children)
    if issubclass(kind, tuple):  # namedtuple
        return kind(*children)
    if issubclass(kind, dict):
        return kind(zip(aux, children))
    raise TypeError(f"cannot rebuild a {kind.__name__}")


class TreeDef:
    """The shape of a nested value with its leaves taken out."""

    __slots__ = ("kind", "aux", "children", "n_leaves")

    def __init__(self, kind: type | None, aux: Any, children: tuple["TreeDef", ...]):
        self.kind, self.aux, self.children = kind, aux, children
        self.n_leaves = 1 if kind is None else sum(c.n_leaves for c in children)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TreeDef)
            and self.kind is other.kind
            and self.aux == other.aux
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((self.kind, repr(self.aux), self.children))

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        return f"{self.kind.__name__}({', '.join(map(repr, self.children))})"


LEAF = TreeDef(None, None, ())


def tree_flatten(x: Any) -> tuple[list, TreeDef]:
    """Split a nested value into its leaves (in a fixed order) and its structure."""
    if _is_leaf(x):
        return [x], LEAF
    leaves: list = []
    return leaves, _flatten_into(x, leaves)


def _flatten_into(v: Any, leaves: list) -> TreeDef:
    # a module-level recursion, not a nested function that calls itself: that would be a reference cycle through
    # its closure, keeping every leaf (e.g. a round's model-sized arrays) alive until the cyclic garbage collector runs
    found = _children(v)
    if found is None:
        leaves.append(v)
        return LEAF
    children, aux = found
    return TreeDef(type(v), aux, tuple(_flatten_into(c, leaves) for c in children))


def tree_unflatten(treedef: TreeDef, leaves: list) -> Any:
    """Rebuild a nested value of `treedef`'s structure from its leaves."""
    if treedef.kind is None:
        return leaves[0]
    return _rebuild_from(treedef, iter(leaves))


def _rebuild_from(t: TreeDef, it: Any) -> Any:
    if t.kind is None:
        return next(it)
    return _rebuild(t.kind, t.aux, [_rebuild_from(c, it) for c in t.children])


def tree_map(fn: Callable[..., Any], x: Any, *rest: Any) -> Any:
    """Apply `fn` leaf by leaf to one or more values of the same structure."""
    leaves, treedef = tree_flatten(x)
    others = [tree_flatten(r) for r in rest]
    for _, t in others:
        if t != treedef:
            raise ValueError(f"structures differ: {treedef} vs {t}")
    return tree_unflatten(treedef, [fn(*args) for args in zip(leaves, *(o[0] for o in others))])
