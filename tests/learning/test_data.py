"""Datasets, the IDX loader, index sets, and the region partitioners (ProFed semantics)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fieldlearn.learning.data import (
    Dataset,
    IndexSets,
    load_digits,
    load_idx,
    make_region_data,
    partition,
    partition_dirichlet,
    partition_hard,
    partition_iid,
    split_among_devices,
    split_train_validation,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")


def assert_disjoint_cover(sets: IndexSets, universe: np.ndarray) -> None:
    assert sets.nnz == universe.size
    assert np.array_equal(np.sort(sets.indices), np.sort(universe))


def test_load_digits():
    d = load_digits()
    assert d.inputs.shape == (1797, 64) and d.inputs.dtype == torch.float32
    assert d.labels.dtype == torch.long and d.n_classes == 10
    assert float(d.inputs.min()) == 0.0 and float(d.inputs.max()) == 1.0
    assert set(d.labels.tolist()) == set(range(10))


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", s) for s in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [True, False])
def test_load_idx_reads_the_format(tmp_path, compress):
    images = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4) * 10
    labels = np.array([2, 0, 1], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    d = load_idx(tmp_path, "test")
    assert d.inputs.shape == (3, 8)
    assert torch.allclose(d.inputs, torch.as_tensor(images.reshape(3, 8) / 255.0, dtype=torch.float32))
    assert d.labels.tolist() == [2, 0, 1] and d.n_classes == 3
    t = load_idx(tmp_path, "test", flatten=False, transpose=True)
    assert t.inputs.shape == (3, 4, 2)
    assert torch.allclose(t.inputs[1], torch.as_tensor(images[1].T / 255.0, dtype=torch.float32))


def test_load_idx_names_the_missing_file(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((1, 2, 2), np.uint8), True)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_idx(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_idx(tmp_path, "validation")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    (tmp_path / "bad" / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        load_idx(tmp_path / "bad")


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION} "
                                                  "(Debian package dataset-fashion-mnist)")
def test_load_idx_fashion_mnist():
    test = load_idx(FASHION, "test")
    assert test.inputs.shape == (10000, 784) and test.n_classes == 10
    assert 0.0 <= float(test.inputs.min()) and float(test.inputs.max()) <= 1.0
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_dataset_validates():
    with pytest.raises(TypeError, match="float"):
        Dataset(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="labels"):
        Dataset(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), 2)


def test_index_sets_operations():
    s = IndexSets.from_lists([[3, 1], [], [5, 5, 2]])
    assert len(s) == 3 and s.nnz == 5 and s.lengths().tolist() == [2, 0, 3]
    assert s.row_ids().tolist() == [0, 0, 2, 2, 2] and s.ranks().tolist() == [0, 1, 0, 1, 2]
    t = s.take([2, -1, 0, 2])
    assert [r.tolist() for r in t.to_lists()] == [[5, 5, 2], [], [3, 1], [5, 5, 2]]
    u = s.union(IndexSets.from_lists([[1, 9], [4], [2]]))
    assert [r.tolist() for r in u.to_lists()] == [[1, 3, 9], [4], [2, 5]]
    assert [r.tolist() for r in s.unique().to_lists()] == [[1, 3], [], [2, 5]]
    sub = IndexSets.from_lists([np.arange(10), np.arange(3)]).subsample(4, seed=1, salt=2)
    assert sub.lengths().tolist() == [4, 3] and set(sub.row(0)) <= set(range(10))
    assert sub.equals(IndexSets.from_lists([np.arange(10), np.arange(3)]).subsample(4, seed=1, salt=2))
    rows = IndexSets.from_rows([1, 0, 1], [7, 8, 9], 3)
    assert [r.tolist() for r in rows.to_lists()] == [[8], [7, 9], []]
    with pytest.raises(ValueError, match="indptr"):
        IndexSets(np.array([0, 3]), np.array([1, 2]))
    with pytest.raises(IndexError):
        s.take([3])


def test_hard_partition_cuts_labels_into_contiguous_groups():
    labels = np.repeat(np.arange(27), 5)
    regions = partition_hard(labels, 4)
    groups = [sorted(set(labels[regions.row(r)])) for r in range(4)]
    assert groups == [list(range(0, 7)), list(range(7, 14)), list(range(14, 21)), list(range(21, 27))]
    for r in range(4):  # a region gets all samples of its labels
        assert np.array_equal(regions.row(r), np.flatnonzero(np.isin(labels, groups[r])))
    assert_disjoint_cover(regions, np.arange(labels.size))
    digits = load_digits()
    three = partition(digits.labels, 3, "hard", n_classes=10)
    assert [sorted(set(digits.labels[three.row(r)].tolist())) for r in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError):
        partition_hard(labels, 28)


def test_iid_partition_splits_every_class_evenly():
    labels = np.random.default_rng(0).integers(0, 5, 503)
    regions = partition_iid(labels, 4, seed=2)
    assert_disjoint_cover(regions, np.arange(labels.size))
    for c in range(5):
        per_region = [np.count_nonzero(labels[regions.row(r)] == c) for r in range(4)]
        assert max(per_region) - min(per_region) <= 1
    assert regions.equals(partition_iid(labels, 4, seed=2))
    assert not regions.equals(partition_iid(labels, 4, seed=3))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 5.0])
def test_dirichlet_partition_respects_the_minimum_size(alpha):
    labels = np.random.default_rng(1).integers(0, 10, 1000)
    regions = partition_dirichlet(labels, 6, alpha=alpha, min_region_size=40, seed=4)
    assert regions.lengths().min() >= 40
    assert_disjoint_cover(regions, np.arange(labels.size))
    assert regions.equals(partition(labels, 6, "dirichlet", alpha=alpha, min_region_size=40, seed=4))
    assert not regions.equals(partition_dirichlet(labels, 6, alpha=alpha, min_region_size=40, seed=5))


def test_dirichlet_small_alpha_is_skewed_and_impossible_sizes_fail():
    labels = np.random.default_rng(1).integers(0, 10, 2000)
    skewed = partition_dirichlet(labels, 4, alpha=0.05, min_region_size=10, seed=0)
    even = partition_dirichlet(labels, 4, alpha=100.0, min_region_size=10, seed=0)

    def classes_covering_90_percent(sets: IndexSets) -> float:
        out = []
        for r in range(len(sets)):
            counts = np.sort(np.bincount(labels[sets.row(r)], minlength=10))[::-1]
            out.append(np.searchsorted(np.cumsum(counts) / counts.sum(), 0.9) + 1)
        return float(np.mean(out))

    assert classes_covering_90_percent(skewed) < classes_covering_90_percent(even)
    with pytest.raises(ValueError, match="cannot"):
        partition_dirichlet(labels[:30], 4, min_region_size=10)
    with pytest.raises(ValueError, match="unknown method"):
        partition(labels, 2, "zipf")


def test_train_validation_and_device_splits():
    labels = np.repeat(np.arange(4), 25)
    regions = partition_hard(labels, 2)
    train, validation = split_train_validation(regions, 0.7, seed=1)
    for r in range(2):
        assert train.lengths()[r] == 35 and validation.lengths()[r] == 15
        assert np.intersect1d(train.row(r), validation.row(r)).size == 0
        assert np.array_equal(np.sort(np.concatenate([train.row(r), validation.row(r)])), regions.row(r))
    again = split_train_validation(regions, 0.7, seed=1)
    assert again[0].equals(train) and again[1].equals(validation)
    parts, offsets = split_among_devices(train, [4, 3], seed=1)
    assert offsets.tolist() == [0, 4, 7] and parts.lengths().tolist() == [9, 9, 9, 8, 12, 12, 11]
    for r in range(2):
        rows = parts.take(np.arange(offsets[r], offsets[r + 1]))
        assert_disjoint_cover(rows, train.row(r))


def test_region_data_gives_each_device_the_part_of_its_current_region():
    digits = load_digits()
    rd = make_region_data(digits, 3, 4, "hard", seed=0)
    assert rd.n_regions == 3 and rd.parts_per_region().tolist() == [4, 4, 4]
    assert_disjoint_cover(rd.parts, np.concatenate([rd.train.row(r) for r in range(3)]))
    region_now = np.array([0, 0, 1, 2, -1, 1])
    part = np.array([0, 1, 1, 3, 0, 5])
    sets = rd.device_sets(region_now, part)
    for d in range(6):
        if region_now[d] < 0:
            assert sets.lengths()[d] == 0
        else:
            expected = rd.parts.row(rd.part_offsets[region_now[d]] + part[d] % 4)
            assert np.array_equal(sets.row(d), expected)
            assert set(digits.labels[sets.row(d)].tolist()) <= set(digits.labels[rd.train.row(region_now[d])].tolist())
    # a mobile device (same part slot) moving to another region trains on that region's part
    moved = rd.device_sets(np.array([2, 0, 1, 2, -1, 1]), part)
    assert np.array_equal(moved.row(0), rd.parts.row(rd.part_offsets[2] + 0))
    sub = rd.device_sets(region_now, part, samples_per_round=5, round=3, seed=9)
    assert sub.lengths().tolist() == [5, 5, 5, 5, 0, 5]
    assert all(set(sub.row(d)) <= set(sets.row(d)) for d in range(6))
    assert not sub.equals(rd.device_sets(region_now, part, samples_per_round=5, round=4, seed=9))
    # the draw depends on the device and round, not on which other devices are asked at the same time
    alone = rd.device_sets(region_now[[0]], part[[0]], samples_per_round=5, round=3, seed=9)
    assert np.array_equal(alone.row(0), sub.row(0))
    data = rd.device_data(region_now, part)
    assert data.dataset is digits and data.sets.equals(sets)
