"""Field and NbrField arithmetic, projection and misuse errors."""
import numpy as np
import pytest

from fieldlearn import Field, FieldError, Network, branch, mid, nbr, run, sense
from fieldlearn.calculus.backend import NumpyBackend
from fieldlearn.calculus.fields import Domain


def _field(values):
    dom = Domain(np.arange(len(values)), NumpyBackend())
    return Field(np.asarray(values), dom), dom


def test_arithmetic_and_comparisons_are_pointwise():
    f, dom = _field([1.0, 2.0, 3.0])
    g = Field(np.array([3.0, 2.0, 1.0]), dom)
    np.testing.assert_array_equal((f + g).values, [4, 4, 4])
    np.testing.assert_array_equal((2 * f - 1).values, [1, 3, 5])
    np.testing.assert_array_equal((1 / f).values, [1, 0.5, 1 / 3])
    np.testing.assert_array_equal((f < g).values, [True, False, False])
    np.testing.assert_array_equal(((f > 1) & (g > 1)).values, [False, True, False])
    np.testing.assert_array_equal((~(f == 2)).values, [True, False, True])
    np.testing.assert_array_equal((-f).values, [-1, -2, -3])
    np.testing.assert_array_equal(abs(f - 2).values, [1, 0, 1])


def test_per_device_vectors_broadcast_row_by_row():
    dom = Domain(np.arange(2), NumpyBackend())
    vec = Field(np.array([[1.0, 2.0], [3.0, 4.0]]), dom)
    scale = Field(np.array([10.0, 100.0]), dom)
    np.testing.assert_array_equal((vec * scale).values, [[10, 20], [300, 400]])
    np.testing.assert_array_equal((vec + np.array([1.0, -1.0])).values, [[2, 1], [4, 3]])
    np.testing.assert_array_equal(vec[1].values, [2, 4])


def test_bool_and_iteration_of_a_field_raise():
    f, _ = _field([1, 2])
    with pytest.raises(FieldError, match="branch"):
        bool(f)
    with pytest.raises(FieldError):
        list(f)


def test_fields_from_sibling_branches_cannot_mix():
    net = Network.from_edges(2, [(0, 1)])
    net.sensors["c"] = np.array([True, False])
    leaked = {}

    def prog():
        branch(sense("c"), lambda: leaked.setdefault("then", mid()), lambda: mid())
        return branch(~sense("c"), lambda: mid() + leaked["then"], lambda: mid())

    with pytest.raises(FieldError, match="another round or another branch"):
        run(prog, net, rounds=1)


def test_neighbour_field_arithmetic_keeps_only_links_aligned_in_both_operands():
    net = Network.from_edges(3, [(0, 1), (1, 2)])
    net.sensors["c"] = np.array([True, True, False])

    def prog():
        everyone = nbr(mid() * 1.0)
        return (everyone + 0).count(), branch(sense("c"), lambda: (everyone * nbr(1.0)).count(), lambda: everyone.count())

    a, b = run(prog, net, rounds=2).last
    np.testing.assert_array_equal(a, [1, 2, 1])
    np.testing.assert_array_equal(b, [1, 1, 1])


def test_repr_shows_values():
    f, _ = _field([1, 2])
    assert repr(f) == "Field(array([1, 2]))"
