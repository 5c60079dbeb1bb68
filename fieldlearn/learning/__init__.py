"""The torch side of fieldlearn: device models as stacked tensors, batched training, data, replay, metrics, and the
aggregate learning blocks (`train_locally`, `blend`, `replay`, `finetune`, ...) that learning programs compose."""
from .blocks import (
    ReplayStore,
    Trainer,
    blend,
    class_counts,
    classifier_names,
    classwise_regional_mean,
    finetune,
    pad_sets,
    paper_alpha,
    replay,
    sample_counts,
    train_locally,
    unpad,
    with_replay,
)
from .context import (
    LearningConfig,
    LearningContext,
    attach,
    context,
    engine_metrics,
    fresh_models,
    is_mobile,
    keep_latest,
    load_dataset,
    round_number,
    sensed_samples,
    setup_engine,
)
from .data import (
    Dataset,
    DeviceData,
    IndexSets,
    RegionData,
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
from .metrics import accuracy_matrix, cacc, forgetting, mean_forgetting, own_region_accuracy
from .models import ModelField, neighbour_average, where
from .models import blend as blend_models
from .replay import ReplayMemory, ReplayPolicy, class_balanced, fraction, parse_policy, reservoir, unbounded
from .train import OptimiserState, TrainResult, train

__all__ = [
    "Dataset", "DeviceData", "IndexSets", "RegionData", "load_digits", "load_idx", "make_region_data",
    "partition", "partition_dirichlet", "partition_hard", "partition_iid", "split_among_devices",
    "split_train_validation",
    "accuracy_matrix", "cacc", "forgetting", "mean_forgetting", "own_region_accuracy",
    "ModelField", "blend_models", "neighbour_average", "where",
    "Trainer", "ReplayStore", "train_locally", "finetune", "blend", "replay", "with_replay", "paper_alpha",
    "sample_counts", "class_counts", "classifier_names", "classwise_regional_mean", "pad_sets", "unpad",
    "LearningConfig", "LearningContext", "attach", "context", "engine_metrics", "fresh_models", "is_mobile",
    "keep_latest", "load_dataset", "round_number", "sensed_samples", "setup_engine",
    "ReplayMemory", "ReplayPolicy", "class_balanced", "fraction", "parse_policy", "reservoir", "unbounded",
    "OptimiserState", "TrainResult", "train",
]
