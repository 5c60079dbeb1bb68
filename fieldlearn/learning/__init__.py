"""The torch side of fieldlearn: device models as stacked tensors, batched training, data over regions, replay,
evaluation, and the aggregate learning blocks that learning programs compose.

A learning program is an aggregate program declared with `@program(needs="learning")`: its runner (the simulator,
given a scenario with a `learning:` block, or `run_learning` from a script) lends it the learning context, and the
blocks here (`fresh_models`, `current_samples`, `train_locally`, `blend`, `replay`, ...) read it. The program returns
its models (key `models`; other model fields, e.g. `regional`, are evaluated under their key) with its other
outputs. See the README section "Write a learning program".
"""
from .blocks import (
    blend,
    class_counts,
    classifier_names,
    classwise_regional_mean,
    count_weighted_blend,
    current_samples,
    finetune,
    fresh_models,
    is_mobile,
    paper_alpha,
    replay,
    round_number,
    sample_counts,
    train_locally,
    with_replay,
)
from .config import MLP, LearningConfig, ModelConfig, OptimiserConfig, PartitionConfig
from .context import RESOURCE, ConfigError, LearningContext, learning_context
from .data import (
    DATASET_DIRS,
    Dataset,
    DatasetError,
    DeviceData,
    IndexSets,
    RegionData,
    load_dataset,
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
from .dissimilarity import neighbour_loss, parameter_distance
from .evaluation import Evaluation, Moment
from .readings import METRICS
from .metrics import accuracy_matrix, cacc, forgetting, mean_forgetting, own_region_accuracy
from .models import ModelField, ModelNeighbours, blend_models, neighbour_average, where
from .replay import (
    ReplayMemory,
    ReplayPolicy,
    ReplayStore,
    class_balanced,
    fraction,
    parse_policy,
    reservoir,
    unbounded,
)
from .samples import pad_sets, unpad
from .standalone import LearningRun, run_learning
from .train import Loss, OptimiserState, ProximalLoss, TrainResult, cross_entropy, proximal_loss, train
from .trainer import Trainer

__all__ = [
    # blocks
    "fresh_models", "current_samples", "round_number", "is_mobile", "sample_counts", "class_counts",
    "classifier_names", "classwise_regional_mean", "train_locally", "finetune", "blend", "count_weighted_blend", "paper_alpha", "replay",
    "with_replay", "parameter_distance", "neighbour_loss",
    # running and configuring
    "run_learning", "LearningRun", "LearningConfig", "ModelConfig", "OptimiserConfig", "PartitionConfig", "MLP",
    "LearningContext", "learning_context", "ConfigError", "RESOURCE", "METRICS", "Evaluation", "Moment",
    # models and training
    "ModelField", "ModelNeighbours", "blend_models", "neighbour_average", "where", "train", "Trainer", "Loss",
    "cross_entropy", "proximal_loss", "ProximalLoss", "OptimiserState", "TrainResult",
    # data, samples and replay
    "Dataset", "DatasetError", "DeviceData", "IndexSets", "RegionData", "DATASET_DIRS", "load_dataset",
    "load_digits", "load_idx", "make_region_data", "partition", "partition_dirichlet", "partition_hard",
    "partition_iid", "split_among_devices", "split_train_validation", "pad_sets", "unpad",
    "ReplayMemory", "ReplayPolicy", "ReplayStore", "class_balanced", "fraction", "parse_policy", "reservoir",
    "unbounded",
    # metrics
    "accuracy_matrix", "cacc", "forgetting", "mean_forgetting", "own_region_accuracy",
]
