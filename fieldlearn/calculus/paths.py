"""Alignment paths: the stack of enclosing calls, branch sides and align keys that names every construct."""
from __future__ import annotations

from typing import Any

Path = tuple


class AlignmentError(RuntimeError):
    """Two constructs reached the same path in one round, so their exports would collide."""


def format_path(path: Path) -> str:
    """A readable path such as `distance_to#0/share#0`."""
    return "/".join(str(p) for p in path) or "<root>"


class PathStack:
    """The current path of the evaluation and a counter per level, so repeated calls get distinct paths."""

    __slots__ = ("tokens", "counters", "reached")

    def __init__(self) -> None:
        self.tokens: list[Any] = []
        self.counters: list[int] = [0]
        self.reached: set[Path] = set()

    def push_counted(self, name: str) -> Path:
        """Enter a construct or call: its token is its name and its position at this level."""
        c = self.counters[-1]
        self.counters[-1] = c + 1
        self.tokens.append(f"{name}#{c}")
        self.counters.append(0)
        return tuple(self.tokens)

    def push_key(self, key: Any) -> Path:
        """Enter a level named by a key (a branch side or an `align` key), without a counter."""
        self.tokens.append(key)
        self.counters.append(0)
        return tuple(self.tokens)

    def pop(self) -> None:
        self.tokens.pop()
        self.counters.pop()

    def claim(self, path: Path) -> None:
        """Record that a construct reached `path`; a second claim in one round is an error."""
        if path in self.reached:
            raise AlignmentError(
                f"two constructs reached the path {format_path(path)} in one round: their exports would collide; "
                "give repeated blocks distinct keys with align(key)"
            )
        self.reached.add(path)
