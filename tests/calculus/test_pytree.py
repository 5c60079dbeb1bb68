"""Nested values flatten and rebuild exactly."""
from collections import namedtuple

import pytest

from fieldlearn.calculus.pytree import register_pytree_node, tree_flatten, tree_map, tree_unflatten

Pair = namedtuple("Pair", "a b")


class Box:
    def __init__(self, items):
        self.items = items


register_pytree_node(Box, lambda b: (list(b.items), len(b.items)), lambda n, ch: Box(ch))


def test_roundtrip_of_nested_containers_in_a_fixed_order():
    value = {"b": (1, [2, 3]), "a": Pair(4, 5)}
    leaves, treedef = tree_flatten(value)
    assert leaves == [4, 5, 1, 2, 3]
    assert tree_unflatten(treedef, leaves) == value


def test_registered_classes_and_tree_map():
    out = tree_map(lambda x, y: x + y, Box([1, 2]), Box([10, 20]))
    assert isinstance(out, Box) and out.items == [11, 22]
    with pytest.raises(ValueError, match="structures differ"):
        tree_map(lambda x, y: x, (1, 2), (1,))


def test_flatten_and_unflatten_leave_no_reference_cycles():
    # a cycle would keep every leaf (a round's model-sized arrays) alive until the cyclic collector runs
    import gc

    value = {"b": (1, [2, Box([3, 4])]), "a": Pair(5, (6, 7))}
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            leaves, treedef = tree_flatten(value)
            tree_unflatten(treedef, leaves)
            tree_map(lambda x: x, value)
        assert gc.collect() == 0
    finally:
        gc.enable()
