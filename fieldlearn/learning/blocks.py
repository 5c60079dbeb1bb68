"""Aggregate learning blocks: what learning programs compose. Each is an `@aggregate` function over fields of the
current domain and does one batched computation for all the devices of the batch (through `local`); none loops
over devices in Python. Blocks read the run's learning context (data, trainer, replay stores) through
`learning_context()`, i.e. the resource "learning" its runner lends, and the VM's `clock()`.

    models = rep(fresh_models, step)                          # every device's model, kept across rounds
    samples = current_samples()                               # D(t): this round's samples where the device is
    trained = train_locally(theta, samples)                   # everyone's local steps at once
    merged = blend(trained, regional, alpha)                  # (1 - alpha) trained + alpha regional, per device
    memory = replay(samples, leader, "unbounded")             # grows when the leader changes
    seen = with_replay(samples, memory, per_round=200)        # current data plus a draw from the memory
    tuned = finetune(merged, seen, where=alpha > 0)           # optional post-merge pass
"""
from __future__ import annotations

from typing import Any

import torch

from fieldlearn.calculus import Field, aggregate, clock, local, mid, minimum, mux, rep, sense

from .context import learning_context
from .data import as_index_array
from .models import ModelField
from .models import blend_models
from .replay import ReplayStore
from .samples import draw_per_device, pad_sets, unpad
from .train import Loss
from .trainer import Trainer

__all__ = [
    "fresh_models", "current_samples", "round_number", "is_mobile", "sample_counts", "class_counts",
    "classifier_names", "classwise_regional_mean", "train_locally", "finetune", "blend", "count_weighted_blend",
    "paper_alpha", "replay",
    "with_replay",
]

_REPLAY_SALT = 12


# --------------------------------------------------------------------------------------------------
# what the context provides per device


def fresh_models() -> ModelField:
    """Fresh models for the devices of the current domain (as rep's lazy init: `rep(fresh_models, step)`).

    Deliberately not an `@aggregate` block: rep runs its init only in rounds where some device lacks state (under
    its own path key), so nothing else's paths depend on whether it ran."""
    ctx = learning_context()
    return local(ctx.initial_models)(mid())


@aggregate
def current_samples() -> Field:
    """D(t): each device's samples this round, as a sample field: its part of the data of the region it is in now
    (the `region` sensor), drawn afresh each round when the configuration sets `samples_per_round`."""
    ctx = learning_context()
    return local(ctx.sample_rows)(mid(), sense("region"), sense("time"))


@aggregate
def round_number() -> Field:
    """The index of the current round (simulated time over the schedule's period), per device."""
    ctx = learning_context()
    return local(lambda t: torch.floor(torch.as_tensor(t).double() / ctx.period + 1e-9).long())(sense("time"))


@aggregate
def is_mobile() -> Field:
    """Whether the device moves (the `mobile` sensor; the simulator sets it from the deployments' mobility)."""
    return sense("mobile")


@aggregate
def sample_counts(samples: Field) -> Field:
    """Number of samples in every device's sample field."""
    return local(lambda s: (s >= 0).sum(dim=-1) if s.dim() > 1 else (s >= 0).long())(samples)


@aggregate
def class_counts(samples: Field, labels: torch.Tensor | None = None, n_classes: int | None = None) -> Field:
    """`[classes]` per device: how many of its samples carry each label (default: the context's dataset)."""
    if labels is None or n_classes is None:
        ctx = learning_context()
        labels = ctx.dataset.labels if labels is None else labels
        n_classes = ctx.n_classes if n_classes is None else n_classes

    def count(s: torch.Tensor) -> torch.Tensor:
        rows = s.reshape(s.shape[0], -1)
        valid = rows >= 0
        out = torch.zeros(rows.shape[0], n_classes, dtype=torch.float32, device=rows.device)
        lab = labels.to(rows.device)[rows.clamp(min=0)]
        return out.scatter_add_(1, lab, valid.to(out.dtype))

    return local(count)(samples)


# --------------------------------------------------------------------------------------------------
# models over regions


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
        return m.with_params(params)

    return local(merge)(mean, rows, seen)


# --------------------------------------------------------------------------------------------------
# training


@aggregate
def train_locally(models: ModelField, samples: Field, trainer: Trainer | None = None, key: int = 0, *,
                  loss: Loss | None = None, extras: dict[str, Any] | None = None,
                  trainable: Any = None) -> ModelField:
    """Every device trains its own model on its own samples, all devices of the batch as one computation.

    `models` is a ModelField of fields (e.g. rep's state), `samples` a sample field; devices without samples keep
    their model. `trainer` defaults to the context's (from the `learning:` block); `loss` (see `Trainer.loss`),
    `trainable` (the parameters that train; the rest stay frozen) and `extras` (per-device fields the loss reads by
    name, e.g. `regional_model.params`, the anchor of `proximal_loss` under the parameters' names, for FedProx) override it. The shuffling is seeded from the
    trainer's seed, the VM clock and `key`, so two training calls in one round draw differently and a rerun draws
    the same."""
    trainer = trainer if trainer is not None else learning_context().trainer
    if loss is not None or trainable is not None:
        trainer = trainer.replace(**{k: v for k, v in (("loss", loss), ("trainable", trainable)) if v is not None})
    tick = clock()
    return local(lambda m, s, x: trainer(m, s, salt=(tick, key), extras=x))(models, samples, extras)


@aggregate
def finetune(models: ModelField, samples: Field, trainer: Trainer | None = None, epochs: int = 1,
             batch_size: int = 16, where: Any = None) -> ModelField:
    """Post-merge fine-tune: a short extra pass (default one epoch at batch 16, as the C2FL public code does) over
    `samples` (e.g. memory plus current data), on the devices where `where` holds (all if None)."""
    tuned = (trainer if trainer is not None else learning_context().trainer).replace(epochs=epochs,
                                                                                   batch_size=batch_size)
    # devices outside `where` train on no samples, which leaves their models as they are: the same draws and
    # results as a branch, without gathering the models of the devices inside and merging them back
    chosen = samples if where is None else mux(where, samples, -1)
    return train_locally(models, chosen, tuned, key=1)


@aggregate
def blend(local_models: ModelField, regional: ModelField, alpha: Any) -> ModelField:
    """`(1 - alpha) * local + alpha * regional` per device (alpha a number or a field; exact at 0 and 1)."""
    return local(blend_models)(local_models, regional, alpha)


@aggregate
def count_weighted_blend(local_models: ModelField, regional: ModelField, own_counts: Field, region_counts: Field,
                         head: list[str], alpha: Any) -> ModelField:
    """A blend that trusts each side where it knows more: row c of every output-layer parameter in `head` moves to
    the regional model by `R_c / (R_c + M_c)` (R_c: the region's samples of class c, M_c: the device's own), the
    rest of the model by `alpha` (the usual blend weight).

    A mover's own rows for the classes of the areas it left hold its past (its replay memory keeps them trained);
    the region has never seen those classes, so a plain blend pulls them towards forgetting. Rows of the classes the
    region sees plenty of and the mover has barely met move almost wholly to the region's."""
    blended = blend(local_models, regional, alpha)

    def rows(own_model: ModelField, mixed: ModelField, theirs_model: ModelField, own: torch.Tensor,
             theirs: torch.Tensor) -> ModelField:
        total = own + theirs
        share = torch.where(total > 0, theirs / total.clamp(min=1e-12), torch.zeros_like(total))
        params = {}
        for name in head:
            t = own_model.params[name]
            w = share.reshape(share.shape + (1,) * (t.dim() - 2)).to(t.dtype)
            params[name] = torch.lerp(t, theirs_model.params[name].to(t.dtype), w)
        return mixed.with_params(params)

    return local(rows)(local_models, blended, regional, own_counts, region_counts)


def paper_alpha(dwell: Any, gamma: float = 0.3, horizon: float = 30.0) -> Any:
    """C2FL's blending weight `min(gamma, dwell / horizon)`: a newcomer trusts its region little, then more."""
    return minimum(gamma, dwell / float(horizon))


# --------------------------------------------------------------------------------------------------
# replay


@aggregate
def replay(samples: Field, leader: Any, store: ReplayStore | str = "unbounded", enabled: Any = True) -> Field:
    """The device's replay memory M as a sample field (Phase 1 of C2FL): when its `leader` differs from last round's
    (it moved to another region) everything it saw in the region it left enters M under the store's policy
    (`store` is a ReplayStore or a policy such as "unbounded", "fraction:0.05", "reservoir:500",
    "class_balanced:500", whose store the context keeps for the run); this round's `samples` join what it has seen
    here. A device on its first round starts with an empty memory; devices where `enabled` is false (e.g. static
    ones) keep none."""
    if not isinstance(store, ReplayStore):
        store = learning_context().replay_store(store)

    def step(state: tuple) -> tuple:
        before, age, _ = state
        return leader, age + 1, before != leader

    _, age, changed = rep((leader, -1, False), step)
    return local(store.update)(mid(), samples, changed, age == 0, enabled)


@aggregate
def with_replay(samples: Field, memory: Field, per_round: int | None = None, seed: int | None = None) -> Field:
    """Training set of the round: the current `samples` united with the `memory` (M ∪ D(t)), or with a fresh uniform
    draw of at most `per_round` memory samples each round (a fixed replay budget; None: the whole memory); the draw
    is seeded from `seed` (default: the context's seed) and the VM clock."""
    tick = clock()
    seed = learning_context().seed if seed is None else seed

    def mix(ids: Any, cur: Any, mem: Any) -> torch.Tensor:
        current, kept = unpad(cur), unpad(mem)
        if per_round is not None:
            kept = draw_per_device(kept, int(per_round), as_index_array(ids), seed=seed, salt=_REPLAY_SALT,
                                   counter=tick)
        return pad_sets(current.union(kept), cur.device)

    return local(mix)(mid(), samples, memory)
