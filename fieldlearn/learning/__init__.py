"""The torch side of fieldlearn: device models as stacked tensors, batched training, data, replay, metrics."""
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
from .models import ModelField, blend, neighbour_average, where
from .replay import ReplayMemory, ReplayPolicy, class_balanced, fraction, parse_policy, reservoir, unbounded
from .train import OptimiserState, TrainResult, train

__all__ = [
    "Dataset", "DeviceData", "IndexSets", "RegionData", "load_digits", "load_idx", "make_region_data",
    "partition", "partition_dirichlet", "partition_hard", "partition_iid", "split_among_devices",
    "split_train_validation",
    "accuracy_matrix", "cacc", "forgetting", "mean_forgetting", "own_region_accuracy",
    "ModelField", "blend", "neighbour_average", "where",
    "ReplayMemory", "ReplayPolicy", "class_balanced", "fraction", "parse_policy", "reservoir", "unbounded",
    "OptimiserState", "TrainResult", "train",
]
