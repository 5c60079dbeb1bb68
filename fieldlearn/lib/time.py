"""T blocks: timers, decay and counters, kept by each device with `rep` (no communication)."""
from __future__ import annotations

from typing import Any

from ..calculus import Field, aggregate, maximum, minimum, mux, rep

__all__ = ["changed", "countdown", "counter", "decay", "rounds_since", "timer"]

INF = float("inf")


@aggregate
def timer(length: Any, decay: Any = 1.0, floor: Any = 0.0) -> Field:
    """T-style timer: time left, counting down from `length` by `decay` per round to `floor` (the first round shows `length - decay`).

    Clamped to [floor, length] every round, so a corrupted value heals within `length / decay` rounds.
    """
    return rep(length, lambda left: minimum(length, maximum(floor, left - decay)))


@aggregate
def countdown(length: int) -> Field:
    """Rounds left: `length`, `length - 1`, ..., 0, then 0 for ever (clamped, so self-stabilising)."""
    return rep(length + 1, lambda left: minimum(length, maximum(0, left - 1)))


@aggregate
def decay(value: Any, factor: float) -> Field:
    """Peak hold with exponential decay: the larger of `value` and last round's result times `factor` (0 <= factor < 1)."""
    return rep(value, lambda held: maximum(value, held * factor))


@aggregate
def counter(start: int = 0) -> Field:
    """Number of rounds this device has run before this one, plus `start`: start, start + 1, ... (a local clock)."""
    return rep(start - 1, lambda c: c + 1)


@aggregate
def rounds_since(event: Any) -> Field:
    """Rounds since `event` last held at this device: 0 while it holds, inf if it never did (as a float)."""
    return rep(INF, lambda r: mux(event, 0.0, r + 1.0))


@aggregate
def changed(value: Any) -> Field:
    """Whether `value` differs from its value in this device's previous round (False on the first round)."""
    before = rep((value, value), lambda s: (s[1], value))[0]
    return before != value
