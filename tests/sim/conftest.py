"""Fixtures for simulator tests."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from .sim_helpers import BASE


@pytest.fixture
def base() -> dict[str, Any]:
    """A fresh copy of a small valid scenario (3x3 grid, gradient)."""
    return copy.deepcopy(BASE)
