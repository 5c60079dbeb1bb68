"""fieldlearn.sim.yaml_reader: safe_load's meaning with limits on repeated keys, depth, alias expansion and size."""
from __future__ import annotations

import pytest
import yaml

from fieldlearn.sim.yaml_reader import MAX_DEPTH, YamlLimitError, read_yaml


def test_plain_documents_read_as_safe_load_reads_them():
    text = "a: 1\nb: [1, 2.5, {c: x}]\nd: &shared {k: v}\ne: *shared\n"
    assert read_yaml(text) == yaml.safe_load(text) and read_yaml("") is None


def test_tags_cannot_build_objects():
    with pytest.raises(yaml.YAMLError):
        read_yaml("x: !!python/object/apply:os.system ['echo no']\n")


def test_a_repeated_key_names_both_lines():
    with pytest.raises(YamlLimitError, match=r"the key 'a' appears twice in one mapping \(lines 1 and 3\)"):
        read_yaml("a: 1\nb: 2\na: 3\n")
    assert read_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}  # the same key in two mappings


def test_nesting_and_alias_expansion_are_bounded():
    inside = MAX_DEPTH - 1  # the top mapping is the first level
    assert read_yaml("x: " + "[" * inside + "]" * inside)  # the limit itself is fine
    with pytest.raises(YamlLimitError, match=f"nested more than {MAX_DEPTH} levels deep"):
        read_yaml("x: " + "[" * (inside + 1) + "]" * (inside + 1))
    bomb = ["a: &a [" + ", ".join(["1"] * 10) + "]"]
    bomb += [f"{chr(98 + k)}: &{chr(98 + k)} [" + ", ".join([f"*{chr(97 + k)}"] * 10) + "]" for k in range(6)]
    with pytest.raises(YamlLimitError, match="expands to more than 1,000,000 values"):
        read_yaml("\n".join(bomb))
    assert len(read_yaml("\n".join(bomb[:5]))["e"]) == 10  # 10^5 values once expanded: allowed
