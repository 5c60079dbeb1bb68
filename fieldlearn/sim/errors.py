"""ScenarioError and the translation of pydantic validation errors into `yaml.path: message` lines."""
from __future__ import annotations

from typing import Any, Iterable


class ScenarioError(ValueError):
    """A user mistake in a scenario (file, YAML, schema, override or program): the message names the YAML path."""

    def __init__(self, message: str, path: str | None = None, source: str | None = None):
        self.path = path
        self.source = source
        self.text = f"{path}: {message}" if path else message
        self.lines = [self.text]
        super().__init__(f"{source}: {self.text}" if source else self.text)

    def with_source(self, source: str) -> "ScenarioError":
        """The same error, prefixed with the scenario file it came from."""
        err = ScenarioError.__new__(type(self))  # the same kind of error (e.g. OutputExists)
        ScenarioError.__init__(err, self.text, None, source)
        err.path, err.lines = self.path, self.lines
        return err


def format_path(parts: Iterable[Any]) -> str:
    """`("deployments", 1, "mobility")` -> `deployments[1].mobility`."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _data_path(loc: tuple, data: Any, key_last: bool) -> list:
    """Follow `loc` through the raw input, dropping the tag and union-member labels pydantic adds to locations."""
    path: list = []
    cur = data
    tag_skipped = False
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and not tag_skipped and isinstance(part, str) and part in _tag_values(cur):
            tag_skipped = True  # the discriminator value pydantic puts after a tagged union's location
            continue
        if isinstance(cur, dict) and part in cur:
            cur, tag_skipped = cur[part], False
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur, tag_skipped = cur[part], False
            path.append(part)
        elif last and key_last and isinstance(cur, dict):
            path.append(part)  # a missing or unknown key
        elif isinstance(part, str):
            continue  # a union member label such as 'float', 'list[float]' or 'SensorSpec'
        else:
            path.append(part)
            cur = None
    return path


_TYPE_LABELS = {"str", "int", "float", "bool", "list", "dict", "tuple", "none", "constrained-str"}


def _tag_values(d: dict) -> set:
    return {v for k, v in d.items() if k in ("kind", "rule") and isinstance(v, str)}


def _message(err: dict) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("union_tag_not_found",):
        return f"'{ctx.get('discriminator', 'kind').strip(chr(39))}' is required"
    if kind == "union_tag_invalid":
        tags = ctx.get("expected_tags", "")
        return f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} {ctx.get('tag')!r} (expected one of {tags})"
    if kind == "greater_than":
        return f"must be > {_num(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])}"
    if kind == "less_than":
        return f"must be < {_num(ctx['lt'])}"
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx['le'])}"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        return msg
    if kind == "assertion_error":
        return err["msg"].removeprefix("Assertion failed, ")
    got = err.get("input")
    msg = err["msg"]
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        return f"{msg[0].lower()}{msg[1:]} (got {_short(got)})"
    return msg[0].lower() + msg[1:]


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _is_type_error(kind: str) -> bool:
    return kind.endswith("_type") or kind.endswith("_parsing") or kind in ("literal_error", "model_type", "dict_type")


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def from_validation_error(exc: Any, data: Any, prefix: tuple = (), messages: dict[str, Any] | None = None) -> ScenarioError:
    """One ScenarioError listing each distinct `path: message` of a pydantic ValidationError (first ones first);
    `prefix` is the YAML path of `data` inside the scenario; `messages` may replace the message of an error type
    (a function of the error)."""
    seen: dict[str, list[str]] = {}
    typed: dict[str, list[bool]] = {}
    for err in exc.errors(include_url=False):
        key_last = err["type"] in ("missing", "extra_forbidden")
        path = format_path(tuple(prefix) + tuple(_data_path(tuple(err["loc"]), data, key_last)))
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            disc = str((err.get("ctx") or {}).get("discriminator", "kind")).strip("'")
            path = f"{path}.{disc}" if path else disc
        custom = (messages or {}).get(err["type"])
        msg = custom(err) if custom is not None else _message(err)
        lst = seen.setdefault(path, [])
        if msg not in lst:
            lst.append(msg)
            typed.setdefault(path, []).append(_is_type_error(err["type"]))
    for path in list(seen):
        deeper = any(p.startswith(path + ".") or p.startswith(path + "[") for p in seen if p != path)
        if path and deeper and all(typed[path]):
            del seen[path]  # a union member that did not fit, while another member got further
    for path, msgs in seen.items():
        flags = typed[path]
        if not all(flags):  # a union: report the constraint that failed, not the member types it is not
            seen[path] = [m for m, f in zip(msgs, flags) if not f]
    lines = [f"{p}: {' or '.join(m)}" if p else " or ".join(m) for p, m in seen.items()]
    first_path = next(iter(seen), None)
    head = lines[0] if lines else "invalid scenario"
    more = lines[1:6]
    text = head if not more else head + "; " + "; ".join(more) + (f"; and {len(lines) - 6} more" if len(lines) > 6 else "")
    err = ScenarioError(text)
    err.path = first_path
    err.lines = lines
    return err
