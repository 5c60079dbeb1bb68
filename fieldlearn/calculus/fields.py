"""Fields: one value per device of a domain (`Field`) and one value per aligned neighbour (`NbrField`).

A neighbour field of large values (models: float rows of at least `backend.LARGE_ELEMENTS` elements) keeps its
link values as a pending gather `(rows, row of every link)` for as long as it can: projection onto a branch, `mux`
and reductions work on the gather's indices, and sums over neighbours are sparse products over device rows, so
memory stays O(devices x values + links) and no value is copied once per link.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from .backend import (FAST_PATH_MIN_ENTRIES, dtype_kind, expand_to, identity_of, is_large, is_torch, row_size,
                      trailing_aligned)
from .paths import Path, format_path

#: Most bytes of large values a reduction that cannot be a sparse product (min, max, any, all) gathers at once.
CHUNK_BYTES = 32 * 2**20


class Domain:
    """The devices evaluating one part of the program this round, and how they sit inside the enclosing domain."""

    __slots__ = ("ids", "backend", "parent", "index_in_parent", "depth", "ordered", "_hood", "_index_cache",
                 "_links_cache")

    def __init__(self, ids: Any, backend: Any, parent: "Domain | None" = None, index_in_parent: Any = None,
                 hood: Any = None, ordered: bool = False):
        self.ids = ids
        self.backend = backend
        self.ordered = ordered  # ids are exactly 0, 1, ..., len - 1: device-indexed arrays are read by slicing
        self.parent = parent
        self.index_in_parent = index_in_parent
        self.depth = 0 if parent is None else parent.depth + 1
        self._hood = hood
        self._index_cache: dict[int, Any] | None = None
        self._links_cache: dict[int, tuple] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def index_in(self, ancestor: "Domain") -> Any:
        """Positions of this domain's devices inside `ancestor` (a domain this one was carved from)."""
        if self.parent is ancestor:
            return self.index_in_parent
        if self.parent is None:
            raise FieldError("a field from another round or another branch was used here")
        if self._index_cache is None:
            self._index_cache = {}
        key = id(ancestor)
        idx = self._index_cache.get(key)
        if idx is None:
            idx = self._index_cache[key] = self.parent.index_in(ancestor)[self.index_in_parent]
        return idx

    @property
    def hood(self) -> "Hood":
        """The links over which this domain's devices hear their neighbours."""
        if self._hood is None:
            self._hood = self.parent.hood.restrict(self.index_in_parent, len(self.parent))
        return self._hood

    def take(self, by_device: Any) -> Any:
        """The rows of a device-indexed array (a store, a sensor) for this domain's devices, as a copy."""
        if self.ordered:
            return self.backend.head_copy(by_device, len(self.ids))
        return self.backend.take(by_device, self.ids)

    def view(self, by_device: Any) -> Any:
        """The rows of a device-indexed array for this domain's devices, only to be read."""
        return by_device[: len(self.ids)] if self.ordered else by_device[self.ids]

    def put(self, by_device: Any, rows: Any) -> None:
        """Write `rows` (or one value) into a device-indexed array at this domain's devices."""
        if self.ordered:
            by_device[: len(self.ids)] = rows
        else:
            by_device[self.ids] = rows

    def on_links(self, rows: Any) -> Any:
        """Every link's copy of its receiving device's row (`rows[hood.rows]`), gathered once per array and round."""
        if rows is self.ids and self.ordered:  # the ids 0..n-1 on links are the receiving rows themselves
            return self.hood.rows
        cache = self._links_cache
        if cache is None:
            cache = self._links_cache = {}
        hit = cache.get(id(rows))
        if hit is not None and hit[0] is rows:
            return hit[1]
        out = self.backend.take(rows, self.hood.rows)
        cache[id(rows)] = (rows, out)
        return out

    def constant_rows(self, value: Any, trailing: tuple | None = None) -> Any:
        """`value` on every device of the domain (one row each)."""
        be = self.backend
        if trailing and np.ndim(value) == 0 and not is_torch(value):
            return be.full((len(self),) + trailing, value)
        return be.broadcast_scalar(value, len(self))


class Hood:
    """Inbox links of a domain in CSR form: device row `i` hears `neighbours[indptr[i]:indptr[i+1]]`."""

    __slots__ = ("indptr", "neighbours", "edge_data", "backend", "index_in_parent", "_parent", "_rows", "_segments")

    def __init__(self, indptr: Any, neighbours: Any, edge_data: dict[str, Any], backend: Any,
                 index_in_parent: Any = None, parent: "Hood | None" = None, rows: Any = None, segments: Any = None):
        self.indptr = indptr
        self.neighbours = neighbours
        self.edge_data = edge_data
        self.backend = backend
        self.index_in_parent = index_in_parent
        self._parent = parent
        self._rows = rows
        self._segments = segments

    @property
    def n_links(self) -> int:
        return len(self.neighbours)

    @property
    def rows(self) -> Any:
        """The receiving row of every link."""
        if self._rows is None:
            self._rows = self.backend.rows_of(self.indptr)
        return self._rows

    @property
    def segments(self) -> Any:
        """The rows prepared for segment reductions (which rows are empty, where the others start)."""
        if self._segments is None:
            be = self.backend
            self._segments = be.segments(self.indptr, self.rows if be.name == "torch" else None)
        return self._segments

    def reduce(self, op: str, values: Any, masked: bool) -> Any:
        """Segment reduction of per-link `values` over every device's links (empty rows: the identity)."""
        needs_rows = masked or self.backend.name == "torch"
        seg = self.segments
        if needs_rows and seg.rows is None:
            seg.rows = self.rows
        return self.backend.segment_reduce(op, values, seg)

    def reduce_where(self, op: str, values: Any, mask: Any, identity: Any) -> Any:
        """Segment reduction of per-link `values` where `mask` holds, `identity` (a scalar or one row) elsewhere."""
        seg = self.segments
        if seg.rows is None:
            seg.rows = self.rows
        return self.backend.segment_reduce_where(op, values, mask, seg, identity)

    def count(self, mask: Any) -> Any:
        """Links per device (only those where `mask` holds, if given)."""
        seg = self.segments
        if mask is not None and seg.rows is None:
            seg.rows = self.rows
        return self.backend.count(mask, seg)

    def first_selected(self, mask: Any) -> tuple[Any, Any]:
        """For every row: whether a link where `mask` holds arrives there, and the first such link (0 where none)."""
        be = self.backend
        if self.n_links < FAST_PATH_MIN_ENTRIES:  # fewer calls: count the selected links of every row
            indptr, keep = self.selected(mask)
            has = indptr[1:] > indptr[:-1]
            return has, keep[be.where(has, indptr[:-1], 0)] if len(keep) else be.zeros((len(has),), np.int64)
        hits = be.nonzero(mask)
        rows = self.rows[hits]
        starts = be.run_starts(rows)  # each row's first selected link, among the selected ones
        has = be.zeros((len(self.indptr) - 1,), bool)
        has[rows[starts]] = True
        first = be.zeros((len(self.indptr) - 1,), np.int64)
        first[rows[starts]] = hits[starts]
        return has, first

    def selected(self, mask: Any) -> tuple[Any, Any]:
        """The CSR of the links where `mask` holds: (indptr, positions of those links)."""
        be = self.backend
        return be.indptr_from_counts(self.count(mask)), be.nonzero(mask)

    def with_links(self, neighbours: Any, edge_data: dict[str, Any]) -> "Hood":
        """A hood with the same rows (indptr) and other senders: the receiving rows and segments are shared."""
        return Hood(self.indptr, neighbours, edge_data, self.backend, rows=self._rows, segments=self._segments)

    def restrict(self, row_idx: Any, n_rows: int) -> "Hood":
        """The links of the rows `row_idx` only (row_idx ascending)."""
        be = self.backend
        keep_row = be.zeros((n_rows,), bool)
        keep_row[row_idx] = True
        edges = be.nonzero(keep_row[self.rows])
        counts = (self.indptr[1:] - self.indptr[:-1])[row_idx]
        data = {k: v[edges] for k, v in self.edge_data.items()}
        return Hood(be.indptr_from_counts(counts), self.neighbours[edges], data, be, edges, self)

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


def rows_in(leaf: Any, domain: Domain, what: str, trailing: tuple | None = None, path: Path | None = None) -> Any:
    """A value as one row per device of `domain`: fields are projected, constants broadcast (`trailing`: the per-device
    shape a scalar constant takes, e.g. a store's). `what` (at `path`) names the value in errors."""
    if isinstance(leaf, Field):
        return leaf.project(domain).values
    if isinstance(leaf, NbrField):
        where = what if path is None else f"{what} at {format_path(path)}"
        raise FieldError(f"{where} is a neighbour field; reduce it to one value per device first (e.g. .min(), .sum())")
    return domain.constant_rows(leaf, trailing)


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
        if isinstance(other, Field):
            if other.domain is self.domain:
                a, b, dom = self.values, other.values, self.domain
            else:
                a, b, dom = self._with(other)
            if a.ndim != b.ndim:
                a, b = trailing_aligned(a, b)
        elif isinstance(other, NbrField):
            return other._binary(self, op, not reflected)
        else:
            a, dom = self.values, self.domain
            b = _trailing(other, a)
        return Field(op(b, a) if reflected else op(a, b), dom)

    # -- Python protocol -------------------------------------------------------------------
    def __bool__(self) -> bool:
        raise FieldError(_BOOL_MESSAGE)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        raise FieldError("a field cannot be iterated device by device inside a program; use field operations")

    def __getitem__(self, key: Any) -> "Field":
        """Index into each device's value (e.g. `f[0]` takes the first component of every per-device vector)."""
        key = key if isinstance(key, tuple) else (key,)
        return Field(self.values[(slice(None),) + key], self.domain)

    @property
    def shape(self) -> tuple:
        """Shape of each device's value."""
        return tuple(self.values.shape[1:])

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    @property
    def kind(self) -> str:
        """The numpy kind letter of the values' dtype ('f', 'c', 'i', 'u', 'b'), for numpy arrays and torch tensors."""
        return dtype_kind(self.values.dtype)

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
    if type(constant) is float or type(constant) is int:
        return constant
    if is_torch(values) and isinstance(constant, np.ndarray):
        import torch

        return torch.as_tensor(constant, device=values.device)
    return constant


class NbrField:
    """One value per aligned neighbour of every device of a domain, plus the device's own value.

    `values` has one row per inbox link of the domain's hood; `mask` (or None for all) marks the links whose
    sender is aligned; `self_value` has one row per device. Reductions run over the aligned neighbours.
    `source=(rows, index)` gives the link values as the pending gather `rows[index]`.
    """

    __slots__ = ("domain", "_self", "_self_of", "_values", "_source", "mask", "_memo")
    __array_priority__ = 200

    def __init__(self, domain: Domain, self_value: Any, values: Any = None, mask: Any = None, source: Any = None,
                 self_of: Any = None):
        self.domain = domain
        self._self = self_value
        self._self_of = self_of  # when self_value is None: a device-indexed array holding the own entries, or a
        # function computing them (they are made only if asked for)
        self._values = values
        self._source = source  # (array of rows, link -> row index): a gather not yet done
        self.mask = mask
        self._memo: dict | None = None

    @property
    def self_value(self) -> Any:
        """The device's own value, one row per device."""
        if self._self is None:
            of = self._self_of
            self._self = of() if callable(of) else self.domain.take(of)
        return self._self

    @property
    def values(self) -> Any:
        """The neighbours' values, one row per inbox link."""
        if self._values is None:
            src, idx = self._source
            self._values = self.domain.backend.take(src, idx)
        return self._values

    def link_values(self, links: Any) -> Any:
        """The neighbours' values on the inbox links `links` only (a slice or index array), gathering just those."""
        if self._values is not None:
            return self._values[links]
        src, idx = self._source
        return src[idx[links]]

    def _large_source(self) -> tuple | None:
        """(rows, index) when the link values are a pending gather of large rows, kept lazy; else None."""
        if self._values is None and is_large(self._source[0]):
            return self._source
        return None

    @property
    def self(self) -> Field:
        """The device's own entry as a field."""
        return Field(self.self_value, self.domain)

    @property
    def hood(self) -> Hood:
        return self.domain.hood

    @property
    def kind(self) -> str:
        """The numpy kind letter of the values' dtype ('f', 'c', 'i', 'u', 'b'), for numpy arrays and torch tensors;
        read from whatever is at hand, so that asking never builds the own values (a copy of every large row)."""
        for at_hand in (self._self, self._values, None if self._source is None else self._source[0]):
            if at_hand is not None:
                return dtype_kind(at_hand.dtype)
        return dtype_kind(self.self_value.dtype)

    def __bool__(self) -> bool:
        raise FieldError(_BOOL_MESSAGE)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    # -- domain handling -------------------------------------------------------------------
    def project(self, domain: Domain) -> "NbrField":
        """This neighbour field seen from a narrower domain (large values stay a pending gather)."""
        if domain is self.domain:
            return self
        rows = domain.index_in(self.domain)
        links = domain.hood.index_in(self.domain.hood)
        mask = None if self.mask is None else self.mask[links]
        own = None if self._self is None and not callable(self._self_of) else self.self_value[rows]
        lazy = self._large_source()
        if lazy is not None:
            src, idx = lazy
            return NbrField(domain, own, mask=mask, source=(src, idx[links]), self_of=None if own is not None else self._self_of)
        return NbrField(domain, own, self.values[links], mask, self_of=None if own is not None else self._self_of)

    def _common(self, other: Any) -> tuple["NbrField", Any]:
        """Self and a field or neighbour field over one domain (the deeper of the two)."""
        if isinstance(other, (Field, NbrField)) and other.domain is not self.domain:
            if other.domain.depth > self.domain.depth:
                return self.project(other.domain), other
            return self, other.project(self.domain)
        return self, other

    def _binary(self, other: Any, op: Callable, reflected: bool = False) -> "NbrField":
        me, other = self._common(other)
        dom = me.domain
        if isinstance(other, NbrField):
            mask = _and(me.mask, other.mask)
            lazy_m, lazy_o = me._large_source(), other._large_source()
            if lazy_m is not None and lazy_o is not None and lazy_m[1] is lazy_o[1] and _cheaper_lazy(lazy_m[0], dom):
                sm, so = trailing_aligned(lazy_m[0], lazy_o[0])
                return NbrField(dom, None, mask=mask, source=(op(so, sm) if reflected else op(sm, so), lazy_m[1]),
                                self_of=_lazy_own(op, me, other, reflected))
            v_o = other.values
        elif isinstance(other, Field):
            s_o = other.values
            v_o = dom.on_links(other.values)
            mask = me.mask
        else:
            s_o = v_o = _trailing(other, me.self_value)
            mask = me.mask
            lazy = me._large_source()
            if lazy is not None and _cheaper_lazy(lazy[0], dom):
                src = op(s_o, lazy[0]) if reflected else op(lazy[0], s_o)
                return NbrField(dom, None, mask=mask, source=(src, lazy[1]),
                                self_of=_lazy_own(op, me, s_o, reflected, constant=True))
        v_m = me.values
        if isinstance(other, NbrField):
            v_m, v_o = trailing_aligned(v_m, v_o)
            own = _lazy_own(op, me, other, reflected)
        elif isinstance(other, Field):
            v_m, v_o = trailing_aligned(v_m, v_o)
            own = _lazy_own(op, me, s_o, reflected)
        else:
            own = _lazy_own(op, me, s_o, reflected, constant=True)
        return NbrField(dom, None, op(v_o, v_m) if reflected else op(v_m, v_o), mask, self_of=own)

    def _unary(self, fn: Callable) -> "NbrField":
        lazy = self._large_source()
        if lazy is not None and _cheaper_lazy(lazy[0], self.domain):
            return NbrField(self.domain, None, mask=self.mask, source=(fn(lazy[0]), lazy[1]),
                            self_of=lambda: fn(self.self_value))
        return NbrField(self.domain, fn(self.self_value), fn(self.values), self.mask)

    # -- reductions over neighbours -------------------------------------------------------
    def _selected(self, where: "NbrField | None") -> tuple["NbrField", Any]:
        """This field over the domain of `where` (if deeper) and the links to reduce over: aligned and selected."""
        if where is None:
            return self, self.mask
        if not isinstance(where, NbrField):
            raise FieldError(f"where= takes a boolean neighbour field (e.g. nbr_ids() == parent), got {type(where).__name__}")
        me, sel = self._common(where)
        if isinstance(sel, Field):  # pragma: no cover - _common keeps neighbour fields
            raise FieldError("where= takes a boolean neighbour field")
        sel_values = sel.values
        if sel.kind != "b" or sel_values.ndim != 1:
            raise FieldError(f"where= needs one boolean per neighbour, got values of dtype {sel_values.dtype} "
                             f"and shape {tuple(sel_values.shape[1:])} per neighbour")
        return me, _and(_and(me.mask, sel.mask), sel_values)

    def _reduced(self, op: str, links: Any, strong: bool) -> Any:
        """`op` over the links where `links` holds (all if None); rows without any get the identity. Remembered for
        small values, so that e.g. `argmin` and `min` of one neighbour field reduce once."""
        be = self.domain.backend
        lazy = self._large_source()
        if lazy is not None:
            if op == "sum":
                return self._sparse_sum(links, None, be.constant_row(1.0).dtype if strong else lazy[0].dtype)
            return self._chunked_reduce(op, links, strong)
        key = (op, id(links), strong)
        memo = self._memo
        if memo is not None:
            hit = memo.get(key)
            if hit is not None and hit[0] is links:
                return hit[1]
        values = self.values
        if links is None:
            out = self.hood.reduce(op, values, False)
        else:
            out = self.hood.reduce_where(op, values, links, _identity(op, values, be, strong))
        if memo is None:
            self._memo = memo = {}
        memo[key] = (links, out)
        return out

    def _reduce(self, op: str, include_self: bool, default: Any, where: "NbrField | None" = None) -> Field:
        me, links = self._selected(where)
        dom = me.domain
        be = dom.backend
        out = me._reduced(op, links, where is not None)
        if include_self:
            return Field(_combine(op, out, me.self_value, be), dom)
        if default is not None:
            out = _with_default(out, default, op, links, me.hood, be)
        return Field(out, dom)

    def sum(self, include_self: bool = False, default: Any = 0, where: "NbrField | None" = None,
            initial: Any = None) -> Field:
        """Sum over aligned neighbours (those where `where` holds, if given; and the device itself if asked);
        `default` where there are none; plus `initial` (a field or a number, as numpy's `initial`) if given. Large
        values (models) are summed as one sparse product, and `initial` is added into that product's own array:
        the same values as `initial + sum`, without another array the size of every device's values."""
        if isinstance(initial, Field):
            onto = self._sum_onto(initial, include_self, default, where)
            if onto is not None:
                return onto
        total = self._reduce("sum", include_self, default, where)
        return total if initial is None else initial + total

    def _sum_onto(self, initial: Field, include_self: bool, default: Any, where: "NbrField | None") -> Field | None:
        """`initial + sum` of large values without another array the size of them all: `initial` handed into the
        sparse product where no default or self value is to be applied, else added into the product's own array;
        None for small values or an `initial` of another shape (the caller adds it as usual)."""
        me, links = self._selected(where)
        lazy = me._large_source()
        if lazy is None:
            return None
        dom = me.domain
        be = dom.backend
        add = initial.project(dom).values
        src = lazy[0]
        if tuple(add.shape) != (len(dom),) + tuple(src.shape[1:]):
            return None
        identity = default is None or (_is_identity(default, "sum", src.dtype) and _keeps_dtype(src, default, be))
        if identity and not include_self and add.dtype == src.dtype:
            dtype = be.constant_row(1.0).dtype if where is not None else src.dtype
            return Field(me._sparse_sum(links, None, dtype, initial=add), dom)
        total = self._reduce("sum", include_self, default, where)
        out = total.values
        if tuple(out.shape) != tuple(add.shape) or be.result_type(out, add) != out.dtype:
            return initial + total
        out += add  # the product is this call's own array
        return total

    def min(self, include_self: bool = False, default: Any = float("inf"), where: "NbrField | None" = None) -> Field:
        """Minimum over aligned neighbours (where `where` holds; and self if asked); `default` where there are none
        (None: the identity, +inf or the dtype's largest integer)."""
        return self._reduce("min", include_self, default, where)

    def max(self, include_self: bool = False, default: Any = float("-inf"), where: "NbrField | None" = None) -> Field:
        """Maximum over aligned neighbours (where `where` holds; and self if asked); `default` where there are none
        (None: the identity, -inf or the dtype's least integer)."""
        return self._reduce("max", include_self, default, where)

    def any(self, include_self: bool = False, default: bool = False, where: "NbrField | None" = None) -> Field:
        """Whether some aligned neighbour (where `where` holds; or self if asked) holds."""
        return self._reduce("any", include_self, default, where)

    def all(self, include_self: bool = False, default: bool = True, where: "NbrField | None" = None) -> Field:
        """Whether every aligned neighbour (where `where` holds; and self if asked) holds."""
        return self._reduce("all", include_self, default, where)

    def count(self, include_self: bool = False, where: "NbrField | None" = None) -> Field:
        """Number of aligned neighbours (where `where` holds; plus one for self if asked)."""
        me, links = self._selected(where)
        counts = me.hood.count(links)
        return Field(counts + 1 if include_self else counts, me.domain)

    def mean(self, include_self: bool = False, default: Any = float("nan"), where: "NbrField | None" = None) -> Field:
        """Mean over aligned neighbours (where `where` holds; and self if asked); `default` where there are none."""
        total = self.sum(include_self, default=0, where=where)
        n = self.count(include_self, where=where).values
        be = total.domain.backend
        n_safe = be.where(n == 0, 1, n)
        mean = total.values / expand_to(n_safe, total.values)
        if not include_self:
            mean = be.where(expand_to(n == 0, mean), _as(mean, default), mean)
        return Field(mean, total.domain)

    def pick(self, where: "NbrField", otherwise: Any) -> Field:
        """The value of the neighbour where `where` holds (of the first such aligned link, where several are),
        `otherwise` (a field or a constant) on devices where it holds for none: `mux(where.any(),
        self.sum(where=where), otherwise)` for a selection of at most one link (the dtype is the two sides'
        promotion), as one gather of the neighbours' rows (for large values: no per-link copy and no second array
        the size of all devices' values)."""
        me, links = self._selected(where)
        dom = me.domain
        be = dom.backend
        hood = me.hood
        source, idx = me._source if me._values is None else (me._values, None)
        other = rows_in(otherwise, dom, "pick's otherwise", tuple(source.shape[1:]))
        dtype = be.result_type(source, other)
        if links is None:
            has = hood.indptr[1:] > hood.indptr[:-1]
            first = be.where(has, hood.indptr[:-1], 0)  # each device's first link (any link where none is)
        else:
            has, first = hood.first_selected(links)
        if not bool(has.any()):  # nobody has a selected link: otherwise everywhere, with the values' shape
            shape = (len(dom),) + tuple(source.shape[1:])
            return Field(be.cast(be.broadcast_rows(expand_to(other, source), shape), dtype), dom)
        out = be.cast(be.take(source, first if idx is None else idx[first]), dtype)
        none = be.nonzero(~has)
        if len(none):
            out[none] = be.cast(expand_to(other[none], out[none]), dtype)
        return Field(out, dom)

    def weighted_sum(self, weights: "NbrField", include_self: bool = False) -> Field:
        """Sum of `weights * values` over aligned neighbours as one sparse product (no per-link copy of large values)."""
        dom = self.domain
        be = dom.backend
        hood = dom.hood
        w = weights.values
        mask = _and(self.mask, weights.mask)
        if self._values is None:
            out = self._sparse_sum(mask, w, None)
        else:
            if mask is not None:
                w = be.where(mask, w, 0)
            out = hood.reduce("sum", self.values * expand_to(w, self.values), True)
        if include_self:
            out = out + self.self_value * expand_to(weights.self_value, self.self_value)
        return Field(out, dom)

    def _sparse_sum(self, links: Any, weights: Any, dtype: Any, initial: Any = None) -> Any:
        """Sum over the links where `links` holds (all if None) of `weights` (ones of `dtype` if None) times the
        pending gather's rows (plus `initial`, one row per device), as one sparse product: links that are not summed
        are not in the product."""
        be = self.domain.backend
        hood = self.domain.hood
        src, idx = self._source
        if links is None:
            indptr, cols = hood.indptr, idx
        else:
            indptr, keep = hood.selected(links)
            cols = be.take(idx, keep)
            weights = None if weights is None else be.take(weights, keep)
        if weights is None:
            weights = be.full((len(cols),), 1.0, dtype=dtype)
        return be.sparse_rows_times(indptr, cols, weights, len(src), src, initial)

    def _chunked_reduce(self, op: str, links: Any, strong: bool) -> Any:
        """min/max/any/all over a pending gather of large rows, gathering at most `CHUNK_BYTES` of them at once."""
        be = self.domain.backend
        hood = self.domain.hood
        src, idx = self._source
        item = src.element_size() if is_torch(src) else src.itemsize
        budget = max(1, CHUNK_BYTES // max(1, row_size(src) * item))  # links per chunk
        indptr = be.to_numpy(hood.indptr)
        n_rows = len(indptr) - 1
        bounds = [0]
        while bounds[-1] < n_rows:
            start = bounds[-1]
            stop = int(np.searchsorted(indptr, indptr[start] + budget, side="right")) - 1
            bounds.append(min(n_rows, max(stop, start + 1)))
        parts = []
        for start, stop in zip(bounds[:-1], bounds[1:]) if n_rows else [(0, 0)]:
            a, b = int(indptr[start]), int(indptr[stop])
            sub = Hood(hood.indptr[start:stop + 1] - hood.indptr[start], idx[a:b], {}, be)
            values = be.take(src, idx[a:b])
            if links is not None:
                values = be.where(expand_to(links[a:b], values), values, _identity(op, values, be, strong))
            parts.append(sub.reduce(op, values, links is not None))
        return parts[0] if len(parts) == 1 else be.concat(parts)

    def _arg(self, op: str, include_self: bool, default: Any, where: "NbrField | None") -> Field:
        me, links = self._selected(where)
        dom = me.domain
        be = dom.backend
        values = me.values
        if len(values) and values.ndim != 1:
            raise FieldError(f"arg{op} needs one number per neighbour, got values of shape {tuple(values.shape[1:])}")
        best = me._reduce(op, include_self, None, where).values
        hit = _and(links, values == dom.on_links(best))
        big = np.iinfo(np.int64).max
        winner = dom.hood.reduce_where("min", dom.hood.neighbours, hit, big)  # the lowest id among the best
        if include_self:
            winner = be.where(me.self_value == best, be.where(dom.ids < winner, dom.ids, winner), winner)
        return Field(be.where(winner == big, default, winner), dom)

    def argmin(self, include_self: bool = False, default: int = -1, where: "NbrField | None" = None) -> Field:
        """Id of the aligned neighbour (where `where` holds, if given; or self if asked) with the least value; ties
        go to the lowest id; `default` where there is none."""
        return self._arg("min", include_self, default, where)

    def argmax(self, include_self: bool = False, default: int = -1, where: "NbrField | None" = None) -> Field:
        """Id of the aligned neighbour (where `where` holds, if given; or self if asked) with the greatest value; ties
        go to the lowest id; `default` where there is none."""
        return self._arg("max", include_self, default, where)

    def __repr__(self) -> str:
        return f"NbrField(self={self.domain.backend.to_numpy(self.self_value)!r}, links={self.hood.n_links})"

    def __neg__(self): return self._unary(operator.neg)
    def __abs__(self): return self._unary(abs)
    def __invert__(self): return self._unary(operator.invert)

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


# -- mux over neighbour fields ----------------------------------------------------------------------


def mux_neighbours(cond: Any, a: Any, b: Any) -> NbrField:
    """Pointwise choice over the links and the own entries, where some of `cond`, `a`, `b` is a neighbour field.

    Fields count as their receiving device's value on every link, constants as the same value everywhere. Large
    values stay a pending gather: the choice is made on the gather's indices, over the rows of both sides. The own
    entries are chosen only when asked for."""
    deepest = None
    for v in (cond, a, b):
        if isinstance(v, (Field, NbrField)) and (deepest is None or v.domain.depth > deepest.depth):
            deepest = v.domain
    be = deepest.backend
    c, x, y = _Side(cond, deepest), _Side(a, deepest), _Side(b, deepest)
    mask = _and(_and(c.mask, x.mask), y.mask)
    own = lambda: be.where(*trailing_aligned(c.own(), x.own(), y.own()))  # noqa: E731
    if (x.large or y.large) and x.src is not None and y.src is not None \
            and len(x.src) + len(y.src) <= 2 * deepest.hood.n_links:
        return NbrField(deepest, None, mask=mask, source=_choose(c.links(), x, y, deepest), self_of=own)
    links = be.where(*trailing_aligned(c.links(), x.links(), y.links()))
    return NbrField(deepest, None, links, mask, self_of=own)


class _Side:
    """One argument of a mux over neighbour fields, seen from its domain: its own rows, and its link values as rows
    `src[idx]` where that gather is still pending (`idx` None: every link takes row 0, a constant) or per link."""

    __slots__ = ("dom", "nbr", "rows", "src", "idx", "dense", "mask", "large")

    def __init__(self, v: Any, dom: Domain):
        self.dom, self.nbr, self.rows, self.mask = dom, None, None, None
        self.src = self.idx = self.dense = None
        if isinstance(v, NbrField):
            n = self.nbr = v.project(dom)
            self.mask = n.mask
            if n._values is None:
                self.src, self.idx = n._source
            else:
                self.dense = n._values
        elif isinstance(v, Field):
            self.rows = self.src = v.project(dom).values
            self.idx = dom.hood.rows
        else:
            self.rows = self.src = self.dense = dom.backend.constant_row(v)
        self.large = is_large(self.src if self.src is not None else self.dense)

    def own(self) -> Any:
        return self.nbr.self_value if self.nbr is not None else self.rows

    def links(self) -> Any:
        """The values per link (a constant stays one row, broadcast by `where`)."""
        if self.dense is None:
            dom = self.dom
            self.dense = dom.on_links(self.src) if self.nbr is None else self.nbr.values
        return self.dense

    def index(self) -> Any:
        return self.idx if self.idx is not None else self.dom.backend.zeros((self.dom.hood.n_links,), np.int64)


def _choose(cond: Any, x: _Side, y: _Side, dom: Domain) -> tuple:
    """The pending gather that takes, link by link, `x`'s row where `cond` holds and `y`'s elsewhere."""
    be = dom.backend
    if x.src is y.src:
        return x.src, be.where(cond, x.index(), y.index())
    rows = trailing_aligned(x.src, y.src)
    shape = tuple(max(int(p), int(q)) for p, q in zip(rows[0].shape[1:], rows[1].shape[1:]))
    rows = [be.broadcast_rows(r, (len(r),) + shape) for r in rows]
    dtype = be.result_type(*rows)
    src = be.concat([be.cast(r, dtype) for r in rows])
    return src, be.where(cond, x.index(), y.index() + len(x.src))


# -- helpers -------------------------------------------------------------------------------------------


def _lazy_own(op: Callable, me: NbrField, other: Any, reflected: bool, constant: bool = False) -> Callable:
    """The own entries of `op(me, other)`, computed when first asked for (reductions without self never ask)."""
    def own() -> Any:
        s_m = me.self_value
        s_o = other if constant else (other.self_value if isinstance(other, NbrField) else other)
        if not constant:
            s_m, s_o = trailing_aligned(s_m, s_o)
        return op(s_o, s_m) if reflected else op(s_m, s_o)

    return own


def _and(a: Any, b: Any) -> Any:
    """The conjunction of two link masks, None standing for all links."""
    if a is None:
        return b
    return a if b is None else a & b


def _cheaper_lazy(src: Any, dom: Domain) -> bool:
    """Whether working on a pending gather's rows is cheaper than gathering them per link."""
    return len(src) <= dom.hood.n_links


def _identity(op: str, values: Any, be: Any, strong: bool) -> Any:
    """What unselected links contribute: a python scalar (keeps the dtype) or, for `where=` selections, one row with
    the dtype a broadcast constant has (so that the result type is the one of a `mux` with the identity)."""
    ident = identity_of(op, values.dtype)
    return expand_to(be.constant_row(ident), values) if strong else ident


def _with_default(out: Any, default: Any, op: str, links: Any, hood: Hood, be: Any) -> Any:
    """`out` with `default` where a device has no (selected, aligned) link; skipped where that changes nothing (rows
    without links hold the reduction's identity)."""
    if links is None and not hood.segments.has_empty:
        if _keeps_dtype(out, default, be):
            return out
    elif _keeps_dtype(out, default, be) and _is_identity(default, op, out.dtype):
        return out
    empty = hood.segments.empty if links is None else hood.count(links) == 0
    return be.where(expand_to(empty, out), _trailing(default, out) if not is_torch(out) else _as(out, default), out)


def _keeps_dtype(out: Any, default: Any, be: Any) -> bool:
    if type(default) is float and dtype_kind(out.dtype) == "f":  # the usual case, without asking numpy or torch
        return True
    return be.keeps_dtype(out, default)


def _is_identity(value: Any, op: str, dtype: Any) -> bool:
    """Whether a scalar default equals the identity of `op` for `dtype` (as the same kind of number)."""
    if np.ndim(value) != 0 or is_torch(value):
        return False
    ident = identity_of(op, dtype)
    return isinstance(value, bool) == isinstance(ident, bool) and bool(value == ident)


def _as(like: Any, value: Any) -> Any:
    if is_torch(like):
        import torch

        try:
            return torch.as_tensor(value, dtype=like.dtype, device=like.device)
        except (RuntimeError, TypeError):
            return torch.as_tensor(value, device=like.device)
    return value


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
        if len(inputs) == 1:
            return nbr._unary(lambda x: _call(ufunc, (x,)))
        a, b = inputs
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
