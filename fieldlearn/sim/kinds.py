"""Runtime objects built from scenario blocks: one table per block (mobility, schedule, fault, ...) from the block's
schema class to what is built for it, so that adding a kind is one class (or function) and its schema entry."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

Builder = TypeVar("Builder", bound=Callable[..., Any])


class Kinds:
    """What to build for each schema class of one scenario block.

    `@table.register(S.Tour)` registers a class or a function, called with the block and the build's arguments;
    `table.build(block, ...)` calls the one registered for the block's class.
    """

    def __init__(self, block: str):
        self.block = block
        self._builders: dict[type, Callable[..., Any]] = {}

    def register(self, spec: type) -> Callable[[Builder], Builder]:
        """A decorator: build the decorated class or function for blocks of class `spec`."""

        def add(builder: Builder) -> Builder:
            if spec in self:
                raise ValueError(f"a {self.block} kind for {spec.__name__} is registered already "
                                 f"({self._builders[spec].__qualname__})")
            self._builders[spec] = builder
            return builder

        return add

    def build(self, spec: Any, *args: Any) -> Any:
        """The runtime object for one block: its registered builder called with the block and `args`."""
        builder = self._builders.get(type(spec))
        if builder is None:
            raise NotImplementedError(f"no {self.block} kind is registered for {type(spec).__name__} "
                                      "(fieldlearn/sim/README.md says how to add one)")
        return builder(spec, *args)

    def __contains__(self, spec: type) -> bool:
        return spec in self._builders
