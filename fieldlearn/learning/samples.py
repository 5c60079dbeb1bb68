"""Sample fields (per-device index sets as int64 rows padded with -1, so they project onto branches and travel like
any field) and the one keyed per-round draw of samples that training sets and replay budgets use."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fieldlearn.calculus.keyed import keyed_uniform

from .data import IndexSets, as_index_array

__all__ = ["pad_sets", "unpad", "draw_per_device"]


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


def draw_per_device(sets: IndexSets, quota: int, devices: Any, *, seed: int, salt: int, counter: int) -> IndexSets:
    """At most `quota` samples of every row (row k belongs to device `devices[k]`): a uniform draw hashed from
    (seed, salt, counter, device, sample), so the same device draws the same samples in any batch."""
    if sets.nnz == 0:
        return sets
    dev = as_index_array(devices)
    keys = keyed_uniform(seed, salt, int(counter), dev[sets.row_ids()], sets.indices)
    return sets.keep_lowest(keys, np.full(len(sets), int(quota), dtype=np.int64))
