"""Local learning: every device trains its own model on the data of the region it is in; no communication at all."""
from fieldlearn import program, rep
from fieldlearn.learning import current_samples, fresh_models, sample_counts, train_locally


@program(needs="learning")
def local_learning() -> dict:
    """One round of local training (all devices of the batch at once); outputs `models` and `samples` per device."""
    now = current_samples()
    models = rep(fresh_models, lambda theta: train_locally(theta, now))
    return {"models": models, "samples": sample_counts(now)}
