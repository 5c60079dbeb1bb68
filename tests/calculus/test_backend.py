"""Segment reductions agree with a per-row reference on both backends, empty rows and vector values included."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldlearn.calculus.backend import NumpyBackend, backend_for

OPS = {"sum": np.sum, "min": np.min, "max": np.max, "any": np.any, "all": np.all}
IDENT = {"sum": 0, "min": np.inf, "max": -np.inf, "any": False, "all": True}


@settings(max_examples=80)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.sampled_from(sorted(OPS)), st.integers(0, 99),
       st.sampled_from([(), (3,), (2, 2)]))
def test_segment_reduce_matches_per_row_reference(counts, op, seed, item_shape):
    indptr = np.concatenate([[0], np.cumsum(counts)])
    values = np.random.default_rng(seed).normal(size=(indptr[-1],) + item_shape)
    if op in ("any", "all"):
        values = values > 0
    want = [OPS[op](values[a:b], axis=0) if b > a else np.full(item_shape, IDENT[op])
            for a, b in zip(indptr[:-1], indptr[1:])]
    backends = [NumpyBackend()]
    try:
        backends.append(backend_for("torch"))
    except ImportError:
        pass
    for be in backends:
        ip = be.index(indptr)
        got = be.segment_reduce(op, be.asarray(values), be.segments(ip, be.rows_of(ip)))
        np.testing.assert_allclose(be.to_numpy(got).astype(float), np.asarray(want, dtype=float), rtol=1e-5, atol=1e-5)  # torch runs in float32


def test_unknown_backend_and_numpy_on_cuda_are_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        backend_for("jax")
    with pytest.raises(ValueError, match="cpu only"):
        backend_for("numpy", "cuda")


@settings(max_examples=30)
@given(st.integers(0, 10**6), st.sampled_from(["min", "max"]), st.sampled_from([np.float64, np.float32]),
       st.sampled_from(["plain", "inf", "signed_zero", "nan", "negative"]))
def test_float_min_and_max_on_integer_bits_give_the_same_elements(seed, op, dtype, special):
    # large arrays of floats in [+0, +inf] are reduced on their bits as integers; anything else the usual way
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, 1500)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    values = (rng.random(indptr[-1]) * 10).astype(dtype)
    values[rng.random(len(values)) < 0.2] = np.round(values[: 1][0])  # ties
    pick = rng.random(len(values)) < 0.05
    values[pick] = {"plain": values[pick], "inf": np.inf, "signed_zero": -0.0, "nan": np.nan, "negative": -1.5}[special]
    be = NumpyBackend()
    got = be.segment_reduce(op, values, be.segments(indptr))
    ufunc = {"min": np.minimum, "max": np.maximum}[op]
    nonempty = counts > 0
    want = np.full(len(counts), np.inf if op == "min" else -np.inf, dtype=dtype)
    want[nonempty] = ufunc.reduceat(values, indptr[:-1][nonempty])
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))  # bit for bit, signs of zero included


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["ones", "random"]), st.sampled_from(["float32", "float64"]),
       st.sampled_from([(), (7, 3)]), st.sampled_from([1, 5, 10**6]), st.booleans(), st.sampled_from([0.2, 0.8]))
def test_torch_weighted_sums_over_links_are_torchs_sparse_product_bit_for_bit(seed, weighting, dtype, item_shape,
                                                                             block_rows, with_initial, empty):
    # on a cpu every row's sum is added link after link from gathered blocks of rows: the sparse product's bits;
    # an initial value (with signed zeros) added in gives the bits of product + initial
    torch = pytest.importorskip("torch")
    from unittest import mock

    from fieldlearn.calculus import backend

    be = backend_for("torch")
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 12, 60)
    counts[rng.random(60) < empty] = 0  # rows without links: most rows have links, or few (a tree's inner rows)
    indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]))
    cols = torch.as_tensor(rng.integers(0, 40, int(indptr[-1])))
    kind = getattr(torch, dtype)
    weights = torch.ones(len(cols), dtype=kind) if weighting == "ones" else torch.as_tensor(rng.random(len(cols)))
    dense = torch.as_tensor(rng.normal(size=(40, *item_shape)), dtype=kind)
    row_bytes = int(np.prod(item_shape, dtype=int)) * dense.element_size()
    initial = None
    if with_initial:
        initial = torch.as_tensor(rng.normal(size=(60, *item_shape)), dtype=kind)
        initial[torch.as_tensor(rng.random((60, *item_shape)) < 0.3)] = -0.0
    with mock.patch.object(backend, "GATHER_BLOCK_BYTES", block_rows * row_bytes):
        got = be.sparse_rows_times(indptr, cols, weights, 40, dense, initial)
    flat = dense.reshape(40, -1)
    want = torch.sparse_csr_tensor(indptr, cols, weights.to(kind), size=(60, 40)) @ flat
    if with_initial:
        want = want + initial.reshape(60, -1)
    assert got.shape == (60, *item_shape) and got.dtype == kind
    bits = torch.int32 if kind == torch.float32 else torch.int64
    assert torch.equal(got.reshape(60, -1).view(bits), want.view(bits))  # bit for bit, signs of zero included
    if not with_initial:
        assert not got.reshape(60, -1)[torch.as_tensor(counts == 0)].any()


def test_torch_sparse_product_in_row_blocks_equals_one_product(monkeypatch):
    # the product off a cpu (a cuda device): blocks of rows give the whole product's rows
    torch = pytest.importorskip("torch")
    from fieldlearn.calculus import backend

    be = backend_for("torch")
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 12, 200)
    indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]))
    cols = torch.as_tensor(rng.integers(0, 150, int(indptr[-1])))
    weights = torch.as_tensor(rng.random(int(indptr[-1])), dtype=torch.float32)
    flat = torch.as_tensor(rng.normal(size=(150, 7 * 30)), dtype=torch.float32)
    whole = be._sparse_product(indptr, cols, weights, 200, 150, flat)
    monkeypatch.setattr(backend, "PRODUCT_BLOCK_BYTES", 13 * 7 * 30 * 4)  # blocks of 13 rows
    blocks = be._sparse_product(indptr, cols, weights, 200, 150, flat)
    assert blocks.shape == (200, 210) and torch.equal(whole, blocks)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(sorted(OPS)), st.sampled_from([0.0, 0.02, 0.3, 0.7, 1.0]),
       st.sampled_from(["float64", "int32 strong", "bool"]), st.sampled_from([200, 1500]), st.sampled_from([(), (3,)]))
def test_segment_reduce_where_is_the_reduction_of_a_mux_with_the_identity(seed, op, density, kind, n_rows, item_shape):
    # above 4096 links a sparse selection is reduced on its own links only; the result must not show it
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, n_rows)
    counts[rng.random(n_rows) < 0.1] = 0  # empty rows
    indptr = np.concatenate([[0], np.cumsum(counts)])
    shape = (indptr[-1],) + item_shape
    if kind == "bool" or op in ("any", "all"):
        values = rng.random(shape) < 0.5
    elif kind == "int32 strong":
        values = rng.integers(-50, 50, shape).astype(np.int32)
    else:
        values = np.round(rng.normal(size=shape), 1)  # ties
    mask = rng.random(indptr[-1]) < density
    from fieldlearn.calculus.backend import identity_of
    ident = identity_of(op, values.dtype)
    identity = np.full((1,) * values.ndim, ident, dtype=np.int64) if kind == "int32 strong" else ident
    be = NumpyBackend()
    seg = be.segments(indptr, be.rows_of(indptr))
    want = be.segment_reduce(op, np.where(mask.reshape(mask.shape + (1,) * len(item_shape)), values, identity), seg)
    got = be.segment_reduce_where(op, values, mask, seg, identity)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
