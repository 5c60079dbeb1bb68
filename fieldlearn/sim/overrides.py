"""`--set key.path=value` overrides applied to the raw scenario dict before validation."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ScenarioError

_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def parse_key(key: str) -> list[str | int]:
    """`deployments[1].mobility.dwell` or `deployments.1.mobility.dwell` -> ['deployments', 1, 'mobility', 'dwell']."""
    key = key.strip()
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == ".":
            pos += 1
            continue
        m = _PART.match(key, pos)
        if not m:
            raise ScenarioError(f"--set {key}: cannot parse the key path at {key[pos:]!r}")
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            word = m.group(1)
            parts.append(int(word) if re.fullmatch(r"-?\d+", word) else word)
        pos = m.end()
    if not parts or not isinstance(parts[0], str):
        raise ScenarioError(f"--set {key}: the key path must start with a top-level key")
    return parts


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """Split `key.path=value`; the value is read as YAML (`3`, `true`, `[1, 2]`, `null`, `abc`)."""
    if "=" not in text:
        raise ScenarioError(f"--set {text}: expected key.path=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ScenarioError(f"--set {text}: the value is not valid YAML ({_first_line(exc)})") from None
    return parse_key(key), value


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return `data` with each `key.path=value` set in order (intermediate mappings created as needed)."""
    for text in overrides:
        parts, value = parse_override(text)
        cur: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = _fmt(parts[: i + 1])
            if isinstance(part, int):
                if not isinstance(cur, list):
                    raise ScenarioError(f"--set {text}: {_fmt(parts[:i]) or 'the scenario'} is not a list")
                if not -len(cur) <= part < len(cur):
                    raise ScenarioError(f"--set {text}: {where} is out of range (the list has {len(cur)} items)")
            else:
                if not isinstance(cur, dict):
                    raise ScenarioError(f"--set {text}: {_fmt(parts[:i]) or 'the scenario'} is not a mapping")
                if not last and part not in cur:
                    cur[part] = [] if isinstance(parts[i + 1], int) else {}
            if last:
                cur[part] = value
            else:
                if cur[part] is None:
                    cur[part] = {}
                cur = cur[part]
    return data


def _fmt(parts: list) -> str:
    from .errors import format_path

    return format_path(parts)
