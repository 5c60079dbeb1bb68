"""Optimisers over stacked tensors: per-device Adam and SGD state, and the updates of the rows (devices) that took a
real step, each equal to torch.optim's update of one device."""
from __future__ import annotations

import math

import numpy as np
import torch

from fieldlearn.calculus.pytree import register_pytree_node

from .models import ModelField

__all__ = ["OptimiserState", "SLOTS", "adam_update", "fused_adam_update", "sgd_update", "fused_adam_applies"]

#: The moment slots each optimiser keeps per parameter.
SLOTS = {"adam": ("exp_avg", "exp_avg_sq"), "sgd": ("momentum_buffer",)}


class OptimiserState:
    """Per-device optimiser state over stacked tensors: step counts `[n]`, moment slots `{slot: {name: [n, ...]}}`."""

    __slots__ = ("kind", "step", "slots")

    def __init__(self, kind: str, step: torch.Tensor, slots: dict[str, dict[str, torch.Tensor]]):
        self.kind, self.step, self.slots = kind, step, slots

    @classmethod
    def zeros(cls, kind: str, models: ModelField) -> "OptimiserState":
        """A fresh state (no steps taken) for every device of `models`."""
        if kind not in SLOTS:
            raise ValueError(f"unknown optimiser {kind!r} (expected 'adam' or 'sgd')")
        slots = {s: {k: torch.zeros_like(v) for k, v in models.params.items()} for s in SLOTS[kind]}
        return cls(kind, torch.zeros(len(models), dtype=torch.long, device=models.device), slots)

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def __getitem__(self, idx: object) -> "OptimiserState":
        """The state of the selected devices."""
        if isinstance(idx, (int, np.integer)):
            sel = slice(int(idx), int(idx) + 1)
        elif isinstance(idx, (slice, torch.Tensor)):
            sel = idx
        else:
            sel = torch.as_tensor(np.asarray(idx))
        return OptimiserState(self.kind, self.step[sel],
                              {s: {k: v[sel] for k, v in d.items()} for s, d in self.slots.items()})

    def clone(self) -> "OptimiserState":
        """A deep copy."""
        return OptimiserState(self.kind, self.step.clone(),
                              {s: {k: v.clone() for k, v in d.items()} for s, d in self.slots.items()})

    def __repr__(self) -> str:
        return f"OptimiserState({self.kind}, n={len(self)})"


def _state_flatten(state: OptimiserState) -> tuple[list, tuple]:
    names = tuple(tuple(d) for d in state.slots.values())
    leaves = [state.step] + [t for d in state.slots.values() for t in d.values()]
    return leaves, (state.kind, tuple(state.slots), names)


def _state_unflatten(aux: tuple, leaves: list) -> OptimiserState:
    kind, slot_names, names = aux
    it = iter(leaves[1:])
    slots = {s: {k: next(it) for k in ks} for s, ks in zip(slot_names, names)}
    return OptimiserState(kind, leaves[0], slots)


register_pytree_node(OptimiserState, _state_flatten, _state_unflatten)


def _view(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A per-row tensor shaped to broadcast over `like`'s trailing dimensions (a number as it is)."""
    if isinstance(x, torch.Tensor):
        return x.view(-1, *([1] * (like.dim() - 1)))
    return x


def adam_update(params: dict, grads: dict, m: dict, v: dict, step: np.ndarray, *, lr: float, betas: tuple,
                eps: float, weight_decay: float) -> None:
    """torch.optim.Adam's update (L2 weight decay) with a step count per device."""
    b1, b2 = betas
    uniform = step.min() == step.max()
    for k, p in params.items():
        g = grads[k]
        if weight_decay:
            g = g.add(p, alpha=weight_decay)
        m[k].lerp_(g, 1 - b1)
        v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
        if uniform:
            t = float(step[0])
            bc1, bc2 = 1 - b1**t, 1 - b2**t
            denom = (v[k].sqrt() / math.sqrt(bc2)).add_(eps)
            p.addcdiv_(m[k], denom, value=-lr / bc1)
        else:
            t = torch.as_tensor(step, dtype=torch.float64)
            size = torch.as_tensor(lr / (1 - b1**t), dtype=p.dtype, device=p.device)
            root = torch.as_tensor(torch.sqrt(1 - b2**t), dtype=p.dtype, device=p.device)
            denom = (v[k].sqrt() / _view(root, p)).add_(eps)
            p.addcdiv_(m[k] * _view(size, p), denom, value=-1.0)


def fused_adam_update(params: dict, grads: dict, m: dict, v: dict, step: float, *, lr: float, betas: tuple,
                      eps: float, weight_decay: float) -> None:
    """The same update through PyTorch's fused multi-tensor kernel (one pass; all rows share one step count; it walks
    its tensors in memory order, so gradients must be in the parameters' layout)."""
    keys = list(params)
    like = params[keys[0]]
    t = torch.full((), float(step), dtype=torch.float32, device=like.device)
    torch._fused_adam_(
        [params[k] for k in keys], [grads[k] for k in keys], [m[k] for k in keys],
        [v[k] for k in keys], [], [t] * len(keys), lr=lr, beta1=betas[0], beta2=betas[1],
        weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False,
    )


def sgd_update(params: dict, grads: dict, buf: dict, *, lr: float, momentum: float, nesterov: bool,
               weight_decay: float) -> None:
    """torch.optim.SGD's update (dampening 0); a zero momentum buffer makes the first step take the gradient."""
    for k, p in params.items():
        g = grads[k]
        if weight_decay:
            g = g.add(p, alpha=weight_decay)
        if momentum:
            b = buf[k].mul_(momentum).add_(g)
            g = g.add(b, alpha=momentum) if nesterov else b
        p.add_(g, alpha=-lr)


def fused_adam_applies(params: dict[str, torch.Tensor]) -> bool:
    """Whether PyTorch's fused Adam kernel applies: one float dtype and device for all parameters."""
    first = next(iter(params.values()))
    return (hasattr(torch, "_fused_adam_") and first.device.type in ("cpu", "cuda")
            and first.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
            and all(v.dtype == first.dtype and v.device == first.device for v in params.values()))
