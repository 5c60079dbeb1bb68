"""The field-calculus constructs users write programs with: nbr, rep, share, exchange, branch, mux, align, sense..."""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from .backend import expand_to, is_torch
from .fields import Field, NbrField, mux_neighbours, rows_in
from .pytree import tree_flatten, tree_unflatten
from .vm import active_vm, current_vm

F = TypeVar("F", bound=Callable[..., Any])


def aggregate(fn: F) -> F:
    """Mark a function as an aggregate block: each call gets its own path, so calls align by name and position."""
    name = fn.__qualname__.replace(".<locals>", "")

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        vm = active_vm()
        if vm is None:
            return fn(*args, **kwargs)
        return vm.call(name, fn, args, kwargs)

    return call  # type: ignore[return-value]


def nbr(value: Any) -> Any:
    """Neighbour field of `value`: the current value at this device, each aligned neighbour's latest export there."""
    return current_vm().nbr(value)


def rep(init: Any, fn: Callable[[Any], Any]) -> Any:
    """State across rounds: `fn(previous)`, where previous is this device's last result here, or `init`.

    `init` may be a zero-argument callable: it then runs only in rounds where some device has no previous value
    (useful when the initial value is costly, e.g. a stack of fresh models).
    """
    return current_vm().rep(init, fn)


def evolving(init: Any, fn: Callable[[Any], tuple[Any, Any]]) -> tuple[Any, Any]:
    """`rep` whose function also yields a value: `fn(previous) -> (next_state, output)`; returns both. Only the state
    is kept across rounds; the output leaves the round as an ordinary value (e.g. what a training step computed
    on the way: the regional model, a leader), as Collektive's `evolving` does."""
    yielded: list[Any] = []

    def step(previous: Any) -> Any:
        out = fn(previous)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("evolving's function must return (next_state, output)")
        yielded.append(out[1])
        return out[0]

    state = current_vm().rep(init, step)
    return state, yielded[-1]


def share(init: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn(n)` where `n` holds this device's previous shared value (or `init`) and its neighbours'; the result is sent."""
    return current_vm().share(init, fn)


def exchange(init: Any, fn: Callable[[Any], tuple[Any, Any]]) -> Any:
    """`fn(n) -> (result, send)`: like share, but `send` may be a neighbour field (one message per neighbour).

    Neighbours that were not in the sender's neighbourhood receive the sender's own (self) entry.
    """
    return current_vm().exchange(init, fn)


def branch(cond: Any, then_fn: Callable[[], Any], else_fn: Callable[[], Any]) -> Any:
    """Split the devices on `cond`: those where it holds run `then_fn`, the others `else_fn`; the sides never align."""
    return current_vm().branch(cond, then_fn, else_fn)


def align(key: Any) -> Any:
    """`with align(key):` the constructs inside align only with neighbours that used the same key here."""
    return current_vm().align(key)


def mux(cond: Any, a: Any, b: Any) -> Any:
    """Pointwise choice: `a` where `cond` holds, else `b` (both evaluated); works on nested values and neighbour fields."""
    dom = current_vm().domain
    if type(a) in _LEAVES and type(b) in _LEAVES:
        return _mux_leaf(dom, cond, a, b)
    a_leaves, a_def = tree_flatten(a)
    b_leaves, b_def = tree_flatten(b)
    if a_def != b_def:
        raise TypeError(f"mux's alternatives have different structures: {a_def} and {b_def}")
    out = [_mux_leaf(dom, cond, x, y) for x, y in zip(a_leaves, b_leaves)]
    return tree_unflatten(a_def, out)


_LEAVES = frozenset((Field, NbrField, float, int, bool))


def _mux_leaf(dom: Any, cond: Any, a: Any, b: Any) -> Any:
    if isinstance(cond, NbrField) or isinstance(a, NbrField) or isinstance(b, NbrField):
        return mux_neighbours(cond, a, b)
    target = None
    for v in (cond, a, b):
        if isinstance(v, Field) and (target is None or v.domain.depth > target.depth):
            target = v.domain
    target = dom if target is None else target
    be = target.backend
    c = rows_in(cond, target, "mux's condition")
    x = rows_in(a, target, "mux's first alternative") if isinstance(a, Field) else _const(a, be)
    y = rows_in(b, target, "mux's second alternative") if isinstance(b, Field) else _const(b, be)
    like = x if getattr(x, "ndim", 0) else (y if hasattr(y, "ndim") else c)
    if like.ndim > c.ndim:
        c = expand_to(c, like)
    return Field(be.where(c, x, y), target)


def _const(v: Any, be: Any) -> Any:
    if be.name == "torch" and not is_torch(v):
        return be.asarray(v)
    return v


def local(fn: F) -> F:
    """Run `fn` on the raw per-device arrays of the current domain: fields in (nested) arguments are unwrapped to
    their values, and the (nested) arrays it returns become fields. For array code no construct offers,
    e.g. a batched training step over stacked models. `fn` must return new arrays and leave its inputs as they are:
    they may be the VM's own stores (large values are not copied out of them), so writing into one in place would
    change the previous round's state."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        vm = current_vm()
        dom = vm.domain
        unwrap = lambda x: x.project(dom).values if isinstance(x, Field) else x
        leaves, treedef = tree_flatten((args, kwargs))
        if any(isinstance(x, NbrField) for x in leaves):
            raise TypeError(f"{fn.__name__}: local functions take fields, not neighbour fields; reduce them first")
        a, k = tree_unflatten(treedef, [unwrap(x) for x in leaves])
        out_leaves, out_def = tree_flatten(fn(*a, **k))
        return tree_unflatten(out_def, [Field(x, dom) if hasattr(x, "shape") and len(x.shape) and x.shape[0] == len(dom) else x for x in out_leaves])

    return call  # type: ignore[return-value]


def mid() -> Field:
    """This device's id, as a field."""
    vm = current_vm()
    return Field(vm.domain.ids, vm.domain)


uid = mid


def sense(name: str) -> Field:
    """The local sensor `name` (set per device on the network or by the simulator)."""
    return current_vm().sense(name)


def nbr_sense(name: str, own: Any = 0.0) -> NbrField:
    """A per-link sensor (e.g. `distance`) as a neighbour field; the device's own entry is `own`."""
    vm = current_vm()
    dom = vm.domain
    hood = dom.hood
    if name not in hood.edge_data:
        known = ", ".join(sorted(hood.edge_data)) or "none"
        raise KeyError(f"no link sensor named {name!r} (link sensors: {known})")
    values = hood.edge_data[name]
    return NbrField(dom, vm.backend.full((len(dom),), own, dtype=values.dtype), values, None)


def distances() -> NbrField:
    """Length of the link to every neighbour (0 to itself): the usual metric for gradients."""
    return nbr_sense("distance", 0.0)


def nbr_ids() -> NbrField:
    """Each neighbour's id (and this device's own id as its self entry)."""
    vm = current_vm()
    dom = vm.domain
    return NbrField(dom, dom.ids, dom.hood.neighbours, None)


def clock() -> int:
    """The VM's batch counter: 0 in the first batch it evaluates, one more in each later one (a seed for draws that
    must differ between rounds and repeat on a rerun)."""
    return current_vm().clock


def resource(name: str) -> Any:
    """The object the runner lent to this program under `name` (`RoundVM(..., resources={name: obj})` or
    `vm.resources[name] = obj`), e.g. a learning context; a clear error names what is lent when it is missing."""
    vm = current_vm()
    if name not in vm.resources:
        known = ", ".join(sorted(vm.resources)) or "none"
        raise LookupError(f"this program needs the resource {name!r}, which its runner did not provide "
                          f"(resources provided: {known})")
    return vm.resources[name]


def constant(value: Any) -> Field:
    """`value` at every device of the current domain, as a field."""
    dom = current_vm().domain
    return Field(rows_in(value, dom, "constant"), dom)


def minimum(a: Any, b: Any) -> Any:
    """Pointwise minimum of fields or numbers."""
    return mux(_lt(a, b), a, b)


def maximum(a: Any, b: Any) -> Any:
    """Pointwise maximum of fields or numbers."""
    return mux(_lt(b, a), a, b)


def _lt(a: Any, b: Any) -> Any:
    if isinstance(a, (Field, NbrField)):
        return a < b
    if isinstance(b, (Field, NbrField)):
        return b > a
    return constant(a < b)
