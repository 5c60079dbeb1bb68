"""The sweep's plan: seeds and grid arguments parsed, the cartesian product of variants x seeds expanded into runs
with stable ids, and every variant's scenario resolved (validated) once, up front, so that bad input fails before
any run and the workers run what the plan resolved."""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from ..sim.errors import ScenarioError
from ..sim.loader import LoadedScenario, read_scenario_file, resolve_scenario
from ..sim.overrides import apply_overrides, parse_key
from ..sim.shipped import scenario_path
from ..sim.yaml_reader import YamlLimitError, read_yaml

FORMAT = 2  # bump when the stored run layout or the meaning of a config hash changes
MAX_SEED = 2**63 - 1
MAX_RUNS = 100_000


class SweepError(ValueError):
    """A user mistake in a sweep's arguments (seeds, grid, sets, rounds, metric, output folder, backend); the
    message names the argument. The command line prints it without a traceback and exits with code 2."""


# --------------------------------------------------------------------------------------------------- parsing
def parse_seeds(text: str | int | Iterable[int]) -> list[int]:
    """`"0-9"`, `"0,3,5-7"`, `"4"`, an int or an iterable of ints -> the distinct seeds in the order given."""
    if isinstance(text, bool):
        raise SweepError(f"--seeds {text!r}: a seed is a non-negative integer")
    if isinstance(text, int):
        items: list[int] = [text]
    elif isinstance(text, str):
        items = []
        if not text.strip():
            raise SweepError("--seeds: empty; give e.g. 0-9 or 0,3,7")
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise SweepError(f"--seeds {text}: the range {part} is empty (write LOW-HIGH, e.g. 0-9)")
                if hi - lo >= MAX_RUNS:
                    raise SweepError(f"--seeds {text}: the range {part} has more than {MAX_RUNS} seeds")
                items.extend(range(lo, hi + 1))
            elif re.fullmatch(r"\d+", part):
                items.append(int(part))
            else:
                raise SweepError(f"--seeds {text}: {part!r} is neither a seed nor a range (e.g. 0-9, or 0,3,7)")
    else:
        try:
            items = list(text)
        except TypeError:
            raise SweepError(f"seeds: expected an int, a list of ints or a string like '0-9', got {type(text).__name__}") from None
        for s in items:
            if isinstance(s, bool) or not isinstance(s, int):
                raise SweepError(f"seeds: {s!r} is not an integer")
    out: list[int] = []
    for s in items:
        if not 0 <= s <= MAX_SEED:
            raise SweepError(f"--seeds: {s} is out of range (0 to 2**63-1)")
        if s not in out:
            out.append(s)
    if not out:
        raise SweepError("--seeds: no seeds given")
    return out


def _check_key(key: str, arg: str) -> str:
    key = key.strip()
    try:
        parts = parse_key(key)
    except ScenarioError as exc:
        raise SweepError(f"{arg}: {_strip_set_prefix(str(exc))}") from None
    if parts[0] == "seed" and len(parts) == 1:
        raise SweepError(f"{arg}: the seed is swept with --seeds, not with --grid/--set")
    return key


def _strip_set_prefix(msg: str) -> str:
    return re.sub(r"^--set \S+?: ", "", msg)


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """`key.path=a,b,c` -> (key.path, [a, b, c]); values are YAML scalars like `--set` values (`1`, `0.5`, `true`,
    `abc`, `'quoted, with comma'`, `[1, 2]`)."""
    arg = f"--grid {text}"
    if "=" not in text:
        raise SweepError(f"{arg}: expected key.path=value1,value2,... (e.g. program.params.method=c2fl,fl)")
    key, raw = text.split("=", 1)
    key = _check_key(key, arg)
    if not raw.strip():
        raise SweepError(f"{arg}: no values after '='")
    try:
        values = read_yaml("[" + raw + "]")
    except YamlLimitError as exc:
        raise SweepError(f"{arg}: {exc}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"{arg}: the values are not a comma-separated list of YAML values ({first})") from None
    if not isinstance(values, list) or not values:
        raise SweepError(f"{arg}: no values after '='")
    return key, values


def parse_set_arg(text: str) -> str:
    """Check a `key.path=value` override (as the simulator's `--set`) and return it unchanged."""
    if "=" not in text:
        raise SweepError(f"--set {text}: expected key.path=value")
    _check_key(text.split("=", 1)[0], f"--set {text}")
    return text


def normalise_grid(grid: Mapping[str, Any] | Sequence[tuple[str, Any]] | Sequence[str] | None) -> list[tuple[str, list[Any]]]:
    """A grid as a mapping key -> values, a list of (key, values) pairs, or a list of `key=a,b` strings; a value that
    is not a list or tuple is one value. Keys must be distinct; every key needs at least one value."""
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        items: list[tuple[str, Any]] = list(grid.items())
    else:
        items = []
        for g in grid:
            items.append(parse_grid_arg(g) if isinstance(g, str) else tuple(g))  # type: ignore[arg-type]
    out: list[tuple[str, list[Any]]] = []
    seen: set[str] = set()
    for key, values in items:
        if not isinstance(key, str):
            raise SweepError(f"grid: keys are strings like 'program.params.method', got {key!r}")
        vals = list(values) if isinstance(values, (list, tuple)) else [values]
        arg = f"--grid {key}"
        key = _check_key(key, arg)
        if key in seen:
            raise SweepError(f"{arg}: the key is given twice; list all its values in one --grid {key}=a,b,...")
        if not vals:
            raise SweepError(f"{arg}: no values")
        for v in vals:
            _yaml_text(v, arg)
        dup = [v for i, v in enumerate(vals) if v in vals[:i]]
        if dup:
            raise SweepError(f"{arg}: the value {dup[0]!r} is given twice")
        seen.add(key)
        out.append((key, vals))
    return out


def normalise_sets(sets: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """Fixed overrides as `key=value` strings or a mapping key -> value (Python values)."""
    if sets is None:
        return []
    if isinstance(sets, str):
        sets = [sets]
    if isinstance(sets, Mapping):
        return [parse_set_arg(f"{k}={_yaml_text(v, f'--set {k}')}") for k, v in sets.items()]
    return [parse_set_arg(s) for s in sets]


def _yaml_text(value: Any, arg: str) -> str:
    """A value written as one line of YAML that reads back equal (used to build `key=value` overrides)."""
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    except yaml.YAMLError:
        raise SweepError(f"{arg}: the value {value!r} cannot be written as YAML") from None
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    elif text.endswith("..."):
        text = text[:-3].strip()
    if "\n" in text or yaml.safe_load(text) != value:
        raise SweepError(f"{arg}: the value {value!r} cannot be written as a one-line YAML value")
    return text


def value_text(value: Any) -> str:
    """How a grid value is shown in labels, ids and table cells: strings as they are, others as YAML."""
    if isinstance(value, str):
        return value
    return _yaml_text(value, "value")


# -------------------------------------------------------------------------------------------------- expansion
@dataclass(frozen=True)
class Variant:
    """One point of the grid: an ordered mapping grid key -> value, and its position in the expansion."""

    index: int
    params: tuple[tuple[str, Any], ...]

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={_yaml_text(v, f'--grid {k}')}" for k, v in self.params]

    def label(self, short: Mapping[str, str] | None = None) -> str:
        if not self.params:
            return "all"
        return ", ".join(f"{(short or {}).get(k, k)}={value_text(v)}" for k, v in self.params)


@dataclass(frozen=True)
class Run:
    """One simulation of a sweep: a variant with a seed; `id` names its result folder and is stable across calls."""

    index: int
    variant: Variant
    seed: int
    id: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.variant.params)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each grid key's shortest unambiguous suffix (`program.params.method` -> `method`) for labels and ids."""
    out: dict[str, str] = {}
    split = {k: re.split(r"[.\[\]]+", k.strip(".[]")) for k in keys}
    for k in keys:
        parts = [p for p in split[k] if p]
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if all(cand != ".".join([p for p in split[o] if p][-n:]) for o in keys if o != k):
                out[k] = cand
                break
        else:
            out[k] = k
    return out


def run_id(variant: Variant, seed: int, short: Mapping[str, str]) -> str:
    """A readable, file-name-safe and collision-free id: `method=c2fl_lr=0.1_seed3_1a2b3c4d`."""
    canon = json.dumps([[k, v] for k, v in variant.params] + [["seed", seed]], sort_keys=True, default=repr)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:8]
    parts = [f"{short.get(k, k)}={value_text(v)}" for k, v in variant.params]
    slug = re.sub(r"[^\w.=+-]+", "-", "_".join(parts)).strip("-_")[:80]
    return f"{slug}_seed{seed}_{digest}" if slug else f"seed{seed}_{digest}"


def expand(seeds: Sequence[int], grid: Sequence[tuple[str, list[Any]]]) -> list[Run]:
    """The cartesian product: variants in grid order (the first key varies slowest), each with every seed."""
    total = len(seeds)
    for _, vals in grid:
        total *= len(vals)
    if total > MAX_RUNS:
        raise SweepError(f"the grid and seeds expand to {total} runs (more than {MAX_RUNS}); split the sweep")
    keys = [k for k, _ in grid]
    short = short_names(keys)
    runs: list[Run] = []
    combos = itertools.product(*[vals for _, vals in grid]) if grid else [()]
    for vi, combo in enumerate(combos):
        variant = Variant(vi, tuple(zip(keys, combo)))
        for seed in seeds:
            runs.append(Run(len(runs), variant, seed, run_id(variant, seed, short)))
    return runs


# ------------------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class ScenarioSource:
    """The raw scenario a sweep varies: its YAML mapping (read once, with the simulator's strict reader), the folder
    its relative paths start from, its name, a label for messages (as given) and its file (None for a mapping)."""

    data: dict[str, Any]
    base_dir: Path
    name: str
    label: str
    file: Path | None = None

    @classmethod
    def load(cls, scenario: str | Path | Mapping[str, Any]) -> "ScenarioSource":
        if isinstance(scenario, Mapping):
            data = copy.deepcopy(dict(scenario))
            name = data.get("name")
            return cls(data, Path.cwd(), name if isinstance(name, str) and _SAFE_NAME.fullmatch(name) else "scenario",
                       "scenario")
        label = str(scenario)
        try:
            data, base_dir, stem = read_scenario_file(scenario)
        except ScenarioError as exc:
            msg = str(exc)
            raise SweepError(msg if msg.startswith(f"{label}:") else f"{label}: {msg}") from None
        name = data.get("name")
        file = (base_dir / scenario_path(label).name).resolve()
        return cls(data, base_dir, name if isinstance(name, str) and _SAFE_NAME.fullmatch(name) else stem, label, file)

    def resolve(self, overrides: Sequence[str]) -> LoadedScenario:
        """The scenario with `overrides` applied, resolved (ScenarioError naming the YAML path on a mistake)."""
        data = apply_overrides(copy.deepcopy(self.data), list(overrides))
        return resolve_scenario(data, self.base_dir, name=self.name, source=self.label)


_SAFE_NAME = re.compile(r"[\w.-]{1,100}")


def program_digest(loaded: LoadedScenario) -> str:
    """A hash of the program's source file (so that editing the program invalidates stored results)."""
    path = loaded.program_ref.source_file()
    if path is None:
        return "-"
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "-"


def config_hash(scenario_yaml: str, program: str, device: str) -> str:
    """What makes a stored result valid for a run: the resolved scenario, the program source, the device."""
    h = hashlib.sha256()
    for part in (f"fieldlearn-sweep-{FORMAT}", scenario_yaml, program, device):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def check_device(device: str) -> str:
    """`cpu`, `cuda` or `cuda:N` (where the runs' rounds go), else SweepError."""
    if not isinstance(device, str) or not (device in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", device)):
        raise SweepError(f"--device {device}: expected cpu or cuda (or cuda:N)")
    return device


@dataclass
class Plan:
    """Everything a sweep will do, resolved and validated: runs (in expansion order), each variant's resolved
    scenario (resolved once, here; a run is its variant's scenario with the run's seed), the device, every run's
    overrides and configuration hash, and the schedule facts (period, rounds) used to check `rounds_at`."""

    source: ScenarioSource
    seeds: list[int]
    grid: list[tuple[str, list[Any]]]
    sets: list[str]
    runs: list[Run]
    device: str = "cpu"
    loaded: dict[int, LoadedScenario] = field(default_factory=dict)  # per variant
    overrides: dict[str, list[str]] = field(default_factory=dict)  # per run, as `--set` would take them
    hashes: dict[str, str] = field(default_factory=dict)
    rounds: dict[int, float] = field(default_factory=dict)  # per variant: duration in rounds (end_time / period)
    columns: dict[int, list[str]] = field(default_factory=dict)  # per variant: the metric columns one can predict
    metric_prefixes: dict[int, list[str]] = field(default_factory=dict)  # metrics that may expand to `name.key`
    figures: bool = False  # whether some run draws its own figures
    learning: bool = False  # whether some run's program learns (needs the learning resource)

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.grid]

    @property
    def variants(self) -> list[Variant]:
        seen: dict[int, Variant] = {}
        for r in self.runs:
            seen.setdefault(r.variant.index, r.variant)
        return list(seen.values())

    def scenario(self, run: Run) -> LoadedScenario:
        """The resolved scenario of one run: its variant's, with the run's seed."""
        return self.loaded[run.variant.index].with_seed(run.seed)


NO_RUN_FIGURES = ["exports.figures.timeseries=false", "exports.figures.snapshots=[]"]


def make_plan(
    scenario: str | Path | Mapping[str, Any],
    seeds: Any = None,
    grid: Any = None,
    sets: Any = None,
    device: str = "cpu",
    run_figures: bool = True,
) -> Plan:
    """Parse and check every argument, expand the runs and resolve each variant's scenario once; SweepError on bad
    input. `run_figures=False` turns each run's own figures off (after `sets`, before the grid)."""
    check_device(device)
    source = ScenarioSource.load(scenario)
    sets_l = normalise_sets(sets)
    grid_l = normalise_grid(grid)
    for key, _ in grid_l:
        clash = [s for s in sets_l if s.split("=", 1)[0].strip() == key]
        if clash:
            raise SweepError(f"--grid {key}: the key is also fixed by --set {clash[0]}; drop one of them")
    fixed = sets_l + ([] if run_figures else NO_RUN_FIGURES)
    resolved: dict[tuple[str, ...], LoadedScenario] = {}

    def resolve(extra: list[str]) -> LoadedScenario:
        key = tuple(extra)
        if key not in resolved:
            resolved[key] = source.resolve(fixed + extra)
        return resolved[key]

    try:
        base = resolve([])
    except ScenarioError as exc:
        raise SweepError(f"{source.label}: {exc}") from None
    seed_list = [base.scenario.seed] if seeds is None else parse_seeds(seeds)
    # each grid value alone first, so that a mistake names its --grid argument and value
    for key, vals in grid_l:
        for v in vals:
            ov = f"{key}={_yaml_text(v, f'--grid {key}')}"
            try:
                resolve([ov])
            except ScenarioError as exc:
                msg = str(exc)
                if msg.startswith(f"--set {ov}: "):
                    msg = msg[len(f"--set {ov}: "):]
                raise SweepError(f"--grid {key}={','.join(value_text(x) for x in vals)}: the value {value_text(v)!r}: "
                                 f"{source.label}: {msg}") from None
    runs = expand(seed_list, grid_l)
    plan = Plan(source, seed_list, grid_l, sets_l, runs, device)
    digests: dict[int, str] = {}
    for run in runs:
        v = run.variant
        if v.index not in plan.loaded:
            try:
                loaded = resolve(v.overrides)
            except ScenarioError as exc:
                raise SweepError(f"the variant {v.label()}: {source.label}: {exc}") from None
            sc = loaded.scenario
            plan.loaded[v.index] = loaded
            digests[v.index] = program_digest(loaded)
            plan.rounds[v.index] = sc.end_time / sc.period
            plan.figures = plan.figures or bool(sc.exports.figures.timeseries or sc.exports.figures.snapshots)
            plan.learning = plan.learning or "learning" in loaded.resources
            cols, prefixes = _predict_columns(sc)
            plan.columns[v.index] = cols
            plan.metric_prefixes[v.index] = prefixes
        plan.overrides[run.id] = fixed + v.overrides + [f"seed={run.seed}"]
        plan.hashes[run.id] = config_hash(plan.scenario(run).to_yaml(), digests[v.index], device)
    return plan


def _predict_columns(sc: Any) -> tuple[list[str], list[str]]:
    x = sc.exports
    cols = [f"{v}.{s}" for v in x.values for s in x.stats] + list(x.metrics)
    return cols, list(x.metrics)
