"""The learning context of a run: configuration, data over regions, fresh models, the latest models and their
evaluation; and the aggregate helpers programs use to reach it from inside a round.

A learning program (see `programs/c2fl.py`) is an ordinary aggregate program; what it needs from outside the
calculus (the dataset, each device's partition, the optimiser settings) lives in a `LearningContext` attached to
the VM that runs it. A simulator `setup` hook builds one from the scenario's `learning:` block
(`setup_engine`), or a test builds one by hand and `attach`es it to a VM.

    learning:
      dataset: digits            # digits | fashion-mnist | a directory of IDX files (MNIST format)
      downsample: 1              # average-pool images by this factor (2: 28x28 -> 14x14)
      partition: hard            # hard | iid | dirichlet(0.5): classes over the scenario's regions, in order
      train_fraction: 0.7        # per region: training part (split among its devices) / validation part
      model: {hidden: [32]}      # an MLP inputs -> hidden... -> classes, ReLU
      optimiser: {kind: adam, lr: 0.001, weight_decay: 0.0001}
      epochs: 2                  # local epochs per round over the round's samples
      batch_size: 32
      samples_per_round: null    # samples a device trains on per round (a fresh draw from its part each round)
      eval_every: 5              # evaluate every this many rounds
      eval_samples: 300          # per region, a fixed subsample of its validation split (null: all of it)
      init: shared               # shared: every device starts from the same model | independent
      seed: null                 # data, model and training seed (null: the scenario's seed)
      threads: 1                 # torch threads of a cpu run (1 is much faster for small models on a busy
                                 # machine: idle OpenMP threads spin); null keeps torch's default
"""
from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from fieldlearn.calculus import Field, aggregate, local, mid, sense
from fieldlearn.calculus.vm import current_vm

from .blocks import ReplayStore, Trainer, pad_sets
from .data import Dataset, IndexSets, as_index_array, keyed_uniform, load_digits, load_idx, make_region_data
from .metrics import accuracy_matrix
from .models import ModelField

__all__ = [
    "ConfigError", "LearningConfig", "LearningContext", "Evaluation", "MLP", "load_dataset", "attach", "context",
    "context_of", "fresh_models", "sensed_samples", "keep_latest", "is_mobile", "round_number", "setup_engine",
    "engine_metrics", "DATASET_DIRS",
]

#: Names accepted for `learning.dataset`, besides a directory path: where Debian's dataset packages put them.
DATASET_DIRS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}
_SAMPLE_SALT, _EVAL_SALT = 21, 22


class ConfigError(ValueError):
    """A bad value in a learning configuration; `key` is its path inside the `learning:` block."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


# --------------------------------------------------------------------------------------------------
# configuration


def _int(raw: dict, key: str, default: Any, lo: int = 1, none_ok: bool = False, where: str | None = None) -> Any:
    v = raw.get(key, default)
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(where or key, f"must be an integer >= {lo}{' or null' if none_ok else ''}, got {v!r}")
    return v


def _float(raw: dict, key: str, default: Any, lo: float, hi: float = math.inf, where: str | None = None,
           open_lo: bool = False) -> float:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > lo if open_lo else v >= lo) or v > hi:
        bound = f"{'>' if open_lo else '>='} {lo}" + (f" and <= {hi}" if hi != math.inf else "")
        raise ConfigError(where or key, f"must be a number {bound}, got {v!r}")
    return float(v)


def _mapping(raw: dict, key: str, allowed: set[str]) -> dict:
    v = raw.get(key, {})
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(key, f"must be a mapping, got {v!r}")
    for k in v:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return v


@dataclass(frozen=True)
class LearningConfig:
    """The validated `learning:` block of a scenario (see the module docstring for the keys)."""

    dataset: str = "digits"
    downsample: int = 1
    partition: str = "hard"
    alpha: float = 0.5
    train_fraction: float = 0.7
    hidden: tuple[int, ...] = (128,)
    optimiser: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.0
    epochs: int = 2
    batch_size: int = 32
    samples_per_round: int | None = None
    eval_every: int = 5
    eval_samples: int | None = None
    init: str = "shared"
    seed: int | None = None
    threads: int | None = 1

    KEYS = ("dataset", "downsample", "partition", "train_fraction", "model", "optimiser", "epochs", "batch_size",
            "samples_per_round", "eval_every", "eval_samples", "init", "seed", "threads")

    @classmethod
    def parse(cls, raw: Any) -> "LearningConfig":
        """Validate a raw mapping; a bad value raises ConfigError naming its key path."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError("", f"must be a mapping of settings, got {type(raw).__name__}")
        for k in raw:
            if k not in cls.KEYS:
                raise ConfigError(str(k), f"unknown key (allowed: {', '.join(cls.KEYS)})")
        dataset = raw.get("dataset", "digits")
        if not isinstance(dataset, str) or not dataset:
            raise ConfigError("dataset", f"must be 'digits', 'fashion-mnist' or a directory of IDX files, got {dataset!r}")
        partition, alpha = _partition(raw.get("partition", "hard"))
        model = _mapping(raw, "model", {"kind", "hidden"})
        if model.get("kind", "mlp") != "mlp":
            raise ConfigError("model.kind", f"only 'mlp' is available, got {model.get('kind')!r}")
        hidden = model.get("hidden", [128])
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = [hidden]
        if not isinstance(hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ConfigError("model.hidden", f"must be a list of positive layer sizes, got {hidden!r}")
        opt = _mapping(raw, "optimiser", {"kind", "lr", "weight_decay", "momentum"})
        kind = opt.get("kind", "adam")
        if kind not in ("adam", "sgd"):
            raise ConfigError("optimiser.kind", f"must be 'adam' or 'sgd', got {kind!r}")
        init = raw.get("init", "shared")
        if init not in ("shared", "independent"):
            raise ConfigError("init", f"must be 'shared' or 'independent', got {init!r}")
        seed = raw.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError("seed", f"must be a non-negative integer or null, got {seed!r}")
        return cls(
            dataset=dataset,
            downsample=_int(raw, "downsample", 1),
            partition=partition,
            alpha=alpha,
            train_fraction=_float(raw, "train_fraction", 0.7, 0.0, 1.0, open_lo=True),
            hidden=tuple(hidden),
            optimiser=kind,
            lr=_float(opt, "lr", 1e-3, 0.0, where="optimiser.lr", open_lo=True),
            weight_decay=_float(opt, "weight_decay", 1e-4, 0.0, where="optimiser.weight_decay"),
            momentum=_float(opt, "momentum", 0.0, 0.0, 1.0, where="optimiser.momentum"),
            epochs=_int(raw, "epochs", 2),
            batch_size=_int(raw, "batch_size", 32),
            samples_per_round=_int(raw, "samples_per_round", None, none_ok=True),
            eval_every=_int(raw, "eval_every", 5),
            eval_samples=_int(raw, "eval_samples", None, none_ok=True),
            init=init,
            seed=seed,
            threads=_int(raw, "threads", 1, none_ok=True),
        )


def _partition(v: Any) -> tuple[str, float]:
    """`hard`, `iid`, `dirichlet`, `dirichlet(0.3)` or `{kind: dirichlet, alpha: 0.3}`."""
    if isinstance(v, dict):
        extra = set(v) - {"kind", "alpha"}
        if extra:
            raise ConfigError(f"partition.{sorted(extra)[0]}", "unknown key (allowed: kind, alpha)")
        kind, alpha = v.get("kind"), v.get("alpha", 0.5)
    elif isinstance(v, str):
        text = v.replace(" ", "")
        kind, alpha = text, 0.5
        if text.startswith("dirichlet(") and text.endswith(")"):
            kind = "dirichlet"
            try:
                alpha = float(text[len("dirichlet("):-1])
            except ValueError:
                raise ConfigError("partition", f"cannot read the concentration in {v!r}") from None
    else:
        kind, alpha = None, 0.5
    if kind not in ("hard", "iid", "dirichlet"):
        raise ConfigError("partition", f"must be hard, iid or dirichlet(alpha), got {v!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError("partition", f"the Dirichlet concentration must be > 0, got {alpha!r}")
    return kind, float(alpha)


# --------------------------------------------------------------------------------------------------
# datasets and models


@functools.lru_cache(maxsize=4)
def _load(name: str, downsample: int) -> Dataset:
    if name == "digits":
        ds = load_digits()
        side = 8
    else:
        ds = load_idx(name, "train", name=Path(name).name)
        side = int(round(math.sqrt(ds.inputs.shape[1])))
    if downsample > 1:
        if side * side != ds.inputs.shape[1] or side % downsample:
            raise ConfigError("downsample", f"{side}x{side} images cannot be pooled by {downsample}")
        pooled = torch.nn.functional.avg_pool2d(ds.inputs.view(-1, 1, side, side), downsample)
        ds = Dataset(pooled.reshape(len(ds), -1).contiguous(), ds.labels, ds.n_classes, f"{ds.name}/{downsample}")
    return ds


def load_dataset(name: str, downsample: int = 1, base_dir: str | Path | None = None) -> Dataset:
    """`digits` (scikit-learn's, embedded), `fashion-mnist`/`mnist` (Debian's dataset packages), or a directory
    of IDX files (relative to `base_dir`); the training split only (regions split it into train/validation)."""
    if name != "digits":
        path = Path(DATASET_DIRS.get(name, name))
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_dir():
            hint = " (install Debian's dataset-fashion-mnist package)" if name == "fashion-mnist" else ""
            raise ConfigError("dataset", f"{name!r}: no directory {path}{hint}")
        name = str(path.resolve())
    try:
        return _load(name, int(downsample))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("dataset", f"cannot read {name!r}: {exc}") from None


class MLP(nn.Sequential):
    """inputs -> hidden... -> classes with ReLU between layers."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], classes: int):
        sizes = [inputs, *hidden, classes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        super().__init__(*layers[:-1])


# --------------------------------------------------------------------------------------------------
# the context


@dataclass
class Evaluation:
    """Accuracy of every device's latest model on every region's evaluation set after `round` rounds.

    `accuracy` is `[devices, regions]` (NaN for devices without a model); `region` is where each device was;
    `others` holds the same for other recorded models (e.g. `regional`: the region's model each device holds).
    """

    round: int
    time: float
    accuracy: np.ndarray
    region: np.ndarray
    mobile: np.ndarray
    others: dict[str, np.ndarray] = field(default_factory=dict)

    def cacc(self) -> float:
        """Mean over mobile devices (with a model) of their summed accuracy over the regions."""
        acc = self.accuracy[self.mobile]
        acc = acc[~np.isnan(acc).any(axis=1)]
        return float(acc.sum(axis=1).mean()) if len(acc) else math.nan

    def own(self, devices: np.ndarray | None = None, name: str | None = None) -> float:
        """Mean accuracy of the selected devices (default: all with a model) on the region they are in (of their
        `name`d model, default their own)."""
        acc = self.accuracy if name is None else self.others[name]
        sel = np.arange(len(self.region)) if devices is None else as_index_array(devices)
        sel = sel[(self.region[sel] >= 0)]
        vals = acc[sel, self.region[sel]]
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if len(vals) else math.nan

    def per_region(self, name: str | None = None) -> np.ndarray:
        """For every region, the mean accuracy on it of the (`name`d) models of the devices in it (NaN if none)."""
        acc = self.accuracy if name is None else self.others[name]
        out = np.full(acc.shape[1], math.nan)
        for r in range(acc.shape[1]):
            vals = acc[self.region == r, r]
            vals = vals[~np.isnan(vals)]
            if len(vals):
                out[r] = vals.mean()
        return out


class LearningContext:
    """Everything a learning program needs beyond its fields: data over regions, the trainer, fresh models,
    replay stores, the latest model of every device, and evaluations of those models."""

    def __init__(self, config: LearningConfig, *, n_devices: int, region_names: list[str], initial_region: Any,
                 mobile: Any = None, seed: int = 0, period: float = 1.0, device: Any = "cpu",
                 base_dir: str | Path | None = None):
        self.config = config
        self.n_devices = int(n_devices)
        self.region_names = list(region_names)
        if not self.region_names:
            raise ConfigError("", "a learning scenario needs `regions`: data are partitioned over them")
        self.period = float(period)
        self.device = torch.device(device)
        self.seed = int(config.seed if config.seed is not None else seed)
        self.mobile = np.zeros(self.n_devices, dtype=bool) if mobile is None else np.asarray(mobile, dtype=bool).copy()
        region0 = as_index_array(initial_region)
        if region0.size != self.n_devices:
            raise ValueError(f"initial_region has {region0.size} entries for {self.n_devices} devices")
        n_regions = len(self.region_names)

        base = load_dataset(config.dataset, config.downsample, base_dir)
        self.dataset = base.to(self.device)
        self.n_classes = base.n_classes
        # each region's training part is split among the devices that start in it; a device uses the part of
        # its rank there wherever it is (so a newcomer takes the slot of the device that left)
        parts = np.bincount(region0[region0 >= 0], minlength=n_regions).astype(np.int64)
        self.part_of_device = np.arange(self.n_devices, dtype=np.int64)
        for r in range(n_regions):
            members = np.flatnonzero(region0 == r)
            self.part_of_device[members] = np.arange(members.size)
        try:
            self.data = make_region_data(base, n_regions, np.maximum(parts, 1), config.partition, alpha=config.alpha,
                                         train_fraction=config.train_fraction, seed=self.seed)
        except ValueError as exc:
            raise ConfigError("partition", str(exc)) from None
        val = self.data.validation
        if config.eval_samples is not None:
            keys = keyed_uniform(self.seed, _EVAL_SALT, val.row_ids(), val.indices)
            val = val.keep_lowest(keys, np.full(len(val), config.eval_samples, dtype=np.int64))
        self.eval_sets = val
        self.trainer = Trainer(self.dataset, epochs=config.epochs, batch_size=config.batch_size,
                               optimiser=config.optimiser, lr=config.lr, weight_decay=config.weight_decay,
                               momentum=config.momentum, seed=self.seed)
        self.in_features = int(np.prod(base.inputs.shape[1:]))
        self.recorded: dict[str, ModelField] = {}
        self.has_model: dict[str, np.ndarray] = {}
        self.history: list[Evaluation] = []
        self.stores: dict[Any, Any] = {}

    # -- models ----------------------------------------------------------------------------------
    def make_module(self) -> nn.Module:
        """A fresh model of the configured architecture."""
        return MLP(self.in_features, self.config.hidden, self.n_classes)

    def initial_models(self, ids: Any) -> ModelField:
        """Fresh models for the devices `ids` (raw tensors): one shared initialisation, or independent ones."""
        n = len(ids)
        if self.config.init == "shared":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                module = self.make_module()
            return ModelField.replicate(module.to(self.device), n)
        seed = int(keyed_uniform(self.seed, 31, as_index_array(ids)).sum() * 2**40)
        return ModelField.from_factory(self.make_module, n, seed=seed, device=self.device)

    def record_rows(self, ids: Any, models: ModelField, name: str = "models") -> None:
        """Keep the latest models of the devices `ids` (under `name`) for evaluation."""
        idx = torch.as_tensor(as_index_array(ids), device=self.device)
        store = self.recorded.get(name)
        if store is None:
            store = self.recorded[name] = models[0:1].expand(self.n_devices)
            self.has_model[name] = np.zeros(self.n_devices, dtype=bool)
        with torch.no_grad():
            for k, t in store.tensors().items():
                t[idx] = models.tensors()[k].detach().to(t.device, t.dtype)
        self.has_model[name][as_index_array(ids)] = True

    @property
    def latest(self) -> ModelField | None:
        """The latest model of every device (rows of devices that never recorded one are meaningless)."""
        return self.recorded.get("models")

    def forget(self, ids: Any) -> None:
        """Drop the recorded models of devices (e.g. crashed ones)."""
        for have in self.has_model.values():
            have[as_index_array(ids)] = False

    # -- data --------------------------------------------------------------------------------------
    def samples(self, ids: Any, region: Any, round_: int) -> IndexSets:
        """Each device's samples this round (sorted): its part of the region it is in (none outside regions), or a
        draw of `samples_per_round` of it hashed from (seed, round, device, sample)."""
        dev = as_index_array(ids)
        sets = self.data.device_sets(as_index_array(region), self.part_of_device[dev])
        k = self.config.samples_per_round
        if k is not None and sets.nnz:
            keys = keyed_uniform(self.seed, _SAMPLE_SALT, int(round_), dev[sets.row_ids()], sets.indices)
            sets = sets.keep_lowest(keys, np.full(len(sets), k, dtype=np.int64))
        return sets.unique()  # sorted rows: the same set always reaches training in the same order

    def sample_rows(self, ids: Any, region: Any, time: Any) -> torch.Tensor:
        """`samples` as padded rows (a sample field's values); `time` is the simulated time (one value per device)."""
        t = float(time.reshape(-1)[0]) if hasattr(time, "reshape") and len(time) else float(time)
        return pad_sets(self.samples(ids, region, int(math.floor(t / self.period + 1e-9))), self.device)

    def replay_store(self, policy: Any, *, key: Any = None) -> ReplayStore:
        """The replay store for `policy` (made on first use, then kept for the run)."""
        key = ("replay", str(policy), key)
        if key not in self.stores:
            self.stores[key] = ReplayStore(self.n_devices, policy, labels=self.dataset.labels.cpu(), seed=self.seed)
        return self.stores[key]

    def memory_sizes(self) -> np.ndarray:
        """Samples in every device's replay memory (summed over the run's stores; zeros without replay)."""
        out = np.zeros(self.n_devices, dtype=np.int64)
        for key, store in self.stores.items():
            if key[0] == "replay":
                out += store.sizes()
        return out

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, devices: Any = None, name: str = "models", region: Any = None) -> np.ndarray:
        """Accuracy `[devices, regions]` of the selected devices' latest (`name`d) models on every region's
        evaluation set (NaN where a device has none). With `region` (where each device is), static devices are
        scored on their own region only (NaN elsewhere): one batched pass per region over the devices it needs."""
        sel = np.arange(self.n_devices) if devices is None else as_index_array(devices)
        out = np.full((sel.size, len(self.region_names)), np.nan)
        store = self.recorded.get(name)
        if store is None:
            return out
        have = self.has_model[name][sel]
        if region is None:
            if have.any():
                out[have] = accuracy_matrix(store, self.dataset, self.eval_sets, devices=sel[have])
            return out
        where = as_index_array(region)[sel]
        for r in range(len(self.region_names)):
            need = have & (self.mobile[sel] | (where == r))
            if need.any():
                one = IndexSets.from_lists([self.eval_sets.row(r)])
                out[need, r] = accuracy_matrix(store, self.dataset, one, devices=sel[need])[:, 0]
        return out

    def evaluation(self, round_: int, time: float, region: Any) -> Evaluation:
        """The evaluation of every recorded model after `round_` rounds (computed once, kept in `history`): mobile
        devices on every region, static ones on their own."""
        if self.history and self.history[-1].round == round_:
            return self.history[-1]
        here = as_index_array(region).copy()
        others = {name: self.evaluate(name=name, region=here) for name in self.recorded if name != "models"}
        ev = Evaluation(int(round_), float(time), self.evaluate(region=here), here, self.mobile.copy(), others)
        self.history.append(ev)
        return ev

    def table(self, devices: Any = None) -> tuple[list[str], list[list[Any]]]:
        """The history as rows `round, cacc, static_accuracy, d<id>.<region>...` for the selected (default: mobile)
        devices: one row per evaluation."""
        sel = np.flatnonzero(self.mobile) if devices is None else as_index_array(devices)
        cols = ["round", "cacc", "static_accuracy"] + [f"d{d}.{r}" for d in sel for r in self.region_names]
        rows = []
        for ev in self.history:
            static = np.flatnonzero(~ev.mobile)
            rows.append([ev.round, ev.cacc(), ev.own(static)] + ev.accuracy[sel].reshape(-1).tolist())
        return cols, rows


# --------------------------------------------------------------------------------------------------
# reaching the context from a round

_CONTEXTS: "weakref.WeakKeyDictionary[Any, LearningContext]" = weakref.WeakKeyDictionary()


def attach(vm: Any, ctx: LearningContext) -> LearningContext:
    """Make `ctx` the learning context of the programs `vm` runs."""
    _CONTEXTS[vm] = ctx
    return ctx


def context_of(vm: Any) -> LearningContext | None:
    """The learning context attached to `vm`, if any."""
    return _CONTEXTS.get(vm)


def context() -> LearningContext:
    """The learning context of the running round."""
    ctx = _CONTEXTS.get(current_vm())
    if ctx is None:
        raise RuntimeError("this program learns and needs a learning context: give its scenario a `learning:` block "
                           "(the program's setup hook attaches it), or attach(vm, LearningContext(...)) yourself")
    return ctx


def fresh_models() -> ModelField:
    """Fresh models for the devices of the current domain (as rep's lazy init: `rep(fresh_models, step)`).

    Deliberately not an `@aggregate` block: rep runs its init only in rounds where some device lacks state, and a
    call that took a position at the path level there would shift the paths of the constructs after it in that
    round only (their neighbours would not align with them in the next round)."""
    return local(context().initial_models)(mid())


@aggregate
def round_number() -> Field:
    """The index of the current round (simulated time over the schedule's period), per device."""
    ctx = context()
    return local(lambda t: torch.floor(t.double() / ctx.period + 1e-9).long())(sense("time"))


@aggregate
def sensed_samples() -> Field:
    """D(t): each device's samples this round, from the region it is in now, as a sample field."""
    ctx = context()
    return local(ctx.sample_rows)(mid(), sense("region"), sense("time"))


@aggregate
def keep_latest(models: ModelField, name: str = "models") -> None:
    """Record the devices' current models in the context (under `name`; metrics evaluate `models` and, where
    recorded, `regional`)."""
    ctx = context()
    local(lambda ids, m: ctx.record_rows(ids, m, name))(mid(), models)


@aggregate
def is_mobile() -> Field:
    """Whether the device moves (the `mobile` sensor: set by `setup_engine` from the deployments' mobility)."""
    return sense("mobile")


# --------------------------------------------------------------------------------------------------
# simulator glue (duck-typed: no import of the simulator here)


def setup_engine(engine: Any, error: Callable[[str, str], Exception] | None = None) -> LearningContext:
    """Build the learning context of a simulator run from `engine.scenario.learning`, attach it to the engine's
    VM (and as `engine.learning`), and set the `mobile` sensor (deployments whose mobility is not static) unless
    the scenario defines one. `error(message, yaml_path)` makes the exception raised for a bad setting (the
    simulator's ScenarioError, so that the CLI reports `learning.<key>: ...`)."""
    make_error = error or (lambda message, path: ConfigError(path, message))
    s = engine.scenario
    if s.learning is None:
        raise make_error("this program learns: the scenario needs a `learning:` block (dataset, partition, ...)",
                         "learning")
    if "mobile" in getattr(engine, "sensors", {}):
        mobile = np.asarray(engine.sensors["mobile"], dtype=bool)
    else:
        mobile = np.zeros(engine.capacity, dtype=bool)
        for g in engine.groups:
            mobile[g.start:g.start + g.count] = getattr(g.deployment.mobility, "kind", "static") != "static"
    try:
        config = LearningConfig.parse(s.learning)
        ctx = LearningContext(config, n_devices=engine.capacity, region_names=s.region_names(),
                              initial_region=np.asarray(engine.region), mobile=mobile, seed=s.seed, period=s.period,
                              device=engine.device if engine.device != "cpu" else "cpu", base_dir=s.base_dir)
    except ConfigError as exc:
        raise make_error(exc.message, f"learning.{exc.key}" if exc.key else "learning") from None
    if config.threads is not None and ctx.device.type == "cpu":
        torch.set_num_threads(config.threads)
    engine.vm.sensors["mobile"] = mobile
    attach(engine.vm, ctx)
    engine.learning = ctx
    return ctx


def _latest(engine: Any) -> Evaluation | None:
    """The latest evaluation, made now if an evaluation point (a multiple of `eval_every` rounds completed) has been
    reached since the last one: exactly at it when rows are exported every round, else at the first row after it
    (the evaluation's `round` says when), so that rows exported less often never miss every evaluation."""
    ctx = context_of(engine.vm)
    if ctx is None:
        return None
    done = int(engine.rounds.max()) if len(engine.rounds) else 0
    due = done - done % ctx.config.eval_every
    if due > 0 and (not ctx.history or ctx.history[-1].round < due):
        ctx.evaluation(done, engine.time, engine.region)
    return ctx.history[-1] if ctx.history else None


def _accuracy_columns(engine: Any) -> dict[str, float]:
    ctx = context_of(engine.vm)
    ev = _latest(engine)
    movers = np.flatnonzero(ctx.mobile) if ctx is not None else []
    names = ctx.region_names if ctx is not None else []
    return {f"d{d}.{r}": (float(ev.accuracy[d, k]) if ev is not None else math.nan)
            for d in movers for k, r in enumerate(names)}


def engine_metrics() -> dict[str, Callable[[Any], Any]]:
    """Metrics for `exports.metrics` (evaluated every `eval_every` rounds; rows in between repeat the latest):
    `eval_round`; `cacc` (mobile devices); `accuracy` (columns `d<id>.<region>`, every mobile device on every
    region); `static_accuracy` (static devices, own region); `own_accuracy` (all devices, own region);
    `memory` (mean replay memory size of the mobile devices); `regional_accuracy` (the region's model that every
    device holds, where the program records one as `regional`, on the device's region); `area_accuracy` and
    `area_own` (columns per region: the regional / own models of the devices in it, on it)."""
    def value(fn: Callable[[Evaluation], float]) -> Callable[[Any], float]:
        return lambda engine: (lambda ev: fn(ev) if ev is not None else math.nan)(_latest(engine))

    def memory(engine: Any) -> float:
        ctx = context_of(engine.vm)
        if ctx is None or not ctx.mobile.any():
            return math.nan
        return float(ctx.memory_sizes()[ctx.mobile].mean())

    def per_region(name: str | None) -> Callable[[Any], dict[str, float]]:
        def fn(engine: Any) -> dict[str, float]:
            ctx = context_of(engine.vm)
            ev = _latest(engine)
            names = ctx.region_names if ctx is not None else []
            if ev is None or (name is not None and name not in ev.others):
                return {r: math.nan for r in names}
            return dict(zip(names, ev.per_region(name).tolist()))
        return fn

    return {
        "eval_round": value(lambda ev: ev.round),
        "regional_accuracy": value(lambda ev: ev.own(name="regional") if "regional" in ev.others else math.nan),
        "area_accuracy": per_region("regional"),
        "area_own": per_region(None),
        "cacc": value(Evaluation.cacc),
        "accuracy": _accuracy_columns,
        "static_accuracy": value(lambda ev: ev.own(np.flatnonzero(~ev.mobile))),
        "own_accuracy": value(lambda ev: ev.own()),
        "memory": memory,
    }
