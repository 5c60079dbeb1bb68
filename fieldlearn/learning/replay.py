"""Per-device replay memories (index sets into the shared dataset that never leave their device), their policies, and
the store a round reads and updates them through."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fieldlearn.calculus.keyed import keyed_uniform

from .data import IndexSets, as_index_array
from .samples import pad_sets, unpad

__all__ = ["ReplayPolicy", "ReplayMemory", "ReplayStore", "unbounded", "fraction", "reservoir", "class_balanced",
           "parse_policy"]

_KINDS = ("unbounded", "fraction", "reservoir", "class_balanced")
# salts that keep the hashed draws of different purposes independent
_FRACTION_SALT, _KEY_SALT, _TIE_SALT = 1, 2, 3


@dataclass(frozen=True)
class ReplayPolicy:
    """What a memory keeps: everything (`unbounded`), a share of each added set (`fraction`), or a bounded
    uniform (`reservoir`) or per-class balanced (`class_balanced`) sample of everything added."""

    kind: str
    share: float | None = None
    capacity: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"replay policy: unknown kind {self.kind!r} (expected one of {', '.join(_KINDS)})")
        if self.kind == "fraction" and not (self.share is not None and 0.0 <= self.share <= 1.0):
            raise ValueError(f"replay policy fraction: share must be in [0, 1], got {self.share}")
        if self.kind in ("reservoir", "class_balanced") and not (self.capacity is not None and self.capacity >= 0):
            raise ValueError(f"replay policy {self.kind}: capacity must be >= 0, got {self.capacity}")

    @property
    def bounded(self) -> bool:
        """Whether the memory has a fixed capacity."""
        return self.kind in ("reservoir", "class_balanced")


def unbounded() -> ReplayPolicy:
    """Keep every sample ever added (the C2FL paper's memory)."""
    return ReplayPolicy("unbounded")


def fraction(share: float) -> ReplayPolicy:
    """Keep ceil(share * k) random samples of every added set of k (the C2FL code keeps 5% per region)."""
    return ReplayPolicy("fraction", share=float(share))


def reservoir(capacity: int) -> ReplayPolicy:
    """Keep a uniform random sample of at most `capacity` of everything added (reservoir sampling)."""
    return ReplayPolicy("reservoir", capacity=int(capacity))


def class_balanced(capacity: int) -> ReplayPolicy:
    """Keep at most `capacity` samples, shared equally among the classes seen; overflow evicts from the largest."""
    return ReplayPolicy("class_balanced", capacity=int(capacity))


def parse_policy(spec: str | ReplayPolicy | None) -> ReplayPolicy | None:
    """A policy from a scenario string: `unbounded`, `fraction:0.05`, `reservoir:500`, `class_balanced:500`."""
    if spec is None or isinstance(spec, ReplayPolicy):
        return spec
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip()
    if kind in ("none", "null", ""):
        return None
    if kind == "unbounded" and not arg:
        return unbounded()
    if kind in ("fraction", "reservoir", "class_balanced") and arg:
        return fraction(float(arg)) if kind == "fraction" else ReplayPolicy(kind, capacity=int(arg))
    raise ValueError(f"replay policy {spec!r}: expected 'unbounded', 'fraction:F', 'reservoir:N' or 'class_balanced:N'")


def _water_fill(counts: np.ndarray, capacity: int, priority: np.ndarray) -> np.ndarray:
    """Per row, how many of each group to keep: the largest groups are cut to a common level so that the row
    holds at most `capacity`; the remaining slots go, one each, to the cut groups of highest priority."""
    lo = np.zeros(counts.shape[0], dtype=np.int64)
    hi = counts.max(axis=1, initial=0)
    while np.any(lo < hi):
        mid = (lo + hi + 1) // 2
        fits = np.minimum(counts, mid[:, None]).sum(axis=1) <= capacity
        lo = np.where(fits, mid, lo)
        hi = np.where(fits, hi, mid - 1)
    quota = np.minimum(counts, lo[:, None])
    left = capacity - quota.sum(axis=1)
    cut = counts > lo[:, None]
    rank = np.argsort(np.argsort(np.where(cut, priority, np.inf), axis=1, kind="stable"), axis=1, kind="stable")
    return quota + (cut & (rank < left[:, None]))


class ReplayMemory:
    """Replay memories of `n_devices` devices under one policy; draws are hashed from (seed, device, sample,
    number of adds), so batching devices differently gives the same memories."""

    def __init__(self, n_devices: int, policy: ReplayPolicy | str = "unbounded", *, labels: object = None,
                 seed: int = 0):
        policy = parse_policy(policy)
        if policy is None:
            raise ValueError("ReplayMemory: a policy is required (use no memory instead of policy None)")
        if policy.kind == "class_balanced" and labels is None:
            raise ValueError("ReplayMemory: the class_balanced policy needs the dataset labels")
        self.n_devices = int(n_devices)
        self.policy = policy
        self.seed = int(seed)
        self._labels = None if labels is None else as_index_array(labels)
        self._sets = IndexSets.empty(self.n_devices)
        self._keys = np.zeros(0, dtype=np.float64)
        self._adds = np.zeros(self.n_devices, dtype=np.int64)

    def copy(self) -> "ReplayMemory":
        """An independent copy."""
        other = ReplayMemory.__new__(ReplayMemory)
        other.n_devices, other.policy, other.seed, other._labels = self.n_devices, self.policy, self.seed, self._labels
        other._sets, other._keys, other._adds = self._sets, self._keys.copy(), self._adds.copy()
        return other

    def __len__(self) -> int:
        return self.n_devices

    def sizes(self) -> np.ndarray:
        """Number of samples in every device's memory."""
        return self._sets.lengths()

    def indices(self, device: int) -> np.ndarray:
        """The sample indices in `device`'s memory (sorted)."""
        return self._sets.row(int(device))

    def csr(self) -> IndexSets:
        """All memories as one CSR (row = device, sorted indices)."""
        return self._sets

    def union_with(self, current: IndexSets) -> IndexSets:
        """Per device, memory ∪ current data (sorted, without duplicates), ready for training."""
        if len(current) != self.n_devices:
            raise ValueError(f"ReplayMemory.union_with: {len(current)} rows for {self.n_devices} devices")
        return self._sets.union(current)

    def clear(self, device_ids: object) -> None:
        """Empty the memories of the given devices (e.g. after a crash)."""
        dev = as_index_array(device_ids)
        drop = np.isin(self._sets.row_ids(), dev)
        rows = self._sets.row_ids()[~drop]
        self._sets = IndexSets.from_rows(rows, self._sets.indices[~drop], self.n_devices)
        if self.policy.bounded:
            self._keys = self._keys[~drop]

    def add(self, device_ids: object, index_sets: IndexSets) -> None:
        """Offer `index_sets` (row j for device `device_ids[j]`) to the devices' memories, in place."""
        dev = as_index_array(device_ids)
        if len(index_sets) != dev.size:
            raise ValueError(f"ReplayMemory.add: {len(index_sets)} index sets for {dev.size} devices")
        if np.unique(dev).size != dev.size:
            raise ValueError("ReplayMemory.add: a device appears twice; merge its sets first")
        if dev.size and (dev.min() < 0 or dev.max() >= self.n_devices):
            raise IndexError(f"ReplayMemory.add: device ids must be in [0, {self.n_devices})")
        salt = self._adds[dev]
        self._adds[dev] += 1
        local = index_sets.row_ids()
        if self.policy.kind == "fraction":
            keys = keyed_uniform(self.seed, _FRACTION_SALT, dev[local], salt[local], index_sets.indices)
            quota = np.ceil(self.policy.share * index_sets.lengths() - 1e-9).astype(np.int64)
            index_sets = index_sets.keep_lowest(keys, quota)
            local = index_sets.row_ids()
        owner = dev[local]
        rows = np.concatenate([self._sets.row_ids(), owner])
        indices = np.concatenate([self._sets.indices, index_sets.indices])
        if not self.policy.bounded:
            self._sets = IndexSets.from_rows_unique(rows, indices, self.n_devices)
            return
        new_keys = keyed_uniform(self.seed, _KEY_SALT, owner, salt[local], index_sets.indices)
        self._add_bounded(dev, salt, rows, indices, np.concatenate([self._keys, new_keys]))

    def _add_bounded(self, dev: np.ndarray, salt: np.ndarray, rows: np.ndarray, indices: np.ndarray,
                     keys: np.ndarray) -> None:
        # a sample offered twice to one device keeps its smaller key
        order = np.lexsort((keys, indices, rows))
        rows, indices, keys = rows[order], indices[order], keys[order]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (indices[1:] != indices[:-1])
        rows, indices, keys = rows[first], indices[first], keys[first]

        if self.policy.kind == "class_balanced":
            groups = self._labels[indices]
            n_groups = int(self._labels.max()) + 1
        else:
            groups = np.zeros(indices.size, dtype=np.int64)
            n_groups = 1
        cell = rows * n_groups + groups
        counts = np.bincount(cell, minlength=self.n_devices * n_groups).reshape(self.n_devices, n_groups)
        quota = counts.copy()
        priority = keyed_uniform(self.seed, _TIE_SALT, dev[:, None], salt[:, None], np.arange(n_groups)[None, :])
        quota[dev] = _water_fill(counts[dev], self.policy.capacity, priority)

        by_key = np.lexsort((keys, cell))
        starts = np.zeros(self.n_devices * n_groups + 1, dtype=np.int64)
        np.cumsum(counts.reshape(-1), out=starts[1:])
        rank = np.empty(cell.size, dtype=np.int64)
        rank[by_key] = np.arange(cell.size, dtype=np.int64) - starts[cell[by_key]]
        keep = rank < quota.reshape(-1)[cell]
        # rows/indices are already sorted by (row, index), so the kept entries form the new CSR directly
        self._sets = IndexSets.from_rows(rows[keep], indices[keep], self.n_devices)
        self._keys = keys[keep]

    def __repr__(self) -> str:
        return f"ReplayMemory({self.n_devices} devices, {self.policy.kind}, {int(self.sizes().sum())} samples)"


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

    def forget(self, ids: Any) -> None:
        """Drop the memories and stays of devices (e.g. crashed ones, which restart from scratch)."""
        dev = as_index_array(ids)
        if dev.size:
            self.memory.clear(dev)
            drop = np.zeros(self.n_devices, dtype=bool)
            drop[dev] = True
            rows = self.stay.row_ids()
            keep = ~drop[rows]
            self.stay = IndexSets.from_rows(rows[keep], self.stay.indices[keep], self.n_devices)

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
