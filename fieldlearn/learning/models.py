"""ModelField: one nn.Module architecture for many devices as stacked parameters, with a chunked vmap forward."""
from __future__ import annotations

import copy
import numbers
import warnings
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from fieldlearn.calculus import NbrField, mux
from fieldlearn.calculus.pytree import register_pytree_node

from .stacked import plain_mlp_layers, shared_input_logits

__all__ = ["ModelField", "ModelNeighbours", "where", "blend_models", "neighbour_average", "default_chunk_size", "CHUNK_BYTES"]

#: Parameter bytes per chunk of devices (about 60 MNIST-sized MLPs or 2,600 digits MLPs): big enough that
#: batched matmuls and per-call overheads amortise, small enough that a chunk's parameters, gradients and
#: Adam moments stay close to the cache while it takes all its steps (measured best on a 2-core EPYC).
CHUNK_BYTES = 24 * 2**20
_BUILD_CHUNK = 256


def default_chunk_size(bytes_per_device: int) -> int:
    """Devices per chunk so that a chunk holds about `CHUNK_BYTES` of parameters."""
    return max(1, CHUNK_BYTES // max(1, bytes_per_device))


class _Spec:
    """What every ModelField of one architecture shares: the (meta) template, names and trailing shapes."""

    __slots__ = ("template", "param_names", "param_shapes", "buffer_names", "buffer_shapes", "chunk_size", "_key")

    def __init__(self, template: nn.Module, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
                 chunk_size: int | None):
        self.template = template
        self.param_names = tuple(params)
        self.param_shapes = tuple(tuple(t.shape[1:]) for t in params.values())
        self.buffer_names = tuple(buffers)
        self.buffer_shapes = tuple(tuple(t.shape[1:]) for t in buffers.values())
        if chunk_size is None:
            per_device = sum(int(np.prod(s)) * t.element_size() for s, t in zip(self.param_shapes, params.values()))
            chunk_size = default_chunk_size(per_device)
        self.chunk_size = int(chunk_size)
        self._key = (type(template).__qualname__, repr(template), self.param_names, self.param_shapes,
                     self.buffer_names, self.buffer_shapes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Spec) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"ModelSpec({type(self.template).__name__}, params={self.param_names}, buffers={self.buffer_names})"


def _meta_template(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).to("meta")


def _per_device(w: Any, n: int, like: torch.Tensor) -> torch.Tensor | float:
    """A scalar stays a Python number; anything else becomes a tensor `[n]` (or `[]`) on `like`'s device."""
    if isinstance(w, numbers.Number) and not isinstance(w, bool):
        return w
    if not isinstance(w, torch.Tensor):
        w = torch.as_tensor(np.asarray(w))
    w = w.to(device=like.device, dtype=like.dtype if torch.is_floating_point(like) else torch.float32)
    if w.dim() == 0:
        return w
    w = w.reshape(-1)
    if w.shape[0] not in (1, n):
        raise ValueError(f"per-device weight has {w.shape[0]} entries for a ModelField of {n} devices")
    return w


def _bcast(w: torch.Tensor | float, t: torch.Tensor) -> torch.Tensor | float:
    """Reshape a per-device weight `[n]` so it broadcasts over `t`'s trailing dims."""
    if isinstance(w, torch.Tensor) and w.dim() == 1:
        return w.view(w.shape[0], *([1] * (t.dim() - 1)))
    return w


def _is_float(t: torch.Tensor) -> bool:
    return torch.is_floating_point(t) or torch.is_complex(t)


class ModelField:
    """N copies of one nn.Module architecture as stacked tensors `{name: [n, ...]}`; a per-device value."""

    __slots__ = ("params", "buffers", "_spec")

    def __init__(
        self,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor] | None,
        template: nn.Module,
        *,
        chunk_size: int | None = None,
    ):
        buffers = {} if buffers is None else dict(buffers)
        params = dict(params)
        sizes = {int(t.shape[0]) for t in [*params.values(), *buffers.values()]}
        if len(sizes) > 1:
            raise ValueError(f"ModelField: stacked tensors disagree on the number of devices: {sorted(sizes)}")
        if not params:
            raise ValueError("ModelField: the module has no parameters")
        first = next(template.parameters(), None)
        if first is None or first.device.type != "meta":
            template = _meta_template(template)
        self.params = params
        self.buffers = buffers
        self._spec = _Spec(template, params, buffers, chunk_size)

    # ---------------------------------------------------------------------------------------------- building

    @classmethod
    def _from_spec(cls, spec: _Spec, params: dict[str, Any], buffers: dict[str, Any]) -> "ModelField":
        obj = cls.__new__(cls)
        obj.params, obj.buffers, obj._spec = params, buffers, spec
        return obj

    @classmethod
    def from_spec(cls, spec: _Spec, params: Mapping[str, Any], buffers: Mapping[str, Any] | None = None) -> "ModelField":
        """A ModelField of an existing architecture (`other.spec`) over the given stacked tensors (not copied)."""
        params, buffers = dict(params), dict(buffers or {})
        if tuple(params) != spec.param_names or tuple(buffers) != spec.buffer_names:
            raise ValueError(f"from_spec: expected parameters {spec.param_names} and buffers {spec.buffer_names}")
        return cls._from_spec(spec, params, buffers)

    @classmethod
    def from_factory(
        cls,
        factory: Callable[[], nn.Module],
        n: int,
        *,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        chunk_size: int | None = None,
    ) -> "ModelField":
        """N freshly initialised modules from `factory`, stacked; deterministic given `seed` (or a seed drawn
        from `generator`)."""
        if n < 1:
            raise ValueError(f"ModelField.from_factory: n must be >= 1, got {n}")
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            first = factory()
            params = {k: p.new_empty((n, *p.shape)) for k, p in first.named_parameters()}
            buffers = {k: b.new_empty((n, *b.shape)) for k, b in first.named_buffers()}
            made = [first]
            start = 0
            while start < n:
                while len(made) < min(_BUILD_CHUNK, n - start):
                    made.append(factory())
                p, b = stack_module_state(made)
                for k, t in p.items():
                    params[k][start : start + len(made)] = t.detach()
                for k, t in b.items():
                    buffers[k][start : start + len(made)] = t
                start += len(made)
                made = []
        field = cls(params, buffers, first, chunk_size=chunk_size)
        return field if device is None else field.to(device)

    @classmethod
    def replicate(cls, module: nn.Module, n: int, *, chunk_size: int | None = None) -> "ModelField":
        """N identical copies of `module` (on the module's device)."""
        if n < 1:
            raise ValueError(f"ModelField.replicate: n must be >= 1, got {n}")
        params = {k: p.detach().unsqueeze(0).expand(n, *p.shape).clone() for k, p in module.named_parameters()}
        buffers = {k: b.detach().unsqueeze(0).expand(n, *b.shape).clone() for k, b in module.named_buffers()}
        return cls(params, buffers, module, chunk_size=chunk_size)

    @classmethod
    def stack(cls, modules: Iterable[nn.Module], *, chunk_size: int | None = None) -> "ModelField":
        """Stack existing modules of one architecture (copies their tensors)."""
        modules = list(modules)
        params, buffers = stack_module_state(modules)
        params = {k: v.detach().clone() for k, v in params.items()}
        buffers = {k: v.clone() for k, v in buffers.items()}
        return cls(params, buffers, modules[0], chunk_size=chunk_size)

    # ---------------------------------------------------------------------------------------------- basics

    def __len__(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    @property
    def spec(self) -> _Spec:
        """The shared architecture description (template, names, shapes, chunk size)."""
        return self._spec

    @property
    def template(self) -> nn.Module:
        """The architecture on the meta device (no storage), used by `functional_call`."""
        return self._spec.template

    @property
    def chunk_size(self) -> int:
        """Devices processed together in forward passes and training."""
        return self._spec.chunk_size

    @property
    def device(self) -> torch.device:
        """Where the stacked tensors live."""
        return next(iter(self.params.values())).device

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype."""
        return next(iter(self.params.values())).dtype

    def n_parameters(self) -> int:
        """Parameters of one device's model."""
        return sum(int(np.prod(s)) for s in self._spec.param_shapes)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers together, by name."""
        return {**self.params, **self.buffers}

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], buffers_too: bool = True) -> "ModelField":
        params = {k: fn(v) for k, v in self.params.items()}
        buffers = {k: (fn(v) if buffers_too else v) for k, v in self.buffers.items()}
        return ModelField._from_spec(self._spec, params, buffers)

    def with_params(self, params: Mapping[str, Any]) -> "ModelField":
        """The same architecture and buffers with (some) parameters replaced by `params` (same names and shapes)."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise KeyError(f"with_params: no parameters {sorted(unknown)} (the model has {list(self.params)})")
        return ModelField._from_spec(self._spec, {**self.params, **params}, dict(self.buffers))

    def with_chunk_size(self, chunk_size: int) -> "ModelField":
        """The same tensors processed `chunk_size` devices at a time."""
        return ModelField._from_spec(_Spec(self.template, self.params, self.buffers, chunk_size),
                                     self.params, self.buffers)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ModelField":
        """Move to `device` and/or cast floating tensors to `dtype`."""
        return self._map(lambda t: t.to(device=device, dtype=dtype if (dtype is not None and _is_float(t)) else None))

    def clone(self) -> "ModelField":
        """A deep copy of the stacked tensors."""
        return self._map(lambda t: t.clone())

    def detach(self) -> "ModelField":
        """The same tensors without autograd history (no copy)."""
        return self._map(lambda t: t.detach())

    def __repr__(self) -> str:
        return (f"ModelField(n={len(self)}, {type(self.template).__name__}, {self.n_parameters()} params/device, "
                f"device={self.device}, dtype={self.dtype})")

    def __bool__(self) -> bool:
        raise TypeError("a ModelField is a per-device value and has no truth value; use where(mask, a, b)")

    # ---------------------------------------------------------------------------------------------- selection

    def _index(self, idx: Any) -> Any:
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            n = len(self)
            if not -n <= i < n:
                raise IndexError(f"device {i} out of range for a ModelField of {n} devices")
            return slice(i % n, i % n + 1)
        if isinstance(idx, slice):
            return idx
        if not isinstance(idx, torch.Tensor):
            idx = torch.as_tensor(np.asarray(idx))
        return idx.to(self.device)

    def __getitem__(self, idx: Any) -> "ModelField":
        """The rows `idx` (int, slice, bool mask or index array) as a ModelField; an int keeps one row."""
        sel = self._index(idx)
        return self._map(lambda t: t[sel])

    def set(self, idx: Any, other: "ModelField") -> "ModelField":
        """A copy with rows `idx` replaced by `other`'s rows (or its single row, broadcast); functional."""
        self._check_compatible(other)
        sel = self._index(idx)
        out = self.clone()
        for k, t in out.tensors().items():
            t[sel] = other.tensors()[k].to(t.dtype)
        return out

    def module(self, i: int) -> nn.Module:
        """Device `i`'s model as an ordinary nn.Module (a copy)."""
        module = copy.deepcopy(self.template).to_empty(device=self.device)
        with torch.no_grad():
            for k, t in module.named_parameters():
                t.copy_(self.params[k][i])
            for k, t in module.named_buffers():
                t.copy_(self.buffers[k][i])
        return module

    # ---------------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, *, shared: bool = False, train: bool = False,
                chunk_size: int | None = None) -> torch.Tensor:
        """Every device's model on its own inputs `x[n, batch, ...]` (or, `shared=True`, all on `x[batch, ...]`),
        `chunk_size` devices at a time; eval mode unless `train`."""
        n = len(self)
        if not shared and x.shape[0] != n:
            raise ValueError(f"ModelField forward: inputs have {x.shape[0]} rows for {n} devices (shared=False)")
        template = self.template
        step = chunk_size or self.chunk_size
        layers = plain_mlp_layers(template) if shared and not train and x.dim() == 2 else None
        if layers is not None and self.dtype == torch.bfloat16:
            # a few matmuls over all devices, faster than vmap in bfloat16 (benchmarks/RESULTS.md); float32 keeps the
            # vmapped path (as fast there), so that its results stay those of earlier runs
            outs = [shared_input_logits(layers, {k: v[s : s + step] for k, v in self.params.items()}, x)
                    for s in range(0, n, step)]
            return outs[0] if len(outs) == 1 else torch.cat(outs)
        template.train(train)

        def one(params: dict, buffers: dict, inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(template, (params, buffers), (inputs,))

        batched = torch.vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different" if train else "error")
        outs = []
        for start in range(0, n, step):
            sl = slice(start, start + step)
            p = {k: v[sl] for k, v in self.params.items()}
            b = {k: v[sl] for k, v in self.buffers.items()}
            outs.append(batched(p, b, x if shared else x[sl]))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    __call__ = forward

    # ---------------------------------------------------------------------------------------------- arithmetic

    def _check_compatible(self, other: "ModelField") -> None:
        if not isinstance(other, ModelField):
            raise TypeError(f"expected a ModelField, got {type(other).__name__}")
        if other._spec != self._spec:
            raise ValueError(f"ModelFields of different architectures: {self._spec} vs {other._spec}")

    def _binary(self, other: "ModelField", op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> "ModelField":
        self._check_compatible(other)
        if len(self) != len(other) and 1 not in (len(self), len(other)):
            raise ValueError(f"ModelFields of {len(self)} and {len(other)} devices")
        params = {k: op(v, other.params[k]) for k, v in self.params.items()}
        buffers = {}
        for k, v in self.buffers.items():
            o = other.buffers[k]
            if _is_float(v):
                buffers[k] = op(v, o)
            else:  # integer buffers (counters) follow the left operand
                buffers[k] = v if v.shape[0] >= o.shape[0] else v.expand_as(o).clone()
        return ModelField._from_spec(self._spec, params, buffers)

    def _scale(self, w: Any, op: Callable[[torch.Tensor, Any], torch.Tensor]) -> "ModelField":
        n = len(self)
        w = _per_device(w, n, next(iter(self.params.values())))
        return self._map_float(lambda t: op(t, _bcast(w, t)))

    def _map_float(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "ModelField":
        params = {k: fn(v) for k, v in self.params.items()}
        buffers = {k: (fn(v) if _is_float(v) else v) for k, v in self.buffers.items()}
        return ModelField._from_spec(self._spec, params, buffers)

    def __add__(self, other: Any) -> "ModelField":
        if isinstance(other, ModelField):
            return self._binary(other, torch.add)
        return self._scale(other, torch.add)

    def __radd__(self, other: Any) -> "ModelField":
        if isinstance(other, numbers.Number) and other == 0:  # lets sum() work
            return self
        return self.__add__(other)

    def __sub__(self, other: Any) -> "ModelField":
        if isinstance(other, ModelField):
            return self._binary(other, torch.sub)
        return self._scale(other, torch.sub)

    def __mul__(self, w: Any) -> "ModelField":
        if isinstance(w, ModelField):
            return self._binary(w, torch.mul)
        return self._scale(w, torch.mul)

    __rmul__ = __mul__

    def __truediv__(self, w: Any) -> "ModelField":
        return self._scale(w, torch.div)

    def __neg__(self) -> "ModelField":
        return self._map_float(torch.neg)

    def mean(self, weights: Any = None) -> "ModelField":
        """The (optionally weighted) average model, as a ModelField of one device."""
        if weights is None:
            return self._map_float(lambda t: t.mean(0, keepdim=True))._first_int_rows()
        w = _per_device(weights, len(self), next(iter(self.params.values())))
        if not isinstance(w, torch.Tensor) or w.dim() != 1:
            raise ValueError("ModelField.mean: weights must be one value per device")
        total = w.sum()
        return self._map_float(lambda t: (_bcast(w, t) * t).sum(0, keepdim=True) / total)._first_int_rows()

    def _first_int_rows(self) -> "ModelField":
        buffers = {k: (v if _is_float(v) or v.shape[0] == 1 else v[:1].clone()) for k, v in self.buffers.items()}
        return ModelField._from_spec(self._spec, self.params, buffers)

    def expand(self, n: int) -> "ModelField":
        """A one-device ModelField repeated to `n` devices (a contiguous copy)."""
        if len(self) != 1:
            raise ValueError(f"ModelField.expand: needs one device, has {len(self)}")
        return self._map(lambda t: t.expand(n, *t.shape[1:]).clone())


def where(mask: Any, a: ModelField, b: ModelField) -> ModelField:
    """Per device: `a`'s model where `mask` holds, else `b`'s."""
    a._check_compatible(b)
    like = next(iter(a.params.values()))
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    m = m.to(device=like.device, dtype=torch.bool).reshape(-1)

    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(m.view(-1, *([1] * (x.dim() - 1))), x, y)

    params = {k: pick(v, b.params[k]) for k, v in a.params.items()}
    buffers = {k: pick(v, b.buffers[k]) for k, v in a.buffers.items()}
    return ModelField._from_spec(a._spec, params, buffers)


def blend_models(a: ModelField, b: ModelField, alpha: Any) -> ModelField:
    """`(1 - alpha) a + alpha b` with a scalar or per-device `alpha` (exact at alpha 0 and 1)."""
    a._check_compatible(b)
    like = next(iter(a.params.values()))
    w = _per_device(alpha, len(a), like)

    def mix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not _is_float(x):
            return x
        weight = _bcast(w, x)
        if not isinstance(weight, torch.Tensor):
            weight = torch.tensor(float(weight), dtype=x.dtype, device=x.device)
        return torch.lerp(x, y.to(x.dtype), weight)

    params = {k: mix(v, b.params[k]) for k, v in a.params.items()}
    buffers = {k: mix(v, b.buffers[k]) for k, v in a.buffers.items()}
    return ModelField._from_spec(a._spec, params, buffers)


def _sparse_weights(weights: Any, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Any scipy/torch sparse (or dense) matrix as a torch tensor on `device`, CSR when sparse."""
    if isinstance(weights, torch.Tensor):
        w = weights.to(device=device, dtype=dtype)
        if w.layout == torch.sparse_coo:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                w = w.coalesce().to_sparse_csr()
    else:
        try:
            import scipy.sparse as sp
        except ImportError:  # pragma: no cover - scipy is a dependency
            sp = None
        if sp is not None and sp.issparse(weights):
            csr = sp.csr_matrix(weights)
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                w = torch.sparse_csr_tensor(
                    torch.as_tensor(csr.indptr, dtype=torch.int64),
                    torch.as_tensor(csr.indices, dtype=torch.int64),
                    torch.as_tensor(csr.data, dtype=dtype),
                    size=csr.shape,
                    check_invariants=False,
                ).to(device)
        else:
            w = torch.as_tensor(np.asarray(weights), dtype=dtype, device=device)
    if w.dim() != 2 or w.shape[1] != n:
        raise ValueError(f"neighbour_average: weights of shape {tuple(w.shape)} for {n} sending devices")
    return w


def neighbour_average(weights: Any, models: ModelField) -> ModelField:
    """`W @ models` for every parameter as one sparse matrix product (rows of W receive, columns send)."""
    n = len(models)
    like = next(iter(models.params.values()))
    w = _sparse_weights(weights, n, like.dtype, like.device)
    sparse = w.layout != torch.strided

    def apply(t: torch.Tensor) -> torch.Tensor:
        flat = t.reshape(n, -1)
        if not _is_float(t):
            wd = w.to(torch.float64)
            out = (torch.sparse.mm(wd, flat.to(torch.float64)) if sparse else wd @ flat.to(torch.float64))
            return out.round().to(t.dtype).reshape(w.shape[0], *t.shape[1:])
        if t.dtype != w.dtype:
            flat = flat.to(w.dtype)
        out = torch.sparse.mm(w, flat) if sparse else w @ flat
        return out.to(t.dtype).reshape(w.shape[0], *t.shape[1:])

    params = {k: apply(v) for k, v in models.params.items()}
    buffers = {k: apply(v) for k, v in models.buffers.items()}
    return ModelField._from_spec(models._spec, params, buffers)


class ModelNeighbours:
    """What `nbr(models)` gives inside a program: every device's model and its aligned neighbours' models, one
    neighbour field per tensor. Reductions take the same keyword arguments as any neighbour field and return a
    ModelField (sums over neighbours of large tensors are sparse products: no per-link copy of a model)."""

    __slots__ = ("spec", "params", "buffers")

    def __init__(self, spec: _Spec, params: dict[str, NbrField], buffers: dict[str, NbrField]):
        self.spec, self.params, self.buffers = spec, params, buffers

    def _reduce(self, fn: Callable[[NbrField], Any]) -> ModelField:
        def float_or_own(nf: NbrField) -> Any:
            return fn(nf) if _is_float_field(nf) else nf.self  # integer buffers (counters) keep the device's own
        return ModelField._from_spec(self.spec, {k: fn(v) for k, v in self.params.items()},
                                     {k: float_or_own(v) for k, v in self.buffers.items()})

    @property
    def own(self) -> ModelField:
        """Every device's own model (the self entries)."""
        return self._reduce(lambda nf: nf.self)

    def sum(self, include_self: bool = False, default: Any = 0) -> ModelField:
        """The sum of the neighbours' models (and the device's own if asked); `default` where there are none."""
        return self._reduce(lambda nf: nf.sum(include_self=include_self, default=default))

    def mean(self, include_self: bool = False, default: Any = float("nan")) -> ModelField:
        """The mean of the aligned neighbours' models (and the device's own if asked); `default` where none."""
        return self._reduce(lambda nf: nf.mean(include_self=include_self, default=default))

    def weighted_mean(self, weights: NbrField, include_self: bool = False) -> ModelField:
        """`sum_j w_j theta_j / sum_j w_j` over the aligned neighbours (and self with its own weight if asked), one
        sparse product per tensor; devices whose weights sum to 0 keep their own model."""
        total = weights.sum(include_self=include_self, default=0) * 1.0
        safe = total + (total == 0) * 1.0

        def one(nf: NbrField) -> Any:
            s = nf.weighted_sum(weights, include_self=include_self)
            return mux(total == 0, nf.self, s / safe)
        return self._reduce(one)

    def map_links(self, fn: Callable[[dict, dict, Any], Any], chunk: int | None = None) -> NbrField:
        """A neighbour field with `fn(own, theirs, receivers)` on every link, evaluated `chunk` links at a time
        (default: about 64 MB of parameters per side): `own` and `theirs` map each parameter name to `[links, ...]`
        tensors (the receiving device's and the neighbour's parameters), `receivers` are the receiving devices'
        positions in the domain (to index other per-device values); `fn` returns one value per link, e.g. a
        distance. The self entry is `fn(own, own, all positions)`."""
        first = next(iter(self.params.values()))
        dom = first.domain
        rows = dom.hood.rows
        n_links = int(len(rows))
        if chunk is None:
            per_link = sum(int(np.prod(v.self_value.shape[1:])) * v.self_value.element_size()
                           for v in self.params.values())
            chunk = max(1, (64 << 20) // max(per_link, 1))
        own_rows = {k: v.self_value for k, v in self.params.items()}
        parts = []
        for start in range(0, n_links, chunk):
            sl = slice(start, min(start + chunk, n_links))
            receivers = rows[sl]
            mine = {k: v[receivers] for k, v in own_rows.items()}
            theirs = {k: nf.link_values(sl) for k, nf in self.params.items()}
            parts.append(fn(mine, theirs, receivers))
        everyone = torch.arange(len(dom), device=first.self_value.device)
        self_value = fn(own_rows, own_rows, everyone)
        values = torch.cat(parts) if parts else self_value[:0]
        mask = None
        for nf in self.params.values():
            if nf.mask is not None:
                mask = nf.mask if mask is None else mask & nf.mask
        return NbrField(dom, self_value, values, mask)


def _is_float_field(nf: NbrField) -> bool:
    v = nf.self_value
    return bool(torch.is_floating_point(v)) if isinstance(v, torch.Tensor) else np.asarray(v).dtype.kind == "f"


def _flatten(field: ModelField) -> tuple[list, _Spec]:
    return [*field.params.values(), *field.buffers.values()], field._spec


def _unflatten(spec: _Spec, leaves: list) -> Any:
    k = len(spec.param_names)
    params, buffers = dict(zip(spec.param_names, leaves[:k])), dict(zip(spec.buffer_names, leaves[k:]))
    if leaves and isinstance(leaves[0], NbrField):  # nbr(models): the neighbours' models, reduced like any nbr field
        return ModelNeighbours(spec, params, buffers)
    return ModelField._from_spec(spec, params, buffers)


def _flatten_neighbours(field: ModelNeighbours) -> tuple[list, _Spec]:
    return [*field.params.values(), *field.buffers.values()], field.spec


register_pytree_node(ModelField, _flatten, _unflatten)
register_pytree_node(ModelNeighbours, _flatten_neighbours, _unflatten)
