"""RoundVM: one round of the program for a batch of devices that fire together, over export and state stores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .backend import backend_for, is_torch
from .fields import Domain, Field, FieldError, Hood, NbrField
from .paths import AlignmentError, Path, PathStack, format_path
from .pytree import TreeDef, tree_flatten, tree_unflatten

_NEVER_WRITTEN = -2  # stamp of a path a device never wrote; last_fire is -1 before a device's first round


@dataclass
class Inbox:
    """Who each firing device hears this round, as CSR rows over the batch, with per-link data such as `distance`."""

    indptr: Any
    neighbours: Any
    edge_data: dict[str, Any] = field(default_factory=dict)


class _Store:
    """Values of one path over all devices, with the round (batch clock) in which each device last wrote it."""

    __slots__ = ("values", "stamp")

    def __init__(self, values: Any, stamp: Any):
        self.values = values
        self.stamp = stamp


class _Messages:
    """Per-neighbour messages of an `exchange` path: a default per sender plus (sender, receiver) overrides."""

    __slots__ = ("default", "keys", "values")

    def __init__(self, default: _Store, keys: Any, values: Any):
        self.default = default
        self.keys = keys
        self.values = values


_active: list["RoundVM"] = []


def current_vm() -> "RoundVM":
    """The VM evaluating a round right now; constructs outside a round are an error."""
    if not _active:
        raise RuntimeError(
            "aggregate constructs run only inside a round: call the program through fieldlearn.run(...) "
            "or the simulator, not directly"
        )
    return _active[-1]


class RoundVM:
    """Evaluates a program once per batch of firing devices; keeps every device's latest export and its state."""

    def __init__(self, program: Callable[[], Any], backend: str = "numpy", device: Any = None,
                 resources: dict[str, Any] | None = None):
        self.program = program
        self.backend = backend_for(backend, device)
        self.sensors: dict[str, Any] = {}
        #: Named objects a runner lends to the programs it runs (e.g. the learning context), read by `resource(name)`.
        self.resources: dict[str, Any] = dict(resources or {})
        self.clock = 0
        self.n_devices = 0
        self.last_fire = self.backend.full((0,), -1, dtype=np.int64)
        self.exports: dict[tuple, _Store] = {}
        self.state: dict[tuple, _Store] = {}
        self.messages: dict[tuple, _Messages] = {}
        self._paths = PathStack()
        self._domains: list[Domain] = []
        self._staged_exports: list[tuple[tuple, Domain, Any]] = []
        self._staged_state: list[tuple[tuple, Domain, Any]] = []
        self._staged_messages: list[tuple[tuple, Domain, Any, Any]] = []
        self._sensor_cache: dict[str, Any] = {}
        self._treedefs: dict[Path, TreeDef] = {}

    # -- the round ---------------------------------------------------------------------------
    def round(self, batch: Any, inbox: Inbox) -> Any:
        """Evaluate the program for the devices in `batch`, reading exports from before this call; return their results."""
        be = self.backend
        batch = be.index(batch)
        indptr, neighbours = be.index(inbox.indptr), be.index(inbox.neighbours)
        if len(indptr) != len(batch) + 1:
            raise ValueError(f"inbox.indptr has {len(indptr)} entries; a batch of {len(batch)} needs {len(batch) + 1}")
        top = max(int(batch.max()) if len(batch) else -1, int(neighbours.max()) if len(neighbours) else -1)
        self._grow(top + 1)
        edge_data = {k: be.asarray(v) for k, v in inbox.edge_data.items()}
        root = Domain(batch, be, hood=Hood(indptr, neighbours, edge_data, be))
        self._paths = PathStack()
        self._domains = [root]
        self._staged_exports, self._staged_state, self._staged_messages = [], [], []
        self._sensor_cache = {}
        _active.append(self)
        try:
            result = self.program()
            leaves, treedef = tree_flatten(result)
            rows = [self._rows(leaf, root, "the program's result") for leaf in leaves]
        finally:
            _active.pop()
            self._domains = []
        self._commit(batch)
        return tree_unflatten(treedef, rows)

    def sent_bytes(self, ids: Any) -> np.ndarray:
        """Bytes each device of `ids` exported in its latest round (what it broadcast to its neighbours: every path
        it wrote with nbr, share or exchange), as an int64 array; 0 for devices that never ran."""
        be = self.backend
        idx = be.index(ids)
        out = np.zeros(len(idx), dtype=np.int64)
        if len(idx) == 0 or self.n_devices == 0:
            return out
        last = be.to_numpy(self.last_fire[idx])
        stores = list(self.exports.values()) + [m.default for m in self.messages.values()]
        for store in stores:
            wrote = (be.to_numpy(store.stamp[idx]) == last) & (last >= 0)
            row = int(np.prod(tuple(store.values.shape[1:]), dtype=np.int64)) * store.values.element_size() \
                if hasattr(store.values, "element_size") else int(store.values[:1].nbytes)
            out += wrote * row
        return out

    def forget(self, ids: Any) -> None:
        """Drop the exports and state of devices, as if they had never run (a crash and restart from scratch)."""
        ids = self.backend.index(ids)
        self.last_fire[ids] = -1

    # -- helpers shared by the constructs ----------------------------------------------------
    @property
    def domain(self) -> Domain:
        return self._domains[-1]

    def _grow(self, n: int) -> None:
        if n <= self.n_devices:
            return
        be = self.backend
        cap = max(n, 2 * self.n_devices) if self.n_devices else n
        self.last_fire = self._extend(self.last_fire, cap, -1)
        for store in list(self.exports.values()) + list(self.state.values()):
            self._extend_store(store, cap)
        for msg in self.messages.values():
            self._extend_store(msg.default, cap)
        self.n_devices = cap

    def _extend(self, arr: Any, cap: int, fill: Any) -> Any:
        be = self.backend
        extra = be.full((cap - len(arr),) + tuple(arr.shape[1:]), fill, dtype=arr.dtype)
        return be.concat([arr, extra])

    def _extend_store(self, store: _Store, cap: int) -> None:
        store.values = self._extend(store.values, cap, 0)
        store.stamp = self._extend(store.stamp, cap, _NEVER_WRITTEN)

    def _rows(self, leaf: Any, domain: Domain, what: str, trailing: tuple | None = None) -> Any:
        """A leaf as one row per device of `domain`: fields are projected, constants broadcast."""
        if isinstance(leaf, Field):
            return leaf.project(domain).values
        if isinstance(leaf, NbrField):
            raise FieldError(
                f"{what} is a neighbour field; reduce it to one value per device first (e.g. .min(), .sum())"
            )
        be = self.backend
        if trailing and np.ndim(leaf) == 0 and not is_torch(leaf):
            return be.full((len(domain),) + trailing, leaf)
        return be.broadcast_scalar(leaf, len(domain))

    def _previous(self, store: _Store | None, domain: Domain, init: Any) -> Any:
        """Each device's own value from its previous round at this path, or `init` where that round did not reach it."""
        if store is None:
            return init
        ids = domain.ids
        had = store.stamp[ids] == self.last_fire[ids]
        prev = store.values[ids]
        return self.backend.where(_expand(had, prev), prev, init)

    def _previous_tree(self, store_of: Callable, path: Path, dom: Domain, init: Any, what: str) -> tuple[list, TreeDef]:
        """Every leaf's previous rows at `path` (or the init's); a callable init runs only if some device needs it."""
        if callable(init) and not isinstance(init, (Field, NbrField)):
            treedef = self._treedefs.get(path)
            if treedef is not None:
                stores = [store_of((path, i)) for i in range(treedef.n_leaves)]
                ids = dom.ids
                if all(s is not None and bool((s.stamp[ids] == self.last_fire[ids]).all()) for s in stores):
                    return [s.values[ids] for s in stores], treedef
            self._paths.push_key("init")  # constructs in the init get their own paths, so that rounds
            try:                          # without the init see the same paths in the construct's function
                init = init()
            finally:
                self._paths.pop()
        leaves, treedef = tree_flatten(init)
        self._treedefs[path] = treedef
        rows = []
        for i, leaf in enumerate(leaves):
            store = store_of((path, i))
            trailing = tuple(store.values.shape[1:]) if store is not None else None
            rows.append(self._previous(store, dom, self._rows(leaf, dom, what, trailing)))
        return rows, treedef

    def _aligned(self, store: _Store | None, hood: Hood) -> Any:
        """Which inbox links come from a neighbour whose latest export contains the path (None: all of them)."""
        be = self.backend
        nbrs = hood.neighbours
        if store is None:
            return be.zeros((len(nbrs),), bool)
        if len(nbrs) > self.n_devices:
            ok = store.stamp == self.last_fire
            if bool(ok.all()):
                return None
            return ok[nbrs]
        mask = store.stamp[nbrs] == self.last_fire[nbrs]
        return None if bool(mask.all()) else mask

    def _neighbours(self, store: _Store | None, domain: Domain, own: Any) -> NbrField:
        hood = domain.hood
        mask = self._aligned(store, hood)
        if store is None or (mask is not None and store.values.shape[1:] != own.shape[1:]):
            return NbrField(domain, own, own[hood.rows(self.backend)], mask)
        return NbrField(domain, own, mask=mask, source=(store.values, hood.neighbours))

    def _enter(self, name: str) -> Path:
        path = self._paths.push_counted(name)
        self._paths.claim(path)
        return path

    def _leaves_in(self, value: Any, domain: Domain, what: str, path: Path) -> tuple[list, TreeDef]:
        leaves, treedef = tree_flatten(value)
        return [self._rows(leaf, domain, f"{what} at {format_path(path)}") for leaf in leaves], treedef

    def _sensor(self, name: str) -> Any:
        cached = self._sensor_cache.get(name)
        if cached is None:
            if name not in self.sensors:
                known = ", ".join(sorted(self.sensors)) or "none"
                raise KeyError(f"no sensor named {name!r} (sensors set: {known})")
            raw = self.sensors[name]
            cached = self.backend.asarray(raw) if not callable(raw) else raw
            self._sensor_cache[name] = cached
        return cached

    # -- constructs (called through fieldlearn.calculus.constructs) -------------------------------
    def rep(self, init: Any, fn: Callable[[Any], Any]) -> Any:
        path = self._enter("rep")
        try:
            dom = self.domain
            own, treedef = self._previous_tree(self.state.get, path, dom, init, "rep's init")
            result = fn(tree_unflatten(treedef, [Field(r, dom) for r in own]))
            rows, out_def = self._leaves_in(result, dom, "rep's result", path)
            _same_structure(treedef, out_def, "rep", path)
            for i, r in enumerate(rows):
                self._staged_state.append(((path, i), dom, r))
            return tree_unflatten(out_def, [Field(r, dom) for r in rows])
        finally:
            self._paths.pop()

    def share(self, init: Any, fn: Callable[[Any], Any]) -> Any:
        path = self._enter("share")
        try:
            dom = self.domain
            own, treedef = self._previous_tree(self.exports.get, path, dom, init, "share's init")
            nbrs = [self._neighbours(self.exports.get((path, i)), dom, r) for i, r in enumerate(own)]
            result = fn(tree_unflatten(treedef, nbrs))
            rows, out_def = self._leaves_in(result, dom, "share's result", path)
            _same_structure(treedef, out_def, "share", path)
            for i, r in enumerate(rows):
                self._staged_exports.append(((path, i), dom, r))
            return tree_unflatten(out_def, [Field(r, dom) for r in rows])
        finally:
            self._paths.pop()

    def nbr(self, value: Any) -> Any:
        path = self._enter("nbr")
        try:
            dom = self.domain
            rows, treedef = self._leaves_in(value, dom, "nbr's argument", path)
            out = []
            for i, r in enumerate(rows):
                out.append(self._neighbours(self.exports.get((path, i)), dom, r))
                self._staged_exports.append(((path, i), dom, r))
            return tree_unflatten(treedef, out)
        finally:
            self._paths.pop()

    def exchange(self, init: Any, fn: Callable[[Any], tuple[Any, Any]]) -> Any:
        path = self._enter("exchange")
        try:
            dom = self.domain
            defaults = lambda key: self.messages[key].default if key in self.messages else None
            own_rows, treedef = self._previous_tree(defaults, path, dom, init, "exchange's init")
            received = []
            for i, own in enumerate(own_rows):
                msg = self.messages.get((path, i))
                nf = self._neighbours(defaults((path, i)), dom, own)
                if msg is not None and len(msg.keys):
                    nf = NbrField(dom, own, self._directed(msg, dom, nf.values), nf.mask)
                received.append(nf)
            out = fn(tree_unflatten(treedef, received))
            if not (isinstance(out, tuple) and len(out) == 2):
                raise FieldError(f"exchange's function at {format_path(path)} must return (result, send)")
            result, send = out
            send_leaves, send_def = tree_flatten(send)
            _same_structure(treedef, send_def, "exchange's send", path)
            for i, leaf in enumerate(send_leaves):
                if isinstance(leaf, NbrField):
                    leaf = leaf.project(dom)
                    self._staged_messages.append(((path, i), dom, leaf.self_value, leaf.values))
                else:
                    self._staged_messages.append(((path, i), dom, self._rows(leaf, dom, "exchange's send"), None))
            res_leaves, res_def = self._leaves_in(result, dom, "exchange's result", path)
            return tree_unflatten(res_def, [Field(r, dom) for r in res_leaves])
        finally:
            self._paths.pop()

    def _directed(self, msg: _Messages, dom: Domain, defaults: Any) -> Any:
        be = self.backend
        hood = dom.hood
        receivers = dom.ids[hood.rows(be)]
        query = hood.neighbours * (1 << 32) + receivers
        pos = be.searchsorted(msg.keys, query)
        pos_safe = be.where(pos < len(msg.keys), pos, 0)
        found = msg.keys[pos_safe] == query
        return be.where(_expand(found, defaults), msg.values[pos_safe], defaults)

    def branch(self, cond: Any, then_fn: Callable[[], Any], else_fn: Callable[[], Any]) -> Any:
        path = self._enter("branch")
        try:
            dom = self.domain
            be = self.backend
            c = self._rows(cond, dom, "branch's condition")
            if (c.dtype != bool) if not is_torch(c) else (str(c.dtype) != "torch.bool"):
                raise FieldError(f"branch's condition at {format_path(path)} must be boolean, got {c.dtype}")
            sides = []
            for side, take, fn in (("then", c, then_fn), ("else", ~c, else_fn)):
                idx = be.nonzero(take)
                if len(idx) == 0:
                    continue
                sub = Domain(dom.ids[idx], be, parent=dom, index_in_parent=idx)
                self._paths.push_key(side)
                self._domains.append(sub)
                try:
                    rows, treedef = self._leaves_in(fn(), sub, f"branch's {side} result", path)
                finally:
                    self._domains.pop()
                    self._paths.pop()
                sides.append((idx, rows, treedef))
            if len(sides) == 1:
                idx, rows, treedef = sides[0]
                if len(idx) == len(dom):
                    return tree_unflatten(treedef, [Field(r, dom) for r in rows])
            _same_structure(sides[0][2], sides[-1][2], "branch's sides", path)
            merged = []
            for k in range(len(sides[0][1])):
                parts = [s[1][k] for s in sides]
                dtype = be.result_type(*parts)
                shape = parts[0].shape[1:]
                if any(p.shape[1:] != shape for p in parts):
                    raise FieldError(
                        f"branch's sides at {format_path(path)} return values of different shapes: "
                        f"{[tuple(p.shape[1:]) for p in parts]}"
                    )
                out = be.zeros((len(dom),) + tuple(shape), dtype)
                for (idx, _, _), p in zip(sides, parts):
                    out[idx] = be.cast(p, dtype)
                merged.append(Field(out, dom))
            return tree_unflatten(sides[0][2], merged)
        finally:
            self._paths.pop()

    def align(self, key: Any) -> "_AlignScope":
        return _AlignScope(self, key)

    def call(self, name: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
        self._paths.push_counted(name)
        try:
            return fn(*args, **kwargs)
        finally:
            self._paths.pop()

    # -- commit --------------------------------------------------------------------------
    def _commit(self, batch: Any) -> None:
        be = self.backend
        clock = self.clock
        for key, dom, rows in self._staged_exports:
            self._write(self.exports, key, dom, rows, clock)
        for key, dom, rows in self._staged_state:
            self._write(self.state, key, dom, rows, clock)
        if self._staged_messages or self.messages:
            self._commit_messages(batch, clock)
        self.last_fire[batch] = clock
        self.clock = clock + 1

    def _write(self, table: dict, key: tuple, dom: Domain, rows: Any, clock: int) -> None:
        table[key] = self._written(table.get(key), key[0], dom, rows, clock)

    def _written(self, store: _Store | None, path: Path, dom: Domain, rows: Any, clock: int) -> _Store:
        """`store` (created if missing) with the rows of `dom`'s devices set to `rows`, stamped with `clock`."""
        be = self.backend
        if store is None:
            store = _Store(
                be.zeros((self.n_devices,) + tuple(rows.shape[1:]), rows.dtype),
                be.full((self.n_devices,), _NEVER_WRITTEN, dtype=np.int64),
            )
        elif store.values.shape[1:] != rows.shape[1:]:
            raise FieldError(
                f"the value at {format_path(path)} changed shape from {tuple(store.values.shape[1:])} "
                f"to {tuple(rows.shape[1:])} between rounds"
            )
        elif store.values.dtype != rows.dtype:
            dtype = be.result_type(store.values, rows)
            store.values = be.cast(store.values, dtype)
            rows = be.cast(rows, dtype)
        store.values[dom.ids] = rows
        store.stamp[dom.ids] = clock
        return store

    def _commit_messages(self, batch: Any, clock: int) -> None:
        be = self.backend
        fired = be.zeros((self.n_devices,), bool)
        fired[batch] = True
        staged: dict[tuple, list] = {}
        for key, dom, own, per_link in self._staged_messages:
            staged.setdefault(key, []).append((dom, own, per_link))
        for key in set(self.messages) | set(staged):
            msg = self.messages.get(key)
            keys_parts, vals_parts = [], []
            if msg is not None and len(msg.keys):
                keep = be.nonzero(~fired[msg.keys // (1 << 32)])
                keys_parts.append(msg.keys[keep])
                vals_parts.append(msg.values[keep])
            for dom, own, per_link in staged.get(key, []):
                default = self._written(msg.default if msg is not None else None, key[0], dom, own, clock)
                msg = msg if msg is not None else _Messages(default, None, None)
                if per_link is not None:
                    hood = dom.hood
                    keys_parts.append(dom.ids[hood.rows(be)] * (1 << 32) + hood.neighbours)
                    vals_parts.append(per_link)
            if msg is None:
                continue
            if keys_parts:
                keys, vals = be.concat(keys_parts), be.concat([be.cast(v, vals_parts[0].dtype) for v in vals_parts])
                order = be.sort_unique_keys(keys)
                msg.keys, msg.values = keys[order], vals[order]
            else:
                msg.keys = be.zeros((0,), np.int64)
                msg.values = be.zeros((0,) + tuple(msg.default.values.shape[1:]), msg.default.values.dtype)
            self.messages[key] = msg


class _AlignScope:
    """`with align(key):` — constructs inside align with neighbours that used the same key at this point."""

    __slots__ = ("vm", "key")

    def __init__(self, vm: RoundVM, key: Any):
        self.vm, self.key = vm, key

    def __enter__(self) -> None:
        self.vm._paths.push_key(("align", self.key))

    def __exit__(self, *exc: Any) -> None:
        self.vm._paths.pop()


def _same_structure(a: TreeDef, b: TreeDef, what: str, path: Path) -> None:
    if a != b:
        raise FieldError(f"{what} at {format_path(path)} changes the value's structure: {a} became {b}")


def _expand(mask: Any, like: Any) -> Any:
    extra = like.ndim - mask.ndim
    return mask if extra <= 0 else mask.reshape(tuple(mask.shape) + (1,) * extra)
