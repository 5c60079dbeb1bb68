"""Gossip learning: no leaders and no regions. Every device trains on its own data and, every `every` rounds,
replaces its model by the mean of its own and its neighbours' models: uniform (decentralised FedAvg), or weighted
by each model's age (the samples it has been trained on), as gossip learning merges younger models into older
ones."""
from typing import Annotated, Literal

from annotated_types import Ge

from fieldlearn import constant, mux, nbr, program, rep
from fieldlearn.learning import current_samples, fresh_models, round_number, sample_counts, train_locally


@program(needs="learning")
def gossip_learning(every: Annotated[int, Ge(1)] = 1, weighting: Literal["uniform", "age"] = "uniform") -> dict:
    """One round: local training, then (every `every`-th round) the neighbourhood mean; outputs `models`, `age`
    (samples trained on) and `averaged`."""
    averaging = (round_number() % every) == every - 1
    now = current_samples()

    def step(state):
        theta, age = state
        trained = train_locally(theta, now)
        age = age + sample_counts(now)
        if weighting == "uniform":
            merged = nbr(trained).mean(include_self=True)
        else:
            merged = nbr(trained).weighted_mean(nbr(age * 1.0), include_self=True)
        return mux(averaging, merged, trained), age

    models, age = rep(lambda: (fresh_models(), constant(0)), step)
    return {"models": models, "age": age, "averaged": averaging}
