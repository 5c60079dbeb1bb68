"""Fields: one value per device of a domain (`Field`) and one value per aligned neighbour (`NbrField`)."""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from .backend import identity_of, is_torch


class Domain:
    """The devices evaluating one part of the program this round, and how they sit inside the enclosing domain."""

    __slots__ = ("ids", "backend", "parent", "index_in_parent", "depth", "_hood", "_hood_source", "_index_cache")

    def __init__(self, ids: Any, backend: Any, parent: "Domain | None" = None, index_in_parent: Any = None, hood: Any = None):
        self.ids = ids
        self.backend = backend
        self.parent = parent
        self.index_in_parent = index_in_parent
        self.depth = 0 if parent is None else parent.depth + 1
        self._hood = hood
        self._index_cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def index_in(self, ancestor: "Domain") -> Any:
        """Positions of this domain's devices inside `ancestor` (a domain this one was carved from)."""
        key = id(ancestor)
        cached = self._index_cache.get(key)
        if cached is not None:
            return cached
        if self.parent is None:
            raise FieldError("a field from another round or another branch was used here")
        idx = self.index_in_parent if self.parent is ancestor else self.parent.index_in(ancestor)[self.index_in_parent]
        self._index_cache[key] = idx
        return idx

    @property
    def hood(self) -> "Hood":
        """The links over which this domain's devices hear their neighbours."""
        if self._hood is None:
            self._hood = self.parent.hood.restrict(self.index_in_parent, len(self.parent), self.backend)
        return self._hood


class Hood:
    """Inbox links of a domain in CSR form: device row `i` hears `neighbours[indptr[i]:indptr[i+1]]`."""

    __slots__ = ("indptr", "neighbours", "edge_data", "index_in_parent", "_rows", "_parent")

    def __init__(self, indptr: Any, neighbours: Any, edge_data: dict[str, Any], backend: Any, index_in_parent: Any = None, parent: "Hood | None" = None):
        self.indptr = indptr
        self.neighbours = neighbours
        self.edge_data = edge_data
        self.index_in_parent = index_in_parent
        self._parent = parent
        self._rows = None

    @property
    def n_links(self) -> int:
        return len(self.neighbours)

    def rows(self, backend: Any) -> Any:
        """The receiving row of every link."""
        if self._rows is None:
            self._rows = backend.rows_of(self.indptr)
        return self._rows

    def restrict(self, row_idx: Any, n_rows: int, backend: Any) -> "Hood":
        """The links of the rows `row_idx` only (row_idx ascending)."""
        keep_row = backend.zeros((n_rows,), bool)
        keep_row[row_idx] = True
        edges = backend.nonzero(keep_row[self.rows(backend)])
        counts = (self.indptr[1:] - self.indptr[:-1])[row_idx]
        data = {k: v[edges] for k, v in self.edge_data.items()}
        return Hood(backend.indptr_from_counts(counts), self.neighbours[edges], data, backend, edges, self)

    def index_in(self, ancestor: "Hood") -> Any:
        """Positions of this hood's links inside an enclosing domain's hood."""
        if self._parent is None:
            raise FieldError("a neighbour field from another round or another branch was used here")
        if self._parent is ancestor:
            return self.index_in_parent
        return self._parent.index_in(ancestor)[self.index_in_parent]


class FieldError(TypeError):
    """A field was used in a way the calculus does not allow."""


_BOOL_MESSAGE = (
    "the truth value of a field is per device, so Python `if`, `and`, `or` and `not` cannot decide it: "
    "use mux(cond, a, b) for a pointwise choice (both sides evaluated) or branch(cond, then_fn, else_fn) "
    "to split the devices into two domains; use &, | and ~ for logic on fields"
)


def _raw(x: Any) -> Any:
    return x.values if isinstance(x, Field) else x


class Field:
    """One value per device of a domain: `values` has one leading row per device (numpy array or torch tensor)."""

    __slots__ = ("values", "domain")
    __array_priority__ = 100

    def __init__(self, values: Any, domain: Domain):
        self.values = values
        self.domain = domain

    # -- domain handling -------------------------------------------------------------------
    def project(self, domain: Domain) -> "Field":
        """This field seen from a narrower domain (a branch inside the one it was computed in)."""
        if domain is self.domain:
            return self
        return Field(self.values[domain.index_in(self.domain)], domain)

    def _with(self, other: Any) -> tuple[Any, Any, Domain]:
        if isinstance(other, Field):
            if other.domain is self.domain:
                return self.values, other.values, self.domain
            if other.domain.depth > self.domain.depth:
                return self.project(other.domain).values, other.values, other.domain
            return self.values, other.project(self.domain).values, self.domain
        return self.values, other, self.domain

    def _binary(self, other: Any, op: Callable, reflected: bool = False) -> Any:
        if isinstance(other, NbrField):
            return other._binary(self, op, not reflected)
        a, b, dom = self._with(other)
        if isinstance(other, Field):
            a, b = _per_device(a, b)
        else:
            b = _trailing(b, a)
        return Field(op(b, a) if reflected else op(a, b), dom)

    # -- Python protocol -------------------------------------------------------------------
    def __bool__(self) -> bool:
        raise FieldError(_BOOL_MESSAGE)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        raise FieldError("a field cannot be iterated device by device inside a program; use .values outside it")

    def __getitem__(self, key: Any) -> "Field":
        """Index the per-device value (trailing axes): `pos[0]` is the x coordinate of every device."""
        key = key if isinstance(key, tuple) else (key,)
        return Field(self.values[(slice(None),) + key], self.domain)

    @property
    def shape(self) -> tuple:
        """Shape of each device's value."""
        return tuple(self.values.shape[1:])

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    def numpy(self) -> np.ndarray:
        return self.domain.backend.to_numpy(self.values)

    def astype(self, dtype: Any) -> "Field":
        return Field(self.values.astype(dtype) if not is_torch(self.values) else self.values.to(dtype), self.domain)

    def __repr__(self) -> str:
        return f"Field({self.numpy()!r})"

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    def __neg__(self): return Field(-self.values, self.domain)
    def __pos__(self): return self
    def __abs__(self): return Field(abs(self.values), self.domain)
    def __invert__(self): return Field(~self.values, self.domain)

    __hash__ = None  # type: ignore[assignment]


def _trailing(constant: Any, values: Any) -> Any:
    """A constant next to per-device values: numpy constants go to the values' backend."""
    if is_torch(values) and isinstance(constant, np.ndarray):
        import torch

        return torch.as_tensor(constant, device=values.device)
    return constant


class NbrField:
    """One value per aligned neighbour of every device of a domain, plus the device's own value.

    `values` has one row per inbox link of the domain's hood; `mask` (or None for all) marks the links whose
    sender is aligned; `self_value` has one row per device. Reductions run over the aligned neighbours.
    """

    __slots__ = ("domain", "self_value", "_values", "_source", "mask")
    __array_priority__ = 200

    def __init__(self, domain: Domain, self_value: Any, values: Any = None, mask: Any = None, source: Any = None):
        self.domain = domain
        self.self_value = self_value
        self._values = values
        self._source = source  # (array over all devices, link -> row index): a gather not yet done
        self.mask = mask

    @property
    def values(self) -> Any:
        """The neighbours' values, one row per inbox link."""
        if self._values is None:
            src, idx = self._source
            self._values = src[idx]
        return self._values

    def link_values(self, links: Any) -> Any:
        """The neighbours' values on the inbox links `links` only (a slice or index array), gathering just those."""
        if self._values is not None:
            return self._values[links]
        src, idx = self._source
        return src[idx[links]]

    @property
    def self(self) -> Field:
        """The device's own entry as a field."""
        return Field(self.self_value, self.domain)

    @property
    def hood(self) -> Hood:
        return self.domain.hood

    def __bool__(self) -> bool:
        raise FieldError(_BOOL_MESSAGE)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    # -- domain handling -------------------------------------------------------------------
    def project(self, domain: Domain) -> "NbrField":
        """This neighbour field seen from a narrower domain."""
        if domain is self.domain:
            return self
        rows = domain.index_in(self.domain)
        links = domain.hood.index_in(self.domain.hood)
        mask = None if self.mask is None else self.mask[links]
        return NbrField(domain, self.self_value[rows], self.values[links], mask)

    def _binary(self, other: Any, op: Callable, reflected: bool = False) -> "NbrField":
        me = self
        if isinstance(other, (Field, NbrField)) and other.domain is not self.domain:
            if other.domain.depth > self.domain.depth:
                me = self.project(other.domain)
            else:
                other = other.project(self.domain)
        dom = me.domain
        if isinstance(other, NbrField):
            s_o, v_o = other.self_value, other.values
            mask = me.mask if other.mask is None else (other.mask if me.mask is None else me.mask & other.mask)
        elif isinstance(other, Field):
            s_o = other.values
            v_o = other.values[dom.hood.rows(dom.backend)]
            mask = me.mask
        else:
            s_o = v_o = _trailing(other, me.self_value)
            mask = me.mask
        s_m, v_m = me.self_value, me.values
        if isinstance(other, (Field, NbrField)):
            s_m, s_o = _per_device(s_m, s_o)
            v_m, v_o = _per_device(v_m, v_o)
        if reflected:
            return NbrField(dom, op(s_o, s_m), op(v_o, v_m), mask)
        return NbrField(dom, op(s_m, s_o), op(v_m, v_o), mask)

    # -- reductions over neighbours -------------------------------------------------------
    def _reduce(self, op: str, include_self: bool, default: Any) -> Field:
        dom = self.domain
        be = dom.backend
        hood = dom.hood
        values = self.values
        rows = hood.rows(be) if (self.mask is not None or be.name == "torch") else None
        if self.mask is not None:
            values = be.where(_expand(self.mask, values), values, identity_of(op, values.dtype))
        out = be.segment_reduce(op, values, hood.indptr, rows)
        if include_self:
            out = _combine(op, out, self.self_value, be)
        else:
            counts = be.count(self.mask, hood.indptr, hood.rows(be) if self.mask is not None else rows)
            empty = counts == 0
            if default is not None:
                out = be.where(_expand(empty, out), _trailing(default, out) if not is_torch(out) else _as(out, default), out)
        return Field(out, dom)

    def sum(self, include_self: bool = False, default: Any = 0) -> Field:
        """Sum over aligned neighbours (and the device itself if asked); `default` where there are none."""
        if self.mask is None and self._values is None and _is_large(self._source[0]):
            return Field(self._sparse_sum(include_self), self.domain)
        return self._reduce("sum", include_self, default)

    def min(self, include_self: bool = False, default: Any = float("inf")) -> Field:
        """Minimum over aligned neighbours (and self if asked); `default` where there are none."""
        return self._reduce("min", include_self, default)

    def max(self, include_self: bool = False, default: Any = float("-inf")) -> Field:
        """Maximum over aligned neighbours (and self if asked); `default` where there are none."""
        return self._reduce("max", include_self, default)

    def any(self, include_self: bool = False, default: bool = False) -> Field:
        """Whether some aligned neighbour (or self if asked) holds."""
        return self._reduce("any", include_self, default)

    def all(self, include_self: bool = False, default: bool = True) -> Field:
        """Whether every aligned neighbour (and self if asked) holds."""
        return self._reduce("all", include_self, default)

    def count(self, include_self: bool = False) -> Field:
        """Number of aligned neighbours (plus one for self if asked)."""
        be = self.domain.backend
        hood = self.domain.hood
        counts = be.count(self.mask, hood.indptr, hood.rows(be))
        return Field(counts + 1 if include_self else counts, self.domain)

    def mean(self, include_self: bool = False, default: Any = float("nan")) -> Field:
        """Mean over aligned neighbours (and self if asked); `default` where there are none."""
        total = self.sum(include_self, default=0)
        n = self.count(include_self).values
        be = self.domain.backend
        n_safe = be.where(n == 0, 1, n)
        mean = total.values / _expand(n_safe, total.values)
        if not include_self:
            mean = be.where(_expand(n == 0, mean), _as(mean, default), mean)
        return Field(mean, self.domain)

    def weighted_sum(self, weights: "NbrField", include_self: bool = False) -> Field:
        """Sum of `weights * values` over aligned neighbours as one sparse product (no per-link copy of large values)."""
        dom = self.domain
        be = dom.backend
        hood = dom.hood
        w = weights.values
        mask = self.mask if weights.mask is None else (weights.mask if self.mask is None else self.mask & weights.mask)
        if mask is not None:
            w = be.where(mask, w, 0)
        if self._values is None:
            src, idx = self._source
            out = be.sparse_rows_times(hood.indptr, idx, w, len(src), src)
        else:
            out = be.segment_reduce("sum", self.values * _expand(w, self.values), hood.indptr, hood.rows(be))
        if include_self:
            out = out + self.self_value * _expand(weights.self_value, self.self_value)
        return Field(out, dom)

    def _sparse_sum(self, include_self: bool) -> Any:
        dom = self.domain
        be = dom.backend
        src, idx = self._source
        ones = be.full((len(idx),), 1.0, dtype=src.dtype)
        out = be.sparse_rows_times(dom.hood.indptr, idx, ones, len(src), src)
        return out + self.self_value if include_self else out

    def _arg(self, op: str, include_self: bool, default: Any) -> Field:
        dom = self.domain
        be = dom.backend
        hood = dom.hood
        rows = hood.rows(be)
        values = self.values
        if len(values) and values.ndim != 1:
            raise FieldError(f"arg{op} needs one number per neighbour, got values of shape {tuple(values.shape[1:])}")
        best = self._reduce(op, include_self, None).values
        ids = hood.neighbours
        hit = values == best[rows]
        if self.mask is not None:
            hit = hit & self.mask
        big = np.iinfo(np.int64).max
        cand = be.where(hit, ids, big)
        winner = be.segment_reduce("min", cand, hood.indptr, rows)
        if include_self:
            winner = be.where(self.self_value == best, be.where(dom.ids < winner, dom.ids, winner), winner)
        return Field(be.where(winner == big, default, winner), dom)

    def argmin(self, include_self: bool = False, default: int = -1) -> Field:
        """Id of the aligned neighbour (or self if asked) with the least value; ties go to the lowest id."""
        return self._arg("min", include_self, default)

    def argmax(self, include_self: bool = False, default: int = -1) -> Field:
        """Id of the aligned neighbour (or self if asked) with the greatest value; ties go to the lowest id."""
        return self._arg("max", include_self, default)

    def __repr__(self) -> str:
        return f"NbrField(self={self.domain.backend.to_numpy(self.self_value)!r}, links={self.hood.n_links})"

    def __neg__(self): return NbrField(self.domain, -self.self_value, -self.values, self.mask)
    def __abs__(self): return NbrField(self.domain, abs(self.self_value), abs(self.values), self.mask)
    def __invert__(self): return NbrField(self.domain, ~self.self_value, ~self.values, self.mask)

    __hash__ = None  # type: ignore[assignment]


_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "matmul": operator.matmul,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
}
_COMPARE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}


def _install_operators(cls: type) -> None:
    """Pointwise Python operators (and their reflected forms) through the class's `_binary`."""
    for name, op in {**_BINARY, **_COMPARE}.items():
        setattr(cls, f"__{name}__", lambda self, o, op=op: self._binary(o, op))
        if name in _BINARY:
            setattr(cls, f"__r{name}__", lambda self, o, op=op: self._binary(o, op, True))


_install_operators(Field)
_install_operators(NbrField)


def _per_device(a: Any, b: Any) -> tuple[Any, Any]:
    """Broadcast two per-device arrays row by row: a value with fewer axes is repeated over the other's trailing axes."""
    da, db = a.ndim, b.ndim
    if da == db:
        return a, b
    if da < db:
        return a.reshape(tuple(a.shape) + (1,) * (db - da)), b
    return a, b.reshape(tuple(b.shape) + (1,) * (da - db))


def _is_large(src: Any) -> bool:
    return src.ndim > 1 and int(np.prod(src.shape[1:])) >= 64 and src.dtype.is_floating_point if is_torch(src) else (
        src.ndim > 1 and int(np.prod(src.shape[1:])) >= 64 and src.dtype.kind == "f"
    )


def _as(like: Any, value: Any) -> Any:
    if is_torch(like):
        import torch

        try:
            return torch.as_tensor(value, dtype=like.dtype, device=like.device)
        except (RuntimeError, TypeError):
            return torch.as_tensor(value, device=like.device)
    return value


def _expand(mask: Any, like: Any) -> Any:
    """A per-row array reshaped to broadcast over `like`'s trailing axes."""
    extra = like.ndim - mask.ndim
    return mask if extra <= 0 else mask.reshape(tuple(mask.shape) + (1,) * extra)


def _combine(op: str, reduced: Any, own: Any, be: Any) -> Any:
    if op == "sum":
        return reduced + own
    if op == "min":
        return be.where(own < reduced, own, reduced) if is_torch(own) else np.minimum(reduced, own)
    if op == "max":
        return be.where(own > reduced, own, reduced) if is_torch(own) else np.maximum(reduced, own)
    if op == "any":
        return reduced | own.astype(bool) if not is_torch(own) else reduced | own.bool()
    return reduced & own.astype(bool) if not is_torch(own) else reduced & own.bool()


_TORCH_UFUNC_NAMES = {"absolute": "abs", "true_divide": "div", "power": "pow", "negative": "neg"}


def _apply_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    """numpy ufuncs on fields: `np.minimum(a, b)`, `np.sqrt(f)`; torch values dispatch to the torch function."""
    if method != "__call__" or kwargs.get("out") is not None:
        return NotImplemented
    nbr = next((x for x in inputs if isinstance(x, NbrField)), None)
    if nbr is not None:
        parts = [x if isinstance(x, NbrField) else x for x in inputs]
        first = parts[0] if isinstance(parts[0], NbrField) else nbr
        if len(parts) == 1:
            return NbrField(first.domain, _call(ufunc, (first.self_value,)), _call(ufunc, (first.values,)), first.mask)
        a, b = parts
        if isinstance(a, NbrField):
            return a._binary(b, lambda x, y: _call(ufunc, (x, y)))
        return b._binary(a, lambda x, y: _call(ufunc, (x, y)), reflected=True)
    fields = [x for x in inputs if isinstance(x, Field)]
    deepest = max(fields, key=lambda f: f.domain.depth).domain
    raw = [x.project(deepest).values if isinstance(x, Field) else x for x in inputs]
    return Field(_call(ufunc, tuple(raw)), deepest)


def _call(ufunc: Any, raw: tuple) -> Any:
    if any(is_torch(r) for r in raw):
        import torch

        fn = getattr(torch, _TORCH_UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__))
        like = next(r for r in raw if is_torch(r))
        return fn(*[r if is_torch(r) else torch.as_tensor(r, device=like.device) for r in raw])
    return ufunc(*raw)
