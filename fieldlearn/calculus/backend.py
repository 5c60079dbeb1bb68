"""Array backends: the few array operations the VM needs, for numpy arrays and (lazily imported) torch tensors.

Everything the calculus knows about arrays lives here: dtype kinds, the neutral element of each reduction, which
per-device values are large enough for sparse products, segment reductions over CSR rows and the products.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_REDUCERS = {"sum": np.add, "min": np.minimum, "max": np.maximum, "any": np.logical_or, "all": np.logical_and}

#: Most bytes of result rows torch's sparse product computes at once (it allocates them twice).
PRODUCT_BLOCK_BYTES = 64 * 2**20

#: Most bytes of linked rows a weighted sum over neighbours gathers at once on a cpu (they stay in cache while they
#: are added into their rows).
GATHER_BLOCK_BYTES = 8 * 2**20

#: Elements per device from which a float value counts as large (a model, an embedding): reductions over
#: neighbours then run as sparse products over device rows, and per-link copies of it are avoided.
LARGE_ELEMENTS = 64


def is_torch(x: Any) -> bool:
    """Whether `x` is a torch tensor (checked without importing torch)."""
    return type(x).__module__ == "torch" and type(x).__name__ in ("Tensor", "Parameter")


def _is_torch_dtype(dtype: Any) -> bool:
    return type(dtype).__module__ == "torch"


def dtype_kind(dtype: Any) -> str:
    """The numpy kind letter ('f', 'c', 'i', 'u', 'b') of a numpy or torch dtype."""
    if _is_torch_dtype(dtype):
        if dtype.is_floating_point:
            return "f"
        if dtype.is_complex:
            return "c"
        return "b" if str(dtype) == "torch.bool" else "i"
    return np.dtype(dtype).kind


def identity_of(op: str, dtype: Any) -> Any:
    """The neutral element of a reduction for a dtype (what masked-out neighbours contribute)."""
    if op == "sum":
        return 0
    if op == "any":
        return False
    if op == "all":
        return True
    kind = dtype_kind(dtype)
    if kind == "f":
        return np.inf if op == "min" else -np.inf
    if kind == "b":
        return op == "min"
    if _is_torch_dtype(dtype):
        import torch

        info = torch.iinfo(dtype)
    else:
        info = np.iinfo(np.dtype(dtype))
    return info.max if op == "min" else info.min


def row_size(values: Any) -> int:
    """Elements per device (per row) of an array with one leading row per device."""
    size = 1
    for s in tuple(values.shape[1:]):
        size *= int(s)
    return size


def is_large(values: Any) -> bool:
    """Whether each row is a sizeable float array (e.g. model parameters): summed over neighbours as a sparse
    product over device rows, and never copied once per link."""
    return values.ndim > 1 and dtype_kind(values.dtype) == "f" and row_size(values) >= LARGE_ELEMENTS


def expand_to(per_row: Any, like: Any) -> Any:
    """A per-row array (mask, count, weight) reshaped to broadcast over `like`'s trailing axes."""
    extra = like.ndim - per_row.ndim
    return per_row if extra <= 0 else per_row.reshape(tuple(per_row.shape) + (1,) * extra)


def trailing_aligned(*rows: Any) -> list:
    """Per-row arrays with trailing axes of length 1 added where they have fewer axes than the others, so that a
    per-device number broadcasts over every element of a per-device vector."""
    depth = max(r.ndim for r in rows)
    return [r.reshape(tuple(r.shape) + (1,) * (depth - r.ndim)) if r.ndim < depth else r for r in rows]


class Segments:
    """The rows of a CSR (one per device, one entry per link) in the form segment reductions need, built once."""

    __slots__ = ("indptr", "rows", "n_rows", "has_empty", "empty", "starts", "nonempty")

    def __init__(self, indptr: Any, rows: Any, has_empty: bool, empty: Any, starts: Any, nonempty: Any):
        self.indptr, self.rows, self.n_rows = indptr, rows, len(indptr) - 1
        self.has_empty, self.empty, self.starts, self.nonempty = has_empty, empty, starts, nonempty


_AS_INTEGERS = {np.dtype(np.float64): (np.uint64, np.int64, np.float64(np.inf).view(np.uint64)),
                np.dtype(np.float32): (np.uint32, np.int32, np.float32(np.inf).view(np.uint32))}


#: Below this many entries (links, mostly) the fast paths' extra calls cost more than they save.
FAST_PATH_MIN_ENTRIES = 4096

#: Python scalars and the dtype np.full gives them (np.asarray(value).dtype), for NumpyBackend.full's fast path.
_PLAIN_SCALARS = {float: np.dtype(np.float64), int: np.dtype(np.int64), bool: np.dtype(np.bool_)}


def _reduceat(ufunc: Any, op: str, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """`ufunc.reduceat` over the rows starting at `starts`. The min or max of floats that are all >= +0.0 and <= +inf
    (no NaN, no negative, no -0.0) is taken on their bits as integers, which order the same way and reduce about
    twice as fast (no NaN handling); the result is bit for bit the same element."""
    if op in ("min", "max") and len(values) >= FAST_PATH_MIN_ENTRIES and values.dtype in _AS_INTEGERS:
        unsigned, signed, inf_bits = _AS_INTEGERS[values.dtype]
        if bool((values.view(unsigned) <= inf_bits).all()):
            return ufunc.reduceat(values.view(signed), starts, axis=0).view(values.dtype)
    return ufunc.reduceat(values, starts, axis=0)


class NumpyBackend:
    """Per-device values as numpy arrays."""

    name = "numpy"

    def asarray(self, x: Any, dtype: Any = None) -> np.ndarray:
        if is_torch(x):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=dtype)

    def index(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.int64)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def nonzero(self, mask: np.ndarray) -> np.ndarray:
        return mask.nonzero()[0] if type(mask) is np.ndarray and mask.ndim == 1 else np.flatnonzero(mask)

    def full(self, shape: tuple, value: Any, dtype: Any = None) -> np.ndarray:
        kind = type(value)  # np.full's own Python-level work costs more than a small array's fill
        if kind in _PLAIN_SCALARS and (kind is not int or -2**63 <= value < 2**63):
            out = np.empty(shape, dtype=_PLAIN_SCALARS[kind] if dtype is None else dtype)
            out.fill(value)
            return out
        return np.full(shape, value, dtype=dtype)

    def zeros(self, shape: tuple, dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def broadcast_scalar(self, value: Any, n: int) -> np.ndarray:
        arr = np.asarray(value)
        if arr.ndim == 0:
            return np.full(n, arr, dtype=arr.dtype)
        return np.broadcast_to(arr, (n,) + arr.shape).copy()

    def constant_row(self, value: Any) -> np.ndarray:
        """`value` as one row (shape `(1, ...)`) with the dtype `broadcast_scalar` would give it."""
        return np.asarray(value)[None]

    def broadcast_rows(self, rows: np.ndarray, shape: tuple) -> np.ndarray:
        return np.broadcast_to(rows, shape)

    def result_type(self, *arrays: Any) -> Any:
        return np.result_type(*arrays)

    def keeps_dtype(self, x: np.ndarray, value: Any) -> bool:
        """Whether `where(cond, value, x)` keeps `x`'s dtype."""
        try:
            return np.result_type(x.dtype, value) == x.dtype
        except (TypeError, OverflowError, ValueError):
            return False

    def cast(self, x: np.ndarray, dtype: Any) -> np.ndarray:
        return x.astype(dtype, copy=False)

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    def take(self, src: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` of `src` (a gather)."""
        return src[idx] if src.ndim > 1 else src.take(idx)

    def head_copy(self, src: np.ndarray, n: int) -> np.ndarray:
        """A copy of the first `n` rows (what gathering the ids 0..n-1 gives)."""
        return src[:n].copy()

    def is_prefix_range(self, ids: np.ndarray, upto: np.ndarray) -> bool:
        """Whether `ids` is exactly 0, 1, ..., len(ids) - 1 (`upto`: an arange at least that long)."""
        n = len(ids)
        return n == 0 or (ids[0] == 0 and ids[n - 1] == n - 1 and bool((ids == upto[:n]).all()))

    def rows_of(self, indptr: np.ndarray) -> np.ndarray:
        return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))

    def indptr_from_counts(self, counts: np.ndarray) -> np.ndarray:
        out = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        return out

    def concat(self, xs: list) -> np.ndarray:
        return np.concatenate(xs)

    def sort_unique_keys(self, keys: np.ndarray) -> np.ndarray:
        return np.argsort(keys, kind="stable")

    def searchsorted(self, sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
        return np.searchsorted(sorted_keys, keys)

    def segments(self, indptr: np.ndarray, rows: np.ndarray | None = None) -> Segments:
        """`indptr`'s rows prepared for `segment_reduce` and `count` (rows: the receiving row of every link)."""
        empty = indptr[1:] == indptr[:-1]
        has_empty = bool(empty.any())
        starts = indptr[:-1][~empty] if has_empty else indptr[:-1]
        return Segments(indptr, rows, has_empty, empty, starts, ~empty if has_empty else None)

    def segment_reduce(self, op: str, values: np.ndarray, seg: Segments) -> np.ndarray:
        """Reduce `values` (one entry per link) within each row of a CSR; empty rows get the identity."""
        n_rows = seg.n_rows
        ufunc = _REDUCERS[op]
        if op in ("any", "all"):
            values = values.astype(bool, copy=False)
        if len(values) == 0:
            return self.full((n_rows,) + values.shape[1:], identity_of(op, values.dtype), dtype=values.dtype)
        if not seg.has_empty:
            return _reduceat(ufunc, op, values, seg.starts)
        # reduceat needs strictly increasing starts: reduce the non-empty rows, give the others the identity
        out = self.full((n_rows,) + values.shape[1:], identity_of(op, values.dtype), dtype=values.dtype)
        out[seg.nonempty] = _reduceat(ufunc, op, values, seg.starts)
        return out

    def segment_reduce_where(self, op: str, values: np.ndarray, mask: np.ndarray, seg: Segments,
                             identity: Any) -> np.ndarray:
        """`segment_reduce` of `values` where `mask` holds and `identity` (a scalar or one row) elsewhere. For a min,
        max, any or all with up to half of a few thousand or more links selected, only those are gathered and reduced:
        the same result bit for bit, without a pass over the others."""
        # only for min, max, any and all: numpy sums a long row in several interleaved partial sums, so dropping the
        # zeros of the unselected links could change the last bit
        hits = self.nonzero(mask) if op != "sum" and len(mask) >= FAST_PATH_MIN_ENTRIES else mask
        if 2 * len(hits) > len(mask):
            return self.segment_reduce(op, np.where(expand_to(mask, values), values, identity), seg)
        dtype = np.bool_ if op in ("any", "all") else np.result_type(values, identity)
        out = self.full((seg.n_rows,) + values.shape[1:], identity, dtype=dtype)  # rows with no selected link
        if seg.has_empty:
            out[seg.empty] = identity_of(op, dtype)  # rows without links, as segment_reduce gives them
        if len(hits):
            rows = seg.rows[hits]
            first = self.run_starts(rows)
            out[rows[first]] = _reduceat(_REDUCERS[op], op, values[hits].astype(dtype, copy=False), first)
        return out

    def run_starts(self, rows: np.ndarray) -> np.ndarray:
        """Where each run of equal values of the sorted `rows` begins."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(([True], rows[1:] != rows[:-1])).nonzero()[0]

    def count(self, mask: np.ndarray | None, seg: Segments) -> np.ndarray:
        if mask is None:
            return np.diff(seg.indptr)
        return np.bincount(seg.rows[mask], minlength=seg.n_rows)

    def sparse_rows_times(self, indptr: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_cols: int,
                          dense: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        """(sparse matrix with one row per CSR row) @ dense rows: weighted sums of large per-device values (plus
        `initial`, one row per CSR row, added to each row's sum)."""
        from scipy.sparse import csr_matrix

        flat = dense.reshape(dense.shape[0], -1)
        mat = csr_matrix((weights, cols, indptr), shape=(len(indptr) - 1, n_cols))
        out = np.asarray(mat @ flat).reshape((len(indptr) - 1,) + dense.shape[1:])
        if initial is not None:
            out += initial
        return out


class TorchBackend:
    """Per-device values as torch tensors on one device (cpu or cuda)."""

    name = "torch"

    def __init__(self, device: Any = "cpu", dtype: Any = None):
        import warnings

        import torch

        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        self.torch = torch
        self.device = torch.device(device)
        self.float_dtype = dtype or torch.get_default_dtype()

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        torch = self.torch
        if is_torch(x):
            return x.to(self.device, dtype=dtype) if dtype is not None or x.device != self.device else x
        arr = np.asarray(x)
        if arr.dtype.kind == "f" and dtype is None:
            dtype = self.float_dtype
        return torch.as_tensor(arr, device=self.device, dtype=dtype)

    def index(self, x: Any) -> Any:
        if is_torch(x):
            return x.to(self.device, dtype=self.torch.int64)
        return self.torch.as_tensor(np.asarray(x, dtype=np.int64), device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)

    def arange(self, n: int) -> Any:
        return self.torch.arange(n, device=self.device)

    def nonzero(self, mask: Any) -> Any:
        return self.torch.nonzero(mask, as_tuple=True)[0]

    def _dtype(self, value: Any, dtype: Any) -> Any:
        if dtype is not None:
            return dtype if _is_torch_dtype(dtype) else self._from_numpy_dtype(np.dtype(dtype))
        kind = np.asarray(value).dtype.kind
        return self.float_dtype if kind == "f" else self._from_numpy_dtype(np.asarray(value).dtype)

    def _from_numpy_dtype(self, dtype: np.dtype) -> Any:
        torch = self.torch
        if dtype.kind == "f":
            return self.float_dtype if dtype == np.float64 and self.float_dtype != torch.float64 else getattr(torch, dtype.name)
        return {"b": torch.bool, "i": torch.int64, "u": torch.int64}.get(dtype.kind, self.float_dtype)

    def full(self, shape: tuple, value: Any, dtype: Any = None) -> Any:
        return self.torch.full(shape, value, dtype=self._dtype(value, dtype), device=self.device)

    def zeros(self, shape: tuple, dtype: Any) -> Any:
        return self.torch.zeros(shape, dtype=dtype if _is_torch_dtype(dtype) else self._dtype(0, dtype), device=self.device)

    def broadcast_scalar(self, value: Any, n: int) -> Any:
        t = self.asarray(value)
        return t.expand((n,) + tuple(t.shape)).clone()

    def constant_row(self, value: Any) -> Any:
        """`value` as one row (shape `(1, ...)`) with the dtype `broadcast_scalar` would give it."""
        return self.asarray(value)[None]

    def broadcast_rows(self, rows: Any, shape: tuple) -> Any:
        return rows.expand(shape)

    def result_type(self, *arrays: Any) -> Any:
        out = arrays[0].dtype
        for a in arrays[1:]:
            out = self.torch.promote_types(out, a.dtype)
        return out

    def keeps_dtype(self, x: Any, value: Any) -> bool:
        """Whether a default `value` put beside `x` keeps `x`'s dtype (it converts to it without overflow)."""
        try:
            self.torch.as_tensor(value, dtype=x.dtype, device=x.device)
        except (RuntimeError, TypeError, OverflowError):
            return False
        return True

    def cast(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        torch = self.torch
        if not is_torch(a):
            a = torch.as_tensor(a, device=self.device, dtype=b.dtype if is_torch(b) else None)
        if not is_torch(b):
            b = torch.as_tensor(b, device=self.device, dtype=a.dtype)
        if a.dtype != b.dtype:
            t = torch.promote_types(a.dtype, b.dtype)
            a, b = a.to(t), b.to(t)
        return torch.where(cond, a, b)

    def take(self, src: Any, idx: Any) -> Any:
        """Rows `idx` of `src` (a gather)."""
        return src.index_select(0, idx)

    def head_copy(self, src: Any, n: int) -> Any:
        """A copy of the first `n` rows (what gathering the ids 0..n-1 gives)."""
        return src[:n].clone()

    def is_prefix_range(self, ids: Any, upto: Any) -> bool:
        """Whether `ids` is exactly 0, 1, ..., len(ids) - 1 (`upto`: an arange at least that long)."""
        n = len(ids)
        return n == 0 or (int(ids[0]) == 0 and int(ids[n - 1]) == n - 1 and bool(self.torch.equal(ids, upto[:n])))

    def rows_of(self, indptr: Any) -> Any:
        torch = self.torch
        return torch.repeat_interleave(torch.arange(len(indptr) - 1, device=self.device), torch.diff(indptr))

    def indptr_from_counts(self, counts: Any) -> Any:
        torch = self.torch
        out = torch.zeros(len(counts) + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(counts, 0, out=out[1:])
        return out

    def concat(self, xs: list) -> Any:
        return self.torch.cat(xs)

    def sort_unique_keys(self, keys: Any) -> Any:
        return self.torch.argsort(keys, stable=True)

    def searchsorted(self, sorted_keys: Any, keys: Any) -> Any:
        return self.torch.searchsorted(sorted_keys, keys)

    def segments(self, indptr: Any, rows: Any | None = None) -> Segments:
        """`indptr`'s rows prepared for `segment_reduce` and `count` (rows: the receiving row of every link)."""
        empty = indptr[1:] == indptr[:-1]
        return Segments(indptr, rows if rows is not None else self.rows_of(indptr), bool(empty.any()), empty, None, None)

    def segment_reduce(self, op: str, values: Any, seg: Segments) -> Any:
        """Reduce `values` (one entry per link) within each row of a CSR; empty rows get the identity."""
        torch = self.torch
        n_rows = seg.n_rows
        if op in ("any", "all"):
            values = values.to(torch.bool)
            as_int = values.to(torch.uint8)
            red = self.segment_reduce("max" if op == "any" else "min", as_int, seg)
            empty = seg.empty.view((-1,) + (1,) * (red.dim() - 1))
            return torch.where(empty, torch.tensor(op == "all", device=self.device), red.to(torch.bool))
        ident = identity_of(op, values.dtype)
        out = torch.full((n_rows,) + tuple(values.shape[1:]), ident, dtype=values.dtype, device=self.device)
        if len(values) == 0:
            return out
        idx = seg.rows.view((-1,) + (1,) * (values.dim() - 1)).expand_as(values)
        reduce = {"sum": "sum", "min": "amin", "max": "amax"}[op]
        return out.scatter_reduce(0, idx, values, reduce=reduce, include_self=True)

    def segment_reduce_where(self, op: str, values: Any, mask: Any, seg: Segments, identity: Any) -> Any:
        """`segment_reduce` of `values` where `mask` holds and `identity` (a scalar or one row) elsewhere."""
        return self.segment_reduce(op, self.where(expand_to(mask, values), values, identity), seg)

    def run_starts(self, rows: Any) -> Any:
        """Where each run of equal values of the sorted `rows` begins."""
        torch = self.torch
        if len(rows) == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.device)
        head = torch.ones(1, dtype=torch.bool, device=self.device)
        return torch.nonzero(torch.cat([head, rows[1:] != rows[:-1]]), as_tuple=True)[0]

    def count(self, mask: Any, seg: Segments) -> Any:
        if mask is None:
            return self.torch.diff(seg.indptr)
        return self.torch.bincount(seg.rows[mask], minlength=seg.n_rows)

    def sparse_rows_times(self, indptr: Any, cols: Any, weights: Any, n_cols: int, dense: Any,
                          initial: Any = None) -> Any:
        """(sparse matrix with one row per CSR row) @ dense rows: weighted sums of large per-device values (plus
        `initial`, one row per CSR row, added to each row's sum: the bits of `sum + initial`)."""
        flat = dense.reshape(dense.shape[0], -1)
        weights = weights.to(flat.dtype)
        n_rows = len(indptr) - 1
        start = None if initial is None else initial.reshape(n_rows, -1)
        if flat.device.type == "cpu":
            out = self._gathered_sums(indptr, cols, weights, n_rows, flat, start)
        else:
            out = self._sparse_product(indptr, cols, weights, n_rows, n_cols, flat)
            if start is not None:
                out += start
        return out.reshape((n_rows,) + tuple(dense.shape[1:]))

    def _gathered_sums(self, indptr: Any, cols: Any, weights: Any, n_rows: int, flat: Any, start: Any) -> Any:
        """On a cpu, every row's sum of `weights[k] * flat[cols[k]]` added link after link in CSR order (the bits of
        torch's sparse product, at a fraction of its time): the linked rows are gathered a few megabytes at a time,
        weighted, and added into their result rows, then `start` is added. Where at most half the rows have links, the
        result is `start + 0` instead (a row without links is 0 + start: -0.0 becomes 0.0) with the sums of the rows
        that have links added in (floats add commutatively, and a sum begun at 0.0 is never -0.0: the bits of
        `sums + start`, two passes over every row fewer)."""
        torch = self.torch
        links = len(cols)
        linked = None if start is None else torch.nonzero(indptr[1:] > indptr[:-1]).flatten()
        compact = linked is not None and 2 * len(linked) <= n_rows  # few rows have links (a tree's inner devices)
        if compact:
            out = start + 0
            sums = torch.zeros((len(linked), flat.shape[1]), dtype=flat.dtype)
            rows = torch.repeat_interleave(torch.arange(len(linked)), torch.diff(indptr)[linked])
        else:
            out = sums = torch.zeros((n_rows, flat.shape[1]), dtype=flat.dtype)
            rows = self.rows_of(indptr)
        unit = bool((weights == 1).all())
        block = max(1, GATHER_BLOCK_BYTES // max(1, flat.shape[1] * flat.element_size()))
        buf = flat.new_empty((min(block, links), flat.shape[1]))
        for a in range(0, links, block):
            b = min(links, a + block)
            part = torch.index_select(flat, 0, cols[a:b], out=buf[: b - a])
            if not unit:
                part.mul_(weights[a:b, None])
            sums.index_add_(0, rows[a:b], part)
        if compact:
            out.index_add_(0, linked, sums)
        elif start is not None:
            out += start
        return out

    def _sparse_product(self, indptr: Any, cols: Any, weights: Any, n_rows: int, n_cols: int, flat: Any) -> Any:
        """torch's sparse product, in blocks of rows written into the result (it allocates its whole result twice)."""
        torch = self.torch
        block = max(1, PRODUCT_BLOCK_BYTES // max(1, flat.shape[1] * flat.element_size()))
        if n_rows <= block:
            mat = torch.sparse_csr_tensor(indptr, cols, weights, size=(n_rows, n_cols))
            return mat @ flat
        out = torch.empty((n_rows, flat.shape[1]), dtype=flat.dtype, device=flat.device)
        bounds = indptr.cpu().tolist()
        for r0 in range(0, n_rows, block):
            r1 = min(n_rows, r0 + block)
            a, b = bounds[r0], bounds[r1]
            mat = torch.sparse_csr_tensor(indptr[r0:r1 + 1] - a, cols[a:b], weights[a:b], size=(r1 - r0, n_cols))
            out[r0:r1] = mat @ flat
        return out


def backend_for(name: str | None = None, device: Any = None) -> NumpyBackend | TorchBackend:
    """The backend named `numpy` or `torch` (the latter on `device`)."""
    if name in (None, "numpy"):
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on the cpu only, not on {device!r}; use backend='torch'")
        return NumpyBackend()
    if name == "torch":
        return TorchBackend(device or "cpu")
    raise ValueError(f"unknown backend {name!r}: expected 'numpy' or 'torch'")
