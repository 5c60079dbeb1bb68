"""Reading scenario YAML safely: `yaml.safe_load` semantics plus limits that keep hostile or mistaken input from
costing time or memory later (duplicate keys, nesting depth, the size of the document once aliases are expanded)."""
from __future__ import annotations

from typing import Any

import yaml

__all__ = ["read_yaml", "YamlLimitError", "MAX_DEPTH", "MAX_NODES", "MAX_BYTES"]

MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NODES = 1_000_000  # values in the document with every alias expanded (an alias bomb blows this up)
MAX_BYTES = 16 * 2**20


class YamlLimitError(ValueError):
    """The document breaks one of the reader's limits, or repeats a key; the message says which, and where."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and documents nested deeper than MAX_DEPTH."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
            if first is not None:
                raise YamlLimitError(f"the key {key!r} appears twice in one mapping (lines {first.line + 1} and "
                                     f"{key_node.start_mark.line + 1}); give it once")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """The number of values under `node` with aliases expanded (each shared node counted once per use)."""
    stack = [(node, False)]
    while stack:
        n, done = stack.pop()
        if id(n) in memo:
            continue
        children = []
        if isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        if done or not children:
            memo[id(n)] = 1 + sum(memo.get(id(c), 0) for c in children)
            continue
        stack.append((n, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(node)]


def read_yaml(text: str) -> Any:
    """Parse one YAML document like `yaml.safe_load`; YamlLimitError for a repeated key, nesting deeper than
    MAX_DEPTH, more than MAX_NODES values once aliases are expanded, or more than MAX_BYTES; yaml.YAMLError for
    what is not YAML."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"the file is larger than {MAX_BYTES // 2**20} MiB")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise YamlLimitError(f"the document expands to more than {MAX_NODES:,} values (aliases repeat their "
                                 "anchor's content); write the values out or use fewer nested aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()
