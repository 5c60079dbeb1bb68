"""fieldlearn.sim.overrides: `--set key.path=value` applied to the raw scenario before validation."""
from __future__ import annotations

import pytest

from fieldlearn.sim.errors import ScenarioError
from fieldlearn.sim.overrides import apply_overrides, parse_key


def test_override_parsing():
    assert parse_key("a.b[2].c") == ["a", "b", 2, "c"]
    assert parse_key("a.b.2.c") == ["a", "b", 2, "c"]
    data = {"a": {"b": [1, 2]}}
    apply_overrides(data, ["a.b[1]=x", "a.new.deep=3", "top=null"])
    assert data == {"a": {"b": [1, "x"], "new": {"deep": 3}}, "top": None}
    with pytest.raises(ScenarioError):
        parse_key("[1].a")
