"""RoundVM: one round of the program for a batch of devices that fire together, over export and state stores.

The semantics of every construct, in the order a round meets them (see README.md in this folder):
`round` builds the root domain from the inbox and runs the program; each construct enters its path (`_visit`),
reads the devices' previous values there (`Visit.previous`) and their neighbours' exports (`Visit.neighbours`),
evaluates its function, and stages what it exports or keeps (`Visit.export`, `Visit.keep`); `_commit` then writes
the staged values into the stores, stamped with the batch clock, and marks the batch as fired.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .backend import backend_for, expand_to, is_large, is_torch
from .fields import Domain, Field, FieldError, Hood, NbrField, rows_in
from .paths import Path, PathStack, format_path
from .pytree import TreeDef, tree_flatten, tree_unflatten

_NEVER_WRITTEN = -2  # stamp of a path a device never wrote; last_fire is -1 before a device's first round
_IN_STORE = object()  # "every device's previous value is in the store": large own entries are read from it lazily


class MissingSensor(KeyError):
    """A program sensed a sensor that is not set; `name` is the sensor."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"no sensor named {name!r} (sensors set: {', '.join(sorted(known)) or 'none'})")
        self.name = name


@dataclass
class Inbox:
    """Who each firing device hears this round, as CSR rows over the batch, with per-link data such as `distance`.

    `n_devices`, when the caller knows it, promises that every id in the batch and in `neighbours` is below it
    (sparing the VM a scan of every link each round); None: the VM finds the largest id itself."""

    indptr: Any
    neighbours: Any
    edge_data: dict[str, Any] = field(default_factory=dict)
    n_devices: int | None = None


class _Store:
    """Values of one path over all devices, with the round (batch clock) in which each device last wrote it.

    `everyone_at` is the clock of the batch that wrote it for every device, if the latest write did (else -1): then,
    right after that batch, every device's latest export or state holds the path, with no stamp to compare.
    `shared`: the values are also held outside the store (large rows that a round wrote for every device are kept as
    they are, and the previous round's are read without a copy), so a write into some rows copies them first."""

    __slots__ = ("values", "stamp", "everyone_at", "shared")

    def __init__(self, values: Any, stamp: Any, everyone_at: int = -1, shared: bool = False):
        self.values = values
        self.stamp = stamp
        self.everyone_at = everyone_at
        self.shared = shared


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


def active_vm() -> "RoundVM | None":
    """The VM evaluating a round right now, or None outside a round."""
    return _active[-1] if _active else None


class Visit:
    """One construct's visit in a round: its path (entered and claimed by `with`, left on exit), its domain, and the
    four things a construct does there: read previous values, read neighbours' exports, export, keep state."""

    __slots__ = ("vm", "name", "path", "domain")

    def __init__(self, vm: "RoundVM", name: str):
        self.vm, self.name = vm, name

    def __enter__(self) -> "Visit":
        vm = self.vm
        self.path = vm._paths.push_counted(self.name)
        vm._paths.claim(self.path)
        self.domain = vm._domains[-1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.vm._paths.pop()

    def rows(self, value: Any, what: str, domain: Domain | None = None) -> tuple[list, TreeDef]:
        """The leaves of a (nested) value as rows over the domain (or over `domain`, e.g. a branch side's)."""
        leaves, treedef = tree_flatten(value)
        dom = self.domain if domain is None else domain
        return [rows_in(leaf, dom, what, path=self.path) for leaf in leaves], treedef

    def fields(self, treedef: TreeDef, rows: list) -> Any:
        """Rows as a (nested) value of fields over the domain."""
        dom = self.domain
        return tree_unflatten(treedef, [Field(r, dom) for r in rows])

    def previous(self, table: dict, init: Any, what: str) -> tuple[list, TreeDef]:
        """Every device's own value here from its previous round (leaf by leaf), or the init's where that round did
        not reach the path; a callable init runs only if some device needs it."""
        return self.vm._previous_tree(table.get, self.path, self.domain, init, what)

    def previous_neighbours(self, table: dict, init: Any, what: str) -> tuple[list, TreeDef]:
        """Neighbour fields of every leaf whose own entries are the previous values (`previous`) and whose links are
        the neighbours' exports (`neighbours`); large own entries are read from the store only if asked for."""
        vm, dom, path = self.vm, self.domain, self.path
        own, treedef = vm._previous_tree(table.get, path, dom, init, what, in_store=True)
        return [vm._neighbours(table.get((path, i)), dom, r) for i, r in enumerate(own)], treedef

    def neighbours(self, table: dict, rows: list) -> list[NbrField]:
        """Neighbour fields of every leaf: own entry `rows[i]`, links from the neighbours' exports at this path."""
        vm, dom, path = self.vm, self.domain, self.path
        return [vm._neighbours(table.get((path, i)), dom, r) for i, r in enumerate(rows)]

    def export(self, rows: list) -> None:
        """Stage the rows as this path's export (sent to neighbours, written at commit)."""
        staged, dom, path = self.vm._staged_exports, self.domain, self.path
        for i, r in enumerate(rows):
            staged.append(((path, i), dom, r))

    def keep(self, rows: list) -> None:
        """Stage the rows as this path's local state (kept for the next round, written at commit)."""
        staged, dom, path = self.vm._staged_state, self.domain, self.path
        for i, r in enumerate(rows):
            staged.append(((path, i), dom, r))

    def same_structure(self, a: TreeDef, b: TreeDef, what: str) -> None:
        if a is not b and a != b:
            raise FieldError(f"{what} at {format_path(self.path)} changes the value's structure: {a} became {b}")


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
        self.n_devices = 0  # device ids seen so far are below this
        self._capacity = 0  # rows allocated in every store
        self.last_fire = self.backend.full((0,), -1, dtype=np.int64)
        self._arange = self.backend.arange(0)  # 0, 1, ..., capacity - 1
        self.exports: dict[tuple, _Store] = {}
        self.state: dict[tuple, _Store] = {}
        self.messages: dict[tuple, _Messages] = {}
        self._everyone_fired_at = -1  # clock of the latest batch if it held every device (and none was forgotten)
        self._paths = PathStack()
        self._domains: list[Domain] = []
        self._staged_exports: list[tuple[tuple, Domain, Any]] = []
        self._staged_state: list[tuple[tuple, Domain, Any]] = []
        self._staged_messages: list[tuple[tuple, Domain, Any, Any]] = []
        self._sensor_cache: dict[str, Any] = {}
        self._treedefs: dict[Path, TreeDef] = {}
        self._links_of: Hood | None = None  # the latest root hood (over the VM's own copy of its indptr)

    # -- the round ---------------------------------------------------------------------------
    def round(self, batch: Any, inbox: Inbox) -> Any:
        """Evaluate the program for the devices in `batch` (distinct ids), reading exports from before this call;
        return their results (one row per device of the batch, nested like the program's result)."""
        be = self.backend
        batch = be.index(batch)
        indptr, neighbours = be.index(inbox.indptr), be.index(inbox.neighbours)
        n = len(batch)
        if len(indptr) != n + 1:
            raise ValueError(f"inbox.indptr has {len(indptr)} entries; a batch of {n} needs {n + 1}")
        if inbox.n_devices is not None:
            top = int(inbox.n_devices) - 1
        else:
            top = int(batch.max()) if n else -1
            if len(neighbours):
                top = max(top, int(neighbours.max()))
        self._grow(top + 1)
        edge_data = {k: be.asarray(v) for k, v in inbox.edge_data.items()}
        ordered = be.is_prefix_range(batch, self._arange)
        root = Domain(batch, be, hood=self._root_hood(indptr, neighbours, edge_data), ordered=ordered)
        self._paths = PathStack()
        self._domains = [root]
        self._staged_exports, self._staged_state, self._staged_messages = [], [], []
        self._sensor_cache = {}
        _active.append(self)
        try:
            result = self.program()
            leaves, treedef = tree_flatten(result)
            rows = [rows_in(leaf, root, "the program's result") for leaf in leaves]
        finally:
            _active.pop()
            self._domains = []
        self._commit(root)
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
        """Drop the exports and state of devices, as if they had never run (a crash and restart from scratch).

        Devices the VM has not seen yet (e.g. before the first round) have nothing to drop."""
        ids = self.backend.index(ids).reshape(-1)
        if len(ids) and int(ids.min()) < 0:
            raise ValueError(f"forget: device ids must be >= 0, got {int(ids.min())}")
        ids = ids[ids < self.n_devices]
        if len(ids):
            self.last_fire[ids] = -1
            self._everyone_fired_at = -1

    # -- what the constructs read ------------------------------------------------------------
    @property
    def domain(self) -> Domain:
        """The devices evaluating the current part of the program (narrower inside a branch)."""
        return self._domains[-1]

    def sense(self, name: str) -> Field:
        """The local sensor `name` over the current domain."""
        dom = self.domain
        cached = self._sensor_cache.get(name)
        if cached is None:
            if name not in self.sensors:
                raise MissingSensor(name, list(self.sensors))
            raw = self.sensors[name]
            raw = self.backend.asarray(raw) if not callable(raw) else raw
            per_device = not (np.ndim(raw) == 0 and not is_torch(raw)) and not (is_torch(raw) and raw.dim() == 0)
            self._sensor_cache[name] = cached = (raw, per_device)
        raw, per_device = cached
        if per_device:
            return Field(dom.take(raw), dom)
        if is_torch(raw):
            return Field(raw.expand(len(dom)).clone(), dom)
        return Field(self.backend.full((len(dom),), raw), dom)

    # -- the constructs (called through fieldlearn.calculus.constructs) ----------------------
    def _visit(self, name: str) -> Visit:
        return Visit(self, name)

    def nbr(self, value: Any) -> Any:
        with self._visit("nbr") as v:
            rows, treedef = v.rows(value, "nbr's argument")
            v.export(rows)
            return tree_unflatten(treedef, v.neighbours(self.exports, rows))

    def rep(self, init: Any, fn: Callable[[Any], Any]) -> Any:
        with self._visit("rep") as v:
            own, treedef = v.previous(self.state, init, "rep's init")
            rows, out_def = v.rows(fn(v.fields(treedef, own)), "rep's result")
            v.same_structure(treedef, out_def, "rep")
            v.keep(rows)
            return v.fields(out_def, rows)

    def share(self, init: Any, fn: Callable[[Any], Any]) -> Any:
        with self._visit("share") as v:
            n, treedef = v.previous_neighbours(self.exports, init, "share's init")
            rows, out_def = v.rows(fn(tree_unflatten(treedef, n)), "share's result")
            v.same_structure(treedef, out_def, "share")
            v.export(rows)
            return v.fields(out_def, rows)

    def exchange(self, init: Any, fn: Callable[[Any], tuple[Any, Any]]) -> Any:
        with self._visit("exchange") as v:
            dom = v.domain
            defaults = {key: msg.default for key, msg in self.messages.items() if key[0] == v.path}
            nfs, treedef = v.previous_neighbours(defaults, init, "exchange's init")
            received = []
            for i, nf in enumerate(nfs):
                msg = self.messages.get((v.path, i))
                if msg is not None and len(msg.keys):
                    nf = NbrField(dom, nf.self_value, self._directed(msg, dom, nf.values), nf.mask)
                received.append(nf)
            out = fn(tree_unflatten(treedef, received))
            if not (isinstance(out, tuple) and len(out) == 2):
                raise FieldError(f"exchange's function at {format_path(v.path)} must return (result, send)")
            result, send = out
            send_leaves, send_def = tree_flatten(send)
            v.same_structure(treedef, send_def, "exchange's send")
            for i, leaf in enumerate(send_leaves):
                if isinstance(leaf, NbrField):
                    leaf = leaf.project(dom)
                    self._staged_messages.append(((v.path, i), dom, leaf.self_value, leaf.values))
                else:
                    self._staged_messages.append(((v.path, i), dom, rows_in(leaf, dom, "exchange's send"), None))
            rows, res_def = v.rows(result, "exchange's result")
            return v.fields(res_def, rows)

    def branch(self, cond: Any, then_fn: Callable[[], Any], else_fn: Callable[[], Any]) -> Any:
        with self._visit("branch") as v:
            dom = v.domain
            be = self.backend
            c = rows_in(cond, dom, "branch's condition")
            if (c.dtype != bool) if not is_torch(c) else (str(c.dtype) != "torch.bool"):
                raise FieldError(f"branch's condition at {format_path(v.path)} must be boolean, got {c.dtype}")
            sides = []
            for side, take, fn in (("then", c, then_fn), ("else", ~c, else_fn)):
                idx = be.nonzero(take)
                if len(idx) == 0:
                    continue
                sub = Domain(dom.ids[idx], be, parent=dom, index_in_parent=idx)
                self._paths.push_key(side)
                self._domains.append(sub)
                try:
                    rows, treedef = v.rows(fn(), f"branch's {side} result", sub)
                finally:
                    self._domains.pop()
                    self._paths.pop()
                sides.append((idx, rows, treedef))
            if len(sides) == 1:
                idx, rows, treedef = sides[0]
                if len(idx) == len(dom):
                    return v.fields(treedef, rows)
            v.same_structure(sides[0][2], sides[-1][2], "branch's sides")
            merged = []
            for k in range(len(sides[0][1])):
                parts = [s[1][k] for s in sides]
                dtype = be.result_type(*parts)
                shape = parts[0].shape[1:]
                if any(p.shape[1:] != shape for p in parts):
                    raise FieldError(
                        f"branch's sides at {format_path(v.path)} return values of different shapes: "
                        f"{[tuple(p.shape[1:]) for p in parts]}"
                    )
                out = be.zeros((len(dom),) + tuple(shape), dtype)
                for (idx, _, _), p in zip(sides, parts):
                    out[idx] = be.cast(p, dtype)
                merged.append(out)
            return v.fields(sides[0][2], merged)

    def align(self, key: Any) -> "_AlignScope":
        return _AlignScope(self, key)

    def call(self, name: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
        self._paths.push_counted(name)
        try:
            return fn(*args, **kwargs)
        finally:
            self._paths.pop()

    # -- reading the stores ------------------------------------------------------------------
    def _everyone_has(self, store: _Store) -> bool:
        """Whether every device's latest round reached the store's path (no stamp needs comparing)."""
        return store.everyone_at >= 0 and store.everyone_at == self._everyone_fired_at

    def _previous(self, store: _Store | None, domain: Domain, init: Any, what: str, in_store: bool = False) -> Any:
        """Each device's own value from its previous round at this path, or the `init` leaf's where that round did not
        reach it (the init's rows are made only then). With `in_store`, large values that every device has are left
        in the store (`_IN_STORE`)."""
        if store is None:
            return rows_in(init, domain, what)
        had = None
        if store.everyone_at != self._everyone_fired_at or store.everyone_at < 0:  # not _everyone_has: compare stamps
            had = domain.view(store.stamp) == domain.view(self.last_fire)
            if bool(had.all()):
                had = None
        if had is None:
            return _IN_STORE if in_store and is_large(store.values) else self._own_rows(store, domain)
        prev = domain.view(store.values)
        init_rows = rows_in(init, domain, what, tuple(store.values.shape[1:]))
        return self.backend.where(expand_to(had, prev), prev, init_rows)

    @staticmethod
    def _own_rows(store: _Store, domain: Domain) -> Any:
        """The domain's rows of a store, to be read: large rows of an ordered domain without a copy (the store is
        then shared), others as a copy."""
        if domain.ordered and is_large(store.values):
            store.shared = True
            rows = domain.view(store.values)
            if isinstance(rows, np.ndarray):  # a write into them in place fails loudly (torch has no such flag)
                rows = rows.view()
                rows.flags.writeable = False
            return rows
        return domain.take(store.values)

    def _previous_tree(self, store_of: Callable, path: Path, dom: Domain, init: Any, what: str,
                       in_store: bool = False) -> tuple[list, TreeDef]:
        """Every leaf's previous rows at `path` (or the init's); a callable init runs only if some device needs it."""
        if callable(init):
            treedef = self._treedefs.get(path)
            if treedef is not None:
                stores = [store_of((path, i)) for i in range(treedef.n_leaves)]
                if all(s is not None and (self._everyone_has(s) or bool((dom.view(s.stamp) == dom.view(self.last_fire)).all()))
                       for s in stores):
                    return [_IN_STORE if in_store and is_large(s.values) else self._own_rows(s, dom) for s in stores], treedef
            self._paths.push_key("init")  # constructs in the init get their own paths, so that rounds
            try:                          # without the init see the same paths in the construct's function
                init = init()
            finally:
                self._paths.pop()
        leaves, treedef = tree_flatten(init)
        self._treedefs[path] = treedef
        return [self._previous(store_of((path, i)), dom, leaf, what, in_store) for i, leaf in enumerate(leaves)], treedef

    def _aligned(self, store: _Store | None, hood: Hood) -> Any:
        """Which inbox links come from a neighbour whose latest export contains the path (None: all of them)."""
        be = self.backend
        nbrs = hood.neighbours
        if store is None:
            return be.zeros((len(nbrs),), bool)
        if self._everyone_has(store):
            return None
        if len(nbrs) > self.n_devices:
            ok = store.stamp == self.last_fire
            if bool(ok.all()):
                return None
            return ok[nbrs]
        mask = store.stamp[nbrs] == self.last_fire[nbrs]
        return None if bool(mask.all()) else mask

    def _neighbours(self, store: _Store | None, domain: Domain, own: Any) -> NbrField:
        """The neighbour field of a store's path: the neighbours' latest exports (a pending gather), `own` at self
        (`_IN_STORE`: the store's own rows, read when asked for)."""
        hood = domain.hood
        if own is _IN_STORE:
            return NbrField(domain, None, mask=self._aligned(store, hood), source=(store.values, hood.neighbours),
                            self_of=store.values)
        mask = self._aligned(store, hood)
        if store is None or (mask is not None and store.values.shape[1:] != own.shape[1:]):
            return NbrField(domain, own, mask=mask, source=(own, hood.rows))  # no aligned neighbour: placeholders
        return NbrField(domain, own, mask=mask, source=(store.values, hood.neighbours))

    def _directed(self, msg: _Messages, dom: Domain, defaults: Any) -> Any:
        be = self.backend
        hood = dom.hood
        receivers = dom.ids[hood.rows]
        query = hood.neighbours * (1 << 32) + receivers
        pos = be.searchsorted(msg.keys, query)
        pos_safe = be.where(pos < len(msg.keys), pos, 0)
        found = msg.keys[pos_safe] == query
        return be.where(expand_to(found, defaults), msg.values[pos_safe], defaults)

    # -- growing ---------------------------------------------------------------------------
    def _root_hood(self, indptr: Any, neighbours: Any, edge_data: dict) -> Hood:
        """The batch's links. The VM keeps its own copy of the rows (indptr), and reuses their receiving rows and
        segments while every row's link count stays the same."""
        known = self._links_of
        if known is not None and len(known.indptr) == len(indptr) and bool((known.indptr == indptr).all()):
            hood = known.with_links(neighbours, edge_data)
        else:
            hood = Hood(indptr.clone() if is_torch(indptr) else indptr.copy(), neighbours, edge_data, self.backend)
        self._links_of = hood
        return hood

    def _grow(self, n: int) -> None:
        if n <= self.n_devices:
            return
        self._everyone_fired_at = -1
        if n > self._capacity:
            cap = max(n, 2 * self._capacity) if self._capacity else n
            self.last_fire = self._extend(self.last_fire, cap, -1)
            for store in list(self.exports.values()) + list(self.state.values()):
                self._extend_store(store, cap)
            for msg in self.messages.values():
                self._extend_store(msg.default, cap)
            self._capacity = cap
            self._arange = self.backend.arange(cap)
        self.n_devices = n

    def _extend(self, arr: Any, cap: int, fill: Any) -> Any:
        be = self.backend
        extra = be.full((cap - len(arr),) + tuple(arr.shape[1:]), fill, dtype=arr.dtype)
        return be.concat([arr, extra])

    def _extend_store(self, store: _Store, cap: int) -> None:
        store.values = self._extend(store.values, cap, 0)
        store.stamp = self._extend(store.stamp, cap, _NEVER_WRITTEN)
        store.everyone_at, store.shared = -1, False

    # -- commit --------------------------------------------------------------------------
    def _commit(self, root: Domain) -> None:
        clock = self.clock
        batch = root.ids
        everyone = len(batch) == self.n_devices
        for key, dom, rows in self._staged_exports:
            self._write(self.exports, key, dom, rows, clock, everyone and dom is root)
        for key, dom, rows in self._staged_state:
            self._write(self.state, key, dom, rows, clock, everyone and dom is root)
        if self._staged_messages or self.messages:
            self._commit_messages(batch, clock)
        root.put(self.last_fire, clock)
        self._everyone_fired_at = clock if everyone else -1
        self.clock = clock + 1
        # the stores hold the rows now: the staged ones (models, for a learning program) need not live on
        self._staged_exports, self._staged_state, self._staged_messages = [], [], []

    def _write(self, table: dict, key: tuple, dom: Domain, rows: Any, clock: int, everyone: bool = False) -> None:
        table[key] = self._written(table.get(key), key[0], dom, rows, clock, everyone)

    def _written(self, store: _Store | None, path: Path, dom: Domain, rows: Any, clock: int,
                 everyone: bool = False) -> _Store:
        """`store` (created if missing) with the rows of `dom`'s devices set to `rows`, stamped with `clock`."""
        be = self.backend
        whole = dom.ordered and len(dom) == self._capacity and is_large(rows)  # every row, written at once
        if store is None:
            store = _Store(
                rows if whole else be.zeros((self._capacity,) + tuple(rows.shape[1:]), rows.dtype),
                be.full((self._capacity,), _NEVER_WRITTEN, dtype=np.int64),
                shared=whole,
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
        if whole:
            store.values, store.shared = rows, True  # kept as it is: rounds never write into a value in place
        else:
            if store.shared:
                store.values, store.shared = be.head_copy(store.values, len(store.values)), False
            dom.put(store.values, rows)
        dom.put(store.stamp, clock)
        store.everyone_at = clock if everyone else -1
        return store

    def _commit_messages(self, batch: Any, clock: int) -> None:
        be = self.backend
        fired = be.zeros((self._capacity,), bool)
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
                default = self._written(msg.default if msg is not None else None, key[0], dom, own, clock,
                                        len(batch) == self.n_devices and dom.parent is None)
                msg = msg if msg is not None else _Messages(default, None, None)
                if per_link is not None:
                    hood = dom.hood
                    keys_parts.append(dom.ids[hood.rows] * (1 << 32) + hood.neighbours)
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
