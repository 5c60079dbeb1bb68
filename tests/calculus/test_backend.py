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
