"""The learning context of a run: data over regions, the trainer, fresh models, replay stores, the latest model of
every device and evaluations of those models. A runner (the simulator, `run_learning`) builds one from a
`LearningConfig` and lends it to the program as the resource `"learning"`; blocks reach it with
`learning_context()`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from fieldlearn.calculus import resource
from fieldlearn.calculus.keyed import keyed_uniform

from .config import LearningConfig
from .data import DatasetError, IndexSets, as_index_array, load_dataset, make_region_data
from .evaluation import Evaluation
from .metrics import accuracy_matrix
from .models import ModelField
from .replay import ReplayStore
from .samples import draw_per_device, pad_sets
from .trainer import Trainer

__all__ = ["ConfigError", "LearningContext", "learning_context", "RESOURCE"]

#: The name under which runners lend the learning context to programs (`RoundVM.resources`).
RESOURCE = "learning"
_SAMPLE_SALT, _EVAL_SALT, _INIT_SALT, _SUBSET_SALT = 21, 22, 31, 23


class ConfigError(ValueError):
    """A bad learning setting; `key` is its path inside the `learning:` block ("" for the block itself)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


def parse_config(raw: LearningConfig | Mapping[str, Any] | None) -> LearningConfig:
    """A LearningConfig from itself or a raw mapping; the first bad value raises ConfigError naming its key."""
    if isinstance(raw, LearningConfig):
        return raw
    try:
        return LearningConfig.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        raise ConfigError(key, err["msg"]) from None


class LearningContext:
    """Everything a learning program needs beyond its fields (see the module docstring)."""

    def __init__(self, config: LearningConfig | Mapping[str, Any] | None, *, n_devices: int, region_names: list[str],
                 initial_region: Any, mobile: Any = None, seed: int = 0, period: float = 1.0, device: Any = "cpu",
                 base_dir: str | Path | None = None, score_everywhere: bool = False):
        config = parse_config(config)
        self.config = config
        self.n_devices = int(n_devices)
        self.region_names = list(region_names)
        if not self.region_names:
            raise ConfigError("", "a learning scenario needs `regions`: data are partitioned over them")
        self.period = float(period)
        self.device = torch.device(device)
        self.eval_dtype = torch.bfloat16 if config.eval_precision == "bfloat16" else None  # None: the models' own
        self.seed = int(config.seed if config.seed is not None else seed)
        self.mobile = np.zeros(self.n_devices, dtype=bool) if mobile is None else np.asarray(mobile, dtype=bool).copy()
        self.score_everywhere = bool(score_everywhere)
        region0 = as_index_array(initial_region)
        if region0.size != self.n_devices:
            raise ValueError(f"initial_region has {region0.size} entries for {self.n_devices} devices")
        n_regions = len(self.region_names)
        try:
            base = load_dataset(config.dataset, config.downsample, base_dir)
        except DatasetError as exc:
            raise ConfigError(exc.key, exc.message) from None
        self.dataset = base.to(self.device)
        self.n_classes = base.n_classes
        # each region's training part is split among the devices that start in it (or into parts_per_region); a
        # device uses the part of its rank there wherever it is (so a newcomer takes the slot of the device that
        # left), or, with mover_part: spare, every mover uses the region's last part
        spare = config.mover_part == "spare"
        ranked = region0 >= 0 if not spare else (region0 >= 0) & ~self.mobile
        parts = np.bincount(region0[ranked], minlength=n_regions).astype(np.int64) + (1 if spare else 0)
        if config.parts_per_region is not None:
            parts = np.full(n_regions, config.parts_per_region, dtype=np.int64)
        self.part_of_device = np.arange(self.n_devices, dtype=np.int64)
        for r in range(n_regions):
            members = np.flatnonzero(ranked & (region0 == r))
            self.part_of_device[members] = np.arange(members.size)
        if spare:
            self.part_of_device[self.mobile] = -1  # the last part of whichever region the mover is in
        try:
            self.data = make_region_data(base, n_regions, np.maximum(parts, 1), config.partition.kind,
                                         alpha=config.partition.alpha, train_fraction=config.train_fraction,
                                         seed=self.seed)
        except ValueError as exc:
            raise ConfigError("partition", str(exc)) from None
        if config.part_fraction is not None:
            self.data = self.data.with_parts(_fixed_share(self.data.parts, config.part_fraction, self.seed))
        val = self.data.validation
        if config.eval_samples is not None:
            keys = keyed_uniform(self.seed, _EVAL_SALT, val.row_ids(), val.indices)
            val = val.keep_lowest(keys, np.full(len(val), config.eval_samples, dtype=np.int64))
        self.eval_sets = val
        opt = config.optimiser
        self.trainer = Trainer(self.dataset, epochs=config.epochs, batch_size=config.batch_size, optimiser=opt.kind,
                               lr=opt.lr, weight_decay=opt.weight_decay, momentum=opt.momentum, seed=self.seed)
        self.in_features = int(np.prod(base.inputs.shape[1:]))
        self.recorded: dict[str, ModelField] = {}
        self.has_model: dict[str, np.ndarray] = {}
        self._borrowed: set[str] = set()  # names whose recorded models are a round's own tensors, not a copy
        self.history: list[Evaluation] = []
        self._history_rows: tuple[list[np.ndarray], int, Evaluation] | None = None  # history_arrays': rows filled
        self.stores: dict[str, ReplayStore] = {}
        self.arrivals: list[tuple[int, int, int]] = []  # (mobile device, round it was first seen there, region)
        self._seen_region = np.full(self.n_devices, -2, dtype=np.int64)
        self._seen_round = -1

    # -- models ----------------------------------------------------------------------------------
    def make_module(self) -> nn.Module:
        """A fresh model of the configured architecture."""
        return self.config.model.build(self.in_features, self.n_classes)

    def initial_models(self, ids: Any) -> ModelField:
        """Fresh models for the devices `ids` (raw tensors): one shared initialisation, or independent ones."""
        n = len(ids)
        if self.config.init == "shared":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                module = self.make_module()
            return ModelField.replicate(module.to(self.device), n)
        seed = int(keyed_uniform(self.seed, _INIT_SALT, as_index_array(ids)).sum() * 2**40)
        return ModelField.from_factory(self.make_module, n, seed=seed, device=self.device)

    def record_rows(self, ids: Any, models: ModelField, name: str = "models") -> None:
        """Keep the latest models of the devices `ids` (under `name`) for evaluation. When every device records at
        once, in id order, the models are kept as they are (no copy; a round's models are values nobody updates in
        place); a later partial record first copies them."""
        rows = as_index_array(ids)
        if len(models) == self.n_devices and np.array_equal(rows, np.arange(self.n_devices)):
            self.recorded[name] = models.detach().to(self.device)
            self._borrowed.add(name)
            self.has_model[name] = np.ones(self.n_devices, dtype=bool)
            return
        store = self.recorded.get(name)
        if store is None:
            store = self.recorded[name] = models[0:1].expand(self.n_devices)
            self.has_model[name] = np.zeros(self.n_devices, dtype=bool)
        elif name in self._borrowed:
            store = self.recorded[name] = store.clone()
        self._borrowed.discard(name)
        idx = torch.as_tensor(rows, device=self.device)
        with torch.no_grad():
            for k, t in store.tensors().items():
                t[idx] = models.tensors()[k].detach().to(t.device, t.dtype)
        self.has_model[name][rows] = True

    def take_models(self, ids: Any, result: Any) -> Any:
        """Record the model fields a program returned (key `models`: each device's own model; any other key, e.g.
        `regional`, under its name) and return the result without them (they are evaluated, not exported)."""
        if not isinstance(result, dict):
            if isinstance(result, ModelField):
                self.record_rows(ids, result)
                return {}
            return result
        rest = {}
        for name, value in result.items():
            if isinstance(value, ModelField):
                self.record_rows(ids, value, str(name))
            else:
                rest[name] = value
        return rest

    @property
    def latest(self) -> ModelField | None:
        """The latest model of every device (rows of devices that never recorded one are meaningless)."""
        return self.recorded.get("models")

    def forget(self, ids: Any) -> None:
        """Drop the recorded models and replay memories of devices (crashed ones restart from scratch)."""
        for have in self.has_model.values():
            have[as_index_array(ids)] = False
        for store in self.stores.values():
            store.forget(ids)

    # -- data --------------------------------------------------------------------------------------
    def samples(self, ids: Any, region: Any, round_: int) -> IndexSets:
        """Each device's samples this round (sorted): its part of the region it is in (none outside regions), or a
        draw of `samples_per_round` of it hashed from (seed, round, device, sample)."""
        dev = as_index_array(ids)
        sets = self.data.device_sets(as_index_array(region), self.part_of_device[dev])
        k = self.config.samples_per_round
        if k is not None:
            sets = draw_per_device(sets, k, dev, seed=self.seed, salt=_SAMPLE_SALT, counter=round_)
        return sets.unique()  # sorted rows: the same set always reaches training in the same order

    def sample_rows(self, ids: Any, region: Any, time: Any) -> torch.Tensor:
        """`samples` as padded rows (a sample field's values); `time` is the simulated time (one value per device)."""
        t = float(time.reshape(-1)[0]) if hasattr(time, "reshape") and len(time) else float(time)
        return pad_sets(self.samples(ids, region, int(math.floor(t / self.period + 1e-9))), self.device)

    def replay_store(self, policy: Any) -> ReplayStore:
        """The replay store for `policy` (made on first use, then kept for the run)."""
        key = str(policy)
        if key not in self.stores:
            self.stores[key] = ReplayStore(self.n_devices, policy, labels=self.dataset.labels.cpu(), seed=self.seed)
        return self.stores[key]

    def memory_sizes(self) -> np.ndarray:
        """Samples in every device's replay memory (summed over the run's stores; zeros without replay)."""
        out = np.zeros(self.n_devices, dtype=np.int64)
        for store in self.stores.values():
            out += store.sizes()
        return out

    def observe(self, rounds: int, region: Any) -> None:
        """Note where the mobile devices are after `rounds` rounds: a mover seen in a region other than at the last
        observation has arrived there (its first observation is its start, not an arrival)."""
        if rounds == self._seen_round:
            return
        here = as_index_array(region)
        moved = self.mobile & (here != self._seen_region) & (self._seen_region != -2) & (here >= 0)
        self.arrivals += [(int(d), int(rounds), int(here[d])) for d in np.flatnonzero(moved)]
        self._seen_region = here.copy()
        self._seen_round = rounds

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, devices: Any = None, name: str = "models", region: Any = None) -> np.ndarray:
        """Accuracy `[devices, regions]` of the selected devices' latest (`name`d) models on every region's
        evaluation set (NaN where a device has none). With `region` (where each device is), static devices are
        scored on their own region only (NaN elsewhere; unless `score_everywhere`): only the pairs needed, batched."""
        sel = np.arange(self.n_devices) if devices is None else as_index_array(devices)
        out = np.full((sel.size, len(self.region_names)), np.nan)
        store = self.recorded.get(name)
        if store is None:
            return out
        have = self.has_model[name][sel]
        if region is None or self.score_everywhere:
            if have.any():
                out[have] = accuracy_matrix(store, self.dataset, self.eval_sets, devices=sel[have],
                                            dtype=self.eval_dtype)
            return out
        where = as_index_array(region)[sel]
        need = have[:, None] & (self.mobile[sel][:, None] | (where[:, None] == np.arange(len(self.region_names))))
        rows = need.any(axis=1)
        if rows.any():
            out[rows] = accuracy_matrix(store, self.dataset, self.eval_sets, devices=sel[rows], needed=need[rows],
                                        dtype=self.eval_dtype)
        return out

    def evaluation(self, round_: int, time: float, region: Any) -> Evaluation:
        """The evaluation of every recorded model after `round_` rounds (computed once, kept in `history`)."""
        if self.history and self.history[-1].round == round_:
            return self.history[-1]
        here = as_index_array(region).copy()
        others = {name: self.evaluate(name=name, region=here) for name in self.recorded if name != "models"}
        ev = Evaluation(int(round_), float(time), self.evaluate(region=here), here, self.mobile.copy(), others,
                        self.eval_sets.lengths().astype(np.float64))
        self.history.append(ev)
        return ev

    def history_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The history as arrays: accuracy `[evaluations, devices, regions]`, region and mobile `[evaluations,
        devices]`. The arrays grow as evaluations are added (room doubling), so a reading every evaluation costs
        what the new rows cost, not a stack of the whole history."""
        h = self.history
        if not h:
            return (np.zeros((0, self.n_devices, len(self.region_names))), np.zeros((0, self.n_devices), np.int64),
                    np.zeros((0, self.n_devices), bool))
        first = (h[0].accuracy, h[0].region, h[0].mobile)
        bufs, done = [], 0
        if self._history_rows is not None:
            bufs, done, last = self._history_rows
            if not (done <= len(h) and h[done - 1] is last and bufs[0].shape[1:] == first[0].shape):
                bufs, done = [], 0  # not the history these rows were filled from
        if not bufs or len(bufs[0]) < len(h):
            grown = [np.empty((max(8, 2 * len(h)),) + a.shape, a.dtype) for a in first]
            for new, old in zip(grown, bufs):
                new[:done] = old[:done]
            bufs = grown
        for i in range(done, len(h)):
            bufs[0][i], bufs[1][i], bufs[2][i] = h[i].accuracy, h[i].region, h[i].mobile
        self._history_rows = (bufs, len(h), h[-1])
        return bufs[0][: len(h)], bufs[1][: len(h)], bufs[2][: len(h)]

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


def _fixed_share(parts: IndexSets, share: float, seed: int) -> IndexSets:
    """Every part cut to a fixed subset of `share` of it (at least one sample), drawn once from (seed, part, sample)."""
    keys = keyed_uniform(seed, _SUBSET_SALT, parts.row_ids(), parts.indices)
    quota = np.maximum(1, np.ceil(parts.lengths() * share)).astype(np.int64)
    return parts.keep_lowest(keys, quota)


def learning_context() -> LearningContext:
    """The learning context of the running round (the resource "learning" its runner lent it)."""
    try:
        return resource(RESOURCE)
    except LookupError:
        raise LookupError("this program learns and needs a learning context: declare it with "
                          "@program(needs=\"learning\") and give its scenario a `learning:` block, or run it with "
                          "fieldlearn.learning.run_learning(...)") from None
