"""Aggregate learning blocks: per-device training, blending, replay memories and fine-tuning, used inside rounds.

Each block is an `@aggregate` function over fields of the current domain. Models are `ModelField`s whose leaves
are fields (rows of the stacked parameters); sample sets are *sample fields*: int64 rows of dataset indices per
device, padded with -1 (so they project onto branches and travel like any field). Every block does one batched
computation for all the devices of the batch, through `local`; none loops over devices in Python.

    trained = train_locally(theta, samples, trainer)           # Phase 2: everyone's local steps at once
    merged = blend(trained, regional, alpha)                   # (1 - alpha) trained + alpha regional, per device
    memory = replay(samples, leader, store)                    # grows when the leader changes
    seen = with_replay(samples, memory, per_round=200)         # current data plus a draw from the memory
    tuned = finetune(merged, seen, trainer, where=alpha > 0)   # optional post-merge pass
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fieldlearn.calculus import Field, aggregate, branch, local, mid, minimum, rep
from fieldlearn.calculus.vm import current_vm

from .data import Dataset, DeviceData, IndexSets, as_index_array, keyed_uniform
from .models import ModelField
from .models import blend as blend_models
from .replay import ReplayMemory, ReplayPolicy, parse_policy
from .train import train

__all__ = [
    "Trainer", "ReplayStore", "pad_sets", "unpad", "sample_counts", "train_locally", "finetune", "blend", "replay",
    "with_replay", "paper_alpha", "class_counts", "classifier_names", "classwise_regional_mean",
]

_TRAIN_SALT, _REPLAY_SALT = 11, 12


# --------------------------------------------------------------------------------------------------
# sample fields: per-device index sets as padded rows


def pad_sets(sets: IndexSets, device: Any = None) -> torch.Tensor:
    """Index sets as a `[rows, width]` int64 tensor padded with -1 (width: the longest row)."""
    lengths = sets.lengths()
    width = int(lengths.max(initial=0))
    out = np.full((len(sets), width), -1, dtype=np.int64)
    out[sets.row_ids(), sets.ranks()] = sets.indices
    return torch.as_tensor(out, device=device)


def unpad(rows: Any) -> IndexSets:
    """Padded rows (-1 = no sample) back to index sets, keeping each row's order."""
    arr = rows.detach().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    arr = arr.reshape(arr.shape[0], -1)
    r, c = np.nonzero(arr >= 0)
    return IndexSets.from_rows(r, arr[r, c], arr.shape[0])


def _mix(*keys: Any) -> int:
    """A seed in [0, 2^62) hashed from integers."""
    return int(keyed_uniform(0, *[np.asarray(k, dtype=np.int64) for k in keys]) * 2**62)


@aggregate
def sample_counts(samples: Field) -> Field:
    """Number of samples in every device's sample field."""
    return local(lambda s: (s >= 0).sum(dim=-1) if s.dim() > 1 else (s >= 0).long())(samples)


@aggregate
def class_counts(samples: Field, labels: torch.Tensor, n_classes: int) -> Field:
    """`[classes]` per device: how many of its samples carry each label (`labels` indexed by sample id)."""
    def count(s: torch.Tensor) -> torch.Tensor:
        rows = s.reshape(s.shape[0], -1)
        valid = rows >= 0
        out = torch.zeros(rows.shape[0], n_classes, dtype=torch.float32, device=rows.device)
        lab = labels.to(rows.device)[rows.clamp(min=0)]
        return out.scatter_add_(1, lab, valid.to(out.dtype))

    return local(count)(samples)


def classifier_names(models: ModelField, n_classes: int) -> list[str]:
    """The parameters of the output layer: the trailing parameters (in the module's order) whose leading dimension
    is the number of classes, e.g. `["2.weight", "2.bias"]` of an MLP."""
    names = []
    spec = models.spec
    for name, shape in reversed(list(zip(spec.param_names, spec.param_shapes))):
        if tuple(shape[:1]) != (n_classes,):
            break
        names.append(name)
    if not names:
        raise ValueError(f"the model's last parameter does not have {n_classes} rows (one per class); "
                         "class-wise averaging needs a classifier output layer")
    return names[::-1]


@aggregate
def classwise_regional_mean(region: Any, models: ModelField, counts: Field, head: list[str],
                            weight: Any = None) -> ModelField:
    """The region's model, everywhere in the region: the (`weight`-weighted) mean of every parameter, except that row
    c of each output-layer parameter in `head` is averaged over the devices that trained on class c, weighted by how
    many samples of c they had. Rows of classes that no member saw stay the plain mean.

    A member that never saw class c has a row for c that only learnt to say "not c"; averaging it in pulls the
    row of a device that knows c (a mover with a replay memory) towards forgetting c."""
    mean = region.collect_mean(models, weight=weight)
    rows = {}
    for name in head:
        per_class = local(lambda c, t: c.reshape(c.shape + (1,) * (t.dim() - 2)))(counts, models.params[name])
        rows[name] = region.collect_mean(models.params[name], weight=per_class)
    seen = region.collect_max(counts) > 0
    mean, rows, seen = region.broadcast((mean, rows, seen))

    def merge(m: ModelField, r: dict, have: torch.Tensor) -> ModelField:
        params = dict(m.params)
        for name, t in r.items():
            mask = have.reshape(have.shape + (1,) * (t.dim() - 2))
            params[name] = torch.where(mask, t, m.params[name])
        return ModelField._from_spec(m.spec, params, dict(m.buffers))

    return local(merge)(mean, rows, seen)


# --------------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class Trainer:
    """How devices train: the dataset they index into and the optimiser settings (a fresh optimiser per call, as
    the reference methods do). Calling it trains a ModelField of raw tensors on padded sample rows."""

    dataset: Dataset
    epochs: int = 2
    batch_size: int = 32
    optimiser: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.0
    seed: int = 0

    def replace(self, **changes: Any) -> "Trainer":
        """A copy with some settings changed (e.g. `epochs=1, batch_size=16` for a fine-tune pass)."""
        return dataclasses.replace(self, **changes)

    def __call__(self, models: ModelField, samples: Any, salt: tuple = ()) -> ModelField:
        sets = unpad(samples)
        if sets.nnz == 0:
            return models
        generator = torch.Generator().manual_seed(_mix(self.seed, _TRAIN_SALT, *salt))
        result = train(models, DeviceData(self.dataset, sets), epochs=self.epochs, batch_size=self.batch_size,
                       optimiser=self.optimiser, lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum,
                       generator=generator)
        return result.models


@aggregate
def train_locally(models: ModelField, samples: Field, trainer: Trainer, key: int = 0) -> ModelField:
    """Every device trains its own model on its own samples, all devices of the batch as one computation.

    `models` is a ModelField of fields (e.g. rep's state), `samples` a sample field; devices without samples keep
    their model. The shuffling is seeded from the trainer's seed, the VM clock and `key` (so two training calls in
    one round draw differently and a rerun draws the same).
    """
    clock = current_vm().clock
    return local(lambda m, s: trainer(m, s, salt=(clock, key)))(models, samples)


@aggregate
def finetune(models: ModelField, samples: Field, trainer: Trainer, epochs: int = 1, batch_size: int = 16,
             where: Any = None) -> ModelField:
    """Post-merge fine-tune: a short extra pass (default one epoch at batch 16, as the C2FL public code does) over
    `samples` (e.g. memory plus current data), on the devices where `where` holds (all if None)."""
    tuned = trainer.replace(epochs=epochs, batch_size=batch_size)
    if where is None:
        return train_locally(models, samples, tuned, key=1)
    return branch(where, lambda: train_locally(models, samples, tuned, key=1), lambda: models)


@aggregate
def blend(local_models: ModelField, regional: ModelField, alpha: Any) -> ModelField:
    """`(1 - alpha) * local + alpha * regional` per device (alpha a number or a field; exact at 0 and 1)."""
    return local(blend_models)(local_models, regional, alpha)


def paper_alpha(dwell: Any, gamma: float = 0.3, horizon: float = 30.0) -> Any:
    """C2FL's blending weight `min(gamma, dwell / horizon)`: a newcomer trusts its region little, then more."""
    return minimum(gamma, dwell / float(horizon))


# --------------------------------------------------------------------------------------------------
# replay


class ReplayStore:
    """Every device's replay memory and what it has seen since it entered its current region, by device id.

    Rows are read and written only by their own device's evaluation (memories never leave their device); the
    store lives outside the VM because memories are variable-sized sets, not fixed-shape fields.
    """

    def __init__(self, n_devices: int, policy: ReplayPolicy | str, *, labels: Any = None, seed: int = 0):
        policy = parse_policy(policy)
        if policy is None:
            raise ValueError("ReplayStore: a policy is required")
        self.memory = ReplayMemory(n_devices, policy, labels=labels, seed=seed)
        self.stay = IndexSets.empty(n_devices)
        self.n_devices = int(n_devices)

    @property
    def policy(self) -> ReplayPolicy:
        return self.memory.policy

    def sizes(self) -> np.ndarray:
        """Samples in every device's memory."""
        return self.memory.sizes()

    def update(self, ids: Any, samples: Any, moved: Any, fresh: Any, enabled: Any = True) -> torch.Tensor:
        """One round of the devices `ids`: forget the state of `fresh` ones, move what `moved` ones saw in their
        last region into their memory, add this round's `samples` to what the `enabled` ones have seen here;
        return their memories as padded rows."""
        dev = as_index_array(ids)
        n = dev.size
        flags = [np.broadcast_to(as_index_array(x).astype(bool) if not isinstance(x, bool) else np.array(x), (n,))
                 for x in (moved, fresh, enabled)]
        moved_, fresh_, enabled_ = flags
        if fresh_.any():
            self.memory.clear(dev[fresh_])
        leaving = moved_ & enabled_ & ~fresh_
        if leaving.any():
            who = dev[leaving]
            self.memory.add(who, self.stay.take(who))
        reset = fresh_ | moved_ | ~enabled_
        current = unpad(samples)
        keep_rows = current.row_ids()
        keep = enabled_[keep_rows]
        rows_old = self.stay.row_ids()
        drop = np.zeros(self.n_devices, dtype=bool)
        drop[dev[reset]] = True
        old = ~drop[rows_old]
        self.stay = IndexSets.from_rows_unique(
            np.concatenate([rows_old[old], dev[keep_rows[keep]]]),
            np.concatenate([self.stay.indices[old], current.indices[keep]]),
            self.n_devices,
        )
        device = samples.device if isinstance(samples, torch.Tensor) else None
        return pad_sets(self.memory.csr().take(dev), device)


@aggregate
def replay(samples: Field, leader: Any, store: ReplayStore, enabled: Any = True) -> Field:
    """The device's replay memory M as a sample field (Phase 1 of C2FL): when its `leader` differs from last round's
    (it moved to another region) everything it saw in the region it left enters M under the store's policy;
    this round's `samples` join what it has seen here. A device on its first round starts with an empty memory;
    devices where `enabled` is false (e.g. static ones) keep none.
    """
    def step(state: tuple) -> tuple:
        before, age, _ = state
        return leader, age + 1, before != leader

    _, age, changed = rep((leader, -1, False), step)
    return local(store.update)(mid(), samples, changed, age == 0, enabled)


@aggregate
def with_replay(samples: Field, memory: Field, per_round: int | None = None, seed: int = 0) -> Field:
    """Training set of the round: the current `samples` united with the `memory` (M ∪ D(t)), or with a fresh uniform
    draw of at most `per_round` memory samples each round (a fixed replay budget; None: the whole memory)."""
    clock = current_vm().clock

    def mix(ids: Any, cur: Any, mem: Any) -> torch.Tensor:
        current, kept = unpad(cur), unpad(mem)
        if per_round is not None and kept.nnz:
            dev = as_index_array(ids)
            keys = keyed_uniform(seed, _REPLAY_SALT, clock, dev[kept.row_ids()], kept.indices)
            kept = kept.keep_lowest(keys, np.full(len(kept), int(per_round), dtype=np.int64))
        return pad_sets(current.union(kept), cur.device)

    return local(mix)(mid(), samples, memory)
