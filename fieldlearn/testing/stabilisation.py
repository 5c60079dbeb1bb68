"""`assert_self_stabilises`: run a program until it matches an oracle, check it stays there, perturb, repeat."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np

from ..calculus import Network, RoundVM, run
from .oracles import Expect, Mismatch, Oracle, compare
from .strategies import Schedule

__all__ = ["Stabilisation", "SelfStabilisationError", "assert_self_stabilises", "rounds_to_stabilise"]

Bound = Union[int, Callable[[Network], int]]


class SelfStabilisationError(AssertionError):
    """The program did not reach its oracle in time, or did not stay there."""


@dataclass
class Stabilisation:
    """What `assert_self_stabilises` observed: the round each phase first matched the oracle for good, and the run's end."""

    rounds: list[int] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)
    network: Network | None = None
    vm: RoundVM | None = None
    last: Any = None


def _as_oracle(oracle: Any, atol: float, rtol: float) -> Oracle:
    if isinstance(oracle, Oracle):
        return oracle
    if callable(oracle):
        return Expect(oracle, atol=atol, rtol=rtol)
    raise TypeError(f"oracle must be an Oracle or a function network -> expected values, got {type(oracle).__name__}")


def _as_schedule(schedule: Any) -> Callable[[int, int], list[np.ndarray]]:
    if isinstance(schedule, Schedule):
        return schedule.sweep
    if isinstance(schedule, str):
        if schedule == "random":
            return Schedule("sweeps").sweep
        return Schedule(schedule).sweep
    if callable(schedule):
        return schedule
    raise TypeError(f"schedule must be 'sync', 'sequential', 'random', a Schedule or a function (k, n) -> batches, got {schedule!r}")


def _name(x: Any) -> str:
    return getattr(x, "__name__", None) or repr(x)


def _start(program: Callable[[], Any], network: Network, initial: Any, backend: str, device: Any) -> RoundVM:
    if initial is None:
        return RoundVM(program, backend=backend, device=device)
    if isinstance(initial, RoundVM):
        return initial
    if hasattr(initial, "prepare"):
        return initial.prepare(program, network, backend=backend, device=device)
    if callable(initial):
        return initial(program, network)
    raise TypeError(f"initial must be None, a RoundVM, a Scramble or a function (program, network) -> RoundVM, got {initial!r}")


def _sweep(vm: RoundVM, network: Network, batches: list[np.ndarray]) -> Any:
    trace = run(vm.program, network, schedule=batches, vm=vm)
    if trace.fired is None or not trace.fired[: network.n_devices].all():
        missing = np.flatnonzero(~trace.fired) if trace.fired is not None else np.arange(network.n_devices)
        raise ValueError(f"the schedule is not fair: devices {missing[:10].tolist()} did not fire in a sweep")
    return trace.last


def assert_self_stabilises(
    program: Callable[[], Any],
    network: Network,
    oracle: Any,
    within: Bound,
    hold: int = 10,
    schedule: Any = "sync",
    perturb: Callable[[Network], Network] | Sequence[Callable[[Network], Network]] | None = None,
    initial: Any = None,
    steady: bool | None = None,
    backend: str = "numpy",
    device: Any = None,
    atol: float = 1e-9,
    rtol: float = 1e-9,
) -> Stabilisation:
    """Assert that `program` on `network` reaches `oracle` within `within` rounds and stays there for `hold` rounds.

    - `oracle`: an `Oracle` (see `fieldlearn.testing.oracles`) or a function `network -> expected result`.
    - `within`: the bound in rounds (sweeps), or a function of the network (e.g. of its diameter).
    - `schedule`: 'sync', 'sequential', 'random', a `Schedule`, or a function `(sweep, n) -> batches`; a round is
      one sweep, in which every device must fire at least once.
    - `initial`: where to start: None (fresh devices), a `Scramble` (random history), a `RoundVM`, or a function
      `(program, network) -> RoundVM`.
    - `perturb`: one or more functions `network -> network` (topology change, moved source...) applied one
      after another once the previous phase has held; each phase must stabilise again within its bound.
    - `steady`: the result must also stop changing during the hold (default: the oracle's `steady`).
    Raises `SelfStabilisationError` naming the phase, the round and the devices that differ (expected vs
    got); returns a `Stabilisation` with the round at which each phase settled.
    """
    check = _as_oracle(oracle, atol, rtol)
    sweep_of = _as_schedule(schedule)
    must_settle = check.steady if steady is None else steady
    if hold < 1:
        raise ValueError(f"hold must be at least 1 round, got {hold}")
    perturbs = [] if perturb is None else ([perturb] if callable(perturb) else list(perturb))
    vm = _start(program, network, initial, backend, device)
    report = Stabilisation()
    sweep_no = 0
    net = network
    result: Any = None
    for phase in range(len(perturbs) + 1):
        if phase:
            net = perturbs[phase - 1](net)
        label = "from the initial state" if phase == 0 else f"after perturbation {phase} ({_name(perturbs[phase - 1])})"
        bound = int(within(net)) if callable(within) else int(within)
        streak_start: int | None = None
        reference: Any = None
        left: tuple[int, int, str] | None = None  # (started, left at, description) of the last broken streak
        settled = None
        for r in range(1, bound + hold):
            result = _sweep(vm, net, sweep_of(sweep_no, net.n_devices))
            sweep_no += 1
            miss = check.check(net, result)
            if miss is None and streak_start is not None and must_settle:
                moved = compare(reference, result, atol, rtol)
                if moved is not None:
                    change = moved.describe(net.n_devices, what="changed", expected_label="was", got_label="now")
                    left = (streak_start, r, "the result kept changing while it matched the oracle: " + change)
                    streak_start, reference = None, None
            if miss is not None:
                if streak_start is not None:
                    left = (streak_start, r, miss.describe(net.n_devices))
                streak_start, reference = None, None
                if r >= bound:
                    _fail(label, bound, hold, r, net, miss, left, schedule)
                continue
            if streak_start is None:
                if r > bound:
                    _fail(label, bound, hold, r, net, None, left, schedule)
                streak_start, reference = r, result
            if r - streak_start + 1 >= hold:
                settled = streak_start
                break
        if settled is None:  # only when bound + hold - 1 < 1, i.e. a zero bound with a hold of 1
            _fail(label, bound, hold, bound, net, None, left, schedule)
        report.rounds.append(int(settled))
        report.bounds.append(bound)
    report.network, report.vm, report.last = net, vm, result
    return report


def _fail(label: str, bound: int, hold: int, r: int, net: Network, miss: Mismatch | None, left: tuple | None, schedule: Any) -> None:
    sched = schedule if isinstance(schedule, str) else repr(schedule)
    lines = [f"the program did not self-stabilise {label} (schedule {sched}, bound {bound} rounds, hold {hold})."]
    if left is not None:
        start, at, what = left
        lines.append(f"It matched the oracle from round {start} but left it at round {at}:")
        lines.append(what)
    if miss is not None:
        lines.append(f"At round {r}, {miss.describe(net.n_devices)}")
    elif left is None:
        lines.append(f"No match by round {r}.")
    raise SelfStabilisationError("\n".join(lines))


def rounds_to_stabilise(program: Callable[[], Any], network: Network, oracle: Any, max_rounds: int, hold: int = 1, **kwargs: Any) -> int | None:
    """The round at which `program` first matches `oracle` for `hold` rounds (within `max_rounds`), or None."""
    try:
        return assert_self_stabilises(program, network, oracle, within=max_rounds, hold=hold, **kwargs).rounds[0]
    except SelfStabilisationError:
        return None
