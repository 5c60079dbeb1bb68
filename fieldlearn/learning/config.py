"""The configuration of a learning run (a scenario's `learning:` block) as a validated pydantic model.

    learning:
      dataset: digits            # digits | fashion-mnist | mnist | a directory of IDX files (MNIST format)
      downsample: 1              # average-pool images by this factor (2: 28x28 -> 14x14)
      partition: hard            # hard | iid | dirichlet(0.5) | {kind: dirichlet, alpha: 0.5}: classes over regions
      train_fraction: 0.7        # per region: training part (split among its devices) / validation part
      parts_per_region: null     # split each region's training part into this many parts (null: one per device
                                 # that starts there); static devices take parts by rank
      mover_part: own            # own: a mover keeps its slot wherever it goes | spare: every mover uses the region's
                                 # last part (shared; the public C2FL code's 13 parts, 12 static devices + movers)
      part_fraction: null        # train on a fixed subset of this share of the device's part (drawn once)
      model: {hidden: [32]}      # an MLP inputs -> hidden... -> classes, ReLU
      optimiser: {kind: adam, lr: 0.001, weight_decay: 0.0001}
      epochs: 2                  # local epochs per round over the round's samples
      batch_size: 32
      samples_per_round: null    # samples a device trains on per round (a fresh draw from its part each round)
      eval_every: 5              # evaluate every this many rounds
      eval_samples: 300          # per region, a fixed subsample of its validation split (null: all of it)
      eval_precision: float32    # float32 | bfloat16: the evaluation's forward passes (bfloat16: about 2x faster
                                 # on CPUs with bfloat16 units; an accuracy moves by a sample where logits nearly tie)
      init: shared               # shared: every device starts from the same model | independent
      seed: null                 # data, model and training seed (null: the scenario's seed)
      threads: 1                 # torch threads of a cpu run (1 is much faster for small models on a busy
                                 # machine: idle OpenMP threads spin; with more, that many chunks of devices train
                                 # at once, with the same results); null keeps torch's default
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn

__all__ = ["LearningConfig", "ModelConfig", "OptimiserConfig", "PartitionConfig", "MLP"]

PositiveInt = Annotated[int, Field(ge=1, le=10_000_000)]  # bounded so that a typo cannot ask for terabytes
LayerSize = Annotated[int, Field(ge=1, le=100_000)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ModelConfig(_Block):
    """The device model: an MLP with the given hidden layer sizes (`hidden: 32` is `hidden: [32]`)."""

    kind: Literal["mlp"] = "mlp"
    hidden: Annotated[tuple[LayerSize, ...], Field(max_length=32)] = (128,)

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_layer(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return (v,)
        return tuple(v) if isinstance(v, list) else v

    def build(self, inputs: int, classes: int) -> nn.Module:
        """A fresh module of this architecture."""
        return MLP(inputs, self.hidden, classes)


class OptimiserConfig(_Block):
    """The local optimiser (a fresh one per round, as the reference methods do)."""

    kind: Literal["adam", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.0


class PartitionConfig(_Block):
    """How classes are spread over the regions: `hard` (disjoint groups), `iid`, or `dirichlet` with `alpha`."""

    kind: Literal["hard", "iid", "dirichlet"] = "hard"
    alpha: Annotated[float, Field(gt=0)] = 0.5


_DIRICHLET = re.compile(r"^dirichlet\((.*)\)$")


class LearningConfig(_Block):
    """The validated `learning:` block (see the module docstring for every key)."""

    dataset: Annotated[str, Field(min_length=1, max_length=4096)] = "digits"
    downsample: Annotated[int, Field(ge=1, le=64)] = 1
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    train_fraction: Annotated[float, Field(gt=0, le=1)] = 0.7
    parts_per_region: PositiveInt | None = None
    mover_part: Literal["own", "spare"] = "own"
    part_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimiser: OptimiserConfig = Field(default_factory=OptimiserConfig)
    epochs: Annotated[int, Field(ge=1, le=10_000)] = 2
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 32
    samples_per_round: PositiveInt | None = None
    eval_every: PositiveInt = 5
    eval_samples: PositiveInt | None = None
    eval_precision: Literal["float32", "bfloat16"] = "float32"
    init: Literal["shared", "independent"] = "shared"
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    threads: Annotated[int, Field(ge=1, le=1024)] | None = 1

    @field_validator("partition", mode="before")
    @classmethod
    def _partition_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        text = v.replace(" ", "")
        m = _DIRICHLET.match(text)
        if m:
            try:
                return {"kind": "dirichlet", "alpha": float(m.group(1))}
            except ValueError:
                raise ValueError(f"cannot read the concentration in {v!r} (e.g. dirichlet(0.5))") from None
        if text not in ("hard", "iid", "dirichlet"):
            raise ValueError(f"must be hard, iid or dirichlet(alpha), got {v!r}")
        return {"kind": text}

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"must be a mapping of settings, got {type(data).__name__}")
        return data


class MLP(nn.Sequential):
    """inputs -> hidden... -> classes with ReLU between layers."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], classes: int):
        sizes = [inputs, *hidden, classes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        super().__init__(*layers[:-1])
