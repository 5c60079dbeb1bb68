"""Array backends: the few array operations the VM needs, for numpy arrays and (lazily imported) torch tensors."""
from __future__ import annotations

from typing import Any

import numpy as np

_REDUCERS = {"sum": np.add, "min": np.minimum, "max": np.maximum, "any": np.logical_or, "all": np.logical_and}


def identity_of(op: str, dtype: Any) -> Any:
    """The neutral element of a reduction for a dtype (what masked-out neighbours contribute)."""
    if op == "sum":
        return 0
    if op == "any":
        return False
    if op == "all":
        return True
    kind = np.dtype(dtype).kind if not _is_torch_dtype(dtype) else _torch_kind(dtype)
    if kind == "f":
        return np.inf if op == "min" else -np.inf
    if kind == "b":
        return op == "min"
    info = np.iinfo(np.dtype(dtype)) if kind in "iu" and not _is_torch_dtype(dtype) else _torch_iinfo(dtype)
    return info.max if op == "min" else info.min


def _is_torch_dtype(dtype: Any) -> bool:
    return type(dtype).__module__ == "torch"


def _torch_kind(dtype: Any) -> str:
    if dtype.is_floating_point:
        return "f"
    return "b" if str(dtype) == "torch.bool" else "i"


def _torch_iinfo(dtype: Any) -> Any:
    import torch

    return torch.iinfo(dtype)


def is_torch(x: Any) -> bool:
    """Whether `x` is a torch tensor (checked without importing torch)."""
    return type(x).__module__ == "torch" and type(x).__name__ in ("Tensor", "Parameter")


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
        return np.flatnonzero(mask)

    def full(self, shape: tuple, value: Any, dtype: Any = None) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def zeros(self, shape: tuple, dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def broadcast_scalar(self, value: Any, n: int) -> np.ndarray:
        arr = np.asarray(value)
        return np.broadcast_to(arr, (n,) + arr.shape).copy()

    def result_type(self, *arrays: Any) -> Any:
        return np.result_type(*arrays)

    def cast(self, x: np.ndarray, dtype: Any) -> np.ndarray:
        return x.astype(dtype, copy=False)

    def copy(self, x: np.ndarray) -> np.ndarray:
        return np.array(x, copy=True)

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

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

    def segment_reduce(self, op: str, values: np.ndarray, indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Reduce `values` (one entry per link) within each row of a CSR; empty rows get the identity."""
        n_rows = len(indptr) - 1
        ufunc = _REDUCERS[op]
        if op in ("any", "all"):
            values = values.astype(bool, copy=False)
        if len(values) == 0:
            return np.full((n_rows,) + values.shape[1:], identity_of(op, values.dtype), dtype=values.dtype)
        empty = indptr[1:] == indptr[:-1]
        if not empty.any():
            return ufunc.reduceat(values, indptr[:-1], axis=0)
        # reduceat needs strictly increasing starts: reduce the non-empty rows, give the others the identity
        out = np.full((n_rows,) + values.shape[1:], identity_of(op, values.dtype), dtype=values.dtype)
        out[~empty] = ufunc.reduceat(values, indptr[:-1][~empty], axis=0)
        return out

    def count(self, mask: np.ndarray | None, indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if mask is None:
            return np.diff(indptr)
        return np.bincount(rows[mask], minlength=len(indptr) - 1)

    def scatter_rows(self, out: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
        out[idx] = values

    def sparse_rows_times(self, indptr: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_cols: int, dense: np.ndarray) -> np.ndarray:
        """(sparse matrix with one row per CSR row) @ dense rows: weighted sums of large per-device values."""
        from scipy.sparse import csr_matrix

        flat = dense.reshape(dense.shape[0], -1)
        mat = csr_matrix((weights, cols, indptr), shape=(len(indptr) - 1, n_cols))
        return np.asarray(mat @ flat).reshape((len(indptr) - 1,) + dense.shape[1:])


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

    def result_type(self, *arrays: Any) -> Any:
        out = arrays[0].dtype
        for a in arrays[1:]:
            out = self.torch.promote_types(out, a.dtype)
        return out

    def cast(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def copy(self, x: Any) -> Any:
        return x.clone()

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

    def segment_reduce(self, op: str, values: Any, indptr: Any, rows: Any) -> Any:
        """Reduce `values` (one entry per link) within each row of a CSR; empty rows get the identity."""
        torch = self.torch
        n_rows = len(indptr) - 1
        if op in ("any", "all"):
            values = values.to(torch.bool)
            as_int = values.to(torch.uint8)
            red = self.segment_reduce("max" if op == "any" else "min", as_int, indptr, rows)
            empty = (indptr[1:] == indptr[:-1]).view((-1,) + (1,) * (red.dim() - 1))
            return torch.where(empty, torch.tensor(op == "all", device=self.device), red.to(torch.bool))
        ident = identity_of(op, values.dtype)
        out = torch.full((n_rows,) + tuple(values.shape[1:]), ident, dtype=values.dtype, device=self.device)
        if len(values) == 0:
            return out
        idx = rows.view((-1,) + (1,) * (values.dim() - 1)).expand_as(values)
        reduce = {"sum": "sum", "min": "amin", "max": "amax"}[op]
        return out.scatter_reduce(0, idx, values, reduce=reduce, include_self=True)

    def count(self, mask: Any, indptr: Any, rows: Any) -> Any:
        if mask is None:
            return self.torch.diff(indptr)
        return self.torch.bincount(rows[mask], minlength=len(indptr) - 1)

    def scatter_rows(self, out: Any, idx: Any, values: Any) -> None:
        out[idx] = values

    def sparse_rows_times(self, indptr: Any, cols: Any, weights: Any, n_cols: int, dense: Any) -> Any:
        """(sparse matrix with one row per CSR row) @ dense rows: weighted sums of large per-device values."""
        torch = self.torch
        flat = dense.reshape(dense.shape[0], -1)
        mat = torch.sparse_csr_tensor(indptr, cols, weights.to(flat.dtype), size=(len(indptr) - 1, n_cols))
        return (mat @ flat).reshape((len(indptr) - 1,) + tuple(dense.shape[1:]))


def backend_for(name: str | None = None, device: Any = None) -> NumpyBackend | TorchBackend:
    """The backend named `numpy` or `torch` (the latter on `device`)."""
    if name in (None, "numpy"):
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on the cpu only, not on {device!r}; use backend='torch'")
        return NumpyBackend()
    if name == "torch":
        return TorchBackend(device or "cpu")
    raise ValueError(f"unknown backend {name!r}: expected 'numpy' or 'torch'")
