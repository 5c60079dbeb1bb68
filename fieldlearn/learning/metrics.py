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
    needed: object = None,
    sample_chunk: int = 2048,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Accuracy `[devices, regions]` of every (selected) device's model on every region's index set (NaN for an
    empty set). `needed` (bool `[devices, regions]`) evaluates only those pairs, NaN elsewhere (e.g. mobile devices on
    every region, static ones on their own). The devices are taken `chunk_size` at a time (runs of consecutive rows
    as slices, the rest gathered); each chunk's devices that need a region all see its samples at once,
    `sample_chunk` of them per batched forward pass.

    `dtype` computes the forward passes in that floating type instead of the models' own. Where the CPU multiplies
    bfloat16 natively (AVX512-BF16, AMX), `torch.bfloat16` matmuls are 2-3x faster and a whole evaluation about 2x
    (2.3x for C2FL at 1,024 devices: benchmarks/c2fl_scale.py --eval-precision both); a rounded logit flips a
    prediction only where the top two nearly tie. Each chunk's models are cast once, for all the regions they are
    scored on, so no second copy of the whole field is made."""
    rows = np.arange(len(models)) if devices is None else as_index_array(devices)
    if rows.size and (rows.min() < 0 or rows.max() >= len(models)):
        raise IndexError(f"accuracy_matrix: devices out of range for a ModelField of {len(models)} devices")
    n_regions = len(regions)
    if needed is None:
        need = np.ones((rows.size, n_regions), dtype=bool)
    else:
        need = np.asarray(needed)
        if need.dtype != bool or need.shape != (rows.size, n_regions):
            raise ValueError(f"accuracy_matrix: needed must be a bool array of shape ({rows.size}, {n_regions}) "
                             f"(devices x regions), got {need.dtype} {need.shape}")
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"accuracy_matrix: dtype must be a floating type (e.g. torch.bfloat16), got {dtype}")
    sizes = regions.lengths()
    step = max(1, chunk_size or models.chunk_size)
    correct = np.zeros((rows.size, n_regions), dtype=np.int64)
    inputs, labels = dataset.inputs, dataset.labels
    need = need & (sizes > 0)
    with torch.inference_mode():
        parts = [[(inputs[part].to(models.device, dtype), labels[part].to(models.device))  # moved once per region
                  for part in (idx[s : s + sample_chunk] for s in range(0, idx.numel(), sample_chunk))]
                 for idx in (torch.as_tensor(regions.row(r)) for r in range(n_regions))]
        for pos, consecutive in _chunks(np.flatnonzero(need.any(axis=1)), rows, step):
            group = _rows_of(models, rows[pos], consecutive)
            if dtype is not None:
                group = group.to(dtype=dtype)  # once per device, whichever regions it is scored on
            for r in range(n_regions):
                wanted = need[pos, r]
                if not wanted.any():
                    continue
                here = np.flatnonzero(wanted)
                sub = _rows_of(group, here, here[-1] - here[0] + 1 == here.size)
                hits = torch.zeros(here.size, dtype=torch.int64, device=models.device)
                for x, y in parts[r]:
                    logits = sub.forward(x, shared=True, chunk_size=step)
                    hits += (logits.argmax(-1) == y).sum(-1)
                correct[pos[here], r] = hits.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = correct / np.where(sizes > 0, sizes, np.nan)
    out[~need] = np.nan
    return out


def _rows_of(models: ModelField, idx: np.ndarray, consecutive: bool) -> ModelField:
    """The rows `idx` of `models`: a slice (views, no copy) where they are one run of consecutive rows, else a
    gather."""
    return models[int(idx[0]) : int(idx[-1]) + 1] if consecutive else models[idx]


def _chunks(who: np.ndarray, rows: np.ndarray, step: int) -> list[tuple[np.ndarray, bool]]:
    """`who` (positions into `rows`) cut into pieces of at most `step`, each with whether its model rows
    `rows[piece]` are consecutive: runs of at least `step // 2` consecutive rows are cut into pieces of their own
    (their models a slice of the ModelField, no copy); the rest is gathered `step` at a time. Array code: the
    Python loop is over pieces, never over devices or runs."""
    if who.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], np.diff(rows[who]) != 1]))  # where each run begins
    lengths = np.diff(np.append(starts, who.size))
    long = np.repeat(lengths >= max(1, step // 2), lengths)  # per position: inside a long run
    offset = np.arange(who.size) - np.repeat(starts, lengths)  # position within its run
    runs, rest = who[long], who[~long]
    cuts = np.flatnonzero(offset[long] % step == 0)[1:]  # a piece starts at every step-th position of a run
    pieces = [(p, True) for p in np.split(runs, cuts)] if runs.size else []
    return pieces + [(rest[s : s + step], False) for s in range(0, rest.size, step)]


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
