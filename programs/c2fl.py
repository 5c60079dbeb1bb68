"""C2FL: clustered continual federated learning (the paper's Algorithm 1) and its ablations, as one aggregate program.

Every round every device:
  Phase 1  joins a self-organising region (leader election, potential) and tracks its dwell time there; when its
           leader changes (it moved), what it saw in the region it left enters its replay memory M;
  Phase 2  trains its model on M ∪ D(t) (its memory plus this round's samples);
  Phase 3  the region collects the trained models to its leader, which averages them;
  Phase 4  the leader's average (the regional model) flows back to every member;
  Phase 5  blends: theta <- (1 - alpha) trained + alpha regional, alpha = min(gamma, dwell / horizon).

`method` switches blocks off in this same program: `c2fl` (replay + merge), `cl` (replay, no merge), `fl` (merge,
no replay), `local` (neither). `variant: code` follows the public code's schedule instead of the paper's rule.
Static devices (the `mobile` sensor false) keep no memory. Optionally (default on) a post-merge fine-tune pass.
"""
from fieldlearn import constant, maximum, minimum, mux, rep
from fieldlearn.learning.blocks import (
    blend,
    class_counts,
    classifier_names,
    classwise_regional_mean,
    finetune,
    paper_alpha,
    replay,
    sample_counts,
    train_locally,
    with_replay,
)
from fieldlearn.learning.context import (
    context,
    engine_metrics,
    fresh_models,
    is_mobile,
    keep_latest,
    round_number,
    sensed_samples,
    setup_engine,
)
from fieldlearn.learning.replay import parse_policy
from fieldlearn.lib import dwell_time, mobile_regions
from fieldlearn.sim import ScenarioError

METHODS = {"c2fl": (True, True), "cl": (True, False), "fl": (False, True), "local": (False, False)}
VARIANTS = ("paper", "code")
metrics = engine_metrics()


def setup(engine) -> None:
    """Build the learning context from the scenario's `learning:` block; check the program's parameters."""
    setup_engine(engine, ScenarioError)
    p = engine.scenario.program.params
    if p.get("method", "c2fl") not in METHODS:
        raise ScenarioError(f"must be one of {', '.join(METHODS)}, got {p['method']!r}", "program.params.method")
    if p.get("variant", "paper") not in VARIANTS:
        raise ScenarioError(f"must be one of {', '.join(VARIANTS)}, got {p['variant']!r}", "program.params.variant")
    if p.get("finetune", True) not in (True, False, "always"):
        raise ScenarioError(f"must be true, false or always, got {p['finetune']!r}", "program.params.finetune")
    if p.get("weighting", "samples") not in ("samples", "uniform"):
        raise ScenarioError(f"must be samples or uniform, got {p['weighting']!r}", "program.params.weighting")
    budget = p.get("replay_per_round", 300)
    if budget not in ("all", "auto", None) and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise ScenarioError(f"must be a number of samples, all or auto, got {budget!r}",
                            "program.params.replay_per_round")
    try:
        parse_policy(replay_policy(p.get("memory", "default"), p.get("capacity"), p.get("variant", "paper")))
    except ValueError as exc:
        raise ScenarioError(str(exc), "program.params.memory") from None


def replay_policy(memory: str, capacity, variant: str) -> str:
    """The replay policy: `unbounded` (the paper), `fraction` (capacity = the share kept of each region, default
    0.05 as in the public code), `reservoir` or `class_balanced` (capacity = samples); `default` picks the variant's."""
    if memory == "default":
        memory = "fraction" if variant == "code" else "unbounded"
    if memory == "unbounded" or ":" in str(memory):
        return memory
    if memory == "fraction":
        return f"fraction:{0.05 if capacity is None else capacity}"
    if capacity is None:
        raise ValueError(f"replay memory {memory!r} needs a capacity (program.params.capacity)")
    return f"{memory}:{int(capacity)}"


def program(method: str = "c2fl", variant: str = "paper", radius: float = 20.0, gamma: float = 0.3,
            horizon: int = 30, memory: str = "default", capacity=None, finetune: bool | str = True,
            replay_per_round=300, weighting: str = "samples", classwise_head: bool = True, stable_leaders: bool = True,
            min_link=None, seed: int = 0) -> dict:
    """One round of C2FL; outputs `leader`, `dwell`, `alpha` and `samples` (size of the round's training set).

    Parameters (program.params): `method` c2fl|cl|fl|local; `variant` paper|code; `radius` of the leader election;
    `gamma`, `horizon` of the blend weight; `memory` unbounded|fraction|reservoir|class_balanced (default: unbounded,
    the code variant's fraction 0.05) with `capacity` (samples, or the share for fraction); `finetune` the
    post-merge pass (one epoch at batch 16 over the round's training set; `always`: on every device every round,
    merged or not, e.g. CL given the same local compute as C2FL, a control); `replay_per_round` memory samples drawn
    into each round's training set (`all`: the whole memory, the paper's M ∪ D(t) as written; a number caps the
    cost; `auto`: learning.samples_per_round); `weighting` of the regional average, samples (the paper's text) or
    uniform (the public code); `classwise_head` averages each output row of the regional model only over the members
    that trained on its class (weighted by their samples of it), so that members who never saw a class do not pull
    a mover's row for it towards forgetting; `stable_leaders`, `min_link`, `seed` of the election (see mobile_regions).
    `gamma` and `horizon` default to the paper's; the other defaults (sample-weighted average, class-wise head, fine-tune
    on, 300 replayed samples per round) are the variant the validation evidence supports (benchmarks/RESULTS.md);
    `weighting: uniform, classwise_head: false, finetune: false` is the paper's rule as the public code averages.
    """
    ctx = context()
    use_replay, use_merge = METHODS[method]
    tune, tune_always = bool(finetune), finetune == "always"
    budget = ctx.config.samples_per_round if replay_per_round == "auto" else (
        None if replay_per_round in ("all", None) else int(replay_per_round))
    mobile = is_mobile()
    out = {}

    def step(theta):
        # Phase 1: region (static devices lead: a moving leader would keep its own id and never see a move),
        # dwell time, and the replay memory, which grows when the leader changes
        region = mobile_regions(radius, mobile, stable_leaders, min_link, seed)
        dwell = dwell_time(region.leader)
        seen = now = sensed_samples()
        if use_replay:
            store = ctx.replay_store(replay_policy(memory, capacity, variant))
            seen = with_replay(now, replay(now, region.leader, store, enabled=mobile), per_round=budget,
                               seed=ctx.seed)
        # Phase 2: local training on M ∪ D(t)
        trained = train_locally(theta, seen, ctx.trainer)
        alpha = constant(0.0)
        if use_merge:
            # Phases 3-4: the regional model, averaged at the leader and spread back
            weight = sample_counts(seen) * 1.0 if weighting == "samples" else None
            if classwise_head:
                counts = class_counts(seen, ctx.dataset.labels, ctx.n_classes)
                head = classifier_names(trained, ctx.n_classes)
                regional = classwise_regional_mean(region, trained, counts, head, weight=weight)
            else:
                regional = region.broadcast(region.collect_mean(trained, weight=weight))
            # Phase 5: dwell-weighted blend (paper), or the public code's schedule
            alpha = paper_alpha(dwell, gamma, horizon) if variant == "paper" else code_alpha(mobile, horizon)
            trained = blend(trained, regional, alpha)
            if tune and not tune_always:
                trained = finetune_pass(trained, seen, ctx.trainer, alpha)
        if tune_always:
            trained = finetune_pass(trained, seen, ctx.trainer)
        out.update(leader=region.leader, dwell=dwell, alpha=alpha, samples=sample_counts(seen))
        return trained

    keep_latest(rep(fresh_models, step))
    return out


def finetune_pass(models, samples, trainer, alpha=None):
    """The post-merge fine-tune (one epoch at batch 16) on the devices that merged this round (all if no `alpha`)."""
    return finetune(models, samples, trainer, where=None if alpha is None else alpha > 0)


def code_alpha(mobile, horizon: int = 30, every: int = 3):
    """The public code's merge weight: every `every`-th round w = clip((tick % horizon) / horizon, 0.1, 0.3) against a
    local weight of 0.6, i.e. alpha = w / (0.6 + w) in 0.14-0.33 (dwell from the known schedule); static devices
    0.4; no merge (0) in the other rounds."""
    tick = round_number()
    w = maximum(0.1, minimum(0.3, (tick % horizon) * (1.0 / horizon)))
    return mux((tick % every) == 0, mux(mobile, w / (w + 0.6), 0.4), 0.0)
