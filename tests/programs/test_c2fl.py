"""programs/c2fl.py on the digits scenario: the ablations are the same program with one block switched off, C2FL
keeps past areas where Local forgets them, the public code's schedule, and errors that name the YAML path.

Long runs are marked slow; FIELDLEARN_SHORT=1 (set by CI) shortens them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fieldlearn.sim import ScenarioError, load_scenario, run_scenario
from fieldlearn.sim.__main__ import main
from fieldlearn.sim.engine import Engine

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "c2fl.yaml"
SHORT = os.environ.get("FIELDLEARN_SHORT") == "1"


def c2fl(rounds: int, *sets: str):
    """Run the digits C2FL scenario for `rounds` rounds with overrides; return its learning context."""
    result = run_scenario(load_scenario(SCENARIO, [f"duration.rounds={rounds}", *sets]))
    return result.engine.vm.resources["learning"], result


def same_models(a, b) -> bool:
    return all(torch.equal(a.latest.params[k], b.latest.params[k]) for k in a.latest.params)


def test_ablations_differ_from_c2fl_only_in_the_switched_block():
    rounds = 34  # past the first move (round 30), so replay and dwell restarts are exercised
    full, _ = c2fl(rounds)
    # CL = C2FL without the merge: the same as C2FL whose blend weight is 0 (gamma 0), bit for bit
    cl, _ = c2fl(rounds, "program.params.method=cl")
    no_merge, _ = c2fl(rounds, "program.params.gamma=0.0")
    assert same_models(cl, no_merge) and not same_models(cl, full)
    # the compute control: CL plus C2FL's extra pass on every round is C2FL at gamma 0 with that pass, bit for bit
    cl_tuned, _ = c2fl(rounds, "program.params.method=cl", "program.params.finetune=always")
    no_merge_tuned, _ = c2fl(rounds, "program.params.gamma=0.0", "program.params.finetune=always")
    assert same_models(cl_tuned, no_merge_tuned) and not same_models(cl_tuned, cl)
    # FL = C2FL without replay: the same as C2FL with an always-empty memory
    fl, _ = c2fl(rounds, "program.params.method=fl")
    no_memory, _ = c2fl(rounds, "program.params.memory=reservoir", "program.params.capacity=0")
    assert same_models(fl, no_memory) and not same_models(fl, full)
    assert full.memory_sizes()[full.mobile].min() > 0 and fl.memory_sizes().sum() == 0
    # static devices never keep a memory
    assert full.memory_sizes()[~full.mobile].sum() == 0


@pytest.mark.slow
def test_c2fl_keeps_past_areas_where_local_stays_near_one_area():
    rounds = 65 if SHORT else 120  # SHORT: two moves (areas 0 -> 1 -> 2 for the first movers)
    above = 0.5  # chance is 0.1 on ten classes; an area's classes are never seen elsewhere
    ctx, _ = c2fl(rounds)
    local, _ = c2fl(rounds, "program.params.method=local")
    movers = np.flatnonzero(ctx.mobile)
    ev = ctx.history[-1]
    assert ev.round == rounds
    good = (ev.accuracy[movers] > above).sum(axis=1)
    assert good.max() >= 2 and good.mean() >= 1.5, ev.accuracy[movers]
    lev = local.history[-1]
    local_good = (lev.accuracy[movers] > above).sum(axis=1)
    assert local_good.max() <= 1, lev.accuracy[movers]
    assert ev.cacc() > lev.cacc() + 0.5


def test_code_variant_merges_every_third_round_with_the_clipped_weight():
    e = Engine(load_scenario(SCENARIO, ["duration.rounds=10", "program.params.variant=code"]))
    mobile = e.vm.resources["learning"].mobile
    seen, expected = [], []
    for tick in range(8):
        e.run(until=tick + 1)  # the round at time `tick`
        seen.append((e.outputs["alpha"][mobile][0], e.outputs["alpha"][~mobile][0]))
        w = min(0.3, max(0.1, (tick % 30) / 30))
        expected.append((w / (0.6 + w), 0.4) if tick % 3 == 0 else (0.0, 0.0))
    assert np.allclose(seen, expected, atol=1e-6)


def test_bad_parameters_and_learning_settings_name_their_yaml_path():
    with pytest.raises(ScenarioError, match="program.params.method"):
        c2fl(1, "program.params.method=federated")
    with pytest.raises(ScenarioError, match="program.params.finetune"):
        c2fl(1, "program.params.finetune=sometimes")
    with pytest.raises(ScenarioError, match="program.params.memory"):
        c2fl(1, "program.params.memory=class_balanced")  # needs a capacity
    with pytest.raises(ScenarioError, match=r"learning\.partition"):
        c2fl(1, "learning.partition=dirichlet(-1)")
    with pytest.raises(ScenarioError, match=r"learning\.model\.hidden"):
        c2fl(1, "learning.model.hidden=[0]")
    with pytest.raises(ScenarioError, match=r"learning\.epochs"):
        c2fl(1, "learning.epochs=two")
    with pytest.raises(ScenarioError, match=r"learning\.dataset"):
        c2fl(1, "learning.dataset=/no/such/dir")
    with pytest.raises(ScenarioError, match=r"learning\.colour"):
        c2fl(1, "learning.colour=red")


def test_the_command_line_writes_per_area_accuracy_columns_and_is_deterministic(tmp_path, capsys):
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        assert main([str(SCENARIO), "--set", "duration.rounds=10", "--out", str(out), "--quiet"]) == 0
        outs.append((out / "metrics.csv").read_bytes())
    assert outs[0] == outs[1]
    header = outs[0].decode().splitlines()[0].split(",")
    assert "cacc" in header and "accuracy.d8.area0" in header and "accuracy.d47.area3" in header
    assert main([str(SCENARIO), "--set", "program.params.method=nope", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "program.params.method" in capsys.readouterr().err


def test_rows_exported_less_often_than_every_round_still_carry_the_evaluations(tmp_path):
    # rows at t = 0, 5, 10 are written after 1, 6, 11 completed rounds; evaluations are due every 5 rounds
    _, result = c2fl(12, "exports.interval=5", "learning.eval_every=5", "exports.metrics=[eval_round, cacc]")
    rows = [dict(zip(result.columns, r)) for r in result.rows]
    assert [r["time"] for r in rows] == [0.0, 5.0, 10.0] and np.isnan(rows[0]["eval_round"])
    assert [r["eval_round"] for r in rows[1:]] == [6, 11]
    assert all(0 < r["cacc"] <= 4 for r in rows[1:])



def test_the_merge_switch_changes_only_how_the_regional_model_is_used():
    rounds = 34  # a move at round 30: the movers arrive in a new area
    _, blend = c2fl(rounds, "exports.values=[alpha]", "exports.stats=[max]")
    arrival_ctx, arrival = c2fl(rounds, "program.params.merge=arrival", "exports.values=[alpha, dwell]",
                                "exports.stats=[max]")
    e = arrival.engine
    mobile = arrival_ctx.mobile
    # movers blend at gamma in their first 5 rounds in an area (dwell 1..5 after the move), then not at all
    assert np.allclose(e.outputs["alpha"][mobile], np.where(e.outputs["dwell"][mobile] <= 5, 0.3, 0.0))
    counts_ctx, _ = c2fl(rounds, "program.params.merge=counts")
    assert not same_models(counts_ctx, arrival_ctx)
    with pytest.raises(ScenarioError, match="program.params.merge"):
        c2fl(1, "program.params.merge=average")
