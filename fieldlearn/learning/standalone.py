"""Running a learning program without the simulator: on a `Network` (or a networkx graph), with a dataset and a
partition over regions, returning the learning metrics.

    from fieldlearn import Network
    from fieldlearn.learning import run_learning
    from fieldlearn.programs.fbfl import fbfl
    net = Network.grid(8, 6, spacing=1.0, radius=1.5)
    out = run_learning(fbfl, net, rounds=20, regions=(net.positions[:, 0] >= 4).astype(int),
                       region_names=["west", "east"], config={"dataset": "digits", "model": {"hidden": [16]}})
    out.column("cacc"), out.column("global_accuracy")

It does what the simulator does for a static deployment with synchronous rounds: lends the learning context as the
resource "learning", sets the `region`, `mobile` and `time` sensors (time advances by `period` every round),
runs on the torch backend with the configured torch threads, records the models the program returns, and reads the
metrics after every round. The same scenario gives the same numbers in both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from fieldlearn.calculus import Inbox, Network, RoundVM

from .config import LearningConfig
from .context import RESOURCE, LearningContext
from .evaluation import Evaluation, Moment
from .readings import METRICS

__all__ = ["run_learning", "LearningRun", "DEFAULT_METRICS"]

DEFAULT_METRICS = ("eval_round", "cacc", "static_accuracy", "own_accuracy", "global_accuracy")


@dataclass
class LearningRun:
    """The outcome of `run_learning`: one row of metrics per round, the evaluations, the final outputs and the
    learning context (models, data, replay memories)."""

    columns: list[str]
    rows: list[list[Any]]
    history: list[Evaluation]
    outputs: dict[str, np.ndarray]
    context: LearningContext = field(repr=False)

    def column(self, name: str) -> np.ndarray:
        """One metric over the rounds, as floats (NaN before the first evaluation)."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r} (columns: {', '.join(self.columns)})")
        i = self.columns.index(name)
        return np.array([math.nan if r[i] is None else float(r[i]) for r in self.rows])

    @property
    def last(self) -> dict[str, Any]:
        """The metrics after the last round."""
        return dict(zip(self.columns, self.rows[-1])) if self.rows else {}

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last.items() if isinstance(v, float) and k != "time")
        return f"LearningRun({len(self.rows)} rounds, {self.context.n_devices} devices; {last})"


def run_learning(
    program: Callable[..., Any],
    network: Network | Any,
    rounds: int,
    *,
    config: LearningConfig | Mapping[str, Any] | None = None,
    regions: Any,
    region_names: Sequence[str] | None = None,
    mobile: Any = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    period: float = 1.0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    device: str = "cpu",
    on_round: Callable[[int, "LearningRun"], None] | None = None,
) -> LearningRun:
    """Run the learning `program` (called with `params`) for `rounds` synchronous rounds on `network`.

    `regions`: the region index of every device (-1: none), or a function of the round number giving it (devices
    whose region changes see a new data partition, as movers do); `region_names` default to r0, r1, ...; `mobile`:
    which devices count as mobile for CAcc (default: those whose region changes over the run when `regions` is a
    function, else none). `metrics` are names of `fieldlearn.learning.METRICS`.
    """
    if not isinstance(network, Network):
        network = Network.from_networkx(network)
    n = network.n_devices
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"run_learning: unknown metrics {unknown} (available: {', '.join(METRICS)})")
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ValueError(f"run_learning: rounds must be a positive integer, got {rounds!r}")
    region_at = regions if callable(regions) else (lambda r, fixed=np.asarray(regions, dtype=np.int64): fixed)
    region0 = np.asarray(region_at(0), dtype=np.int64).reshape(-1)
    if region0.size != n:
        raise ValueError(f"run_learning: regions give {region0.size} values for {n} devices")
    names = list(region_names) if region_names is not None else [f"r{k}" for k in range(int(region0.max()) + 1)]
    if mobile is None:
        mobile = np.zeros(n, dtype=bool)
        if callable(regions):
            for r in range(1, rounds):
                mobile |= np.asarray(region_at(r), dtype=np.int64) != region0
    mobile = np.asarray(mobile, dtype=bool)
    ctx = LearningContext(config, n_devices=n, region_names=names, initial_region=region0, mobile=mobile, seed=seed,
                          period=period, device=device, score_everywhere="global_accuracy" in metrics)
    if ctx.config.threads is not None and ctx.device.type == "cpu":
        torch.set_num_threads(ctx.config.threads)
    bound = dict(params or {})
    vm = RoundVM(lambda: program(**bound), backend="torch", device=device, resources={RESOURCE: ctx})
    vm.sensors.update(network.sensors)
    vm.sensors["mobile"] = mobile
    ids = np.arange(n)
    indptr, neighbours, distance = network.graph.inbox_links(ids)
    be = vm.backend
    inbox = Inbox(be.index(indptr), be.index(neighbours), {"distance": be.asarray(distance)})
    columns = ["round", "time"]
    rows: list[list[Any]] = []
    outputs: dict[str, np.ndarray] = {}
    out = LearningRun(columns, rows, ctx.history, outputs, ctx)
    for r in range(rounds):
        t = r * period
        here = np.asarray(region_at(r), dtype=np.int64).reshape(-1)
        vm.sensors["region"] = here
        vm.sensors["time"] = t
        result = ctx.take_models(ids, vm.round(ids, inbox))
        if isinstance(result, dict):
            for name, value in result.items():
                outputs[str(name)] = np.asarray(be.to_numpy(value))
        row: list[Any] = [r, t]
        cells: list[tuple[str, Any]] = []
        for name in metrics:
            value = METRICS[name](ctx, Moment(r + 1, t, here))
            cells += [(f"{name}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else [(name, value)]
        if len(columns) == 2:
            columns += [c for c, _ in cells]
        rows.append(row + [v for _, v in cells])
        if on_round is not None:
            on_round(r, out)
    return out
