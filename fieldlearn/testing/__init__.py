"""Property-testing kit for aggregate programs: Hypothesis strategies, oracles and `assert_self_stabilises`.

    from fieldlearn.testing import assert_self_stabilises, geometric_networks, initial_states, gradient_oracle
"""
from .oracles import (
    Expect,
    Mismatch,
    Oracle,
    Satisfies,
    broadcast_oracle,
    check_leaders,
    collect_oracle,
    compare,
    components,
    dag_collect,
    gossip_oracle,
    gradient_bound,
    gradient_oracle,
    hop_diameter,
    leaders_oracle,
    shortest_distances,
    shortest_path_hops,
    tree_broadcast,
    tree_collect,
    tree_height,
    tree_parents,
)
from .stabilisation import SelfStabilisationError, Stabilisation, assert_self_stabilises, rounds_to_stabilise
from .strategies import (
    Perturbation,
    Schedule,
    Scramble,
    connected_graphs,
    device_sets,
    geometric_networks,
    initial_states,
    networks,
    perturbations,
    schedules,
    scrambled_network,
    sensor_values,
)

__all__ = [
    "Expect", "Mismatch", "Oracle", "Perturbation", "Satisfies", "Schedule", "Scramble", "SelfStabilisationError",
    "Stabilisation", "assert_self_stabilises", "broadcast_oracle", "check_leaders", "collect_oracle", "compare",
    "components", "connected_graphs", "dag_collect", "device_sets", "geometric_networks", "gossip_oracle",
    "gradient_bound", "gradient_oracle", "hop_diameter", "initial_states", "leaders_oracle", "networks", "perturbations", "rounds_to_stabilise",
    "schedules", "scrambled_network", "sensor_values", "shortest_distances", "shortest_path_hops", "tree_broadcast",
    "tree_collect", "tree_height", "tree_parents",
]
