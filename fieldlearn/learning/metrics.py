"""Evaluation of device models on regions' held-out splits: per-region accuracy, CAcc, forgetting."""
from __future__ import annotations

import numpy as np
import torch

from .data import Dataset, IndexSets, as_index_array
from .models import ModelField

__all__ = ["accuracy_matrix", "cacc", "own_region_accuracy", "forgetting", "mean_forgetting"]


def accuracy_matrix(
    models: ModelField,
    dataset: Dataset,
    regions: IndexSets,
    *,
    devices: object = None,
    sample_chunk: int = 2048,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Accuracy `[devices, regions]` of every (selected) device's model on every region's index set (NaN for an
    empty set); all models see the same inputs at once, `chunk_size` devices by `sample_chunk` samples."""
    selected = models if devices is None else models[as_index_array(devices)]
    n = len(selected)
    correct = torch.zeros(n, len(regions), dtype=torch.int64, device=selected.device)
    inputs, labels = dataset.inputs, dataset.labels
    with torch.no_grad():
        for r in range(len(regions)):
            idx = torch.as_tensor(regions.row(r))
            for start in range(0, idx.numel(), sample_chunk):
                part = idx[start : start + sample_chunk]
                x = inputs[part].to(selected.device)
                y = labels[part].to(selected.device)
                logits = selected.forward(x, shared=True, chunk_size=chunk_size)
                correct[:, r] += (logits.argmax(-1) == y).sum(-1)
    sizes = regions.lengths().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct.cpu().numpy() / np.where(sizes > 0, sizes, np.nan)


def cacc(accuracy: object, devices: object = None) -> float:
    """Cumulative accuracy: mean over the (selected) devices of the sum of their accuracies over regions."""
    acc = np.asarray(accuracy, dtype=np.float64)
    if devices is not None:
        acc = acc[as_index_array(devices)]
    if acc.shape[0] == 0:
        return float("nan")
    return float(acc.sum(axis=1).mean())


def own_region_accuracy(accuracy: object, region_of_device: object, devices: object = None) -> float:
    """Mean over the (selected) devices of the accuracy on the region each device is in."""
    acc = np.asarray(accuracy, dtype=np.float64)
    region = as_index_array(region_of_device)
    rows = np.arange(acc.shape[0]) if devices is None else as_index_array(devices)
    if rows.size == 0:
        return float("nan")
    return float(acc[rows, region[rows]].mean())


def forgetting(history: object) -> np.ndarray:
    """Per region (and device): the best accuracy before the last entry minus the last, over axis 0 (time);
    negative where the last entry is the best so far."""
    h = np.asarray(history, dtype=np.float64)
    if h.shape[0] < 2:
        return np.zeros(h.shape[1:])
    return h[:-1].max(axis=0) - h[-1]


def mean_forgetting(history: object, devices: object = None) -> float:
    """Forgetting averaged over regions and the (selected) devices of a `[time, devices, regions]` history."""
    f = forgetting(history)
    if devices is not None:
        f = f[as_index_array(devices)]
    return float(np.mean(f))
