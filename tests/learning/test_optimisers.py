"""The stacked optimiser updates equal torch.optim's update of each device's row, step counts per device included."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fieldlearn.learning.models import ModelField
from fieldlearn.learning.optimisers import (SLOTS, OptimiserState, adam_update, fused_adam_applies, fused_adam_update,
                                            sgd_update)

SHAPES = {"w": (3, 4), "b": (4,)}


def stacked(rows: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn((rows, *shape), generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}


def torch_rows(params: dict, grads: list[dict], steps: list[int], make_opt) -> dict[str, torch.Tensor]:
    """Each row as its own tensors under a torch.optim optimiser, stepped `steps[i]` times with grads[t] row i."""
    out = {k: torch.empty_like(v) for k, v in params.items()}
    for i, count in enumerate(steps):
        mine = {k: v[i].clone().requires_grad_(True) for k, v in params.items()}
        opt = make_opt(list(mine.values()))
        for t in range(count):
            for k, p in mine.items():
                p.grad = grads[t][k][i].clone()
            opt.step()
        for k, p in mine.items():
            out[k][i] = p.detach()
    return out


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("fused", [False, True])
def test_adam_rows_equal_torch_adam_per_device(weight_decay, fused):
    rows, rounds = 5, 4
    params, grads = stacked(rows, 0), [stacked(rows, 10 + t) for t in range(rounds)]
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v = {k: torch.zeros_like(t) for k, t in params.items()}
    ours = {k: t.clone() for k, t in params.items()}
    for t in range(rounds):
        opts = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
        if fused:
            fused_adam_update(ours, grads[t], m, v, float(t + 1), **opts)
        else:
            adam_update(ours, grads[t], m, v, np.full(rows, t + 1), **opts)
    want = torch_rows(params, grads, [rounds] * rows,
                      lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=weight_decay))
    for k in params:
        torch.testing.assert_close(ours[k], want[k], rtol=0, atol=1e-12)


def test_adam_rows_with_their_own_step_counts_equal_torch_adam():
    # rows that joined later have taken fewer steps: each row's bias correction uses its own count
    rows = 4
    params, extra = stacked(rows, 1), stacked(rows, 2)
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v = {k: torch.zeros_like(t) for k, t in params.items()}
    ours = {k: t.clone() for k, t in params.items()}
    warm = [3, 1, 0, 2]  # earlier steps per row, each with the `extra` gradient
    for t in range(max(warm)):
        active = [i for i, w in enumerate(warm) if w > t]
        sub = {k: x[active] for k, x in ours.items()}
        ms, vs = ({k: x[active] for k, x in d.items()} for d in (m, v))
        adam_update(sub, {k: x[active] for k, x in extra.items()}, ms, vs, np.full(len(active), t + 1), lr=0.01,
                    betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        for k in ours:
            ours[k][active], m[k][active], v[k][active] = sub[k], ms[k], vs[k]
    grads = stacked(rows, 3)
    adam_update(ours, grads, m, v, np.array(warm) + 1, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    for i, w in enumerate(warm):
        schedule = [extra] * w + [grads]
        want = torch_rows({k: x[i:i + 1] for k, x in params.items()},
                          [{k: x[i:i + 1] for k, x in g.items()} for g in schedule], [w + 1],
                          lambda p: torch.optim.Adam(p, lr=0.01))
        for k in params:
            torch.testing.assert_close(ours[k][i:i + 1], want[k], rtol=0, atol=1e-12)


@pytest.mark.parametrize("momentum,nesterov,weight_decay", [(0.0, False, 0.0), (0.9, False, 1e-2), (0.5, True, 0.0)])
def test_sgd_rows_equal_torch_sgd_per_device(momentum, nesterov, weight_decay):
    rows, rounds = 3, 3
    params, grads = stacked(rows, 4), [stacked(rows, 20 + t) for t in range(rounds)]
    buf = {k: torch.zeros_like(v) for k, v in params.items()}
    ours = {k: t.clone() for k, t in params.items()}
    for t in range(rounds):
        sgd_update(ours, grads[t], buf, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    want = torch_rows(params, grads, [rounds] * rows, lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))
    for k in params:
        torch.testing.assert_close(ours[k], want[k], rtol=0, atol=1e-12)


def test_a_fresh_state_has_each_optimisers_slots_and_selects_rows():
    models = ModelField.from_factory(lambda: torch.nn.Linear(3, 2), 4, seed=0)
    state = OptimiserState.zeros("adam", models)
    assert tuple(state.slots) == SLOTS["adam"] == ("exp_avg", "exp_avg_sq") and len(state) == 4
    assert all(not t.any() for d in state.slots.values() for t in d.values())
    part = state[[1, 3]]
    assert len(part) == 2 and part.slots["exp_avg"]["weight"].shape == (2, 2, 3)
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'"):
        OptimiserState.zeros("rmsprop", models)
    assert fused_adam_applies(models.params)
    assert not fused_adam_applies({"a": torch.zeros(2, 3), "b": torch.zeros(2, dtype=torch.float64)})
