"""Batched local training: every device's model takes its own mini-batch steps in one vmapped computation."""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import functools
import queue
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .data import DeviceData, IndexSets
from .models import ModelField
from .optimisers import SLOTS, OptimiserState, adam_update, fused_adam_applies, fused_adam_update, sgd_update
from .stacked import plain_mlp_gradients, plain_mlp_layers, training_template

__all__ = ["OptimiserState", "TrainResult", "train", "batch_schedule", "Loss", "cross_entropy", "proximal_loss",
           "ProximalLoss"]


class TrainResult(NamedTuple):
    """What `train` returns: trained models, optimiser state (None with a fresh optimiser), mean loss per device."""

    models: ModelField
    state: OptimiserState | None
    loss: torch.Tensor


# --------------------------------------------------------------------------------------------------
# the sample schedule: per device, the order of its samples in every epoch


def batch_schedule(
    sets: IndexSets, batch_size: int, *, epochs: int | None = None, steps: int | None = None,
    generator: torch.Generator | None = None, order: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per device: number of steps, steps per epoch, offset into the sample stream, and the stream itself.

    Device i's epoch e occupies `stream[ptr[i] + e * n_i : ptr[i] + (e + 1) * n_i]`, a permutation of its
    samples (seeded by `generator`, or given by `order(e)`: positions into `sets.indices`, each row's
    segment permuted within itself). Step s of device i is batch `s % k_i` of epoch `s // k_i`.
    """
    counts = sets.lengths()
    per_epoch = -(-counts // batch_size)  # ceil
    if (epochs is None) == (steps is None):
        raise ValueError("train: give exactly one of epochs= or steps=")
    if epochs is not None:
        if epochs < 0:
            raise ValueError(f"train: epochs must be >= 0, got {epochs}")
        total = per_epoch * epochs
    else:
        if steps < 0:
            raise ValueError(f"train: steps must be >= 0, got {steps}")
        total = np.where(counts > 0, steps, 0).astype(np.int64)
    n_epochs = np.where(per_epoch > 0, -(-total // np.maximum(per_epoch, 1)), 0)
    sizes = n_epochs * counts
    ptr = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    stream = np.empty(int(sizes.sum()), dtype=np.int64)
    rows = sets.row_ids()
    ranks = sets.ranks()
    for e in range(int(n_epochs.max(initial=0))):
        pos = np.flatnonzero(n_epochs[rows] > e)
        if order is not None:
            given = order(e)
            perm = np.asarray(given.cpu().numpy() if isinstance(given, torch.Tensor) else given, dtype=np.int64)
            if perm.shape != (sets.nnz,) or not np.array_equal(rows[perm], rows):
                raise ValueError(f"train: order({e}) must permute positions within each device's segment")
            chosen = perm[pos]
        else:
            keys = torch.rand(pos.size, generator=generator, dtype=torch.float64).numpy()
            chosen = pos[np.argsort(rows[pos] + keys, kind="stable")]
        r = rows[pos]
        stream[ptr[r] + e * counts[r] + ranks[pos]] = sets.indices[chosen]
    return total.astype(np.int64), per_epoch.astype(np.int64), ptr, stream


# --------------------------------------------------------------------------------------------------
# what trains: the loss, the per-device extras it reads, and the parameters that take steps

#: A per-device loss: `loss(logits [batch, classes], labels [batch], params {name: tensor}, extras {name: tensor})`
#: returns one loss per sample, `[batch]`, written as for one model in a plain torch loop.
Loss = Callable[[torch.Tensor, torch.Tensor, dict, dict], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, params: dict, extras: dict) -> torch.Tensor:
    """The built-in loss as a `loss=` function: per-sample cross-entropy of one device (to build other losses on)."""
    return F.cross_entropy(logits, labels, reduction="none")


class ProximalLoss:
    """FedProx's loss `base + mu/2 ||w - w_anchor||^2`, the anchor model's parameters given in `extras` under the
    parameters' own names (e.g. `extras=regional_models`); the penalty counts once per step, as in a torch loop.

    It is an ordinary per-device `Loss`; `train` also knows its form and adds the penalty's gradient
    `mu (w - w_anchor)` to the update directly (as weight decay mu plus a `-mu w_anchor` shift of the gradient),
    which saves the memory passes of differentiating the penalty through autograd."""

    __slots__ = ("mu", "base")

    def __init__(self, mu: float, base: Loss = cross_entropy):
        if not mu >= 0:
            raise ValueError(f"proximal_loss: mu must be >= 0, got {mu}")
        self.mu, self.base = float(mu), base

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, params: dict, extras: dict) -> torch.Tensor:
        _check_anchor(params, extras)
        # mse_loss(sum) is the squared distance in one kernel each way (fewer passes than (p - a) ** 2 under vmap)
        penalty = sum(F.mse_loss(p, extras[k], reduction="sum") for k, p in params.items())
        return self.base(logits, labels, params, extras) + (self.mu / 2) * penalty

    def __repr__(self) -> str:
        return f"proximal_loss({self.mu}, base={getattr(self.base, '__name__', self.base)!r})"


def proximal_loss(mu: float, base: Loss = cross_entropy) -> ProximalLoss:
    """FedProx's loss `base + mu/2 ||w - w_anchor||^2` with the anchor model in `extras` (see `ProximalLoss`)."""
    return ProximalLoss(mu, base)


def _check_anchor(params: Mapping[str, Any], extras: Mapping[str, Any]) -> None:
    """The anchor in `extras` has every parameter, under its name and of its shape."""
    missing = [k for k in params if k not in extras]
    if missing:
        raise ValueError(f"proximal_loss: extras lack the anchor's parameters {missing}; pass extras=anchor_models")
    for k, v in params.items():
        if extras[k].shape != v.shape:
            raise ValueError(f"proximal_loss: extras[{k!r}] has shape {tuple(extras[k].shape)}, the parameter "
                             f"{tuple(v.shape)}")


def _trainable_names(names: tuple[str, ...], trainable: object) -> tuple[str, ...]:
    """The parameter names that train, in the model's order: all (None), those named, or those a predicate keeps."""
    if trainable is None:
        return names
    if callable(trainable):
        chosen = tuple(k for k in names if trainable(k))
    else:
        given = [trainable] if isinstance(trainable, str) else list(trainable)
        unknown = [k for k in given if k not in names]
        if unknown:
            raise ValueError(f"train: trainable= names unknown parameters {unknown}; the model's parameters are "
                             f"{list(names)}")
        chosen = tuple(k for k in names if k in set(given))
    if not chosen:
        raise ValueError(f"train: trainable= selects no parameter of {list(names)}; nothing would train")
    return chosen


def _extra_tensors(extras: object, n: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Per-device extra tensors `{name: [n, ...]}` (or a ModelField's parameters), detached, on the models' device;
    a tensor of one row (e.g. one global model) is every device's row."""
    if extras is None:
        return {}
    if isinstance(extras, ModelField):
        extras = extras.params
    if not isinstance(extras, Mapping):
        raise TypeError(f"train: extras= must be a dict {{name: tensor[n, ...]}} or a ModelField, "
                        f"got {type(extras).__name__}")
    out = {}
    for k, v in extras.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"train: extras[{k!r}] must be a tensor with one row per device, got {type(v).__name__}")
        if v.dim() == 0 or v.shape[0] not in (1, n):
            raise ValueError(f"train: extras[{k!r}] has shape {tuple(v.shape)}; it needs one row per device ({n}) "
                             "or one row for all")
        out[k] = v.detach().to(device).expand(n, *v.shape[1:])
    return out


def _rows(source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`source[idx]` for an index tensor of any shape, through `index_select` (the same values; for a `[devices,
    batch]` index of 784-float rows, 2.7-3.5x faster than advanced indexing, which gathers element by element)."""
    return source.index_select(0, idx.reshape(-1)).view(*idx.shape, *source.shape[1:])


def _head(tensors: Mapping[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """The first `m` rows of each tensor (a chunk's real devices, without its padding)."""
    return {key: v[:m] for key, v in tensors.items()}


# --------------------------------------------------------------------------------------------------
# training


def _check_trainable(template: nn.Module) -> None:
    for name, mod in template.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"train: module {name or type(mod).__name__} is batch normalisation, which mixes the samples of a "
                "batch, so padded and partial batches could not be kept apart; use LayerNorm or GroupNorm")


def _gradients(template: nn.Module, loss: Loss | None,
               mlp: list[tuple[str, nn.Module]] | None = None) -> Callable[..., tuple[dict, torch.Tensor]]:
    """Per-device gradients (of the trainable parameters) and values of the weighted loss of a chunk of devices.

    The forward pass (and a custom `loss`, written for one device) is vmapped over the devices; the backward pass is
    one ordinary autograd call on the sum of the devices' losses (each device's loss depends only on its own
    parameters, so this sum's gradient is every device's own gradient, in the parameters' layout, without the
    per-call cost of a functorch `grad` transform). The built-in cross-entropy runs outside the vmap on all rows. A
    plain MLP (`mlp`: its layers) with the built-in loss takes the same operations without vmap or autograd.
    """
    if loss is None and mlp is not None:
        def direct(p: dict, frozen: dict, b: dict, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                   e: dict) -> tuple[dict, torch.Tensor]:
            grads, per_device = plain_mlp_gradients(mlp, {**frozen, **p}, set(p), x, y, w)
            return {k: grads[k] for k in p}, per_device

        return direct
    if loss is None:
        forward = torch.vmap(lambda p, b, x: functional_call(template, (p, b), (x,)), in_dims=(0, 0, 0),
                             randomness="different")

        def per_sample(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor, e: dict) -> torch.Tensor:
            logits = forward(p, b, x)
            return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
    else:
        def one(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor, e: dict) -> torch.Tensor:
            value = loss(functional_call(template, (p, b), (x,)), y, p, e)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(y.shape):
                got = f"shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"train: loss= must return one loss per sample, a tensor of shape [batch] = "
                                 f"{list(y.shape)}, got {got} (add a per-device term such as a penalty to every "
                                 "sample's loss: it counts once per step)")
            return value

        per_sample = torch.vmap(one, in_dims=(0, 0, 0, 0, 0), randomness="different")

    def step(p: dict, frozen: dict, b: dict, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
             e: dict) -> tuple[dict, torch.Tensor]:
        leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        per_device = (per_sample({**frozen, **leaves}, b, x, y, e) * w).sum(1)
        try:
            grads = torch.autograd.grad(per_device.sum(), list(leaves.values()))
        except RuntimeError as err:
            if "not have been used in the graph" not in str(err) and "does not require grad" not in str(err):
                raise
            raise ValueError(f"train: the loss does not depend on every trainable parameter ({list(leaves)}); "
                             "leave the others out of trainable=") from None
        return dict(zip(leaves, grads)), per_device.detach()

    return step


class _Rows:
    """Stacked tensors `{name: [n, ...]}` worked on chunk by chunk, devices in step order. A chunk whose devices are
    consecutive rows of a contiguous tensor (`spans`: a chunk's first row in storage, by its first position in step
    order; every chunk when the step order is the storage order) works on those rows themselves, through views with
    a version counter of their own (`.data`): views of one tensor share its counter, so another worker's in-place
    step on other rows would look to autograd like a change of the rows this worker's backward pass saved. Other
    chunks are gathered into a chunk-sized buffer, which `store` writes back to their rows."""

    def __init__(self, tensors: dict[str, torch.Tensor], perm: torch.Tensor | None, spans: Mapping[int, int],
                 chunk: int):
        self.tensors, self.perm, self.spans, self.chunk = tensors, perm, spans, chunk
        self.buf: dict[str, torch.Tensor] = {}

    def _span(self, c0: int, c1: int) -> slice | None:
        start = c0 if self.perm is None else self.spans.get(c0)
        return None if start is None else slice(start, start + c1 - c0)

    def load(self, c0: int, c1: int) -> dict[str, torch.Tensor]:
        """Rows c0..c1 (in step order) of every tensor."""
        rows = self._span(c0, c1)
        out = {}
        for k, v in self.tensors.items():
            if rows is not None and v.is_contiguous():
                out[k] = v[rows].data
                continue
            if k not in self.buf:
                self.buf[k] = v.new_empty((min(self.chunk, v.shape[0]), *v.shape[1:]))
            b = self.buf[k][: c1 - c0]
            if rows is not None:
                b.copy_(v[rows])
            else:
                torch.index_select(v, 0, self.perm[c0:c1], out=b)
            out[k] = b
        return out

    def store(self, c0: int, c1: int, views: dict[str, torch.Tensor]) -> None:
        """Write rows loaded into buffers (and trained there) back to their devices' rows."""
        rows = self._span(c0, c1)
        for k, v in views.items():
            target = self.tensors[k]
            if rows is None:
                target.index_copy_(0, self.perm[c0:c1], v)
            elif not target.is_contiguous():
                target[rows].copy_(v)


def _chunk_plan(perm: np.ndarray | None, active: int, chunk: int) -> tuple[list[tuple[int, int]], dict[int, int]]:
    """The chunks (bounds in step order, `chunk` devices each) and, for those whose devices are consecutive rows in
    storage, their first row (they need no gather)."""
    chunks = [(c0, min(c0 + chunk, active)) for c0 in range(0, active, chunk)]
    if perm is None:
        return chunks, {}
    cuts = np.flatnonzero(np.diff(perm[:active]) != 1) + 1  # where a run of consecutive rows ends
    first = np.searchsorted(cuts, [c0 for c0, _ in chunks], side="right")
    last = np.searchsorted(cuts, [c1 - 1 for _, c1 in chunks], side="right")
    return chunks, {c0: int(perm[c0]) for (c0, _), a, b in zip(chunks, first, last) if a == b}


class _Contiguous:
    """Gradients in the parameters' (contiguous) layout, copied into chunk-sized scratch buffers when autograd
    returns another layout (a vmapped linear layer's weight gradient comes out transposed): the fused Adam kernel
    walks all its tensors in memory order, and fresh tensors each step would churn the allocator."""

    def __init__(self, chunk: int):
        self.chunk, self.buf = chunk, {}

    def __call__(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, g in grads.items():
            if g.is_contiguous():
                out[k] = g
                continue
            b = self.buf.get(k)
            if b is None or b.shape[1:] != g.shape[1:] or b.dtype != g.dtype:
                b = self.buf[k] = g.new_empty((max(self.chunk, g.shape[0]), *g.shape[1:]))
            out[k] = b[: g.shape[0]].copy_(g)
        return out


def _with_autograd(fn: Callable) -> Callable:
    """Run `fn` with autograd on, even under an outer `no_grad` or `inference_mode` (rounds may run under either)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            return fn(*args, **kwargs)

    return wrapper


@dataclasses.dataclass(slots=True)
class _Plan:
    """What every chunk of one `train` call shares: the devices' tensors (in storage order; `perm` maps step order
    to them), the step schedule in step order, the loss and the optimiser's settings."""

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor]
    names: tuple[str, ...]
    source: OptimiserState | None
    perm: torch.Tensor | None
    spans: dict[int, int]
    chunk: int
    loss: Loss | None
    mlp: list[tuple[str, nn.Module]] | None
    prox: ProximalLoss | None
    optimiser: str
    fused: bool
    lr: float
    betas: tuple[float, float]
    eps: float
    decay: float
    momentum: float
    nesterov: bool
    batch_size: int
    dtype: torch.dtype
    steps: np.ndarray
    start_step: np.ndarray
    per_epoch: torch.Tensor
    counts: torch.Tensor
    offsets: torch.Tensor
    stream: torch.Tensor
    slots: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor
    loss_sum: torch.Tensor


class _Lane:
    """What one worker trains its chunks with: its own template (functional_call swaps a module's parameters while
    it runs), step function and chunk-sized buffers; the devices' tensors are the plan's."""

    def __init__(self, plan: _Plan, stepping: nn.Module):
        self.plan, self.step_fn = plan, _gradients(stepping, plan.loss, plan.mlp)
        params, perm, spans, chunk, names = plan.params, plan.perm, plan.spans, plan.chunk, plan.names
        self.learning = _Rows({k: params[k] for k in names}, perm, spans, chunk)
        self.fixed = _Rows({k: v for k, v in params.items() if k not in names}, perm, spans, chunk)
        self.fixed_buffers = _Rows(plan.buffers, perm, spans, chunk)
        self.extra_rows = _Rows(plan.extra, perm, spans, chunk)
        if plan.source is None:
            n = len(plan.steps)
            self.fresh = {s: {k: params[k].new_zeros((min(chunk, n), *params[k].shape[1:])) for k in names}
                          for s in SLOTS[plan.optimiser]}
            self.kept = None
        else:
            self.kept = {s: _Rows({k: d[k] for k in names}, perm, spans, chunk)
                         for s, d in plan.source.slots.items()}
        self.contiguous = _Contiguous(chunk)

    def run(self, c0: int, c1: int, probe: bool = False) -> None:
        """All steps of the devices c0..c1 (in step order), written back to their rows; `probe`: only the gradient
        of the first device's first step, nothing written."""
        plan = self.plan
        with torch.no_grad():
            p_chunk = self.learning.load(c0, c1)
            f_chunk, b_chunk = self.fixed.load(c0, c1), self.fixed_buffers.load(c0, c1)
            e_chunk = self.extra_rows.load(c0, c1)
            if self.kept is None:
                s_chunk = {s: {k: v[: c1 - c0].zero_() for k, v in d.items()} for s, d in self.fresh.items()}
            else:
                s_chunk = {s: c.load(c0, c1) for s, c in self.kept.items()}
        neg_total = -plan.steps[c0:c1]
        for s in range(int(plan.steps[c0])):
            m = 1 if probe else int(np.searchsorted(neg_total, -s, side="left"))  # devices with a step s
            rows = slice(c0, c0 + m)
            k, n_rows = plan.per_epoch[rows], plan.counts[rows]
            batch = s % k
            first = plan.offsets[rows] + (s // k) * n_rows + batch * plan.batch_size
            real = torch.clamp(n_rows - batch * plan.batch_size, max=plan.batch_size)
            slots = plan.slots[: int(real.max())]  # no step computes slots that no device of the chunk fills
            valid = slots < real[:, None]
            # a padded slot repeats the batch's first sample and weighs 0: nothing foreign enters
            samples = plan.stream[first[:, None] + torch.where(valid, slots, 0)]
            weight = valid.to(plan.dtype) / real[:, None].to(plan.dtype)
            p, frozen, anchor = _head(p_chunk, m), _head(f_chunk, m), _head(e_chunk, m)
            grads, step_loss = self.step_fn(p, frozen, _head(b_chunk, m), _rows(plan.inputs, samples),
                                            _rows(plan.labels, samples), weight, anchor)
            if probe:
                return
            if plan.prox is not None:
                with torch.no_grad():
                    grads = self.contiguous(grads)
                    here = {**frozen, **p}
                    penalty = sum(F.mse_loss(v, anchor[key], reduction="none").flatten(1).sum(1)
                                  for key, v in here.items())
                    step_loss = step_loss + (plan.prox.mu / 2) * penalty
                    for key in p:  # mu (w - a) = the decay term mu w, plus -mu a here
                        grads[key].sub_(anchor[key], alpha=plan.prox.mu)
            plan.loss_sum[rows] += step_loss.to(torch.float64) * real
            sl = {name: _head(d, m) for name, d in s_chunk.items()}
            step_counts = plan.start_step[c0 : c0 + m] + s + 1
            with torch.no_grad():
                if plan.optimiser == "sgd":
                    sgd_update(p, grads, sl["momentum_buffer"], lr=plan.lr, momentum=plan.momentum,
                               nesterov=plan.nesterov, weight_decay=plan.decay)
                elif plan.fused and step_counts.min() == step_counts.max():
                    fused_adam_update(p, self.contiguous(grads), sl["exp_avg"], sl["exp_avg_sq"],
                                      float(step_counts[0]), lr=plan.lr, betas=plan.betas, eps=plan.eps,
                                      weight_decay=plan.decay)
                else:
                    adam_update(p, grads, sl["exp_avg"], sl["exp_avg_sq"], step_counts, lr=plan.lr,
                                betas=plan.betas, eps=plan.eps, weight_decay=plan.decay)
        with torch.no_grad():
            self.learning.store(c0, c1, p_chunk)
            if self.kept is not None:
                for s, c in self.kept.items():
                    c.store(c0, c1, s_chunk[s])


def _train_chunks_in_parallel(plan: _Plan, stepping: nn.Module, chunks: list[tuple[int, int]], threads: int) -> None:
    """Train the chunks on `threads` workers, each with one torch thread and its own copy of the template: chunks
    are independent, so this gives the same bits as one worker, where torch's own threads would split each small
    step (benchmarks/RESULTS.md). A step that draws random numbers (dropout) would draw them in whatever order the
    workers run, so one device's first gradient is taken first, and if it drew any the chunks run one by one."""
    first = _Lane(plan, stepping)
    before = torch.get_rng_state()
    first.run(*chunks[0], probe=True)
    draws = not torch.equal(before, torch.get_rng_state())
    torch.set_rng_state(before)
    if draws:
        for c0, c1 in chunks:
            first.run(c0, c1)
        return
    workers = min(threads, len(chunks))
    lanes = queue.SimpleQueue()
    lanes.put(first)
    for _ in range(workers - 1):
        lanes.put(_Lane(plan, copy.deepcopy(stepping)))

    def run(bounds: tuple[int, int]) -> None:
        lane = lanes.get()
        try:
            with torch.inference_mode(False), torch.enable_grad():  # autograd's modes are per thread
                lane.run(*bounds)
        finally:
            lanes.put(lane)

    torch.set_num_threads(1)
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(run, bounds) for bounds in chunks]
            try:
                for done in futures:
                    done.result()
            except BaseException:  # an error or an interrupt: the chunks not started are not trained
                for waiting in futures:
                    waiting.cancel()
                raise
    finally:
        torch.set_num_threads(threads)


@_with_autograd
def train(
    models: ModelField,
    data: DeviceData,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    optimiser: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fresh_optimiser: bool = True,
    state: OptimiserState | None = None,
    generator: torch.Generator | None = None,
    order: Callable[[int], object] | None = None,
    chunk_size: int | None = None,
    fused: bool | None = None,
    loss: Loss | None = None,
    extras: Mapping[str, torch.Tensor] | ModelField | None = None,
    trainable: Iterable[str] | str | Callable[[str], bool] | None = None,
    inplace: bool = False,
) -> TrainResult:
    """Train every device's model on its own samples, all devices as one batched computation.

    Per epoch each device shuffles its own samples and takes ceil(n_i / batch_size) steps, the last batch
    averaged over its real size (a `DataLoader(shuffle=True, drop_last=False)` loop); with `steps=` every
    device with data takes exactly that many steps through successive epochs. A device without a real
    batch at a step is not updated and its optimiser state does not advance; devices without samples are
    unchanged. `fresh_optimiser=False` continues from `state` (or zeros) and returns the new state.
    Devices are processed `chunk_size` at a time, each chunk running all its steps while it is in cache; on a cpu
    with several torch threads (`torch.set_num_threads`, the scenario's `learning.threads`) that many chunks train
    at once, one thread each, with the same results as one thread.

    `loss` (default: cross-entropy) is written for one device, `loss(logits, labels, params, extras) -> [batch]`,
    and runs vmapped over a chunk's devices; each sample's loss weighs 1/(real batch size), so a per-device term
    added to every sample counts once per step, as `ce.mean() + penalty` does. `extras` gives the loss per-device
    tensors `{name: [n, ...]}` (or a ModelField's parameters, e.g. an anchor model), one row per device (or one
    row for all). Only the
    parameters in `trainable` (names, or a predicate on names; default all) take steps: the others get no
    gradient, no update, no weight decay, and their optimiser state is left as it is (the step count is per
    device, so a part trained later with a kept state continues from the device's count).

    `inplace=True` trains `models` (and `state`) in place: the result holds the same tensors, updated, and
    no second copy of the models or the optimiser state is made (half the memory, no copy time); anyone
    still holding `models` sees the trained values. The default leaves the inputs untouched.
    """
    if optimiser not in SLOTS:
        raise ValueError(f"train: unknown optimiser {optimiser!r} (expected 'adam' or 'sgd')")
    if batch_size < 1:
        raise ValueError(f"train: batch_size must be >= 1, got {batch_size}")
    if fresh_optimiser and state is not None:
        raise ValueError("train: a state was given with fresh_optimiser=True; pass fresh_optimiser=False to use it")
    if loss is not None and not callable(loss):
        raise TypeError(f"train: loss= must be a function (logits, labels, params, extras) -> per-sample losses, "
                        f"got {type(loss).__name__}")
    n = len(models)
    sets = data.sets
    if len(sets) != n:
        raise ValueError(f"train: {len(sets)} index sets for {n} devices")
    if state is not None and (state.kind != optimiser or len(state) != n):
        raise ValueError(f"train: state is for {state.kind} over {len(state)} devices, not {optimiser} over {n}")
    template = models.template
    _check_trainable(template)
    device = models.device
    names = _trainable_names(models.spec.param_names, trainable)
    extra = _extra_tensors(extras, n, device)
    prox = loss if isinstance(loss, ProximalLoss) else None
    if prox is not None:
        _check_anchor(models.params, extra)
        loss = None if prox.base is cross_entropy else prox.base
        decay = weight_decay + prox.mu
    else:
        decay = weight_decay

    total, per_epoch, ptr, stream = batch_schedule(sets, batch_size, epochs=epochs, steps=steps,
                                                   generator=generator, order=order)
    like = next(iter(models.params.values()))
    use_fused = optimiser == "adam" and (fused_adam_applies(models.params) if fused is None else fused)
    chunk = max(1, chunk_size or models.chunk_size)

    if inplace:
        made = [k for k, v in models.params.items() if v.is_inference()]
        if made or (state is not None and any(t.is_inference() for d in state.slots.values() for t in d.values())):
            raise ValueError("train: inplace=True on tensors made under torch.inference_mode (which cannot be "
                             f"updated outside it: {made or 'the optimiser state'}); train a copy (inplace=False) "
                             "or make the models outside inference mode")
    with torch.no_grad():
        if inplace:
            params, buffers = models.params, models.buffers
        else:
            params = {k: v.clone() for k, v in models.params.items()}
            buffers = {k: v.clone() for k, v in models.buffers.items()}
        if fresh_optimiser:
            source = None
        elif state is None:
            source = OptimiserState.zeros(optimiser, models)
        else:
            source = state if inplace else state.clone()

    # Devices sorted by their number of steps: at every step the devices still training are a prefix.
    perm = np.argsort(-total, kind="stable")
    perm_t = None if np.array_equal(perm, np.arange(n)) else torch.as_tensor(perm, device=device)
    if source is None:
        start_step = np.zeros(n, dtype=np.int64)
    else:
        start_step = source.step.cpu().numpy()[perm]

    total_s = total[perm]
    active_n = int(np.count_nonzero(total_s))
    inputs = data.dataset.inputs.to(device)
    labels = data.dataset.labels.to(device)
    stream_t = torch.as_tensor(stream, device=device)
    k_t = torch.as_tensor(per_epoch[perm], device=device)
    n_t = torch.as_tensor(sets.lengths()[perm], device=device)
    ptr_t = torch.as_tensor(ptr[perm], device=device)
    slot_j = torch.arange(batch_size, device=device)
    loss_sum = torch.zeros(n, dtype=torch.float64, device=device)

    chunks, spans = _chunk_plan(None if perm_t is None else perm, active_n, chunk)
    plan = _Plan(params=params, buffers=buffers, extra=extra, names=names, source=source, perm=perm_t, spans=spans,
                 chunk=chunk, loss=loss, mlp=plain_mlp_layers(template), prox=prox, optimiser=optimiser,
                 fused=use_fused, lr=lr, betas=betas, eps=eps, decay=decay, momentum=momentum, nesterov=nesterov,
                 batch_size=batch_size, dtype=like.dtype, steps=total_s, start_step=start_step, per_epoch=k_t,
                 counts=n_t, offsets=ptr_t, stream=stream_t, slots=slot_j, inputs=inputs, labels=labels, loss_sum=loss_sum)
    stepping = training_template(template)
    threads = torch.get_num_threads()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else None
    stepping.train(True)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            if device.type == "cpu" and threads > 1 and len(chunks) > 1:
                _train_chunks_in_parallel(plan, stepping, chunks, threads)
            else:
                lane = _Lane(plan, stepping)
                for c0, c1 in chunks:
                    lane.run(c0, c1)
    finally:
        stepping.train(False)

    samples_seen = torch.as_tensor(_samples_seen(total_s, per_epoch[perm], sets.lengths()[perm], batch_size),
                                   device=device)
    mean_loss = (loss_sum / samples_seen).to(torch.float32)
    if perm_t is not None:
        mean_loss = torch.empty_like(mean_loss).index_copy_(0, perm_t, mean_loss)
    trained = ModelField._from_spec(models.spec, params, buffers)
    if source is not None:
        after = torch.as_tensor(start_step + total_s, dtype=torch.long, device=source.step.device)
        if perm_t is not None:
            after = torch.empty_like(after).index_copy_(0, perm_t.to(after.device), after)
        source.step.copy_(after)
    return TrainResult(trained, source, mean_loss)


def _samples_seen(total: np.ndarray, per_epoch: np.ndarray, counts: np.ndarray, batch_size: int) -> np.ndarray:
    """Samples processed by each device over its steps (zero for devices without steps, giving a NaN mean loss)."""
    k = np.maximum(per_epoch, 1)
    full_epochs = total // k
    rest = total % k  # batches into an unfinished epoch, all of them full
    seen = full_epochs * counts + np.minimum(rest * batch_size, counts)
    return np.where(total > 0, seen, 0).astype(np.float64)
