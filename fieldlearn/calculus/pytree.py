"""Nested containers of per-device arrays (tuples, lists, dicts, registered classes) as flat leaf lists."""
from __future__ import annotations

from typing import Any, Callable

_NODES: dict[type, tuple[Callable[[Any], tuple[list, Any]], Callable[[Any, list], Any]]] = {}


def register_pytree_node(
    cls: type, flatten: Callable[[Any], tuple[list, Any]], unflatten: Callable[[Any, list], Any]
) -> None:
    """Let values of `cls` travel through constructs: `flatten(x) -> (children, aux)`, `unflatten(aux, children) -> x`."""
    _NODES[cls] = (flatten, unflatten)


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
    leaves: list = []

    def go(v: Any) -> TreeDef:
        found = _children(v)
        if found is None:
            leaves.append(v)
            return LEAF
        children, aux = found
        return TreeDef(type(v), aux, tuple(go(c) for c in children))

    return leaves, go(x)


def tree_unflatten(treedef: TreeDef, leaves: list) -> Any:
    """Rebuild a nested value of `treedef`'s structure from its leaves."""
    it = iter(leaves)

    def go(t: TreeDef) -> Any:
        if t.kind is None:
            return next(it)
        return _rebuild(t.kind, t.aux, [go(c) for c in t.children])

    return go(treedef)


def tree_map(fn: Callable[..., Any], x: Any, *rest: Any) -> Any:
    """Apply `fn` leaf by leaf to one or more values of the same structure."""
    leaves, treedef = tree_flatten(x)
    others = [tree_flatten(r) for r in rest]
    for _, t in others:
        if t != treedef:
            raise ValueError(f"structures differ: {treedef} vs {t}")
    return tree_unflatten(treedef, [fn(*args) for args in zip(leaves, *(o[0] for o in others))])
