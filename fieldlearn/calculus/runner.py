"""Run a program on a static network without the simulator: schedules of device batches and a trace of results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .network import Graph, Network
from .pytree import tree_flatten, tree_unflatten
from .vm import Inbox, RoundVM


def inbox_of(graph: Graph, batch: np.ndarray) -> Inbox:
    """The CSR rows of `graph` for the devices in `batch`, in batch order, with link lengths as `distance`."""
    indptr, neighbours, distance = graph.inbox_links(batch)
    return Inbox(indptr, neighbours, {"distance": distance}, n_devices=graph.n_devices)


def schedule_batches(schedule: Any, n: int, rounds: int | None, seed: int) -> list[list[np.ndarray]]:
    """Expand a schedule into rounds, each a list of batches fired one after another."""
    if isinstance(schedule, str):
        if rounds is None:
            raise ValueError(f"schedule {schedule!r} needs a number of rounds")
        ids = np.arange(n)
        if schedule == "sync":
            return [[ids] for _ in range(rounds)]
        if schedule == "sequential":
            return [[ids[i : i + 1] for i in range(n)] for _ in range(rounds)]
        if schedule == "random":
            rng = np.random.default_rng(seed)
            return [[np.array([i]) for i in rng.permutation(n)] for _ in range(rounds)]
        raise ValueError(f"unknown schedule {schedule!r}: use 'sync', 'sequential', 'random' or a list of batches")
    steps = [[np.atleast_1d(np.asarray(b, dtype=np.int64))] for b in schedule]
    for k, (b,) in enumerate(steps):
        if len(b) == 0 or b.min() < 0 or b.max() >= n or len(np.unique(b)) != len(b):
            raise ValueError(f"schedule[{k}] must be a non-empty set of distinct device ids in [0, {n})")
    return steps if rounds is None else steps[:rounds]


@dataclass
class Trace:
    """Every device's latest result after each round (`history`), the final one (`last`), and the VM to continue from."""

    vm: RoundVM
    n_devices: int
    history: list[Any] = field(default_factory=list)
    fired: np.ndarray | None = None
    _latest: list[np.ndarray] | None = None
    _treedef: Any = None

    def __repr__(self) -> str:
        """Compact: devices, rounds and a summary of the last result (the full history can be megabytes)."""
        if not self.history:
            return f"Trace({self.n_devices} devices, no round yet)"
        last = self.history[-1]
        named = list(last.items()) if isinstance(last, dict) else [("", last)]
        parts = [(f"{k}: " if k != "" else "") + _summary(v) for k, v in named[:4]]
        more = f", ... ({len(named)} values)" if len(named) > 4 else ""
        return f"Trace({self.n_devices} devices, {self.rounds} rounds, last: {', '.join(parts)}{more})"

    @property
    def last(self) -> Any:
        """Each device's result in its latest round (nested like the program's result), as numpy arrays."""
        if not self.history:
            raise ValueError("no round has run yet")
        return self.history[-1]

    @property
    def rounds(self) -> int:
        return len(self.history)

    def series(self) -> np.ndarray:
        """The history of a single-valued program as one array [rounds, devices, ...]."""
        leaves, _ = tree_flatten(self.history[0])
        if len(leaves) != 1:
            raise ValueError("series() needs a program that returns one value per device")
        return np.stack([tree_flatten(h)[0][0] for h in self.history])

    def record(self, batch: np.ndarray, result: Any) -> None:
        leaves, treedef = tree_flatten(result)
        leaves = [self.vm.backend.to_numpy(x) for x in leaves]
        if self._latest is None:
            self._treedef = treedef
            self._latest = [np.zeros((self.n_devices,) + x.shape[1:], dtype=x.dtype) for x in leaves]
            self.fired = np.zeros(self.n_devices, dtype=bool)
        for i, x in enumerate(leaves):
            if self._latest[i].dtype != x.dtype:
                self._latest[i] = self._latest[i].astype(np.result_type(self._latest[i], x))
            self._latest[i][batch] = x
        self.fired[batch] = True

    def snapshot(self) -> None:
        self.history.append(tree_unflatten(self._treedef, [s.copy() for s in self._latest]))


def _summary(value: Any) -> str:
    """`float64[400] 0..26.9` for an array (its range over finite values); nested values by their leaves."""
    leaves, _ = tree_flatten(value)
    out = []
    for x in leaves[:3]:
        x = np.asarray(x)
        rng = ""
        if x.size and x.dtype.kind in "biuf":
            ok = x[np.isfinite(x)] if x.dtype.kind == "f" else x
            rng = f" {ok.min():.4g}..{ok.max():.4g}" if ok.size else " (none finite)"
        out.append(f"{x.dtype}{list(x.shape)}{rng}")
    return ("(" + ", ".join(out) + (", ...)" if len(leaves) > 3 else ")")) if len(leaves) > 1 else out[0]


def run(
    program: Callable[[], Any],
    network: Network,
    rounds: int | None = None,
    schedule: str | Sequence[Iterable[int]] = "sync",
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    vm: RoundVM | None = None,
    on_round: Callable[[int, Trace], None] | None = None,
    resources: dict[str, Any] | None = None,
) -> Trace:
    """Run `program` on `network` for `rounds` rounds of `schedule`; pass `vm` (e.g. `trace.vm`) to continue a run,
    and `resources` to lend objects to the program (read inside it with `resource(name)`)."""
    n = network.n_devices
    vm = vm if vm is not None else RoundVM(program, backend=backend, device=device)
    if resources:
        vm.resources.update(resources)
    vm.program = program  # a continued run may run a new version of the program over the old state
    vm.sensors = network.sensors
    trace = Trace(vm, n)
    cache: dict[bytes, Inbox] = {}
    for r, batches in enumerate(schedule_batches(schedule, n, rounds, seed)):
        for batch in batches:
            inbox = cache.get(batch.tobytes()) if len(batch) == n else None
            if inbox is None:
                inbox = inbox_of(network.graph, batch)
                if vm.backend.name == "torch":
                    be = vm.backend
                    inbox = Inbox(be.index(inbox.indptr), be.index(inbox.neighbours),
                                  {k: be.asarray(v) for k, v in inbox.edge_data.items()}, inbox.n_devices)
                if len(batch) == n:
                    cache[batch.tobytes()] = inbox
            trace.record(batch, vm.round(batch, inbox))
        trace.snapshot()
        if on_round is not None:
            on_round(r, trace)
    return trace
