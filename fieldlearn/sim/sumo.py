"""Eclipse SUMO as a source of vehicles (optional extra `fieldlearn[sumo]`): generate a city, run it to an FCD
trace, or drive it live step by step.

- `build_city(CitySpec(...), cache_dir)` makes a street network with `netgenerate` (grid or spider) and random
  trips with `randomTrips.py` into a cache folder keyed by the spec and SUMO's version; nothing is downloaded.
- `run_fcd(run, out)` runs `sumo` and writes its floating-car data (read it with fieldlearn.sim.traces.read_fcd).
- `LiveSumo(run)` drives SUMO through libsumo (or traci) and answers `at(t)` like a replayed trace: vehicles join
  when SUMO inserts them and leave when they arrive, and positions between two SUMO steps are interpolated as
  `RecordedTrace` interpolates between samples, so a live run and the replay of its own FCD export agree.

SUMO is found through the `eclipse-sumo` wheel (`import sumo`), else `$SUMO_HOME`, else a `sumo` on the PATH
(Debian's package keeps its tools in /usr/share/sumo).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .safexml import FileFormatError, parse_stream
from .traces import MobilityFrame, TimeMap


class SumoUnavailable(RuntimeError):
    """SUMO (or the Python binding asked for) is not installed; the message says how to install it."""


class SumoFailed(RuntimeError):
    """A SUMO program exited with an error; the message holds its command and the end of its output."""


_INSTALL = "install it with `pip install 'fieldlearn[sumo]'` (or `pip install eclipse-sumo libsumo`)"


def sumo_home() -> Path:
    """SUMO's installation folder (holding bin/ and tools/)."""
    env = os.environ.get("SUMO_HOME")
    if env and Path(env, "tools").is_dir():
        return Path(env)
    try:
        import sumo  # the eclipse-sumo wheel

        return Path(sumo.SUMO_HOME)
    except ImportError:
        pass
    exe = shutil.which("sumo")
    if exe:
        for cand in (Path(exe).resolve().parent.parent, Path("/usr/share/sumo")):
            if (cand / "tools").is_dir():
                return cand
    raise SumoUnavailable(f"SUMO is not installed: {_INSTALL}")


def sumo_binary(name: str) -> Path:
    """The path of a SUMO program (`sumo`, `netgenerate`, `duarouter`, ...)."""
    home = sumo_home()
    for cand in (home / "bin" / name, home / "bin" / f"{name}.exe"):
        if cand.is_file():
            return cand
    exe = shutil.which(name)
    if exe:
        return Path(exe)
    raise SumoUnavailable(f"SUMO's {name} was not found under {home / 'bin'} or on the PATH: {_INSTALL}")


def sumo_version() -> str:
    """SUMO's version as `sumo --version` prints it, e.g. '1.28.0'."""
    out = _run([str(sumo_binary("sumo")), "--version"], capture=True)
    first = out.splitlines()[0] if out else ""
    return first.rsplit(" ", 1)[-1] if first else "unknown"


def sumo_missing(binding: bool = False) -> str | None:
    """Why SUMO cannot be used here (None when it can); `binding` also requires libsumo or traci."""
    try:
        sumo_binary("sumo")
        sumo_binary("netgenerate")
        if not (sumo_home() / "tools" / "randomTrips.py").is_file():
            return "SUMO's tools/randomTrips.py is missing"
    except SumoUnavailable as exc:
        return str(exc)
    if binding:
        try:
            _binding("libsumo")
        except SumoUnavailable:
            try:
                _binding("traci")
            except SumoUnavailable as exc:
                return str(exc)
    return None


def binding_missing(backend: Literal["libsumo", "traci"]) -> str | None:
    """Why a live run through `backend` cannot start here (None when it can): traci also needs the `sumo` program."""
    try:
        _binding(backend)
        if backend == "traci":
            sumo_binary("sumo")
    except SumoUnavailable as exc:
        return str(exc)
    return None


def read_sumo_config(path: str | Path) -> dict[str, str]:
    """The options of a SUMO configuration file (`<configuration><input><net-file value="..."/>...`): option name
    to its value, as written (paths in it are relative to the file's folder)."""
    path = Path(path)
    options: dict[str, str] = {}
    depth = [0]

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        depth[0] += 1
        if depth[0] == 1 and tag not in ("configuration", "sumoConfiguration"):
            raise FileFormatError(f"not a SUMO configuration: the root element is <{tag}>, not <configuration>", path,
                                  line)
        if depth[0] >= 2 and "value" in attrs:
            options[tag] = attrs["value"]

    def end(tag: str, line: int) -> None:
        depth[0] -= 1

    parse_stream(path, start, end)
    return options


def route_vehicles(routes: Sequence[str | Path]) -> int:
    """How many vehicles route files insert (`<vehicle>` and `<trip>` elements); FileFormatError for a `<flow>`, whose
    count depends on the run."""
    return sum(_vehicles_in(Path(p)) for p in routes)


def _vehicles_in(path: Path) -> int:
    n = [0]

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        if tag in ("vehicle", "trip"):
            n[0] += 1
        elif tag == "flow":
            raise FileFormatError("a <flow> inserts vehicles as the run goes: give the most vehicles the run may "
                                  "insert (sumo.vehicles)", path, line)

    parse_stream(path, start)
    return n[0]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    home = sumo_home()
    env["SUMO_HOME"] = str(home)  # SUMO's tools find sumolib and the programs here
    return env


def _run(cmd: Sequence[str], cwd: Path | None = None, capture: bool = False) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SumoFailed(f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n{tail}")
    return proc.stdout if capture else ""


# ------------------------------------------------------------------------------------------------ a run
@dataclass(frozen=True)
class SumoRun:
    """What SUMO simulates: a network, route files and the time window, with SUMO's step length and seed."""

    net: Path
    routes: tuple[Path, ...]
    end: float
    begin: float = 0.0
    step_length: float = 1.0
    seed: int = 0
    options: tuple[str, ...] = ()  # further SUMO options, e.g. ("--time-to-teleport", "-1")

    def args(self) -> list[str]:
        """SUMO's command-line options for this run (without the program)."""
        return ["--net-file", str(self.net), "--route-files", ",".join(str(r) for r in self.routes),
                "--begin", _num(self.begin), "--end", _num(self.end), "--step-length", _num(self.step_length),
                "--seed", str(int(self.seed)), "--no-step-log", "true", "--duration-log.disable", "true",
                "--xml-validation", "never", *self.options]


def _num(x: float) -> str:
    return repr(float(x))


def run_fcd(run: SumoRun, out: str | Path, period: float | None = None, precision: int = 2,
            attributes: Sequence[str] = ("x", "y")) -> Path:
    """Run SUMO and write its FCD trace to `out` (gzip-compressed when the name ends in .gz), atomically.

    `period` samples every that many seconds (default: every step), `precision` is the number of decimals SUMO
    writes, `attributes` the per-vehicle values kept besides the id (SUMO's --fcd-output.attributes).
    """
    out = Path(out)
    tmp = out.with_name(f".partial-{os.getpid()}-{out.name}")  # keeps the suffix SUMO picks compression from
    cmd = [str(sumo_binary("sumo")), *run.args(), "--fcd-output", str(tmp), "--precision", str(int(precision))]
    if attributes:
        cmd += ["--fcd-output.attributes", ",".join(attributes)]
    if period is not None:
        cmd += ["--device.fcd.period", _num(period)]
    try:
        _run(cmd)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ------------------------------------------------------------------------------------------------ a city
@dataclass(frozen=True)
class CitySpec:
    """A generated city: its street network and random trips.

    network "grid": `blocks` = (blocks along x, blocks along y), each `block_length` metres square.
    network "spider": `blocks` = (arms, rings), rings `block_length` metres apart.
    `vehicles` trips depart one every depart_end / vehicles seconds from 0, each at least `min_trip` metres from
    origin to destination (straight line; randomTrips.py drops trips it cannot route, the manifest counts those
    kept); SUMO inserts each at its departure or, when the road is full, a little later, and runs until `duration`.
    """

    network: Literal["grid", "spider"] = "grid"
    blocks: tuple[int, int] = (6, 6)
    block_length: float = 100.0
    lanes: int = 1
    vehicles: int = 300
    depart_end: float = 240.0
    duration: float = 300.0
    min_trip: float = 0.0
    seed: int = 0
    step_length: float = 1.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        except (TypeError, ValueError):
            raise ValueError(f"blocks must be two integers >= 1 (got {self.blocks!r})") from None
        problems = []
        if self.network not in ("grid", "spider"):
            problems.append(f"network must be 'grid' or 'spider' (got {self.network!r})")
        if len(self.blocks) != 2 or min(self.blocks) < 1:
            problems.append(f"blocks must be two integers >= 1 (got {self.blocks})")
        if self.network == "spider" and len(self.blocks) == 2 and self.blocks[0] < 3:
            problems.append(f"a spider network needs at least 3 arms (got {self.blocks[0]})")
        for name in ("block_length", "depart_end", "duration", "step_length", "min_trip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and (v >= 0 if name == "min_trip" else v > 0)):
                problems.append(f"{name} must be a number {'>= 0' if name == 'min_trip' else '> 0'} (got {v!r})")
            else:
                object.__setattr__(self, name, float(v))  # 100 and 100.0 are one city (one cache key)
        for name, least in (("lanes", 1), ("vehicles", 1), ("seed", 0)):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= least):
                problems.append(f"{name} must be an integer >= {least} (got {v!r})")
        if not problems and self.depart_end > self.duration:
            problems.append(f"depart_end ({self.depart_end:g}) must not be after duration ({self.duration:g})")
        if not problems and self.depart_end / self.vehicles < 0.01:
            problems.append(f"{self.vehicles} vehicles in {self.depart_end:g} s depart less than 0.01 s apart")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class City:
    """A generated city in its cache folder: network, routes, and the commands that made them."""

    spec: CitySpec
    folder: Path
    net: Path
    routes: Path
    commands: tuple[str, ...] = field(default=())

    def run(self, **changes: Any) -> SumoRun:
        """The SUMO run of this city over [0, duration) with its seed and step (fields can be changed)."""
        base = dict(net=self.net, routes=(self.routes,), end=self.spec.duration, step_length=self.spec.step_length,
                    seed=self.spec.seed)
        base.update(changes)
        return SumoRun(**base)


_MANIFEST = "city.json"


def build_city(spec: CitySpec, cache_dir: str | Path) -> City:
    """The city of `spec`, generated into `cache_dir/<network>-<a>x<b>-<hash>/` unless already there; the hash is of
    the commands that make it and SUMO's version, so a changed spec, generator or SUMO gets a folder of its own."""
    cache_dir = Path(cache_dir)
    version = sumo_version()
    key = hashlib.sha256(json.dumps([city_commands(spec), version]).encode()).hexdigest()[:12]
    folder = cache_dir / f"{spec.network}-{spec.blocks[0]}x{spec.blocks[1]}-{key}"
    manifest = folder / _MANIFEST
    if manifest.is_file():
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        return City(spec, folder, folder / doc["net"], folder / doc["routes"], tuple(doc["commands"]))
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".building-{folder.name}-"))
    try:
        commands = _generate(spec, work)
        doc = {"spec": asdict(spec), "sumo_version": version, "net": "net.net.xml", "routes": "routes.rou.xml",
               "vehicles": _count_vehicles(work / "routes.rou.xml"), "commands": commands}
        (work / _MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        try:
            os.replace(work, folder)
        except OSError:  # another process built it meanwhile
            if not manifest.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return City(spec, folder, folder / "net.net.xml", folder / "routes.rou.xml", tuple(commands))


def city_commands(spec: CitySpec) -> list[list[str]]:
    """The commands that generate `spec` in the current folder (programs named as on the PATH)."""
    bx, by = spec.blocks
    if spec.network == "grid":
        net = ["netgenerate", "--grid", "--grid.x-number", str(bx + 1), "--grid.y-number", str(by + 1),
               "--grid.x-length", _num(spec.block_length), "--grid.y-length", _num(spec.block_length)]
    else:
        net = ["netgenerate", "--spider", "--spider.arm-number", str(bx), "--spider.circle-number", str(by),
               "--spider.space-radius", _num(spec.block_length)]
    net += ["--default.lanenumber", str(spec.lanes), "--seed", str(spec.seed), "--output-file", "net.net.xml"]
    period = spec.depart_end / spec.vehicles
    last = round(period * (spec.vehicles - 0.5), 3)  # trips depart at 0, period, ... before --end: `vehicles` of them
    trips = ["python", "randomTrips.py", "--net-file", "net.net.xml", "--begin", "0", "--end", repr(last),
             "--period", repr(period), "--seed", str(spec.seed), "--validate", "--output-trip-file", "trips.trips.xml",
             "--route-file", "routes.rou.xml"]
    if spec.min_trip > 0:
        trips += ["--min-distance", _num(spec.min_trip)]
    return [net, trips]


def _generate(spec: CitySpec, work: Path) -> list[str]:
    """Run the commands of `city_commands` in `work`; returns them as text."""
    done = []
    for cmd in city_commands(spec):
        exe = [sys.executable, str(sumo_home() / "tools" / cmd[1])] if cmd[0] == "python" else [str(sumo_binary(cmd[0]))]
        args = cmd[2:] if cmd[0] == "python" else cmd[1:]
        _run([*exe, *args], cwd=work)
        done.append(" ".join(cmd))
    if _count_vehicles(work / "routes.rou.xml") == 0:
        raise SumoFailed(f"randomTrips.py made no routable trip for {spec} (lower min_trip?)")
    return done


def _count_vehicles(routes: Path) -> int:
    return _vehicles_in(routes)


# ------------------------------------------------------------------------------------------------ live
_LIBSUMO_OWNER: list[Any] = []  # the LiveSumo holding the process's one libsumo simulation


def _binding(name: str) -> Any:
    try:
        if name == "libsumo":
            import libsumo as mod
        else:
            import traci as mod
    except ImportError:
        raise SumoUnavailable(f"the Python module {name} is not installed: {_INSTALL}") from None
    return mod


def _start(start: Any, args: list[str]) -> None:
    try:
        start()
    except Exception as exc:  # libsumo and traci raise their own exception types for a run SUMO refuses
        raise SumoFailed(f"SUMO could not start with {' '.join(args)}: {type(exc).__name__}: {exc}") from None


class LiveSumo:
    """A SUMO run driven step by step as a mobility source: `at(t)` for non-decreasing simulator times t.

    The vehicles present at a SUMO step are those on the road after that step (as SUMO's FCD export lists them);
    vehicles are numbered in the order they first appear, ties by name, as fieldlearn.sim.traces numbers a trace.
    Between two steps, a vehicle present at both moves linearly; after the last step nobody is present.
    Vehicles SUMO teleports (off the road for a while) are absent during the teleport.

    `backend` "libsumo" runs SUMO inside this process (fast; one simulation per process), "traci" as a separate
    program over a local socket. `fcd_output` also has SUMO write its FCD trace (`fcd_precision` decimals).
    """

    def __init__(self, run: SumoRun, timemap: TimeMap = TimeMap(), backend: Literal["libsumo", "traci"] = "libsumo",
                 fcd_output: str | Path | None = None, fcd_precision: int = 8):
        if backend not in ("libsumo", "traci"):
            raise ValueError(f"backend must be 'libsumo' or 'traci' (got {backend!r})")
        self.run, self.timemap, self.backend = run, timemap, backend
        mod = _binding(backend)
        self._pos = mod.constants.VAR_POSITION
        args = run.args()
        if fcd_output is not None:
            args += ["--fcd-output", str(fcd_output), "--precision", str(int(fcd_precision))]
        if backend == "libsumo":
            if _LIBSUMO_OWNER:
                raise RuntimeError("libsumo runs one simulation per process and another LiveSumo holds it: "
                                   "close() that one, or use backend='traci'")
            _start(lambda: mod.start(["sumo", *args]), args)
            _LIBSUMO_OWNER.append(self)
            self._sim = mod
        else:
            label = f"fieldlearn-{id(self)}"
            _start(lambda: mod.start([str(sumo_binary("sumo")), *args], label=label), args)
            self._sim = mod.getConnection(label)
        self._dt = float(self._sim.simulation.getDeltaT())
        self._names: list[str] = []
        self._number: dict[str, int] = {}
        self._cur: MobilityFrame | None = None  # the last SUMO step at or before the asked time
        self._ahead: MobilityFrame | None = None  # the step after it (None: not taken yet, or the run is over)
        self._over = False
        self._closed = False

    @property
    def names(self) -> list[str]:
        return self._names

    @property
    def upcoming(self) -> MobilityFrame | None:
        """The first SUMO step after the time last asked, already taken (its time is SUMO's); None before the first
        `at` or once the run is over. The vehicles of the last step missing from it leave after that step."""
        return self._ahead

    @property
    def finished(self) -> bool:
        """Whether SUMO has no step left (every later `at` answers nobody)."""
        return self._over and self._ahead is None

    def _step(self) -> MobilityFrame | None:
        """Advance SUMO one step: the vehicles on the road after it, at the step's time; None after the end."""
        sim = self._sim
        if self._over or sim.simulation.getTime() >= self.run.end - 1e-9:
            self._over = True
            return None
        sim.simulationStep()
        t = round((sim.simulation.getTime() - self._dt) * 1000.0) / 1000.0  # SUMO counts milliseconds
        for vid in sim.simulation.getDepartedIDList():
            sim.vehicle.subscribe(vid, [self._pos])
        res = sim.vehicle.getAllSubscriptionResults()
        onroad = {vid: r[self._pos] for vid, r in res.items() if r[self._pos][0] > -1e9}  # off road: INVALID
        new = sorted(v for v in onroad if v not in self._number)
        for v in new:
            self._number[v] = len(self._names)
            self._names.append(v)
        idx = np.fromiter((self._number[v] for v in onroad), dtype=np.int64, count=len(onroad))
        xy = np.asarray([onroad[v] for v in onroad], dtype=np.float64).reshape(-1, 2)
        order = np.argsort(idx, kind="stable")
        idx, xy = idx[order], xy[order]
        idx.flags.writeable = xy.flags.writeable = False  # a frame may be handed out twice
        return MobilityFrame(t, idx, xy)

    def at(self, t: float) -> MobilityFrame:
        """Vehicles present at simulator time t and their positions."""
        if self._closed:
            raise RuntimeError("this LiveSumo is closed")
        s = float(self.timemap.source_time(float(t)))
        if not math.isfinite(s):
            raise ValueError(f"time must be finite (got {t})")
        if self._cur is not None and s < self._cur.time:
            raise ValueError(f"LiveSumo.at needs non-decreasing times (asked {t:g} after a later step)")
        if self._cur is None and self._ahead is None and not self._over:
            self._ahead = self._step()
        while self._ahead is not None and self._ahead.time <= s:
            self._cur, self._ahead = self._ahead, self._step()
        cur, ahead = self._cur, self._ahead
        empty = MobilityFrame(float(t), np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
        if cur is None:
            return empty  # before SUMO's first step
        if s == cur.time:
            return MobilityFrame(float(t), cur.index, cur.xy)
        if ahead is None:
            return empty  # after the last step
        both, ia, ib = np.intersect1d(cur.index, ahead.index, assume_unique=True, return_indices=True)
        frac = (s - cur.time) / (ahead.time - cur.time)
        a = cur.xy[ia]
        return MobilityFrame(float(t), both, a + (ahead.xy[ib] - a) * frac)

    def close(self) -> None:
        """End the SUMO run (it writes its outputs then)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sim.close()
        finally:
            if self in _LIBSUMO_OWNER:
                _LIBSUMO_OWNER.remove(self)

    def __enter__(self) -> "LiveSumo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
