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
from typing import Annotated, Literal, Union

from annotated_types import Ge, Gt, Interval

from fieldlearn import ParameterError, constant, maximum, minimum, mux, program, rep
from fieldlearn.learning import (
    blend,
    class_counts,
    classifier_names,
    classwise_regional_mean,
    count_weighted_blend,
    current_samples,
    fresh_models,
    is_mobile,
    learning_context,
    paper_alpha,
    parse_policy,
    replay,
    round_number,
    sample_counts,
    train_locally,
    with_replay,
)
from fieldlearn.learning import finetune as finetune_pass
from fieldlearn.lib import dwell_time, mobile_regions

METHODS = {"c2fl": (True, True), "cl": (True, False), "fl": (False, True), "local": (False, False)}
Memory = Literal["default", "unbounded", "fraction", "reservoir", "class_balanced"]


def replay_policy(memory: str, capacity: float | None, variant: str) -> str:
    """The replay policy: `unbounded` (the paper), `fraction` (capacity = the share kept of each region, default
    0.05 as in the public code), `reservoir` or `class_balanced` (capacity = samples); `default` picks the variant's."""
    if memory == "default":
        memory = "fraction" if variant == "code" else "unbounded"
    if memory == "unbounded":
        return memory
    if memory == "fraction":
        return f"fraction:{0.05 if capacity is None else capacity}"
    if capacity is None:
        raise ValueError(f"replay memory {memory!r} needs a capacity (program.params.capacity)")
    return f"{memory}:{int(capacity)}"


@program(needs="learning")
def c2fl(method: Literal["c2fl", "cl", "fl", "local"] = "c2fl", variant: Literal["paper", "code"] = "paper",
         radius: Annotated[float, Gt(0)] = 20.0, gamma: Annotated[float, Ge(0)] = 0.3,
         horizon: Annotated[int, Interval(ge=1, le=1_000_000)] = 30, memory: Memory = "default",
         capacity: Annotated[float, Interval(ge=0, le=1e9)] | None = None, finetune: Union[bool, Literal["always"]] = True,
         replay_per_round: Union[Annotated[int, Interval(ge=0, le=10_000_000)], Literal["all", "auto"], None] = 300,
         weighting: Literal["samples", "uniform"] = "samples", classwise_head: bool = True,
         stable_leaders: bool = True, min_link: Annotated[float, Gt(0)] | None = None, seed: int = 0,
         merge: Literal["blend", "arrival", "counts"] = "blend", arrival_window: Annotated[int, Interval(ge=1, le=1_000_000)] = 5) -> dict:
    """One round of C2FL; outputs `models`, `leader`, `dwell`, `alpha` and `samples` (size of the round's training
    set).

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
    `merge` is how the regional model is used: `blend` (the paper's weight blend), `arrival` (movers blend only in
    their first `arrival_window` rounds in a region, when the region knows what they do not and before blending
    would drag their remembered past towards the region's classes; static devices blend as usual), or `counts`
    (`count_weighted_blend`: each output row moves to the region's by the region's share of that class's samples,
    the body by the usual weight, so rows of classes only the mover has seen stay its own).
    """
    use_replay, use_merge = METHODS[method]
    tune, tune_always = bool(finetune), finetune == "always"
    budget = learning_context().config.samples_per_round if replay_per_round == "auto" else (
        None if replay_per_round in ("all", None) else int(replay_per_round))
    mobile = is_mobile()
    # Phase 1: region (static devices lead: a moving leader would keep its own id and never see a move), dwell
    # time, and the replay memory, which grows when the leader changes
    region = mobile_regions(radius, mobile, stable_leaders, min_link, seed)
    dwell = dwell_time(region.leader)
    seen = now = current_samples()
    if use_replay:
        memory_rows = replay(now, region.leader, replay_policy(memory, capacity, variant), enabled=mobile)
        seen = with_replay(now, memory_rows, per_round=budget)
    alpha = constant(0.0)
    if use_merge:
        alpha = paper_alpha(dwell, gamma, horizon) if variant == "paper" else code_alpha(mobile, horizon)
        if merge == "arrival":
            alpha = mux(mobile, mux(dwell <= arrival_window, gamma, 0.0), alpha)
        weight = sample_counts(seen) * 1.0 if weighting == "samples" else None
        counts = class_counts(seen) if classwise_head or merge == "counts" else None

    def step(theta):
        # Phase 2: local training on M ∪ D(t)
        trained = train_locally(theta, seen)
        if use_merge:
            # Phases 3-4: the regional model, averaged at the leader and spread back
            head = classifier_names(trained, learning_context().n_classes)
            if classwise_head:
                regional = classwise_regional_mean(region, trained, counts, head, weight=weight)
            else:
                regional = region.broadcast(region.collect_mean(trained, weight=weight))
            # Phase 5: dwell-weighted blend (paper), or the public code's schedule, or per-class shares
            if merge == "counts":
                trained = count_weighted_blend(trained, regional, counts,
                                               region.broadcast(region.collect_sum(counts)), head, alpha)
            else:
                trained = blend(trained, regional, alpha)
            if tune and not tune_always:
                trained = finetune_pass(trained, seen, where=alpha > 0)
        if tune_always:
            trained = finetune_pass(trained, seen)
        return trained

    models = rep(fresh_models, step)
    return {"models": models, "leader": region.leader_id, "dwell": dwell, "alpha": alpha, "samples": sample_counts(seen)}


@c2fl.check
def _replay_settings_make_a_policy(params: dict) -> None:
    """The replay settings must make a policy (e.g. a reservoir needs a capacity)."""
    try:
        parse_policy(replay_policy(params["memory"], params["capacity"], params["variant"]))
    except ValueError as exc:
        raise ParameterError("memory", str(exc)) from None


def code_alpha(mobile, horizon: int = 30, every: int = 3):
    """The public code's merge weight: every `every`-th round w = clip((tick % horizon) / horizon, 0.1, 0.3) against a
    local weight of 0.6, i.e. alpha = w / (0.6 + w) in 0.14-0.33 (dwell from the known schedule); static devices
    0.4; no merge (0) in the other rounds."""
    tick = round_number()
    w = maximum(0.1, minimum(0.3, (tick % horizon) * (1.0 / horizon)))
    return mux((tick % every) == 0, mux(mobile, w / (w + 0.6), 0.4), 0.0)
