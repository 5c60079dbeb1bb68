"""Datasets held once as tensors, per-device index sets (CSR) into them, and partitioners over regions."""
from __future__ import annotations

import functools
import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fieldlearn.calculus.keyed import keyed_uniform

__all__ = [
    "Dataset",
    "IndexSets",
    "as_index_array",
    "DeviceData",
    "RegionData",
    "load_digits",
    "load_idx",
    "load_dataset",
    "DatasetError",
    "DATASET_DIRS",
    "partition",
    "partition_hard",
    "partition_iid",
    "partition_dirichlet",
    "split_train_validation",
    "split_among_devices",
    "make_region_data",
]


# --------------------------------------------------------------------------------------------------
# datasets


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset held once: float inputs `[N, ...]`, long labels `[N]`, and its number of classes."""

    inputs: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    name: str = "dataset"

    def __post_init__(self) -> None:
        if not torch.is_floating_point(self.inputs):
            raise TypeError(f"Dataset {self.name!r}: inputs must be a float tensor, got {self.inputs.dtype}")
        if self.labels.dtype != torch.long or self.labels.dim() != 1:
            raise TypeError(f"Dataset {self.name!r}: labels must be a 1-D long tensor, got {self.labels.dtype} "
                            f"of shape {tuple(self.labels.shape)}")
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise ValueError(f"Dataset {self.name!r}: {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> "Dataset":
        """The same dataset on `device` (no copy when it is already there)."""
        return Dataset(self.inputs.to(device), self.labels.to(device), self.n_classes, self.name)


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 samples, no download), scaled to [0, 1] as 64 features."""
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    inputs = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return Dataset(inputs, labels, 10, "digits")


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if ndim else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"{path}: truncated IDX file ({len(raw) - offset} bytes of data, need {count * dtype.itemsize})")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(tuple(dims))


def _find_idx(directory: Path, prefix: str, kind: str) -> Path:
    stem = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    matches = sorted(p for p in directory.glob(f"*{stem}*") if p.name.endswith((stem, stem + ".gz")))
    if matches:
        return matches[0]
    raise FileNotFoundError(f"load_idx: no file {stem} or {stem}.gz in {directory}")


def load_idx(
    directory: str | Path,
    split: str = "train",
    *,
    name: str | None = None,
    flatten: bool = True,
    transpose: bool = False,
    n_classes: int | None = None,
) -> Dataset:
    """Read an MNIST-format (IDX, gzip or plain) split from `directory`: images scaled to [0, 1], labels as long.

    Files are `train-images-idx3-ubyte[.gz]` / `t10k-labels-idx1-ubyte[.gz]`, also with a prefix such as
    `emnist-letters-`; `transpose=True` swaps the image axes (EMNIST stores images transposed).
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_idx: split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"load_idx: {directory} is not a directory")
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find_idx(directory, prefix, "images"))
    labels = _read_idx(_find_idx(directory, prefix, "labels"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"load_idx: {images.shape[0]} images but {labels.shape[0]} labels in {directory}")
    if transpose:
        images = np.swapaxes(images, -1, -2)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    inputs = torch.from_numpy(images.astype(np.float32)) / scale  # a copy: frombuffer arrays are read-only
    if flatten:
        inputs = inputs.reshape(inputs.shape[0], -1)
    target = torch.as_tensor(labels.astype(np.int64))
    classes = int(target.max()) + 1 if n_classes is None else n_classes
    return Dataset(inputs, target, classes, name or f"{directory.name}-{split}")


#: Names accepted for `learning.dataset`, besides a directory path: where Debian's dataset packages put them.
DATASET_DIRS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}


class DatasetError(ValueError):
    """A dataset that cannot be found or read; `key` is the configuration key at fault (dataset, downsample)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


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
            raise DatasetError("downsample", f"{side}x{side} images cannot be pooled by {downsample}")
        pooled = torch.nn.functional.avg_pool2d(ds.inputs.view(-1, 1, side, side), downsample)
        ds = Dataset(pooled.reshape(len(ds), -1).contiguous(), ds.labels, ds.n_classes, f"{ds.name}/{downsample}")
    return ds


def load_dataset(name: str, downsample: int = 1, base_dir: str | Path | None = None) -> Dataset:
    """`digits` (scikit-learn's, embedded), `fashion-mnist`/`mnist` (Debian's dataset packages), or a directory
    of IDX files (relative to `base_dir`); the training split only (regions split it into train/validation).
    Loaded once per process (cached)."""
    if name != "digits":
        path = Path(DATASET_DIRS.get(name, name))
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        try:
            found = path.is_dir()
        except OSError as exc:  # e.g. a name longer than the file system allows
            raise DatasetError("dataset", f"{name[:80]!r}: not a usable path ({exc.strerror or exc})") from None
        if not found:
            hint = " (install Debian's dataset-fashion-mnist package)" if name == "fashion-mnist" else ""
            raise DatasetError("dataset", f"{name!r}: no directory {path}{hint}")
        name = str(path.resolve())
    try:
        return _load(name, int(downsample))
    except DatasetError:
        raise
    except (OSError, ValueError) as exc:
        raise DatasetError("dataset", f"cannot read {name!r}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# index sets


def as_index_array(x: object) -> np.ndarray:
    """Any integer sequence, numpy array or tensor as a flat int64 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class IndexSets:
    """Per-row sets of sample indices into a shared dataset, as CSR: row i is `indices[indptr[i]:indptr[i+1]]`."""

    indptr: np.ndarray
    indices: np.ndarray

    def __post_init__(self) -> None:
        indptr = as_index_array(self.indptr)
        indices = as_index_array(self.indices)
        if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
            raise ValueError("IndexSets: indptr must start at 0, be non-decreasing and end at len(indices)")
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "indices", indices)

    @classmethod
    def from_lists(cls, sets: Sequence[object]) -> "IndexSets":
        """Build from one index array (or list) per row."""
        arrays = [as_index_array(s) for s in sets]
        indptr = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([a.size for a in arrays], out=indptr[1:])
        indices = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(indptr, indices)

    @classmethod
    def from_rows(cls, rows: np.ndarray, indices: np.ndarray, n_rows: int) -> "IndexSets":
        """Build from (row, index) pairs; within a row the given order is kept (stable)."""
        rows = as_index_array(rows)
        indices = as_index_array(indices)
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n_rows) if rows.size else np.zeros(n_rows, dtype=np.int64)
        if counts.size > n_rows:
            raise ValueError(f"IndexSets.from_rows: a row id is >= n_rows={n_rows}")
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, indices[order])

    @classmethod
    def from_rows_unique(cls, rows: np.ndarray, indices: np.ndarray, n_rows: int) -> "IndexSets":
        """Build from (row, index) pairs as sets: every row sorted, duplicates dropped."""
        rows = as_index_array(rows)
        indices = as_index_array(indices)
        if indices.size == 0:
            return cls.empty(n_rows)
        span = int(indices.max()) + 1
        keys = np.unique(rows * span + indices)
        return cls.from_rows(keys // span, keys % span, n_rows)

    @classmethod
    def empty(cls, n_rows: int) -> "IndexSets":
        """`n_rows` empty sets."""
        return cls(np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def nnz(self) -> int:
        """Total number of entries over all rows."""
        return int(self.indices.size)

    def lengths(self) -> np.ndarray:
        """Number of entries of every row."""
        return np.diff(self.indptr)

    def row(self, i: int) -> np.ndarray:
        """The indices of row `i`."""
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def row_ids(self) -> np.ndarray:
        """For every entry, the row it belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths())

    def ranks(self) -> np.ndarray:
        """For every entry, its position within its row."""
        return np.arange(self.nnz, dtype=np.int64) - np.repeat(self.indptr[:-1], self.lengths())

    def to_lists(self) -> list[np.ndarray]:
        """One index array per row."""
        return [self.row(i) for i in range(len(self))]

    def take(self, rows: object) -> "IndexSets":
        """The sets of the given rows, in that order (vectorised; a row id of -1 gives an empty set)."""
        rows = as_index_array(rows)
        if rows.size and rows.max(initial=-1) >= len(self):
            raise IndexError(f"IndexSets.take: row {int(rows.max())} out of range for {len(self)} rows")
        present = rows >= 0
        safe = np.where(present, rows, 0)
        lengths = np.where(present, self.indptr[safe + 1] - self.indptr[safe], 0)
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        starts = np.where(present, self.indptr[safe], 0)
        positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
        return IndexSets(indptr, self.indices[positions])

    def union(self, other: "IndexSets") -> "IndexSets":
        """Row-wise set union (sorted, without duplicates)."""
        if len(other) != len(self):
            raise ValueError(f"IndexSets.union: {len(self)} rows vs {len(other)} rows")
        rows = np.concatenate([self.row_ids(), other.row_ids()])
        indices = np.concatenate([self.indices, other.indices])
        return IndexSets.from_rows_unique(rows, indices, len(self))

    def unique(self) -> "IndexSets":
        """Every row sorted, without duplicates."""
        return IndexSets.from_rows_unique(self.row_ids(), self.indices, len(self))

    def subsample(self, k: int, *, seed: int = 0, salt: int = 0) -> "IndexSets":
        """At most `k` entries per row, drawn uniformly with a key hashed from (seed, salt, row, index)."""
        if k < 0:
            raise ValueError(f"IndexSets.subsample: k must be >= 0, got {k}")
        rows = self.row_ids()
        keys = keyed_uniform(seed, np.full_like(rows, salt), rows, self.indices)
        return self.keep_lowest(keys, np.full(len(self), k, dtype=np.int64))

    def keep_lowest(self, keys: np.ndarray, quota: np.ndarray) -> "IndexSets":
        """Per row, the `quota[row]` entries with the smallest `keys` (one key per entry), in their original order."""
        rows = self.row_ids()
        order = np.lexsort((keys, rows))
        rank = np.empty(self.nnz, dtype=np.int64)
        rank[order] = np.arange(self.nnz, dtype=np.int64) - np.repeat(self.indptr[:-1], self.lengths())
        keep = rank < np.asarray(quota)[rows]
        return IndexSets.from_rows(rows[keep], self.indices[keep], len(self))

    def equals(self, other: "IndexSets") -> bool:
        """Same rows with the same entries in the same order."""
        return np.array_equal(self.indptr, other.indptr) and np.array_equal(self.indices, other.indices)

    def torch(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """`(indptr, indices)` as long tensors on `device`."""
        return torch.as_tensor(self.indptr, device=device), torch.as_tensor(self.indices, device=device)

    def __repr__(self) -> str:
        return f"IndexSets(rows={len(self)}, nnz={self.nnz})"


# --------------------------------------------------------------------------------------------------
# partitioners over regions (ProFed semantics)


def partition_hard(labels: object, n_regions: int, n_classes: int | None = None) -> IndexSets:
    """Cut the label values 0..n_classes-1 into contiguous groups (`numpy.array_split`); a region gets all
    samples of its group."""
    y = as_index_array(labels)
    classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if n_regions < 1 or n_regions > classes:
        raise ValueError(f"partition_hard: need 1 <= n_regions <= n_classes={classes}, got {n_regions}")
    region_of_class = np.empty(classes, dtype=np.int64)
    for r, group in enumerate(np.array_split(np.arange(classes), n_regions)):
        region_of_class[group] = r
    return IndexSets.from_rows(region_of_class[y], np.arange(y.size, dtype=np.int64), n_regions)


def partition_iid(labels: object, n_regions: int, seed: int = 0) -> IndexSets:
    """Split every class evenly (`numpy.array_split` of a seeded shuffle) across the regions."""
    y = as_index_array(labels)
    if n_regions < 1:
        raise ValueError(f"partition_iid: n_regions must be >= 1, got {n_regions}")
    rng = np.random.default_rng(seed)
    region = np.empty(y.size, dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        for r, part in enumerate(np.array_split(members, n_regions)):
            region[part] = r
    return IndexSets.from_rows(region, np.arange(y.size, dtype=np.int64), n_regions)


def partition_dirichlet(
    labels: object, n_regions: int, alpha: float = 0.5, min_region_size: int = 10, seed: int = 0,
    max_tries: int = 1000,
) -> IndexSets:
    """Per class, draw region proportions from Dir(alpha); regions already holding their share (N / regions)
    get no more; redraw everything until every region has at least `min_region_size` samples."""
    y = as_index_array(labels)
    if n_regions < 1 or alpha <= 0:
        raise ValueError(f"partition_dirichlet: need n_regions >= 1 and alpha > 0, got {n_regions}, {alpha}")
    if y.size < n_regions * min_region_size:
        raise ValueError(f"partition_dirichlet: {y.size} samples cannot give {n_regions} regions "
                         f"of at least {min_region_size}")
    rng = np.random.default_rng(seed)
    share = y.size / n_regions
    classes = np.unique(y)
    for _ in range(max_tries):
        region = np.empty(y.size, dtype=np.int64)
        sizes = np.zeros(n_regions, dtype=np.int64)
        for c in classes:
            members = rng.permutation(np.flatnonzero(y == c))
            p = rng.dirichlet(np.full(n_regions, alpha)) * (sizes < share)
            p = p / p.sum() if p.sum() > 0 else np.full(n_regions, 1.0 / n_regions)
            cuts = (np.cumsum(p) * members.size).astype(np.int64)[:-1]
            for r, part in enumerate(np.split(members, cuts)):
                region[part] = r
                sizes[r] += part.size
        if sizes.min() >= min_region_size:
            return IndexSets.from_rows(region, np.arange(y.size, dtype=np.int64), n_regions)
    raise ValueError(f"partition_dirichlet: no draw in {max_tries} tries gave every region "
                     f">= {min_region_size} samples (alpha={alpha})")


def partition(
    labels: object, n_regions: int, method: str = "hard", *, alpha: float = 0.5, min_region_size: int = 10,
    seed: int = 0, n_classes: int | None = None,
) -> IndexSets:
    """Assign the samples to regions with the named partitioner (`hard`, `iid` or `dirichlet`)."""
    if method == "hard":
        return partition_hard(labels, n_regions, n_classes)
    if method == "iid":
        return partition_iid(labels, n_regions, seed)
    if method == "dirichlet":
        return partition_dirichlet(labels, n_regions, alpha, min_region_size, seed)
    raise ValueError(f"partition: unknown method {method!r} (expected 'hard', 'iid' or 'dirichlet')")


def split_train_validation(
    regions: IndexSets, train_fraction: float = 0.7, seed: int = 0
) -> tuple[IndexSets, IndexSets]:
    """Split every region's samples (shuffled with a per-region seed) into training and held-out parts."""
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"split_train_validation: train_fraction must be in [0, 1], got {train_fraction}")
    train, validation = [], []
    for r in range(len(regions)):
        members = np.random.default_rng([seed, r, 0]).permutation(regions.row(r))
        cut = int(math.floor(train_fraction * members.size + 0.5))
        train.append(np.sort(members[:cut]))
        validation.append(np.sort(members[cut:]))
    return IndexSets.from_lists(train), IndexSets.from_lists(validation)


def split_among_devices(
    regions: IndexSets, parts: int | Sequence[int], seed: int = 0
) -> tuple[IndexSets, np.ndarray]:
    """Split every region's samples into equal parts (per-region seeded shuffle, then `array_split`).

    Returns the parts as one CSR whose rows are (region, part) pairs, region-major, and the offsets
    `[regions + 1]` of each region's first part row.
    """
    counts = np.broadcast_to(np.asarray(parts, dtype=np.int64), (len(regions),))
    if np.any(counts < 1):
        raise ValueError("split_among_devices: every region needs at least one part")
    rows = []
    for r in range(len(regions)):
        members = np.random.default_rng([seed, r, 1]).permutation(regions.row(r))
        rows.extend(np.array_split(members, int(counts[r])))
    offsets = np.zeros(len(regions) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return IndexSets.from_lists(rows), offsets


# --------------------------------------------------------------------------------------------------
# what training and evaluation consume


@dataclass(frozen=True, eq=False)
class DeviceData:
    """What `train` consumes: the shared dataset and, per device, its index set into it."""

    dataset: Dataset
    sets: IndexSets

    def __len__(self) -> int:
        return len(self.sets)


@dataclass(frozen=True, eq=False)
class RegionData:
    """A dataset partitioned over regions: each region's training parts (one per device slot) and held-out split."""

    dataset: Dataset
    train: IndexSets
    validation: IndexSets
    parts: IndexSets
    part_offsets: np.ndarray

    @property
    def n_regions(self) -> int:
        """Number of regions."""
        return len(self.train)

    def parts_per_region(self) -> np.ndarray:
        """How many device parts each region's training data is split into."""
        return np.diff(self.part_offsets)

    def with_parts(self, parts: IndexSets) -> "RegionData":
        """The same regions with other device parts (e.g. each cut to a fixed subset); the offsets stay."""
        if len(parts) != len(self.parts):
            raise ValueError(f"with_parts: {len(parts)} parts for {len(self.parts)} part rows")
        return RegionData(self.dataset, self.train, self.validation, parts, self.part_offsets)

    def device_sets(
        self,
        region_of_device: object,
        part_of_device: object | None = None,
        *,
        samples_per_round: int | None = None,
        round: int = 0,
        seed: int = 0,
    ) -> IndexSets:
        """Per device, the training part of the region it is in now (region -1: no data).

        A device uses part `part_of_device % parts_in_region` (default: its id); with `samples_per_round`
        it gets at most that many of them, drawn with a key hashed from (seed, round, device, sample).
        """
        region = as_index_array(region_of_device)
        if region.size and region.max(initial=-1) >= self.n_regions:
            raise IndexError(f"device_sets: region {int(region.max())} out of range ({self.n_regions} regions)")
        part = np.arange(region.size, dtype=np.int64) if part_of_device is None else as_index_array(part_of_device)
        inside = region >= 0
        safe = np.where(inside, region, 0)
        rows = np.where(inside, self.part_offsets[safe] + part % self.parts_per_region()[safe], -1)
        sets = self.parts.take(rows)
        if samples_per_round is not None:
            sets = sets.subsample(samples_per_round, seed=seed, salt=round)
        return sets

    def device_data(self, region_of_device: object, part_of_device: object | None = None, **kwargs: object) -> DeviceData:
        """`device_sets` wrapped with the dataset, ready for `train`."""
        return DeviceData(self.dataset, self.device_sets(region_of_device, part_of_device, **kwargs))


def make_region_data(
    dataset: Dataset,
    n_regions: int,
    parts_per_region: int | Sequence[int],
    method: str = "hard",
    *,
    alpha: float = 0.5,
    min_region_size: int = 10,
    train_fraction: float = 0.7,
    seed: int = 0,
) -> RegionData:
    """Partition `dataset` over regions, split each region 70/30 (default) and its training part among devices."""
    regions = partition(dataset.labels, n_regions, method, alpha=alpha, min_region_size=min_region_size,
                        seed=seed, n_classes=dataset.n_classes)
    train, validation = split_train_validation(regions, train_fraction, seed)
    parts, offsets = split_among_devices(train, parts_per_region, seed)
    return RegionData(dataset, train, validation, parts, offsets)
